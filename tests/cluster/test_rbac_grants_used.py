"""Every permission the chart grants is one the operator used, over the whole cluster run.

The operator of the cluster tests runs under manifests/rbac, which hack/chart.py
renders from the chart; the API server's audit log (hack/controlplane.py) holds
every request it made in this session. A rule nothing used fails here, and so
does a request RBAC refused that it never allowed (a missing rule; refusals of
allowed requests happen only while a restarted API server refills its RBAC
cache, which the chaos tests cause). The Lease's `get` and `update` are used
by the replicas of test_leader_election.py. Two grants serve code paths that
ordinary runs rarely reach; the first two tests drive them under the
operator's identity so that the audit log has them too:

- `patch` on destinations: the engine removes the finalizer of the first
  releases on sight (a Destination made by an old release still has it);
- `get` on destinations: after a status patch whose uid test fails, the
  operator asks whether the object was replaced (deleted and made again
  under the same name mid-write), a race no test can time.

The check itself is marked `after_cluster_tests`: the rest of tests/cluster
runs first in the same session (tests/cluster/operator_fixtures.py orders it)
and gives the log its variety; with no request of the operator in the log, or
no reads (an audit policy that drops them), the check fails and says why.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml
from dst import apply, get, s3_destination, s3_secret, wait_for

from chart import helm_template
from controlplane import audit_events
from destination_operator.engine.engine import LEGACY_FINALIZER
from harness import Cluster, patch_status_as
from s3server import S3Server

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "manifests" / "rbac"  # what the `operator` fixture applies and runs under


class OperatorProcess(Protocol):
    """What these tests need of the `operator` fixture (tests/cluster/operator_fixtures.py)."""

    kubeconfig: Path


def _operator_user() -> str:
    account = yaml.safe_load((RBAC / "serviceaccount.yaml").read_text())["metadata"]
    return f"system:serviceaccount:{account['namespace']}:{account['name']}"


OPERATOR_USER = _operator_user()
READS = {"get", "list", "watch"}
Grant = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)


def rules_of(documents: str, kind: str = "ClusterRole") -> list[dict[str, Any]]:
    """The rules of the one object of `kind` in a YAML stream."""
    found = [d for d in yaml.safe_load_all(documents) if d and d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    rules: list[dict[str, Any]] = found[0]["rules"]
    return rules


def grants(rules: list[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def operator_requests(audit_log: Path, user: str = OPERATOR_USER) -> list[dict[str, Any]]:
    """Every audited request the operator's ServiceAccount (or `user`) made, one entry per
    request (a watch has a ResponseStarted entry, and a ResponseComplete one only once it
    ends)."""
    entries: dict[str, dict[str, Any]] = {}
    for entry in audit_events(audit_log):
        if entry.get("user", {}).get("username") == user:
            entries.setdefault(entry["auditID"], entry)
    return list(entries.values())


def grant_of(entry: dict[str, Any]) -> Grant | None:
    """What a request needed, or None for non-resource URLs (discovery)."""
    ref = entry.get("objectRef") or {}
    if not ref.get("resource"):
        return None
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return (ref.get("apiGroup", ""), resource, entry["verb"])


def _decision(entry: dict[str, Any]) -> str | None:
    """The authorizer's verdict on a request: "allow", "forbid", or None (never reached)."""
    decision = (entry.get("annotations") or {}).get("authorization.k8s.io/decision")
    return str(decision) if decision is not None else None


