"""docs/cli-reference.md is what hack/cli_reference.py makes of the parser and the settings
(as `make verify` checks), and it names every command, flag, variable, chart value, old
spelling and exit status."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import cli_reference
from destination_operator import cli
from destination_operator.settings import chart_value, env_var, naming, setting_names

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cli-reference.md"


def test_the_reference_is_fresh() -> None:
    assert PAGE.read_text(encoding="utf-8") == cli_reference.reference(), (
        "docs/cli-reference.md is stale: run 'make crds' (or python hack/cli_reference.py "
        "write) and commit it"
    )


def test_check_says_stale_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "cli-reference.md"
    stale.write_text("old\n")
    monkeypatch.setattr(cli_reference, "PAGE", stale)
    assert cli_reference.main(["check"]) == 1
    assert cli_reference.main(["write"]) == 0  # under tmp_path
    assert cli_reference.main(["check"]) == 0


def test_the_reference_names_everything() -> None:
    text = PAGE.read_text(encoding="utf-8")
    top = cli.parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        assert f"\n## {name}\n" in text, name
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                assert f"`{option}" in text, (name, option)
    for name in setting_names():
        assert f"`{env_var(name)}`" in text, name
        value = chart_value(name)
        assert value is None or f"`{value}`" in text, name
        for old in (*naming(name).old_flags, *naming(name).old_chart_values):
            assert f"`{old}`" in text, old
    for code in cli.RUN_EXIT_STATUS:
        assert f"\n| {code} | " in text, code


def test_the_hand_written_page_links_the_reference() -> None:
    assert "(cli-reference.md" in (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
