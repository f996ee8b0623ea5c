"""The scenarios: each sets up one situation, measures it, and records its figures.

| scenario             | figure                                                          |
| -------------------- | --------------------------------------------------------------- |
| `single`             | one apply -> Verified, p50 of `repeats`, vs the floor's         |
| `new`                | N created -> all Verified=True, vs the floor                    |
| `writes`             | API writes per new Destination, per re-verification, at rest    |
| `restart-verified`   | operator started with N verified stored: time until all armed,  |
|                      | S3 requests and API writes while it starts and settles          |
| `restart-unverified` | operator started with N unverified stored: all Verified, vs the |
|                      | floor started over N stored the same way                        |
| `rotation`           | one Secret of `rotation_count` Destinations rotated: per-object |
|                      | time to a verification with the new key                         |
| `rss`                | peak RSS (VmHWM) of every operator process of the run           |
| `secrets`            | peak and steady RSS over N unrelated Secrets, against none      |
|                      | (bench/secret_footprint.py)                                     |
| `flowschema`         | N created by an ordinary ServiceAccount -> all Verified, beside |
|                      | the operator without and with the chart's FlowSchema (apf.py)   |

Times are wall seconds on time.monotonic. "Verified" is Verified=True for the
object's current generation, as a watch (`tracker`) sees it; the operator's
times and the floor's are measured by the same watch, from the same moment
(the start of creation, or the spawn of the process).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

import boto3

from apf import flowschema
from context import Bench, FloorRun, NotReached, ratio
from destination_operator.settings import env_var
from logs import S3Request, by_kind, probe_writes
from objects import destination, name_of, probe_prefix, secret
from operator_process import PROBES, STATUS_WRITES, SYNCED, TRACKED
from s3server import REGION, KeyPair
from secret_footprint import secrets
from tracker import verified_with_new_credentials, verified_with_request

SETTLE_SECONDS = 3.0  # after a wait: let events and late writes land before counting


def percentiles(values: Iterable[float]) -> dict[str, float | int]:
    """p50, p90, p99 (nearest rank) and max of some seconds, rounded to milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 3)

    return {
        "n": len(ordered),
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "max": round(ordered[-1], 3),
    }


def _probe_puts(bench: Bench, s3_mark: int, namespace: str) -> list[S3Request]:
    """The probe objects written in `namespace`'s prefix since `s3_mark`."""
    requests = bench.s3_log.since(s3_mark)
    return probe_writes(requests, bench.env.s3.buckets[0], probe_prefix(namespace))


def per_object(counts: dict[str, int], objects: int) -> dict[str, float]:
    return {kind: round(count / objects, 3) for kind, count in counts.items()}


# --- single ----------------------------------------------------------------------------------


def _one_at_a_time(
    bench: Bench, namespace: str, count: int, floor: FloorRun | None = None
) -> list[float]:
    """Create `count` Destinations one after another, each once the last is Verified."""
    tracker = bench.track(namespace)
    times = []
    try:
        for i in range(count):
            name = name_of(i)
            started = time.monotonic()
            bench.maker.create_one(destination(namespace, name, bench.env.s3))
            done = tracker.wait_for(name, timeout=60)
            if done is None and floor is None:
                bench.operator.check_running()
            if done is None:
                raise NotReached(f"{namespace}/{name} not Verified within 60 s")
            times.append(done - started)
    finally:
        tracker.stop()
    return times


def single(bench: Bench) -> None:
    """One apply -> Verified, one at a time; the first (Secret read, new client) apart."""
    repeats = bench.settings.repeats
    floor_ns = bench.namespace("bench-single-floor")
    run = bench.spawn_floor(floor_ns, repeats + 1, wait_ready=True)
    try:
        floor_times = _one_at_a_time(bench, floor_ns, repeats + 1, run)
    finally:
        bench.record("single", "floor_process", bench.end_floor(run))
        bench.drop(floor_ns)
    bench.start_operator("single")
    namespace = bench.namespace("bench-single")
    try:
        times = _one_at_a_time(bench, namespace, repeats + 1)
    finally:
        bench.drop(namespace)
    bench.record("single", "repeats", repeats)
    bench.record("single", "operator_first_s", round(times[0], 3))
    bench.record("single", "operator_s", percentiles(times[1:]))
    bench.record("single", "floor_first_s", round(floor_times[0], 3))
    bench.record("single", "floor_s", percentiles(floor_times[1:]))
    operator_p50 = percentiles(times[1:]).get("p50")
    floor_p50 = percentiles(floor_times[1:]).get("p50")
    bench.record("single", "ratio_p50", ratio(operator_p50, floor_p50))


