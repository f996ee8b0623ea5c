"""`destination-operator`: run the operator, or lint Destination manifests offline."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from enum import StrEnum
from typing import Any, get_args, get_origin

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from . import __version__, check
from .settings import LogFormat, OperatorSettings
from .tools import lint

# These libraries log whole request and response bodies at DEBUG, Secrets included.
NOISY_LOGGERS = ("kubernetes", "urllib3", "botocore", "boto3", "s3transfer", "aiohttp")
# SDKs that log every request and response at INFO: warnings only.
CHATTY_SDK_LOGGERS = ("azure", "google", "oss2")


# Flags whose names predate the generated ones; every other setting's flag is its
# field name in dashes (`stuck_after_seconds` -> `--stuck-after-seconds`).
FLAG_NAMES = {"namespaces": "--namespace", "timeout_seconds": "--timeout"}
METAVARS = {
    "kubeconfig": "PATH",
    "context": "NAME",
    "namespaces": "NAME",
    "log_level": "LEVEL",
    "interval_jitter": "FRACTION",
}


def env_var(name: str) -> str:
    """The environment variable of one `OperatorSettings` field."""
    return f"{OperatorSettings.model_config.get('env_prefix', '')}{name}".upper()


def flag(name: str) -> str:
    """The `run` flag of one `OperatorSettings` field."""
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _shown(value: Any) -> str:
    """A default as one would write it in the environment variable."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def _metavar(name: str, fallback: str) -> str:
    for suffix, metavar in (("_seconds", "SECONDS"), ("_port", "PORT")):
        if name.endswith(suffix):
            return metavar
    return METAVARS.get(name, fallback)


def _add_setting(parser: argparse.ArgumentParser, name: str, info: FieldInfo) -> None:
    """One flag for one settings field, its help made from the field: description,
    environment variable, default. No flag has a default of its own: unset flags
    leave the environment and the field's default in charge."""
    default = info.get_default(call_default_factory=True)
    kind = info.annotation
    env = env_var(name)
    if get_origin(kind) is list:
        help_ = (
            f"{info.description}; repeatable (env {env} as a JSON list, default {_shown(default)})"
        )
        parser.add_argument(
            flag(name), dest=name, action="append", metavar=METAVARS.get(name), help=help_
        )
        return
    help_ = f"{info.description} (env {env}, default {_shown(default)})"
    if kind is bool:
        parser.add_argument(
            flag(name), dest=name, action=argparse.BooleanOptionalAction, help=help_
        )
        return
    options = [arg for arg in get_args(kind) if arg is not type(None)]
    base = options[0] if options else kind
    extra: dict[str, Any] = {}
    if isinstance(base, type) and issubclass(base, StrEnum):
        extra["choices"] = [item.value for item in base]
    elif base in (int, float):
        extra["type"] = base
        extra["metavar"] = _metavar(name, "N")
    else:
        extra["metavar"] = _metavar(name, "VALUE")
    parser.add_argument(flag(name), dest=name, help=help_, **extra)


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every `OperatorSettings` field, in the model's order."""
    for name, info in OperatorSettings.model_fields.items():
        _add_setting(parser, name, info)


def _settings_from(args: argparse.Namespace) -> OperatorSettings:
    """Flags win over DESTINATION_OPERATOR_* variables, which win over defaults."""
    flags = {name: getattr(args, name) for name in OperatorSettings.model_fields}
    return OperatorSettings(**{key: value for key, value in flags.items() if value is not None})


def _configure_logging(settings: OperatorSettings) -> None:
    import kopf

    debug = settings.log_level.upper() == "DEBUG"
    json_logs = settings.log_format == LogFormat.JSON
    kopf.configure(
        verbose=debug,
        log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL,
        log_prefix=True,
        log_refkey="object",
    )
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
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

    import kopf

    _configure_logging(settings)
    from . import main  # noqa: F401  (registers the handlers)

    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    asyncio.run(
        kopf.operator(
            registry=kopf.get_default_registry(),
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            memo=kopf.Memo(operator_settings=settings),
            liveness_endpoint=liveness,
        )
    )
    # Exit without joining worker threads: a probe that ignored its abort (a DNS lookup in
    # flight, say) must not hold the process past the pod's grace period.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


RUN_EPILOG = """\
Every flag is also an environment variable (named in its help); a flag wins over
its variable, which wins over the default. The operator and kopf's watches use
one connection: --kubeconfig and --context (or their variables), else
KUBECONFIG, else the pod's ServiceAccount, else ~/.kube/config.
"""


def parser() -> argparse.ArgumentParser:
    """The whole command line: `run` with a flag per setting, and `lint`."""
    top = argparse.ArgumentParser(prog="destination-operator", description=__doc__)
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
    try:
        settings = _settings_from(args)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in err.errors()
        )
        print(f"destination-operator: invalid settings: {problems}", file=sys.stderr)
        return 2
    code: int | None = None
    with contextlib.suppress(KeyboardInterrupt):
        code = _start(settings)
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
