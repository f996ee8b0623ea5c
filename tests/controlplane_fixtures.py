"""The session's real control plane, started by the test run itself, and a namespace per test.

The `cluster` fixture starts etcd, kube-apiserver and kube-controller-manager
(hack/controlplane.py) on first use and stops them when the session ends; a
session that uses no cluster fixture starts nothing.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import canaries
from controlplane import ControlPlane, ControlPlaneError, find_binaries
from harness import Cluster

ROOT = Path(__file__).resolve().parent.parent
CRD = ROOT / "crds" / "destinations.destinations.io.yaml"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """etcd, kube-apiserver and kube-controller-manager for this test session only."""
    try:
        bin_dir = find_binaries()
    except ControlPlaneError as err:
        pytest.exit(f"control plane unavailable: {err}", returncode=3)
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"), bin_dir, attached=True)
    try:
        plane.start()
    except ControlPlaneError as err:
        plane.stop()
        pytest.exit(f"control plane did not start: {err}", returncode=3)
    try:
        yield Cluster(plane)
    finally:
        plane.stop()


@contextlib.contextmanager
def own_cluster(folder: Path, bin_dir: Path, **options: Any) -> Iterator[Cluster]:
    """A control plane of a module's own (another version, other flags) with the committed
    CRD, stopped at the end."""
    plane = ControlPlane(folder, bin_dir, **options)
    try:
        plane.start()
    except ControlPlaneError:
        plane.stop()
        raise
    try:
        cluster = Cluster(plane)
        cluster.apply_crd(CRD)
        yield cluster
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def destination_crd(cluster: Cluster) -> str:
    """The committed Destination CRD, installed and Established."""
    return cluster.apply_crd(CRD)


def _scan_for_canaries(cluster: Cluster, namespace: str) -> None:
    """No credential value a test stored may be in a Destination's status or an Event."""
    if not canaries.registered():
        return
    seen = cluster.kubectl("get", "destinations,events", "-n", namespace, "-o", "json").stdout
    leaked = canaries.found_in(seen)
    assert not leaked, f"credential values in statuses or events of {namespace}: {leaked}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted afterwards."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{secrets.token_hex(3)}"
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespace({"metadata": {"name": name}})
    yield name
    _scan_for_canaries(cluster, name)
    try:
        core.delete_namespace(name)
    except client.ApiException as err:
        if err.status != 404:
            raise
