#!/usr/bin/env python3
"""Write the chart's README.md from the comments of its values.yaml (helm-docs style).

    python hack/chart_readme.py write    # rewrite charts/destination-operator/README.md
    python hack/chart_readme.py check    # exit 1 when README.md is not what write would write

In values.yaml, the comment lines right above a key, and a comment after its value on
the same line, describe it. A comment block at the left margin followed by a blank line
opens a section of the table (the file's first block, its header, excepted). Commented
example lines (`#   shards:`, indented past the `#`) stay in values.yaml only. The type
of a value that is null by default comes from values.schema.json; which objects refuse
unknown keys, too. `make crds` writes the README and `make verify` fails when it is stale.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import generated

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "destination-operator"
README = CHART / "README.md"

KEY = re.compile(r"^(?P<indent> *)(?P<key>[^\s#:-][^:]*?):(?:\s+(?P<rest>.*))?$")
TRAILING = re.compile(r"\s+#\s+(?P<comment>.*)$")
EXAMPLE = re.compile(r"^#\s{2,}")


@dataclass
class Row:
    key: str
    type: str
    default: str
    description: str


@dataclass
class Section:
    text: str
    rows: list[Row] = field(default_factory=list)


def _lookup(values: dict[str, Any], path: list[str]) -> Any:
    node: Any = values
    for part in path:
        node = node[part]
    return node


def _schema_at(schema: dict[str, Any], path: list[str]) -> dict[str, Any]:
    """The schema of a value (an empty one when the schema does not describe it)."""
    node = schema
    for part in path:
        node = _resolve(schema, node).get("properties", {}).get(part, {})
    return _resolve(schema, node)


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:  # a pointer into the same file: "#/definitions/port"
        target: Any = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _type(value: Any, described: dict[str, Any]) -> str:
    if value is None and "type" in described:
        kinds = described["type"]
        return " or ".join(kinds) if isinstance(kinds, list) else str(kinds)
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "string")):
        if isinstance(value, kind):
            return name
    return {list: "list", dict: "object"}.get(type(value), "null")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def sections(values_text: str, schema: dict[str, Any]) -> list[Section]:
    """The rows of values.yaml, in its order, grouped by its sections."""
    values = yaml.safe_load(values_text)
    found = [Section("")]
    comment: list[str] = []
    margin = False  # the comment block starts at the left margin
    example = False
    header = True
    stack: list[tuple[int, str]] = []
    for line in values_text.splitlines():
        stripped = line.strip()
        if not stripped:
            if comment and margin and not header:
                found.append(Section(" ".join(comment)))
            header = header and not comment
            comment, example = [], False
            continue
        if stripped.startswith("#"):
            if not comment and not example:
                margin = not line.startswith(" ")
            if EXAMPLE.match(stripped):
                example = True
            else:
                comment.append(stripped.lstrip("#").strip())
            continue
        header = False
        match = KEY.match(line)
        if not match:  # an item of a block list: part of the value above
            comment = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = match["key"].strip().strip("'\"")
        stack.append((indent, key))
        path = [name for _, name in stack]
        rest = match["rest"] or ""
        trailing = TRAILING.search(rest)
        if trailing:
            comment.append(trailing["comment"])
        if example:
            comment.append("(an example: values.yaml)")
        value = _lookup(values, path)
        described = _schema_at(schema, path)
        parent = isinstance(value, dict) and bool(value)
        if not parent or comment:
            found[-1].rows.append(
                Row(
                    key=".".join(f'"{p}"' if "." in p else p for p in path),
                    type=_type(value, described),
                    default="" if parent else f"`{json.dumps(value, ensure_ascii=False)}`",
                    description=" ".join(comment),
                )
            )
        comment, example = [], False
    return [section for section in found if section.rows]


def openness(schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The objects of the values that refuse unknown keys, and those that take any."""
    closed: list[str] = []
    open_: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        node = _resolve(schema, node)
        if node.get("type") != "object" and "properties" not in node:
            if node.get("type") == "array" and isinstance(node.get("items"), dict):
                walk(node["items"], f"{path}[]")
            return
        (open_ if node.get("additionalProperties", True) is not False else closed).append(
            path or "(top level)"
        )
        for name, child in node.get("properties", {}).items():
            walk(child, f"{path}.{name}" if path else name)

    walk(schema, "")
    return closed, open_


def readme(values_text: str, schema: dict[str, Any], chart: dict[str, Any]) -> str:
    closed, open_ = openness(schema)
    out = [
        f"# {chart['name']}\n\n",
        "<!-- Generated by hack/chart_readme.py from values.yaml and values.schema.json"
        " (make crds); do not edit. -->\n\n",
        f"{' '.join(chart['description'].split())}\n\n",
        f"Chart {chart['version']}, operator {chart['appVersion']}, Kubernetes"
        f" {chart['kubeVersion']}. How to install, upgrade and uninstall it:"
        " [docs/install.md](../../docs/install.md), [docs/upgrade.md](../../docs/upgrade.md).\n\n",
        "## What the schema refuses\n\n",
        "`values.schema.json` checks every value at `helm install`, `helm upgrade` and"
        " `helm template`. The top level takes keys it does not know, so that a values file"
        " shared with other charts, `global` or a parent chart's keys pass. Each object the"
        " chart owns refuses a key it does not know, since a misspelt key there would"
        " silently do nothing:\n\n",
        ", ".join(f"`{path}`" for path in closed if path != "(top level)") + ".\n\n",
        "These take any key: they are Kubernetes objects passed through as they are (the API"
        " server checks them), or maps of names:\n\n",
        ", ".join(f"`{path}`" for path in open_ if path != "(top level)") + ".\n\n",
        "## Values\n\n",
    ]
    for section in sections(values_text, schema):
        if section.text:
            out.append(f"{section.text}\n\n")
        out.append("| key | type | default | description |\n| --- | --- | --- | --- |\n")
        out += [
            f"| `{row.key}` | {row.type} | {_cell(row.default)} | {_cell(row.description)} |\n"
            for row in section.rows
        ]
        out.append("\n")
    return "".join(out).rstrip("\n") + "\n"


def expected() -> str:
    return readme(
        (CHART / "values.yaml").read_text(encoding="utf-8"),
        json.loads((CHART / "values.schema.json").read_text(encoding="utf-8")),
        yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8")),
    )


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0]
    return generated.main("chart_readme", description, README, "README.md", expected, argv)


if __name__ == "__main__":
    sys.exit(main())
