"""Sharding: operators with `destination_selector` split the Destinations between them.

Two operators run side by side, `destinations.io/shard=a` and `=b`, in place of the
session's one, each under a ServiceAccount of its own (bound to the operator's
ClusterRole) so that the API server's audit log tells their requests apart. Each
verifies only the Destinations its selector matches and never hears of the others:
the API server filters the watch (kopf's label selectors; every list and watch of
Destinations in the audit log carries the shard's selector, no Secret one does), so
a Destination of the other shard, or of none, is not even in its log. A Destination
relabelled from a to b is dropped by a (its cache, its metrics: the watch says
DELETED) and verified by b, and no Destination is ever written by two shards. One no
selector matches gets no status from anyone, until a catch-all operator
(`destinations.io/shard notin (a,b)`) starts.

The selector check at start-up is compared with the API server's own parse, case by
case (tests/cluster/selector_cases.py): a selector the operator lets through is one
the API server takes.
"""

from __future__ import annotations

import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dst import GROUP, PLURAL, VERSION, apply, condition, get, s3_destination, s3_secret, wait_for
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from operator_fixtures import OPERATOR_NAMESPACE, ROOT, OperatorProcess
from prometheus_client.parser import text_string_to_metric_families
from selector_cases import CASES

import canaries
from controlplane import audit_events, free_port
from destination_operator.selectors import label_selector
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster

SHARD = "destinations.io/shard"
SELECTORS = {"a": f"{SHARD}=a", "b": f"{SHARD}=b", "rest": f"{SHARD} notin (a,b)"}
WRITES = {"create", "update", "patch", "delete"}


def account(name: str) -> str:
    return f"destination-operator-shard-{name}"


def user(name: str) -> str:
    return f"system:serviceaccount:{OPERATOR_NAMESPACE}:{account(name)}"


class Shard:
    """One operator process with a selector, its own ServiceAccount and metrics port."""

    def __init__(self, cluster: Cluster, folder: Path, name: str) -> None:
        kubeconfig = cluster.token_kubeconfig(OPERATOR_NAMESPACE, account(name), out_dir=folder)
        self.port = free_port()
        self.process = OperatorProcess(
            kubeconfig,
            folder / f"operator-{name}.log",
            env={
                "DESTINATION_OPERATOR_DESTINATION_SELECTOR": SELECTORS[name],
                "DESTINATION_OPERATOR_METRICS_PORT": str(self.port),
            },
        )

    def verifications(self, namespace: str, name: str) -> int:
        """How many verifications of `namespace/name` this shard has logged."""
        return self.process.text().count(f"verification of {namespace}/{name}: ")

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as got:
            text = got.read().decode()
        series: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                series.setdefault(sample.name, []).append((sample.labels, sample.value))
        return series

    def tracked(self) -> float:
        return self.metrics()["destination_operator_destinations"][0][1]

    def named(self, namespace: str) -> set[str]:
        """The Destinations of `namespace` that have series of their own here."""
        return {
            labels["name"]
            for labels, _ in self.metrics().get("destination_operator_destination_condition", [])
            if labels.get("namespace") == namespace
        }


def eventually(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.25)


def audited(cluster: Cluster) -> list[dict[str, Any]]:
    """The shards' requests in the audit log, one entry per request, in the log's order."""
    users = {user(name): name for name in SELECTORS}
    entries: dict[str, dict[str, Any]] = {}
    for entry in audit_events(cluster.plane.audit_log):
        shard = users.get(entry.get("user", {}).get("username", ""))
        if shard is not None:
            entries.setdefault(entry["auditID"], {**entry, "shard": shard})
    return list(entries.values())


def writers(cluster: Cluster, namespace: str) -> dict[str, list[str]]:
    """For each Destination of `namespace`: the shard of each write to it, in order."""
    found: dict[str, list[str]] = {}
    for entry in audited(cluster):
        ref = entry.get("objectRef") or {}
        if (
            entry["verb"] in WRITES
            and ref.get("resource") == PLURAL
            and ref.get("namespace") == namespace
        ):
            found.setdefault(ref["name"], []).append(entry["shard"])
    return found


def selectors_sent(cluster: Cluster, resource: str) -> dict[str, set[str | None]]:
    """For each shard: the label selectors of its lists and watches of `resource`."""
    found: dict[str, set[str | None]] = {}
    for entry in audited(cluster):
        ref = entry.get("objectRef") or {}
        if entry["verb"] in ("list", "watch") and ref.get("resource") == resource:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(entry["requestURI"]).query)
            found.setdefault(entry["shard"], set()).add(query.get("labelSelector", [None])[0])
    return found


@pytest.fixture
def shards(
    cluster: Cluster, operator: OperatorProcess, tmp_path: Path
) -> Iterator[dict[str, Shard]]:
    """Shards a and b in place of the session's operator (and `rest`, started by the test),
    each watching every namespace as the session's operator does (manifests/rbac grants
    no more), under a ServiceAccount of its own."""
    binding = yaml.safe_load((ROOT / "manifests" / "rbac" / "binding.yaml").read_text())
    for name in SELECTORS:
        cluster.kubectl("create", "serviceaccount", "-n", OPERATOR_NAMESPACE, account(name))
        cluster.kubectl(
            "create",
            "clusterrolebinding",
            account(name),
            f"--clusterrole={binding['roleRef']['name']}",
            f"--serviceaccount={OPERATOR_NAMESPACE}:{account(name)}",
        )
    made = {name: Shard(cluster, tmp_path, name) for name in SELECTORS}
    operator.stop()
    try:
        for name in ("a", "b"):
            made[name].process.start()
        yield made
    finally:
        for shard in made.values():
            shard.process.stop()
        operator.start()
        for name in SELECTORS:
            cluster.kubectl("delete", "clusterrolebinding", account(name), "--ignore-not-found")
            cluster.kubectl(
                "delete",
                "serviceaccount",
                "-n",
                OPERATOR_NAMESPACE,
                account(name),
                "--ignore-not-found",
            )


