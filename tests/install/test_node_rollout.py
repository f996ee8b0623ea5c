"""From the chart and image of main before leader election to today's, and back, on the
real node: nothing is done twice.

OLD is main's last commit before the chart made a Lease (its chart: one replica, Recreate,
no election). Its image is built from its own tree (hack/image.py, under a tag of its own)
and its chart installed from that tree. Then, with Destinations verified by the old pod:

1. `helm upgrade` to today's chart and image with `replicas: 2`. The chart's Lease does not
   exist yet, so the chart renders `Recreate` (helm's lookup): the old pod, which takes no
   part in the election, is gone before the new pods start. They are never alive together.
2. `helm upgrade` changing a value: the Lease exists, so `RollingUpdate`. Old and new pods
   of today's chart are alive together, and each leader's SIGTERM hands the Lease over.
3. `helm rollback` to the old revision: the old chart's `Recreate` stops today's pods
   before the old one starts; helm removes the Lease, its Role and the PodDisruptionBudget.
4. `helm upgrade` to today's chart again: `Recreate` again, as the rollback removed the Lease.

A Destination is made as each step begins and another once it is over; each is verified.
Judged from the S3 server's requests and the API server's audit log (which names the pod
of each write): every Destination was probed once and written by one pod only, as often as
any other of its version's (one made as a Recreate began may be begun by the stopping pod
and finished by a new one, with no more writes than one pod makes, and probed again if the
stopping pod's probe was in flight at its SIGTERM), no two pods' writes overlap in time,
and the first Destinations kept their Ready and Verified transition times (no flap, no
rewrite by a new version). The times of each step are printed (pytest -s).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client
from node_election import (
    Write,
    follow_rollout,
    operator_writes,
    pod_of,
    ready_pods,
    running,
    watching,
)
from node_fixtures import (
    Storage,
    destination,
    helm_install,
    image_values,
    operator_deployment,
    probes,
    uninstall,
    user_of,
)

import chart
import image
from cluster.dst import apply, condition, get, s3_secret, wait_for
from harness import Cluster
from node import Node

pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]

# main's last commit before the chart gained its Lease (the merge of shards, before leader)
OLD = "46484d821b3ad7b2c5404d200e6d903d8078e35a"
OLD_IMAGE = f"localhost/destination-operator:main-{OLD[:7]}"
FIRST = [f"before-{n}" for n in range(6)]


@pytest.fixture(scope="module")
def old_chart(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OLD's chart, from its tree, with OLD's image (built from the same tree) in the node."""
    tree = tmp_path_factory.mktemp("old-main")
    archive = tree / "tree.tar"
    done = subprocess.run(
        ["git", "-C", str(image.ROOT), "archive", "-o", str(archive), OLD],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"git archive {OLD} (a clone with main's history): {done.stderr}"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    built = image.build(tree, OLD_IMAGE)
    print(built.summary())
    node.import_image(built.archive, built.name)
    return tree / "charts" / "destination-operator"


class PodWatch:
    """The namespace's pods read every 0.2 s: when each was seen with its container running
    (epoch seconds, first and last), and its image."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.api = client.CoreV1Api(cluster.api_client())
        self.namespace = namespace
        self.running: dict[str, list[float]] = {}
        self.image: dict[str, str] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                pods = self.api.list_namespaced_pod(self.namespace).items
            except client.ApiException:
                pods = []
            now = time.time()
            for pod in pods:
                statuses = pod.status.container_statuses or []
                if any(status.state and status.state.running for status in statuses):
                    span = self.running.setdefault(pod.metadata.name, [now, now])
                    span[1] = now
                    self.image[pod.metadata.name] = pod.spec.containers[0].image
            self.stopped.wait(0.2)

    def alive(self, image_name: str | None = None) -> set[str]:
        """Pods seen running within the last second (of `image_name` only, if given)."""
        now = time.time()
        return {
            pod
            for pod, (_, last) in self.running.items()
            if now - last < 1 and image_name in {None, self.image[pod]}
        }

    def together(self, first: set[str], then: set[str]) -> float:
        """The longest time a pod of `first` and one of `then` were both seen running."""
        spans = [
            min(self.running[a][1], self.running[b][1])
            - max(self.running[a][0], self.running[b][0])
            for a in first & self.running.keys()
            for b in then & self.running.keys()
        ]
        return max([0.0, *spans])


def strategy(cluster: Cluster, namespace: str) -> str:
    found: str = operator_deployment(cluster, namespace)["spec"]["strategy"]["type"]
    return found


def wait_pods(pods: PodWatch, what: str, check: Callable[[], bool], timeout: float = 180) -> float:
    """Wait until `check()` (of the pods seen running) holds; return when (epoch seconds)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s: {pods.running}"
        time.sleep(0.1)
    return time.time()


def disjoint(writes: list[Write]) -> list[tuple[str, str]]:
    """Pairs of pods whose writes (first to last) overlap in time."""
    spans: dict[str, list[float]] = {}
    for write in writes:
        span = spans.setdefault(write.pod, [write.at, write.at])
        span[0], span[1] = min(span[0], write.at), max(span[1], write.at)
    return [
        (a, b)
        for a in spans
        for b in spans
        if a < b and max(spans[a][0], spans[b][0]) <= min(spans[a][1], spans[b][1])
    ]


def test_upgrade_from_main_before_election_rolls_and_rolls_back_doing_nothing_twice(
    cluster: Cluster,
    destination_crd: str,
    node: Node,
    operator_image: str,
    old_chart: Path,
    storage: Storage,
) -> None:
    suffix = secrets.token_hex(3)
    release, namespace, team = f"up-{suffix}", f"up-operator-{suffix}", f"up-team-{suffix}"

    def made(name: str) -> None:
        apply(cluster, team, destination(name, storage))
        names.append(name)

    def verified(name: str) -> float:
        wait_for(cluster, team, name, "Ready", "True", timeout=120)
        return time.time()

    names: list[str] = []
    helm_install(cluster, release, namespace, OLD_IMAGE, {"allowPrivateEndpoints": True}, old_chart)
    try:
        user = user_of(operator_deployment(cluster, namespace))
        cluster.kubectl("create", "namespace", team)
        apply(cluster, team, s3_secret(storage.server))
        for name in FIRST:
            made(name)
        for name in FIRST:
            verified(name)
        first = {name: get(cluster, team, name) for name in FIRST}
        assert strategy(cluster, namespace) == "Recreate"
        with running(PodWatch(cluster, namespace)) as pods, watching(cluster, namespace) as lease:
            offset = time.time() - time.monotonic()  # the Lease's times are monotonic

            def holders(since: float) -> list[tuple[float, str]]:
                """The Lease's holders from `since` on, in seconds from it."""
                return [
                    (round(at + offset - since, 1), pod_of(holder) or "(released)")
                    for at, holder in lease.changes
                    if at + offset >= since
                ]

            (old_pod,) = ready_pods(cluster, namespace, 1)

            def recreated(step: str, helm: list[str], before: list[str], count: int) -> list[str]:
                """Run `helm`, which must roll with Recreate from the pods `before` to
                `count` new ones; a Destination is made as it begins and one once they are
                gone. Returns the new pods."""
                began = time.time()
                cluster.helm(*helm, "-n", namespace, timeout=300)
                made(f"during-{step}")
                wait_pods(pods, f"{before} gone", lambda: not pods.alive() & set(before))
                gone = max(pods.running[pod][1] for pod in before)
                made(f"after-{step}")
                done = verified(f"after-{step}")
                after = ready_pods(cluster, namespace, count)
                wait_pods(pods, f"{after} seen", lambda: set(after) <= pods.running.keys())
                started = min(pods.running[pod][0] for pod in after)
                assert strategy(cluster, namespace) == "Recreate"
                assert pods.together(set(before), set(after)) == 0
                print(
                    f"{step} (Recreate): the old pods were last seen running"
                    f" {gone - began:.1f} s after helm began; a new pod ran"
                    f" {started - gone:.1f} s later and a Destination made then was verified"
                    f" {done - gone:.1f} s after it; the Lease's holders: {holders(began)}"
                )
                return after

            # 1. to today's chart, two replicas: Recreate, as the Lease does not exist yet
            # crds.install=false: the session's CRD, shared with the other tests
            today = [
                "upgrade",
                release,
                str(chart.CHART),
                "--set-json",
                f"image={json.dumps(image_values(operator_image))}",
                "--set",
                "allowPrivateEndpoints=true,crds.install=false",
            ]
            upgraded = recreated("upgrade", [*today, "--set", "replicas=2"], [old_pod], 2)
            assert {pods.image[pod] for pod in upgraded} == {operator_image}

            # 2. a value changed: RollingUpdate, old and new pods of today's chart together
            began = time.time()
            rolling = [*today, "--set", "replicas=2,logLevel=DEBUG", "-n", namespace]
            handovers = follow_rollout(
                cluster,
                namespace,
                team,
                storage,
                lease,
                upgraded,
                names,
                "rolling",
                lambda: cluster.helm(*rolling, timeout=300),
            )
            rolled = ready_pods(cluster, namespace, 2)
            assert strategy(cluster, namespace) == "RollingUpdate"
            together = pods.together(set(upgraded), set(rolled))
            assert together > 0, "no old and new pod were alive together"
            assert handovers and all(done - at <= 5 for at, done in handovers), handovers
            for number, (at, done) in enumerate(handovers):
                print(
                    f"2. rolling upgrade: handover {number} {at + offset - began:.1f} s after"
                    f" helm upgrade began verified a new Destination {done - at:.1f} s after"
                    f" the release (old and new pods alive together up to {together:.1f} s)"
                )
            print(f"2. the Lease's holders: {holders(began)}")

            # 3. back to the old revision: its Recreate stops today's pods first
            (back,) = recreated("rollback", ["rollback", release, "1"], rolled, 1)
            assert pods.image[back] == OLD_IMAGE
            leases = cluster.kubectl("get", "leases", "-n", namespace, "-o", "name").stdout
            assert leases.split() == [], "the rollback left the chart's Lease"

            # 4. today's chart again: Recreate again, as the rollback removed the Lease
            again = recreated("upgrade-again", [*today, "--set", "replicas=2"], [back], 2)
            assert {pods.image[pod] for pod in again} == {operator_image}

        # nothing twice, nothing lost, no flap
        time.sleep(3)  # the audit log catches up
        writes = operator_writes(cluster, user, team)
        writers = {name: Counter(w.pod for w in writes if w.destination == name) for name in names}
        print(f"writes by Destination and pod: {writers}")
        per_image: dict[str, set[int]] = {}
        for by in writers.values():
            if len(by) == 1:
                ((pod, count),) = by.items()
                per_image.setdefault(pods.image[pod], set()).add(count)
        assert all(len(counts) == 1 for counts in per_image.values()), per_image
        most = max(count for counts in per_image.values() for count in counts)
        handed = set()
        for name, by in writers.items():
            # one made as a Recreate began may be begun by the stopping pod (its first-sight
            # write) and finished by a new one, which then repeats no write
            if name.startswith("during-") and len(by) == 2 and sum(by.values()) <= most:
                handed.add(name)
            assert len(by) == 1 or name in handed, (name, by)
        assert disjoint(writes) == []
        probed = {name: probes(storage, f"{name}/") for name in names}
        # ... and probed again if the stopping pod's probe was in flight at its SIGTERM
        reprobed = {name for name in handed if probed[name] == 2}
        assert {name for name in names if probed[name] != 1} <= reprobed, probed
        for name, body in first.items():
            now = get(cluster, team, name)
            for kind in ("Ready", "Verified"):
                assert condition(now, kind) == condition(body, kind), (name, kind)
        for name in names:
            assert condition(get(cluster, team, name), "Ready")["status"] == "True", name
    finally:
        uninstall(cluster, release, namespace, team)
