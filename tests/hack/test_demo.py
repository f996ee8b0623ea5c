"""`make demo`, the README's first command: `hack/demo.py up` brings up a control plane, the
S3 server and the operator, and shows three Destinations telling the truth; `down` stops
everything `up` started. Run in a folder of its own, since the demo keeps its state in the
current folder (.cluster/, .demo/). The demo, and `make cluster-up`, need and build only the
control plane: kube-apiserver, kube-controller-manager, kubectl and etcd, no helm."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import CONTROL_PLANE_BINARIES, ControlPlaneError, alive, find_binaries

ROOT = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, str(ROOT / "hack" / "demo.py")]
VERSIONS = dict(
    line.split("=", 1)
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
    if "=" in line and not line.startswith("#")
)


# kubectl get dst: NAME TYPE TARGET VERIFIED REASON ARCHIVED ...
def table(text: str) -> list[dict[str, str]]:
    """The rows of the `kubectl get` table in `text`, cut at the header's column starts
    (a cell may be empty: READY is, for an archived Destination)."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("NAME "))
    columns = list(re.finditer(r"\S+(?: \S+)*", lines[first]))  # "LAST VERIFIED" is one
    rows = []
    for line in lines[first + 1 :]:
        if not line.strip():
            break
        ends = [c.start() for c in columns[1:]] + [len(line)]
        rows.append(
            {c.group(): line[c.start() : end].strip() for c, end in zip(columns, ends, strict=True)}
        )
    return rows


EXPECTED = {
    "reports": ("True", "ProbeSucceeded", "false"),
    "wrong-key": ("False", "AuthenticationFailed", "false"),
    "old": ("Unknown", "Archived", "true"),
}


def test_demo_up_shows_the_truth_and_down_stops_everything(tmp_path: Path) -> None:
    """Against a folder that holds the control plane's four binaries and nothing else."""
    only = tmp_path / "bin"
    only.mkdir()
    for name in CONTROL_PLANE_BINARIES:
        (only / name).symlink_to(find_binaries(binary_set="controlplane") / name)
    env = {**os.environ, "DESTINATION_OPERATOR_BIN_DIR": str(only)}

    def demo(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*DEMO, command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )

    pids: list[int] = []
    try:
        up = demo("up")
        assert up.returncode == 0, up.stdout + up.stderr
        pids = [
            int((tmp_path / ".demo" / f"{name}.pid").read_text())
            for name in ("operator", "s3server")
        ]
        assert all(alive(pid) for pid in pids)
        rows = {
            row["NAME"]: (row["VERIFIED"], row["REASON"], row["ARCHIVED"])
            for row in table(up.stdout)
            if row["NAME"] in EXPECTED
        }
        assert rows == EXPECTED, up.stdout
        assert "make demo-down" in up.stdout
    finally:
        down = demo("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert pids and not any(alive(pid) for pid in pids)
    assert not (tmp_path / ".demo").exists() and not (tmp_path / ".cluster").exists()


def test_the_control_plane_binaries_are_etcd_kube_apiserver_kcm_and_kubectl() -> None:
    assert sorted(CONTROL_PLANE_BINARIES) == [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kubectl",
    ]


def fake_binaries(folder: Path, names: list[str], script: str = "#!/bin/sh\n") -> Path:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text(script)
        (folder / name).chmod(0o755)
    return folder


def test_binary_lookup_needs_no_helm(tmp_path: Path) -> None:
    """A folder with only the control plane's binaries is enough; a missing one is named."""
    folder = fake_binaries(tmp_path / "bin", list(CONTROL_PLANE_BINARIES))
    assert find_binaries(str(folder)) == folder
    (folder / "kubectl").unlink()
    with pytest.raises(ControlPlaneError, match=r"^kubectl missing in "):
        find_binaries(str(folder))


def path_without_go(tmp_path: Path) -> str:
    """A PATH with every system tool but Go, so that any build fails at once."""
    tools = tmp_path / "path"
    tools.mkdir()
    for folder in os.environ["PATH"].split(":"):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if tool.name != "go" and not (tools / tool.name).exists():
                (tools / tool.name).symlink_to(tool)
    return str(tools)


@pytest.mark.parametrize(
    "command",
    [["hack/demo.py", "up"], ["hack/controlplane.py", "up", "--state", ".cluster"]],
    ids=["make-demo", "make-cluster-up"],
)
def test_demo_and_cluster_up_ask_for_the_control_plane_only(
    tmp_path: Path, command: list[str]
) -> None:
    """The cache holds only the control plane's two entries and Go is missing: asking for
    helm, kubelet, kstatus or the oldest Kubernetes would fail the build. The fake etcd
    exits, so the first error is the control plane's own."""
    cache = tmp_path / "cache"
    fake = "#!/bin/sh\necho fake etcd; exit 3\n"
    k8s = ["kube-apiserver", "kube-controller-manager", "kubectl"]
    for name, binaries in [
        (f"kubernetes-{VERSIONS['KUBERNETES_VERSION']}", k8s),
        (f"etcd-{VERSIONS['ETCD_VERSION']}", ["etcd"]),
    ]:
        fake_binaries(cache / name / "bin", binaries, fake)
        (cache / name / ".complete").write_text("built\n")
    work = tmp_path / "work"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DESTINATION_OPERATOR_BIN_DIR", "KUBEBUILDER_ASSETS")
    }
    env.update(PATH=path_without_go(tmp_path), DESTINATION_OPERATOR_CACHE=str(cache))
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / command[0]), *command[1:]],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        subprocess.run([*DEMO, "down"], cwd=work, env=env, capture_output=True, timeout=120)
    assert done.returncode == 1
    assert "Go is not installed" not in done.stderr
    assert "etcd exited with code 3: fake etcd" in done.stderr, done.stderr
    built = {p.name for p in cache.iterdir() if not p.name.startswith("controlplane-")}
    assert built == {
        f"kubernetes-{VERSIONS['KUBERNETES_VERSION']}",
        f"etcd-{VERSIONS['ETCD_VERSION']}",
    }
