"""`destination-operator`: run the operator, or lint Destination manifests offline."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, NoReturn, get_args, get_origin

from . import __version__, check
from .settings import (
    Given,
    LogFormat,
    LogLevel,
    OperatorSettings,
    SettingsError,
    env_var,
    field_info,
    flag,
    load,
    naming,
    setting_names,
)
from .tools import lint

__all__ = ["RUN_EXIT_STATUS", "env_var", "flag", "main", "parser"]

# These libraries log whole request and response bodies at DEBUG, Secrets included.
NOISY_LOGGERS = ("kubernetes", "urllib3", "botocore", "boto3", "s3transfer", "aiohttp")
# SDKs that log every request and response at INFO: warnings only.
CHATTY_SDK_LOGGERS = ("azure", "google", "oss2")

METAVARS = {
    "kubeconfig": "PATH",
    "context": "NAME",
    "interval_jitter": "FRACTION",
    "leader_election_namespace": "NAMESPACE",
    "leader_election_id": "NAME",
    "leader_election_lease_duration": "SECONDS",
    "leader_election_renew_deadline": "SECONDS",
    "leader_election_retry_period": "SECONDS",
    "credentials_expiry_window": "SECONDS",
}
# What `run` exits with; its --help and docs/cli-reference.md list these.
RUN_EXIT_STATUS = {
    0: "the operator stopped on SIGTERM or Ctrl-C",
    1: "the operator stopped on an unexpected error (its traceback is on stderr)",
    2: "a bad flag or value (one line each, naming the flag or variable), or a kubeconfig "
    "or context that cannot be loaded, or leader election's settings that cannot work "
    "together",
    3: "the operator lost its Lease, or could not renew it within the renew deadline "
    "(leader election); it stopped all work first",
}
# Where the parse keeps which spelling of each flag was written, and the old ones used.
_SPELT = "_setting_spelt"
_OLD = "_setting_old"


def _shown(value: Any) -> str:
    """A default as one would write it in the environment variable."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def _metavar(name: str, fallback: str) -> str:
    for suffix, metavar in (("_seconds", "SECONDS"), ("_port", "PORT")):
        if name.endswith(suffix):
            return metavar
    return METAVARS.get(name, fallback)


def _note(namespace: argparse.Namespace, dest: str, written: str | None, new: str | None) -> None:
    """Remember the flag as written for `dest`, and an old spelling once."""
    spelt = getattr(namespace, _SPELT, None) or {}
    spelt[dest] = written or ""
    setattr(namespace, _SPELT, spelt)
    if new and written:
        old = getattr(namespace, _OLD, None) or []
        line = f"{written} is deprecated, use {new}"
        if line not in old:
            old.append(line)
        setattr(namespace, _OLD, old)


class _SettingFlag(argparse.Action):
    """A setting's flag: keeps what follows it as written (the settings model checks it, so
    that every bad value is said the same way), appending when the setting is a list."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        *,
        repeatable: bool = False,
        new: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.repeatable = repeatable
        self.new = new

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if self.repeatable:
            values = [*(getattr(namespace, self.dest, None) or []), values]
        setattr(namespace, self.dest, values)
        _note(namespace, self.dest, option_string, self.new)


class _SettingSwitch(argparse.BooleanOptionalAction):
    """A boolean setting's --NAME / --no-NAME, remembering which was written."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        super().__call__(parser, namespace, values, option_string)
        _note(namespace, self.dest, option_string, None)


def _add_setting(parser: argparse.ArgumentParser, name: str) -> None:
    """The flag of one setting (and its old spellings, hidden), its help made from the field:
    description, environment variable, default, old spelling. No flag has a default of its own:
    unset flags leave the environment and the field's default in charge."""
    info = field_info(name)
    default = info.get_default(call_default_factory=True)
    kind = info.annotation
    old = naming(name).old_flags
    formerly = f"; formerly {', '.join(old)}" if old else ""
    where = f"(env {env_var(name)}, default {_shown(default)}{formerly})"
    options = [arg for arg in get_args(kind) if arg is not type(None)]
    base = options[0] if options and get_origin(kind) is not list else kind
    if base is bool:
        parser.add_argument(
            flag(name), dest=name, action=_SettingSwitch, help=f"{info.description} {where}"
        )
        return
    extra: dict[str, Any] = {}
    if get_origin(kind) is list:
        extra = {"repeatable": True, "metavar": "NAME[,NAME...]"}
        help_ = f"{info.description}; comma-separated or a JSON list, repeatable {where}"
    else:
        help_ = f"{info.description} {where}"
        if isinstance(base, type) and issubclass(base, StrEnum):
            extra["metavar"] = "{" + ",".join(item.value for item in base) + "}"
        elif base in (int, float):
            extra["metavar"] = _metavar(name, "N")
        else:
            extra["metavar"] = _metavar(name, "VALUE")
    parser.add_argument(flag(name), dest=name, action=_SettingFlag, help=help_, **extra)
    for spelling in old:
        parser.add_argument(
            spelling,
            dest=name,
            action=_SettingFlag,
            new=flag(name),
            help=argparse.SUPPRESS,
            **extra,
        )


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every setting, in the model's order."""
    for name in setting_names():
        _add_setting(parser, name)


