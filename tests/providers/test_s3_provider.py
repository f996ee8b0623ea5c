"""The S3 provider against a real S3 server that checks signatures and IAM policies.

Every probe outcome of TESTING.md, through `probe.verify.verify` (the code path the
operator runs): success, wrong key, missing bucket, write allowed but delete
refused, unreachable port, a server that never answers, a certificate nobody
trusts, and the checks made before any connection (Secret, keys, endpoint guard).
"""

from __future__ import annotations

import datetime
import time
import uuid

import pytest
from s3cases import as_secret, s3_spec

from destination_operator.api.spec import VerificationMode
from destination_operator.api.status import Reason, StepOutcome
from destination_operator.outcome import Outcome, fingerprint
from destination_operator.probe.verify import verify
from destination_operator.providers.base import PROBE_DIRECTORY
from destination_operator.providers.s3 import S3CompatibleProvider
from loopback import SilentServer
from s3server import S3Server

NOW = datetime.datetime(2026, 11, 22, 7, 0, tzinfo=datetime.UTC)
CANARY = "canary-SECRET-never-show-me-9c1e7f3a"
SECRET_UID = "5d0f2c9e-8a1b-4e63-b7d2-91c4f0a6e3b8"


def key(prefix: str = "probes/") -> str:
    return f"{prefix}{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"


def run(spec_endpoint: str, bucket: str, data: dict[str, bytes] | None, **kw: object) -> Outcome:
    object_key = str(kw.pop("object_key", key()))
    allow_private = bool(kw.pop("allow_private", True))
    spec = s3_spec(spec_endpoint, bucket, **kw)  # type: ignore[arg-type]
    return verify(
        spec,
        data,
        secret_uid=SECRET_UID,
        object_key=object_key,
        allow_private=allow_private,
        now=NOW,
    )


def requests_for(server: S3Server, object_key: str) -> list[list[str]]:
    """(method, path, access key id, status) of every request that touched `object_key`."""
    return [line.split()[1:] for line in server.requests() if object_key in line]


def steps(outcome: Outcome) -> dict[str, StepOutcome]:
    return {step.name.value: step.outcome for step in outcome.steps}


def test_success_writes_then_deletes(s3: S3Server) -> None:
    admin = s3.users["admin"]
    object_key = key()
    outcome = run(s3.endpoint, s3.buckets[0], as_secret(admin), object_key=object_key)
    assert outcome.verified, outcome
    assert outcome.reason == Reason.ProbeSucceeded
    assert outcome.mode == VerificationMode.WriteDelete
    assert steps(outcome) == {"Write": StepOutcome.Succeeded, "Delete": StepOutcome.Succeeded}
    assert outcome.object_key == object_key
    assert outcome.fingerprint == fingerprint(as_secret(admin), SECRET_UID)
    probe = outcome.last_probe()
    assert probe is not None and probe["mode"] == "WriteDelete" and probe["time"]
    path = f"/{s3.buckets[0]}/{object_key}"
    assert requests_for(s3, object_key) == [
        ["PUT", path, admin.access_key_id, "200"],
        ["DELETE", path, admin.access_key_id, "204"],
    ]


def test_wrong_secret_key_is_authentication_failed(s3: S3Server) -> None:
    data = {
        "accessKeyId": s3.users["admin"].access_key_id.encode(),
        "secretAccessKey": CANARY.encode(),
    }
    outcome = run(s3.endpoint, s3.buckets[0], data)
    assert not outcome.verified
    assert outcome.reason == Reason.AuthenticationFailed
    assert "SignatureDoesNotMatch" in outcome.message
    assert CANARY not in repr(outcome)
    assert steps(outcome) == {"Write": StepOutcome.Failed, "Delete": StepOutcome.Skipped}


