"""The operator installed as users install it, onto the real node, doing its job.

The image built from the Dockerfile (hack/image.py) is loaded into the node's
containerd; the chart is installed with `helm install --wait`, so the pod must
pass its readiness probe; a Destination against the S3 server (reached by the
pod through the node's gateway) turns Verified. Then what operations do to a
running operator: deleting its pod, a `helm upgrade` that rolls it (neither
re-probes nor rewrites what is already verified), `helm uninstall` (no
namespace left stuck), and the same with `kubectl apply -k manifests/`.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest
import yaml
from node_fixtures import (
    Storage,
    destination,
    helm_install,
    operator_deployment,
    pod_names,
    probes,
    uninstall,
    user_of,
)

import chart
from cluster.dst import apply, s3_secret, wait_for
from controlplane import audit_events
from harness import Cluster
from node import Node

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
WRITES = {"create", "update", "patch", "delete"}


def operator_writes(cluster: Cluster, user: str, namespace: str) -> int:
    count = 0
    for entry in audit_events(cluster.plane.audit_log):
        ref = entry.get("objectRef") or {}
        if (
            entry.get("user", {}).get("username") == user
            and entry.get("verb") in WRITES
            and ref.get("namespace") == namespace
            and ref.get("resource") in ("destinations", "events")
        ):
            count += 1
    return count


def wait_rolled(cluster: Cluster, namespace: str, deployment: str, old: list[str]) -> None:
    cluster.kubectl(
        "rollout", "status", "-n", namespace, f"deployment/{deployment}", "--timeout=180s"
    )
    deadline = time.monotonic() + 120
    while (pods := pod_names(cluster, namespace)) == old or len(pods) != 1:
        assert time.monotonic() < deadline, f"pods never changed from {old}: {pods}"
        time.sleep(0.5)
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", f"pod/{pods[0]}", "--timeout=120s"
    )


def test_the_chart_on_the_node_verifies_and_survives_what_operations_do(
    cluster: Cluster,
    destination_crd: str,
    node: Node,
    operator_image: str,
    storage: Storage,
) -> None:
    suffix = secrets.token_hex(3)
    release, namespace, team = f"e2e-{suffix}", f"e2e-operator-{suffix}", f"e2e-team-{suffix}"
    # the S3 server is on the node's gateway; the CRD is the session's, shared
    values = {"allowPrivateEndpoints": True, "crds": {"install": False}}
    helm_install(cluster, release, namespace, operator_image, values)
    try:
        deployment = operator_deployment(cluster, namespace)
        name, user = deployment["metadata"]["name"], user_of(deployment)

        cluster.kubectl("create", "namespace", team)
        apply(cluster, team, s3_secret(storage.server), destination("on-node", storage))
        wait_for(cluster, team, "on-node", "Ready", "True", timeout=120)
        writes, puts = operator_writes(cluster, user, team), probes(storage, "on-node/")
        assert writes >= 2 and puts == 1, (writes, puts)

        # the pod deleted: the new one converges and leaves the verified object alone
        old = pod_names(cluster, namespace)
        cluster.kubectl("delete", "pod", "-n", namespace, *old, "--wait=false")
        wait_rolled(cluster, namespace, name, old)
        time.sleep(5)
        assert (operator_writes(cluster, user, team), probes(storage, "on-node/")) == (
            writes,
            puts,
        )

        # an upgrade that changes a value rolls the pod, and re-probes nothing
        old = pod_names(cluster, namespace)
        cluster.helm(
            "upgrade",
            release,
            str(chart.CHART),
            "-n",
            namespace,
            "--reuse-values",
            "--set",
            "logLevel=DEBUG",
            "--wait",
            "--timeout",
            "240s",
            timeout=300,
        )
        wait_rolled(cluster, namespace, name, old)
        time.sleep(5)
        assert (operator_writes(cluster, user, team), probes(storage, "on-node/")) == (
            writes,
            puts,
        )
        # and it still works: a new Destination is verified by the new pod
        apply(cluster, team, destination("after-upgrade", storage))
        wait_for(cluster, team, "after-upgrade", "Ready", "True", timeout=120)
    finally:
        uninstall(cluster, release, namespace, team)


def test_the_kustomize_base_on_the_node_verifies_a_destination(
    cluster: Cluster,
    destination_crd: str,
    node: Node,
    operator_image: str,
    storage: Storage,
    tmp_path: Path,
) -> None:
    # An overlay, as a user would write one: the image built here, private endpoints allowed.
    repository, tag = operator_image.rsplit(":", 1)
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "manifests", tmp_path)],  # kustomize: relative
        "images": [{"name": repository, "newTag": tag}],
        "patches": [
            {
                # a strategic merge patch: env entries merge by name
                "patch": yaml.safe_dump(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": "destination-operator", "namespace": chart.NAMESPACE},
                        "spec": {
                            "template": {
                                "spec": {
                                    "containers": [
                                        {
                                            "name": "operator",
                                            "imagePullPolicy": "Never",
                                            "env": [
                                                {
                                                    "name": "DESTINATION_OPERATOR_"
                                                    "ALLOW_PRIVATE_ENDPOINTS",
                                                    "value": "true",
                                                }
                                            ],
                                        }
                                    ]
                                }
                            }
                        },
                    }
                ),
            }
        ],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(tmp_path))
    namespace = chart.NAMESPACE
    team = f"kustomize-team-{secrets.token_hex(3)}"
    try:
        cluster.kubectl("rollout", "status", "-n", namespace, "deployment", "--timeout=240s")
        cluster.kubectl("create", "namespace", team)
        apply(cluster, team, s3_secret(storage.server), destination("by-kustomize", storage))
        wait_for(cluster, team, "by-kustomize", "Ready", "True", timeout=120)
    finally:
        # the operator goes, the CRD and the Destinations stay (as after an uninstall)
        cluster.kubectl("delete", "deployment", "-n", namespace, "--all", "--wait=true")
    cluster.kubectl("delete", "namespace", team, "--wait=false")
    cluster.wait_namespace_gone(team, timeout=120)
