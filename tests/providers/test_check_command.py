"""`destination-operator check` against each provider's test server on loopback.

The command is run in-process (`check.main` with argv) and, to prove the
installed entry point, as a subprocess. S3Compatible, AzureBlobStorage,
AlibabaOSS and Webhook are aimed at their servers through the spec alone (an
endpoint or URL the author chose, a CA in the Secret's `caBundle`).
AmazonS3, OracleCloudStorage and GoogleCloudStorage name no endpoint: the
provider tests aim them at loopback with provider arguments no manifest can
give, so the command reaches them only up to the checks made before a
connection (tests/unit/test_cli_check.py).

Every run asserts that no value of the Secret appears in stdout or stderr,
as is, URL-encoded, form-encoded, in its repr, JSON-escaped or in base64.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from webhookserver import VERIFICATION_TOKEN, WebhookReceiver

from azurite import Azurite
from canaries import printed_forms
from destination_operator import check
from destination_operator.providers.base import PROBE_DIRECTORY
from ossserver import OSSServer
from s3server import S3Server

pytest_plugins = ["azure_fixtures", "oss_fixtures", "webhook_fixtures"]

CANARY = "canary/SECRET+check'q'\\x&y=1%"
"""A wrong credential whose URL-encoded, form-encoded and repr forms differ from it."""
AZURE_CANARY = base64.b64encode(b"canary-SECRET-check-azure".ljust(64, b"~")).decode()
"""A well-formed account key that Azurite's account does not have."""
COMMAND = Path(sys.executable).with_name("destination-operator")


def assert_no_leak(data: dict[str, bytes], *texts: str) -> None:
    """No value of `data` (the Secret) in any of `texts`, in any form."""
    for key, raw in data.items():
        value = raw.decode()
        if len(value) < 8:
            continue
        for text in texts:
            leaked = [name for name, form in printed_forms(value).items() if form in text]
            assert not leaked, f"the Secret's {key} is printed ({', '.join(leaked)})"


def destination_manifest(kind: str, member: dict[str, Any], *, development: bool = True) -> Any:
    uid = str(uuid.uuid4())
    spec: dict[str, Any] = {
        "type": kind,
        kind[0].lower() + kind[1:]: member,
        "pathPrefix": "probes/",
        "credentials": {"secretRef": {"name": "creds"}},
        "verification": {"mode": "WriteDelete", "timeout": "10s"},
    }
    if development:
        spec["environment"] = "Development"
    return {
        "apiVersion": "destinations.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": f"check-{kind.lower()}", "namespace": "team-a", "uid": uid},
        "spec": spec,
    }


def secret_manifest(data: dict[str, bytes]) -> dict[str, Any]:
    """A Secret as `kubectl get -o yaml` prints it (data in base64), plus one value written
    as text under stringData, as people write them by hand."""
    keys = sorted(data)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "team-a"},
        "data": {k: base64.b64encode(data[k]).decode() for k in keys[1:]},
        "stringData": {keys[0]: data[keys[0]].decode()},
    }


def object_key(manifest: dict[str, Any]) -> str:
    return f"probes/{PROBE_DIRECTORY}/{manifest['metadata']['uid']}.txt"


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.out)
        return found


def run_check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    manifest: dict[str, Any],
    data: dict[str, bytes],
    *flags: str,
) -> Ran:
    """`check -f <manifest> --secret-file <Secret of data> FLAGS` in-process."""
    dest, secret = tmp_path / "destination.yaml", tmp_path / "secret.yaml"
    dest.write_text(yaml.safe_dump(manifest))
    secret.write_text(yaml.safe_dump(secret_manifest(data)))
    code = check.main(["-f", str(dest), "--secret-file", str(secret), *flags], environ={})
    captured = capsys.readouterr()
    assert_no_leak(data, captured.out, captured.err)
    return Ran(code, captured.out, captured.err)


# --- each provider through the command: verified (0) and not (1) -------------------------------


@dataclass(frozen=True)
class Target:
    """A Destination aimed at a provider's test server, its good and its wrong Secret."""

    manifest: dict[str, Any]
    good: dict[str, bytes]
    wrong: dict[str, bytes]
    refused: str  # the reason of the wrong Secret


