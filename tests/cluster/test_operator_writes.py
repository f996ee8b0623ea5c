"""API writes: one status patch per verification, nothing at all when nothing changes.

Counted from the API server's audit log, which records every write (see
hack/controlplane.py's audit policy).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from dst import apply, probe_requests, s3_destination, s3_secret, wait_for
from operator_fixtures import OPERATOR_NAMESPACE, OPERATOR_SA, OperatorProcess

from controlplane import audit_events
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster

OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"
WRITES = {"create", "update", "patch", "delete"}


def operator_writes(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    found = []
    for entry in audit_events(cluster.plane.audit_log):
        ref = entry.get("objectRef") or {}
        if (
            entry.get("user", {}).get("username") == OPERATOR_USER
            and entry.get("verb") in WRITES
            and ref.get("namespace") == namespace
            and ref.get("resource") == "destinations"
            and ref.get("name") == name
        ):
            found.append(entry)
    return found


def test_one_status_patch_per_verification_and_none_at_rest(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        s3_destination("quiet", s3, secret="s3"),
    )
    body = wait_for(cluster, namespace, "quiet", "Verified", "True")
    assert not body["metadata"].get("finalizers")
    time.sleep(2)
    first = operator_writes(cluster, namespace, "quiet")
    kinds = sorted((e["verb"], e["objectRef"].get("subresource", "")) for e in first)
    # Reconciling at first sight, then the result; no finalizer
    assert kinds == [("patch", "status"), ("patch", "status")], kinds

    cluster.kubectl(
        "annotate", "-n", namespace, "dst", "quiet", "destinations.io/verify-requested-at=1"
    )
    deadline = time.monotonic() + 20
    while len(operator_writes(cluster, namespace, "quiet")) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)
    second = operator_writes(cluster, namespace, "quiet")[len(first) :]
    assert [(e["verb"], e["objectRef"].get("subresource")) for e in second] == [("patch", "status")]

    # steady state: events keep arriving (our own patches), nothing is written
    settled = len(operator_writes(cluster, namespace, "quiet"))
    time.sleep(5)
    assert len(operator_writes(cluster, namespace, "quiet")) == settled


def test_a_restart_neither_probes_nor_writes_verified_destinations(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        s3_destination("calm", s3, secret="s3"),
    )
    wait_for(cluster, namespace, "calm", "Verified", "True")
    time.sleep(1)
    writes = len(operator_writes(cluster, namespace, "calm"))
    probes = len(probe_requests(s3, "calm/"))
    operator.stop()
    operator.start()
    time.sleep(6)  # long enough for the new process to list everything and settle
    assert operator.alive()
    assert len(probe_requests(s3, "calm/")) == probes
    assert len(operator_writes(cluster, namespace, "calm")) == writes
    # and it still reacts: the restarted operator owns the loop
    cluster.kubectl(
        "annotate", "-n", namespace, "dst", "calm", "destinations.io/verify-requested-at=r"
    )
    deadline = time.monotonic() + 20
    while len(probe_requests(s3, "calm/")) == probes:
        assert time.monotonic() < deadline, "the restarted operator never probed"
        time.sleep(0.2)


def test_a_namespace_being_deleted_gets_no_secret_not_found_writes(
    cluster: Cluster, s3: S3Server, operator: OperatorProcess
) -> None:
    namespace = f"goodbye-{time.monotonic_ns() % 100000}"
    cluster.kubectl("create", "namespace", namespace)
    count = 10
    # A finalizer of the test's own holds the Destinations while the Secret goes first,
    # the order a namespace deletion may take.
    held = [
        s3_destination(f"d{i}", s3, secret="s3") | {"metadata": {"name": f"d{i}"}}
        for i in range(count)
    ]
    for body in held:
        body["metadata"]["finalizers"] = ["tests.destinations.io/hold"]
    apply(cluster, namespace, s3_secret(s3), *held)
    for i in range(count):
        wait_for(cluster, namespace, f"d{i}", "Ready", "True")
    before = sum(len(operator_writes(cluster, namespace, f"d{i}")) for i in range(count))
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    deadline = time.monotonic() + 30
    while cluster.kubectl("get", "secret", "s3", "-n", namespace, check=False).returncode == 0:
        assert time.monotonic() < deadline, "the namespace controller kept the Secret"
        time.sleep(0.2)
    time.sleep(5)  # the operator has seen the Secret go
    after = sum(len(operator_writes(cluster, namespace, f"d{i}")) for i in range(count))
    try:
        assert after == before, f"{after - before} writes to Destinations being deleted"
        assert (
            "SecretNotFound"
            not in cluster.kubectl("get", "dst", "-n", namespace, "-o", "yaml").stdout
        )
    finally:
        for i in range(count):
            cluster.kubectl(
                "patch",
                "dst",
                f"d{i}",
                "-n",
                namespace,
                "--type=merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
                check=False,
            )
        cluster.wait_namespace_gone(namespace, timeout=60)
