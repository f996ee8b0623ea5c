"""docs/consuming.md: what a delivering workload may read, and how it waits for Ready.

docs/examples/consumer-rbac.yaml and consumer-job.yaml are used as the page shows them:
the Role is checked with the API server's authorizer and used through a real ServiceAccount
token, and the Job's init container runs its kubectl command with that token.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dst import apply, s3_destination, s3_secret, wait_for
from operator_fixtures import OperatorProcess

from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
RBAC = EXAMPLES / "consumer-rbac.yaml"
JOB = EXAMPLES / "consumer-job.yaml"


def _can_i(cluster: Cluster, namespace: str, *what: str) -> bool:
    user = f"system:serviceaccount:{namespace}:exporter"
    done = cluster.kubectl("auth", "can-i", *what, "-n", namespace, f"--as={user}", check=False)
    return done.stdout.strip() == "yes"


ACCESS = [
    ("get destinations/reports", True),
    ("watch destinations/reports", True),
    ("list destinations/reports", True),  # only with fieldSelector metadata.name=reports
    ("get secrets/reports-credentials", True),
    ("list destinations", False),
    ("get destinations/other", False),
    ("update destinations/reports", False),
    ("patch destinations/reports", False),
    ("delete destinations/reports", False),
    ("create destinations", False),
    ("patch destinations/reports --subresource=status", False),
    ("get secrets/other", False),
    ("list secrets", False),
    ("update secrets/reports-credentials", False),
]


@pytest.mark.parametrize(
    ("what", "allowed"),
    ACCESS,
    ids=[what.replace(" --subresource=", "-").replace(" ", "-") for what, _ in ACCESS],
)
def test_the_role_reads_one_destination_and_its_secret_only(
    cluster: Cluster, destination_crd: str, namespace: str, what: str, allowed: bool
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(RBAC))
    assert _can_i(cluster, namespace, *what.split()) is allowed


def _init_command(namespace: str) -> list[str]:
    """The Job's init container's kubectl arguments, with a shorter timeout for the test."""
    job = yaml.safe_load(JOB.read_text())
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    assert init["image"].startswith("registry.k8s.io/kubectl:")
    args = [re.sub(r"^--timeout=.*", "--timeout=60s", arg) for arg in init["args"]]
    return ["-n", namespace, *args]  # in a pod, the namespace comes from the mounted token


def test_the_job_waits_for_ready_and_reads_the_destination_with_that_role(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess, tmp_path: Path
) -> None:
    apply(
        cluster,
        namespace,
        s3_secret(s3, "reports-credentials"),
        s3_destination("reports", s3, secret="reports-credentials"),
        s3_secret(s3, "other"),
    )
    cluster.kubectl("apply", "-n", namespace, "-f", str(RBAC))
    done = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(JOB))
    assert "job.batch/export-reports created (server dry run)" in done.stdout
    exporter = str(cluster.token_kubeconfig(namespace, "exporter", out_dir=tmp_path))

    cluster.kubectl(*_init_command(namespace), kubeconfig=exporter, timeout=90)

    # what the workload reads: the Destination (spec, status.target) and its Secret
    body: dict[str, Any] = json.loads(
        cluster.kubectl(
            "get", "-n", namespace, "destination/reports", "-o", "json", kubeconfig=exporter
        ).stdout
    )
    ready = {c["type"]: c for c in body["status"]["conditions"]}["Ready"]
    assert ready["status"] == "True"
    assert ready["observedGeneration"] == body["metadata"]["generation"]
    member = body["spec"]["s3Compatible"]
    assert body["status"]["target"] == f"{member['endpoint']}/{member['bucket']}"
    stored = json.loads(
        cluster.kubectl(
            "get", "-n", namespace, "secret/reports-credentials", "-o", "json", kubeconfig=exporter
        ).stdout
    )
    key_id = base64.b64decode(stored["data"]["accessKeyId"]).decode()
    assert key_id == s3.users["admin"].access_key_id
    for forbidden in (["secret/other"], ["destinations"]):
        done = cluster.kubectl("get", "-n", namespace, *forbidden, kubeconfig=exporter, check=False)
        assert done.returncode != 0 and "Forbidden" in done.stderr


def test_the_jobs_wait_times_out_on_an_archived_destination(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess, tmp_path: Path
) -> None:
    apply(
        cluster,
        namespace,
        s3_secret(s3, "reports-credentials"),
        s3_destination("reports", s3, secret="reports-credentials", archived=True),
    )
    cluster.kubectl("apply", "-n", namespace, "-f", str(RBAC))
    wait_for(cluster, namespace, "reports", "Archived", "True")
    exporter = str(cluster.token_kubeconfig(namespace, "exporter", out_dir=tmp_path))
    command = [re.sub(r"^--timeout=.*", "--timeout=3s", a) for a in _init_command(namespace)]
    done = cluster.kubectl(*command, kubeconfig=exporter, check=False)
    assert done.returncode != 0
    assert "timed out waiting for the condition" in done.stderr