def s3_target(request: pytest.FixtureRequest) -> Target:
    s3: S3Server = request.getfixturevalue("s3")
    member = {"endpoint": s3.endpoint, "bucket": s3.buckets[0], "forcePathStyle": True}
    good = s3.users["admin"].secret_data()
    wrong = {**good, "secretAccessKey": CANARY.encode()}
    return Target(destination_manifest("S3Compatible", member), good, wrong, "AuthenticationFailed")


def azure_target(request: pytest.FixtureRequest) -> Target:
    azurite: Azurite = request.getfixturevalue("azurite")
    member = {
        "storageAccountName": azurite.account,
        "containerName": azurite.containers[0],
        "endpoint": azurite.endpoint,
    }
    good = {"accountKey": azurite.key.encode()}
    wrong = {"accountKey": AZURE_CANARY.encode()}
    return Target(
        destination_manifest("AzureBlobStorage", member), good, wrong, "AuthenticationFailed"
    )


def oss_target(request: pytest.FixtureRequest) -> Target:
    server: OSSServer = request.getfixturevalue("oss_server")
    member = {"bucket": "destinations", "region": "oss-cn-hangzhou", "endpoint": server.endpoint}
    good = server.users["admin"].secret_data()
    wrong = {**good, "accessKeySecret": CANARY.encode()}
    return Target(destination_manifest("AlibabaOSS", member), good, wrong, "AuthenticationFailed")


def webhook_target(request: pytest.FixtureRequest) -> Target:
    receiver: WebhookReceiver = request.getfixturevalue("webhook_receiver")
    ca = receiver.ca_file.read_bytes()
    manifest = destination_manifest("Webhook", {"url": receiver.url()}, development=False)
    del manifest["spec"]["pathPrefix"]
    good = {"verificationToken": VERIFICATION_TOKEN.encode(), "caBundle": ca}
    wrong = {"verificationToken": CANARY.encode(), "caBundle": ca}
    return Target(manifest, good, wrong, "AuthenticationFailed")


TARGETS: dict[str, Callable[[pytest.FixtureRequest], Target]] = {
    "S3Compatible": s3_target,
    "AzureBlobStorage": azure_target,
    "AlibabaOSS": oss_target,
    "Webhook": webhook_target,
}


