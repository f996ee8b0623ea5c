"""What the operator asks of the API server per Destination (docs/sizing.md), counted from
the API server's audit log, for many Destinations that share one Secret."""

from __future__ import annotations

import json
import time

import pytest
from dst import apply, s3_destination, s3_secret
from operator_fixtures import OPERATOR_NAMESPACE, OPERATOR_SA, OperatorProcess

from controlplane import audit_events
from destination_operator.settings import OperatorSettings
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster

OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"
SHARING = 100


def operator_requests(
    cluster: Cluster, namespace: str, resource: str, verb: str, subresource: str = ""
) -> int:
    count = 0
    for entry in audit_events(cluster.plane.audit_log):
        ref = entry.get("objectRef") or {}
        if (
            entry.get("user", {}).get("username") == OPERATOR_USER
            and entry.get("verb") == verb
            and entry.get("stage") == "ResponseComplete"
            and ref.get("namespace") == namespace
            and ref.get("resource") == resource
            and ref.get("subresource", "") == subresource
        ):
            count += 1
    return count


def verified(cluster: Cluster, namespace: str) -> int:
    items = json.loads(cluster.kubectl("get", "dst", "-n", namespace, "-o", "json").stdout)
    return sum(
        1
        for item in items["items"]
        for cond in (item.get("status") or {}).get("conditions") or []
        if cond["type"] == "Verified" and cond["status"] == "True"
    )


def test_new_destinations_sharing_a_secret_cost_two_patches_no_event_and_few_reads(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        *(s3_destination(f"d{i:03d}", s3, secret="s3", prefix="shared/") for i in range(SHARING)),
    )
    deadline = time.monotonic() + 120
    while (done := verified(cluster, namespace)) < SHARING:
        assert time.monotonic() < deadline, f"{done} of {SHARING} verified"
        time.sleep(0.5)
    time.sleep(2)  # the last events and patches reach the audit log
    patches = operator_requests(cluster, namespace, "destinations", "patch", "status")
    events = operator_requests(cluster, namespace, "events", "create")
    reads = operator_requests(cluster, namespace, "secrets", "get")
    print(f"{SHARING} new Destinations, one Secret: {patches} status patches, {events} events, "
          f"{reads} Secret reads")  # fmt: skip
    # Reconciling at first sight, then the result; a first verification posts no Event
    assert (patches, events) == (2 * SHARING, 0)
    # The Secret's data is kept once read; only reads that start before the first one has
    # landed repeat it, and at most `workers` passes run at once.
    assert 1 <= reads <= OperatorSettings().workers, reads
