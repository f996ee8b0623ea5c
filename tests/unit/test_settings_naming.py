"""One name per setting: its flag, variable and chart value come from that name; the old
spellings still work and warn once; every bad value is one line that names the flag or the
variable as it was written, exit status 2; lists are comma-separated or JSON; the log level
is one enum for the CLI and the chart."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from destination_operator import cli
from destination_operator.settings import (
    ENV_PREFIX,
    LogFormat,
    LogLevel,
    OperatorSettings,
    chart_value,
    env_var,
    flag,
    naming,
    setting_names,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "charts" / "destination-operator" / "values.schema.json").read_text())
FIELDS = setting_names()
OLD_FLAGS = [(name, old) for name in FIELDS for old in naming(name).old_flags]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No DESTINATION_OPERATOR_ variable from outside."""
    for key in list(os.environ):
        if key.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    yield


def run_options() -> dict[str, argparse.Action]:
    """The `run` subcommand's flags, by option string (old spellings included)."""
    top = cli.parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    run = sub.choices["run"]
    return {option: a for a in run._actions if a.dest != "help" for option in a.option_strings}


def started(monkeypatch: pytest.MonkeyPatch, *argv: str) -> OperatorSettings:
    """The settings `run ARGV` would start the operator with."""
    seen: list[OperatorSettings] = []
    monkeypatch.setattr(cli, "_start", seen.append)
    assert cli.main(["run", *argv]) == 0
    return seen[0]


def snake(chart_path: str) -> str:
    """A chart value's dotted camelCase path in snake_case (`health.port` -> `health_port`)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", chart_path.replace(".", "_")).lower()


# --- one name -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIELDS)
def test_flag_variable_and_chart_value_derive_from_the_name(name: str) -> None:
    words = name.split("_")
    assert flag(name) == "--" + "-".join(words)
    assert env_var(name) == "DESTINATION_OPERATOR_" + "_".join(word.upper() for word in words)
    value = chart_value(name)
    if value is not None:
        assert snake(value) == name, value
    # the parser's flag of that spelling sets this setting
    assert run_options()[flag(name)].dest == name


def test_run_has_no_flag_that_the_settings_do_not_name() -> None:
    expected = {flag(name) for name in FIELDS}
    expected |= {
        f"--no-{flag(name)[2:]}"
        for name in FIELDS
        if OperatorSettings.model_fields[name].annotation is bool
    }
    expected |= {old for _, old in OLD_FLAGS}
    assert set(run_options()) - {"-h", "--help"} == expected


def test_only_kubeconfig_context_and_the_leases_namespace_have_no_chart_value() -> None:
    """In a pod the operator uses its ServiceAccount, and the chart's Lease is in the pod's
    own namespace; every other setting is a chart value."""
    assert [name for name in FIELDS if chart_value(name) is None] == [
        "kubeconfig",
        "context",
        "leader_election_namespace",
    ]


def test_the_old_spellings_are_the_released_ones() -> None:
    """Removing one breaks someone's command line or values: it must be deliberate."""
    old = {name: (naming(name).old_flags, naming(name).old_chart_values) for name in FIELDS}
    assert {name: spelt for name, spelt in old.items() if spelt != ((), ())} == {
        "namespaces": (("--namespace",), ("watchNamespaces",)),
        "timeout_seconds": (("--timeout",), ("defaultTimeoutSeconds",)),
    }