def test_the_first_releases_finalizer_is_removed_and_no_other(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    body = s3_destination("legacy", s3, secret="s3")
    body["metadata"]["finalizers"] = [LEGACY_FINALIZER, "tests.destinations.io/keep"]
    apply(cluster, namespace, s3_secret(s3), body)
    try:
        wait_for(cluster, namespace, "legacy", "Verified", "True")
        deadline = time.monotonic() + 30
        while LEGACY_FINALIZER in get(cluster, namespace, "legacy")["metadata"]["finalizers"]:
            assert time.monotonic() < deadline, "the first releases' finalizer was kept"
            time.sleep(0.2)
        assert get(cluster, namespace, "legacy")["metadata"]["finalizers"] == [
            "tests.destinations.io/keep"
        ]
    finally:
        cluster.kubectl(
            "patch",
            "dst",
            "legacy",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )


def test_a_status_patch_for_a_replaced_destination_is_dropped_under_the_operators_rbac(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    """The operator's own status writer, run as the operator, on an object whose uid is not
    the one it probed: the patch is refused (422), the writer GETs the object, sees another
    uid and drops the result. Without `get` it would report a failed write instead."""
    apply(cluster, namespace, s3_destination("replaced", s3, secret="absent", enabled=False))
    wait_for(cluster, namespace, "replaced", "Verified", "Unknown", reason="Disabled")
    before = get(cluster, namespace, "replaced")
    done = patch_status_as(
        str(operator.kubeconfig),
        namespace,
        "replaced",
        "uid-of-the-deleted-one",
        {"target": "from a probe of the deleted object"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "null", done.stdout
    after = get(cluster, namespace, "replaced")
    assert after["status"] == before["status"]


@pytest.mark.after_cluster_tests
def test_every_permission_the_chart_grants_was_used_by_the_operator(cluster: Cluster) -> None:
    rendered = helm_template(cluster.bin_dir / "helm")
    chart_rules = rules_of(rendered)
    ran_under = rules_of((RBAC / "role.yaml").read_text())
    assert ran_under == chart_rules, (
        "manifests/rbac is not the chart's RBAC: run 'python hack/chart.py render'"
    )
    # leader election: get and update on the chart's Lease alone (RBAC cannot limit create
    # by name, so the chart makes the Lease); test_leader_election.py uses both
    election_rules = rules_of(rendered, "Role")
    assert rules_of((RBAC / "leader-election-role.yaml").read_text(), "Role") == election_rules
    lease = yaml.safe_load((RBAC / "lease.yaml").read_text())["metadata"]["name"]
    assert election_rules == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "update"],
            "resourceNames": [lease],
        }
    ]
    granted = grants(chart_rules) | grants(election_rules)
    # never a wildcard, never a write on Secrets, never a name restriction in this mode
    for rule in chart_rules:
        assert "*" not in json.dumps(rule), f"wildcard in {rule}"
        assert "resourceNames" not in rule, rule
    secret_verbs = {verb for group, resource, verb in granted if resource == "secrets"}
    assert secret_verbs <= READS, f"Secrets may be written: {sorted(secret_verbs)}"

    requests = operator_requests(cluster.plane.audit_log)
    assert requests, (
        f"the audit log holds no request of {OPERATOR_USER}: run the whole of tests/cluster "
        "in this session (this test reads what the others made the operator do)"
    )
    assert any(entry["verb"] in READS for entry in requests), (
        f"the audit log holds writes of {OPERATOR_USER} but no reads: the audit policy of "
        "hack/controlplane.py must record ServiceAccounts' get, list and watch, or no read "
        "permission can be shown to be used"
    )
    allowed = [e for e in requests if _decision(e) == "allow"]
    used = Counter(grant for grant in map(grant_of, allowed) if grant is not None)
    # A refusal of something allowed at other times is the API server's RBAC cache
    # refilling after a restart (the chaos tests restart it), or the one test that takes
    # `get` on Secrets away for a while (test_operator_secret_forbidden.py); a refusal of
    # something never allowed is a missing permission.
    refused = {grant_of(e): e.get("requestURI") for e in requests if _decision(e) == "forbid"}
    missing = {grant: uri for grant, uri in refused.items() if grant not in used}
    assert not missing, f"RBAC refused the operator, and never allowed it: {missing}"
    unused = sorted(granted - set(used))
    assert not unused, (
        f"granted but never used in this session: {unused}; used: {sorted(used.items())}"
    )
    assert set(used) <= granted  # RBAC allowed each, so this holds unless rules overlap
