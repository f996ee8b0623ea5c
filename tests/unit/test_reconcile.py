"""reconcile's pure parts: fingerprint, probe key, early failures; the S3 providers' targets."""

from __future__ import annotations

import datetime
import hashlib
import sys
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from destination_operator.api.spec import (
    DestinationSpec,
    DestinationType,
    VerificationMode,
    parse_spec,
)
from destination_operator.api.status import Reason, StepOutcome
from destination_operator.errors import ProviderUnavailableError
from destination_operator.outcome import (
    FINGERPRINT_LABEL,
    StepName,
    StepResult,
    fingerprint,
    invalid_spec,
    secret_forbidden,
    secret_unreadable,
)
from destination_operator.probe import verify as verify_module
from destination_operator.probe.verify import probe_control, verify
from destination_operator.probe.verify import probe_object_key as key_for_spec
from destination_operator.providers import s3 as s3_module
from destination_operator.providers.base import (
    PROBE_DIRECTORY,
    ProbeResult,
    Provider,
    SecretKeys,
    probe_object_key,
)
from destination_operator.providers.registry import (
    DuplicateProviderError,
    ProviderNotFoundError,
    Registry,
    default_registry,
)
from destination_operator.providers.s3 import (
    AmazonS3Provider,
    OracleCloudStorageProvider,
    S3CompatibleProvider,
    S3Credentials,
    client_config,
    use_path_style,
)

NOW = datetime.datetime(2026, 11, 22, 7, 0, tzinfo=datetime.UTC)


def spec(**fields: Any) -> DestinationSpec:
    raw: dict[str, Any] = {
        "type": "S3Compatible",
        "environment": "Development",
        "s3Compatible": {"endpoint": "http://127.0.0.1:9", "bucket": "reports"},
        "credentials": {"secretRef": {"name": "creds"}},
    }
    raw.update(fields)
    return parse_spec(raw)


# --- fingerprint -------------------------------------------------------------------------------


UID = "6f1c1f4e-2b7d-4c56-9a43-0d8e5b1f2a10"


def test_fingerprint_is_short_stable_and_order_free() -> None:
    a = fingerprint({"accessKeyId": b"AKIA1", "secretAccessKey": b"s3cr3t-value"}, UID)
    b = fingerprint({"secretAccessKey": b"s3cr3t-value", "accessKeyId": b"AKIA1"}, UID)
    assert a == b and len(a) == 16 and int(a, 16) >= 0
    assert fingerprint(None, UID) == ""


def test_fingerprint_sees_every_change() -> None:
    base = {"accessKeyId": b"AKIA1", "secretAccessKey": b"one"}
    assert fingerprint(base, UID) != fingerprint({**base, "secretAccessKey": b"two"}, UID)
    assert fingerprint(base, UID) != fingerprint({**base, "sessionToken": b""}, UID)
    # length-prefixed: moving bytes between key and value changes the digest
    assert fingerprint({"ab": b"c"}, UID) != fingerprint({"a": b"bc"}, UID)
    assert fingerprint({}, UID) != fingerprint(None, UID)


def test_fingerprint_is_keyed_by_the_secrets_uid() -> None:
    # a guess of a short value cannot be checked without the Secret's uid, and
    # a Secret deleted and created again with the same data is a new input
    data = {"verificationToken": b"1234"}
    other = "0b9e3a52-7c41-4d0e-8f5a-3e2d1c0b9a87"
    assert fingerprint(data, UID) != fingerprint(data, other)
    unkeyed = hashlib.sha256(FINGERPRINT_LABEL)
    for name, value in data.items():
        unkeyed.update(len(name).to_bytes(4, "big") + name.encode())
        unkeyed.update(len(value).to_bytes(8, "big") + value)
    assert fingerprint(data, UID) != unkeyed.hexdigest()[:16]


