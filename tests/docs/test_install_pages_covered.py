"""Every command and YAML block of docs/install.md and docs/upgrade.md is accounted for.

Each block, known by its page and first line, is listed below with the tests that run or
apply it, and whether part of it is not run, in which case the page must say so beside the
block. A block added without an entry fails here, and so does an entry whose block is gone
or whose test does not exist. `reads` marks the tests that take the block from the page
itself rather than running their own copy of it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("docs/install.md", "docs/upgrade.md")
UNTESTED_WORDS = re.compile(r"not tested|not run|untested|is not run|never run", re.I)
NEAR = 20  # lines either side of a block where the page says what is not run


class Cover(NamedTuple):
    tests: tuple[str, ...]
    reads: bool = False  # the first test reads the block from the page
    untested: bool = False  # part of the block is not run: the page says so beside it


NODE = "tests/install/test_node_install.py"
CHART = "tests/install/test_chart.py"
DOCS = "tests/install/test_install_docs.py"
UPGRADE = "tests/cluster/test_upgrade_uninstall.py"
UNINSTALL = "helm uninstall destination-operator -n destination-operator-system"
COVERED = {
    (
        "docs/install.md",
        "helm install destination-operator charts/destination-operator"
        " --namespace destination-operator-system --create-namespace"
        " --set image.repository=registry.example.com/destination-operator --set image.tag=0.1.0",
    ): Cover(
        # installed on a node with the image built there; `helm test` is not run
        (f"{NODE}::test_the_chart_on_the_node_verifies_and_survives_what_operations_do",),
        untested=True,
    ),
    (
        "docs/install.md",
        "helm install destination-operator charts/destination-operator"
        " -n destination-operator-system --create-namespace --set 'namespaces={team-a,team-b}'",
    ): Cover((f"{CHART}::test_the_release_verifies_destinations_only_in_the_watched_namespaces",)),
    (
        "docs/install.md",
        "helm install destination-operator charts/destination-operator"
        " -n destination-operator-system --create-namespace"
        " --set 'shards[0].name=a' --set 'shards[0].destinationSelector=destinations.io/shard=a'"
        " --set 'shards[1].name=rest'"
        " --set 'shards[1].destinationSelector=destinations.io/shard notin (a)'",
    ): Cover(
        (
            "tests/install/test_chart_shards.py"
            "::test_each_shard_renders_a_deployment_alike_but_for_its_shard",
        ),
        untested=True,  # the shards are rendered, not installed
    ),
    ("docs/install.md", "kubectl apply -k manifests/"): Cover(
        (
            f"{NODE}::test_the_kustomize_base_on_the_node_verifies_a_destination",
            "tests/cluster/test_rbac_grants_used.py"
            "::test_every_permission_the_chart_grants_was_used_by_the_operator",
        ),
    ),
    ("docs/install.md", "apiVersion: kustomize.config.k8s.io/v1beta1"): Cover(
        (f"{DOCS}::test_the_docs_overlay_applies_server_side_and_an_appended_variable_is_refused",),
        reads=True,
    ),
    ("docs/install.md", "apiVersion: v1"): Cover(  # argocd-cm's health check
        (f"{CHART}::test_the_argocd_health_check_on_real_destinations_agrees_with_kstatus",),
        reads=True,
        untested=True,  # Argo CD itself is not run
    ),
    ("docs/install.md", "apiVersion: argoproj.io/v1alpha1"): Cover((), untested=True),
    ("docs/install.md", "apiVersion: source.toolkit.fluxcd.io/v1"): Cover(
        (
            "tests/cluster/test_flux.py"
            "::test_the_kustomization_is_ready_only_once_every_destination_is_verified",
            "tests/cluster/test_flux.py"
            "::test_a_stalled_destination_fails_the_kustomization_and_a_commit_heals_it",
        ),
        reads=True,
    ),
    # the operator's own Kustomization and HelmRelease: helm-controller cannot be built here
    ("docs/install.md", "apiVersion: kustomize.toolkit.fluxcd.io/v1"): Cover((), untested=True),
    (
        "docs/install.md",
        "helm uninstall destination-operator -n destination-operator-system",
    ): Cover(
        (f"{CHART}::test_uninstall_keeps_the_crd_and_every_destination_with_its_status",),
    ),
    (
        "docs/upgrade.md",
        "helm template destination-operator charts/destination-operator"
        " --show-only templates/crds.yaml | kubectl apply --server-side -f -",
    ): Cover((f"{UPGRADE}::test_without_crds_install_helm_leaves_the_crd_to_you",), reads=True),
    (
        "docs/upgrade.md",
        "kubectl label crd destinations.destinations.io app.kubernetes.io/managed-by=Helm",
    ): Cover(
        (f"{UPGRADE}::test_a_crd_from_the_charts_crds_folder_is_handed_to_the_release",),
        reads=True,
    ),
    (
        "docs/upgrade.md",
        "helm upgrade destination-operator charts/destination-operator"
        " -n destination-operator-system --reset-then-reuse-values",
    ): Cover(
        (
            f"{DOCS}"
            "::test_the_docs_helm_upgrade_takes_the_new_charts_defaults_and_keeps_the_users_values",
        ),
        reads=True,
    ),
    ("docs/upgrade.md", "kubectl apply --server-side --force-conflicts -k manifests/"): Cover(
        (f"{DOCS}::test_the_docs_overlay_applies_server_side_and_an_appended_variable_is_refused",),
        reads=True,
    ),
    (
        "docs/upgrade.md",
        "kubectl patch dst NAME -n NAMESPACE --type=json"
        """ -p '[{"op":"remove","path":"/metadata/finalizers"}]'""",
    ): Cover((f"{UPGRADE}::test_deleting_the_crd_deletes_every_destination_and_no_secret",)),
    (
        "docs/upgrade.md",
        "helm uninstall destination-operator -n destination-operator-system",
    ): Cover(
        (f"{CHART}::test_uninstall_keeps_the_crd_and_every_destination_with_its_status",),
    ),
    ("docs/upgrade.md", "kubectl delete crd destinations.destinations.io"): Cover(
        (f"{UPGRADE}::test_deleting_the_crd_deletes_every_destination_and_no_secret",),
    ),
}


class Block(NamedTuple):
    page: str
    line: int  # of the opening fence
    first: str  # the first command or line that is not a comment, without a trailing comment
    end: int  # of the closing fence


def blocks(page: str) -> list[Block]:
    """The page's fenced blocks of commands or YAML, also those indented in a list."""
    text = (ROOT / page).read_text()
    found = []
    for m in re.finditer(r"^( *)```(sh|yaml)\n(.*?)^\1```", text, re.S | re.M):
        joined = m.group(3).replace("\\\n", " ")  # a command continued on the next lines
        lines = [" ".join(line.split()) for line in joined.splitlines()]
        first = next(line for line in lines if line and not line.startswith("#"))
        start = text[: m.start()].count("\n") + 1
        end = start + m.group(0).count("\n")
        found.append(Block(page, start, re.sub(r"\s+#.*$", "", first), end))
    return found


ALL = [block for page in PAGES for block in blocks(page)]


def test_every_block_has_an_entry_and_every_entry_a_block() -> None:
    keys = [(block.page, block.first) for block in ALL]
    missing = sorted({key for key in keys if key not in COVERED})
    assert missing == [], "blocks without an entry in COVERED"
    assert sorted(set(COVERED) - set(keys)) == [], "entries whose block is gone"


@pytest.mark.parametrize("block", ALL, ids=[f"{b.page}:{b.line}" for b in ALL])
def test_each_block_is_run_or_the_page_says_what_is_not(block: Block) -> None:
    cover = COVERED[(block.page, block.first)]
    assert cover.tests or cover.untested
    for test in cover.tests:
        path, name = test.split("::")
        source = (ROOT / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"{test} does not exist"
    if cover.reads:
        path = cover.tests[0].split("::")[0]
        assert Path(block.page).name in (ROOT / path).read_text(), f"{path} does not read the page"
    if cover.untested:
        lines = (ROOT / block.page).read_text().splitlines()
        beside = "\n".join(lines[max(0, block.line - NEAR) : block.end + NEAR])
        assert UNTESTED_WORDS.search(beside), f"{block.page}:{block.line}: say what is not run"
