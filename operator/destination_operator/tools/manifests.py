"""YAML manifests as lint reads them: each document with its node tree, to find a field's line.

The loader reads YAML as kubectl and the API server do (timestamps stay strings,
keys become strings, a duplicate key is an error) and keeps PyYAML's composed
nodes, whose marks give the line and column of any field path
(`spec.transport.headers[0].name`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["Document", "Malformed", "documents", "field_parts", "position"]


def _json_key(key: Any) -> Any:
    """A mapping key as YAML-to-JSON conversion (sigs.k8s.io/yaml) turns it into a string."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    return key


class _Loader(yaml.SafeLoader):
    """YAML as kubectl and the API server read it: timestamps stay strings, keys become
    strings, duplicate keys are an error."""

    def _key(self, node: yaml.MappingNode, key_node: yaml.Node) -> Hashable:
        key = _json_key(self.construct_object(key_node, deep=True))
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found a key that is a list or a mapping",
                key_node.start_mark,
            )
        return key

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep=deep)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self._key(node, key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {str(key)[:100]!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        self.flatten_mapping(node)
        return {
            self._key(node, key_node): self.construct_object(value_node, deep=deep)
            for key_node, value_node in node.value
        }


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Document:
    """One YAML document: its 1-based index in the file, its node tree and its data."""

    index: int
    node: yaml.Node | None
    data: Any


@dataclass(frozen=True)
class Malformed:
    """The YAML stops parsing here: the rest of the file is not read."""

    index: int
    line: int
    column: int
    message: str


def _yaml_error(err: BaseException, index: int) -> Malformed:
    if isinstance(err, RecursionError):
        return Malformed(index, 1, 1, "malformed YAML: nested too deeply")
    if isinstance(err, yaml.MarkedYAMLError):
        problem = err.problem or err.context or "invalid YAML"
        mark = err.problem_mark or err.context_mark
        if mark is not None:
            return Malformed(index, mark.line + 1, mark.column + 1, f"malformed YAML: {problem}")
        return Malformed(index, 1, 1, f"malformed YAML: {problem}")
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return Malformed(index, 1, 1, f"malformed YAML: {first}")


def documents(text: str) -> Iterator[Document | Malformed]:
    """Each document of `text`; a parse error ends the stream with a `Malformed`."""
    loader = _Loader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
                data = loader.construct_document(node) if node is not None else None
            except (yaml.YAMLError, RecursionError) as err:
                yield _yaml_error(err, index + 1)
                return
            index += 1
            yield Document(index, node, data)
    finally:
        loader.dispose()


def field_parts(field: str) -> list[str | int]:
    """`spec.headers[0].name` -> ["spec", "headers", 0, "name"] (no regular expression)."""
    parts: list[str | int] = []
    for segment in field.split("."):
        name, bracket, rest = segment.partition("[")
        if name:
            parts.append(name)
        while bracket:
            number, _, after = rest.partition("]")
            parts.append(int(number) if number.isdigit() else number)
            _, bracket, rest = after.partition("[")
    return parts


def _entries(node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping node's entries by key, made once per node: a lookup per finding stays cheap
    in a mapping of many keys. A key given twice (through a merge) is the last one."""
    entries: dict[str, tuple[yaml.Node, yaml.Node]] | None = getattr(node, "_lint_entries", None)
    if entries is None:
        entries = {
            key.value: (key, value) for key, value in node.value if isinstance(key, yaml.ScalarNode)
        }
        node._lint_entries = entries  # type: ignore[attr-defined]
    return entries


def position(node: yaml.Node | None, field: str, *, at_key: bool = False) -> tuple[int, int]:
    """The 1-based (line, column) of `field` under `node`: a scalar's value, else its key (its
    key always when `at_key`); for a field that is absent, the nearest one present."""
    if node is None:
        return 1, 1
    mark = node.start_mark
    parts = field_parts(field)
    for number, part in enumerate(parts):
        last = number == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(node, yaml.SequenceNode) or not 0 <= part < len(node.value):
                break
            node = node.value[part]
            mark = node.start_mark
            continue
        if not isinstance(node, yaml.MappingNode):
            break
        entry = _entries(node).get(part)
        if entry is None:
            break
        key, node = entry
        scalar = isinstance(node, yaml.ScalarNode) and last and not at_key
        mark = node.start_mark if scalar else key.start_mark
    return mark.line + 1, mark.column + 1