@given(st.dictionaries(st.text(min_size=1, max_size=20), st.binary(min_size=6, max_size=40)))
def test_fingerprint_never_contains_a_value(data: dict[str, bytes]) -> None:
    digest = fingerprint(data, UID)
    for value in data.values():
        assert value.hex() not in digest or len(value.hex()) > len(digest)


# --- probe object key --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "token", "expected"),
    [
        ("", "uid-1", f"{PROBE_DIRECTORY}/uid-1.txt"),
        ("exports/", "uid-1", f"exports/{PROBE_DIRECTORY}/uid-1.txt"),
        ("exports/run-", "uid-1", f"exports/run-{PROBE_DIRECTORY}/uid-1.txt"),
        ("a/", "../../etc passwd", f"a/{PROBE_DIRECTORY}/etc-passwd.txt"),
        ("a/", "", f"a/{PROBE_DIRECTORY}/probe.txt"),
    ],
)
def test_probe_object_key(prefix: str, token: str, expected: str) -> None:
    assert probe_object_key(prefix, token) == expected


def test_probe_object_key_renders_the_prefix() -> None:
    found = key_for_spec(spec(pathPrefix="exports/%DATE%/"), "8d1e-uid", NOW)
    assert found == f"exports/2026_11_22/{PROBE_DIRECTORY}/8d1e-uid.txt"
    assert key_for_spec(spec(), "u", NOW) == f"{PROBE_DIRECTORY}/u.txt"


# --- early outcomes ----------------------------------------------------------------------------


def test_invalid_spec_outcome() -> None:
    outcome = invalid_spec("spec.s3Compatible.bucket", "Required value")
    assert not outcome.verified and outcome.reason == Reason.InvalidSpec
    assert outcome.message == "spec.s3Compatible.bucket: Required value"
    assert invalid_spec("type", "x").message == "spec.type: x"


def test_secret_read_refusals_are_not_reported_as_missing() -> None:
    forbidden = secret_forbidden("RBAC does not let the operator read Secret 'creds'")
    assert forbidden.reason == Reason.SecretForbidden and "'creds'" in forbidden.message
    other = secret_unreadable("reading Secret 'creds' failed with HTTP 409")
    assert other.reason == Reason.ProbeFailed and "HTTP 409" in other.message


def test_verify_reports_a_type_without_provider() -> None:
    registry = Registry()  # empty: no provider at all
    outcome = verify(
        spec(),
        {"accessKeyId": b"a"},
        secret_uid=UID,
        object_key="k",
        allow_private=True,
        now=NOW,
        registry=registry,
    )
    assert outcome.reason == Reason.ProviderUnavailable and "S3Compatible" in outcome.message


@pytest.mark.parametrize("allow_private", [True, False])
def test_the_probe_control_holds_unchecked_hosts_to_the_guards_rule(allow_private: bool) -> None:
    control = probe_control(spec(), default_timeout=7, allow_private=allow_private)
    assert control.refuse_private is not allow_private
    assert control.timeout_seconds == 7  # the spec sets none
    timed = spec(verification={"timeout": "3s"})
    assert probe_control(timed, default_timeout=7, allow_private=True).timeout_seconds == 3
    other = probe_control(spec(), default_timeout=7, allow_private=not allow_private)
    with pytest.raises(ValueError, match="disagree on private addresses"):
        verify(
            spec(),
            {"accessKeyId": b"a"},
            secret_uid=UID,
            object_key="k",
            allow_private=allow_private,
            now=NOW,
            control=other,
        )


def test_undecodable_secret_value_is_reported_by_key() -> None:
    data = {"accessKeyId": b"AKIA1", "secretAccessKey": b"\xff\xfe\xfd-not-utf8"}
    outcome = verify(spec(), data, secret_uid=UID, object_key="k", allow_private=True, now=NOW)
    assert outcome.reason == Reason.SecretKeyMissing
    assert "secretAccessKey" in outcome.message and "UTF-8" in outcome.message


