"""docs/getting-started.md, run as written on the real node, from the release's dist/.

Each `sh` block of the page runs with bash, in page order, in a folder where each YAML
block of the page is saved under the name its first line gives. Before a block runs,
the names the node cannot reach are replaced by their local equivalents (the page's
footnote states the rule; `SUBSTITUTIONS` is it): the OCI chart by the release's .tgz,
the MinIO image by a stand-in serving hack/s3server.py, the MinIO Service's DNS name
by the MinIO pod's address (the node has no cluster DNS and no kube-proxy).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from release_fixtures import STANDIN, Release

import chart
from controlplane_fixtures import CRD
from harness import Cluster

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs/getting-started.md"
EXAMPLES = ROOT / "docs/examples/getting-started"
CHART_REF = "oci://ghcr.io/destination-operator/charts/destination-operator"
MINIO_IMAGE = re.compile(r"quay\.io/minio/minio:\S+")
MINIO_HOST = "minio.minio.svc.cluster.local"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def blocks() -> list[tuple[str, str]]:
    """(language, text) of each fenced block of the page, in order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(PAGE.read_text())]


def file_name(yaml_block: str) -> str:
    match = re.match(r"# (\S+\.yaml):", yaml_block)
    assert match, f"a YAML block of the page does not start with '# NAME.yaml:': {yaml_block[:60]}"
    return match.group(1)


def test_the_pages_files_are_the_examples() -> None:
    """The page shows docs/examples/getting-started/ as it is, and nothing else."""
    shown = {file_name(text): text for lang, text in blocks() if lang == "yaml"}
    assert shown == {p.name: p.read_text() for p in EXAMPLES.glob("*.yaml")}


def minio_pod_ip(cluster: Cluster) -> str:
    pods = json.loads(cluster.kubectl("get", "pods", "-n", "minio", "-o", "json").stdout)
    ips = [p["status"].get("podIP") for p in pods["items"] if p["status"].get("podIP")]
    assert len(ips) == 1, f"MinIO pods with an address: {ips}"
    return str(ips[0])


def substitute(text: str, cluster: Cluster, release: Release) -> str:
    """The page's one rule: each name the node cannot reach becomes its local equivalent."""
    for match in re.finditer(re.escape(CHART_REF) + r"[\s\\]*--version (\S+)", text):
        assert match.group(1) == release.version, "the page installs another version"
    text = text.replace(CHART_REF, str(release.chart))
    text = MINIO_IMAGE.sub(STANDIN, text)
    if MINIO_HOST in text:
        text = text.replace(MINIO_HOST, minio_pod_ip(cluster))
    return text


@pytest.fixture
def empty_cluster(cluster: Cluster, destination_crd: str, slate: None) -> Iterator[None]:
    """Nothing of the operator in the cluster, not even the session's CRD, which the page's
    chart installs; the session's is applied again afterwards."""
    cluster.kubectl("delete", "crd", destination_crd, "--ignore-not-found", timeout=180)
    try:
        yield
    finally:
        cluster.apply_crd(CRD)


def test_the_getting_started_page_runs_on_a_node(
    cluster: Cluster,
    release_on_node: Release,
    minio_standin: str,
    empty_cluster: None,
    tmp_path: Path,
) -> None:
    assert minio_standin == STANDIN
    env = {
        **os.environ,
        "PATH": f"{cluster.bin_dir}:{os.environ['PATH']}",
        "KUBECONFIG": cluster.kubeconfig,
        # helm's caches and settings in the test's folder, not the user's
        **{
            f"HELM_{kind}_HOME": str(tmp_path / f"helm-{kind.lower()}")
            for kind in ("CACHE", "CONFIG", "DATA")
        },
    }
    work = tmp_path / "work"
    work.mkdir()
    files: dict[str, str] = {}
    last_output = ""
    timings = []
    try:
        for lang, text in blocks():
            if lang == "yaml":
                files[file_name(text)] = text
                continue
            if lang == "text":  # an output the page shows: what kubectl printed, ages aside
                printed = {line.split()[0]: line.split()[:-2] for line in last_output.splitlines()}
                for line in substitute(text, cluster, release_on_node).splitlines():
                    assert printed.get(line.split()[0]) == line.split()[:-2], last_output
                continue
            assert lang == "sh", f"a block the test does not know how to run: {lang}"
            for name, body in files.items():
                (work / name).write_text(substitute(body, cluster, release_on_node))
            script = substitute(text, cluster, release_on_node)
            started = time.monotonic()
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            timings.append((text.splitlines()[0], time.monotonic() - started))
            assert done.returncode == 0, (
                f"{script}\nexit {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
            last_output = done.stdout
            print(f"$ {script}\n{done.stdout}")
            if "wait destination/probes" in text:
                check_the_probe(cluster, release_on_node)
    finally:
        for first_line, seconds in timings:
            print(f"{seconds:6.1f} s  {first_line}")
    # the page's clean-up ran: nothing of it is left but the operator's (empty) namespace
    for namespace in ("team-a", "minio"):
        cluster.wait_namespace_gone(namespace, timeout=180)
    assert cluster.helm("status", chart.RELEASE, "-n", chart.NAMESPACE, check=False).returncode != 0


def check_the_probe(cluster: Cluster, release: Release) -> None:
    """What Ready rests on: the release's pinned image ran, and the store saw the probe."""
    pods = json.loads(cluster.kubectl("get", "pods", "-n", chart.NAMESPACE, "-o", "json").stdout)
    images = {p["spec"]["containers"][0]["image"] for p in pods["items"]}
    assert images == {release.image}
    log = cluster.kubectl("logs", "-n", "minio", "deployment/minio").stdout
    assert re.search(r'"PUT /probes/\S+ HTTP/1.1" 200', log), log[-2000:]
    assert re.search(r'DELETE /probes/\S+ HTTP/1.1\S*" 204', log), log[-2000:]
