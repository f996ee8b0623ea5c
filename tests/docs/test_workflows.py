"""The hosted CI workflows (.github/workflows): what actionlint in `make lint` cannot see.

Every action is pinned by its full commit SHA with the version it was at in a comment, so a
moved tag cannot change what runs with the release's signing identity.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yaml"))
PINNED = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def test_there_are_a_ci_and_a_release_workflow() -> None:
    assert [path.name for path in WORKFLOWS] == ["ci.yaml", "release.yaml"]


def test_every_action_is_pinned_by_commit_with_its_version() -> None:
    loose = [
        f"{path.name}:{number}: {line.strip()}"
        for path in WORKFLOWS
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"^\s*(?:- )?uses:", line) and not PINNED.match(line)
    ]
    assert loose == []


def test_release_runs_on_version_tags_only_and_signs_keylessly() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yaml").read_text())
    # PyYAML reads the key `on` as the boolean True.
    assert workflow[True] == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"] == {}
    job = workflow["jobs"]["publish"]
    assert job["permissions"] == {"contents": "write", "packages": "write", "id-token": "write"}
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert 'make release "VERSION=$VERSION"' in runs
    assert "cosign sign --yes --recursive" in runs  # the image index and each platform's
    assert "cosign attest --yes --type cyclonedx" in runs  # the SBOM
    assert 'cosign sign --yes "${CHARTS#oci://}/destination-operator@$digest"' in runs  # the chart


def test_the_readmes_install_commands_name_what_the_release_publishes() -> None:
    """The README's chart and install.yaml are where the workflow puts them, for the owner the
    README assumes (the Dockerfile's source URL names the same repository)."""
    owner_repo = "destination-operator/destination-operator"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG SOURCE_URL=https://github.com/{owner_repo}\n" in dockerfile
    owner = owner_repo.split("/")[0]
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yaml").read_text())
    steps = {step.get("name"): step for step in workflow["jobs"]["publish"]["steps"]}
    names = steps["Names"]["run"]
    assert 'echo "charts=oci://$REGISTRY/$owner/charts"' in names
    assert workflow["jobs"]["publish"]["env"]["REGISTRY"] == "ghcr.io"
    chart = f"oci://ghcr.io/{owner}/charts/destination-operator"  # helm push appends the name
    readme = (ROOT / "README.md").read_text()
    assert f"helm install destination-operator {chart} \\\n  --version X.Y.Z " in readme
    # gh release create uploads dist/install.yaml to the release of the tag vX.Y.Z
    assert 'gh release create "$TAG"' in steps["GitHub release"]["run"]
    url = f"https://github.com/{owner_repo}/releases/download/vX.Y.Z/install.yaml"
    assert f"kubectl apply -f {url}\n" in readme