# --- new -------------------------------------------------------------------------------------


FLOORS = {"floor": False, "contract_floor": True}
"""The floors each timed scenario runs, by the name its figures carry: the one-patch floor,
and the contract floor (a first-sight Reconciling patch, then the result)."""


def new(bench: Bench) -> None:
    """N Destinations created at once into a watched namespace: each floor's, then the
    operator's (started and warm before the clock starts)."""
    count = bench.settings.count
    bench.record("new", "count", count)
    floors: dict[str, float] = {}
    for label, contract in FLOORS.items():
        floor_ns = bench.namespace(f"bench-new-{label.replace('_', '-')}")
        run = bench.spawn_floor(floor_ns, count, wait_ready=True, contract=contract)
        try:
            creation, floors[label] = bench.create_and_wait(
                floor_ns, f"{label}: Verified", floor=run
            )
        finally:
            bench.record("new", f"{label}_process", bench.end_floor(run))
            bench.drop(floor_ns)
        bench.record("new", f"{label}_creation_s", creation)
        bench.record("new", f"{label}_all_verified_s", floors[label])

    bench.start_operator("new")
    namespace = bench.namespace("bench-new")
    audit_mark, s3_mark = bench.audit.mark(), bench.s3_log.mark()
    creation, seconds = bench.create_and_wait(namespace, "operator: Verified")
    bench.state["new"] = {"namespace": namespace, "audit_mark": audit_mark}
    bench.record("new", "operator_creation_s", creation)
    bench.record("new", "operator_all_verified_s", seconds)
    bench.record("new", "ratio", ratio(seconds, floors["floor"]))
    bench.record("new", "ratio_contract", ratio(seconds, floors["contract_floor"]))
    puts = _probe_puts(bench, s3_mark, namespace)
    bench.record("new", "operator_probe_puts", len(puts))
    bench.operator.sample("new: all verified")


# --- writes ----------------------------------------------------------------------------------


def writes(bench: Bench) -> None:
    """Writes per new Destination (from `new`), per re-verification, and per minute at rest."""
    population = bench.state.get("new")
    if population is None:
        raise NotReached("needs the population of the `new` scenario, which did not complete")
    namespace, count = population["namespace"], bench.settings.count
    time.sleep(SETTLE_SECONDS)
    first = bench.audit.operator_writes(population["audit_mark"], namespace=namespace)
    bench.record("writes", "per_new_destination", per_object(by_kind(first), count))
    bench.record("writes", "per_new_destination_total", round(len(first) / count, 3))

    sample = min(bench.settings.reverify_count, count)
    names = [name_of(i) for i in range(sample)]
    request = f"bench-{time.time_ns()}"
    tracker = bench.track(namespace, verified_with_request(request))
    audit_mark, s3_mark = bench.audit.mark(), bench.s3_log.mark()
    try:
        started = time.monotonic()
        bench.maker.request_verification(namespace, names, request)
        met = bench.wait_all(tracker, sample, "re-verification")
    finally:
        tracker.stop()
    time.sleep(SETTLE_SECONDS)
    again = bench.audit.operator_writes(audit_mark, namespace=namespace)
    puts = _probe_puts(bench, s3_mark, namespace)
    bench.record("writes", "reverified", sample)
    bench.record("writes", "per_reverification", per_object(by_kind(again), sample))
    bench.record("writes", "per_reverification_total", round(len(again) / sample, 3))
    bench.record("writes", "reverification_probe_puts", len(puts))
    bench.record("writes", "reverification_s", percentiles(t - started for t in met.values()))

    mark = bench.audit.mark()
    time.sleep(bench.settings.steady_seconds)
    at_rest = bench.audit.operator_writes(mark)
    bench.record("writes", "at_rest_seconds", bench.settings.steady_seconds)
    bench.record("writes", "at_rest_by_kind", by_kind(at_rest))
    bench.record(
        "writes",
        "at_rest_per_minute",
        round(len(at_rest) * 60 / bench.settings.steady_seconds, 2),
    )
    bench.operator.sample("writes: at rest")


# --- restarts --------------------------------------------------------------------------------


