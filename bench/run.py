#!/usr/bin/env python3
"""Benchmarks: time to Verified, API writes per verification, writes at rest.

    make bench                        # N=100, 60 s of steady state
    python bench/run.py --count 300 --steady 120

Starts its own control plane, S3 server and operator (under the RBAC of
manifests/rbac), applies N S3Compatible Destinations at once and measures:

- seconds from apply to Verified=True for one Destination;
- wall seconds for N Destinations to all be Verified=True;
- the operator's API writes per Destination (from the audit log), split by kind;
- the operator's API writes per minute at steady state;
- the operator's peak RSS;
- the floor: the most direct script (one probe + one status patch per object).

Prints one JSON document and a short table. Never fails on a number.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "hack"), str(ROOT / "tests")]

import yaml  # noqa: E402
from kubernetes import client  # noqa: E402

from controlplane import ControlPlane, die_with_parent, find_binaries  # noqa: E402
from harness import Cluster  # noqa: E402
from s3server import S3Server  # noqa: E402

OPERATOR_NS, OPERATOR_SA = "destination-operator-system", "destination-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"
WRITES = {"create", "update", "patch", "delete"}


def name_of(i: int) -> str:
    """The i-th Destination of the many, in the operator's run and the floor's."""
    return f"d{i:05d}"


def record(results: dict[str, Any], key: str, value: Any) -> None:
    """Keep a figure and print it at once, so a later failure does not lose it."""
    results[key] = value
    print(f"bench: {key} = {value}", file=sys.stderr, flush=True)


def destination(name: str, s3: S3Server) -> dict[str, Any]:
    return {
        "apiVersion": "destinations.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": name},
        "spec": {
            "type": "S3Compatible",
            "environment": "Development",
            "s3Compatible": {
                "endpoint": s3.endpoint,
                "bucket": s3.buckets[0],
                "forcePathStyle": True,
            },
            "pathPrefix": f"bench/{name}/",
            "credentials": {"secretRef": {"name": "s3"}},
            "verification": {"interval": "1h", "timeout": "10s"},
        },
    }


def verified_names(api: client.CustomObjectsApi, namespace: str) -> set[str]:
    items = api.list_namespaced_custom_object(
        "destinations.io", "v1alpha1", namespace, "destinations"
    )
    done = set()
    for item in items["items"]:
        for cond in (item.get("status") or {}).get("conditions") or []:
            if cond["type"] == "Verified" and cond["status"] == "True":
                done.add(item["metadata"]["name"])
    return done


def wait_verified(
    api: client.CustomObjectsApi, namespace: str, count: int, timeout: float
) -> float:
    started = time.monotonic()
    # Listing N objects is itself work for the API server: poll less often for large N.
    poll = min(1.0, 0.1 + count / 10_000)
    while len(verified_names(api, namespace)) < count:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"bench: only {len(verified_names(api, namespace))}/{count} verified")
        time.sleep(poll)
    return time.monotonic() - started


def operator_writes(audit: Path) -> list[tuple[str, str]]:
    found = []
    for line in audit.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("user", {}).get("username") == OPERATOR_USER and entry.get("verb") in WRITES:
            ref = entry.get("objectRef") or {}
            found.append(
                (entry["verb"], ref.get("resource", "") + "/" + ref.get("subresource", ""))
            )
    return found


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def floor(cluster: Cluster, s3: S3Server, namespace: str, count: int) -> float:
    """The most direct script: raw probe + one status patch per object, 8 at a time."""
    import boto3
    from botocore.config import Config

    admin = s3.users["admin"]
    s3c = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=admin.access_key_id,
        aws_secret_access_key=admin.secret_access_key,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"}, request_checksum_calculation="when_required"
        ),
    )
    api = client.CustomObjectsApi(cluster.api_client())

    def one(i: int) -> None:
        key = f"floor/{i}/probe.txt"
        s3c.put_object(Bucket=s3.buckets[0], Key=key, Body=b"probe")
        s3c.delete_object(Bucket=s3.buckets[0], Key=key)
        api.patch_namespaced_custom_object_status(
            "destinations.io",
            "v1alpha1",
            namespace,
            "destinations",
            name_of(i),
            {"status": {"lastVerifiedTime": "2026-01-01T00:00:00Z"}},
        )

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--steady", type=float, default=60.0, help="seconds of steady state")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "count": args.count,
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plane = ControlPlane(work / "cluster", find_binaries(), attached=True)
        started = time.monotonic()
        plane.start()
        record(results, "control_plane_start_s", round(time.monotonic() - started, 2))
        cluster = Cluster(plane)
        operator = None
        try:
            with S3Server(work / "s3") as s3:
                cluster.apply_crd(ROOT / "crds" / "destinations.destinations.io.yaml")
                cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests" / "rbac"))
                kubeconfig = cluster.token_kubeconfig(OPERATOR_NS, OPERATOR_SA, out_dir=work)
                env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
                env.update(
                    DESTINATION_OPERATOR_ALLOW_PRIVATE_ENDPOINTS="true",
                    DESTINATION_OPERATOR_HEALTH_PORT="0",
                    DESTINATION_OPERATOR_METRICS_PORT="0",
                    DESTINATION_OPERATOR_LOG_LEVEL="WARNING",
                )
                log = (work / "operator.log").open("wb")
                operator = subprocess.Popen(
                    [str(Path(sys.executable).parent / "destination-operator"), "run"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    preexec_fn=die_with_parent,
                )
                api = client.CustomObjectsApi(cluster.api_client())
                admin = s3.users["admin"]
                secret = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "s3"},
                    "stringData": {
                        "accessKeyId": admin.access_key_id,
                        "secretAccessKey": admin.secret_access_key,
                    },
                }
                for ns in ("bench-one", "bench-many", "bench-floor"):
                    cluster.kubectl("create", "namespace", ns)
                    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(secret))
                time.sleep(2)  # the operator is up and has listed everything

                cluster.kubectl(
                    "apply",
                    "-n",
                    "bench-one",
                    "-f",
                    "-",
                    input=yaml.safe_dump(destination("one", s3)),
                )
                record(
                    results,
                    "one_apply_to_verified_s",
                    round(wait_verified(api, "bench-one", 1, 120), 2),
                )

                apply_timeout = max(120, args.count * 0.1)  # kubectl applies one by one
                before = len(operator_writes(plane.audit_log))
                docs = yaml.safe_dump_all([destination(name_of(i), s3) for i in range(args.count)])
                started = time.monotonic()
                cluster.kubectl(
                    "apply", "-n", "bench-many", "-f", "-", input=docs, timeout=apply_timeout
                )
                wait_verified(api, "bench-many", args.count, max(600, args.count * 0.3))
                record(
                    results, "many_apply_to_all_verified_s", round(time.monotonic() - started, 2)
                )
                time.sleep(3)  # let queued events post
                writes = operator_writes(plane.audit_log)[before:]
                by_kind = collections.Counter(f"{verb} {res}" for verb, res in writes)
                record(results, "writes_per_destination", round(len(writes) / args.count, 2))
                record(results, "writes_by_kind", dict(by_kind))

                settled = len(operator_writes(plane.audit_log))
                time.sleep(args.steady)
                steady = len(operator_writes(plane.audit_log)) - settled
                record(results, "steady_writes_per_minute", round(steady * 60 / args.steady, 2))
                record(results, "steady_seconds", args.steady)

                record(results, "operator_peak_rss_mib", peak_rss_mib(operator.pid))
                # the floor runs alone: the operator is stopped first
                operator.terminate()
                operator.wait(timeout=20)
                operator = None
                docs = yaml.safe_dump_all([destination(name_of(i), s3) for i in range(args.count)])
                cluster.kubectl(
                    "apply", "-n", "bench-floor", "-f", "-", input=docs, timeout=apply_timeout
                )
                record(
                    results,
                    "floor_direct_script_s",
                    round(floor(cluster, s3, "bench-floor", args.count), 2),
                )
        finally:
            if operator is not None:
                operator.terminate()
                operator.wait(timeout=20)
            plane.stop()
    print(json.dumps(results, indent=2))
    print()
    rows = [
        ("control plane start", f"{results['control_plane_start_s']} s"),
        ("apply -> Verified, one Destination", f"{results['one_apply_to_verified_s']} s"),
        (
            f"apply -> all Verified, {args.count} Destinations",
            f"{results['many_apply_to_all_verified_s']} s",
        ),
        ("  floor: direct probe + status patch", f"{results['floor_direct_script_s']} s"),
        ("operator API writes per Destination", f"{results['writes_per_destination']}"),
        ("operator peak RSS", f"{results['operator_peak_rss_mib']} MiB"),
        (
            f"operator API writes/min at rest ({args.count} verified)",
            f"{results['steady_writes_per_minute']}",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
