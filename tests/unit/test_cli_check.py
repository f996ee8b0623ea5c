"""`destination-operator check` without a server: its input, its exit status 2 for input it
cannot use, the checks made before any connection (the spec's rules, the Secret's keys, the
endpoint guard), and no Secret value in anything it prints.

The probes against real servers are in tests/providers/test_check_command.py.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from canaries import printed_forms
from destination_operator import check, cli
from destination_operator.api.spec import DestinationType, SpecError, parse_spec
from destination_operator.outcome import invalid_spec
from destination_operator.providers.registry import default_registry

CANARY = "canary/SECRET+check 'q' \\ é&x=1"
"""A value whose URL-encoded, form-encoded and repr forms all differ from it."""


def assert_no_leak(*texts: str, value: str = CANARY) -> None:
    for text in texts:
        leaked = [name for name, form in printed_forms(value).items() if form in text]
        assert not leaked, f"the Secret's value is printed ({', '.join(leaked)})"


def destination(
    *,
    name: str = "orders",
    secret: str = "orders-s3",
    kind: str = "S3Compatible",
    member: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    field = kind[0].lower() + kind[1:]
    spec: dict[str, Any] = {
        "type": kind,
        "environment": "Development",
        field: member
        if member is not None
        else {"endpoint": "http://127.0.0.1:9", "bucket": "destinations", "forcePathStyle": True},
        "credentials": credentials or {"secretRef": {"name": secret}},
        **extra,
    }
    return {
        "apiVersion": "destinations.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": spec,
    }


def secret(name: str = "orders-s3", **string_data: str) -> dict[str, Any]:
    values = string_data or {"accessKeyId": "AKIDCHECK", "secretAccessKey": CANARY}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "team-a"},
        "stringData": values,
    }


def write(path: Path, *docs: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump_all(docs, allow_unicode=True))
    return str(path)


class Run:
    """One `check` in-process: its exit status and what it printed."""

    def __init__(
        self,
        argv: list[str],
        capsys: pytest.CaptureFixture[str],
        *,
        stdin: str = "",
        environ: dict[str, str] | None = None,
    ) -> None:
        self.code = check.main(argv, stdin=io.StringIO(stdin), environ=environ or {})
        captured = capsys.readouterr()
        self.out, self.err = captured.out, captured.err
        assert_no_leak(self.out, self.err)

    def json(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.out)
        return found


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    """A Destination aimed at loopback and the Secret it names, holding the canary."""
    return write(tmp_path / "d.yaml", destination()), write(tmp_path / "s.yaml", secret())


# --- exit status 2: input check cannot use -----------------------------------------------------


def test_a_missing_file_is_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.yaml")
    run = Run(["-f", missing, "--secret-file", missing], capsys)
    assert run.code == 2 and run.out == ""
    assert "cannot read the Destination file" in run.err and "nope.yaml" in run.err


def test_a_file_without_a_destination_is_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    other = write(tmp_path / "c.yaml", config)
    run = Run(["-f", other, "--secret-file", write(tmp_path / "s.yaml", secret())], capsys)
    assert run.code == 2
    assert "holds no Destination (destinations.io/v1alpha1)" in run.err


def test_two_destinations_are_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    both = write(tmp_path / "d.yaml", destination(), destination(name="other"))
    run = Run(["-f", both, "--secret-file", write(tmp_path / "s.yaml", secret())], capsys)
    assert run.code == 2 and "holds 2 Destinations" in run.err


def test_no_credentials_source_is_2(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(["-f", files[0]], capsys)
    assert run.code == 2
    assert "one of the arguments --secret-file --from-env is required" in run.err


def test_there_is_no_from_literal(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(["-f", files[0], "--from-env", "--from-literal", "accessKeyId=x"], capsys)
    assert run.code == 2 and "unrecognized arguments: --from-literal" in run.err


def test_a_secret_of_another_name_is_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = write(tmp_path / "d.yaml", destination())
    other = write(tmp_path / "s.yaml", secret("someone-else"))
    run = Run(["-f", dest, "--secret-file", other], capsys)
    assert run.code == 2
    assert (
        "is named 'someone-else', but the Destination's spec.credentials.secretRef.name "
        "is 'orders-s3'" in run.err
    )


def test_a_secret_in_another_namespace_is_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = secret()
    elsewhere["metadata"]["namespace"] = "team-b"
    dest = write(tmp_path / "d.yaml", destination())
    run = Run(["-f", dest, "--secret-file", write(tmp_path / "s.yaml", elsewhere)], capsys)
    assert run.code == 2 and "namespace 'team-b'" in run.err


def test_both_from_stdin_is_2(capsys: pytest.CaptureFixture[str]) -> None:
    run = Run(["-f", "-", "--secret-file", "-"], capsys, stdin="")
    assert run.code == 2 and "cannot both be read from stdin" in run.err


def test_a_secret_that_is_not_yaml_is_2_and_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "s.yaml"
    broken.write_text(f"apiVersion: v1\nkind: Secret\nstringData:\n  k: [{CANARY}\n")
    dest = write(tmp_path / "d.yaml", destination())
    run = Run(["-f", dest, "--secret-file", str(broken)], capsys)
    assert run.code == 2 and "is not valid YAML at line" in run.err


def test_data_that_is_not_base64_is_2_naming_the_key_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {**secret(), "data": {"secretAccessKey": CANARY}}
    del bad["stringData"]
    dest = write(tmp_path / "d.yaml", destination())
    run = Run(["-f", dest, "--secret-file", write(tmp_path / "s.yaml", bad)], capsys)
    assert run.code == 2 and "data.secretAccessKey is not base64" in run.err


def test_from_env_with_none_set_is_2_and_names_the_variables(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(["-f", files[0], "--from-env"], capsys, environ={"UNRELATED": CANARY})
    assert run.code == 2
    assert "DESTINATION_SECRET_ACCESS_KEY_ID" in run.err
    assert "DESTINATION_SECRET_SECRET_ACCESS_KEY" in run.err


@pytest.mark.parametrize(
    "credentials", [{"serviceAccountName": "writer"}, {"operatorIdentity": {}}]
)
def test_workload_identity_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], credentials: dict[str, object]
) -> None:
    dest = write(tmp_path / "d.yaml", destination(credentials=credentials))
    run = Run(["-f", dest, "--from-env"], capsys, environ={})
    assert run.code == 2
    assert run.err.strip() == (
        "destination-operator check: check cannot use workload identity yet: "
        "give the Destination a secretRef"
    )


# --- exit status 1: what the operator would write, before any connection ----------------------


def test_a_spec_that_breaks_a_rule_is_invalid_spec_as_the_operator_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = destination(member={"endpoint": "http://127.0.0.1:9"})  # no bucket
    with pytest.raises(SpecError) as err:
        parse_spec(doc["spec"])
    expected = invalid_spec(err.value.field, err.value.message)
    dest = write(tmp_path / "d.yaml", doc)
    run = Run(
        ["-f", dest, "--secret-file", write(tmp_path / "s.yaml", secret()), "-o", "json"], capsys
    )
    assert run.code == 1
    condition = run.json()["condition"]
    assert condition == {
        "type": "Verified",
        "status": "False",
        "reason": "InvalidSpec",
        "message": expected.message,
    }
    assert run.json()["lastProbe"] is None


def test_a_missing_key_is_secret_key_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = write(tmp_path / "d.yaml", destination())
    lacking = write(tmp_path / "s.yaml", secret(accessKeyId=CANARY))
    run = Run(["-f", dest, "--secret-file", lacking, "--allow-private-endpoints"], capsys)
    assert run.code == 1
    assert "Verified=False reason=SecretKeyMissing" in run.out
    assert "'secretAccessKey'" in run.out


def test_a_private_endpoint_is_refused_without_the_flag(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    text = Run(["-f", files[0], "--secret-file", files[1]], capsys)
    assert text.code == 1
    assert "Verified=False reason=EndpointBlocked" in text.out
    assert "loopback" in text.out and check.PRIVATE_HINT in text.out
    as_json = Run(["-f", files[0], "--secret-file", files[1], "-o", "json"], capsys)
    assert as_json.code == 1
    assert as_json.json()["condition"]["reason"] == "EndpointBlocked"
    assert as_json.json()["lastProbe"] is None  # refused before any connection


def test_the_operators_variable_does_not_allow_private_endpoints(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESTINATION_OPERATOR_ALLOW_PRIVATE_ENDPOINTS", "true")
    run = Run(["-f", files[0], "--secret-file", files[1]], capsys)
    assert run.code == 1 and "reason=EndpointBlocked" in run.out


@pytest.mark.parametrize(
    ("kind", "member", "needs"),
    [
        ("GoogleCloudStorage", {"bucket": "destinations"}, "'hmacSecret'"),
        ("AmazonS3", {"bucket": "destinations", "region": "eu-west-1"}, "'secretAccessKey'"),
    ],
)
def test_types_without_a_loopback_endpoint_reach_the_provider(
    kind: str,
    member: dict[str, Any],
    needs: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GCS and AmazonS3 name no endpoint a test can aim at loopback: their Secret checks,
    made before any connection, show the command reaches their providers."""
    doc = destination(kind=kind, member=member)
    del doc["spec"]["environment"]
    dest = write(tmp_path / "d.yaml", doc)
    run = Run(
        ["-f", dest, "--from-env", "-o", "json"],
        capsys,
        environ={
            "DESTINATION_SECRET_ACCESS_KEY_ID": CANARY,
            "DESTINATION_SECRET_HMAC_ACCESS_KEY": CANARY,
        },
    )
    assert run.code == 1, run.out
    report = run.json()
    assert report["type"] == kind
    assert report["condition"]["reason"] in ("SecretKeyMissing", "SecretKeyInvalid")
    assert needs in report["condition"]["message"]


