"""The update bot's configuration (renovate.json) finds every pinned tool version it should.

Renovate itself does not run here (it needs Node 22 and a forge). Its regex manager is read
with the same pattern in Python's syntax, over the same files: every version in
hack/versions.env, and the other annotated pins, must be found with the module that
hack/build-binaries.sh really builds, so a tool added without its `# renovate:` line, or a
line naming the wrong module, fails here instead of silently never being updated.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / "renovate.json").read_text())
(REGEX,) = [m for m in CONFIG["customManagers"] if m["customType"] == "regex"]


def python_pattern(js: str) -> re.Pattern[str]:
    """A JavaScript regex as Python's re reads it: named groups are spelled (?P<name>...)."""
    return re.compile(js.replace("(?<", "(?P<"))


def file_patterns() -> list[re.Pattern[str]]:
    patterns = []
    for written in REGEX["managerFilePatterns"]:
        assert written.startswith("/") and written.endswith("/"), written
        patterns.append(re.compile(written[1:-1]))
    return patterns


def found(path: str) -> list[dict[str, str]]:
    """What the regex manager extracts from one file of the repository."""
    text = (ROOT / path).read_text()
    return [
        {k: v for k, v in m.groupdict().items() if v is not None}
        for pattern in REGEX["matchStrings"]
        for m in python_pattern(pattern).finditer(text)
    ]


def test_every_version_in_versions_env_is_found_with_its_value() -> None:
    versions = {
        name: value
        for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
        if not line.startswith("#") and "=" in line
        for name, value in [line.split("=", 1)]
    }
    extracted = found("hack/versions.env")
    assert [d["currentValue"] for d in extracted] == list(versions.values())
    assert all(d["datasource"] == "go" for d in extracted)


def test_each_go_module_named_is_the_one_build_binaries_builds() -> None:
    script = (ROOT / "hack" / "build-binaries.sh").read_text()
    for dep in found("hack/versions.env"):
        module = dep.get("packageName", dep["depName"])
        assert re.search(rf'"{re.escape(module)}[@/]', script), module
    (fake_gcs,) = found("hack/build-fake-gcs.sh")
    assert f'"{fake_gcs["depName"]}@$version"' in (ROOT / "hack" / "build-fake-gcs.sh").read_text()


def test_the_oldest_kubernetes_gets_patch_releases_only() -> None:
    (minimum,) = [d for d in found("hack/versions.env") if d["depName"] == "kubernetes-minimum"]
    assert minimum["packageName"] == "k8s.io/kubernetes"
    (rule,) = [
        r for r in CONFIG["packageRules"] if r.get("matchDepNames") == ["kubernetes-minimum"]
    ]
    assert rule["matchUpdateTypes"] == ["major", "minor"] and rule["enabled"] is False


def test_every_annotated_file_is_read_and_each_annotation_is_found() -> None:
    tracked = subprocess.run(
        ["git", "grep", "-l", "-E", "^# renovate: datasource="],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    annotated = sorted(tracked)
    assert annotated == sorted(
        ["hack/versions.env", "hack/bootstrap.sh", "hack/azurite.py", "hack/build-fake-gcs.sh"]
    )
    for path in annotated:
        assert any(p.search(path) for p in file_patterns()), path
        lines = (ROOT / path).read_text().count("# renovate: datasource=")
        assert len(found(path)) == lines, path
    (pip,) = found("hack/bootstrap.sh")
    assert (pip["datasource"], pip["depName"]) == ("pypi", "pip")
    (azurite,) = found("hack/azurite.py")
    assert (azurite["datasource"], azurite["depName"]) == ("npm", "azurite")
