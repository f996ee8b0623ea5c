"""Two replicas of the chart on the real node: leader election hands over, and nothing is
done twice.

The chart is installed with `replicas: 2`; both pods are Ready, one holds the Lease.
`/healthz` (read through the API server's pod proxy) says `standby` on the other.
Then:

- the leader's container is killed with SIGKILL (containerd, as when a node
  dies): another process takes the Lease and verifies a Destination made at
  the kill within the lease duration + 5 s. That is the standby, or the killed
  pod's restarted container: by client-go's rules both are candidates that
  wait out the lease duration from when each saw the last renewal;
- a `helm upgrade` that changes a value rolls both pods: each leader exits on
  SIGTERM after releasing the Lease, and a Destination made at each release is
  verified within 5 s of it.

Through both, judged from the S3 server's requests and the API server's audit
log: every Destination was probed once and written as often as one made after the
operator had seen its Secret (no double probe, no double write, no lost write; the
first, made with its Secret, may have one write more, by the leader alone), and its
Ready condition kept its first transition time (no flap). The times are printed (pytest -s).
"""

from __future__ import annotations

import json
import secrets
import time

import pytest
from node_election import (
    LEASE_DURATION,
    OK,
    STANDBY,
    follow_rollout,
    health,
    operator_writes,
    pod_of,
    ready_pods,
    wait_until,
    watching,
    writes_per_destination,
)
from node_fixtures import (
    Storage,
    destination,
    helm_install,
    operator_deployment,
    probes,
    uninstall,
    user_of,
)

import chart
from cluster.dst import apply, condition, get, s3_secret, wait_for
from harness import Cluster
from node import Node

pytestmark = pytest.mark.install


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
    values = {"allowPrivateEndpoints": True, "replicas": 2, "crds": {"install": False}}
    helm_install(cluster, release, namespace, operator_image, values)  # the session's CRD
    names: list[str] = []
    try:
        user = user_of(operator_deployment(cluster, namespace))
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
            # the yardstick: "first" may have been seen before its Secret (one write more)
            apply(cluster, team, destination("baseline", storage))
            names.append("baseline")
            wait_for(cluster, team, "baseline", "Ready", "True", timeout=60)
            time.sleep(2)  # the audit log catches up
            per_destination = writes_per_destination(cluster, user, team)["baseline"]
            assert per_destination >= 2 and probes(storage, "baseline/") == 1

            # SIGKILL the leader: no release, the standby waits out the lease duration
            killed = time.monotonic()
            node.ctr(
                "tasks", "kill", "--signal", "SIGKILL", container_id(cluster, namespace, leader)
            )
            apply(cluster, team, destination("after-kill", storage))
            names.append("after-kill")
            held, successor = lease.wait("a new holder", lambda h: bool(h) and h != holder)
            wait_for(cluster, team, "after-kill", "Ready", "True", timeout=60)
            verified = time.monotonic()
            who = "the standby" if pod_of(successor) == standby else "the restarted leader"
            if pod_of(successor) != standby:  # what the standby did meanwhile, to read
                log = cluster.kubectl("logs", "-n", namespace, standby).stdout
                print("\n".join(line for line in log.splitlines() if "Lease" in line))
            print(
                f"SIGKILL of the leader: {who} held the Lease after {held - killed:.1f} s"
                f" and verified a new Destination after {verified - killed:.1f} s"
                f" (lease duration {LEASE_DURATION:.0f} s)"
            )
            assert verified - killed <= LEASE_DURATION + 5

            # helm upgrade: each leader releases on SIGTERM; a Destination made at each
            # release is verified within 5 s of it
            old = ready_pods(cluster, namespace, 2)  # the killed container restarted
            upgrade = (
                *("upgrade", release, str(chart.CHART), "-n", namespace, "--reuse-values"),
                *("--set", "logLevel=DEBUG"),
            )
            handovers = follow_rollout(
                cluster,
                namespace,
                team,
                storage,
                lease,
                old,
                names,
                "handover",
                lambda: cluster.helm(*upgrade, timeout=300),
            )
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
        later = names[1:]
        assert {name: writes[name] for name in later} == dict.fromkeys(later, per_destination)
        assert per_destination <= writes["first"] <= per_destination + 1, writes
        writers = {w.pod for w in operator_writes(cluster, user, team) if w.destination == "first"}
        assert writers == {leader}, writers  # the standby never wrote
        assert {name: probes(storage, f"{name}/") for name in names} == dict.fromkeys(names, 1)
        assert condition(get(cluster, team, "first"), "Ready") == condition(first, "Ready")
        for name in names:
            assert condition(get(cluster, team, name), "Ready")["status"] == "True", name
    finally:
        uninstall(cluster, release, namespace, team)
