"""CHANGELOG.md against the code: the version it describes is the one the package and the
chart carry, and the API it lists is the API the models define (docs/api-stability.md: every
change to the API is recorded there)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from destination_operator.api import GROUP, VERSION
from destination_operator.api.status import ConditionType, EventReason, Reason

ROOT = Path(__file__).resolve().parents[2]
CHANGELOG = ROOT / "CHANGELOG.md"
CHART = ROOT / "charts" / "destination-operator" / "Chart.yaml"


def newest_entry() -> tuple[str, str]:
    """The heading and the text of the newest entry."""
    entries = re.split(r"^## ", CHANGELOG.read_text(), flags=re.MULTILINE)[1:]
    heading, _, body = entries[0].partition("\n")
    return heading, body


def test_the_newest_entry_is_the_version_the_package_and_the_chart_carry() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load(CHART.read_text())
    heading, body = newest_entry()
    text = " ".join(body.split())
    assert version in heading, heading
    assert f"Operator {version}" in text
    assert f"chart {chart['version']} (appVersion {chart['appVersion']})" in text
    assert f"`{GROUP}/{VERSION}`" in text


def test_every_condition_type_reason_and_event_reason_is_recorded() -> None:
    text = CHANGELOG.read_text()
    names = {f"`{item.value}`" for item in (*ConditionType, *Reason, *EventReason)}
    missing = sorted(name for name in names if name not in text)
    assert not missing, f"in the API but not in CHANGELOG.md: {missing}"
