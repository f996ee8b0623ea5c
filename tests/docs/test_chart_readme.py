"""The chart's README.md is what hack/chart_readme.py writes from values.yaml's comments and
values.schema.json (`make verify` checks the same): a row for every value, with its
default, and the schema's closed and open objects as the schema has them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "destination-operator"
README = CHART / "README.md"


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in tree.items():
        path = prefix + (f'"{key}"' if "." in key else key)
        if isinstance(value, dict) and value:
            found |= _leaves(value, path + ".")
        else:
            found[path] = value
    return found


def test_the_readme_is_fresh() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "chart_readme.py"), "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_value_has_a_row_with_its_default() -> None:
    text = README.read_text()
    leaves = _leaves(yaml.safe_load((CHART / "values.yaml").read_text()))
    assert len(leaves) > 100
    for path, value in leaves.items():
        assert f"| `{path}` |" in text, path
        row = text.split(f"| `{path}` |", 1)[1].split("\n", 1)[0]
        assert f"`{json.dumps(value, ensure_ascii=False)}`" in row, (path, row)
    assert "| `crds.keep` | bool | `true` | Annotate the CRD helm.sh/resource-policy: keep" in text


def test_the_readme_says_which_objects_refuse_unknown_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    closed_part, open_part = README.read_text().split("These take any key", 1)
    assert schema.get("additionalProperties", True) is not False  # the top level is open
    for name, node in schema["properties"].items():
        if node.get("additionalProperties") is False:
            assert f"`{name}`" in closed_part, name
            assert f"`{name}`" not in open_part.split("## Values")[0], name
    assert "`serviceMonitor`" in closed_part and "`crds`" in closed_part
    assert "`podSecurityContext`" in open_part and "`affinity`" in open_part
