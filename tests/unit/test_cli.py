"""`destination-operator`'s command line: --version, a flag per setting, --kubeconfig/--context."""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest

import destination_operator
from destination_operator import cli
from destination_operator.kube import client as kube_client
from destination_operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[2]
FIELDS = list(OperatorSettings.model_fields)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No DESTINATION_OPERATOR_ variable or KUBECONFIG from outside; the default source after."""
    for key in list(os.environ):
        if key.startswith("DESTINATION_OPERATOR_") or key == "KUBECONFIG":
            monkeypatch.delenv(key)
    yield
    kube_client.use()


def run_actions() -> dict[str, argparse.Action]:
    """The `run` subcommand's flags, by destination."""
    top = cli.parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    run = sub.choices["run"]
    return {
        a.dest: a
        for a in run._actions
        if a.option_strings and a.dest != "help" and a.help != argparse.SUPPRESS  # old spellings
    }


def started(monkeypatch: pytest.MonkeyPatch, *argv: str) -> OperatorSettings:
    """The settings `run ARGV` would start the operator with."""
    seen: list[OperatorSettings] = []
    monkeypatch.setattr(cli, "_start", seen.append)
    assert cli.main(["run", *argv]) == 0
    return seen[0]


def test_version_is_the_packages(capsys: pytest.CaptureFixture[str]) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert destination_operator.__version__ == declared
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"destination-operator {declared}"


def test_every_setting_is_a_flag_whose_help_names_its_variable() -> None:
    actions = run_actions()
    assert sorted(actions) == sorted(FIELDS)  # no setting without a flag, no flag without one
    for name, info in OperatorSettings.model_fields.items():
        help_ = actions[name].help or ""
        assert f"(env DESTINATION_OPERATOR_{name.upper()}" in help_, (name, help_)
        assert info.description and help_.startswith(info.description), (name, help_)
        assert "default " in help_, (name, help_)
    assert "--allow-private-endpoints" in actions["allow_private_endpoints"].option_strings
    assert "private addresses" in (actions["allow_private_endpoints"].help or "")


def test_run_help_shows_each_flag_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's wrapping
    for name in FIELDS:
        assert cli.flag(name) in text, name
        assert cli.env_var(name) in text, name
    assert "(env DESTINATION_OPERATOR_PROBE_CONCURRENCY, default 8)" in text
    assert "(env DESTINATION_OPERATOR_ALLOW_PRIVATE_ENDPOINTS, default false)" in text


def _values(name: str) -> tuple[str, list[str], Any]:
    """(environment value, flag arguments, the flag's value) for one field: two different
    valid values, chosen from the field's type."""
    info = OperatorSettings.model_fields[name]
    kind = info.annotation
    option = cli.flag(name)
    if get_origin(kind) is list:
        return json.dumps(["from-env"]), [option, "from-a", option, "from-b"], ["from-a", "from-b"]
    if kind is bool:
        return "true", [f"--no-{option[2:]}"], False
    base = next((arg for arg in get_args(kind) if arg is not type(None)), kind)
    if isinstance(base, type) and issubclass(base, StrEnum):
        first, second = list(base)[:2]
        return first.value, [option, second.value], second
    if base is int:
        return "3", [option, "5"], 5
    if base is float:
        return "0.25", [option, "0.5"], 0.5
    if name == "azure_blob_endpoint":  # a template: the account's name goes in its place
        return "http://{account}.env", [option, "https://{account}.flag"], "https://{account}.flag"
    if base is str and name.endswith("_endpoint"):
        return "http://from-env", [option, "https://from-flag"], "https://from-flag"
    if base is str:
        return "from-env", [option, "from-flag"], "from-flag"
    raise AssertionError(f"{name}: no test values for type {kind}; add them here")


@pytest.mark.parametrize("name", FIELDS)
def test_a_flag_overrides_its_variable(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env_value, argv, expected = _values(name)
    monkeypatch.setenv(cli.env_var(name), env_value)
    from_env = getattr(started(monkeypatch), name)
    assert from_env != expected
    assert getattr(OperatorSettings(), name) == from_env  # the variable named is the one read
    assert getattr(started(monkeypatch, *argv), name) == expected


def test_allow_private_endpoints_flag_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    assert started(monkeypatch).allow_private_endpoints is False
    assert started(monkeypatch, "--allow-private-endpoints").allow_private_endpoints is True


# --- --kubeconfig and --context ---------------------------------------------------------

RIGHT = "https://127.0.0.1:6443"
WRONG = "https://127.0.0.1:1"


def two_contexts(folder: Path) -> Path:
    """A kubeconfig whose current-context is the wrong one."""
    path = folder / "two.kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "wrong",
        "clusters": [
            {"name": "wrong", "cluster": {"server": WRONG, "insecure-skip-tls-verify": True}},
            {"name": "right", "cluster": {"server": RIGHT, "insecure-skip-tls-verify": True}},
        ],
        "users": [
            {"name": "wrong", "user": {"token": "wrong-token"}},
            {"name": "right", "user": {"token": "right-token"}},
        ],
        "contexts": [
            {"name": "wrong", "context": {"cluster": "wrong", "user": "wrong"}},
            {"name": "right", "context": {"cluster": "right", "user": "right"}},
        ],
    }
    path.write_text(json.dumps(config))
    return path


def connects_to() -> tuple[str, str, str | None]:
    """(the operator's client's server, kopf's server, kopf's token)."""
    own = kube_client.api_client().configuration.host
    kopfs = kube_client.connection_info()
    return own, kopfs.server, kopfs.token


def test_context_is_used_by_both_clients(tmp_path: Path) -> None:
    path = str(two_contexts(tmp_path))
    kube_client.use(path, "right")
    assert connects_to() == (RIGHT, RIGHT, "right-token")
    kube_client.use(path)  # the file's current-context
    assert connects_to() == (WRONG, WRONG, "wrong-token")


def test_kubeconfig_variable_is_still_the_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(two_contexts(tmp_path)))
    kube_client.use(None, "right")
    assert connects_to() == (RIGHT, RIGHT, "right-token")
    kube_client.use()
    assert connects_to() == (WRONG, WRONG, "wrong-token")


def test_kubeconfig_and_context_flags_and_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(two_contexts(tmp_path))
    monkeypatch.setenv("DESTINATION_OPERATOR_KUBECONFIG", path)
    monkeypatch.setenv("DESTINATION_OPERATOR_CONTEXT", "wrong")
    settings = started(monkeypatch)
    assert (settings.kubeconfig, settings.context) == (path, "wrong")
    settings = started(monkeypatch, "--kubeconfig", "other", "--context", "right")
    assert (settings.kubeconfig, settings.context) == ("other", "right")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--context", "nope"], "nope"),
        (["--kubeconfig", "missing.kubeconfig"], "No configuration found"),
    ],
    ids=["unknown-context", "missing-file"],
)
def test_a_kubeconfig_that_cannot_load_is_one_line(
    argv: list[str],
    fragment: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(two_contexts(tmp_path)))
    assert cli.main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("destination-operator: cannot load the kubeconfig: ")
    assert fragment in err
    assert len(err.strip().splitlines()) == 1
