"""A release built once per session (`make release` into a temporary dist/), and what
the tests that install from it need: its image in the node, a clean slate, and a local
stand-in for the MinIO image of docs/getting-started.md.

- `release_dist`: `Release`, the artifacts of `make release VERSION=<pyproject's version>`
  written to a temporary folder (`OUT=`), with `git status` of the working tree before and after;
- `release_on_node`: the same, once its image is imported into the node under the name
  and digest its chart pins (as a registry pull would leave it);
- `minio_standin`: the name of a local image (on the release's image, which has Python)
  whose `minio server DIR` is hack/s3server.py (tests/install/minio_standin.py);
- `clean_slate(cluster)`: remove what the release installs, all but the CRD (the
  session's other tests share it), so each install starts from nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
import yaml

import chart
import image
from harness import Cluster
from node import Node

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STANDIN = "localhost/minio-standin:test"
# What moto's S3 and IAM server needs (hack/s3server.py), from this environment.
STANDIN_PACKAGES = ("moto", "flask", "flask-cors", "py-partiql-parser")


@dataclass(frozen=True)
class Release:
    dist: Path
    version: str
    repository: str
    digest: str
    seconds: float
    status_before: str
    status_after: str

    @property
    def image(self) -> str:
        """The image the chart pins: repository:version@digest."""
        return f"{self.repository}:{self.version}@{self.digest}"

    @property
    def archive(self) -> Path:
        return self.dist / f"destination-operator-image-{self.version}.tar"

    @property
    def chart(self) -> Path:
        return self.dist / f"destination-operator-{self.version}.tgz"

    @property
    def install_yaml(self) -> Path:
        return self.dist / "install.yaml"


def git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture(scope="session")
def release_dist(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """`make release` run once for the session, into a temporary folder."""
    out = tmp_path_factory.mktemp("release") / "dist"
    version = image.project_version()
    before = git_status()
    started = time.monotonic()
    done = subprocess.run(
        ["make", "--no-print-directory", "release", f"VERSION={version}", f"OUT={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, f"make release failed:\n{done.stderr[-4000:]}"
    print(f"make release VERSION={version}: {seconds:.1f} s")
    digest = (out / f"destination-operator-image-{version}.digest").read_text().strip()
    return Release(
        out,
        version,
        "ghcr.io/destination-operator/destination-operator",
        digest,
        seconds,
        before,
        git_status(),
    )


@pytest.fixture(scope="session")
def release_on_node(node: Node, release_dist: Release) -> Release:
    """The release's image in the node's containerd by tag and by digest.

    A pull by `repo:tag@digest` leaves both names; an import names the image by its tag
    only, so the digest name is added the way `ctr` tags an image.
    """
    name = f"{release_dist.repository}:{release_dist.version}"
    node.import_image(release_dist.archive, name)
    by_digest = f"{release_dist.repository}@{release_dist.digest}"
    if by_digest not in node.images():
        node.ctr("images", "tag", name, by_digest)
    return release_dist


def _copy_distribution(name: str, site: Path) -> None:
    dist = metadata.distribution(name)
    base = Path(str(dist.locate_file("")))
    for file in dist.files or []:
        if file.parts[0] == ".." or "__pycache__" in file.parts:
            continue  # console scripts live outside site-packages; bytecode is rebuilt
        target = site / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(base / file, target)


def _requirements(names: tuple[str, ...]) -> set[str]:
    """`names` and everything they require (no extras), normalised."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # a requirement for another Python version
        seen.add(name)
        todo += [re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in requires if "extra" not in r]
    return seen


def _buildah(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(image.buildah_cmd(*args), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"buildah {' '.join(args)}: {done.stderr[-2000:]}"
    return done.stdout.strip()


@pytest.fixture(scope="session")
def minio_standin(
    node: Node, release_dist: Release, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The release's image plus a `minio` command serving hack/s3server.py (moto)."""
    started = time.monotonic()
    sbom = json.loads((release_dist.dist / "sbom.cdx.json").read_text())
    in_image = {re.sub(r"[-_.]+", "-", c["name"]).lower() for c in sbom["components"]}
    stage = tmp_path_factory.mktemp("minio-standin")
    site = stage / "opt/standin/site-packages"
    for name in sorted(_requirements(STANDIN_PACKAGES) - in_image):
        _copy_distribution(name, site)
    for module in (
        ROOT / "hack/s3server.py",
        ROOT / "hack/controlplane.py",
        HERE / "minio_standin.py",
    ):
        shutil.copy2(module, stage / "opt/standin" / module.name)
    minio = stage / "usr/local/bin/minio"
    minio.parent.mkdir(parents=True)
    minio.write_text('#!/bin/sh\nexec /opt/venv/bin/python /opt/standin/minio_standin.py "$@"\n')
    minio.chmod(0o755)
    policy = str(image._policy_file())
    container = _buildah(
        "from", "--pull=never", "--signature-policy", policy, f"oci-archive:{release_dist.archive}"
    ).splitlines()[-1]
    _buildah("copy", container, str(stage), "/")
    _buildah(
        "config",
        "--env",
        "PYTHONPATH=/opt/standin/site-packages:/opt/standin",
        "--entrypoint",
        '["/usr/local/bin/minio"]',
        "--cmd",
        '["server", "/data"]',
        "--label",
        "org.opencontainers.image.title=minio-standin",
        container,
    )
    _buildah("commit", "--rm", container, STANDIN)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "minio-standin.tar"
        _buildah("push", "--signature-policy", policy, STANDIN, f"oci-archive:{archive}:{STANDIN}")
        image.name_archive(archive, STANDIN)
        node.import_image(archive, STANDIN)
    print(f"the MinIO stand-in image built and imported in {time.monotonic() - started:.1f} s")
    return STANDIN


def clean_slate(cluster: Cluster, release: Release, *, namespaces: tuple[str, ...] = ()) -> None:
    """Delete what install.yaml (or the chart) makes, all but the CRD, and `namespaces`."""
    if cluster.helm("status", chart.RELEASE, "-n", chart.NAMESPACE, check=False).returncode == 0:
        cluster.helm("uninstall", chart.RELEASE, "-n", chart.NAMESPACE, "--wait", timeout=300)
    objects = [
        doc
        for doc in yaml.safe_load_all(release.install_yaml.read_text())
        if doc and doc["kind"] != "CustomResourceDefinition"
    ]
    cluster.kubectl(
        "delete",
        "--ignore-not-found",
        "--wait=false",
        "-f",
        "-",
        input=yaml.safe_dump_all(objects),
    )
    for namespace in (chart.NAMESPACE, *namespaces):
        cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
        cluster.wait_namespace_gone(namespace, timeout=180)


@pytest.fixture
def slate(cluster: Cluster, release_on_node: Release) -> Iterator[None]:
    """Nothing of the release installed before the test, and nothing left after it."""
    clean_slate(cluster, release_on_node)
    yield
    clean_slate(cluster, release_on_node)
