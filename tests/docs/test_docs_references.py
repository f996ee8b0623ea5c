"""Every test the README, the CHANGELOG and docs/*.md name exists.

The docs back their claims by naming tests (`tests/x.py::test_y`, or `::test_y`
after a full name, for another test of the same file). A renamed or deleted test
would leave a claim pointing at nothing; this fails instead. The provider pages
have their own, stricter check (`test_docs_providers.py`, which collects them).
"""

from __future__ import annotations

import ast
import fnmatch
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])
# `tests/dir/file.py`, optionally `::name` (a glob such as `test_samples_*` is allowed);
# or a bare `::name` right after a backtick, which continues the file named last.
REFERENCE = re.compile(r"(?:(tests/[\w/]+\.py)|(?<=`))::([A-Za-z_][\w*]*)|(tests/[\w/]+\.py)(?!::)")


@cache
def functions_in(path: Path) -> frozenset[str]:
    """The names of the functions (and classes) a test module defines, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return frozenset(node.name for node in ast.walk(tree) if isinstance(node, kinds))


def references(page: Path) -> list[tuple[str, str | None]]:
    """(file, name or None) for each test the page names, bare `::name` resolved."""
    found: list[tuple[str, str | None]] = []
    last: str | None = None
    for match in REFERENCE.finditer(page.read_text(encoding="utf-8")):
        file_with_name, name, file_alone = match.groups()
        if file_alone:
            last = file_alone
            found.append((file_alone, None))
            continue
        last = file_with_name or last
        assert last is not None, f"{page.name}: `::{name}` follows no test file"
        found.append((last, name))
    return found


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_named_test_exists(page: Path) -> None:
    missing = []
    for file, name in references(page):
        path = ROOT / file
        if not path.is_file():
            missing.append(file)
        elif name is not None and not fnmatch.filter(functions_in(path), name):
            missing.append(f"{file}::{name}")
    assert not missing, f"{page.name} names tests that do not exist: {sorted(set(missing))}"


def test_the_pages_name_tests_at_all() -> None:
    """The check above sees the references (a broken pattern would pass every page)."""
    named = sum(len(references(page)) for page in PAGES)
    assert named > 100, named


def test_a_missing_test_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "(test: `tests/docs/test_docs_references.py::test_a_missing_test_is_found`, "
        "`::test_no_such_thing`, `tests/unit/no_such_file.py`)"
    )
    refs = references(page)
    assert refs == [
        ("tests/docs/test_docs_references.py", "test_a_missing_test_is_found"),
        ("tests/docs/test_docs_references.py", "test_no_such_thing"),
        ("tests/unit/no_such_file.py", None),
    ]
    assert "test_no_such_thing" not in functions_in(ROOT / refs[1][0])
    assert not (ROOT / refs[2][0]).exists()
