"""Secrets no Destination names cost the operator their metadata, never their data.

200 unrelated Secrets (Helm release-shaped, each holding a canary and 4 KiB)
are stored before the operator starts and change while it runs. The operator
talks to the API server through `apiproxy.ApiProxy`, which keeps every answer's
size and looks for the canary in every byte of it; the API server's audit log
holds every request the operator's ServiceAccount made in the session. Shown:

- every list and watch of Secrets asked for, and got, `PartialObjectMetadata`;
- not one byte of an unrelated Secret's data reached the operator, and it never
  asked for one by name;
- the data of a named Secret does reach it (the proxy sees its key in the GET,
  so the scan can fail), read once per resourceVersion: a rotation re-verifies,
  and a Secret created after its Destination is seen at once.

The memory this saves is measured in bench/ (`--scenarios secrets`).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dst import apply, s3_destination, s3_secret, secret, wait_for
from kubernetes import client
from operator_fixtures import OPERATOR_NAMESPACE, OPERATOR_SA, OperatorProcess, operator_through

from apiproxy import ApiProxy
from controlplane import audit_events
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster

UNRELATED = 200
FILLER = 4096
CANARY = f"unrelated-SECRET-{secrets.token_hex(4)}-never-read-"
CANARY += "-" * (-len(CANARY) % 3)  # whole base64 groups: its encoding begins the value's
NEEDLES = frozenset({CANARY.encode(), base64.b64encode(CANARY.encode())})
COLLECTION = re.compile(r"^/api/v1/(namespaces/[^/]+/)?secrets(\?|$)")
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"


def release(name: str, revision: int) -> dict[str, Any]:
    """A Secret the shape of a Helm release's, its data the canary and filler."""
    data = CANARY.encode() + secrets.token_bytes(FILLER)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {"name": name, "labels": {"owner": "helm", "version": str(revision)}},
        "data": {"release": base64.b64encode(data).decode()},
    }


