"""Leader election on the Lease of manifests/rbac, two real operators, the real API server.

Two `destination-operator run` processes with leader election on (short timings:
a 4 s lease, a 3 s renew deadline, a 1 s retry period) under exactly the RBAC of
manifests/rbac, which grants `get` and `update` on that one Lease and no
`create` (test_rbac_grants_used.py then finds both used). One leads; the other
is healthy, says `standby` on /healthz and exports `destination_operator_leader`
0. Then:

- SIGKILL of the leader: the standby takes the Lease once it has run out and
  verifies a Destination made at the kill, within the lease duration + 5 s;
- SIGTERM of the leader: it releases the Lease and exits 0; the standby takes
  over within the retry period and verifies a Destination made then;
- the Lease taken from the leader (another holder written into it): the leader
  stops all work and exits with status 3.

Through all of it every Destination is probed once and written as often as the
first (the API server's audit log), so a standby never probed nor wrote.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from dst import apply, s3_destination, s3_secret, wait_for
from operator_fixtures import OPERATOR_NAMESPACE, OPERATOR_SA, OperatorProcess

from controlplane import audit_events, free_port
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
LEASE = yaml.safe_load((ROOT / "manifests" / "rbac" / "lease.yaml").read_text())["metadata"]
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4.0, 3.0, 1.0
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"
WRITES = {"create", "update", "patch", "delete"}


class Replica(OperatorProcess):
    """One replica: its own identity (HOSTNAME, as in a pod), health and metrics ports."""

    def __init__(self, name: str, kubeconfig: Path, folder: Path) -> None:
        self.name, self.health_port, self.metrics_port = name, free_port(), free_port()
        super().__init__(
            kubeconfig,
            folder / f"{name}.log",
            {
                "HOSTNAME": name,
                "DESTINATION_OPERATOR_LEADER_ELECT": "true",
                "DESTINATION_OPERATOR_LEADER_ELECTION_NAMESPACE": LEASE["namespace"],
                "DESTINATION_OPERATOR_LEADER_ELECTION_ID": LEASE["name"],
                "DESTINATION_OPERATOR_LEADER_ELECTION_LEASE_DURATION": str(LEASE_DURATION),
                "DESTINATION_OPERATOR_LEADER_ELECTION_RENEW_DEADLINE": str(RENEW_DEADLINE),
                "DESTINATION_OPERATOR_LEADER_ELECTION_RETRY_PERIOD": str(RETRY_PERIOD),
                "DESTINATION_OPERATOR_HEALTH_PORT": str(self.health_port),
                "DESTINATION_OPERATOR_METRICS_PORT": str(self.metrics_port),
            },
        )

    def health(self) -> tuple[int, object]:
        """/healthz: its HTTP status and its JSON (0, None while nothing listens)."""
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as got:
                return got.status, json.loads(got.read())
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except OSError:
            return 0, None

    def exit_status(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still runs: {self.text()[-4000:]}") from None

    def leader_gauge(self) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as got:
            text = got.read().decode()
        found = re.search(r'^destination_operator_leader\{lease="[^"]+"\} (\S+)$', text, re.M)
        assert found, "destination_operator_leader is not served"
        return float(found.group(1))


def holder(cluster: Cluster) -> str:
    out = cluster.kubectl("get", "lease", LEASE["name"], "-n", LEASE["namespace"], "-o", "json")
    return str((json.loads(out.stdout).get("spec") or {}).get("holderIdentity") or "")


def set_lease(cluster: Cluster, holder: str, seconds: int, *, check: bool = True) -> None:
    """Write the Lease's holder and duration, as another candidate would."""
    spec = {"holderIdentity": holder, "leaseDurationSeconds": seconds}
    cluster.kubectl(
        "patch",
        "lease",
        LEASE["name"],
        "-n",
        LEASE["namespace"],
        "--type=merge",
        "-p",
        json.dumps({"spec": spec}),
        check=check,
    )


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30) -> float:
    """Poll `check` until true; the monotonic time it was seen true."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s"
        time.sleep(0.05)
    return time.monotonic()


def wait_leader(cluster: Cluster, replicas: list[Replica], timeout: float = 30) -> Replica:
    found: list[Replica] = []

    def check() -> bool:
        name = holder(cluster).rsplit("_", 1)[0]
        found[:] = [r for r in replicas if r.name == name and r.alive()]
        return bool(found)

    wait_until("a replica holding the Lease", check, timeout)
    return found[0]


def writes_per_destination(cluster: Cluster, namespace: str) -> Counter[str]:
    """The operator's writes in `namespace` per Destination (status patches, and Events
    named `<destination>.<random>`), from the audit log, once per request."""
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    for entry in audit_events(cluster.plane.audit_log):
        ref = entry.get("objectRef") or {}
        if (
            entry.get("user", {}).get("username") == OPERATOR_USER
            and entry.get("verb") in WRITES
            and ref.get("namespace") == namespace
            and entry["auditID"] not in seen
        ):
            seen.add(entry["auditID"])
            if ref.get("resource") == "destinations":
                counts[ref["name"]] += 1
            elif ref.get("resource") == "events":
                counts[ref["name"].rsplit(".", 1)[0]] += 1
    return counts


def puts(s3: S3Server, prefix: str) -> int:
    return sum(1 for line in s3.requests() if f"/{prefix}/" in line and line.split()[1] == "PUT")


@pytest.fixture
def replicas(
    cluster: Cluster, operator: OperatorProcess, tmp_path: Path
) -> Iterator[list[Replica]]:
    """Two replicas in place of the session's operator (one operator at a time)."""
    cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests" / "rbac"))
    kubeconfig = cluster.token_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, out_dir=tmp_path)
    operator.stop()
    pair = [Replica(name, kubeconfig, tmp_path) for name in ("replica-a", "replica-b")]
    try:
        for replica in pair:
            replica.start()
        yield pair
    finally:
        for replica in pair:
            replica.stop()
        # released, for whoever runs under manifests/rbac next (the kustomize base on the node)
        set_lease(cluster, "", 1, check=False)
        operator.start()


