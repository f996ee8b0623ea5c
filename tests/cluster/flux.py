"""Flux's source-controller and kustomize-controller as processes beside the test control plane.

Both are built from the Go module proxy by hack/build-binaries.sh, which puts their
CRDs in the bin folder's flux-crds/. They run as the cluster's admin, as Flux's own
install binds them to cluster-admin, without leader election, watching every namespace.
source-controller serves the artifacts it packs from Git on a loopback port, which it
advertises to kustomize-controller in each GitRepository's status.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from controlplane import die_with_parent, stop_child
from harness import Cluster

ROOT = Path(__file__).resolve().parents[2]
INSTALL_DOC = ROOT / "docs" / "install.md"
CONTROLLERS = ("source-controller", "kustomize-controller")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def documented_flux_objects(url: str, interval: str) -> list[dict[str, Any]]:
    """The GitRepository and Kustomization of docs/install.md's `## Flux` section, with the
    one substitution the page documents: the GitRepository's `url` is the test's Git server,
    and every `interval` is `interval`."""
    section = INSTALL_DOC.read_text().split("\n## Flux\n", 1)[1].split("\n## ", 1)[0]
    blocks = [
        b
        for b in re.findall(r"^```yaml\n(.*?)^```", section, re.M | re.S)
        if "GitRepository\n" in b
    ]
    assert len(blocks) == 1, "docs/install.md's Flux section must show one GitRepository block"
    objects = [doc for doc in yaml.safe_load_all(blocks[0]) if doc]
    for doc in objects:
        doc["spec"]["interval"] = interval
        if doc["kind"] == "GitRepository":
            doc["spec"]["url"] = url
    return objects


@contextlib.contextmanager
def flux_controllers(cluster: Cluster, folder: Path) -> Iterator[list[Path]]:
    """Install Flux's CRDs, run both controllers until exit; yields their log files."""
    missing = [c for c in CONTROLLERS if not (cluster.bin_dir / c).exists()]
    assert not missing, f"{missing} missing in {cluster.bin_dir}; run hack/build-binaries.sh"
    for crd in sorted((cluster.bin_dir / "flux-crds").glob("*.yaml")):
        cluster.apply_crd(crd)
    storage = free_port()
    (folder / "artifacts").mkdir()
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "RUNTIME_NAMESPACE": "flux-system"}
    common = ["--enable-leader-election=false", "--metrics-addr=0", "--health-addr=0"]
    args = {
        "source-controller": [
            f"--storage-path={folder / 'artifacts'}",
            f"--storage-addr=127.0.0.1:{storage}",
            f"--storage-adv-addr=127.0.0.1:{storage}",
        ],
        "kustomize-controller": ["--no-remote-bases=true"],
    }
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for name in CONTROLLERS:
            log = folder / f"{name}.log"
            logs.append(log)
            with log.open("ab") as out:
                procs.append(
                    subprocess.Popen(
                        [str(cluster.bin_dir / name), *common, *args[name]],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        preexec_fn=die_with_parent,
                    )
                )
        time.sleep(1.0)
        for proc, log in zip(procs, logs, strict=True):
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        yield logs
    finally:
        for proc in procs:
            stop_child(proc, timeout=15)
