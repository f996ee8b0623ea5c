"""Two replicas of the chart on the real node: leader election hands over, and nothing is
done twice.

The chart is installed with `replicas: 2`; both pods are Ready, one holds the Lease.
`/healthz` (read through the API server's pod proxy) says `standby` on the other.
Then:

- the leader's container is killed with SIGKILL (containerd, as when a node
  dies): the standby takes the Lease and verifies a Destination made at the
  kill within the lease duration + 5 s;
- a `helm upgrade` that changes a value rolls both pods: each leader exits on
  SIGTERM after releasing the Lease, and a Destination made at each release is
  verified within 5 s of it.

Through both, judged from the S3 server's requests and the API server's audit
log: every Destination was probed once and written as often as the first one
(no double probe, no double write, no lost write), and its Ready condition kept
its first transition time (no flap). The times are printed (pytest -s).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client
from node_fixtures import Storage, destination, pod_names, probes

import chart
from cluster.dst import apply, condition, get, s3_secret, wait_for
from harness import Cluster
from node import Node

pytestmark = pytest.mark.install

LEASE = "destination-operator"  # the chart's leaderElectionId
LEASE_DURATION = 15.0  # the chart's leaderElectionLeaseDuration
WRITES = {"create", "update", "patch", "delete"}
OK, STANDBY = {"engine": "ok"}, {"engine": "standby"}  # what /healthz answers


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


@contextmanager
def watching(cluster: Cluster, namespace: str) -> Iterator[LeaseWatch]:
    watch = LeaseWatch(cluster, namespace)
    watch.thread.start()
    try:
        yield watch
    finally:
        watch.stopped.set()
        watch.thread.join(5)


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


def writes_per_destination(cluster: Cluster, user: str, namespace: str) -> Counter[str]:
    """The operator's writes in `namespace`, by Destination: status patches, and Events
    (named `<destination>.<random>`), counted once per request from the audit log."""
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    for line in cluster.plane.audit_log.read_text().splitlines():
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        if (
            entry.get("user", {}).get("username") != user
            or entry.get("verb") not in WRITES
            or ref.get("namespace") != namespace
            or entry["auditID"] in seen
        ):
            continue
        seen.add(entry["auditID"])
        if ref.get("resource") == "destinations":
            counts[ref["name"]] += 1
        elif ref.get("resource") == "events":
            counts[ref["name"].rsplit(".", 1)[0]] += 1
    return counts


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


def container_id(cluster: Cluster, namespace: str, pod: str) -> str:
    body = json.loads(cluster.kubectl("get", "pod", "-n", namespace, pod, "-o", "json").stdout)
    found: str = body["status"]["containerStatuses"][0]["containerID"]
    return found.split("://", 1)[1]


def test_two_replicas_hand_over_on_sigkill_and_on_upgrade_and_do_nothing_twice(
    cluster: Cluster,
    destination_crd: str,
    node: Node,
    operator_image: str,
    storage: Storage,
) -> None:
    suffix = secrets.token_hex(3)
    release, namespace, team = f"ha-{suffix}", f"ha-operator-{suffix}", f"ha-team-{suffix}"
    repository, tag = operator_image.rsplit(":", 1)
    image_values = {"repository": repository, "tag": tag, "pullPolicy": "Never"}
    cluster.helm(
        "install",
        release,
        str(chart.CHART),
        "-n",
        namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        "240s",
        "--set-json",
        f"image={json.dumps(image_values)}",
        "--set",
        "allowPrivateEndpoints=true,replicas=2,crds.install=false",  # the session's CRD
        timeout=300,
    )
    names: list[str] = []
    try:
        deployment = json.loads(
            cluster.kubectl("get", "deployment", "-n", namespace, "-o", "json").stdout
        )["items"][0]
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        user = f"system:serviceaccount:{namespace}:{account}"
        cluster.kubectl("create", "namespace", team)
        with watching(cluster, namespace) as lease:
            pods = ready_pods(cluster, namespace, 2)
            _, holder = lease.wait("a holder", bool)
            leader = pod_of(holder)
            (standby,) = set(pods) - {leader}
            apply(cluster, team, s3_secret(storage.server), destination("first", storage))
            names.append("first")
            # kopf answers /healthz from a result up to 10 s old
            wait_until("the leader's /healthz", lambda: health(cluster, namespace, leader) == OK)
            wait_until(
                "the standby's /healthz", lambda: health(cluster, namespace, standby) == STANDBY
            )
            first = wait_for(cluster, team, "first", "Ready", "True", timeout=120)
            time.sleep(2)  # its Event, posted after the status
            per_destination = writes_per_destination(cluster, user, team)["first"]
            assert per_destination >= 2 and probes(storage, "first/") == 1

            # SIGKILL the leader: no release, the standby waits out the lease duration
            killed = time.monotonic()
            node.ctr(
                "tasks", "kill", "--signal", "SIGKILL", container_id(cluster, namespace, leader)
            )
            apply(cluster, team, destination("after-kill", storage))
            names.append("after-kill")
            held, _ = lease.wait("the standby", lambda h: pod_of(h) == standby)
            wait_for(cluster, team, "after-kill", "Ready", "True", timeout=60)
            verified = time.monotonic()
            print(
                f"SIGKILL of the leader: the standby held the Lease after {held - killed:.1f} s"
                f" and verified a new Destination after {verified - killed:.1f} s"
                f" (lease duration {LEASE_DURATION:.0f} s)"
            )
            assert verified - killed <= LEASE_DURATION + 5

            # helm upgrade: each leader releases on SIGTERM; a Destination made at each
            # release is verified within 5 s of it
            old = ready_pods(cluster, namespace, 2)  # the killed container restarted
            cluster.helm(
                "upgrade",
                release,
                str(chart.CHART),
                "-n",
                namespace,
                "--reuse-values",
                "--set",
                "logLevel=DEBUG",
                timeout=300,
            )
            handovers: list[tuple[float, float]] = []
            deadline, seen = time.monotonic() + 300, len(lease.changes)
            while pod_of(lease.holder) in {"", *old} or set(pod_names(cluster, namespace)) & set(
                old
            ):
                assert time.monotonic() < deadline, f"the rollout never ended: {lease.changes}"
                found = lease.release_after(seen)
                if found is None:
                    time.sleep(0.05)
                    continue
                seen, at = found
                name = f"handover-{len(handovers)}"
                apply(cluster, team, destination(name, storage))
                names.append(name)
                wait_for(cluster, team, name, "Ready", "True", timeout=60)
                handovers.append((at, time.monotonic()))
            cluster.kubectl("rollout", "status", "-n", namespace, "deployment", "--timeout=180s")
            timeline = [
                (round(at - killed, 1), pod_of(h) or "(released)") for at, h in lease.changes
            ]
        for number, (released, done) in enumerate(handovers):
            print(
                f"upgrade: handover {number} verified a new Destination "
                f"{done - released:.1f} s after the leader released the Lease"
            )
        print(f"the Lease's holders, seconds from the SIGKILL: {timeline}")
        assert handovers, "the upgrade never moved the Lease"
        assert all(done - released <= 5 for released, done in handovers), handovers
        assert pod_of(lease.holder) not in old

        # nothing twice, nothing lost, no flap
        time.sleep(3)
        writes = writes_per_destination(cluster, user, team)
        assert {name: writes[name] for name in names} == dict.fromkeys(names, per_destination)
        assert {name: probes(storage, f"{name}/") for name in names} == dict.fromkeys(names, 1)
        assert condition(get(cluster, team, "first"), "Ready") == condition(first, "Ready")
        for name in names:
            assert condition(get(cluster, team, name), "Ready")["status"] == "True", name
    finally:
        cluster.helm(
            "uninstall", release, "-n", namespace, "--wait", "--timeout", "120s", timeout=300
        )
    cluster.kubectl("delete", "namespace", team, namespace, "--wait=false")
    cluster.wait_namespace_gone(team, timeout=120)
    cluster.wait_namespace_gone(namespace, timeout=120)
