"""A Secret the operator may not read is reported as SecretForbidden, not as missing.

The operator runs under the ClusterRole of manifests/rbac. For the length of one
test, `get` on Secrets is taken out of it (list and watch stay, so kopf still sees
the Secret): the API server then answers the operator's read with 403, as it does
when a namespace was left out of the operator's grants. Giving the verb back must
heal the Destination without any edit of it or of its Secret.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dst import apply, condition, events, s3_destination, s3_secret, wait_for
from operator_fixtures import OPERATOR_NAMESPACE, OPERATOR_SA, OperatorProcess

from harness import Cluster
from s3server import S3Server

ROLE = "destination-operator"


def _secret_rule_index(role: dict[str, Any]) -> int:
    for index, rule in enumerate(role["rules"]):
        if rule.get("apiGroups") == [""] and rule.get("resources") == ["secrets"]:
            return index
    raise AssertionError(f"no rule for secrets in ClusterRole {ROLE}: {role['rules']}")


@pytest.fixture
def secrets_get_revoked(cluster: Cluster) -> Iterator[None]:
    """The operator's ClusterRole without `get` on Secrets; restored afterwards."""
    role = json.loads(cluster.kubectl("get", "clusterrole", ROLE, "-o", "json").stdout)
    index = _secret_rule_index(role)
    verbs = role["rules"][index]["verbs"]
    assert "get" in verbs

    def set_verbs(new: list[str]) -> None:
        patch = [{"op": "replace", "path": f"/rules/{index}/verbs", "value": new}]
        cluster.kubectl("patch", "clusterrole", ROLE, "--type=json", "-p", json.dumps(patch))

    set_verbs([verb for verb in verbs if verb != "get"])
    try:
        yield
    finally:
        set_verbs(verbs)


def test_rbac_denial_is_secret_forbidden_and_a_grant_heals_it(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    operator: OperatorProcess,
    secrets_get_revoked: None,
) -> None:
    apply(cluster, namespace, s3_secret(s3, "creds"), s3_destination("denied", s3, secret="creds"))
    body = wait_for(cluster, namespace, "denied", "Verified", "False", reason="SecretForbidden")
    message = condition(body, "Verified")["message"]
    # The message names the grant that fixes it: verb, resource, namespace, identity.
    assert "get on secrets" in message, message
    assert f"namespace {namespace!r}" in message, message
    assert f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}" in message, message
    assert "'creds'" in message, message
    # Retried (a grant queues no probe by itself), not Stalled and not "not found".
    assert condition(body, "Reconciling").get("reason") == "Retrying"
    assert condition(body, "Stalled").get("status") != "True"
    deadline = time.monotonic() + 10
    while not any(
        e.get("reason") == "VerificationFailed" and "SecretForbidden:" in str(e.get("message"))
        for e in events(cluster, namespace, "denied")
    ):
        assert time.monotonic() < deadline, events(cluster, namespace, "denied")
        time.sleep(0.25)
    assert "SecretNotFound" not in json.dumps(body["status"])

    # The grant comes back; the retry (backoff capped at 4 s here) verifies it.
    role = json.loads(cluster.kubectl("get", "clusterrole", ROLE, "-o", "json").stdout)
    index = _secret_rule_index(role)
    patch = [{"op": "add", "path": f"/rules/{index}/verbs/-", "value": "get"}]
    cluster.kubectl("patch", "clusterrole", ROLE, "--type=json", "-p", json.dumps(patch))
    wait_for(cluster, namespace, "denied", "Verified", "True", timeout=30)
