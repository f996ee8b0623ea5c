"""The release's artifacts (hack/release.py, `make release`) and `install.yaml` on a node.

The session builds the release once (`release_dist`); these read what it wrote: every
file checksummed, the version stamped in each copy and nowhere in the working tree, the
chart and install.yaml pinned to the image by tag and digest, an SBOM of the image's
Python packages. Then install.yaml, from that folder only, onto the real node, where a
Destination turns Ready.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml
from node_fixtures import Storage, destination
from release_fixtures import Release
from rendered import objects, one, render

import chart
import image
import release
from cluster.dst import apply, s3_secret, wait_for
from harness import Cluster

pytestmark = pytest.mark.install


def test_make_release_leaves_the_working_tree_as_it_was(release_dist: Release) -> None:
    assert release_dist.status_after == release_dist.status_before


def test_every_artifact_is_checksummed(release_dist: Release) -> None:
    lines = (release_dist.dist / "checksums.txt").read_text().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in lines)
    files = {p.name for p in release_dist.dist.iterdir()} - {"checksums.txt"}
    assert set(listed) == files
    for name, digest in listed.items():
        assert hashlib.sha256((release_dist.dist / name).read_bytes()).hexdigest() == digest, name


def test_the_image_is_named_labelled_and_versioned_as_the_release(release_dist: Release) -> None:
    [entry] = image.read_index(release_dist.archive)["manifests"]
    assert entry["digest"] == release_dist.digest
    name = f"{release_dist.repository}:{release_dist.version}"
    assert entry["annotations"]["io.containerd.image.name"] == name
    _, config = image.read_config(release_dist.archive)
    assert config["config"]["Labels"]["org.opencontainers.image.version"] == release_dist.version
    # `destination-operator --version` prints the package's __version__
    init = None
    for layer in image.iter_layers(release_dist.archive):
        for member in layer:
            if member.name.endswith("site-packages/destination_operator/__init__.py"):
                body = layer.extractfile(member)
                assert body is not None
                init = body.read().decode()
    assert init is not None and f'__version__ = "{release_dist.version}"' in init


def test_the_chart_pins_the_release_image_by_tag_and_digest(release_dist: Release) -> None:
    with tarfile.open(release_dist.chart) as tgz:

        def read(name: str) -> str:
            member = tgz.extractfile(f"destination-operator/{name}")
            assert member is not None
            return member.read().decode()

        meta, values = yaml.safe_load(read("Chart.yaml")), yaml.safe_load(read("values.yaml"))
    assert (meta["version"], meta["appVersion"]) == (release_dist.version, release_dist.version)
    assert values["image"] == {
        "repository": release_dist.repository,
        "tag": release_dist.version,
        "digest": release_dist.digest,
        "pullPolicy": "IfNotPresent",
    }


def test_a_digest_pins_the_operator_and_its_test_pod(cluster: Cluster) -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    items = objects(
        render(cluster, {"image": {"repository": "r.example/op", "tag": "1.0.0", "digest": digest}})
    )
    [container] = one(items, "Deployment")["spec"]["template"]["spec"]["containers"]
    [test_pod] = [i for i in items if i["kind"] == "Pod"]
    assert (
        container["image"]
        == test_pod["spec"]["containers"][0]["image"]
        == f"r.example/op:1.0.0@{digest}"
    )
    # without one, by tag alone; a digest that is not sha256:<64 hex> is refused
    [plain] = one(objects(render(cluster)), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "@" not in plain["image"]
    with pytest.raises(chart.ChartError, match="/image/digest"):
        render(cluster, {"image": {"repository": "r", "digest": "sha256:abc"}})


def test_install_yaml_holds_the_crd_namespace_rbac_deployment_and_service(
    release_dist: Release,
) -> None:
    docs = [d for d in yaml.safe_load_all(release_dist.install_yaml.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds[:2] == ["CustomResourceDefinition", "Namespace"]
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"):
        assert kind in kinds, kind
    # the CRD is crds/'s, without Helm's keep annotation
    crd = yaml.safe_load((chart.ROOT / "crds" / chart.CRD_FILE).read_text())
    assert docs[0]["spec"] == crd["spec"]
    assert "annotations" not in docs[0]["metadata"]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == release_dist.image
    text = release_dist.install_yaml.read_text()
    assert "helm.sh/chart" not in text and "managed-by: Helm" not in text


def test_the_sbom_lists_the_images_python_packages(release_dist: Release) -> None:
    sbom = json.loads((release_dist.dist / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["metadata"]["component"]["version"] == release_dist.version
    versions = {c["name"]: c["version"] for c in sbom["components"]}
    assert versions["destination-operator"] == release_dist.version
    for package in ("boto3", "kopf", "kubernetes", "azure-storage-blob", "google-cloud-storage"):
        assert package in versions, package
    assert "pip" not in versions  # /opt/venv has none (docs/image.md)
    debian = (release_dist.dist / "debian-packages.txt").read_text()
    assert any(line.startswith("python3.11\t") for line in debian.splitlines())


def test_the_changelog_copy_is_stamped(release_dist: Release) -> None:
    text = (release_dist.dist / "CHANGELOG.md").read_text()
    assert f"\n## [{release_dist.version}] - " in text
    assert "## [Unreleased]" not in text


def test_stamping_writes_only_the_copy(tmp_path: Path) -> None:
    """Another version than the session's, without the image build: every stamped place."""
    originals = {
        p: p.read_bytes() for p in (chart.ROOT / "pyproject.toml", chart.CHART / "Chart.yaml")
    }
    release.stage_sources(tmp_path, "9.8.7", "2030-01-02")
    release.stamp_chart(tmp_path / "chart", "9.8.7", "registry.example/op", "sha256:" + "a" * 64)
    assert 'version = "9.8.7"' in (tmp_path / "pyproject.toml").read_text()
    assert '__version__ = "9.8.7"' in (tmp_path / release.PACKAGE_INIT).read_text()
    assert "\n## [9.8.7] - 2030-01-02\n" in (tmp_path / "CHANGELOG.md").read_text()
    meta = yaml.safe_load((tmp_path / "chart/Chart.yaml").read_text())
    assert (meta["version"], meta["appVersion"]) == ("9.8.7", "9.8.7")
    assert image.project_version(tmp_path) == "9.8.7"
    assert all(path.read_bytes() == body for path, body in originals.items())
    with pytest.raises(release.ReleaseError, match="semantic version"):
        release.release("v1", tmp_path / "out", "r", Path("helm"))
    # --out pointed at a folder of something else: it is not emptied
    with pytest.raises(release.ReleaseError, match="no earlier release"):
        release.release("9.8.7", tmp_path, "r", Path("helm"))
    assert (tmp_path / "pyproject.toml").is_file()


