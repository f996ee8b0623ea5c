"""`kubectl explain` reads cleanly: no description in the CRD says a sentence twice.

An object's description joins its class docstring and the field's own description
(crdgen's merge); when both said the same sentence, kubectl explain printed it twice
("What the last probe did. What the last probe did."). These tests read the committed
CRD with a splitter of their own, so a fault in the generator's cannot hide one.
The same check on kubectl explain's output, from a real API server, is in
tests/cluster/test_min_kubernetes.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from destination_operator.tools import crdgen

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "crds" / "destinations.destinations.io.yaml"


def descriptions(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every description in a CRD (or any YAML tree), with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield path or ".", value
            else:
                yield from descriptions(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from descriptions(item, f"{path}[{index}]")


def schemas(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from schemas(sub, f"{path}.{name}")
    if "items" in node:
        yield from schemas(node["items"], f"{path}[]")


def clauses(text: str) -> list[str]:
    """The sentences of a text, cut also at ';', as compared: lowercase, words only."""
    parts = re.split(r"(?<=[.!?;])\s+", " ".join(text.split()))
    normalised = (" ".join(re.findall(r"[a-z0-9%]+", part.lower())) for part in parts)
    return [part for part in normalised if part]


def repeats(text: str) -> list[str]:
    """Clauses that a text says twice, or that another clause of it contains whole."""
    found = []
    said = clauses(text)
    for i, clause in enumerate(said):
        others = said[:i] + said[i + 1 :]
        inside = any(o != clause and f" {clause} " in f" {o} " for o in others)
        if clause in said[:i] or (len(clause.split()) >= 3 and inside):
            found.append(clause)
    return found


def test_the_check_finds_a_repeat() -> None:
    """The checker itself: it finds what the CRD once had, and passes plain text."""
    assert repeats("What the last probe did. What the last probe did.") == [
        "what the last probe did"
    ]
    assert repeats("When it ran. when  it ran!") == ["when it ran"]
    assert repeats("The Secret; it holds the keys. It holds the keys, in PEM.") == [
        "it holds the keys"
    ]
    assert repeats("Immutable. Such as 1h, 30m or 1h30m (e.g. 1h).") == []


def test_no_description_in_the_committed_crd_repeats_a_sentence() -> None:
    crd = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    found = list(descriptions(crd))
    paths = [path for path, _ in found]
    assert len(paths) > 60 and any(p.endswith("lastProbe.properties.steps.items") for p in paths)
    repeated = {path: repeats(text) for path, text in found if repeats(text)}
    assert not repeated, repeated


def test_an_array_and_its_items_repeat_no_sentence() -> None:
    """kubectl explain shows an array's description and its items' as one text."""
    crd = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    joined = {
        path: f"{node['description']} {node['items']['description']}"
        for path, node in schemas(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
        if node.get("type") == "array" and "description" in node.get("items", {})
    }
    assert ".status.conditions" in joined and ".status.lastProbe.steps" in joined
    repeated = {path: repeats(text) for path, text in joined.items() if repeats(text)}
    assert not repeated, repeated


def test_generated_crd_repeats_no_sentence() -> None:
    """The models as they are now, not only as last committed."""
    repeated = {path: repeats(t) for path, t in descriptions(crdgen.build_crd()) if repeats(t)}
    assert not repeated, repeated


class _Probe(BaseModel):
    """What the probe did. It ran once."""

    time: str = Field(description="When it started.")


class _Status(BaseModel):
    """The status."""

    same: _Probe = Field(description="What the probe did.")
    more: _Probe = Field(description="What the probe did, and when.")
    optional: _Probe | None = Field(default=None, description="Unset: never probed.")


def test_a_field_and_its_type_saying_the_same_sentence_say_it_once() -> None:
    schema = crdgen.schema_for(_Status, "status", defaults=False)["properties"]
    assert schema["same"]["description"] == "What the probe did. It ran once."
    assert schema["more"]["description"] == (
        "What the probe did. It ran once. What the probe did, and when."
    )
    assert schema["optional"]["description"] == (
        "What the probe did. It ran once. Unset: never probed."
    )


class _Stuttering(BaseModel):
    """The status."""

    field: str = Field(description="It is set. It is set.")


def test_a_description_that_repeats_itself_stops_the_generator() -> None:
    with pytest.raises(crdgen.GenerationError, match=r"says 'It is set\.' twice"):
        crdgen.schema_for(_Stuttering, "status", defaults=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two.", ["One.", "Two."]),
        ("Such as 1h, 30m (e.g. 1h30m). Next.", ["Such as 1h, 30m (e.g. 1h30m).", "Next."]),
        (
            "s3://bucket, a URL, ...), for kubectl get.",
            ["s3://bucket, a URL, ...), for kubectl get."],
        ),
        (
            "Unset:\n    the   default. 'WriteDelete' next.",
            ["Unset: the default.", "'WriteDelete' next."],
        ),
    ],
)
def test_the_generator_splits_sentences_where_people_would(text: str, expected: list[str]) -> None:
    assert crdgen.sentences(text) == expected
