"""What the node tests of leader election share: the chart's Lease watched, the pods'
`/healthz`, and the operator's writes read from the API server's audit log.

- `watching(cluster, namespace)`: a `LeaseWatch` of the chart's Lease (each change of
  holder, timed) for as long as the block runs;
- `follow_rollout(...)`: a helm command run while the Lease is followed, and a
  Destination made at each release of the Lease during the rollout it starts, timed
  until it is verified;
- `operator_writes` and `writes_per_destination`: the operator's writes in a namespace from
  the audit log, each with its Destination, the pod that made it (its ServiceAccount token
  names the pod) and its time;
- `ready_pods`, `health`, `pod_of`, `wait_until`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from kubernetes import client
from node_fixtures import Storage, destination, pod_names

from cluster.dst import apply, wait_for
from controlplane import audit_events
from harness import Cluster

LEASE = "destination-operator"  # the chart's leaderElectionId
LEASE_DURATION = 15.0  # the chart's leaderElectionLeaseDuration
WRITES = {"create", "update", "patch", "delete"}
OK, STANDBY = {"engine": "ok"}, {"engine": "standby"}  # what /healthz answers
POD_NAME = "authentication.kubernetes.io/pod-name"  # the audit's user.extra for a pod's token


class LeaseWatch:
    """The chart's Lease read every 0.1 s: (monotonic time, holderIdentity) at each change."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.api = client.CoordinationV1Api(cluster.api_client())
        self.namespace = namespace
        self.changes: list[tuple[float, str]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                raw = self.api.read_namespaced_lease(LEASE, self.namespace, _preload_content=False)
                holder = str((json.loads(raw.data).get("spec") or {}).get("holderIdentity") or "")
            except client.ApiException:
                holder = None
            if holder is not None and (not self.changes or self.changes[-1][1] != holder):
                self.changes.append((time.monotonic(), holder))
            self.stopped.wait(0.1)

    @property
    def holder(self) -> str:
        return self.changes[-1][1] if self.changes else ""

    def release_after(self, index: int) -> tuple[int, float] | None:
        """The first change from `index` on that ended a holding (a release, or a
        takeover), as (the index after it, its time); None when there is none yet."""
        changes = list(self.changes)
        for at in range(max(index, 1), len(changes)):
            if changes[at - 1][1] and changes[at][1] != changes[at - 1][1]:
                return at + 1, changes[at][0]
        return None

    def wait(self, what: str, check: Any, timeout: float = 60) -> tuple[float, str]:
        """The first change (time, holder) from now on, or already there, that passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, holder in reversed(self.changes):
                if check(holder):
                    return at, holder
                break
            time.sleep(0.05)
        raise AssertionError(f"the Lease: {what} not after {timeout} s: {self.changes}")


class Polling(Protocol):
    """A watcher polling in its own thread until `stopped` is set."""

    thread: threading.Thread
    stopped: threading.Event


P = TypeVar("P", bound=Polling)


@contextmanager
def running(watch: P) -> Iterator[P]:
    """`watch` with its thread started, and stopped on leaving."""
    watch.thread.start()
    try:
        yield watch
    finally:
        watch.stopped.set()
        watch.thread.join(5)


def watching(cluster: Cluster, namespace: str) -> AbstractContextManager[LeaseWatch]:
    return running(LeaseWatch(cluster, namespace))


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s"
        time.sleep(0.5)


def pod_of(holder: str) -> str:
    """The pod of a holder identity (its name, `_`, a random suffix per process)."""
    return holder.rsplit("_", 1)[0]


def health(cluster: Cluster, namespace: str, pod: str) -> dict[str, Any]:
    """GET /healthz of a pod, through the API server's proxy."""
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}:8080/proxy/healthz"
    answer: dict[str, Any] = json.loads(cluster.kubectl("get", "--raw", path).stdout)
    return answer


@dataclass(frozen=True)
class Write:
    """One write of the operator's: a Destination's status, or an Event about it."""

    destination: str
    pod: str  # the pod whose ServiceAccount token made it
    at: float  # epoch seconds, as the API server received it


def operator_writes(cluster: Cluster, user: str, namespace: str) -> list[Write]:
    """The operator's writes in `namespace`: status patches, and Events (named
    `<destination>.<random>`), each request once, from the audit log."""
    seen: set[str] = set()
    writes = []
    for entry in audit_events(cluster.plane.audit_log):
        ref = entry.get("objectRef") or {}
        if (
            entry.get("user", {}).get("username") != user
            or entry.get("verb") not in WRITES
            or ref.get("namespace") != namespace
            or ref.get("resource") not in {"destinations", "events"}
            or entry["auditID"] in seen
        ):
            continue
        seen.add(entry["auditID"])
        name = ref["name"] if ref["resource"] == "destinations" else ref["name"].rsplit(".", 1)[0]
        (pod,) = entry["user"]["extra"][POD_NAME]
        stamp = entry["requestReceivedTimestamp"].replace("Z", "+00:00")
        writes.append(Write(name, pod, datetime.fromisoformat(stamp).timestamp()))
    return writes


def writes_per_destination(cluster: Cluster, user: str, namespace: str) -> Counter[str]:
    return Counter(write.destination for write in operator_writes(cluster, user, namespace))


def ready_pods(cluster: Cluster, namespace: str, count: int) -> list[str]:
    deadline = time.monotonic() + 180
    while len(pods := pod_names(cluster, namespace)) != count:
        assert time.monotonic() < deadline, f"{count} pods expected: {pods}"
        time.sleep(0.5)
    for pod in pods:
        cluster.kubectl(
            "wait", "-n", namespace, "--for=condition=Ready", f"pod/{pod}", "--timeout=120s"
        )
    return pods


def follow_rollout(
    cluster: Cluster,
    namespace: str,
    team: str,
    storage: Storage,
    lease: LeaseWatch,
    old: list[str],
    names: list[str],
    prefix: str,
    command: Callable[[], object],
) -> list[tuple[float, float]]:
    """Run `command` (the helm command that starts the rollout) in a thread and follow
    the Lease from before it began, so no release is missed however long helm takes:
    until no pod of `old` is left and one of the new ones holds the Lease, at each
    release a Destination `<prefix>-<n>` is made (its name added to `names`) and waited
    for; returns (the release's time, the verification's time) of each, monotonic."""
    handovers: list[tuple[float, float]] = []
    deadline, seen = time.monotonic() + 300, len(lease.changes)
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = pool.submit(command)
        while True:
            assert time.monotonic() < deadline, f"the rollout never ended: {lease.changes}"
            ended = (
                started.done()
                and pod_of(lease.holder) not in {"", *old}
                and not set(pod_names(cluster, namespace)) & set(old)
            )
            # Asked after `ended`: the last release and the takeover that ends the rollout
            # can both come while `ended` is asked (a kubectl call under load).
            found = lease.release_after(seen)
            if found is None:
                if ended:
                    break
                time.sleep(0.05)
                continue
            seen, at = found
            name = f"{prefix}-{len(handovers)}"
            apply(cluster, team, destination(name, storage))
            names.append(name)
            wait_for(cluster, team, name, "Ready", "True", timeout=60)
            handovers.append((at, time.monotonic()))
        started.result()  # helm's own failure, if any
    cluster.kubectl("rollout", "status", "-n", namespace, "deployment", "--timeout=180s")
    return handovers
