"""Chaos: the operator killed at random moments, the API server and etcd restarted, storage
down and back. Every object must end in the right condition, nothing probed twice without a
reason, and no event storm.

Sizes: DESTINATION_OPERATOR_CHAOS_DESTINATIONS (default 200; 1000 for a longer run) and
DESTINATION_OPERATOR_CHAOS_SEED (default: random, printed) to replay a run.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dst import apply, events, s3_destination, s3_secret
from kubernetes import client
from operator_fixtures import OperatorProcess

from harness import Cluster
from s3server import S3Server
from tcprelay import TcpRelay

pytestmark = pytest.mark.cluster

COUNT = int(os.environ.get("DESTINATION_OPERATOR_CHAOS_DESTINATIONS", "200"))
ROUNDS = 5
PROBE_DIRECTORY = ".destination-operator-probe/"


def statuses(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    """name -> {"uid", "conditions": {type: condition}} for every Destination."""
    api = client.CustomObjectsApi(cluster.api_client())
    items = api.list_namespaced_custom_object(
        "destinations.io", "v1alpha1", namespace, "destinations"
    )["items"]
    return {
        item["metadata"]["name"]: {
            "uid": item["metadata"]["uid"],
            "generation": item["metadata"]["generation"],
            "conditions": {
                c["type"]: c for c in (item.get("status") or {}).get("conditions") or []
            },
        }
        for item in items
    }


def with_condition(
    found: dict[str, dict[str, Any]], kind: str, status: str, reason: str | None = None
) -> set[str]:
    return {
        name
        for name, item in found.items()
        if (cond := item["conditions"].get(kind))
        and cond["status"] == status
        and (reason is None or cond.get("reason") == reason)
        and cond.get("observedGeneration") == item["generation"]
    }


def wait_all(
    cluster: Cluster,
    namespace: str,
    names: set[str],
    kind: str,
    status: str,
    timeout: float,
    reason: str | None = None,
) -> float:
    """Seconds until every one of `names` has the condition; fails after `timeout`."""
    started = time.monotonic()
    while True:
        done = with_condition(statuses(cluster, namespace), kind, status, reason) & names
        if done == names:
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        assert elapsed < timeout, (
            f"{len(done)} of {len(names)} have {kind}={status} after {elapsed:.0f} s; "
            f"missing e.g. {sorted(names - done)[:5]}"
        )
        time.sleep(0.5)


def probe_writes(s3: S3Server) -> collections.Counter[str]:
    """Probe objects written (PUT answered 200), by the uid in the probe object's key."""
    counts: collections.Counter[str] = collections.Counter()
    for line in s3.requests():
        _, method, path, _, status = line.split()
        if method == "PUT" and status == "200" and PROBE_DIRECTORY in path:
            counts[path.rsplit("/", 1)[-1].removesuffix(".txt")] += 1
    return counts


def many(s3: S3Server, prefix: str, count: int, **spec: Any) -> list[dict[str, Any]]:
    return [s3_secret(s3)] + [
        s3_destination(f"d{i:04d}", s3, secret="s3", prefix=f"{prefix}/", **spec)
        for i in range(count)
    ]