def test_unknown_access_key_is_authentication_failed(s3: S3Server) -> None:
    data = {"accessKeyId": b"AKIANOSUCHKEY0000000", "secretAccessKey": CANARY.encode()}
    outcome = run(s3.endpoint, s3.buckets[0], data)
    assert outcome.reason == Reason.AuthenticationFailed
    assert "InvalidAccessKeyId" in outcome.message
    assert "AKIANOSUCHKEY0000000" not in outcome.message  # scrubbed like every Secret value


def test_missing_bucket_is_bucket_not_found(s3: S3Server) -> None:
    outcome = run(s3.endpoint, "no-such-bucket", as_secret(s3.users["admin"]))
    assert outcome.reason == Reason.BucketNotFound
    assert "NoSuchBucket" in outcome.message


def test_write_allowed_delete_denied_in_write_delete_mode(s3: S3Server) -> None:
    writer = s3.users["writer"]
    object_key = key()
    outcome = run(s3.endpoint, s3.buckets[0], as_secret(writer), object_key=object_key)
    assert not outcome.verified
    assert outcome.reason == Reason.AccessDenied
    assert "DeleteObject" in outcome.message and "mode Write" in outcome.message
    assert steps(outcome) == {"Write": StepOutcome.Succeeded, "Delete": StepOutcome.Failed}
    assert [r[0] for r in requests_for(s3, object_key)] == ["PUT", "DELETE"]
    assert requests_for(s3, object_key)[1][3] == "403"


def test_write_allowed_delete_denied_is_verified_in_write_mode(s3: S3Server) -> None:
    object_key = key()
    outcome = run(
        s3.endpoint,
        s3.buckets[0],
        as_secret(s3.users["writer"]),
        object_key=object_key,
        mode="Write",
    )
    assert outcome.verified, outcome
    assert outcome.reason == Reason.ProbeSucceeded
    assert steps(outcome) == {"Write": StepOutcome.Succeeded, "Delete": StepOutcome.Skipped}
    assert [r[0] for r in requests_for(s3, object_key)] == ["PUT"]  # no delete attempted


def test_write_denied_is_access_denied(s3: S3Server) -> None:
    outcome = run(s3.endpoint, s3.buckets[0], as_secret(s3.users["reader"]))
    assert outcome.reason == Reason.AccessDenied
    assert "PutObject" in outcome.message
    assert steps(outcome) == {"Write": StepOutcome.Failed, "Delete": StepOutcome.Skipped}


def test_closed_port_is_endpoint_unreachable(s3: S3Server, closed_port: int) -> None:
    outcome = run(f"http://127.0.0.1:{closed_port}", "bucket", as_secret(s3.users["admin"]))
    assert outcome.reason == Reason.EndpointUnreachable
    assert outcome.last_probe() is not None  # a connection was attempted


def test_server_that_never_answers_is_timeout(s3: S3Server, silent_server: SilentServer) -> None:
    started = time.monotonic()
    outcome = run(
        f"http://127.0.0.1:{silent_server.port}",
        "bucket",
        as_secret(s3.users["admin"]),
        timeout="1s",
    )
    elapsed = time.monotonic() - started
    assert outcome.reason == Reason.Timeout, outcome
    assert elapsed < 4, elapsed
    assert silent_server.accepted == 1  # one attempt: no SDK retries


def test_untrusted_certificate_is_tls_error(s3: S3Server, untrusted_tls_server: int) -> None:
    outcome = run(
        f"https://127.0.0.1:{untrusted_tls_server}", "bucket", as_secret(s3.users["admin"])
    )
    assert outcome.reason == Reason.TLSError, outcome
    assert "certificate" in outcome.message.lower()


def test_missing_secret_is_secret_not_found(s3: S3Server) -> None:
    object_key = key()
    outcome = run(s3.endpoint, s3.buckets[0], None, object_key=object_key, secret="later")
    assert outcome.reason == Reason.SecretNotFound
    assert "'later'" in outcome.message
    assert outcome.fingerprint == ""
    assert outcome.last_probe() is None
    assert requests_for(s3, object_key) == []


