"""The chart's leader election, rendered: the Lease, the rights on it alone, the rollout
strategy and the PodDisruptionBudget (tests/install/test_node_election.py runs two replicas on
the node)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

import chart
from harness import Cluster
from install.rendered import container_env, objects, one, render

pytestmark = pytest.mark.install


def test_the_lease_is_the_charts_and_only_get_and_update_on_it_are_granted(
    cluster: Cluster,
) -> None:
    """RBAC cannot limit `create` by name, so the chart makes the Lease and the operator may
    only read and write that one; with no spec in the template, helm leaves the holder the
    operator writes alone at an upgrade."""
    rendered = objects(render(cluster, {"leaderElectionId": "my-lease"}))
    lease = one(rendered, "Lease")
    assert lease["metadata"]["name"] == "my-lease"
    assert lease["metadata"]["namespace"] == chart.NAMESPACE
    assert "spec" not in lease
    role = one(rendered, "Role")
    assert role["metadata"]["namespace"] == chart.NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "update"],
            "resourceNames": ["my-lease"],
        }
    ]
    binding = one(rendered, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": one(rendered, "ServiceAccount")["metadata"]["name"],
            "namespace": chart.NAMESPACE,
        }
    ]
    env = container_env(one(rendered, "Deployment"))
    assert env["DESTINATION_OPERATOR_LEADER_ELECTION_ID"] == "my-lease"
    assert "DESTINATION_OPERATOR_LEADER_ELECTION_NAMESPACE" not in env  # the pod's own
    alone = objects(render(cluster, {"leaderElect": False}))
    assert not [item for item in alone if item["kind"] in {"Lease", "Role", "RoleBinding"}]
    assert one(alone, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_replicas_above_one_roll_once_the_lease_exists(
    cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    """Two replicas: a PodDisruptionBudget over the operator's pods, and RollingUpdate, one
    new pod at a time and none down, once the chart's Lease is in the cluster (helm looks it
    up; until then Recreate, so a pod from before leader election never works beside a new
    one)."""
    looking = ["--dry-run=server", f"--kubeconfig={cluster.kubeconfig}"]
    args: dict[str, Any] = {"namespace": namespace, "values": {"replicas": 2}, "extra": looking}
    before = objects(render(cluster, **args))
    assert one(before, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    budget = one(before, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    pod_labels = one(before, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(one(before, "Lease")))
    after = objects(render(cluster, **args))
    assert one(after, "Deployment")["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert not [item for item in objects(render(cluster)) if item["kind"] == "PodDisruptionBudget"]
    off = {"replicas": 2, "podDisruptionBudget": {"enabled": False}}
    assert not [i for i in objects(render(cluster, off)) if i["kind"] == "PodDisruptionBudget"]