class Exploding:
    """A provider whose probe raises what a buggy SDK wrapper might: translated, scrubbed."""

    type: ClassVar[DestinationType] = DestinationType.S3Compatible
    secret_keys: ClassVar[SecretKeys] = SecretKeys(required=("token",))

    def load_credentials(self, data: Mapping[str, str]) -> str:
        return data["token"]

    def endpoints(self, spec: DestinationSpec) -> list[str]:
        return []

    def probe(
        self,
        spec: DestinationSpec,
        credentials: Any,
        object_key: str,
        mode: VerificationMode,
        timeout_seconds: float,
    ) -> ProbeResult:
        raise RuntimeError(f"boom with {credentials}")


def test_a_raising_provider_becomes_probe_failed_without_the_secret() -> None:
    registry = Registry()
    registry.register(Exploding())
    outcome = verify(
        spec(),
        {"token": b"distinctive-token-value"},
        secret_uid=UID,
        object_key="k",
        allow_private=False,
        now=NOW,
        registry=registry,
    )
    assert outcome.reason == Reason.ProbeFailed
    assert "distinctive-token-value" not in outcome.message
    assert outcome.last_probe() is not None


def test_verify_runs_named_steps_in_order_and_stops_at_the_first_outcome() -> None:
    """Credentials, their expiry, the endpoint guard, the probe (as Flux lists its
    reconcilers): a step's `Outcome` ends the verification; the control's deadline starts
    with the guard."""
    assert [step.__name__ for step in verify_module.STEPS] == [
        "provider_and_credentials",
        "credentials_expiry",
        "endpoint_guard",
        "probe",
    ]
    unstarted = probe_control(spec(), default_timeout=7, allow_private=False)
    outcome = verify(
        spec(),
        None,
        secret_uid=UID,
        object_key="k",
        allow_private=False,
        now=NOW,
        control=unstarted,
    )
    assert outcome.reason == Reason.SecretNotFound
    assert unstarted.deadline is None  # the guard never ran: no deadline started
    guarded = probe_control(spec(), default_timeout=7, allow_private=False)
    data = {"accessKeyId": b"a", "secretAccessKey": b"b"}
    outcome = verify(
        spec(), data, secret_uid=UID, object_key="k", allow_private=False, now=NOW, control=guarded
    )
    assert outcome.reason == Reason.EndpointBlocked  # loopback refused: the probe never ran
    assert guarded.deadline is not None and not outcome.probed


# --- registry ----------------------------------------------------------------------------------


def test_registry_refuses_a_duplicate() -> None:
    registry = Registry()
    registry.register(S3CompatibleProvider())
    with pytest.raises(DuplicateProviderError, match="S3Compatible"):
        registry.register(S3CompatibleProvider())
    assert registry.types() == [DestinationType.S3Compatible]


def test_registry_lookup() -> None:
    registry = default_registry()
    assert registry is default_registry()
    assert isinstance(registry.get(DestinationType.AmazonS3), AmazonS3Provider)
    assert isinstance(registry.get("OracleCloudStorage"), OracleCloudStorageProvider)
    with pytest.raises(ProviderNotFoundError):
        registry.get("NoSuchType")
    assert all(isinstance(p, Provider) for p in registry)


# --- S3 targets and client settings ------------------------------------------------------------


def test_s3_compatible_target() -> None:
    target = S3CompatibleProvider().target(
        spec(
            s3Compatible={
                "endpoint": "https://minio.example.com/",
                "bucket": "bk1",
                "region": "auto",
            }
        )
    )
    assert target.endpoint_url == "https://minio.example.com"
    assert target.region == "auto" and target.bucket == "bk1"
    assert not target.path_style
    assert target.connect_urls() == ["https://minio.example.com", "https://bk1.minio.example.com"]
    default = S3CompatibleProvider().target(spec())
    assert default.region == "us-east-1" and default.path_style  # an IP endpoint


