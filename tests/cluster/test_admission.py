"""The committed CRD in a real API server: samples, refusals, updates, kubectl's view.

Every case of invalid_cases.py is sent to the API server (server-side dry-run,
strict field validation as kubectl does it) and must be refused with its
message; the unit tests check the same table against the models.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from dst import GROUP, PLURAL, VERSION, create, destination, refusal
from invalid_cases import ACCEPTED_CREDENTIALS, ACCEPTED_INTERVALS, CASES, VALID, Case
from kubernetes import client

from destination_operator.api.status import (
    Condition,
    ConditionStatus,
    ConditionType,
    DestinationStatus,
    LastProbe,
    ProbeStep,
    Reason,
    StepOutcome,
)
from harness import Cluster

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted(
    (ROOT / "manifests" / "samples").glob("destinations.io_v1alpha1_destination_*.yaml")
)


def objects(cluster: Cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api_client())


def test_every_sample_is_accepted(cluster: Cluster, destination_crd: str, namespace: str) -> None:
    assert len(SAMPLES) == 7
    for sample in SAMPLES:
        cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", str(sample))
    names = cluster.kubectl("get", "dst", "-n", namespace, "-o", "name").stdout.split()
    assert len(names) == 7
    stored = objects(cluster).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    for item in stored["items"]:
        spec = item["spec"]
        assert spec["enabled"] is True and spec["archived"] is False  # defaults applied
        assert spec["verification"]["mode"] in ("WriteDelete", "Write")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_destination_is_refused(
    case: Case, cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    message = create(cluster, namespace, case.manifest(), dry_run=True)
    assert message is not None, f"{case.id}: the API server accepted it"
    assert case.expect in message, message[:2000]


def test_accepted_intervals_are_accepted(
    cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    for interval in ACCEPTED_INTERVALS:
        case = Case("valid", "AmazonS3", {"verification": {"interval": interval}}, "")
        assert create(cluster, namespace, case.manifest(), dry_run=True) is None, interval


def test_accepted_credentials_are_accepted(
    cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    for kind, credentials in ACCEPTED_CREDENTIALS:
        case = Case("valid", kind, {"credentials": credentials}, "")
        assert create(cluster, namespace, case.manifest(), dry_run=True) is None, credentials


def test_interval_and_timeout_are_not_defaulted(
    cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    """Left out, they stay out: the operator's settings (--timeout, default interval) apply."""
    assert (
        create(cluster, namespace, destination("nodefaults", VALID["AmazonS3"]), dry_run=False)
        is None
    )
    stored = objects(cluster).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "nodefaults"
    )
    assert stored["spec"]["verification"] == {"mode": "WriteDelete"}


def test_kubectl_apply_reports_the_rule_message(
    cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    bad = destination("http-webhook", VALID["Webhook"] | {"webhook": {"url": "http://h.example"}})
    done = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(bad), check=False
    )
    assert done.returncode != 0
    assert "spec.webhook.url must start with https://" in done.stderr
    unknown = destination("typo", VALID["Webhook"] | {"pathPrefx": "a/"})
    done = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(unknown), check=False
    )
    assert done.returncode != 0
    assert 'unknown field "spec.pathPrefx"' in done.stderr


