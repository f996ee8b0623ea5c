"""A stored object that breaks the rules: Verified=False/InvalidSpec, Stalled, no retry storm.

Such objects exist when they were stored before a rule did. The test makes
one the same way: it swaps in a CRD without the rules, stores the object,
and puts the real CRD back.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dst import apply, condition, s3_destination, s3_secret, wait_for
from operator_fixtures import OperatorProcess
from test_operator_writes import operator_writes

from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster

CRD = Path(__file__).resolve().parents[2] / "crds" / "destinations.destinations.io.yaml"


@pytest.fixture
def rules_lifted(cluster: Cluster, destination_crd: str, tmp_path: Path) -> Iterator[None]:
    crd = yaml.safe_load(CRD.read_text())
    lax = copy.deepcopy(crd)
    for version in lax["spec"]["versions"]:
        props = version["schema"]["openAPIV3Schema"]["properties"]
        props["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        version.pop("selectableFields", None)
    path = tmp_path / "lax.yaml"
    path.write_text(yaml.safe_dump(lax))
    cluster.apply_crd(path)
    try:
        yield
    finally:
        cluster.apply_crd(CRD)


def test_stored_invalid_spec_is_reported_not_retried(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    operator: OperatorProcess,
    rules_lifted: None,
) -> None:
    broken = s3_destination("broken", s3, secret="s3", displayName="x")
    broken["spec"]["s3Compatible"]["bucket"] = "Not_A_Bucket"
    deadline = time.monotonic() + 30
    while True:  # the API server picks up the relaxed schema within moments
        done = cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(broken), check=False
        )
        if done.returncode == 0:
            break
        assert time.monotonic() < deadline, done.stderr
        time.sleep(0.5)
    body = wait_for(cluster, namespace, "broken", "Verified", "False", reason="InvalidSpec")
    message = condition(body, "Verified")["message"]
    assert "spec." in message  # the field is named
    assert condition(body, "Stalled")["status"] == "True"
    assert condition(body, "Ready")["status"] == "False"
    writes = len(operator_writes(cluster, namespace, "broken"))
    time.sleep(5)
    assert len(operator_writes(cluster, namespace, "broken")) == writes  # no retry storm
    assert operator.alive()

    # fixing the spec recovers it
    del broken["spec"]["displayName"]
    broken["spec"]["s3Compatible"]["bucket"] = s3.buckets[0]
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        broken,
    )
    wait_for(cluster, namespace, "broken", "Verified", "True")
