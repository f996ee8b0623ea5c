"""A real node for install tests: containerd, kubelet and kube-scheduler beside the control plane.

The session's control plane (tests/controlplane_fixtures.py) schedules pods but runs none.
`node` adds hack/node.py's node to it, once per session, and takes it down
afterwards, leaving the machine as it found it. The handle it yields is the
`Node` itself:

- `node.name` (`localhost`), `node.bridge`, `node.pod_cidr`, `node.gateway`;
- `node.import_image(archive, name=None)`: load an OCI archive into the node's
  containerd (`ctr -n k8s.io images import`); pods use it by that name with
  `imagePullPolicy: Never` (no registry is reachable, by design);
- `node.kubernetes_service`: where pods reach the API server (10.0.0.1:443, the
  `kubernetes` Service), so in-cluster config works as on any cluster;
- `node.expose(port)`: a server on the host's 127.0.0.1:port, reachable by pods
  at (node.gateway, port): an S3 server, a webhook receiver;
- `node.guard_drops()`: packets dropped on their way out of the machine.

Also for the install tests of the operator on the node: `operator_image` (the
image of hack/image.py, imported once), `storage` (an S3 server pods reach), and
`destination`, `probes` and `pod_names`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import chart
import image
from cluster.dst import s3_destination
from harness import Cluster
from node import Node, NodeError
from ociarchive import DEFAULT_PATH, ImageConfig, write_archive
from s3server import S3Server


@pytest.fixture(scope="session")
def node(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The node `localhost`, Ready, for this test session only."""
    if os.geteuid() != 0:
        pytest.fail("install tests run pods on a real node, which needs root")
    handle = Node(
        tmp_path_factory.mktemp("node"),
        cluster.bin_dir,
        server=cluster.server,
        pki=cluster.plane.pki,
        attached=True,
    )
    try:
        handle.start()
    except NodeError as err:
        pytest.fail(f"the node did not start: {err} (log: {handle.log})")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def kubectl_image(node: Node, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image holding only the session's kubectl (static): an in-cluster client for pods.

    With no kubeconfig, kubectl in a pod uses in-cluster config: the
    KUBERNETES_SERVICE_* variables and the ServiceAccount's token and CA.
    """
    binary = (Path(node.bin_dir) / "kubectl").resolve()
    name = "localhost/kubectl:test"
    archive = tmp_path_factory.mktemp("images") / "kubectl.tar"
    config = ImageConfig(user="65532:65532", env=[DEFAULT_PATH, "HOME=/tmp"])
    write_archive(archive, name, binary=binary, config=config)
    node.import_image(archive, name)
    return name


@dataclass
class Storage:
    server: S3Server
    endpoint: str  # as pods reach it


@pytest.fixture(scope="session")
def operator_image(node: Node) -> str:
    """The operator's image (hack/image.py), imported into the node once per session."""
    built = image.build()
    print(built.summary())
    started = time.monotonic()
    node.import_image(built.archive, built.name)
    print(f"imported into the node in {time.monotonic() - started:.1f} s")
    return built.name


@pytest.fixture(scope="module")
def storage(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    """An S3 server on the host, reached by pods through the node's gateway."""
    with S3Server(tmp_path_factory.mktemp("node-s3")) as server:
        host, port = node.expose(server.port)
        yield Storage(server, f"http://{host}:{port}")


def probes(storage: Storage, prefix: str) -> int:
    """Probes (PUTs) the S3 server saw under `prefix`."""
    return sum(1 for line in storage.server.requests() if f"/{prefix}" in line and " PUT " in line)


def pod_names(cluster: Cluster, namespace: str) -> list[str]:
    """The pods of `namespace` not being deleted."""
    out = cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout
    return sorted(
        item["metadata"]["name"]
        for item in json.loads(out)["items"]
        if not item["metadata"].get("deletionTimestamp")
    )


def destination(name: str, storage: Storage) -> dict[str, Any]:
    # interval 0s: nothing is ever due again, so any later probe would need a reason
    return s3_destination(
        name,
        storage.server,
        secret="s3",
        endpoint=storage.endpoint,
        verification={"interval": "0s", "timeout": "10s"},
    )


def image_values(name: str) -> dict[str, str]:
    """The chart's `image` for an image imported into the node: never pulled."""
    repository, tag = name.rsplit(":", 1)
    return {"repository": repository, "tag": tag, "pullPolicy": "Never"}


def helm_install(
    cluster: Cluster,
    release: str,
    namespace: str,
    operator_image: str,
    values: Mapping[str, Any],
    chart_dir: Path = chart.CHART,
) -> None:
    """`helm install --wait` of the chart (or `chart_dir`) into `namespace`, with the
    node's image and `values`, each passed as --set-json; prints how long until Ready."""
    every = {"image": image_values(operator_image), **values}
    started = time.monotonic()
    cluster.helm(
        "install",
        release,
        str(chart_dir),
        "-n",
        namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        "240s",
        *(
            arg
            for key, value in every.items()
            for arg in ("--set-json", f"{key}={json.dumps(value)}")
        ),
        timeout=300,
    )
    print(f"helm install --wait: Ready in {time.monotonic() - started:.1f} s")


def uninstall(cluster: Cluster, release: str, namespace: str, *others: str) -> None:
    """`helm uninstall --wait`, then the release's namespace and `others` deleted and gone:
    namespaces holding Destinations still delete once the operator is gone (no finalizer)."""
    cluster.helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "120s", timeout=300)
    cluster.kubectl("delete", "namespace", *others, namespace, "--ignore-not-found", "--wait=false")
    for name in (*others, namespace):
        cluster.wait_namespace_gone(name, timeout=120)


def operator_deployment(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """The one Deployment of the release in `namespace`."""
    body = json.loads(cluster.kubectl("get", "deployment", "-n", namespace, "-o", "json").stdout)
    (deployment,) = body["items"]
    found: dict[str, Any] = deployment
    return found


def user_of(deployment: dict[str, Any]) -> str:
    """The API server's user name of the Deployment's pods (its ServiceAccount)."""
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    return f"system:serviceaccount:{deployment['metadata']['namespace']}:{account}"