LOCATION_CHANGES: list[tuple[str, dict[str, Any], str]] = [
    ("AmazonS3", {"amazonS3": {"bucket": "other-bucket"}}, "spec.amazonS3.bucket is immutable"),
    ("AmazonS3", {"amazonS3": {"region": "eu-west-1"}}, "spec.amazonS3.region is immutable"),
    (
        "S3Compatible",
        {"s3Compatible": {"endpoint": "https://other.example.com"}},
        "spec.s3Compatible.endpoint is immutable",
    ),
    ("S3Compatible", {"s3Compatible": {"region": "auto"}}, "spec.s3Compatible.region is immutable"),
    (
        "GoogleCloudStorage",
        {"googleCloudStorage": {"bucket": "other"}},
        "spec.googleCloudStorage.bucket is immutable",
    ),
    (
        "AzureBlobStorage",
        {"azureBlobStorage": {"storageAccountName": "other"}},
        "spec.azureBlobStorage.storageAccountName is immutable",
    ),
    (
        "AzureBlobStorage",
        {"azureBlobStorage": {"containerName": "other"}},
        "spec.azureBlobStorage.containerName is immutable",
    ),
    (
        "AzureBlobStorage",
        {"azureBlobStorage": {"endpoint": "https://acct.blob.core.chinacloudapi.cn"}},
        "spec.azureBlobStorage.endpoint is immutable",
    ),
    ("AlibabaOSS", {"alibabaOSS": {"bucket": "other"}}, "spec.alibabaOSS.bucket is immutable"),
    (
        "AlibabaOSS",
        {"alibabaOSS": {"region": "oss-cn-beijing"}},
        "spec.alibabaOSS.region is immutable",
    ),
    (
        "AlibabaOSS",
        {"alibabaOSS": {"endpoint": "https://oss-cn-hangzhou-internal.aliyuncs.com"}},
        "spec.alibabaOSS.endpoint is immutable",
    ),
    (
        "OracleCloudStorage",
        {"oracleCloudStorage": {"namespace": "otherns"}},
        "spec.oracleCloudStorage.namespace is immutable",
    ),
    (
        "OracleCloudStorage",
        {"oracleCloudStorage": {"bucket": "other"}},
        "spec.oracleCloudStorage.bucket is immutable",
    ),
    (
        "OracleCloudStorage",
        {"oracleCloudStorage": {"region": "us-phoenix-1"}},
        "spec.oracleCloudStorage.region is immutable",
    ),
    (
        "AmazonS3",
        {"type": "Webhook", "amazonS3": None, "webhook": {"url": "https://h.example.com"}},
        "spec.type is immutable",
    ),
]

ALLOWED_CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("AmazonS3", {"credentials": {"secretRef": {"name": "rotated-credentials"}}}),
    ("AmazonS3", {"enabled": False}),
    ("AmazonS3", {"archived": True}),
    ("AmazonS3", {"pathPrefix": "moved/%DATE%/"}),
    ("AmazonS3", {"displayName": "Renamed destination"}),
    ("AmazonS3", {"verification": {"interval": "5m", "timeout": "5s", "mode": "Write"}}),
    ("AmazonS3", {"amazonS3": {"serverSideEncryption": "aws:kms"}}),
    ("S3Compatible", {"s3Compatible": {"forcePathStyle": False}}),
    ("AzureBlobStorage", {"azureBlobStorage": {"product": "Databricks"}}),
    ("Webhook", {"webhook": {"url": "https://moved.example.com/hook"}}),
    ("Webhook", {"environment": "Staging"}),
]


def _patch(cluster: Cluster, namespace: str, name: str, patch: Any) -> str | None:
    api = objects(cluster)
    return refusal(
        lambda: api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch, field_validation="Strict"
        )
    )