def labelled(name: str, s3: S3Server, shard: str | None) -> dict[str, object]:
    # no interval: the test operators' default, 2 s, so that whoever has it re-verifies it
    body = s3_destination(name, s3, secret="s3", verification={"timeout": "5s"})
    if shard is not None:
        body["metadata"]["labels"] = {SHARD: shard}
    return body


def test_two_shards_verify_only_their_own_and_a_relabelled_destination_moves(
    cluster: Cluster, namespace: str, s3: S3Server, shards: dict[str, Shard]
) -> None:
    a, b = shards["a"], shards["b"]
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        labelled("da", s3, "a"),
        labelled("db", s3, "b"),
        labelled("dc", s3, "c"),
        labelled("dn", s3, None),
    )
    wait_for(cluster, namespace, "da", "Verified", "True")
    wait_for(cluster, namespace, "db", "Verified", "True")
    eventually(lambda: a.verifications(namespace, "da") >= 2, "a re-verifies da")
    eventually(lambda: b.verifications(namespace, "db") >= 2, "b re-verifies db")

    # Each has only its own: the other shard's, and those of no shard, never reach it.
    for shard, own in ((a, "da"), (b, "db")):
        log = shard.process.text()
        for other in {"da", "db", "dc", "dn"} - {own}:
            assert f"{namespace}/{other}" not in log, (own, other)
        assert shard.tracked() == 1
        assert shard.named(namespace) == {own}
    for nobodys in ("dc", "dn"):  # several intervals of 2 s have passed
        assert "status" not in get(cluster, namespace, nobodys), nobodys
    before_move = writers(cluster, namespace)
    assert set(before_move) == {"da", "db"}, before_move
    assert set(before_move["da"]) == {"a"} and set(before_move["db"]) == {"b"}, before_move

    # da moves from a to b.
    cluster.kubectl("label", "-n", namespace, "dst", "da", f"{SHARD}=b", "--overwrite")
    eventually(lambda: a.tracked() == 0 and a.named(namespace) == set(), "a forgets da")
    eventually(lambda: b.named(namespace) == {"da", "db"}, "b takes da")
    before = b.verifications(namespace, "da")
    eventually(lambda: b.verifications(namespace, "da") >= before + 2, "b re-verifies da")
    left = a.verifications(namespace, "da")
    time.sleep(6)  # three of da's intervals
    assert a.verifications(namespace, "da") == left, "a still verifies da"
    assert b.tracked() == 2
    assert condition(get(cluster, namespace, "da"), "Verified")["status"] == "True"

    # A catch-all shard takes what no other selector matches, and nothing else.
    rest = shards["rest"]
    rest.process.start()
    for nobodys in ("dc", "dn"):
        wait_for(cluster, namespace, nobodys, "Verified", "True")
    eventually(lambda: rest.named(namespace) == {"dc", "dn"}, "rest has dc and dn only")
    assert "/da: " not in rest.process.text() and "/db: " not in rest.process.text()

    # The audit log: no Destination written by two shards at once. da's writes are a's,
    # then b's (none of a's after b's first); each other has one writer.
    time.sleep(1)  # the last patches reach the audit log
    written = writers(cluster, namespace)
    moved = written["da"]
    assert moved[: moved.index("b")] == ["a"] * moved.index("b"), moved
    assert set(moved[moved.index("b") :]) == {"b"}, moved
    assert {name: set(who) for name, who in written.items() if name != "da"} == {
        "db": {"b"},
        "dc": {"rest"},
        "dn": {"rest"},
    }, written
    # ...because the API server filters: every list and watch of Destinations carries the
    # shard's selector; Secrets are watched whole, without one.
    assert selectors_sent(cluster, PLURAL) == {name: {SELECTORS[name]} for name in SELECTORS}
    assert selectors_sent(cluster, "secrets") == {name: {None} for name in SELECTORS}

    for shard in shards.values():
        assert shard.process.alive(), shard.process.text()[-3000:]
        log = shard.process.text()
        assert "Traceback" not in log, log[log.index("Traceback") :][:3000]
        assert "Forbidden" not in log, log[log.index("Forbidden") - 500 :][:1000]
        assert canaries.found_in(log) == []


@pytest.mark.parametrize(("selector", "taken"), CASES, ids=repr)
def test_the_selector_check_agrees_with_the_api_server(
    cluster: Cluster, destination_crd: str, namespace: str, selector: str, taken: bool
) -> None:
    api = client.CustomObjectsApi(cluster.api_client())
    try:
        api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, label_selector=selector, limit=1
        )
        server = True
    except ApiException as err:
        assert err.status == 400, err
        server = False
    try:
        label_selector(selector)
        ours = True
    except ValueError:
        ours = False
    assert (server, ours) == (taken, taken), selector


def test_a_bad_selector_stops_the_operator_with_one_line(cluster: Cluster, tmp_path: Path) -> None:
    process = OperatorProcess(
        Path(cluster.kubeconfig),
        tmp_path / "operator.log",
        env={"DESTINATION_OPERATOR_DESTINATION_SELECTOR": "shard in (a"},
    )
    process.start()
    assert process.proc is not None
    assert process.proc.wait(timeout=30) == 2
    assert re.fullmatch(
        r"destination-operator: DESTINATION_OPERATOR_DESTINATION_SELECTOR='shard in \(a': "
        r"the values of 'shard' have no '\)'\n",
        process.text(),
    ), process.text()