def _given(args: argparse.Namespace) -> dict[str, Given]:
    """The settings given as flags: each one's value and its flag as written."""
    spelt: dict[str, str] = getattr(args, _SPELT, None) or {}
    return {
        name: Given(spelt.get(name) or flag(name), getattr(args, name))
        for name in setting_names()
        if getattr(args, name, None) is not None
    }


def _configure_logging(settings: OperatorSettings) -> None:
    import kopf

    debug = settings.log_level == LogLevel.DEBUG
    json_logs = settings.log_format == LogFormat.JSON
    kopf.configure(
        verbose=debug,
        log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL,
        log_prefix=True,
        log_refkey="object",
    )
    level = logging.getLevelNamesMapping()[settings.log_level.value]
    logging.getLogger().setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, level))
    for name in CHATTY_SDK_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
    # kopf says "Handler ... succeeded" at INFO for every watch event: 3-4 lines per
    # Destination and 4 % of the operator's time at 10,000 (docs/benchmarks.md). The
    # operator logs each verification itself; kopf's lines stay at DEBUG.
    logging.getLogger("kopf.objects").setLevel(level if debug else max(logging.WARNING, level))


def _start(settings: OperatorSettings) -> int | None:
    """Run kopf with the handlers of `main` until interrupted; 2 when the kubeconfig or
    context cannot be loaded."""
    from .kube import client as kube_client

    kube_client.use(settings.kubeconfig, settings.context)
    try:
        kube_client.configuration()  # a bad file or context: one line now, not kopf retrying
    except (kube_client.ConfigException, OSError) as err:
        print(f"destination-operator: cannot load the kubeconfig: {err}", file=sys.stderr)
        return 2
    problems = settings.election_problems()
    for line in problems:
        print(f"destination-operator: {line}", file=sys.stderr)
    if problems:
        return 2

    import kopf

    _configure_logging(settings)
    from . import main  # registers the handlers

    shutdown = main.Shutdown()
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    code = None
    try:
        asyncio.run(
            kopf.operator(
                registry=kopf.get_default_registry(),
                standalone=True,
                clusterwide=not settings.namespaces,
                namespaces=settings.namespaces,
                memo=kopf.Memo(operator_settings=settings, shutdown=shutdown),
                memories=main.NoMemories(),
                liveness_endpoint=liveness,
                stop_flag=shutdown.flag,
            )
        )
    except Exception as err:  # noqa: BLE001 - kopf ended on an error (a refused watch, say)
        # kopf has logged the failure where it happened; one line here says why it stopped
        logging.getLogger("destination_operator").error("the operator stopped: %s", err)
        code = 1
    # Exit without joining worker threads: a probe that ignored its abort (a DNS lookup in
    # flight, say) or the Secrets' watch in a read must not hold the process past the pod's
    # grace period, nor keep a failed operator running.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(shutdown.code if code is None else code)


RUN_EPILOG = """\
Every flag is also an environment variable (named in its help); a flag wins over
its variable, which wins over the default. A list is comma-separated or a JSON
list. A flag's old spelling still works and says its new one on stderr. The
operator and kopf's watches use one connection: --kubeconfig and --context (or
their variables), else KUBECONFIG, else the pod's ServiceAccount, else
~/.kube/config.

exit status:
""" + "".join(f"  {code} {text}\n" for code, text in RUN_EXIT_STATUS.items())


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    """The whole command line: `run` with a flag per setting, and `lint`."""
    top = _Parser(prog="destination-operator", description=__doc__)
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="{run,lint,check}")
    run = sub.add_parser(
        "run",
        help="run the operator (watches every namespace by default)",
        description="Run the operator: watch Destinations and Secrets, verify, write status.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings_flags(run)
    linter = sub.add_parser(
        "lint",
        help="check Destination manifests offline (files, folders, -)",
        description=lint.DESCRIPTION,
        epilog=lint.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lint.add_arguments(linter)
    check.add_parser(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run `destination-operator ARGV...`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"]:
        return check.main(argv[1:])
    if argv[:1] == ["lint"]:
        # lint's own parser, which takes options between paths (`lint a/ -q b/`)
        return lint.main(argv[1:])
    args = parser().parse_args(argv)
    for line in getattr(args, _OLD, None) or []:
        print(f"destination-operator: warning: {line}", file=sys.stderr)
    try:
        settings = load(_given(args))
    except SettingsError as err:
        for line in err.lines:
            print(f"destination-operator: {line}", file=sys.stderr)
        return 2
    code: int | None = None
    with contextlib.suppress(KeyboardInterrupt):
        code = _start(settings)
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
