"""The `secrets` scenario: what Secrets no Destination names cost the operator.

A cluster's Secrets are mostly someone else's: Helm keeps each release in one
(base64 of gzip, up to 1 MiB). The operator watches Secrets as metadata only
and reads the data of the Secrets its Destinations name, so N unrelated Secrets
should cost it their metadata, not their data.

For each N of `--unrelated-secrets` (ascending; the Secrets are added to one
namespace as N grows): a fresh operator is started with `secret_destinations`
Destinations that share one Secret stored beside N unrelated Secrets of
`--secret-kib` KiB of random bytes each (Helm's release type and labels); it
waits until all are armed, asks for a verification of each (so every start
reads the Secret and probes, as the first does, and has boto3 loaded) and
waits for it, stays `--steady` seconds, and is stopped. Recorded per N: the
peak (VmHWM) and the current (VmRSS) resident set at the end of the window,
the seconds until all were armed, and the operator's requests naming an
unrelated Secret (from the API server's audit log: none is right).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client

from context import Bench, NotReached
from logs import OPERATOR_USER
from objects import name_of
from tracker import verified_with_request

SCENARIO = "secrets"
FOOTPRINT_NAMESPACE = "bench-secret-footprint"
UNRELATED_NAMESPACE = "bench-unrelated-secrets"
MIB_PER_1000_TARGET = 10.0
"""The issue's target: at most this much more memory per 1,000 unrelated Secrets."""


def unrelated_secret(namespace: str, i: int, kib: int) -> dict[str, Any]:
    """A Secret the shape of a Helm release's: random (incompressible) bytes."""
    release = f"release-{i:05d}"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": f"sh.helm.release.v1.{release}.v1",
            "namespace": namespace,
            "labels": {"owner": "helm", "name": release, "status": "deployed", "version": "1"},
        },
        "data": {"release": base64.b64encode(os.urandom(kib * 1024)).decode()},
    }


def create_unrelated(bench: Bench, start: int, stop: int) -> float:
    """Create unrelated Secrets `start`..`stop - 1`, `create_threads` at a time; seconds."""
    local = threading.local()
    made: list[client.ApiClient] = []
    lock = threading.Lock()

    def create(i: int) -> None:
        api: client.CoreV1Api | None = getattr(local, "api", None)
        if api is None:
            api_client = bench.env.admin_client()
            with lock:
                made.append(api_client)
            api = local.api = client.CoreV1Api(api_client)
        body = unrelated_secret(UNRELATED_NAMESPACE, i, bench.settings.secret_kib)
        api.create_namespaced_secret(UNRELATED_NAMESPACE, body)

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(bench.settings.create_threads) as pool:
            list(pool.map(create, range(start, stop)))
    finally:
        for api_client in made:
            api_client.close()
    return time.monotonic() - started


def unrelated_reads(bench: Bench) -> dict[str, int]:
    """The operator's requests on Secrets of the unrelated namespace, by verb, from the
    audit log (which records ServiceAccounts' reads): a `get` would be a data read."""
    path = bench.env.plane.audit_log
    found: dict[str, int] = {}
    # kube-apiserver renames a full log to audit-<time>.log: read those too
    for part in [*sorted(path.parent.glob(f"{path.stem}-*{path.suffix}")), path]:
        with part.open(encoding="utf-8", errors="replace") as log:
            for line in log:
                if UNRELATED_NAMESPACE not in line or OPERATOR_USER not in line:
                    continue
                entry = json.loads(line)
                ref = entry.get("objectRef") or {}
                if entry.get("stage") != "ResponseComplete" or ref.get("resource") != "secrets":
                    continue
                if ref.get("namespace") == UNRELATED_NAMESPACE and ref.get("name"):
                    found[entry["verb"]] = found.get(entry["verb"], 0) + 1
    return found


def _make_namespace(bench: Bench, name: str) -> None:
    """A namespace with no Secret of the benchmark's in it."""
    with bench.env.admin_client() as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    bench.namespaces.add(name)


def _one_size(bench: Bench, unrelated: int) -> dict[str, Any]:
    """Start an operator over `unrelated` Secrets; its memory once settled."""
    count = bench.settings.secret_destinations
    names = [name_of(i) for i in range(count)]
    stored = bench.env.stored_destinations()
    started = bench.operator.start(f"{SCENARIO}: {unrelated} unrelated")
    armed, _ = bench.operator.wait_armed(stored, bench.limit(stored))
    if armed is None:
        raise NotReached(f"{unrelated} unrelated Secrets: {stored} not armed in time")
    # Every start does the same work whatever it finds stored: each Destination verified
    # on request (its Secret read, a probe), so each process has loaded boto3.
    request = f"{SCENARIO}-{unrelated}-{time.time_ns()}"
    tracker = bench.track(FOOTPRINT_NAMESPACE, verified_with_request(request))
    try:
        bench.maker.request_verification(FOOTPRINT_NAMESPACE, names, request)
        met = bench.wait_all(tracker, count, f"{unrelated} unrelated Secrets: Verified")
    finally:
        tracker.stop()
    verified_s = max(met.values()) - started
    bench.operator.sample(f"{SCENARIO}: {unrelated} unrelated, all verified")
    time.sleep(bench.settings.steady_seconds)
    bench.operator.sample(f"{SCENARIO}: {unrelated} unrelated, end of window")
    end = bench.operator.samples[-1]
    bench.operator.stop()
    return {
        "armed_s": round(armed, 2),
        "all_verified_s": round(max(0.0, verified_s), 2),
        "peak_mib": end.get("VmHWM"),
        "steady_mib": end.get("VmRSS"),
    }


def secrets(bench: Bench) -> None:
    """N unrelated Secrets of `secret_kib` KiB beside `secret_destinations` Destinations:
    the operator's peak and steady memory for each N, against N = 0."""
    sizes = sorted(set(bench.settings.unrelated_secrets))
    kib, count = bench.settings.secret_kib, bench.settings.secret_destinations
    bench.operator.stop()
    bench.record(SCENARIO, "secret_kib", kib)
    bench.record(SCENARIO, "destinations", count)
    bench.namespace(FOOTPRINT_NAMESPACE)
    bench.maker.create(bench.bodies(FOOTPRINT_NAMESPACE, count))
    _make_namespace(bench, UNRELATED_NAMESPACE)
    made = 0
    by_size: dict[str, Any] = {}
    try:
        for unrelated in sizes:
            creation = create_unrelated(bench, made, unrelated)
            made = max(made, unrelated)
            found = _one_size(bench, unrelated)
            found["creation_s"] = round(creation, 1)
            by_size[str(unrelated)] = found
            bench.record(SCENARIO, "by_unrelated_secrets", by_size)
        bench.record(SCENARIO, "unrelated_secret_requests", unrelated_reads(bench))
    finally:
        bench.drop(UNRELATED_NAMESPACE)
        bench.drop(FOOTPRINT_NAMESPACE)
