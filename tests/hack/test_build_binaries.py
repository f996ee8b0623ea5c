"""hack/build-binaries.sh on bad input: Go missing, a failed build, a half-written cache, assets,
and the oldest supported version without Go.

Each case runs the real script with its own empty cache and a PATH that holds either no
`go` or a fake one, so nothing here builds for minutes or touches the shared cache.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hack" / "build-binaries.sh"
VERSIONS = dict(
    line.split("=", 1)
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
    if "=" in line and not line.startswith("#")
)
K8S = ["kube-apiserver", "kube-controller-manager", "kubectl"]


def run(tmp_path: Path, *, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "KUBEBUILDER_ASSETS"}
    clean.update({"PATH": path, "DESTINATION_OPERATOR_CACHE": str(tmp_path / "cache"), **env})
    return subprocess.run(
        ["bash", str(SCRIPT)], env=clean, capture_output=True, text=True, timeout=60
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


@pytest.fixture
def no_go(tmp_path: Path) -> str:
    """A PATH with every system tool but Go; a fake `go` may be put in its folder."""
    tools = tmp_path / "path"
    tools.mkdir()
    for folder in os.environ["PATH"].split(":"):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if tool.name != "go" and not (tools / tool.name).exists():
                (tools / tool.name).symlink_to(tool)
    return str(tools)


def test_go_missing_is_one_line_that_says_what_to_do(tmp_path: Path, no_go: str) -> None:
    done = run(tmp_path, path=no_go)
    assert done.returncode == 1
    assert error_lines(done.stderr) == [
        "build-binaries: error: Go is not installed; install Go 1.24 or newer"
        " (https://go.dev/dl) or set KUBEBUILDER_ASSETS to a folder with the binaries"
    ]
    assert "Traceback" not in done.stderr


def test_half_written_cache_entry_is_removed_not_trusted(tmp_path: Path, no_go: str) -> None:
    entry = tmp_path / "cache" / f"kubernetes-{VERSIONS['KUBERNETES_VERSION']}"
    (entry / "bin").mkdir(parents=True)
    (entry / "bin" / "kube-apiserver").write_text("half a binary")
    done = run(tmp_path, path=no_go)
    assert f"removing incomplete cache entry {entry}" in done.stderr
    assert not entry.exists()
    assert done.returncode == 1  # and then it needs Go to build it properly


def test_failed_build_leaves_no_entry_that_looks_complete(tmp_path: Path, no_go: str) -> None:
    fake = Path(no_go) / "go"
    fake.write_text("#!/usr/bin/env bash\necho 'go: module lookup disabled' >&2\nexit 1\n")
    fake.chmod(0o755)
    done = run(tmp_path, path=no_go)
    assert done.returncode == 1
    version = VERSIONS["KUBERNETES_VERSION"]
    assert error_lines(done.stderr) == [
        f"build-binaries: error: building kubernetes {version} failed;"
        " the log is above. Fix the cause and run again"
    ]
    assert "go: module lookup disabled" in done.stderr  # the build's own words are shown
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == []


def test_kubebuilder_assets_are_used_without_building(tmp_path: Path, no_go: str) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in [*K8S, "etcd", "helm"]:
        (assets / name).write_text("#!/bin/sh\n")
        (assets / name).chmod(0o755)
    done = run(tmp_path, path=no_go, KUBEBUILDER_ASSETS=str(assets))
    assert done.returncode == 0, done.stderr
    out = Path(done.stdout.strip().splitlines()[-1])
    assert sorted(p.name for p in out.iterdir()) == sorted([*K8S, "etcd", "helm"])
    assert all((out / name).resolve() == assets / name for name in [*K8S, "etcd", "helm"])
    assert "building" not in done.stderr


def fake_assets(tmp_path: Path) -> Path:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in [*K8S, "etcd", "helm"]:
        (assets / name).write_text("#!/bin/sh\n")
        (assets / name).chmod(0o755)
    return assets


def test_oldest_version_without_go_is_left_out_with_a_warning(tmp_path: Path, no_go: str) -> None:
    done = run(tmp_path, path=no_go, KUBEBUILDER_ASSETS=str(fake_assets(tmp_path)))
    assert done.returncode == 0, done.stderr
    minimum = VERSIONS["MIN_KUBERNETES_VERSION"]
    assert f"warning: Kubernetes {minimum} left out: Go is not installed" in done.stderr
    assert not (Path(done.stdout.strip().splitlines()[-1]) / "minimum").exists()


def test_oldest_version_from_the_cache_makes_a_whole_bin_folder(tmp_path: Path, no_go: str) -> None:
    """A complete cache entry is used without Go; minimum/ adds the same etcd and helm."""
    entry = tmp_path / "cache" / f"kubernetes-{VERSIONS['MIN_KUBERNETES_VERSION']}"
    (entry / "bin").mkdir(parents=True)
    for name in K8S:
        (entry / "bin" / name).write_text("#!/bin/sh\n")
        (entry / "bin" / name).chmod(0o755)
    (entry / ".complete").write_text("built\n")
    assets = fake_assets(tmp_path)
    done = run(tmp_path, path=no_go, KUBEBUILDER_ASSETS=str(assets))
    assert done.returncode == 0, done.stderr
    minimum = Path(done.stdout.strip().splitlines()[-1]) / "minimum"
    assert sorted(p.name for p in minimum.iterdir()) == sorted([*K8S, "etcd", "helm"])
    assert all((minimum / name).resolve() == entry / "bin" / name for name in K8S)
    assert (minimum / "etcd").resolve() == assets / "etcd"
    assert (minimum / "helm").resolve() == assets / "helm"
