"""Commands and YAML of docs/install.md and docs/upgrade.md, read from the pages, against the
session's API server.

The kustomize overlay is built with the real `kubectl kustomize` and applied server-side (what
Flux and Argo CD use) with docs/upgrade.md's command, as a server dry run: the API server
merges, validates and admits every object and stores nothing, so the shared control plane gets
no second operator.
The overlay the page once showed, a JSON patch appending a variable the base already sets,
is refused the same way; that refusal is why the page's patch is keyed by name.

The `helm upgrade` both pages give (`--reset-then-reuse-values`) runs against a release of an
older chart: it keeps the value the user set and takes the new chart's default for the rest,
where `--reuse-values` keeps the old chart's default.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import chart
from harness import Cluster
from install.rendered import container_env, objects, one

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
INSTALL_DOC = ROOT / "docs" / "install.md"
UPGRADE_DOC = ROOT / "docs" / "upgrade.md"
OVERLAY_PATH = "overlays/prod/kustomization.yaml"
APPENDED = """\
- op: add
  path: /spec/template/spec/containers/0/env/-
  value: {name: DESTINATION_OPERATOR_LOG_FORMAT, value: json}
"""


def doc_overlay() -> dict[str, Any]:
    """The YAML block of install.md that starts with the overlay's path."""
    blocks = re.findall(r"```yaml\n(.*?)```", INSTALL_DOC.read_text(), re.S)
    (block,) = [b for b in blocks if b.startswith(f"# {OVERLAY_PATH}\n")]
    overlay: dict[str, Any] = yaml.safe_load(block)
    assert overlay["resources"][0] == "../../manifests", overlay["resources"]
    return overlay


def upgrade_doc_apply() -> list[str]:
    """docs/upgrade.md's server-side apply of the base (or an overlay of it), as words."""
    (line,) = [
        line.split("#", 1)[0].split()
        for line in UPGRADE_DOC.read_text().splitlines()
        if line.startswith("kubectl apply --server-side") and "-k manifests/" in line
    ]
    assert line[-2:] == ["-k", "manifests/"], line
    return line[1:-2]  # without `kubectl` and the folder


def write_overlay(tmp_path: Path, overlay: dict[str, Any]) -> Path:
    """The overlay at overlays/prod in a scratch folder, its base this checkout's manifests/."""
    folder = tmp_path / "overlays" / "prod"
    folder.mkdir(parents=True)
    overlay = {**overlay, "resources": [os.path.relpath(ROOT / "manifests", folder)]}
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return folder