def test_install_yaml_from_the_release_verifies_a_destination_on_the_node(
    cluster: Cluster,
    destination_crd: str,
    release_on_node: Release,
    slate: None,
    storage: Storage,
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "install.yaml"
    shutil.copyfile(release_on_node.install_yaml, manifest)  # dist/ as downloaded
    cluster.kubectl("apply", "-f", str(manifest))
    namespace = chart.NAMESPACE
    # the S3 server is on the node's gateway, a private address
    cluster.kubectl(
        "set",
        "env",
        "-n",
        namespace,
        "deployment/destination-operator",
        "DESTINATION_OPERATOR_ALLOW_PRIVATE_ENDPOINTS=true",
    )
    cluster.kubectl(
        "rollout",
        "status",
        "-n",
        namespace,
        "deployment/destination-operator",
        "--timeout=240s",
        timeout=300,
    )
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)
    running = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    assert {p["spec"]["containers"][0]["image"] for p in running} == {release_on_node.image}
    team = f"release-team-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", team)
    try:
        apply(cluster, team, s3_secret(storage.server), destination("from-install-yaml", storage))
        wait_for(cluster, team, "from-install-yaml", "Ready", "True", timeout=120)
    finally:
        cluster.kubectl("delete", "namespace", team, "--wait=false")
    cluster.wait_namespace_gone(team, timeout=120)
