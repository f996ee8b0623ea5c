"""The operator under test: a real process, running with exactly the RBAC of manifests/rbac.

Also the order of the cluster tests: tests marked `after_cluster_tests` read
what the others left behind (the API server's audit log, the operator's log),
so they run after every other test of tests/cluster in the session, whatever
their files are named (`pytest_collection_modifyitems` below).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

import canaries
from controlplane import die_with_parent, kubeconfig_yaml, stop_child
from harness import Cluster

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "destination-operator-system"
OPERATOR_SA = "destination-operator"

# Distinctive values put in every credential; no status, event, log line or
# exception may ever contain them (see test_no_credential_leaks.py).
CANARY_SECRET_KEY = "canary-SECRET-7f3a9c1e-never-show-me"
CANARY_TOKEN = "canary-TOKEN-b41d0e77-never-show-me"
canaries.register(CANARY_SECRET_KEY, CANARY_TOKEN)


class OperatorProcess:
    """`destination-operator run` as a child process, logging to a file; `env` adds to or
    overrides the test settings below."""

    def __init__(self, kubeconfig: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.env = env or {}  # settings of its own, over the tests' defaults
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, settings: Mapping[str, str] | None = None) -> None:
        """Start it; `settings` are DESTINATION_OPERATOR_* variables over the tests' own."""
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "DESTINATION_OPERATOR_ALLOW_PRIVATE_ENDPOINTS": "true",
            "DESTINATION_OPERATOR_BACKOFF_BASE_SECONDS": "1",
            "DESTINATION_OPERATOR_BACKOFF_CAP_SECONDS": "4",
            "DESTINATION_OPERATOR_SECRET_GRACE_SECONDS": "4",
            "DESTINATION_OPERATOR_DEFAULT_INTERVAL_SECONDS": "2",
            "DESTINATION_OPERATOR_HEALTH_PORT": "0",
            "DESTINATION_OPERATOR_METRICS_PORT": "0",
            "DESTINATION_OPERATOR_LOG_LEVEL": "DEBUG",
            **self.env,
            **(settings or {}),
        }
        binary = Path(sys.executable).parent / "destination-operator"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(binary), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
            )

    def stop(self) -> None:
        stop_child(self.proc, timeout=15)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last status patch, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, destination_crd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator, running under the ServiceAccount and rules of manifests/rbac, exactly."""
    cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests" / "rbac"))
    folder = tmp_path_factory.mktemp("operator")
    kubeconfig = cluster.token_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, out_dir=folder)
    process = OperatorProcess(kubeconfig, folder / "operator.log")
    process.start()
    _RUNNING.append(process)
    time.sleep(1.0)
    assert process.alive(), process.text()[-3000:]
    try:
        yield process
    finally:
        process.stop()


_RUNNING: list[OperatorProcess] = []


@contextlib.contextmanager
def session_operator_stopped() -> Iterator[None]:
    """The session's operator stopped while a test runs one of its own, and started again
    after, if it ran (one operator at a time). Unlike the `operator` fixture, this starts
    none: after tests/cluster, or in the worker of tests/parallel.py's `node` group, none
    runs, and tests/install's operators must have the control plane to themselves."""
    running = [process for process in _RUNNING if process.alive()]
    for process in running:
        process.stop()
    try:
        yield
    finally:
        for process in running:
            process.start()


@contextlib.contextmanager
def operator_through(
    proxy_url: str, cluster: Cluster, operator: OperatorProcess, folder: Path
) -> Iterator[OperatorProcess]:
    """The operator under its own ServiceAccount, talking to the API server through the proxy
    at `proxy_url`, in place of the session's (one operator at a time)."""
    direct = cluster.token_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, out_dir=folder)
    token = yaml.safe_load(direct.read_text())["users"][0]["user"]["token"]
    kubeconfig = folder / "through-proxy.kubeconfig"
    ca = (cluster.plane.pki / "ca.crt").read_bytes()
    kubeconfig.write_text(kubeconfig_yaml(proxy_url, ca, {"token": token}, OPERATOR_SA))
    operator.stop()
    process = OperatorProcess(kubeconfig, folder / "operator.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()
        operator.start()


CLUSTER_TESTS = Path(__file__).parent
AFTER_CLUSTER_TESTS = "after_cluster_tests"


def _in_cluster_tests(item: pytest.Item) -> bool:
    return CLUSTER_TESTS in Path(item.path).parents


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the tests marked `after_cluster_tests` to just after the last other test of
    tests/cluster, in the order they were collected: after all the work whose traces they
    check, and while the session's operator still runs (it stops after the folder's last
    test; tests/install, next, runs operators of its own)."""
    last = [item for item in items if item.get_closest_marker(AFTER_CLUSTER_TESTS)]
    if not last:
        return
    rest = [item for item in items if not item.get_closest_marker(AFTER_CLUSTER_TESTS)]
    ends = [at for at, item in enumerate(rest) if _in_cluster_tests(item)]
    # with no other cluster test selected, they stay where the first of them was
    at = ends[-1] + 1 if ends else items.index(last[0])
    items[:] = [*rest[:at], *last, *rest[at:]]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last test of tests/cluster, stop the session's operator: later tests
    (tests/install) run operators of their own, and two would act on the same Destinations."""
    if not _in_cluster_tests(item):
        return
    if nextitem is None or not _in_cluster_tests(nextitem):
        for process in _RUNNING:
            process.stop()