@pytest.fixture
def running(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The session's operator; whatever a test did to it, it runs again afterwards."""
    try:
        yield operator
    finally:
        if not operator.alive():
            operator.start()


def test_sigkill_at_random_moments_loses_nothing_and_probes_nothing_twice(
    cluster: Cluster, namespace: str, s3: S3Server, running: OperatorProcess
) -> None:
    seed = int(os.environ.get("DESTINATION_OPERATOR_CHAOS_SEED", random.randrange(1 << 30)))
    print(f"chaos seed {seed} ({COUNT} Destinations)")
    rng = random.Random(seed)
    running.stop()
    # interval 0s: nothing is ever due again, so every probe after the first needs a reason
    apply(cluster, namespace, *many(s3, "chaos", COUNT, verification={"interval": "0s"}))
    uids = {name: item["uid"] for name, item in statuses(cluster, namespace).items()}

    # Each round is killed at a random point of its run: once a random share of what is
    # left has been probed. Probes are counted in the S3 server's log (a file read: fast
    # enough to kill mid-run however quickly the operator works); statuses lag them.
    def probed() -> int:
        return len(set(probe_writes(s3)) & set(uids.values()))

    snapshots: list[tuple[set[str], collections.Counter[str]]] = []
    for _ in range(ROUNDS):
        done = probed()
        target = done + max(1, int(rng.uniform(0.1, 0.4) * (COUNT - done)))
        running.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and probed() < target:
            time.sleep(0.02)
        running.kill()
        verified = with_condition(statuses(cluster, namespace), "Verified", "True")
        snapshots.append(({uids[n] for n in verified}, probe_writes(s3)))
    running.start()
    wait_all(cluster, namespace, set(uids), "Ready", "True", timeout=180)

    final = statuses(cluster, namespace)
    assert with_condition(final, "Verified", "True", "ProbeSucceeded") == set(uids)
    assert not with_condition(final, "Reconciling", "True")
    writes = probe_writes(s3)
    progress = [len(verified) for verified, _ in snapshots]
    print(f"verified after each kill: {progress} of {COUNT}")
    assert sum(0 < done < COUNT for done in progress) >= ROUNDS - 2, "kills missed the run"
    for verified, before in snapshots:
        # A Destination whose status was stored is never probed again by a restart.
        again = {uid: (before[uid], writes[uid]) for uid in verified if writes[uid] != before[uid]}
        assert not again, f"probed again after their status was stored: {again}"
    for uid in uids.values():
        # At most once per start: a probe interrupted by a kill is due again.
        assert 1 <= writes[uid] <= ROUNDS + 1, (uid, writes[uid])


def test_the_operator_survives_a_kube_apiserver_restart(
    cluster: Cluster, namespace: str, s3: S3Server, running: OperatorProcess
) -> None:
    count = max(COUNT // 2, 50)
    apply(cluster, namespace, *many(s3, "apiserver", count))
    time.sleep(1.0)
    cluster.plane.restart("kube-apiserver")
    names = {f"d{i:04d}" for i in range(count)}
    wait_all(cluster, namespace, names, "Ready", "True", timeout=120)
    assert running.alive(), running.text()[-3000:]
    # and it still hears about new objects: its watches reconnected
    apply(cluster, namespace, s3_destination("after", s3, secret="s3"))
    wait_all(cluster, namespace, {"after"}, "Ready", "True", timeout=60)


def test_the_operator_survives_an_etcd_restart(
    cluster: Cluster, namespace: str, s3: S3Server, running: OperatorProcess
) -> None:
    count = max(COUNT // 2, 50)
    apply(cluster, namespace, *many(s3, "etcd", count))
    time.sleep(1.0)
    cluster.plane.restart("etcd")
    names = {f"d{i:04d}" for i in range(count)}
    wait_all(cluster, namespace, names, "Ready", "True", timeout=120)
    assert running.alive(), running.text()[-3000:]
    apply(cluster, namespace, s3_destination("after", s3, secret="s3"))
    wait_all(cluster, namespace, {"after"}, "Ready", "True", timeout=60)


# The test operator's settings (operator_fixtures.OperatorProcess): an unset interval is 2 s,
# retries back off from 1 s to a cap of 4 s.
DEFAULT_INTERVAL = 2.0
BACKOFF_CAP = 4.0
TIMEOUT = 2.0


def test_storage_down_and_back_turns_false_then_true_without_an_event_storm(
    cluster: Cluster, namespace: str, s3: S3Server, running: OperatorProcess
) -> None:
    relay = TcpRelay("127.0.0.1", s3.port)
    try:
        endpoint = f"http://127.0.0.1:{relay.port}"
        # as many as there are probe slots: all time out together, none waits for a slot
        count = 8
        objects = [s3_secret(s3)] + [
            s3_destination(
                f"d{i:04d}",
                s3,
                secret="s3",
                endpoint=endpoint,
                verification={"timeout": f"{TIMEOUT:g}s"},  # interval unset: the default
            )
            for i in range(count)
        ]
        apply(cluster, namespace, *objects)
        names = {f"d{i:04d}" for i in range(count)}
        wait_all(cluster, namespace, names, "Verified", "True", timeout=60)

        relay.hang()  # the server stops answering
        down = wait_all(
            cluster, namespace, names, "Verified", "False", timeout=60, reason="Timeout"
        )
        print(f"all Verified=False {down:.1f} s after the storage hung")
        # Nothing probes before the interval is due, so it is part of the bound.
        assert down <= DEFAULT_INTERVAL + TIMEOUT + 5, down
        time.sleep(3 * BACKOFF_CAP)  # several retries while it stays down

        relay.restore()
        back = wait_all(cluster, namespace, names, "Verified", "True", timeout=60)
        print(f"all Verified=True {back:.1f} s after the storage came back")
        # the next retry comes within the backoff cap; the probe and the patch take the rest
        assert back <= BACKOFF_CAP + 3, back

        for name in names:
            posted = events(cluster, namespace, name)
            reasons = collections.Counter(event["reason"] for event in posted)
            # one Verified on return (none on creation); a failure event per failure reason:
            # Timeout, and EndpointUnreachable first when a probe was in flight as the
            # storage hung (its connection is cut). Retries with the same reason post none.
            failures = [
                event["message"].split(":", 1)[0]
                for event in posted
                if event["reason"] == "VerificationFailed"
            ]
            assert reasons["Verified"] == 1, (name, reasons)
            assert set(reasons) == {"Verified", "VerificationFailed"}, (name, reasons)
            assert "Timeout" in failures, (name, failures)
            assert len(failures) == len(set(failures)) <= 2, (name, failures)
    finally:
        relay.close()


def test_sigterm_with_probes_in_flight_exits_within_10s_and_the_next_start_probes_again(
    cluster: Cluster, namespace: str, s3: S3Server, running: OperatorProcess
) -> None:
    relay = TcpRelay("127.0.0.1", s3.port)
    try:
        relay.hang()  # a server that never answers
        endpoint = f"http://127.0.0.1:{relay.port}"
        count = 4
        objects = [s3_secret(s3)] + [
            s3_destination(
                f"d{i}",
                s3,
                secret="s3",
                endpoint=endpoint,
                verification={"interval": "0s", "timeout": "10m"},
            )
            for i in range(count)
        ]
        apply(cluster, namespace, *objects)
        deadline = time.monotonic() + 30
        while relay.accepted < count:
            assert time.monotonic() < deadline, f"only {relay.accepted} probes started"
            time.sleep(0.1)
        time.sleep(0.5)  # the probes are waiting for their answers

        assert running.proc is not None
        stopping = time.monotonic()
        running.proc.send_signal(signal.SIGTERM)
        code = running.proc.wait(timeout=30)
        took = time.monotonic() - stopping
        print(f"exited with {code} {took:.1f} s after SIGTERM, {count} probes in flight")
        assert took <= 10, took

        # Interrupted probes decided nothing: the next start probes them again.
        relay.restore()
        running.start()
        names = {f"d{i}" for i in range(count)}
        wait_all(cluster, namespace, names, "Verified", "True", timeout=60)
    finally:
        relay.close()
