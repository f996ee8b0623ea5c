"""hack/build-binaries.sh on bad input: Go missing, a failed build, a half-written cache, assets,
and the oldest supported version without Go; and its sets: the demo's is the control plane only.

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
CONTROL_PLANE = [
    f"kubernetes {VERSIONS['KUBERNETES_VERSION']} {' '.join(K8S)}",
    f"etcd {VERSIONS['ETCD_VERSION']} etcd",
]


def run(tmp_path: Path, *args: str, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "KUBEBUILDER_ASSETS"}
    clean.update({"PATH": path, "DESTINATION_OPERATOR_CACHE": str(tmp_path / "cache"), **env})
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=clean, capture_output=True, text=True, timeout=60
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


def complete_entry(tmp_path: Path, name: str, *binaries: str) -> Path:
    """A cache entry as a finished build leaves it: the binaries and .complete."""
    entry = tmp_path / "cache" / name
    (entry / "bin").mkdir(parents=True)
    for binary in binaries:
        (entry / "bin" / binary).write_text("#!/bin/sh\n")
        (entry / "bin" / binary).chmod(0o755)
    (entry / ".complete").write_text("built\n")
    return entry


@pytest.mark.parametrize("name", ["demo", "controlplane"])
def test_the_demo_set_is_the_control_plane_only(tmp_path: Path, no_go: str, name: str) -> None:
    """--list prints the components, one cache entry each, and builds nothing (no Go here)."""
    done = run(tmp_path, "--list", name, path=no_go)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == CONTROL_PLANE
    assert done.stderr == ""
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("args", [(), ("all",)])
def test_the_default_set_adds_what_only_the_tests_use(
    tmp_path: Path, no_go: str, args: tuple[str, ...]
) -> None:
    done = run(tmp_path, "--list", *args, path=no_go)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        *CONTROL_PLANE,
        f"helm {VERSIONS['HELM_VERSION']} helm",
        f"kubernetes-node {VERSIONS['KUBERNETES_VERSION']} kubelet kube-scheduler",
        f"kubernetes {VERSIONS['MIN_KUBERNETES_VERSION']} {' '.join(K8S)}",
        f"kstatus {VERSIONS['CLI_UTILS_VERSION']} kstatus",
        f"prometheus {VERSIONS['PROMETHEUS_VERSION']} prometheus promtool",
        f"source-controller {VERSIONS['FLUX_SOURCE_CONTROLLER_VERSION']} source-controller",
        "kustomize-controller"
        f" {VERSIONS['FLUX_KUSTOMIZE_CONTROLLER_VERSION']} kustomize-controller",
    ]
    assert not (tmp_path / "cache").exists()


def test_the_flux_controllers_bring_their_crds_into_the_bin_folder(
    tmp_path: Path, no_go: str
) -> None:
    """From complete cache entries, without Go: each controller's crds/ is in flux-crds/."""
    listed = run(tmp_path, "--list", path=no_go).stdout.splitlines()
    for line in listed:
        name, version, *binaries = line.split()
        complete_entry(tmp_path, f"{name}-{version}", *binaries)
    crds = {}
    for name in ("source-controller", "kustomize-controller"):
        version = next(line.split()[1] for line in listed if line.startswith(f"{name} "))
        folder = tmp_path / "cache" / f"{name}-{version}" / "crds"
        folder.mkdir()
        crds[f"{name}.yaml"] = folder / f"{name}.yaml"
        crds[f"{name}.yaml"].write_text("kind: CustomResourceDefinition\n")
    done = run(tmp_path, "all", path=no_go)
    assert done.returncode == 0, done.stderr
    out = Path(done.stdout.strip())
    assert {p.name: p.resolve() for p in (out / "flux-crds").iterdir()} == crds
    for name in ("source-controller", "kustomize-controller"):
        assert (out / name).resolve().parent.parent == crds[f"{name}.yaml"].parent.parent


def test_the_control_plane_set_needs_only_its_own_cache_entries(tmp_path: Path, no_go: str) -> None:
    """With the control plane's two entries cached and no Go, nothing else is asked for."""
    k8s = complete_entry(tmp_path, f"kubernetes-{VERSIONS['KUBERNETES_VERSION']}", *K8S)
    etcd = complete_entry(tmp_path, f"etcd-{VERSIONS['ETCD_VERSION']}", "etcd")
    done = run(tmp_path, "demo", path=no_go)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = Path(done.stdout.strip())
    assert sorted(p.name for p in out.iterdir()) == sorted([*K8S, "etcd"])
    assert all((out / name).resolve() == k8s / "bin" / name for name in K8S)
    assert (out / "etcd").resolve() == etcd / "bin" / "etcd"
    assert out.parent.parent == tmp_path / "cache"
    entries = {p.name for p in (tmp_path / "cache").iterdir()} - {out.parent.name}
    assert entries == {k8s.name, etcd.name}


def test_the_control_plane_set_from_assets_without_helm(tmp_path: Path, no_go: str) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in [*K8S, "etcd"]:
        (assets / name).write_text("#!/bin/sh\n")
        (assets / name).chmod(0o755)
    done = run(tmp_path, "controlplane", path=no_go, KUBEBUILDER_ASSETS=str(assets))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warning: nothing of the tests' own is wanted
    out = Path(done.stdout.strip())
    assert sorted(p.name for p in out.iterdir()) == sorted([*K8S, "etcd"])
    assert all((out / name).resolve() == assets / name for name in [*K8S, "etcd"])


def test_an_unknown_set_is_one_line_that_names_the_sets(tmp_path: Path, no_go: str) -> None:
    done = run(tmp_path, "tests", path=no_go)
    assert done.returncode == 1
    assert error_lines(done.stderr) == [
        "build-binaries: error: unknown argument 'tests';"
        " usage: hack/build-binaries.sh [--list] [controlplane|demo|all|lint|release]"
    ]
    assert not (tmp_path / "cache").exists()


def test_the_lint_set_is_actionlint_alone(tmp_path: Path, no_go: str) -> None:
    listed = run(tmp_path, "--list", "lint", path=no_go)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [f"actionlint {VERSIONS['ACTIONLINT_VERSION']} actionlint"]
    # It builds nothing else: without Go the only error is Go's, and no control plane is tried.
    done = run(tmp_path, "lint", path=no_go)
    assert done.returncode == 1
    assert "building" not in done.stderr and "kubernetes" not in done.stderr
    assert error_lines(done.stderr) == [
        "build-binaries: error: Go is not installed; install Go 1.24 or newer"
        " (https://go.dev/dl) or set KUBEBUILDER_ASSETS to a folder with the binaries"
    ]