@pytest.mark.parametrize("missing", ["accessKeyId", "secretAccessKey"])
def test_secret_without_a_key_names_the_key_and_not_the_value(s3: S3Server, missing: str) -> None:
    data = {"accessKeyId": CANARY.encode(), "secretAccessKey": CANARY.encode(), "other": b"x"}
    del data[missing]
    data["wrongName"] = CANARY.encode()
    object_key = key()
    outcome = run(s3.endpoint, s3.buckets[0], data, object_key=object_key)
    assert outcome.reason == Reason.SecretKeyMissing
    assert missing in outcome.message and "'creds'" in outcome.message
    assert CANARY not in outcome.message
    assert requests_for(s3, object_key) == []


def test_empty_value_counts_as_missing(s3: S3Server) -> None:
    data = {"accessKeyId": b"AKIAX", "secretAccessKey": b"  \n"}
    assert run(s3.endpoint, s3.buckets[0], data).reason == Reason.SecretKeyMissing


def test_trailing_newline_in_a_secret_value_is_ignored(s3: S3Server) -> None:
    pair = s3.users["admin"]
    data = {
        "accessKeyId": pair.access_key_id.encode() + b"\n",
        "secretAccessKey": pair.secret_access_key.encode() + b"\n",
    }
    assert run(s3.endpoint, s3.buckets[0], data).verified


def test_loopback_is_blocked_unless_private_endpoints_are_allowed(s3: S3Server) -> None:
    object_key = key()
    outcome = run(
        s3.endpoint,
        s3.buckets[0],
        as_secret(s3.users["admin"]),
        object_key=object_key,
        allow_private=False,
    )
    assert outcome.reason == Reason.EndpointBlocked
    assert requests_for(s3, object_key) == []  # refused before any connection
    assert outcome.last_probe() is None


@pytest.mark.parametrize(
    "endpoint",
    ["http://169.254.169.254", "http://metadata.google.internal", "http://169.254.1.1:9000"],
)
def test_metadata_and_link_local_are_always_blocked(s3: S3Server, endpoint: str) -> None:
    outcome = run(endpoint, "bucket", as_secret(s3.users["admin"]), allow_private=True)
    assert outcome.reason == Reason.EndpointBlocked


def test_virtual_hosted_bucket_host_is_guarded_too(s3: S3Server) -> None:
    """Without path style the client would connect to <bucket>.<host>: that host is checked."""
    spec = s3_spec("http://localhost:9", "bucket").model_copy(deep=True)
    member = spec.s3_compatible
    assert member is not None
    virtual = spec.model_copy(
        update={"s3_compatible": member.model_copy(update={"force_path_style": False})}
    )
    urls = S3CompatibleProvider().endpoints(virtual)
    assert urls == ["http://localhost:9"]  # localhost: path style anyway
    public = spec.model_copy(
        update={
            "s3_compatible": member.model_copy(
                update={"endpoint": "https://s3.example.com", "force_path_style": False}
            )
        }
    )
    assert S3CompatibleProvider().endpoints(public) == [
        "https://s3.example.com",
        "https://bucket.s3.example.com",
    ]


def test_probe_object_stays_only_in_write_mode(s3: S3Server) -> None:
    """Read back as admin: WriteDelete leaves nothing behind, Write leaves the object."""
    import boto3
    from botocore.config import Config

    admin = s3.users["admin"]
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id=admin.access_key_id,
        aws_secret_access_key=admin.secret_access_key,
        config=Config(s3={"addressing_style": "path"}),
    )
    gone, kept = key("a/"), key("b/")
    assert run(s3.endpoint, s3.buckets[1], as_secret(admin), object_key=gone, prefix="a/").verified
    assert run(
        s3.endpoint, s3.buckets[1], as_secret(admin), object_key=kept, prefix="b/", mode="Write"
    ).verified
    names = {o["Key"] for o in client.list_objects_v2(Bucket=s3.buckets[1]).get("Contents", [])}
    assert kept in names and gone not in names
    body = client.get_object(Bucket=s3.buckets[1], Key=kept)["Body"].read()
    assert b"not data" in body