def test_location_changes_are_refused_and_others_accepted(
    cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    for kind, spec in VALID.items():
        name = kind.lower()
        assert create(cluster, namespace, destination(name, spec), dry_run=False) is None
    for kind, change, expect in LOCATION_CHANGES:
        message = _patch(cluster, namespace, kind.lower(), {"spec": change})
        assert message is not None, (kind, change)
        assert expect in message, message
    # an optional location field may not be added either
    assert _patch(cluster, namespace, "s3compatible", {"spec": {"s3Compatible": {"region": "x"}}})
    for kind, change in ALLOWED_CHANGES:
        assert _patch(cluster, namespace, kind.lower(), {"spec": change}) is None, (kind, change)


def test_removing_an_optional_location_field_is_refused(
    cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    spec = VALID["S3Compatible"] | {
        "s3Compatible": {**VALID["S3Compatible"]["s3Compatible"], "region": "auto"}
    }
    assert create(cluster, namespace, destination("with-region", spec), dry_run=False) is None
    remove = '[{"op": "remove", "path": "/spec/s3Compatible/region"}]'
    done = cluster.kubectl(
        "patch", "dst", "with-region", "-n", namespace, "--type=json", "-p", remove, check=False
    )
    assert done.returncode != 0
    assert "spec.s3Compatible.region is immutable" in done.stderr


def full_status(target: str) -> dict[str, Any]:
    stamp = "2024-05-01T12:00:00Z"
    conditions = [
        Condition(
            type=ConditionType.Ready,
            status=ConditionStatus.TRUE,
            reason=Reason.Ready,
            message="verified",
            last_transition_time=stamp,
            observed_generation=1,
        ),
        Condition(
            type=ConditionType.Verified,
            status=ConditionStatus.TRUE,
            reason=Reason.ProbeSucceeded,
            message="wrote and deleted the probe object",
            last_transition_time=stamp,
            observed_generation=1,
        ),
        Condition(
            type=ConditionType.CredentialsExpiring,
            status=ConditionStatus.TRUE,
            reason=Reason.CredentialsExpireSoon,
            message="the SAS token in the Secret's sasToken expires at 2024-05-10T00:00:00Z, "
            "within 14 days",
            last_transition_time=stamp,
            observed_generation=1,
        ),
    ]
    status = DestinationStatus(
        observed_generation=1,
        conditions=conditions,
        target=target,
        last_verified_time=stamp,
        next_verification_time="2024-05-01T13:00:00Z",
        last_probe=LastProbe(
            time=stamp,
            duration_milliseconds=42,
            object_key="reports/.destination-operator-probe/x.txt",
            steps=[
                ProbeStep(name="Write", outcome=StepOutcome.Succeeded, duration_milliseconds=30),
                ProbeStep(name="Delete", outcome=StepOutcome.Succeeded, duration_milliseconds=12),
            ],
        ),
        credentials_fingerprint="sha256:0123456789abcdef",
        credentials_expiry="2024-05-10T00:00:00Z",
        last_handled_verify_request="2024-05-01T11:59:00Z",
        archived_time=None,
    )
    return status.model_dump(mode="json", exclude_none=True)


def test_status_schema_keeps_every_field(
    cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    assert (
        create(cluster, namespace, destination("status", VALID["AmazonS3"]), dry_run=False) is None
    )
    status = full_status("s3://example-bucket") | {"archivedTime": "2024-04-01T00:00:00Z"}
    api = objects(cluster)
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "status", {"status": status}
    )
    stored = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "status")
    assert stored["status"] == status
    assert (
        DestinationStatus.model_validate(stored["status"]).model_dump(
            mode="json", exclude_none=True
        )
        == status
    )


def _condition(kind: ConditionType, status: ConditionStatus, reason: Reason) -> dict[str, Any]:
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=reason.value,
        last_transition_time="2024-05-01T12:00:00Z",
        observed_generation=1,
    ).model_dump(mode="json", exclude_none=True)


def _table(out: str, names: list[str]) -> list[dict[str, str]]:
    """kubectl's table as rows of {column: cell}, cut at the header's offsets (a cell may
    be empty, and a header such as LAST VERIFIED holds a space)."""
    header, *lines = out.splitlines()
    starts = [header.index(name) for name in names]
    assert starts == sorted(starts) and header.split() == " ".join(names).split(), header
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [
        {name: line[a:b].strip() for name, (a, b) in zip(names, bounds, strict=True)}
        for line in lines
    ]


