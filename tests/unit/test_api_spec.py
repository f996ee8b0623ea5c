"""The spec models: parsing the Kubernetes JSON, defaults, helpers, errors, the update rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from destination_operator.api import spec as api
from destination_operator.api.backends.oss import OSSRegion
from destination_operator.api.backends.s3 import AmazonS3
from destination_operator.api.spec import (
    DestinationSpec,
    DestinationType,
    Environment,
    SpecError,
    VerificationMode,
    parse_spec,
    spec_problems,
    validate_update,
)
from destination_operator.api.status import Reason

SECRET = {"secretRef": {"name": "credentials"}}


def s3(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "type": "AmazonS3",
        "amazonS3": {"bucket": "example-bucket", "region": "us-east-1"},
        "credentials": SECRET,
    }
    raw.update(changes)
    return raw


VALID: dict[str, dict[str, Any]] = {
    "AmazonS3": s3(),
    "S3Compatible": {
        "type": "S3Compatible",
        "s3Compatible": {"endpoint": "https://minio.example.com:9000/", "bucket": "b-1"},
        "credentials": SECRET,
    },
    "GoogleCloudStorage": {
        "type": "GoogleCloudStorage",
        "googleCloudStorage": {"bucket": "my_bucket.example.com"},
        "credentials": SECRET,
    },
    "AzureBlobStorage": {
        "type": "AzureBlobStorage",
        "azureBlobStorage": {"storageAccountName": "acct1", "containerName": "c-1"},
        "credentials": SECRET,
    },
    "AlibabaOSS": {
        "type": "AlibabaOSS",
        "alibabaOSS": {"bucket": "b-2", "region": "oss-me-east-1"},
        "credentials": SECRET,
    },
    "OracleCloudStorage": {
        "type": "OracleCloudStorage",
        "oracleCloudStorage": {"bucket": "B.2_x", "namespace": "ns1", "region": "eu-frankfurt-1"},
        "credentials": SECRET,
    },
    "Webhook": {
        "type": "Webhook",
        "webhook": {"url": "https://hooks.example.com/in?x=1"},
        "credentials": SECRET,
    },
}

TARGETS = {
    "AmazonS3": "s3://example-bucket",
    "S3Compatible": "https://minio.example.com:9000/b-1",
    "GoogleCloudStorage": "gs://my_bucket.example.com",
    "AzureBlobStorage": "https://acct1.blob.core.windows.net/c-1",
    "AlibabaOSS": "oss://b-2",
    "OracleCloudStorage": "oci://ns1/B.2_x",
    "Webhook": "https://hooks.example.com/in?x=1",
}


def first_problem(raw: Any) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    return caught.value


@pytest.mark.parametrize("kind", list(VALID))
def test_every_type_parses_with_target_and_member(kind: str) -> None:
    spec = parse_spec(VALID[kind])
    assert spec.type == DestinationType(kind)
    assert spec.member is getattr(spec, api.MEMBER_FIELDS[spec.type][0])
    assert spec.member.location() == TARGETS[kind]  # the member block says where data goes
    # model_validate takes the same Kubernetes JSON
    assert DestinationSpec.model_validate(VALID[kind]) == spec


def test_defaults_match_api_md() -> None:
    spec = parse_spec(s3())
    assert spec.enabled is True
    assert spec.archived is False
    assert spec.environment == Environment.Production
    # interval and timeout have no default in the CRD: unset, the operator's settings apply
    assert spec.verification.interval is None
    assert spec.verification.timeout is None
    assert spec.verification.mode == VerificationMode.WriteDelete
    assert spec.verification.interval_seconds is None
    assert spec.verification.timeout_seconds is None
    assert spec.path_prefix is None and spec.display_name is None
    assert spec.secret_name == "credentials"


def test_dump_writes_camel_case_aliases() -> None:
    spec = parse_spec(VALID["AlibabaOSS"] | {"pathPrefix": "a/"})
    dumped = spec.model_dump(exclude_none=True, mode="json")
    assert dumped["alibabaOSS"] == {"bucket": "b-2", "region": "oss-me-east-1"}
    assert dumped["pathPrefix"] == "a/"
    assert dumped["credentials"] == {"secretRef": {"name": "credentials"}}
    assert parse_spec(dumped) == spec


def test_azure_target_uses_the_endpoint() -> None:
    raw = copy.deepcopy(VALID["AzureBlobStorage"])
    raw["environment"] = "Development"
    raw["azureBlobStorage"]["endpoint"] = "http://127.0.0.1:10000/devstoreaccount1/"
    assert parse_spec(raw).member.location() == "http://127.0.0.1:10000/devstoreaccount1/c-1"


def test_interval_zero_means_never() -> None:
    spec = parse_spec(s3(verification={"interval": "0s", "timeout": "1m30s", "mode": "Write"}))
    assert spec.verification.interval_seconds == 0.0
    assert spec.verification.timeout_seconds == 90.0
    assert spec.verification.mode == VerificationMode.Write


@pytest.mark.parametrize(
    ("interval", "seconds"),
    [
        ("0s", 0.0),
        ("0", 0.0),
        ("0h0m", 0.0),
        ("0.0000000001s", 0.0),  # Go truncates it to 0ns: never periodically
        ("1m", 60.0),
        ("60s", 60.0),
        ("90s", 90.0),
        ("60000ms", 60.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2562047h47m16.854775807s", 9223372036.854775807),
    ],
)
def test_interval_is_zero_or_at_least_a_minute(interval: str, seconds: float) -> None:
    spec = parse_spec(s3(verification={"interval": interval}))
    assert spec.verification.interval_seconds == seconds
    assert spec.verification.timeout_seconds is None


@pytest.mark.parametrize(
    "interval",
    ["1ns", "1us", "500ms", "1s", "59s", "59.999999999s", "0.99m", "59999999999ns", "-1m", "1d"],
)
def test_interval_below_a_minute_is_refused(interval: str) -> None:
    err = first_problem(s3(verification={"interval": interval}))
    assert err.field == "spec.verification.interval"
    assert err.message == (
        "spec.verification.interval must be 0s (never periodically) or a Go duration of at "
        "least 1m, such as 1h, 30m or 1h30m: numbers with units h, m, s, ms, us or ns, no sign"
    )


def test_timeout_alone_leaves_the_interval_unset() -> None:
    spec = parse_spec(s3(verification={"timeout": "5s"}))
    assert spec.verification.timeout_seconds == 5.0
    assert spec.verification.interval_seconds is None
    assert spec.verification.mode == VerificationMode.WriteDelete


def test_null_fields_are_as_if_absent() -> None:
    """The API server prunes nulls and then defaults; so do the models."""
    spec = parse_spec(s3(enabled=None, verification=None, displayName=None, webhook=None))
    assert spec.enabled is True
    assert spec.verification.interval is None
    assert spec.verification.mode == VerificationMode.WriteDelete
    spec = parse_spec(s3(verification={"interval": None, "timeout": None}))
    assert spec.verification.interval_seconds is None
    assert spec.verification.timeout_seconds is None
    err = first_problem(s3(amazonS3=None))
    assert err.field == "spec.amazonS3"
    assert "required when spec.type is AmazonS3" in err.message


def test_snake_case_keys_are_unknown_fields_on_the_wire() -> None:
    raw = s3()
    raw["path_prefix"] = "a/"
    err = first_problem(raw)
    assert err.field == "spec.path_prefix"
    assert err.message == 'unknown field "spec.path_prefix"'


def test_python_construction_by_attribute_name() -> None:
    member = AmazonS3(bucket="example-bucket", region="eu-west-1")
    assert member.server_side_encryption is None


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        (None, "spec", "Required value"),
        ([], "spec", "must be of type object"),
        ("AmazonS3", "spec", "must be of type object"),
        ({}, "spec.type", "Required value"),
        (s3(type=7), "spec.type", "supported values"),
        (s3(enabled="true"), "spec.enabled", "must be of type boolean"),
        (s3(enabled=1), "spec.enabled", "must be of type boolean"),
        (s3(amazonS3=[]), "spec.amazonS3", "must be of type object"),
        (s3(amazonS3={"bucket": 1, "region": "us-east-1"}), "spec.amazonS3.bucket", "string"),
        (s3(credentials={"secretRef": "x"}), "spec.credentials.secretRef", "object"),
        (s3(verification={"interval": 5}), "spec.verification.interval", "string"),
        (s3(displayName="x" * 10_000_000), "spec.displayName", "Too long"),
        (s3(unknown={"deep": [1, 2, 3]}), "spec.unknown", "unknown field"),
        (s3(type="Webhook"), "spec.amazonS3", "must not be set unless spec.type is AmazonS3"),
    ],
)
def test_bad_input_gets_a_field_and_a_message(raw: Any, field: str, fragment: str) -> None:
    err = first_problem(raw)
    assert err.field == field
    assert fragment in err.message
    assert str(err) == f"{err.field}: {err.message}"
    assert err.reason == Reason.InvalidSpec


def test_messages_never_echo_the_value() -> None:
    marker = "VALUE-THAT-MUST-NOT-BE-ECHOED"
    for raw in (
        s3(displayName=marker * 10),
        s3(amazonS3={"bucket": marker, "region": "us-east-1"}),
        s3(amazonS3={"bucket": "example-bucket", "region": marker}),
        s3(environment=marker),
        s3(pathPrefix="/" + marker),
        s3(enabled=marker),
        s3(credentials={"secretRef": {"name": marker}}),
        s3(**{marker.lower(): 1}) | {"type": marker},
    ):
        for problem in spec_problems(raw):
            assert marker not in problem.message


def test_unicode_values_do_not_crash() -> None:
    spec = parse_spec(s3(displayName="Données 🚀 пример"))
    assert spec.display_name == "Données 🚀 пример"
    assert spec_problems(s3(amazonS3={"bucket": "бакет", "region": "us-east-1"}))
    assert spec_problems(s3(pathPrefix="données/"))
    # lone surrogates cannot arrive as JSON; the models refuse them without crashing
    assert spec_problems(s3(displayName="\ud800" * 3))[0].field == "spec.displayName"


def test_length_counts_characters_not_bytes() -> None:
    assert spec_problems(s3(displayName="🚀" * 63)) == []
    assert spec_problems(s3(displayName="🚀" * 64))


def test_all_problems_are_reported() -> None:
    raw = s3(displayName="ab", enabled="no", bogus=1)
    fields = [p.field for p in spec_problems(raw)]
    assert fields == ["spec.displayName", "spec.enabled", "spec.bogus"]
    # every failing CEL-equivalent rule of one node, as the API server lists them
    raw = s3(amazonS3={"bucket": "10.0.0.1", "region": "us-east-1"}, webhook={"url": "https://x"})
    messages = [p.message for p in spec_problems(raw)]
    assert any("IP address" in m for m in messages)
    raw = s3(webhook={"url": "https://x"}, googleCloudStorage={"bucket": "abc"})
    assert [p.field for p in spec_problems(raw)] == ["spec.googleCloudStorage", "spec.webhook"]


@pytest.mark.parametrize(
    ("environment", "url", "ok"),
    [
        ("Production", "https://h.example.com/x", True),
        ("Production", "http://h.example.com/x", False),
        ("Staging", "http://h.example.com/x", False),
        ("Development", "http://127.0.0.1:8080/x", True),
        ("Development", "https://127.0.0.1:8080/x", True),
    ],
)
def test_https_rule(environment: str, url: str, ok: bool) -> None:
    raw = {**VALID["Webhook"], "environment": environment, "webhook": {"url": url}}
    assert (spec_problems(raw) == []) is ok


@pytest.mark.parametrize(
    ("bucket", "ok"),
    [
        ("abc", True),
        ("a.b-c", True),
        ("ab", False),
        ("a" * 63, True),
        ("a" * 64, False),
        ("-abc", False),
        ("abc.", False),
        ("a..b", False),
        ("1.2.3.4", False),
        ("1.2.3.4a", True),
        ("Abc", False),
        ("a_b", False),
        ("xn--abc", False),
        ("sthree-abc", False),
        ("amzn-s3-demo-abc", False),
        ("abc-s3alias", False),
        ("abc--ol-s3", False),
        ("abc.mrap", False),
        ("abc--x-s3", False),
        ("abc--table-s3", False),
    ],
)
def test_amazon_s3_bucket_names(bucket: str, ok: bool) -> None:
    raw = s3(amazonS3={"bucket": bucket, "region": "us-east-1"})
    assert (spec_problems(raw) == []) is ok


@pytest.mark.parametrize(
    ("bucket", "ok"),
    [
        ("abc", True),
        ("a_b-c.d", True),
        ("a" * 63, True),
        ("a" * 64, False),
        (".".join(["a" * 63, "b" * 63, "c" * 63]), True),
        (".".join(["a" * 64, "b"]), False),
        ("a." * 111 + "a", False),  # 223 characters
        ("goog-abc", False),
        ("my-google-data", False),
        ("my-g00gle-data", False),
        ("192.168.0.1", False),
        ("_abc", False),
        ("ABC", False),
    ],
)
def test_gcs_bucket_names(bucket: str, ok: bool) -> None:
    raw = {**VALID["GoogleCloudStorage"], "googleCloudStorage": {"bucket": bucket}}
    assert (spec_problems(raw) == []) is ok


@pytest.mark.parametrize(
    ("account", "container", "ok"),
    [
        ("abc", "abc", True),
        ("a" * 24, "a-b-c", True),
        ("a" * 25, "abc", False),
        ("ab", "abc", False),
        ("Abc", "abc", False),
        ("a-b", "abc", False),
        ("abc", "a--b", False),
        ("abc", "-ab", False),
        ("abc", "ab-", False),
        ("abc", "a" * 64, False),
        ("abc", "ABC", False),
    ],
)
def test_azure_names(account: str, container: str, ok: bool) -> None:
    raw = {
        **VALID["AzureBlobStorage"],
        "azureBlobStorage": {"storageAccountName": account, "containerName": container},
    }
    assert (spec_problems(raw) == []) is ok


def test_all_23_oss_regions() -> None:
    assert len(OSSRegion) == 23
    for region in OSSRegion:
        raw = {**VALID["AlibabaOSS"], "alibabaOSS": {"bucket": "abc", "region": region.value}}
        assert spec_problems(raw) == []
    raw = {**VALID["AlibabaOSS"], "alibabaOSS": {"bucket": "abc", "region": "oss-cn-nowhere"}}
    assert "oss-cn-hangzhou" in first_problem(raw).message


@pytest.mark.parametrize(
    ("bucket", "ok"),
    [("a", True), ("A.b_c-D", True), ("a" * 256, True), ("a" * 257, False), ("a/b", False)],
)
def test_oci_bucket_names(bucket: str, ok: bool) -> None:
    member = {"bucket": bucket, "namespace": "ns", "region": "us-ashburn-1"}
    raw = {**VALID["OracleCloudStorage"], "oracleCloudStorage": member}
    assert (spec_problems(raw) == []) is ok


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://h", True),
        ("https://h.example.com:8443/a/b?c=d&e=%20", True),
        ("https://10.0.0.1/", True),
        ("https://h.example.com?x=1", True),
        ("https://user:pw@h.example.com/", False),
        ("https://h.example.com/a b", False),
        ("https://", False),
        ("HTTPS://h.example.com", False),
        ("ftp://h.example.com", False),
        ("https://h.example.com/\n", False),
        ("https://h.example.com\n", False),
        ("https://-h.example.com", False),
        ("https://h_x.example.com", False),
        ("https://[::1]/", False),
        ("https://h.example.com/ü", False),
    ],
)
def test_webhook_urls(url: str, ok: bool) -> None:
    raw = {**VALID["Webhook"], "webhook": {"url": url}}
    assert (spec_problems(raw) == []) is ok


@pytest.mark.parametrize(
    ("endpoint", "ok"),
    [
        ("https://minio.example.com", True),
        ("https://minio.example.com:9000/", True),
        ("https://minio.example.com/base/path", True),
        ("https://minio.example.com/?x=1", False),
        ("https://minio.example.com/#x", False),
    ],
)
def test_endpoints(endpoint: str, ok: bool) -> None:
    raw = copy.deepcopy(VALID["S3Compatible"])
    raw["s3Compatible"]["endpoint"] = endpoint
    assert (spec_problems(raw) == []) is ok


# --- updates -------------------------------------------------------------------


def updated(kind: str, path: str, value: Any) -> tuple[DestinationSpec, DestinationSpec]:
    old = copy.deepcopy(VALID[kind])
    new = copy.deepcopy(old)
    node = new
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return parse_spec(old), parse_spec(new)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("AmazonS3", "amazonS3.bucket", "other-bucket"),
        ("AmazonS3", "amazonS3.region", "eu-west-1"),
        ("S3Compatible", "s3Compatible.endpoint", "https://other.example.com"),
        ("S3Compatible", "s3Compatible.bucket", "other"),
        ("S3Compatible", "s3Compatible.region", "auto"),
        ("GoogleCloudStorage", "googleCloudStorage.bucket", "other"),
        ("AzureBlobStorage", "azureBlobStorage.storageAccountName", "other"),
        ("AzureBlobStorage", "azureBlobStorage.containerName", "other"),
        ("AzureBlobStorage", "azureBlobStorage.endpoint", "https://x.example.com"),
        ("AlibabaOSS", "alibabaOSS.bucket", "other"),
        ("AlibabaOSS", "alibabaOSS.region", "oss-cn-beijing"),
        ("AlibabaOSS", "alibabaOSS.endpoint", "https://x.example.com"),
        ("OracleCloudStorage", "oracleCloudStorage.bucket", "other"),
        ("OracleCloudStorage", "oracleCloudStorage.namespace", "other"),
        ("OracleCloudStorage", "oracleCloudStorage.region", "us-phoenix-1"),
    ],
)
def test_location_fields_are_immutable(kind: str, path: str, value: Any) -> None:
    old, new = updated(kind, path, value)
    with pytest.raises(SpecError) as caught:
        validate_update(old, new)
    assert caught.value.field == f"spec.{path}"
    assert "is immutable" in caught.value.message


def test_removing_an_optional_location_field_is_refused() -> None:
    _, old = updated("S3Compatible", "s3Compatible.region", "auto")
    new = parse_spec(VALID["S3Compatible"])
    with pytest.raises(SpecError, match="region is immutable"):
        validate_update(old, new)


def test_type_is_immutable() -> None:
    old = parse_spec(VALID["AmazonS3"])
    new = parse_spec(VALID["Webhook"])
    with pytest.raises(SpecError) as caught:
        validate_update(old, new)
    assert caught.value.field == "spec.type"


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Webhook", "webhook.url", "https://moved.example.com/in"),
        ("AmazonS3", "credentials", {"secretRef": {"name": "rotated"}}),
        ("AmazonS3", "enabled", False),
        ("AmazonS3", "archived", True),
        ("AmazonS3", "pathPrefix", "new/%DATE%/"),
        ("AmazonS3", "displayName", "Renamed"),
        ("AmazonS3", "verification", {"interval": "5m", "timeout": "5s", "mode": "Write"}),
        ("AmazonS3", "amazonS3.serverSideEncryption", "aws:kms"),
        ("S3Compatible", "s3Compatible.forcePathStyle", True),
        ("AzureBlobStorage", "azureBlobStorage.product", "Databricks"),
        ("AmazonS3", "environment", "Staging"),
    ],
)
def test_everything_else_may_change(kind: str, path: str, value: Any) -> None:
    old, new = updated(kind, path, value)
    validate_update(old, new)


def test_spec_model_is_strict_about_construction() -> None:
    with pytest.raises(ValidationError):
        DestinationSpec.model_validate({"type": "AmazonS3"})
