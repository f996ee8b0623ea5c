"""What one namespace's authors can make the operator do, and what it costs the others.

The claims of docs/multi-tenancy.md about the operator itself, against the real API server,
the real operator process and real servers on loopback.
"""

from __future__ import annotations

import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from dst import Receiver, apply, condition, s3_destination, s3_secret, secret, wait_for
from operator_fixtures import OperatorProcess

from harness import Cluster
from loopback import SilentServer
from s3server import S3Server

pytestmark = pytest.mark.cluster

# The session's operator runs with the default probe concurrency and workers.
PROBE_CONCURRENCY = 8
WORKERS = 32


def _can_i(cluster: Cluster, namespace: str, user: str, *what: str) -> bool:
    done = cluster.kubectl("auth", "can-i", *what, "-n", namespace, f"--as={user}", check=False)
    return done.stdout.strip() == "yes"


def test_who_may_create_destinations_may_send_a_secret_of_the_namespace_to_their_url(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    """A Destination's author names any Secret of the namespace and the URL; the operator,
    which reads every Secret there, sends the webhook tokens to that URL. The author never
    needed to read the Secret."""
    token = "tenancy-TOKEN-5e0c1f2a-sent-to-the-authors-url"
    apply(cluster, namespace, secret("someone-elses", {"verificationToken": token}))
    author = cluster.service_account_kubeconfig(
        namespace,
        "author",
        rules=[
            {
                "apiGroups": ["destinations.io"],
                "resources": ["destinations"],
                "verbs": ["create", "get"],
            }
        ],
        out_dir=tmp_path,
    )
    user = f"system:serviceaccount:{namespace}:author"
    assert not _can_i(cluster, namespace, user, "get", "secrets/someone-elses")
    assert _can_i(cluster, namespace, user, "create", "destinations")

    Receiver.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = {
            "apiVersion": "destinations.io/v1alpha1",
            "kind": "Destination",
            "metadata": {"name": "hook"},
            "spec": {
                "type": "Webhook",
                "environment": "Development",
                "webhook": {"url": f"http://127.0.0.1:{server.server_port}/collect"},
                "credentials": {"secretRef": {"name": "someone-elses"}},
            },
        }
        cluster.kubectl(
            "create", "-n", namespace, "-f", "-", input=yaml.safe_dump(hook), kubeconfig=str(author)
        )
        wait_for(cluster, namespace, "hook", "Verified", "True", reason="ProbeSucceeded")
        assert [headers.get("verification-token") for headers in Receiver.seen] == [token]
    finally:
        server.shutdown()
        server.server_close()


def apply_hung(
    cluster: Cluster, namespace: str, s3: S3Server, silent_port: int, count: int, timeout: float
) -> list[dict[str, Any]]:
    """`count` Destinations whose probes hang on a server that never answers, each until
    `timeout`; returns once each has its first status (written just before its probe)."""
    hung = [
        s3_destination(
            f"hung-{number}",
            s3,
            secret="s3",
            endpoint=f"http://127.0.0.1:{silent_port}",
            verification={"interval": "1h", "timeout": f"{timeout:.0f}s"},
        )
        for number in range(count)
    ]
    apply(cluster, namespace, s3_secret(s3), *hung)
    for body in hung:
        wait_for(cluster, namespace, body["metadata"]["name"], "Reconciling", "True")
    return hung


@pytest.mark.parametrize(
    ("hung_count", "waits"),
    [(PROBE_CONCURRENCY, True), (PROBE_CONCURRENCY - 1, False), (3 * PROBE_CONCURRENCY, True)],
    ids=["every-slot-hung", "one-slot-free", "three-rounds-in-line"],
)
def test_one_namespaces_hung_probes_delay_another_namespaces_probe_once_they_hold_every_slot(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    operator: OperatorProcess,
    silent_server: SilentServer,
    hung_count: int,
    waits: bool,
) -> None:
    """One pool of probe slots for every namespace: as many hung probes as there are slots,
    from one namespace, make another namespace's probe wait until their timeout ends them;
    one fewer, and it does not wait. Freed slots go round the namespaces' lines in turn, so
    with three rounds of hung probes in line the other namespace waits one round, not three."""
    timeout = 12.0
    other = f"{namespace}-b"[:63]
    cluster.kubectl("create", "namespace", other)
    try:
        started = time.monotonic()
        hung = apply_hung(cluster, namespace, s3, silent_server.port, hung_count, timeout)
        apply(cluster, other, s3_secret(s3), s3_destination("waits", s3, secret="s3"))
        ready = wait_for(cluster, other, "waits", "Ready", "True", timeout=timeout + 30)
        waited = time.monotonic() - started
        assert condition(ready, "Verified")["reason"] == "ProbeSucceeded"
        if waits:
            assert waited >= timeout - 0.5, f"verified after {waited:.1f}s, before the hung ones"
            assert waited < 2 * timeout - 2, f"verified after {waited:.1f}s: more than one round"
        else:
            assert waited < timeout - 2, f"verified after {waited:.1f}s, with a slot free"
        for body in hung:  # and they did hang until their timeout
            wait_for(
                cluster,
                namespace,
                body["metadata"]["name"],
                "Verified",
                "False",
                reason="Timeout",
                timeout=timeout + 10,
            )
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false")


def test_status_writes_never_wait_for_a_probe_slot(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    operator: OperatorProcess,
    silent_server: SilentServer,
) -> None:
    """A Destination waiting for a probe slot holds no worker. With more hung or waiting
    probes than workers, a disabled Destination of another namespace, which needs one status
    write and no probe, still gets it at once, long before the first probe ends."""
    timeout = 30.0  # long enough that no hung probe ends during the test
    other = f"{namespace}-b"[:63]
    cluster.kubectl("create", "namespace", other)
    try:
        started = time.monotonic()
        apply_hung(cluster, namespace, s3, silent_server.port, WORKERS + PROBE_CONCURRENCY, timeout)
        asked = time.monotonic()
        apply(cluster, other, s3_destination("off", s3, secret="s3", enabled=False))
        wait_for(cluster, other, "off", "Verified", "Unknown", reason="Disabled", timeout=40)
        written = time.monotonic()
        assert written - asked < 3, f"written {written - asked:.1f}s after it was applied"
        assert written - started < timeout - 1, "the hung probes had ended: nothing was proven"
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false")
