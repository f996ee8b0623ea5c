"""The node runs pods of local images, and its pods reach the API server and nothing outside.

What the install tests build on: a pod of an image imported from an OCI
archive becomes Running and Ready on node `localhost`; a pod with in-cluster
config reaches the API server through the `kubernetes` Service and is who its
ServiceAccount says; a pod reaches a loopback server the test exposes; and a
pod's connection to an address outside the machine is dropped by the node's
guard rules (their packet counters show it), so a test can never talk to the
outside world by mistake.
"""

from __future__ import annotations

import http.server
import io
import ipaddress
import json
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import Cluster
from node import Node

pytestmark = pytest.mark.install

# TEST-NET-3 (RFC 5737): routed out of the machine like any public address, yet
# nobody's, so even a broken guard would reach no one.
OUTSIDE = "203.0.113.10"
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def create_pod(cluster: Cluster, namespace: str, name: str, image: str, args: list[str]) -> None:
    """A pod of one container of a local image (never pulled), as restricted as PSS asks."""
    wait_for(
        lambda: (
            cluster.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0
        ),
        what=f"the default ServiceAccount of {namespace}",
    )
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": args,
                    "securityContext": RESTRICTED,
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))


def wait_for(check: Callable[[], bool], *, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not there after {timeout}s")
        time.sleep(0.2)


def finished(cluster: Cluster, namespace: str, name: str) -> tuple[str, str]:
    """Wait until the pod has run to its end; its phase and its log."""
    phase = ""

    def done() -> bool:
        nonlocal phase
        phase = cluster.kubectl(
            "get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}"
        ).stdout
        return phase in ("Succeeded", "Failed")

    wait_for(done, what=f"pod {name} finished")
    # The log travels API server -> kubelet (127.0.0.1) -> containerd.
    return phase, cluster.kubectl("logs", name, "-n", namespace).stdout.strip()


def test_pod_of_local_image_becomes_ready(
    node: Node, cluster: Cluster, namespace: str, record_property: Any
) -> None:
    for step, seconds in node.timings.items():
        record_property(f"node {step} (s)", seconds)
    started = time.monotonic()
    create_pod(cluster, namespace, "pause", node.pause_image, [])
    cluster.kubectl("wait", "--for=condition=Ready", "pod/pause", "-n", namespace, "--timeout=60s")
    record_property("pod apply to Ready (s)", round(time.monotonic() - started, 2))

    pod = json.loads(cluster.kubectl("get", "pod", "pause", "-n", namespace, "-o", "json").stdout)
    assert pod["spec"]["nodeName"] == node.name == "localhost"
    assert pod["status"]["phase"] == "Running"
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(node.pod_cidr)
    state = pod["status"]["containerStatuses"][0]
    assert state["ready"] is True and "running" in state["state"]
    assert state["image"] == node.pause_image


def strip_names(archive: Path, out: Path) -> None:
    """A copy of an OCI archive whose index names no image."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src:
            data = src.extractfile(member)
            assert data is not None
            content = data.read()
            if member.name == "index.json":
                index = json.loads(content)
                for manifest in index["manifests"]:
                    manifest.pop("annotations", None)
                content = json.dumps(index).encode()
                member.size = len(content)
            dst.addfile(member, io.BytesIO(content))


def test_import_names_an_unnamed_archive(node: Node, tmp_path: Path) -> None:
    """An archive whose index names nothing still arrives under the name asked for."""
    unnamed = tmp_path / "unnamed.tar"
    strip_names(node.state_dir / "pause.tar", unnamed)
    assert "localhost/unnamed:1" not in node.images()
    assert "localhost/unnamed:1" in node.import_image(unnamed, "localhost/unnamed:1")
    assert "localhost/unnamed:1" in node.images()


def test_pod_reaches_the_api_server_with_in_cluster_config(
    node: Node, cluster: Cluster, namespace: str, kubectl_image: str
) -> None:
    create_pod(
        cluster,
        namespace,
        "whoami",
        kubectl_image,
        ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
    )
    phase, log = finished(cluster, namespace, "whoami")
    assert (phase, log) == ("Succeeded", f"system:serviceaccount:{namespace}:default")


@pytest.fixture
def host_server() -> Iterator[int]:
    """An HTTP server on the host's loopback only, as the test storage servers are."""

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"hello from the host, {self.path.split('?')[0]}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_pod_reaches_an_exposed_loopback_server(
    node: Node, cluster: Cluster, namespace: str, kubectl_image: str, host_server: int
) -> None:
    host, port = node.expose(host_server)
    assert host == node.gateway
    create_pod(
        cluster,
        namespace,
        "fetch",
        kubectl_image,
        [
            "get",
            "--raw",
            "/probe",
            f"--server=http://{host}:{port}",
            "--token=unused",
            "--request-timeout=10s",
        ],
    )
    assert finished(cluster, namespace, "fetch") == ("Succeeded", "hello from the host, /probe")


def test_pod_cannot_reach_outside_the_machine(
    node: Node, cluster: Cluster, namespace: str, kubectl_image: str
) -> None:
    before = node.guard_drops()
    create_pod(
        cluster,
        namespace,
        "escape",
        kubectl_image,
        [
            "get",
            "--raw",
            "/",
            f"--server=https://{OUTSIDE}",
            "--token=unused",
            "--request-timeout=3s",
        ],
    )
    phase, log = finished(cluster, namespace, "escape")
    assert phase == "Failed"
    # A timeout: no answer at all, not even a refusal.
    assert "Unable to connect to the server" in log, log
    assert any(t in log for t in ("deadline exceeded", "Timeout exceeded", "i/o timeout")), log
    # Dropped on its way out by the guard rules, not refused or answered by anyone.
    assert node.guard_drops() > before
