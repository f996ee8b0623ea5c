"""`destination-operator`: run the operator, or lint Destination manifests offline."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys

from pydantic import ValidationError

from .settings import LogFormat, OperatorSettings

# These libraries log whole request and response bodies at DEBUG, Secrets included.
NOISY_LOGGERS = ("kubernetes", "urllib3", "botocore", "boto3", "s3transfer", "aiohttp")
# SDKs that log every request and response at INFO: warnings only.
CHATTY_SDK_LOGGERS = ("azure", "google", "oss2")


def _settings_from(args: argparse.Namespace) -> OperatorSettings:
    """Flags win over DESTINATION_OPERATOR_* variables, which win over defaults."""
    flags = {
        "namespaces": args.namespace,
        "allow_private_endpoints": args.allow_private_endpoints,
        "probe_concurrency": args.probe_concurrency,
        "workers": args.workers,
        "timeout_seconds": args.timeout,
        "log_format": args.log_format,
        "log_level": args.log_level,
        "health_port": args.health_port,
        "metrics_port": args.metrics_port,
    }
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


def _start(settings: OperatorSettings) -> None:
    """Run kopf with the handlers of `main` until interrupted."""
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="destination-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator (watches every namespace by default)")
    run.add_argument("--namespace", action="append", help="watch this namespace (repeatable)")
    run.add_argument("--allow-private-endpoints", action="store_true", default=None)
    run.add_argument("--probe-concurrency", type=int)
    run.add_argument("--workers", type=int, help="Destinations processed at once")
    run.add_argument("--timeout", type=float, help="default probe timeout, seconds")
    run.add_argument("--log-format", choices=[f.value for f in LogFormat])
    run.add_argument("--log-level")
    run.add_argument("--health-port", type=int)
    run.add_argument("--metrics-port", type=int)
    lint = sub.add_parser("lint", help="check Destination manifests offline (files, folders, -)")
    lint.add_argument("paths", nargs="*")
    args, rest = parser.parse_known_args(argv)
    if args.command == "lint":
        from .lint import main as lint_main

        return lint_main([*args.paths, *rest])
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        settings = _settings_from(args)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in err.errors()
        )
        print(f"destination-operator: invalid settings: {problems}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        _start(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
