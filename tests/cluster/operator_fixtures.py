"""The operator under test: a real process, running with exactly the RBAC of manifests/rbac."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import canaries
from controlplane import die_with_parent, stop_child
from harness import Cluster
from s3server import S3Server

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "destination-operator-system"
OPERATOR_SA = "destination-operator"

# Distinctive values put in every credential; no status, event, log line or
# exception may ever contain them (see test_zz_canary.py).
CANARY_SECRET_KEY = "canary-SECRET-7f3a9c1e-never-show-me"
CANARY_TOKEN = "canary-TOKEN-b41d0e77-never-show-me"
canaries.register(CANARY_SECRET_KEY, CANARY_TOKEN)


class OperatorProcess:
    """`destination-operator run` as a child process, logging to a file."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
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
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The real S3 server on loopback: signatures and IAM policies enforced."""
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        canaries.register(*(user.secret_access_key for user in server.users.values()))
        yield server


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


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last test of this folder, stop the session's operator: later tests
    (tests/install) run operators of their own, and two would act on the same Destinations."""
    if nextitem is None or Path(__file__).parent not in Path(nextitem.path).parents:
        for process in _RUNNING:
            process.stop()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()
