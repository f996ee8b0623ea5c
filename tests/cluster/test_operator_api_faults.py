"""The API server failing the operator's own requests: 5xx, 429, a dropped connection, no answer.

The operator runs behind `apiproxy.ApiProxy`, which fails chosen requests a
few times. Such failures are the API server's, not the Destination's: the
operator retries with backoff, the Destination ends Verified, and no failure
reason (SecretNotFound above all) ever reaches its status or its events.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator

import pytest
from dst import apply, condition, events, s3_destination, s3_secret, wait_for
from operator_fixtures import OperatorProcess, operator_through

from apiproxy import ApiProxy
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def proxy(cluster: Cluster) -> Iterator[ApiProxy]:
    api = ApiProxy(cluster.server, cluster.plane.pki / "ca.crt")
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="module")
def proxied_operator(
    cluster: Cluster,
    proxy: ApiProxy,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator, under its own ServiceAccount, talking to the API server through `proxy`."""
    folder = tmp_path_factory.mktemp("proxied")
    with operator_through(proxy.url, cluster, operator, folder) as process:
        yield process


CASES = [
    # (what fails, method, path template, action, HTTP status)
    ("secret-get-500", "GET", "/api/v1/namespaces/{ns}/secrets/s3$", "status", 500),
    ("secret-get-429", "GET", "/api/v1/namespaces/{ns}/secrets/s3$", "status", 429),
    ("secret-get-reset", "GET", "/api/v1/namespaces/{ns}/secrets/s3$", "reset", 0),
    ("secret-get-hang", "GET", "/api/v1/namespaces/{ns}/secrets/s3$", "hang", 0),
    ("status-patch-503", "PATCH", "/namespaces/{ns}/destinations/d/status", "status", 503),
    ("status-patch-reset", "PATCH", "/namespaces/{ns}/destinations/d/status", "reset", 0),
]


@pytest.mark.parametrize(
    ("method", "path", "action", "status"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_api_server_failures_are_retried_and_never_become_a_reason(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    proxy: ApiProxy,
    proxied_operator: OperatorProcess,
    method: str,
    path: str,
    action: str,
    status: int,
) -> None:
    times = 1 if action == "hang" else 2
    before = proxy.injected[action]
    proxy.fail(method, path.format(ns=namespace), action, times=times, status=status)
    started = time.monotonic()
    apply(cluster, namespace, s3_secret(s3), s3_destination("d", s3, secret="s3"))
    # a hung request costs the operator's read timeout (20 s), then a retry
    body = wait_for(cluster, namespace, "d", "Ready", "True", timeout=90)
    print(f"{action} {status or ''}: Ready after {time.monotonic() - started:.1f} s")
    assert proxy.injected[action] - before == times, "the fault was never injected"
    assert condition(body, "Verified")["reason"] == "ProbeSucceeded"
    reasons = collections.Counter(event["reason"] for event in events(cluster, namespace, "d"))
    assert reasons == {}, reasons  # retried, never reported failed (a first success posts none)
    assert proxied_operator.alive(), proxied_operator.text()[-3000:]
    log = proxied_operator.text()
    assert "SecretNotFound" not in log
    assert "Traceback" not in log, log[log.index("Traceback") :][:3000]