def test_a_standby_takes_over_on_sigkill_and_on_sigterm_and_the_loser_exits_3(
    cluster: Cluster, namespace: str, s3: S3Server, replicas: list[Replica]
) -> None:
    leader = wait_leader(cluster, replicas)
    (standby,) = [r for r in replicas if r is not leader]
    apply(cluster, namespace, s3_secret(s3))  # the Secret the Destinations below name
    wait_until("the leader working", lambda: leader.health() == (200, {"engine": "ok"}))
    wait_until("the standby up", lambda: standby.health() == (200, {"engine": "standby"}))
    assert (leader.leader_gauge(), standby.leader_gauge()) == (1, 0)

    suffix = secrets.token_hex(3)
    names = [f"le-{suffix}-{n}" for n in ("first", "after-kill", "after-term")]
    apply(cluster, namespace, s3_destination(names[0], s3, secret="s3"))
    wait_for(cluster, namespace, names[0], "Ready", "True")
    time.sleep(2)  # the audit log catches up
    per_destination = writes_per_destination(cluster, namespace)[names[0]]
    assert per_destination >= 2

    # SIGKILL: no release; the standby waits out the lease duration
    killed = time.monotonic()
    leader.kill()
    apply(cluster, namespace, s3_destination(names[1], s3, secret="s3"))
    assert wait_leader(cluster, replicas, timeout=LEASE_DURATION + 5) is standby
    wait_for(cluster, namespace, names[1], "Ready", "True", timeout=30)
    took = time.monotonic() - killed
    print(f"SIGKILL: the standby verified a new Destination after {took:.1f} s")
    assert took <= LEASE_DURATION + 5
    assert standby.leader_gauge() == 1
    # kopf answers /healthz from a result up to 10 s old
    wait_until("the new leader's /healthz", lambda: standby.health() == (200, {"engine": "ok"}), 15)

    # SIGTERM: the leader releases the Lease and exits 0; the restarted one takes over
    leader.start()
    leader, standby = standby, leader
    wait_until(
        "the restarted replica standing by",
        lambda: standby.health() == (200, {"engine": "standby"}),
    )
    terminated = time.monotonic()
    assert leader.proc is not None
    leader.proc.terminate()
    apply(cluster, namespace, s3_destination(names[2], s3, secret="s3"))
    assert wait_leader(cluster, replicas, timeout=RETRY_PERIOD + 5) is standby
    wait_for(cluster, namespace, names[2], "Ready", "True", timeout=30)
    took = time.monotonic() - terminated
    print(f"SIGTERM: the standby verified a new Destination after {took:.1f} s")
    assert took <= RETRY_PERIOD + 5
    assert leader.exit_status(15) == 0
    assert "released the Lease" in leader.text()

    # the Lease taken away: the leader stops and exits 3
    lost = standby
    assert lost.proc is not None
    set_lease(cluster, "someone-else", 3600)
    assert lost.exit_status(RENEW_DEADLINE + 10) == 3, lost.text()[-3000:]
    assert "lost the Lease" in lost.text()

    time.sleep(2)
    writes = writes_per_destination(cluster, namespace)
    assert {n: writes[n] for n in names} == dict.fromkeys(names, per_destination)
    assert {n: puts(s3, n) for n in names} == dict.fromkeys(names, 1)
