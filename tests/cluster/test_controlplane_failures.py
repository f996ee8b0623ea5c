"""hack/controlplane.py when things go wrong: a stale state folder, a taken port, a killed parent.

Each test starts a control plane of its own from the session's binaries, beside the
session's one, so what it breaks is never the cluster other tests use.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import controlplane
from controlplane import ControlPlane, ControlPlaneError, alive
from harness import Cluster

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, bin_dir: Path, state: Path) -> subprocess.CompletedProcess[str]:
    script = str(ROOT / "hack" / "controlplane.py")
    return subprocess.run(
        [sys.executable, script, *args, f"--state={state}", f"--bin-dir={bin_dir}"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def gone(pids: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(alive(pid) for pid in pids)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port that another process (this one) listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_cluster_up_replaces_a_stale_state_folder(cluster: Cluster, tmp_path: Path) -> None:
    state = tmp_path / ".cluster"
    state.mkdir()
    finished = subprocess.Popen(["true"])
    finished.wait()
    ports = {"etcd_port": 1, "etcd_peer_port": 2, "apiserver_port": 3}
    stale = {**ports, "controller_manager_port": 4, "pids": {"etcd": finished.pid}}
    (state / "state.json").write_text(json.dumps(stale))
    try:
        up = cli("up", bin_dir=cluster.bin_dir, state=state)
        assert up.returncode == 0, up.stderr
        lines = up.stdout.splitlines()
        assert lines[0] == f"controlplane: removing stale {state}/ (its processes are gone)"
        assert lines[-1] == str(state / "kubeconfig")
        cluster.kubectl("get", "ns", "default", kubeconfig=lines[-1])

        again = cli("up", bin_dir=cluster.bin_dir, state=state)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines()[0].startswith("controlplane: already up (https://")
    finally:
        # a start that failed halfway may have left no state file: stop what there is
        written = state / "state.json"
        pids = list(json.loads(written.read_text())["pids"].values()) if written.exists() else []
        down = cli("down", bin_dir=cluster.bin_dir, state=state)
    assert down.stdout.strip() == "controlplane: stopped"
    assert len(pids) == 3 and gone(pids)
    assert not state.exists()


def test_a_taken_port_is_retried_with_fresh_ports(
    cluster: Cluster, tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = iter([taken_port])
    real = controlplane.free_port
    monkeypatch.setattr(controlplane, "free_port", lambda: next(first, None) or real())
    plane = ControlPlane(tmp_path / "plane", cluster.bin_dir)
    try:
        plane.start()
        assert plane.state is not None and plane.state.etcd_port != taken_port
        assert plane.running()
    finally:
        plane.stop()


def test_ports_that_stay_taken_give_one_line_saying_what_to_do(
    cluster: Cluster, tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controlplane, "free_port", lambda: taken_port)
    plane = ControlPlane(tmp_path / "plane", cluster.bin_dir)
    with pytest.raises(ControlPlaneError) as err:
        plane.start()
    assert str(err.value) == (
        "etcd: another process took its port while it started, three times;"
        " stop what holds the ports and run again"
    )
    assert plane.state is not None and not plane.state.pids


def test_a_killed_test_process_leaves_no_control_plane_behind(
    cluster: Cluster, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT / "hack")!r})
        from controlplane import ControlPlane
        plane = ControlPlane(Path({str(tmp_path / "plane")!r}), Path({str(cluster.bin_dir)!r}))
        plane.start()
        print(json.dumps(list(plane.state.pids.values())), flush=True)
        sys.stdin.read()
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
    finally:
        parent.kill()  # as a CI runner's timeout or a second Ctrl-C would
        parent.wait()
    assert gone(pids), [pid for pid in pids if alive(pid)]