# --- old spellings ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "old"), OLD_FLAGS, ids=[old for _, old in OLD_FLAGS])
def test_an_old_flag_still_works_and_warns_once(
    name: str, old: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = OperatorSettings.model_fields[name].annotation is not float
    first, second = ("team-a", "team-b") if listed else ("5", "7")
    settings = started(monkeypatch, old, first, old, second)
    assert getattr(settings, name) == (["team-a", "team-b"] if listed else 7.0)
    assert capsys.readouterr().err == (
        f"destination-operator: warning: {old} is deprecated, use {flag(name)}\n"
    )


def test_new_flags_do_not_warn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = started(monkeypatch, "--namespaces", "team-a", "--timeout-seconds", "5")
    assert (settings.namespaces, settings.timeout_seconds) == (["team-a"], 5.0)
    assert capsys.readouterr().err == ""


# --- bad values ---------------------------------------------------------------------------------

V = ENV_PREFIX
BAD = [
    # (flags, variables, the one line after "destination-operator: ")
    (
        [],
        {f"{V}PROBE_CONCURRENCY": "0"},
        f"{V}PROBE_CONCURRENCY='0': should be greater than or equal to 1",
    ),
    ([], {f"{V}WORKERS": "many"}, f"{V}WORKERS='many': should be a whole number"),
    ([], {f"{V}TIMEOUT_SECONDS": "soon"}, f"{V}TIMEOUT_SECONDS='soon': should be a number"),
    (
        [],
        {f"{V}ALLOW_PRIVATE_ENDPOINTS": "maybe"},
        f"{V}ALLOW_PRIVATE_ENDPOINTS='maybe': should be true or false",
    ),
    (
        [],
        {f"{V}LOG_LEVEL": "verbose"},
        f"{V}LOG_LEVEL='verbose': should be one of DEBUG, INFO, WARNING, ERROR or CRITICAL",
    ),
    ([], {f"{V}LOG_FORMAT": "xml"}, f"{V}LOG_FORMAT='xml': should be one of text or json"),
    ([], {f"{V}NAMESPACES": '["team-a"'}, f"{V}NAMESPACES='[\"team-a\"': not a JSON list"),
    (
        [],
        {f"{V}NAMESPACES": "team-a,Team_B"},
        f"{V}NAMESPACES='team-a,Team_B' (item 2): 'Team_B' is not a namespace name",
    ),
    (
        [],
        {"destination_operator_workers": "0"},  # read regardless of case, said as written
        "destination_operator_workers='0': should be greater than or equal to 1",
    ),
    (
        ["--probe-concurrency", "0"],
        {},
        "--probe-concurrency '0': should be greater than or equal to 1",
    ),
    (["--workers", "many"], {}, "--workers 'many': should be a whole number"),
    (
        ["--timeout-seconds", "700"],
        {},
        "--timeout-seconds '700': should be less than or equal to 600",
    ),
    (["--timeout", "0"], {}, "--timeout '0': should be greater than 0"),
    (
        ["--interval-jitter", "0.9"],
        {},
        "--interval-jitter '0.9': should be less than or equal to 0.5",
    ),
    (
        ["--health-port", "70000"],
        {},
        "--health-port '70000': should be less than or equal to 65535",
    ),
    (
        ["--log-level", "verbose"],
        {},
        "--log-level 'verbose': should be one of DEBUG, INFO, WARNING, ERROR or CRITICAL",
    ),
    (["--log-format", "xml"], {}, "--log-format 'xml': should be one of text or json"),
    (["--namespaces", "Team_A"], {}, "--namespaces 'Team_A': 'Team_A' is not a namespace name"),
    (["--namespace", "a,B"], {}, "--namespace 'B': 'B' is not a namespace name"),
    (["--namespaces", "[a"], {}, "--namespaces '[a': not a JSON list"),
    (["--workers"], {}, "run: argument --workers: expected one argument"),
    (
        ["--allow-private-endpoints=yes"],
        {},
        "run: argument --allow-private-endpoints/--no-allow-private-endpoints: ignored "
        "explicit argument 'yes'",
    ),
]


@pytest.mark.parametrize(("argv", "env", "line"), BAD, ids=[line.split(":")[0] for *_, line in BAD])
def test_a_bad_value_is_one_line_naming_what_was_written(
    argv: list[str],
    env: dict[str, str],
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cli, "_start", lambda settings: pytest.fail("started"))
    try:
        code = cli.main(["run", *argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    lines = [
        text for text in capsys.readouterr().err.splitlines() if " is deprecated, use " not in text
    ]
    assert len(lines) == 1, lines
    # argparse's errors are the subcommand's ("destination-operator run: argument ...")
    prefix = "destination-operator " if line.startswith("run:") else "destination-operator: "
    assert lines[0].startswith(prefix + line), lines
    assert not any(name in lines[0] for name in FIELDS if "_" in name), lines[0]


def test_two_bad_values_are_two_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(f"{V}WORKERS", "0")
    assert cli.main(["run", "--log-level", "loud"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].strip() for line in err] == [
        "--log-level 'loud'",
        f"{V}WORKERS='0'",
    ]


# --- lists --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["team-a,team-b", " team-a , team-b ", '["team-a", "team-b"]', "team-a,team-b,"],
    ids=["commas", "spaces", "json", "trailing-comma"],
)
def test_a_list_variable_is_comma_separated_or_json(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{V}NAMESPACES", value)
    assert OperatorSettings().namespaces == ["team-a", "team-b"]
    assert started(monkeypatch).namespaces == ["team-a", "team-b"]


def test_one_namespace_in_the_variable_is_a_list_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to be a 41-line traceback: the variable had to be a JSON list."""
    monkeypatch.setenv(f"{V}NAMESPACES", "team-a")
    assert started(monkeypatch).namespaces == ["team-a"]
    monkeypatch.setenv(f"{V}NAMESPACES", "")
    assert started(monkeypatch).namespaces == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--namespaces", "team-a,team-b", "--namespaces", "team-c"],
        ["--namespaces", '["team-a", "team-b"]', "--namespaces", "team-c"],
        ["--namespaces", "team-a", "--namespaces", "team-b", "--namespaces", "team-c"],
    ],
    ids=["commas", "json", "repeated"],
)
def test_a_list_flag_is_comma_separated_json_or_repeated(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert started(monkeypatch, *argv).namespaces == ["team-a", "team-b", "team-c"]


# --- the log level and format: one enum each --------------------------------------------------


def _choices(option: str) -> list[str]:
    metavar = run_options()[option].metavar
    assert isinstance(metavar, str) and metavar.startswith("{"), metavar
    return metavar.strip("{}").split(",")


def test_the_log_level_is_one_enum_in_the_cli_and_the_chart() -> None:
    levels = [level.value for level in LogLevel]
    assert levels == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    assert _choices(flag("log_level")) == levels
    assert SCHEMA["properties"]["logLevel"]["enum"] == levels
    formats = [item.value for item in LogFormat]
    assert _choices(flag("log_format")) == formats
    assert SCHEMA["properties"]["logFormat"]["enum"] == formats


def test_a_log_level_is_read_regardless_of_case(monkeypatch: pytest.MonkeyPatch) -> None:
    assert started(monkeypatch, "--log-level", "debug").log_level == LogLevel.DEBUG
    monkeypatch.setenv(f"{V}LOG_LEVEL", "Warning")
    assert started(monkeypatch).log_level == LogLevel.WARNING
    assert started(monkeypatch, "--log-level", "CRITICAL").log_level == LogLevel.CRITICAL
