#!/usr/bin/env python3
"""Benchmarks: the operator against the floor, the most direct script doing the same work.

    make bench                                         # N=300, every scenario
    python bench/run.py --count 1000 --json bench-1000.json
    python bench/run.py --count 10000 --scenarios new,writes,restart-verified,rss
    python bench/run.py --count 10000 --scenarios restart-unverified,rss
    python bench/run.py --count 10000 --scenarios restart-verified,rss \
        --restart-also list_chunk_size=0 --restart-also initial_streaming=true
    python bench/run.py --scenarios secrets --unrelated-secrets 0,1000,5000
    python bench/run.py --count 1000 --scenarios flowschema

Starts its own control plane (with an audit log of writes), the moto S3
server and the operator as a separate process under the ServiceAccount and
rules of manifests/rbac, all on loopback. The floor (bench/floor.py) runs
under the same ServiceAccount token with the operator's probe concurrency, in
a namespace of its own, while the operator is stopped. Scenarios (see
bench/scenarios.py): single, new, writes, restart-verified,
restart-unverified, rotation, rss, secrets, flowschema; writes,
restart-verified and rss need new and add it.

Prints progress on stderr as it goes, then one JSON document and a table
(figure | measured | floor | ratio | target) on stdout. A figure outside its
target, or a state not reached in time, is a result: the exit code is 1 only
when the harness itself failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "hack"), str(ROOT / "tests")]

from context import Bench, NotReached, Settings  # noqa: E402
from destination_operator.settings import (  # noqa: E402
    OperatorSettings,
    env_var,
    setting_names,
)
from environment import BenchEnvironment  # noqa: E402
from machine import facts  # noqa: E402
from operator_process import OperatorExited, OperatorProcess  # noqa: E402
from report import as_json, figures, table  # noqa: E402
from scenarios import NEEDS, SCENARIOS  # noqa: E402


def selected(asked: str) -> list[str]:
    """The scenarios to run, with what they need, in the order they run."""
    names = {name.strip() for name in asked.split(",") if name.strip()}
    unknown = names - set(SCENARIOS)
    if unknown:
        raise SystemExit(
            f"bench: unknown scenarios {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}"
        )
    names |= {NEEDS[name] for name in names if name in NEEDS}
    return [name for name in SCENARIOS if name in names]


def _setting(item: str) -> tuple[str, str]:
    """`name=value` of an operator setting, its name checked."""
    name, sep, value = item.partition("=")
    if not sep or name not in setting_names():
        raise SystemExit(f"bench: --operator-setting {item!r}: not NAME=VALUE of a setting")
    return name, value


def parse(argv: list[str] | None) -> argparse.Namespace:
    default_concurrency = OperatorSettings.model_fields["probe_concurrency"].default
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="N Destinations (default 300)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument(
        "--steady", type=float, default=30.0, help="seconds observed at rest / after a restart"
    )
    parser.add_argument("--json", type=Path, help="also write the JSON document here")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=default_concurrency,
        help=f"probes at once, operator and floor alike (default {default_concurrency})",
    )
    parser.add_argument("--create-threads", type=int, default=8, help="threads creating objects")
    parser.add_argument("--repeats", type=int, default=20, help="single: applies, one at a time")
    parser.add_argument("--reverify-count", type=int, default=50, help="writes: re-verified")
    parser.add_argument("--rotation-count", type=int, default=100, help="rotation: Destinations")
    parser.add_argument(
        "--seconds-per-object",
        type=float,
        default=0.5,
        help="waits give up after 120 s plus this per Destination",
    )
    parser.add_argument(
        "--unrelated-secrets",
        default="0,1000",
        help="secrets: comma-separated counts of unrelated Secrets (default 0,1000)",
    )
    parser.add_argument(
        "--secret-kib", type=int, default=100, help="secrets: KiB per unrelated Secret"
    )
    parser.add_argument(
        "--flowschema-first",
        action="store_true",
        help="flowschema: run the phase with the FlowSchema before the one without",
    )
    parser.add_argument("--operator-log-level", default="INFO")
    parser.add_argument(
        "--background-secrets",
        type=int,
        default=0,
        help="Secrets no Destination names, made before any scenario (default 0)",
    )
    parser.add_argument(
        "--background-secret-bytes", type=int, default=4096, help="data in each (default 4096)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample each operator process with py-spy (profile-<scenario>.txt in the workdir)",
    )
    parser.add_argument(
        "--operator-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the operator (e.g. list_chunk_size=0); repeatable",
    )
    parser.add_argument(
        "--restart-also",
        action="append",
        default=[],
        metavar="NAME=VALUE[,NAME=VALUE]",
        help="restart-verified: one more start over the same objects with these settings on "
        "top of --operator-setting (e.g. initial_streaming=true); repeatable",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep logs and state here (default: a temporary folder, kept only on failure)",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, work: Path) -> tuple[dict[str, Any], bool]:
    """Run the scenarios; the results and whether the harness held up."""
    settings = Settings(
        count=args.count,
        steady_seconds=args.steady,
        concurrency=args.concurrency,
        create_threads=args.create_threads,
        repeats=args.repeats,
        reverify_count=args.reverify_count,
        rotation_count=args.rotation_count,
        seconds_per_object=args.seconds_per_object,
        operator_log_level=args.operator_log_level,
        background_secrets=args.background_secrets,
        background_secret_bytes=args.background_secret_bytes,
        unrelated_secrets=tuple(int(n) for n in args.unrelated_secrets.split(",") if n.strip()),
        secret_kib=args.secret_kib,
        flowschema_first=args.flowschema_first,
        restart_variants=tuple(
            dict(_setting(item) for item in variant.split(",") if item.strip())
            for variant in args.restart_also
        ),
    )
    operator_settings = dict(_setting(item) for item in args.operator_setting)
    names = selected(args.scenarios)
    env = BenchEnvironment(work)
    document: dict[str, Any] = {
        "machine": facts(env.plane.bin_dir),
        "settings": {
            **asdict(settings),
            "scenarios": names,
            "operator_settings": operator_settings,
        },
        "scenarios": {},
        "not_reached": {},
        "errors": {},
    }
    healthy = True
    started = time.monotonic()
    operator = OperatorProcess(
        env.operator_kubeconfig,
        work / "operator.log",
        probe_concurrency=settings.concurrency,
        log_level=settings.operator_log_level,
        settings={env_var(name): value for name, value in operator_settings.items()},
        profile_dir=work if args.profile else None,
    )
    try:
        env.start()
        document["control_plane_start_s"] = round(env.control_plane_start_s, 2)
        bench = Bench(env, settings, operator, document["scenarios"])
        try:
            bench.setup()
            for name in names:
                print(f"bench: --- {name}", file=sys.stderr, flush=True)
                try:
                    SCENARIOS[name](bench)
                except (NotReached, OperatorExited) as err:
                    document["not_reached"][name] = str(err)
                    print(f"bench: {name}: not reached: {err}", file=sys.stderr, flush=True)
                except Exception as err:  # noqa: BLE001 - recorded; the other scenarios run
                    healthy = False
                    document["errors"][name] = f"{type(err).__name__}: {err}"
                    traceback.print_exc()
        finally:
            bench.close()
    except Exception as err:  # noqa: BLE001 - recorded and reported by the exit code
        healthy = False
        document["errors"]["harness"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    finally:
        operator.stop()
        env.stop()
    document["wall_s"] = round(time.monotonic() - started, 1)
    return document, healthy


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        work = args.workdir.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-"))
    document, healthy = run(args, work)
    if args.workdir is None:
        if healthy and not document["not_reached"]:
            shutil.rmtree(work, ignore_errors=True)
        else:
            document["logs_kept_in"] = str(work)
            print(f"bench: logs kept in {work}", file=sys.stderr)
    rows = figures(document["scenarios"], args.count)
    document["figures"] = as_json(rows)
    text = json.dumps(document, indent=2)
    print(text)
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