def test_kubectl_get_shows_the_columns(
    cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    due = "2099-01-01T00:00:00Z"  # the next verification is ahead: the cell is the timestamp
    expires = "2099-02-01T00:00:00Z"  # the credentials' readable expiry, shown as written
    verified = full_status("s3://example-bucket") | {
        "nextVerificationTime": due,
        "credentialsExpiry": expires,
    }
    failing = verified | {
        "conditions": [
            _condition(ConditionType.Ready, ConditionStatus.FALSE, Reason.AuthenticationFailed),
            _condition(ConditionType.Verified, ConditionStatus.FALSE, Reason.AuthenticationFailed),
        ]
    }
    disabled = {  # no Ready condition while disabled: READY is empty
        "observedGeneration": 1,
        "target": "https://hooks.example.com/ingest",
        "conditions": [
            _condition(ConditionType.Verified, ConditionStatus.UNKNOWN, Reason.Disabled)
        ],
    }
    for name, spec, status in (
        ("shown", VALID["AmazonS3"], verified),
        ("failing", VALID["AmazonS3"], failing),
        ("off", VALID["Webhook"] | {"enabled": False}, disabled),
    ):
        assert create(cluster, namespace, destination(name, spec), dry_run=False) is None
        objects(cluster).patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}
        )
    columns = ["NAME", "READY", "TYPE", "TARGET", "VERIFIED", "REASON", "ARCHIVED"]
    columns += ["LAST VERIFIED"]
    out = cluster.kubectl("get", "dst", "-n", namespace).stdout
    rows = {row["NAME"]: row for row in _table(out, [*columns, "AGE"])}
    assert rows["shown"] | {"LAST VERIFIED": "", "AGE": ""} == {
        "NAME": "shown",
        "READY": "True",
        "TYPE": "AmazonS3",
        "TARGET": "s3://example-bucket",
        "VERIFIED": "True",
        "REASON": "ProbeSucceeded",
        "ARCHIVED": "false",
        "LAST VERIFIED": "",
        "AGE": "",
    }
    assert rows["shown"]["LAST VERIFIED"].endswith(("d", "y"))  # 2024-05-01, long ago
    assert [rows["failing"][c] for c in ("READY", "VERIFIED", "REASON")] == [
        "False",
        "False",
        "AuthenticationFailed",
    ]
    assert [rows["off"][c] for c in ("READY", "VERIFIED", "REASON")] == ["", "Unknown", "Disabled"]
    # -o wide adds NEXT VERIFICATION and EXPIRY (the disabled one has neither)
    wide = cluster.kubectl("get", "dst", "-n", namespace, "-o", "wide").stdout
    rows = {r["NAME"]: r for r in _table(wide, [*columns, "NEXT VERIFICATION", "EXPIRY", "AGE"])}
    assert rows["shown"]["NEXT VERIFICATION"] == due  # a date column would say <invalid>
    assert rows["failing"]["NEXT VERIFICATION"] == due
    assert rows["off"]["NEXT VERIFICATION"] == ""
    assert [rows[name]["EXPIRY"] for name in ("shown", "failing", "off")] == [expires, expires, ""]
    # the short name and the category work too
    assert "shown" in cluster.kubectl("get", "destinations", "-n", namespace, "-o", "name").stdout
    assert "shown" in cluster.kubectl("get", "destinations.destinations.io", "-n", namespace).stdout


def test_field_selectors_filter(cluster: Cluster, destination_crd: str, namespace: str) -> None:
    specs = {
        "live": VALID["AmazonS3"],
        "archived": VALID["AmazonS3"] | {"archived": True},
        "disabled": VALID["Webhook"] | {"enabled": False},
    }
    for name, spec in specs.items():
        assert create(cluster, namespace, destination(name, spec), dry_run=False) is None

    def selected(selector: str) -> set[str]:
        out = cluster.kubectl(
            "get", "dst", "-n", namespace, "--field-selector", selector, "-o", "name"
        ).stdout
        return {line.rsplit("/", 1)[-1] for line in out.split()}

    assert selected("spec.archived=true") == {"archived"}
    assert selected("spec.archived=false") == {"live", "disabled"}
    assert selected("spec.enabled=false") == {"disabled"}
    assert selected("spec.type=AmazonS3") == {"live", "archived"}
    assert selected("spec.type=AmazonS3,spec.archived=false") == {"live"}


def test_kubectl_explain_teaches_the_api(cluster: Cluster, destination_crd: str) -> None:
    deadline = time.monotonic() + 60
    while True:  # the OpenAPI document catches up with a new CRD after a moment
        done = cluster.kubectl("explain", "destination.spec.s3Compatible", check=False)
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for fragment in (
        "accessKeyId and secretAccessKey",
        "forcePathStyle",
        "https:// is required unless spec.environment is Development",
        "bucket <string> -required-",
        "Immutable.",
    ):
        assert fragment in text, fragment
    spec = " ".join(cluster.kubectl("explain", "destination.spec").stdout.split())
    for fragment in ("discriminated union", "pathPrefix", "%COLLECTION_ID%", "verification"):
        assert fragment in spec
    secret = cluster.kubectl("explain", "destination.spec.credentials.secretRef.name").stdout
    assert "connectionString" in " ".join(secret.split())
    verification = " ".join(
        cluster.kubectl("explain", "destination.spec.verification").stdout.split()
    )
    for fragment in (
        "a Go duration of at least 1m (such as 1h, 30m or 1h30m), or 0s",
        "When unset, the operator's default applies (1h unless",
        "When unset, the operator's default applies (30s unless",
    ):
        assert fragment in verification, fragment