# --- naming and wiring ---------------------------------------------------------------------------


def test_variable_names_are_the_keys_in_upper_snake_case() -> None:
    assert check.env_name("accessKeyId") == "DESTINATION_SECRET_ACCESS_KEY_ID"
    assert check.env_name("serviceAccountJson") == "DESTINATION_SECRET_SERVICE_ACCOUNT_JSON"
    assert check.env_name("caBundle") == "DESTINATION_SECRET_CA_BUNDLE"
    assert check.env_name("sasToken") == "DESTINATION_SECRET_SAS_TOKEN"


def test_each_type_reads_its_providers_keys_and_the_ca_bundle(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for kind in DestinationType:
        keys = check.keys_read(kind)
        assert set(keys) == default_registry().get(kind).secret_keys.names() | {"caBundle"}
        assert len({check.env_name(key) for key in keys}) == len(keys)
    assert check.main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert "ACCESS_KEY_ID SECRET_ACCESS_KEY SESSION_TOKEN CA_BUNDLE" in shown
    assert "SERVICE_ACCOUNT_JSON HMAC_ACCESS_KEY HMAC_SECRET CA_BUNDLE" in shown


def test_the_top_level_command_has_check(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    top = cli.parser()
    assert "check" in top.format_help()
    assert cli.main(["check", "-f", files[0], "--secret-file", files[1]]) == 1
    assert "reason=EndpointBlocked" in capsys.readouterr().out


def test_one_file_may_hold_the_destination_and_its_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = write(tmp_path / "both.yaml", destination(), secret())
    run = Run(["-f", both, "--secret-file", both], capsys)
    assert run.code == 1 and "reason=EndpointBlocked" in run.out  # read, then guarded


def test_a_disabled_destination_is_probed_all_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = write(tmp_path / "d.yaml", destination(enabled=False))
    run = Run(["-f", dest, "--secret-file", write(tmp_path / "s.yaml", secret())], capsys)
    assert run.code == 1 and "reason=EndpointBlocked" in run.out


def _jwt(exp: int) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'exp': exp, 'note': CANARY})}.c2ln"


