"""The chart as `helm template` renders it, read back: its objects, one object of a kind, the
operator container's environment. Shared by the chart's render tests."""

from __future__ import annotations

from typing import Any

import yaml

import chart
from harness import Cluster


def objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def one(items: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [item for item in items if item["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def render(cluster: Cluster, values: dict[str, Any] | None = None, **kwargs: Any) -> str:
    return chart.helm_template(cluster.bin_dir / "helm", values=values, **kwargs)


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"]}
