"""The manifests shown on docs/multi-tenancy.md and docs/consuming.md are the tested files.

Every YAML block on those pages must be a verbatim part of a file under docs/examples/,
which the cluster tests apply as it is; a page cannot show a manifest nobody ran.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ["multi-tenancy.md", "consuming.md"]
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _examples() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted((DOCS / "examples").glob("*.yaml"))}


@pytest.mark.parametrize("page", PAGES)
def test_every_yaml_block_is_part_of_an_example_file(page: str) -> None:
    blocks = BLOCK.findall((DOCS / page).read_text())
    assert blocks, f"{page} shows no manifest"
    examples = _examples()
    for block in blocks:
        found = [name for name, text in examples.items() if block in text]
        assert found, f"{page}: this block is in no file of docs/examples/:\n{block}"


@pytest.mark.parametrize("page", PAGES)
def test_every_linked_example_exists(page: str) -> None:
    linked = re.findall(r"\]\((examples/[^)]+)\)", (DOCS / page).read_text())
    assert linked
    for path in linked:
        assert (DOCS / path).is_file(), f"{page} links to {path}, which does not exist"


CITED = re.compile(r"(tests/[\w/]+\.py)(?:::(test_\w+))?|::(test_\w+)")


@pytest.mark.parametrize("page", PAGES)
def test_every_cited_test_exists(page: str) -> None:
    """`tests/x.py::test_y` names a test function of that file; `::test_z` one of the file
    named last before it."""
    root = DOCS.parent
    text = (DOCS / page).read_text()
    last: str | None = None
    cited = 0
    for match in CITED.finditer(text):
        path, name = match.group(1) or last, match.group(2) or match.group(3)
        assert path is not None, f"{page}: ::{name} follows no file"
        last = path
        source = root / path
        assert source.is_file(), f"{page} cites {path}, which does not exist"
        if name is None:
            continue
        assert re.search(rf"^def {name}\(", source.read_text(), re.MULTILINE), (
            f"{page} cites {path}::{name}, which is not a test there"
        )
        cited += 1
    assert cited
