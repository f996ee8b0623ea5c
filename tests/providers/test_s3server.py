"""The S3 server the tests and the demo use really checks signatures and IAM policies."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from s3server import S3Server

BODY = b"hello"


def client(server: S3Server, key_id: str, secret: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


def error_code(call: Any) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


def test_credentials_file(s3: S3Server) -> None:
    document = json.loads((s3.state / "credentials.json").read_text())
    assert document["endpoint"] == s3.endpoint and s3.endpoint.startswith("http://127.0.0.1:")
    assert document["buckets"] == s3.buckets == ["destinations", "destinations-other"]
    assert set(document["users"]) == {"admin", "writer", "reader"}
    for pair in document["users"].values():
        assert pair["accessKeyId"].startswith("AKIA") and len(pair["secretAccessKey"]) >= 40
    assert oct(os.stat(s3.state / "credentials.json").st_mode & 0o777) == "0o600"


def test_a_wrong_secret_key_is_refused(s3: S3Server) -> None:
    admin = s3.users["admin"]
    bad = client(s3, admin.access_key_id, admin.secret_access_key[:-1] + "x")
    code = error_code(lambda: bad.put_object(Bucket=s3.buckets[0], Key="t/wrong", Body=BODY))
    assert code == "SignatureDoesNotMatch"


def test_an_unknown_key_id_is_refused(s3: S3Server) -> None:
    bad = client(s3, "AKIAUNKNOWNUNKNOWN00", "whatever-secret-value")
    code = error_code(lambda: bad.put_object(Bucket=s3.buckets[0], Key="t/unknown", Body=BODY))
    assert code == "InvalidAccessKeyId"


def test_iam_policies_are_enforced(s3: S3Server) -> None:
    writer = s3.users["writer"]
    w = client(s3, writer.access_key_id, writer.secret_access_key)
    w.put_object(Bucket=s3.buckets[0], Key="t/writer", Body=BODY)
    code = error_code(lambda: w.delete_object(Bucket=s3.buckets[0], Key="t/writer"))
    assert code == "AccessDenied"  # the explicit Deny on s3:DeleteObject
    reader = s3.users["reader"]
    r = client(s3, reader.access_key_id, reader.secret_access_key)
    assert r.get_object(Bucket=s3.buckets[0], Key="t/writer")["Body"].read() == BODY
    code = error_code(lambda: r.put_object(Bucket=s3.buckets[0], Key="t/reader", Body=BODY))
    assert code == "AccessDenied"
    admin = s3.users["admin"]
    a = client(s3, admin.access_key_id, admin.secret_access_key)
    a.delete_object(Bucket=s3.buckets[0], Key="t/writer")


def test_unsigned_requests_are_refused(s3: S3Server) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{s3.endpoint}/{s3.buckets[0]}/t/anything", timeout=5)
    assert info.value.code == 403


def test_auth_cannot_be_switched_off_again(s3: S3Server) -> None:
    request = urllib.request.Request(
        f"{s3.endpoint}/moto-api/reset-auth", data=b"inf", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 403


def test_request_log_has_key_ids_and_no_signatures(s3: S3Server) -> None:
    admin = s3.users["admin"]
    a = client(s3, admin.access_key_id, admin.secret_access_key)
    a.put_object(Bucket=s3.buckets[0], Key="t/logged", Body=BODY)
    a.delete_object(Bucket=s3.buckets[0], Key="t/logged")
    lines = [line.split() for line in s3.requests() if "/t/logged" in line]
    assert [(m, p, k, c) for _, m, p, k, c in lines] == [
        ("PUT", f"/{s3.buckets[0]}/t/logged", admin.access_key_id, "200"),
        ("DELETE", f"/{s3.buckets[0]}/t/logged", admin.access_key_id, "204"),
    ]
    text = (s3.state / "requests.log").read_text()
    assert "Signature" not in text
    for pair in s3.users.values():
        assert pair.secret_access_key not in text


def test_start_and_stop_leave_no_process(tmp_path: Path) -> None:
    server = S3Server(tmp_path / "own", buckets=["one-bucket"]).start()
    proc = server._proc
    assert proc is not None and proc.poll() is None
    assert server.buckets == ["one-bucket"]
    server.stop()
    assert proc.poll() is not None
    server.stop()  # idempotent