@pytest.fixture(scope="module")
def unrelated(cluster: Cluster) -> Iterator[str]:
    """A namespace of `UNRELATED` Secrets that no Destination names."""
    name = f"unrelated-{secrets.token_hex(3)}"
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": name}})
        for i in range(UNRELATED):
            core.create_namespaced_secret(name, release(f"sh.helm.release.v1.r{i:03d}.v1", 1))
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def proxy(cluster: Cluster) -> Iterator[ApiProxy]:
    api = ApiProxy(cluster.server, cluster.plane.pki / "ca.crt")
    api.needles = NEEDLES
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="module")
def proxied_operator(
    cluster: Cluster,
    unrelated: str,
    proxy: ApiProxy,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator under its own ServiceAccount, through `proxy`, started after the
    unrelated Secrets were stored: its first list holds them all."""
    folder = tmp_path_factory.mktemp("footprint")
    with operator_through(proxy.url, cluster, operator, folder) as process:
        yield process


def churn(cluster: Cluster, namespace: str) -> None:
    """Helm at work while the operator runs: upgrades, uninstalls, installs."""
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        for i in range(20):
            name = f"sh.helm.release.v1.r{i:03d}.v1"
            core.replace_namespaced_secret(name, namespace, release(name, 2))
        for i in range(20, 30):
            core.delete_namespaced_secret(f"sh.helm.release.v1.r{i:03d}.v1", namespace)
        for i in range(UNRELATED, UNRELATED + 10):
            core.create_namespaced_secret(namespace, release(f"sh.helm.release.v1.r{i:03d}.v1", 1))


def operator_secret_requests(audit_log: Path) -> list[dict[str, Any]]:
    """Every audited request of the operator's ServiceAccount on Secrets, once each."""
    found: dict[str, dict[str, Any]] = {}
    for entry in audit_events(audit_log):
        if entry.get("user", {}).get("username") != OPERATOR_USER:
            continue
        if (entry.get("objectRef") or {}).get("resource") == "secrets":
            found.setdefault(entry["auditID"], entry)
    return list(found.values())


def test_no_unrelated_secrets_data_reaches_the_operator(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    unrelated: str,
    proxy: ApiProxy,
    proxied_operator: OperatorProcess,
) -> None:
    pair = s3.users["admin"]
    key = base64.b64encode(pair.secret_access_key.encode())  # as a GET of "ref" carries it
    proxy.needles = NEEDLES | {key}
    apply(
        cluster,
        namespace,
        s3_secret(s3, "ref"),
        s3_destination("d", s3, secret="ref"),
        s3_destination("late", s3, secret="late"),
    )
    wait_for(cluster, namespace, "d", "Verified", "True")
    wait_for(cluster, namespace, "late", "Verified", "False", reason="SecretNotFound")
    churn(cluster, unrelated)

    # a Secret created after its Destination is seen at once (not at the next interval)
    apply(cluster, namespace, s3_secret(s3, "late"))
    wait_for(cluster, namespace, "late", "Verified", "True", timeout=10)
    # the named Secret rotated, twice: each version is read and probed with
    wrong = f"wrong-{secrets.token_hex(8)}"
    apply(
        cluster,
        namespace,
        secret("ref", {"accessKeyId": pair.access_key_id, "secretAccessKey": wrong}),
    )
    wait_for(cluster, namespace, "d", "Verified", "False", reason="AuthenticationFailed")
    apply(cluster, namespace, s3_secret(s3, "ref"))
    wait_for(cluster, namespace, "d", "Verified", "True", timeout=10)
    time.sleep(1)  # the last requests reach the audit log

    with proxy.lock:
        exchanges = list(proxy.exchanges)
    listed = [e for e in exchanges if COLLECTION.match(e.path)]
    watches = [e for e in listed if "watch=true" in e.path]
    assert watches and len(watches) < len(listed), "no list, or no watch, of Secrets was seen"
    for e in listed:
        assert "as=PartialObjectMetadata" in e.accept, f"{e.path} asked for {e.accept!r}"
        # what came back: a list's kind, or a watch's first event's object's kind (a watch
        # that has sent no event yet has nothing to show)
        kind = b'"kind":"PartialObjectMetadata' + (b'"' if e in watches else b'List"')
        shown = e.status != 200 or (e in watches and not e.head) or kind in e.head
        assert shown, (e.path, e.status, e.head[:200])
    assert any(e.head for e in watches), "no watch event of Secrets was seen"
    leaked = [e.path for e in exchanges if e.found & NEEDLES]
    assert not leaked, f"an unrelated Secret's data reached the operator: {leaked}"
    listed_bytes = sum(e.size for e in listed)
    print(f"Secrets' metadata: {len(listed)} lists and watches, {listed_bytes} bytes")
    assert 0 < listed_bytes < UNRELATED * FILLER, "the lists and watches carried data"

    # the scan sees data when data is sent: the named Secret's key, in its GETs
    gets = [e for e in exchanges if e.path.endswith(f"/namespaces/{namespace}/secrets/ref")]
    assert any(key in e.found for e in gets), "the named Secret's key was never seen"
    assert not [e.path for e in listed if key in e.found], "a list or watch carried data"

    requests = operator_secret_requests(cluster.plane.audit_log)
    by_name = [
        (e["verb"], e["objectRef"].get("namespace"), e["objectRef"]["name"])
        for e in requests
        if e["objectRef"].get("name")
    ]
    assert not [r for r in by_name if r[1] == unrelated], "an unrelated Secret was read by name"
    here = [r for r in by_name if r[1] == namespace]
    assert {name for _, _, name in here} == {"ref", "late"}, here
    assert {verb for verb, _, _ in here} == {"get"}, here
    reads_of_ref = sum(1 for _, _, name in here if name == "ref")
    print(f"GETs of the named Secret over its 3 versions: {reads_of_ref}")
    assert 3 <= reads_of_ref <= 4, "read once per resourceVersion (a read may run ahead)"
    assert CANARY not in proxied_operator.text()
