"""Many Destinations that exist before the operator starts; uninstalling; uid preconditions."""

from __future__ import annotations

import json
import time

import pytest
from dst import apply, get, s3_destination, s3_secret, wait_for
from operator_fixtures import OperatorProcess

from destination_operator.kube.client import api_client
from destination_operator.kube.status import patch_status
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster

MANY = 200


def verified_count(cluster: Cluster, namespace: str) -> int:
    out = cluster.kubectl("get", "dst", "-n", namespace, "-o", "json").stdout
    count = 0
    for item in json.loads(out)["items"]:
        for cond in (item.get("status") or {}).get("conditions") or []:
            if cond["type"] == "Verified" and cond["status"] == "True":
                count += 1
    return count


def test_an_operator_started_after_many_destinations_verifies_them_all(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    operator.stop()
    try:
        objects = [s3_secret(s3)] + [
            s3_destination(f"d{i:03d}", s3, secret="s3", prefix="many/") for i in range(MANY)
        ]
        apply(cluster, namespace, *objects)
    finally:
        operator.start()
    started = time.monotonic()
    deadline = started + 120
    while (done := verified_count(cluster, namespace)) < MANY:
        assert time.monotonic() < deadline, f"{done} of {MANY} verified after 120 s"
        time.sleep(1)
    # each object probed once: one PUT per Destination under the shared prefix
    puts = [line for line in s3.requests() if "/many/" in line and line.split()[1] == "PUT"]
    assert len(puts) == MANY, len(puts)


def test_namespaces_with_destinations_delete_without_the_operator(
    cluster: Cluster, s3: S3Server, operator: OperatorProcess
) -> None:
    core_ns = "uninstalled"
    cluster.kubectl("create", "namespace", core_ns)
    apply(cluster, core_ns, s3_secret(s3), s3_destination("left", s3, secret="s3"))
    wait_for(cluster, core_ns, "left", "Ready", "True")
    operator.stop()  # as after `helm uninstall`
    try:
        cluster.kubectl("delete", "namespace", core_ns, "--wait=false")
        cluster.wait_namespace_gone(core_ns, timeout=60)
    finally:
        operator.start()


def test_a_status_patch_for_another_uid_is_refused(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    operator: OperatorProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    apply(cluster, namespace, s3_secret(s3), s3_destination("same", s3, secret="s3"))
    body = wait_for(cluster, namespace, "same", "Ready", "True")
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig)
    api_client.cache_clear()
    try:
        wrong = "00000000-0000-0000-0000-000000000000"
        assert patch_status(namespace, "same", wrong, {"conditions": []}) is None
        assert get(cluster, namespace, "same")["status"] == body["status"]
        # the same patch with the object's own uid lands
        status = dict(body["status"], target="s3://elsewhere")
        stored = patch_status(namespace, "same", body["metadata"]["uid"], status)
        assert stored is not None and stored["status"]["target"] == "s3://elsewhere"
    finally:
        api_client.cache_clear()
