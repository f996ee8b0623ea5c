"""The chart's renamed values, rendered by helm (no cluster): an old value renders exactly as
its new one, wins over it when both are set, and makes NOTES.txt say its new name once; the
defaults log JSON.

NOTES.txt is not rendered by `helm template`: a copy of the chart holds it as a named
template, shown in a ConfigMap."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import chart
from destination_operator.settings import chart_value, naming, setting_names

pytestmark = pytest.mark.install

# an old value, and a value for it that is not the default
OLD = {
    "watchNamespaces": ["team-a", "team-b"],
    "defaultTimeoutSeconds": 12.5,
}
NEW = {old: chart_value(name) for name in setting_names() for old in naming(name).old_chart_values}
NOTES_TEMPLATE = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
    'data:\n  notes: {{ include "test.notes" . | toJson }}\n'
)


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        return chart.helm_binary()
    except chart.ChartError as err:
        pytest.skip(f"no helm: {err}")


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart whose NOTES.txt renders as a ConfigMap's data."""
    copy = tmp_path_factory.mktemp("chart") / "destination-operator"
    shutil.copytree(chart.CHART, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "_test_notes.tpl").write_text(
        '{{- define "test.notes" -}}\n' + notes + "{{- end }}\n"
    )
    (copy / "templates" / "test-notes.yaml").write_text(NOTES_TEMPLATE)
    return copy


@pytest.fixture
def use_chart(monkeypatch: pytest.MonkeyPatch, notes_chart: Path) -> Iterator[None]:
    monkeypatch.setattr(chart, "CHART", notes_chart)
    yield


def rendered(helm: Path, values: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """(the chart's objects, its NOTES) for these values."""
    # chart_dir: helm_template's default was bound before `use_chart` replaced chart.CHART
    text = chart.helm_template(helm, values=values, chart_dir=chart.CHART)
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    notes = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "notes")
    docs.remove(notes)
    return docs, notes["data"]["notes"]


def operator_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"]}


def warning(old: str) -> str:
    return f"WARNING: the value {old} is deprecated: rename it {NEW[old]}."


def test_every_old_value_is_tested() -> None:
    assert set(OLD) == set(NEW)


@pytest.mark.parametrize("old", sorted(OLD))
@pytest.mark.usefixtures("use_chart")
def test_an_old_value_renders_as_its_new_one_and_notes_warn_once(helm: Path, old: str) -> None:
    new = NEW[old]
    assert new is not None
    old_docs, old_notes = rendered(helm, {old: OLD[old]})
    new_docs, new_notes = rendered(helm, {new: OLD[old]})
    assert old_docs == new_docs
    defaults, _ = rendered(helm, {})
    assert operator_env(old_docs) != operator_env(defaults)  # the value did arrive
    assert old_notes.count(warning(old)) == 1
    assert "WARNING" not in new_notes


@pytest.mark.parametrize("old", sorted(OLD))
@pytest.mark.usefixtures("use_chart")
def test_an_old_value_wins_over_its_new_one(helm: Path, old: str) -> None:
    new = NEW[old]
    assert new is not None
    other = ["team-c"] if isinstance(OLD[old], list) else 7
    both, notes = rendered(helm, {old: OLD[old], new: other})
    assert both == rendered(helm, {new: OLD[old]})[0]
    assert f"{new} is ignored while {old} is set" in " ".join(notes.split())


@pytest.mark.usefixtures("use_chart")
def test_the_defaults_log_json_and_warn_of_nothing(helm: Path) -> None:
    docs, notes = rendered(helm, {})
    assert operator_env(docs)["DESTINATION_OPERATOR_LOG_FORMAT"] == "json"
    assert "WARNING" not in notes


@pytest.mark.parametrize(
    ("crds", "says"),
    [
        ({}, "`helm upgrade` upgrades it. Uninstalling keeps it"),
        ({"keep": False}, "Uninstalling DELETES it and every Destination"),
        ({"install": False}, "apply each chart version's CRD yourself before `helm upgrade`"),
    ],
)
@pytest.mark.usefixtures("use_chart")
def test_the_notes_say_what_upgrade_and_uninstall_do_to_the_crd(
    helm: Path, crds: dict[str, bool], says: str
) -> None:
    _, notes = rendered(helm, {"crds": crds} if crds else {})
    assert says in " ".join(notes.split())