@pytest.mark.parametrize("kind", TARGETS)
def test_verified_is_0_with_the_operators_reason_and_steps(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = TARGETS[kind](request)
    ran = run_check(tmp_path, capsys, target.manifest, target.good, "--allow-private-endpoints")
    assert ran.code == 0, ran.out + ran.err
    lines = ran.out.splitlines()
    assert lines[0] == (
        f"Destination {target.manifest['metadata']['name']} ({kind}): "
        "Verified=True reason=ProbeSucceeded"
    )
    assert lines[1].startswith("message: ")
    assert any(line.startswith("  Write: Succeeded in ") for line in lines)
    if kind != "Webhook":
        assert repr(object_key(target.manifest)) in lines[1]
        assert any(line.startswith("  Delete: Succeeded in ") for line in lines)
    assert ran.err == ""


@pytest.mark.parametrize("kind", TARGETS)
def test_a_wrong_credential_is_1_in_json_as_the_status_would_say(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = TARGETS[kind](request)
    ran = run_check(
        tmp_path, capsys, target.manifest, target.wrong, "--allow-private-endpoints", "-o", "json"
    )
    assert ran.code == 1, ran.out + ran.err
    report = ran.json()
    assert report["verified"] is False and report["type"] == kind
    condition = report["condition"]
    assert condition["type"] == "Verified" and condition["status"] == "False"
    assert condition["reason"] == target.refused
    probe = report["lastProbe"]
    assert probe["mode"] == "WriteDelete" and probe["time"].endswith("Z")
    steps = {step["name"]: step for step in probe["steps"]}
    assert steps["Write"]["outcome"] == "Failed"
    assert steps["Write"]["message"] and steps["Write"]["durationMilliseconds"] >= 0
    assert steps["Delete"]["outcome"] == "Skipped"


def test_s3_the_probe_writes_then_deletes_the_operators_object_key(
    s3: S3Server, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = s3_target(request)
    ran = run_check(tmp_path, capsys, target.manifest, target.good, "--allow-private-endpoints")
    assert ran.code == 0
    key = object_key(target.manifest)
    touched = [line.split()[1:3] for line in s3.requests() if key in line]
    path = f"/{s3.buckets[0]}/{key}"
    assert touched == [["PUT", path], ["DELETE", path]]


def test_s3_a_private_endpoint_is_refused_without_the_flag(
    s3: S3Server, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = s3_target(request)
    ran = run_check(tmp_path, capsys, target.manifest, target.good, "-o", "json")
    assert ran.code == 1
    condition = ran.json()["condition"]
    assert condition["reason"] == "EndpointBlocked" and "loopback" in condition["message"]
    assert ran.json()["lastProbe"] is None
    assert not [line for line in s3.requests() if object_key(target.manifest) in line]


def test_s3_credentials_from_the_environment(
    s3: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    member = {"endpoint": s3.endpoint, "bucket": s3.buckets[0], "forcePathStyle": True}
    dest = tmp_path / "destination.yaml"
    dest.write_text(yaml.safe_dump(destination_manifest("S3Compatible", member)))
    admin = s3.users["admin"]
    environ = {
        "DESTINATION_SECRET_ACCESS_KEY_ID": admin.access_key_id,
        "DESTINATION_SECRET_SECRET_ACCESS_KEY": admin.secret_access_key,
    }
    argv = ["-f", str(dest), "--from-env", "--allow-private-endpoints"]
    assert check.main(argv, environ=environ) == 0
    out = capsys.readouterr().out
    assert "Verified=True reason=ProbeSucceeded" in out
    assert_no_leak(admin.secret_data(), out)


# --- the installed command, as a subprocess ------------------------------------------------------


def command(*argv: str, stdin: str = "", env: dict[str, str] | None = None) -> Ran:
    done = subprocess.run(
        [str(COMMAND), "check", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def test_the_entry_point_with_the_secret_on_stdin(s3: S3Server, tmp_path: Path) -> None:
    member = {"endpoint": s3.endpoint, "bucket": s3.buckets[0], "forcePathStyle": True}
    manifest = destination_manifest("S3Compatible", member)
    dest = tmp_path / "destination.yaml"
    dest.write_text(yaml.safe_dump(manifest))
    data = s3.users["admin"].secret_data()
    secret = yaml.safe_dump(secret_manifest(data))
    ran = command(
        "-f",
        str(dest),
        "--secret-file",
        "-",
        "--allow-private-endpoints",
        "-o",
        "json",
        stdin=secret,
    )
    assert ran.code == 0, ran.err
    report = ran.json()
    assert report["condition"]["reason"] == "ProbeSucceeded"
    assert report["lastProbe"]["objectKey"] == object_key(manifest)
    assert [step["outcome"] for step in report["lastProbe"]["steps"]] == ["Succeeded"] * 2
    assert_no_leak(data, ran.out, ran.err)


def test_the_entry_point_exit_statuses_and_no_leak(s3: S3Server, tmp_path: Path) -> None:
    member = {"endpoint": s3.endpoint, "bucket": s3.buckets[0], "forcePathStyle": True}
    dest = tmp_path / "destination.yaml"
    dest.write_text(yaml.safe_dump(destination_manifest("S3Compatible", member)))
    wrong = {
        "DESTINATION_SECRET_ACCESS_KEY_ID": s3.users["admin"].access_key_id,
        "DESTINATION_SECRET_SECRET_ACCESS_KEY": CANARY,
    }
    refused = command("-f", str(dest), "--from-env", "--allow-private-endpoints", env=wrong)
    assert refused.code == 1
    assert "Verified=False reason=AuthenticationFailed" in refused.out
    assert_no_leak({"secretAccessKey": CANARY.encode()}, refused.out, refused.err)
    blocked = command("-f", str(dest), "--from-env", env=wrong)
    assert blocked.code == 1 and "reason=EndpointBlocked" in blocked.out
    assert_no_leak({"secretAccessKey": CANARY.encode()}, blocked.out, blocked.err)
    unusable = command("-f", str(tmp_path / "missing.yaml"), "--from-env", env=wrong)
    assert unusable.code == 2 and unusable.out == ""
    assert "cannot read the Destination file" in unusable.err