def restart_verified(bench: Bench) -> None:
    """Stop the operator with everything verified, start it again, and count what it does
    until all are armed and `steady_seconds` after: no probe and no write is right. Then the
    same once more for each of `restart_variants`, with those settings on top (recorded as
    `restart-verified <settings>`, its own process in `rss`)."""
    if "new" not in bench.state:
        raise NotReached("needs the population of the `new` scenario, which did not complete")
    base = dict(bench.operator.settings)
    missed = []
    try:
        for variant in ({}, *bench.settings.restart_variants):
            name = " ".join(["restart-verified", *(f"{k}={v}" for k, v in variant.items())])
            bench.operator.stop()
            bench.operator.settings = {**base, **{env_var(k): v for k, v in variant.items()}}
            if not _restart_once(bench, name, variant.get("destination_selector", "")):
                missed.append(name)
    finally:
        bench.operator.settings = base
    if missed:
        raise NotReached(f"not all armed in time: {', '.join(missed)}")


def _restart_once(bench: Bench, name: str, selector: str = "") -> bool:
    """One start over the stored Destinations (those `selector` matches, the operator's
    `destination_selector`), recorded under `name`; whether all armed."""
    stored = bench.env.stored_destinations(selector)
    audit_mark, s3_mark = bench.audit.mark(), bench.s3_log.mark()
    started = bench.operator.start(name)
    armed, metrics = bench.operator.wait_armed(stored, bench.limit(stored))
    bench.record(name, "stored", stored)
    bench.record(name, "armed_s", None if armed is None else round(armed, 2))
    bench.record(name, "metrics_at_armed", _operator_metrics(metrics))
    time.sleep(bench.settings.steady_seconds)
    window = time.monotonic() - started
    after = bench.operator.metrics()
    operator_writes = bench.audit.operator_writes(audit_mark)
    requests = bench.s3_log.since(s3_mark)
    bench.record(name, "window_s", round(window, 1))
    bench.record(name, "s3_requests", len(requests))
    bench.record(name, "api_writes", len(operator_writes))
    bench.record(name, "api_writes_by_kind", by_kind(operator_writes))
    bench.record(name, "metrics_at_end", _operator_metrics(after))
    bench.operator.sample(f"{name}: end of window")
    return armed is not None


def _operator_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {name: metrics.get(name, 0.0) for name in (TRACKED, SYNCED, PROBES, STATUS_WRITES)}


def _unverified_floor(bench: Bench, label: str, contract: bool) -> float:
    """A floor started over N unverified stored: seconds from its spawn to all Verified."""
    count = bench.settings.count
    floor_ns = bench.namespace(f"bench-unverified-{label.replace('_', '-')}")
    bench.record(
        "restart-unverified",
        f"{label}_creation_s",
        round(bench.maker.create(bench.bodies(floor_ns, count)), 2),
    )
    tracker = bench.track(floor_ns)
    run = bench.spawn_floor(floor_ns, count, wait_ready=False, contract=contract)
    try:
        met = bench.wait_all(tracker, count, f"{label}: Verified", floor=run)
    finally:
        tracker.stop()
        bench.record("restart-unverified", f"{label}_process", bench.end_floor(run))
        bench.drop(floor_ns)
    seconds = round(max(met.values()) - run.spawned_at, 2)
    bench.record("restart-unverified", f"{label}_all_verified_s", seconds)
    return seconds


def restart_unverified(bench: Bench) -> None:
    """N stored while nothing runs, then a process started over them: the floor, then the
    operator, each timed from its spawn to all Verified."""
    count = bench.settings.count
    bench.operator.stop()
    bench.drop_all_but_warmup()  # only unverified ones (and the warm-up) stored
    bench.state.pop("new", None)

    bench.record("restart-unverified", "count", count)
    floors: dict[str, float] = {}
    for label, contract in FLOORS.items():
        floors[label] = _unverified_floor(bench, label, contract)

    namespace = bench.namespace("bench-unverified")
    bench.record(
        "restart-unverified",
        "operator_creation_s",
        round(bench.maker.create(bench.bodies(namespace, count)), 2),
    )
    tracker = bench.track(namespace)
    audit_mark, s3_mark = bench.audit.mark(), bench.s3_log.mark()
    try:
        started = bench.operator.start("restart-unverified")
        met = bench.wait_all(tracker, count, "operator: Verified")
    finally:
        tracker.stop()
    seconds = round(max(met.values()) - started, 2)
    time.sleep(SETTLE_SECONDS)
    operator_writes = bench.audit.operator_writes(audit_mark, namespace=namespace)
    puts = _probe_puts(bench, s3_mark, namespace)
    bench.record("restart-unverified", "operator_all_verified_s", seconds)
    bench.record("restart-unverified", "ratio", ratio(seconds, floors["floor"]))
    bench.record("restart-unverified", "ratio_contract", ratio(seconds, floors["contract_floor"]))
    bench.record("restart-unverified", "operator_probe_puts", len(puts))
    bench.record(
        "restart-unverified", "writes_per_destination", per_object(by_kind(operator_writes), count)
    )
    bench.operator.sample("restart-unverified: all verified")
    bench.drop(namespace)


