"""The admission table of tests/cluster/invalid_cases.py, checked offline against the models.

The cluster test sends the same cases to the real API server; both must refuse
each one with a message containing the case's `expect`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from destination_operator.tools.lint import check_destination


def _load_cases() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "cluster" / "invalid_cases.py"
    name = "destination_invalid_cases"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


cases = _load_cases()


def test_the_table_is_large_enough() -> None:
    assert len(cases.CASES) >= 40


@pytest.mark.parametrize("case", cases.CASES, ids=lambda c: c.id)
def test_models_refuse_with_the_expected_message(case: object) -> None:
    problems = check_destination(case.manifest())  # type: ignore[attr-defined]
    text = "\n".join(f"{where}: {message}" for where, message in problems)
    assert problems, "the models accept it"
    assert case.expect in text  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", sorted(cases.VALID))
def test_the_bases_are_valid(kind: str) -> None:
    body = cases.Case("valid", kind, {}, "").manifest()
    assert check_destination(body) == []


@pytest.mark.parametrize("interval", cases.ACCEPTED_INTERVALS)
def test_the_accepted_intervals_are_valid(interval: str) -> None:
    body = cases.Case("valid", "AmazonS3", {"verification": {"interval": interval}}, "").manifest()
    assert check_destination(body) == []


@pytest.mark.parametrize(("kind", "credentials"), cases.ACCEPTED_CREDENTIALS)
def test_the_accepted_credentials_are_valid(kind: str, credentials: dict[str, object]) -> None:
    body = cases.Case("valid", kind, {"credentials": credentials}, "").manifest()
    assert check_destination(body) == []