@pytest.mark.parametrize(
    ("exp", "status", "reason", "code"),
    [
        (1_600_000_000, "True", "CredentialsExpired", 1),  # 2020: refused, nothing sent
        (4_100_000_000, "False", "CredentialsExpireLater", 1),  # 2099: probed (port 9 refuses)
    ],
    ids=["expired", "later"],
)
def test_a_readable_expiry_is_printed_as_the_operator_would_write_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    exp: int,
    status: str,
    reason: str,
    code: int,
) -> None:
    token = _jwt(exp)
    files = (
        write(
            tmp_path / "d.yaml",
            destination(kind="Webhook", member={"url": "https://127.0.0.1:9/hook"}),
        ),
        write(tmp_path / "s.yaml", secret(verificationToken="hook-check", bearerToken=token)),
    )
    args = ["-f", files[0], "--secret-file", files[1], "--allow-private-endpoints"]
    text = Run(args, capsys)
    assert text.code == code
    at = datetime.datetime.fromtimestamp(exp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    expected = f"CredentialsExpiring={status} reason={reason}: the JWT in the Secret's bearerToken"
    assert expected in text.out and at in text.out, text.out
    assert token not in text.out and token.split(".")[1] not in text.out
    report = Run([*args, "-o", "json"], capsys).json()
    assert report["credentialsExpiry"] == at
    assert report["credentialsExpiring"]["status"] == status
    assert report["credentialsExpiring"]["reason"] == reason


def test_no_readable_expiry_prints_none(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    report = Run(["-f", files[0], "--secret-file", files[1], "-o", "json"], capsys).json()
    assert report["credentialsExpiry"] is None and report["credentialsExpiring"] is None
    assert "CredentialsExpiring" not in Run(["-f", files[0], "--secret-file", files[1]], capsys).out