def test_amazon_s3_target_is_derived_from_the_region() -> None:
    amazon = parse_spec(
        {
            "type": "AmazonS3",
            "amazonS3": {
                "bucket": "reports",
                "region": "eu-central-1",
                "serverSideEncryption": "aws:kms",
            },
            "credentials": {"secretRef": {"name": "creds"}},
        }
    )
    provider = AmazonS3Provider()
    target = provider.target(amazon)
    assert target.endpoint_url is None and target.region == "eu-central-1"
    assert not target.user_endpoint and provider.endpoints(amazon) == []
    assert dict(target.put_arguments) == {"ServerSideEncryption": "aws:kms"}


def test_oracle_target() -> None:
    oracle = parse_spec(
        {
            "type": "OracleCloudStorage",
            "oracleCloudStorage": {
                "bucket": "Reports_1",
                "namespace": "acme",
                "region": "us-ashburn-1",
            },
            "credentials": {"secretRef": {"name": "creds"}},
        }
    )
    target = OracleCloudStorageProvider().target(oracle)
    assert target.endpoint_url == "https://acme.compat.objectstorage.us-ashburn-1.oraclecloud.com"
    assert target.path_style and not target.user_endpoint


@pytest.mark.parametrize(
    ("endpoint", "force", "path"),
    [
        ("http://127.0.0.1:9000", False, True),
        ("http://localhost:9000", False, True),
        ("https://minio.example.com", False, False),
        ("https://minio.example.com", True, True),
        (None, False, False),
    ],
)
def test_path_style(endpoint: str | None, force: bool, path: bool) -> None:
    assert use_path_style(endpoint, force) is path


def test_client_config_fails_fast_and_skips_checksums() -> None:
    config = client_config(7.5, path_style=True)
    assert config["connect_timeout"] == config["read_timeout"] == 7.5
    assert config["retries"] == {"total_max_attempts": 1, "mode": "standard"}
    assert config["s3"] == {"addressing_style": "path"}
    assert config["request_checksum_calculation"] == "when_required"
    assert config["response_checksum_validation"] == "when_required"
    assert client_config(0, path_style=False)["connect_timeout"] > 0
    from botocore.config import Config

    assert Config(**config).retries == {"total_max_attempts": 1, "mode": "standard"}  # type: ignore[attr-defined]


def test_load_credentials() -> None:
    creds = S3CompatibleProvider().load_credentials(
        {"accessKeyId": " AKIA1\n", "secretAccessKey": "s3cr3t-value\n", "sessionToken": ""}
    )
    assert creds == S3Credentials("AKIA1", "s3cr3t-value", None)
    assert "s3cr3t" not in repr(creds) and "AKIA1" not in repr(creds)
    assert creds.values() == ("AKIA1", "s3cr3t-value")


def test_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # what an install without the extra looks like
    sdk = s3_module._Sdk()
    target = S3CompatibleProvider().target(spec())
    with pytest.raises(ProviderUnavailableError) as info:
        sdk.client(target, S3Credentials("a", "b"), 1.0)
    assert "pip install 'destination-operator[s3]'" in info.value.message


def test_missing_boto3_fails_the_write_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_module, "_sdk", s3_module._Sdk())
    monkeypatch.setitem(sys.modules, "boto3", None)
    outcome = verify(
        spec(),
        {"accessKeyId": b"AKIA1", "secretAccessKey": b"s3cr3t-value"},
        secret_uid=UID,
        object_key="k",
        allow_private=True,
        now=NOW,
    )
    assert outcome.reason == Reason.ProviderUnavailable
    assert "destination-operator[s3]" in outcome.message
    assert [(s.name, s.outcome) for s in outcome.steps] == [
        (StepName.Write, StepOutcome.Failed),
        (StepName.Delete, StepOutcome.Skipped),
    ]


def test_step_result_as_status() -> None:
    step = StepResult(StepName.Delete, StepOutcome.Failed, 12, "DeleteObject: AccessDenied")
    assert step.as_status() == {
        "name": "Delete",
        "outcome": "Failed",
        "durationMilliseconds": 12,
        "message": "DeleteObject: AccessDenied",
    }