# --- rotation --------------------------------------------------------------------------------


def _new_access_key(bench: Bench) -> KeyPair:
    """A second access key of the S3 server's `admin` user (IAM CreateAccessKey, signed
    with the first): a real rotation, to a key the server has never seen used."""
    admin = bench.env.s3.users["admin"]
    iam = boto3.client(
        "iam",
        endpoint_url=bench.env.s3.endpoint,
        region_name=REGION,
        aws_access_key_id=admin.access_key_id,
        aws_secret_access_key=admin.secret_access_key,
    )
    made = iam.create_access_key(UserName="admin")["AccessKey"]
    return KeyPair(made["AccessKeyId"], made["SecretAccessKey"])


def rotation(bench: Bench) -> None:
    """One Secret used by `rotation_count` Destinations gets a new key pair: how long until
    each is verified again with it (its credentialsFingerprint changes, Verified=True)."""
    bench.ensure_operator("rotation")
    count = bench.settings.rotation_count
    namespace = bench.namespace("bench-rotation")
    tracker = bench.track(namespace)
    try:
        bench.maker.create(bench.bodies(namespace, count))
        bench.wait_all(tracker, count, "rotation set-up: Verified")
    finally:
        tracker.stop()
    before = bench.env.get_destination(namespace, name_of(0))
    old_fingerprint = str(before["status"].get("credentialsFingerprint") or "")
    keys = _new_access_key(bench)
    tracker = bench.track(namespace, verified_with_new_credentials(old_fingerprint))
    s3_mark = bench.s3_log.mark()
    try:
        started = time.monotonic()
        bench.env.replace_secret(namespace, secret(namespace, keys))
        met = bench.wait_all(tracker, count, "re-verified after rotation")
    finally:
        tracker.stop()
    puts = _probe_puts(bench, s3_mark, namespace)
    bench.record("rotation", "count", count)
    bench.record("rotation", "how", "IAM CreateAccessKey for the same user; Secret replaced")
    bench.record("rotation", "seconds", percentiles(t - started for t in met.values()))
    bench.record(
        "rotation",
        "probe_puts_with_new_key",
        sum(1 for r in puts if r.access_key_id == keys.access_key_id),
    )
    bench.operator.sample("rotation: all re-verified")
    bench.drop(namespace)


# --- rss -------------------------------------------------------------------------------------


def rss(bench: Bench) -> None:
    """The peak resident memory (VmHWM) of the operator processes of this run, sampled after
    each scenario's largest moment and at each stop: the highest while N were tracked, and
    the highest at all (a namespace of N being deleted is work too)."""
    bench.operator.stop()
    samples = bench.operator.samples
    bench.record("rss", "samples", samples)

    def hwm(sample: dict[str, object]) -> float:
        return float(str(sample.get("VmHWM", 0)))

    def tracked(sample: dict[str, object]) -> float:
        return float(str(sample.get("destinations_tracked") or 0))

    at_count = [s for s in samples if tracked(s) >= bench.settings.count]
    largest = max(at_count, key=hwm, default=None)
    bench.record("rss", "peak_at_count_mib", None if largest is None else hwm(largest))
    bench.record("rss", "peak_at_count_sample", largest)
    bench.record("rss", "peak_mib", max(map(hwm, samples), default=None))
    by_process: dict[str, float] = {}
    for sample in samples:
        process = str(sample.get("process"))
        by_process[process] = max(by_process.get(process, 0.0), hwm(sample))
    bench.record("rss", "peak_by_process_mib", by_process)


SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "single": single,
    "new": new,
    "writes": writes,
    "restart-verified": restart_verified,
    "restart-unverified": restart_unverified,
    "rotation": rotation,
    "rss": rss,
    "secrets": secrets,
    "flowschema": flowschema,
}
"""In the order they run, whatever order they are asked in."""

NEEDS = {"writes": "new", "restart-verified": "new", "rss": "new"}
"""What a scenario needs to have run before it, added when not asked for."""
