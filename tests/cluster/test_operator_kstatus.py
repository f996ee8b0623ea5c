"""What kstatus (cli-utils' status.Compute, as Flux and kpt run it) says of real Destinations.

Each row of the kstatus table in docs/conditions.md, produced by the operator
against the real API server and S3 server, then read back and fed to the real
library.
"""

from __future__ import annotations

from typing import Any

import pytest
from dst import apply, get, s3_destination, s3_secret, secret, wait_for
from operator_fixtures import OperatorProcess

from harness import Cluster
from kstatus import compute
from loopback import SilentServer
from s3server import S3Server

pytestmark = pytest.mark.cluster


def kstatus_of(cluster: Cluster, body: dict[str, Any]) -> str:
    return compute([body], cluster.bin_dir)[0]


def test_kstatus_of_every_state(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    operator: OperatorProcess,
    silent_server: SilentServer,
) -> None:
    silent = f"http://127.0.0.1:{silent_server.port}"
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        secret("nokey", {"accessKeyId": "x"}),
        secret("wrong", {"accessKeyId": s3.users["admin"].access_key_id, "secretAccessKey": "no"}),
        s3_destination(
            "pending", s3, secret="s3", endpoint=silent, verification={"timeout": "60s"}
        ),
        s3_destination("verified", s3, secret="s3"),
        s3_destination("retrying", s3, secret="wrong"),
        s3_destination("person", s3, secret="nokey"),
        s3_destination("disabled", s3, secret="s3", enabled=False),
        s3_destination("archived", s3, secret="s3", archived=True),
    )
    expected = {
        "pending": ("Reconciling", "True", "InProgress"),
        "verified": ("Ready", "True", "Current"),
        "retrying": ("Reconciling", "True", "InProgress"),
        "person": ("Stalled", "True", "Failed"),
        "disabled": ("Verified", "Unknown", "Current"),
        "archived": ("Archived", "True", "Current"),
    }
    seen = {}
    for name, (kind, status, _) in expected.items():
        body = wait_for(cluster, namespace, name, kind, status, timeout=30)
        seen[name] = kstatus_of(cluster, body)
    assert seen == {name: verdict for name, (_, _, verdict) in expected.items()}
    # disabled and archived are at rest, not Ready: kubectl wait does not pass them
    for name in ("disabled", "archived"):
        done = cluster.kubectl(
            "wait",
            "-n",
            namespace,
            "--for=condition=Ready",
            f"dst/{name}",
            "--timeout=1s",
            check=False,
        )
        assert done.returncode != 0


def test_a_spec_change_is_in_progress_until_observed(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, s3_secret(s3), s3_destination("moving", s3, secret="s3"))
    body = wait_for(cluster, namespace, "moving", "Ready", "True")
    body["metadata"]["generation"] += 1  # what the API server shows before the operator acts
    assert kstatus_of(cluster, body) == "InProgress"


def test_a_secret_missing_for_a_moment_does_not_fail_a_rollout(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, s3_destination("early", s3, secret="later"))
    body = wait_for(cluster, namespace, "early", "Verified", "False", reason="SecretNotFound")
    assert kstatus_of(cluster, body) == "InProgress"  # not Failed: the Secret may come
    apply(cluster, namespace, s3_secret(s3, name="later"))
    body = wait_for(cluster, namespace, "early", "Ready", "True", timeout=30)
    assert kstatus_of(cluster, body) == "Current"


def test_a_secret_missing_past_the_grace_period_is_failed(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, s3_destination("never", s3, secret="absent"))
    body = wait_for(cluster, namespace, "never", "Stalled", "True", reason="SecretNotFound")
    assert kstatus_of(cluster, body) == "Failed"
    assert get(cluster, namespace, "never")["status"].get("nextVerificationTime") is None
