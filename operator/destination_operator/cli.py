"""`destination-operator`: run the operator, or lint Destination manifests offline."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .settings import LogFormat, OperatorSettings


def _run(args: argparse.Namespace) -> int:
    import kopf

    overrides = {
        key: value
        for key, value in {
            "namespaces": args.namespace or None,
            "allow_private_endpoints": True if args.allow_private_endpoints else None,
            "probe_concurrency": args.probe_concurrency,
            "timeout_seconds": args.timeout,
            "log_format": args.log_format,
            "log_level": args.log_level,
            "health_port": args.health_port,
            "metrics_port": args.metrics_port,
        }.items()
        if value is not None
    }
    settings = OperatorSettings(**overrides)
    kopf.configure(
        verbose=settings.log_level.upper() == "DEBUG",
        log_format=kopf.LogFormat.JSON
        if settings.log_format == LogFormat.JSON
        else kopf.LogFormat.FULL,
        log_prefix=True,
        log_refkey="object",
    )
    level = logging.getLevelName(settings.log_level.upper())
    logging.getLogger().setLevel(level)
    # These libraries log whole request and response bodies at DEBUG, Secrets included.
    for noisy in ("kubernetes", "urllib3", "botocore", "boto3", "s3transfer", "aiohttp"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, level if isinstance(level, int) else 0))
    from . import main as handlers  # registers the handlers

    memo = kopf.Memo(operator_settings=settings)
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    try:
        asyncio.run(
            kopf.operator(
                registry=kopf.get_default_registry(),
                standalone=True,
                clusterwide=not settings.namespaces,
                namespaces=settings.namespaces,
                memo=memo,
                liveness_endpoint=liveness,
            )
        )
    except KeyboardInterrupt:
        return 0
    del handlers
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="destination-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator (watches every namespace by default)")
    run.add_argument("--namespace", action="append", help="watch this namespace (repeatable)")
    run.add_argument("--allow-private-endpoints", action="store_true", default=None)
    run.add_argument("--probe-concurrency", type=int)
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
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
