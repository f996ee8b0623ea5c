"""When the operator probes, and when it must not: every trigger of API.md, end to end."""

from __future__ import annotations

import json
import time

import pytest
from dst import (
    apply,
    condition,
    events,
    get,
    probe_requests,
    s3_destination,
    s3_secret,
    secret,
    wait_for,
)
from operator_fixtures import OperatorProcess

from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster


def puts(s3: S3Server, prefix: str) -> int:
    return sum(1 for line in probe_requests(s3, prefix) if line.split()[1] == "PUT")


def wait_puts(s3: S3Server, prefix: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while puts(s3, prefix) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    assert puts(s3, prefix) >= count, (
        f"expected {count} probes under {prefix}, saw {puts(s3, prefix)}"
    )


def patch(cluster: Cluster, namespace: str, name: str, spec: dict[str, object]) -> None:
    cluster.kubectl(
        "patch", "-n", namespace, "dst", name, "--type=merge", "-p", json.dumps({"spec": spec})
    )


def test_spec_change_reprobes(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(
        cluster, namespace, s3_secret(s3), s3_destination("gen", s3, secret="s3", prefix="gen-a/")
    )
    wait_for(cluster, namespace, "gen", "Verified", "True")
    patch(cluster, namespace, "gen", {"pathPrefix": "gen-b/"})
    body = wait_for(cluster, namespace, "gen", "Verified", "True")
    assert body["metadata"]["generation"] == 2
    assert body["status"]["lastProbe"]["objectKey"].startswith("gen-b/")
    assert puts(s3, "gen-b/") == 1


def test_secret_change_reverifies(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    key_id = s3.users["admin"].access_key_id
    apply(
        cluster,
        namespace,
        secret("rot", {"accessKeyId": key_id, "secretAccessKey": "wrong"}),
        s3_destination("rot", s3, secret="rot"),
    )
    body = wait_for(cluster, namespace, "rot", "Verified", "False", reason="AuthenticationFailed")
    before = body["status"]["credentialsFingerprint"]
    apply(cluster, namespace, s3_secret(s3, "rot"))
    body = wait_for(cluster, namespace, "rot", "Verified", "True")
    assert body["status"]["credentialsFingerprint"] != before
    cluster.kubectl("delete", "-n", namespace, "secret", "rot")
    wait_for(cluster, namespace, "rot", "Verified", "False", reason="SecretNotFound")


def test_verify_requested_at_annotation_probes_once(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, s3_secret(s3), s3_destination("ask", s3, secret="s3"))
    wait_for(cluster, namespace, "ask", "Verified", "True")
    assert puts(s3, "ask/") == 1
    cluster.kubectl(
        "annotate", "-n", namespace, "dst", "ask", "destinations.io/verify-requested-at=first"
    )
    wait_puts(s3, "ask/", 2)
    deadline = time.monotonic() + 10
    while get(cluster, namespace, "ask")["status"].get("lastHandledVerifyRequest") != "first":
        assert time.monotonic() < deadline, "lastHandledVerifyRequest never recorded"
        time.sleep(0.2)
    time.sleep(2)
    assert puts(s3, "ask/") == 2  # handled once, not on every later event


def test_interval_reprobes(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    # No interval in the spec: the operator's default applies (2 s in these tests; the
    # CRD refuses anything between 0s and 1m, and stores no default of its own).
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        s3_destination("tick", s3, secret="s3", verification={"timeout": "5s"}),
    )
    wait_for(cluster, namespace, "tick", "Verified", "True")
    wait_puts(s3, "tick/", 3, timeout=20)


def test_disabled_and_archived_are_never_probed(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        s3_destination("off", s3, secret="s3", enabled=False),
        s3_destination("arc", s3, secret="s3", archived=True),
    )
    off = wait_for(cluster, namespace, "off", "Verified", "Unknown", reason="Disabled")
    arc = wait_for(cluster, namespace, "arc", "Archived", "True")
    assert condition(off, "Ready") == {}  # at rest: kstatus Current, kubectl wait still waits
    assert condition(arc, "Ready") == {}
    assert condition(arc, "Verified")["reason"] == "Archived"
    # a verify request and a Secret change are no reason to probe either
    cluster.kubectl(
        "annotate", "-n", namespace, "dst", "off", "arc", "destinations.io/verify-requested-at=x"
    )
    apply(
        cluster, namespace, secret("s3", {"accessKeyId": "rotated", "secretAccessKey": "rotated"})
    )
    time.sleep(3)
    assert probe_requests(s3, "off/") == []
    assert probe_requests(s3, "arc/") == []
    assert [e["reason"] for e in events(cluster, namespace, "arc")] == ["Archived"]


def test_enable_and_unarchive_reverify(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        s3_destination("en", s3, secret="s3", enabled=False),
        s3_destination("un", s3, secret="s3", archived=True),
    )
    wait_for(cluster, namespace, "en", "Verified", "Unknown", reason="Disabled")
    archived = wait_for(cluster, namespace, "un", "Archived", "True")
    archived_at = condition(archived, "Archived")["lastTransitionTime"]
    patch(cluster, namespace, "en", {"enabled": True})
    patch(cluster, namespace, "un", {"archived": False})
    wait_for(cluster, namespace, "en", "Ready", "True")
    body = wait_for(cluster, namespace, "un", "Ready", "True")
    assert condition(body, "Archived")["status"] == "False"
    assert condition(body, "Archived")["lastTransitionTime"] >= archived_at
    reasons = [e["reason"] for e in events(cluster, namespace, "un")]
    assert "Archived" in reasons and "Unarchived" in reasons


def test_secret_in_another_namespace_is_never_read(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    other = f"{namespace}-other"[:63]
    cluster.kubectl("create", "namespace", other)
    try:
        apply(cluster, other, s3_secret(s3, "elsewhere"))
        apply(cluster, namespace, s3_destination("cross", s3, secret="elsewhere"))
        wait_for(cluster, namespace, "cross", "Verified", "False", reason="SecretNotFound")
        assert probe_requests(s3, "cross/") == []
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false")


def test_deletion_never_hangs_when_storage_is_unreachable(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts into the backlog, never answers
    try:
        port = listener.getsockname()[1]
        apply(
            cluster,
            namespace,
            s3_secret(s3),
            s3_destination(
                "stuck",
                s3,
                secret="s3",
                endpoint=f"http://127.0.0.1:{port}",
                verification={"interval": "1h", "timeout": "5m"},
            ),
        )
        # probing (Reconciling at first sight), and no finalizer to hold the deletion
        body = wait_for(cluster, namespace, "stuck", "Reconciling", "True", timeout=20)
        assert not body["metadata"].get("finalizers")
        started = time.monotonic()
        cluster.kubectl("delete", "-n", namespace, "dst", "stuck", "--timeout=30s")
        assert time.monotonic() - started < 30
    finally:
        listener.close()


def test_status_is_kstatus_conformant(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, s3_secret(s3), s3_destination("ks", s3, secret="s3"))
    body = wait_for(cluster, namespace, "ks", "Ready", "True")
    kinds = {c["type"]: c for c in body["status"]["conditions"]}
    assert {"Verified", "Archived", "Ready"} <= set(kinds)
    for item in kinds.values():
        assert item["status"] in {"True", "False", "Unknown"}
        assert item["reason"] and item["lastTransitionTime"]
        assert item["observedGeneration"] == body["metadata"]["generation"]
    # kstatus: Current means no Reconciling=True and no Stalled=True
    assert kinds.get("Reconciling", {}).get("status", "False") == "False"
    assert kinds.get("Stalled", {}).get("status", "False") == "False"
    ready_since = kinds["Ready"]["lastTransitionTime"]
    cluster.kubectl(
        "annotate", "-n", namespace, "dst", "ks", "destinations.io/verify-requested-at=again"
    )
    wait_puts(s3, "ks/", 2)
    time.sleep(1)
    again = {c["type"]: c for c in get(cluster, namespace, "ks")["status"]["conditions"]}
    assert again["Ready"]["lastTransitionTime"] == ready_since  # no flip, no new time
