"""The chart's operator settings, read from its files: each setting's chart value is at the
path its name gives, with the operator's default (logFormat aside: JSON in a cluster), the
schema's bounds and choices, and the variable of that name in the Deployment; each old value
is still in the schema and mapped to its new one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from annotated_types import Ge, Gt, Le

from destination_operator.settings import (
    LogFormat,
    chart_value,
    env_var,
    field_info,
    naming,
    setting_names,
)

CHART = Path(__file__).resolve().parents[2] / "charts" / "destination-operator"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEPLOYMENT = (CHART / "templates" / "deployment.yaml").read_text()
HELPERS = (CHART / "templates" / "_helpers.tpl").read_text()
IN_CHART = [name for name in setting_names() if chart_value(name) is not None]
OLD = [(name, old) for name in setting_names() for old in naming(name).old_chart_values]


def at(tree: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        tree = tree[key]
    return tree


def schema_of(path: str) -> dict[str, Any]:
    """The schema of a value, its $ref replaced by the definition (its own keys kept)."""
    node: dict[str, Any] = SCHEMA
    for key in path.split("."):
        node = node["properties"][key]
    if "$ref" in node:
        definition = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
        node = {**definition, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


@pytest.mark.parametrize("name", IN_CHART)
def test_each_chart_value_has_the_operators_default(name: str) -> None:
    path = chart_value(name)
    assert path is not None
    default = field_info(name).get_default(call_default_factory=True)
    if name == "log_format":
        # the one deliberate difference: JSON for a cluster's log collectors, as Flux does;
        # text stays the operator's default, for a terminal
        assert (default, at(VALUES, path)) == (LogFormat.TEXT, "json")
        return
    if name == "leader_elect":
        # off for a process on a laptop or in the tests; the chart, which makes the Lease
        # and grants its rights, turns it on
        assert (default, at(VALUES, path)) == (False, True)
        return
    assert at(VALUES, path) == default, path


@pytest.mark.parametrize("name", IN_CHART)
def test_each_chart_value_is_passed_as_its_variable(name: str) -> None:
    path = chart_value(name)
    assert f"- name: {env_var(name)}\n" in DEPLOYMENT, name
    if naming(name).old_chart_values:
        # a renamed value goes through the helper that maps its old name to it
        expected = f'include "destination-operator.{path}"'
    else:
        expected = f".Values.{path}"
    before = DEPLOYMENT.split(f"- name: {env_var(name)}\n", 1)[0].splitlines()[-2]
    after = DEPLOYMENT.split(f"- name: {env_var(name)}\n", 1)[1].splitlines()[0]
    assert expected in after or expected in before, (name, before, after)


@pytest.mark.parametrize("name", IN_CHART)
def test_the_schema_bounds_each_value_as_the_operator_does(name: str) -> None:
    path = chart_value(name)
    assert path is not None
    schema = schema_of(path)
    info = field_info(name)
    bounds = {
        "minimum": next((m.ge for m in info.metadata if isinstance(m, Ge)), None),
        "exclusiveMinimum": next((m.gt for m in info.metadata if isinstance(m, Gt)), None),
        "maximum": next((m.le for m in info.metadata if isinstance(m, Le)), None),
    }
    for key, bound in bounds.items():
        if key == "minimum" and name.endswith("_port"):
            continue  # the chart needs both ports (health probes, Service); 0 turns one off
        assert schema.get(key) == bound, (name, key, schema)


@pytest.mark.parametrize(("name", "old"), OLD, ids=[old for _, old in OLD])
def test_an_old_chart_value_is_still_allowed_and_mapped(name: str, old: str) -> None:
    new = chart_value(name)
    assert new is not None
    assert old not in VALUES  # not set by default, so that setting it is noticed
    assert schema_of(old) | {"description": ""} == schema_of(new) | {"description": ""}
    assert "deprecated" in SCHEMA["properties"][old]["description"]
    # the helper that maps it, and the line that makes NOTES.txt warn
    assert f".Values.{old}" in HELPERS
    assert f"\n{old} {new}\n" in HELPERS


def test_the_deployment_sets_only_the_variables_of_chart_settings() -> None:
    named = {
        line.split("- name: ", 1)[1].strip()
        for line in DEPLOYMENT.splitlines()
        if "- name: DESTINATION_OPERATOR_" in line
    }
    assert named == {env_var(name) for name in IN_CHART}