def operator(built: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator's container in the Deployment of a built overlay or base."""
    (container,) = one(built, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def env_names(built: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in operator(built)["env"]]


def test_the_docs_overlay_applies_server_side_and_an_appended_variable_is_refused(
    cluster: Cluster, destination_crd: str, tmp_path: Path
) -> None:
    overlay = doc_overlay()
    folder = write_overlay(tmp_path / "docs", overlay)
    built = objects(cluster.kubectl("kustomize", str(folder)).stdout)
    base = objects(cluster.kubectl("kustomize", str(ROOT / "manifests")).stdout)
    assert len(built) == len(base)

    # the image is the overlay's and the patched variable is there once, with its new value
    container = operator(built)
    assert container["image"] == "registry.example.com/destination-operator:0.1.0"
    assert sorted(env_names(built)) == sorted(env_names(base))  # replaced, not added
    assert len(set(env_names(built))) == len(env_names(built))
    patched = [
        item
        for item in container["env"]
        if item["name"] == "DESTINATION_OPERATOR_PROBE_CONCURRENCY"
    ]
    assert patched == [{"name": "DESTINATION_OPERATOR_PROBE_CONCURRENCY", "value": "16"}]

    # the base's namespace must exist for its namespaced objects to dry-run
    cluster.kubectl(
        "apply", "--server-side", "-f", str(ROOT / "manifests" / "rbac" / "namespace.yaml")
    )
    apply = [*upgrade_doc_apply(), "--dry-run=server", "--field-manager=docs-overlay"]
    done = cluster.kubectl(*apply, "-k", str(folder))
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == len(built), done.stdout
    assert all(line.endswith("serverside-applied (server dry run)") for line in lines), lines
    assert "deployment.apps/destination-operator serverside-applied (server dry run)" in lines
    assert f"customresourcedefinition.apiextensions.k8s.io/{destination_crd}" in done.stdout

    # the same overlay appending a variable the base sets: built, then refused by the server
    appending = {**overlay, "patches": [{"target": {"kind": "Deployment"}, "patch": APPENDED}]}
    folder = write_overlay(tmp_path / "appending", appending)
    twice = env_names(objects(cluster.kubectl("kustomize", str(folder)).stdout))
    assert twice.count("DESTINATION_OPERATOR_LOG_FORMAT") == 2
    refused = cluster.kubectl(*apply, "-k", str(folder), check=False)
    assert refused.returncode != 0
    assert 'duplicate entries for key [name="DESTINATION_OPERATOR_LOG_FORMAT"]' in refused.stderr, (
        refused.stderr
    )


def helm_upgrade_commands() -> list[list[str]]:
    """Every `helm upgrade` of install.md and upgrade.md, as words, in code or in a block."""
    commands = []
    for doc in (INSTALL_DOC, UPGRADE_DOC):
        text = doc.read_text().replace("\\\n", " ")
        for found in re.finditer(r"helm upgrade destination-operator [^`\n]*", text):
            commands.append(found.group(0).split("#", 1)[0].split())
    return commands


def test_the_docs_helm_upgrade_takes_the_new_charts_defaults_and_keeps_the_users_values(
    cluster: Cluster, tmp_path: Path
) -> None:
    commands = helm_upgrade_commands()
    assert len(commands) >= 2  # one on each page
    (command,) = {tuple(words) for words in commands}  # the pages agree
    assert command == (
        "helm", "upgrade", "destination-operator", "charts/destination-operator",
        "-n", "destination-operator-system", "--reset-then-reuse-values",
    ), command  # fmt: skip

    # An older chart: its default for probeConcurrency differs. The release leaves the
    # session's CRD alone (crds.install=false, a value the user set, kept by both upgrades);
    # the upgrades are client-side dry runs.
    values = yaml.safe_load((chart.CHART / "values.yaml").read_text())
    new_default = values["probeConcurrency"]
    old = tmp_path / "old-chart"
    shutil.copytree(chart.CHART, old, symlinks=True)
    old_values = (old / "values.yaml").read_text()
    old_values, count = re.subn(
        r"^probeConcurrency: \d+", f"probeConcurrency: {new_default + 1}", old_values, flags=re.M
    )
    assert count == 1
    (old / "values.yaml").write_text(old_values)

    suffix = secrets.token_hex(3)
    release, namespace = f"docs-upgrade-{suffix}", f"docs-upgrade-{suffix}"
    cluster.helm(
        "install", release, str(old), "-n", namespace, "--create-namespace",
        "--set", "replicas=0", "--set", "logLevel=DEBUG", "--set", "crds.install=false",
    )  # fmt: skip
    try:

        def upgraded(*flags: str) -> dict[str, str]:
            done = cluster.helm(
                "upgrade", release, str(chart.CHART), "-n", namespace, *flags,
                "--dry-run=client", "-o", "json",
            )  # fmt: skip
            manifest = objects(yaml.safe_load(done.stdout)["manifest"])
            deployments = [item for item in manifest if item["kind"] == "Deployment"]
            return container_env(deployments[0])

        env = upgraded(*command[6:])
        assert env["DESTINATION_OPERATOR_LOG_LEVEL"] == "DEBUG"  # what the user set
        assert env["DESTINATION_OPERATOR_PROBE_CONCURRENCY"] == str(new_default)  # the new default
        kept = upgraded("--reuse-values")
        assert kept["DESTINATION_OPERATOR_LOG_LEVEL"] == "DEBUG"
        assert kept["DESTINATION_OPERATOR_PROBE_CONCURRENCY"] == str(new_default + 1)  # the old
    finally:
        cluster.helm("uninstall", release, "-n", namespace, check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
