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
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Cluster
from node import Node, NodeError
from ociarchive import DEFAULT_PATH, ImageConfig, write_archive


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
