"""The chart's alerts and dashboard on a real Prometheus scraping a real operator.

The operator runs as the cluster tests run it (manifests/rbac's ServiceAccount, out of
cluster) with its metrics port open; Prometheus (the bin folder's) scrapes it every second
as the chart's ServiceMonitor would (job = the metrics Service, honorLabels) and evaluates
the chart's PrometheusRule with every `for:` shortened through values. Destinations that
fail in the ways the alerts are about make them fire with their namespace and name; fixing
them resolves them; stopping the operator fires DestinationOperatorDown. Every query of the
dashboard returns data.
"""

from __future__ import annotations

import base64
import json
import math
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest

import chart
from cluster.dst import (
    Receiver,
    apply,
    s3_destination,
    s3_secret,
    secret,
    wait_for,
    webhook_destination,
)
from controlplane import die_with_parent, free_port, stop_child
from harness import Cluster
from install import prometheus
from s3server import S3Server
from tcprelay import TcpRelay

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE, OPERATOR_SA = "destination-operator-system", "destination-operator"
# Short enough for a test, long enough that an alert is seen pending first.
SHORT = {
    "notReadyFor": "3s",
    "stalledFor": "3s",
    "overdueFor": "3s",
    "credentialsExpiringFor": "3s",
    "failingFor": "3s",
    "notSyncedFor": "1m",
    "downFor": "3s",
    "noLeaderFor": "3s",
}
THREE_DAYS = 3 * 24 * 3600


def jwt(expires: float) -> str:
    """A JWT (HS256 form, random signature) whose exp claim is `expires`."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = part(json.dumps({"sub": "monitoring-test", "exp": int(expires)}).encode())
    return f"{header}.{claims}.{part(secrets.token_bytes(32))}"


@dataclass
class Stack:
    cluster: Cluster
    namespace: str
    s3: S3Server
    operator: subprocess.Popen[bytes]
    prom: prometheus.Prometheus
    relay: TcpRelay  # "unreachable"'s endpoint: refusing until a test restores it


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, destination_crd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    try:  # a missing Prometheus fails the tests, saying how to build it (as kstatus does)
        prometheus.binary(cluster.bin_dir, "prometheus")
    except prometheus.PrometheusError as err:
        pytest.fail(str(err), pytrace=False)
    folder = tmp_path_factory.mktemp("monitoring")
    namespace = f"monitoring-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests" / "rbac"))
    # watching one namespace, kopf lists and watches namespaces: the chart grants that with
    # watchNamespaces, and without it kopf retries its 403s for about a minute
    listing = f"{namespace}-list-namespaces"
    cluster.kubectl("create", "clusterrole", listing, "--verb=list,watch", "--resource=namespaces")
    cluster.kubectl(
        "create",
        "clusterrolebinding",
        listing,
        f"--clusterrole={listing}",
        f"--serviceaccount={OPERATOR_NAMESPACE}:{OPERATOR_SA}",
    )
    kubeconfig = cluster.token_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, out_dir=folder)
    metrics_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESTINATION_OPERATOR_")}
    env |= {
        "KUBECONFIG": str(kubeconfig),
        "DESTINATION_OPERATOR_NAMESPACES": json.dumps([namespace]),
        "DESTINATION_OPERATOR_ALLOW_PRIVATE_ENDPOINTS": "true",
        "DESTINATION_OPERATOR_BACKOFF_BASE_SECONDS": "1",
        "DESTINATION_OPERATOR_BACKOFF_CAP_SECONDS": "2",
        "DESTINATION_OPERATOR_SECRET_GRACE_SECONDS": "2",
        "DESTINATION_OPERATOR_HEALTH_PORT": "0",
        "DESTINATION_OPERATOR_METRICS_PORT": str(metrics_port),
        "DESTINATION_OPERATOR_LOG_LEVEL": "DEBUG",
    }
    groups = prometheus.rule_groups(cluster.bin_dir / "helm", SHORT)
    target = {
        "targets": [f"127.0.0.1:{metrics_port}"],
        # what the ServiceMonitor's target carries: the release's namespace
        "labels": {"namespace": chart.NAMESPACE},
    }
    log = folder / "operator.log"
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Thread(target=receiver.serve_forever, daemon=True).start()
    operator = None
    relay: TcpRelay | None = None
    try:
        with (
            S3Server(folder / "s3") as s3,
            prometheus.Prometheus(cluster.bin_dir, folder, [target], groups) as prom,
            log.open("ab") as out,
        ):
            operator = subprocess.Popen(
                [str(Path(sys.executable).parent / "destination-operator"), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
            )
            relay = TcpRelay("127.0.0.1", s3.port)
            relay.refuse()  # the endpoint cannot change (immutable): its port comes back later
            hook_url = f"http://127.0.0.1:{receiver.server_port}/deliveries"
            expiring = {"verificationToken": secrets.token_hex(16)}
            expiring["bearerToken"] = jwt(time.time() + THREE_DAYS)
            apply(
                cluster,
                namespace,
                s3_secret(s3),
                secret("partial", {"accessKeyId": s3.users["admin"].access_key_id}),
                secret("hook", expiring),
                s3_destination("verified", s3, secret="s3"),
                s3_destination("stalled", s3, secret="partial"),
                s3_destination(
                    "unreachable", s3, secret="s3", endpoint=f"http://127.0.0.1:{relay.port}"
                ),
                webhook_destination("expiring", hook_url, secret="hook"),
            )
            wait_for(cluster, namespace, "verified", "Ready", "True")
            wait_for(cluster, namespace, "expiring", "Ready", "True")
            wait_for(cluster, namespace, "stalled", "Stalled", "True", reason="SecretKeyMissing")
            wait_for(cluster, namespace, "unreachable", "Verified", "False")
            yield Stack(cluster, namespace, s3, operator, prom, relay)
    finally:
        stop_child(operator, timeout=15)
        if relay is not None:
            relay.close()
        receiver.shutdown()
        receiver.server_close()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", listing, check=False)


def named(stack: Stack, alert: str, name: str) -> list[dict[str, str]]:
    """The firing `alert`s about Destination `name` of the test's namespace."""
    return [
        labels
        for labels in stack.prom.firing(alert)
        if labels.get("namespace") == stack.namespace and labels.get("name") == name
    ]


def about(stack: Stack, name: str) -> list[str]:
    """Every alert, pending or firing, that names Destination `name`."""
    return [
        alert["labels"]["alertname"]
        for alert in stack.prom.alerts()
        if alert["labels"].get("namespace") == stack.namespace
        and alert["labels"].get("name") == name
    ]


def test_alerts_fire_naming_the_failing_destinations(stack: Stack) -> None:
    stalled = stack.prom.wait(
        "DestinationStalled for stalled", lambda: named(stack, "DestinationStalled", "stalled")
    )
    assert stalled == [
        {
            "alertname": "DestinationStalled",
            "namespace": stack.namespace,
            "name": "stalled",
            "type": "S3Compatible",
            "severity": "warning",
        }
    ]
    not_ready = stack.prom.wait(
        "DestinationNotReady for unreachable",
        lambda: named(stack, "DestinationNotReady", "unreachable"),
    )
    assert not_ready[0]["severity"] == "warning" and not_ready[0]["type"] == "S3Compatible"
    failing = stack.prom.wait(
        "DestinationProbesFailing for S3Compatible",
        lambda: [
            labels
            for labels in stack.prom.firing("DestinationProbesFailing")
            if labels["type"] == "S3Compatible" and labels["reason"] == "EndpointUnreachable"
        ],
    )
    assert failing
    # the Stalled one has its own alert only; the verified ones none
    assert about(stack, "stalled") == ["DestinationStalled"]
    assert about(stack, "verified") == []
    found = {a["labels"]["alertname"]: a for a in stack.prom.alerts()}
    assert "SecretKeyMissing" in found["DestinationStalled"]["annotations"]["description"]
    assert found["DestinationStalled"]["annotations"]["runbook_url"].endswith("#destinationstalled")


def test_credentials_expiring_names_the_destination(stack: Stack) -> None:
    """The webhook's bearer token is a JWT that expires in 3 days (within the 14-day default)."""
    expiring = stack.prom.wait(
        "DestinationCredentialsExpiring for expiring",
        lambda: named(stack, "DestinationCredentialsExpiring", "expiring"),
    )
    assert expiring[0]["type"] == "Webhook"
    (sample,) = stack.prom.query(
        "destination_operator_destination_credentials_expiry_timestamp_seconds"
        f'{{namespace="{stack.namespace}",name="expiring"}} - time()'
    )
    assert THREE_DAYS - 600 < float(sample["value"][1]) <= THREE_DAYS


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    """Each target's expr, its variables filled in as Grafana would, on the real Prometheus;
    a rate needs two scrapes with probes in between, so each is given a while."""
    queries = [
        (name, title, prometheus.substitute(expr))
        for name, dashboard in prometheus.dashboards().items()
        for title, expr in prometheus.panel_queries(dashboard)
    ]
    assert len(queries) >= 10

    def answered(expr: str) -> list[dict[str, object]]:
        return [
            sample
            for sample in stack.prom.query(expr)
            if not math.isnan(float(sample["value"][1]))  # type: ignore[index, arg-type]
        ]

    empty = []
    for name, title, expr in queries:
        try:
            stack.prom.wait(f"{title}: {expr}", lambda expr=expr: answered(expr), timeout=20)
        except AssertionError:
            empty.append(f"{name}: {title}: {expr}")
    assert empty == [], "panels without data:\n" + "\n".join(empty)
    # the failing ones by name, with their reasons
    table = next(expr for _, title, expr in queries if title == "Failing Destinations")
    rows = {(s["metric"]["name"], s["metric"]["reason"]) for s in stack.prom.query(table)}
    assert ("stalled", "SecretKeyMissing") in rows
    assert ("unreachable", "EndpointUnreachable") in rows
    assert not {name for name, _ in rows} & {"verified", "expiring"}


def test_alerts_resolve_when_the_destinations_are_fixed(stack: Stack) -> None:
    for alert, name in (
        ("DestinationStalled", "stalled"),
        ("DestinationNotReady", "unreachable"),
    ):
        stack.prom.wait(f"{alert} for {name}", lambda a=alert, n=name: named(stack, a, n))
    apply(stack.cluster, stack.namespace, s3_secret(stack.s3, name="partial"))
    stack.relay.restore()  # the unreachable endpoint answers again: the next retry verifies
    wait_for(stack.cluster, stack.namespace, "stalled", "Ready", "True")
    wait_for(stack.cluster, stack.namespace, "unreachable", "Ready", "True")
    for name in ("stalled", "unreachable"):
        stack.prom.wait(f"no alert about {name}", lambda n=name: about(stack, n) == [])


def test_operator_down_fires_when_its_scrapes_fail(stack: Stack) -> None:
    assert stack.prom.firing("DestinationOperatorDown") == []
    stop_child(stack.operator, timeout=15)
    down = stack.prom.wait(
        "DestinationOperatorDown", lambda: stack.prom.firing("DestinationOperatorDown")
    )
    assert down == [
        {
            "alertname": "DestinationOperatorDown",
            "job": prometheus.METRICS_JOB,
            "namespace": chart.NAMESPACE,
            "severity": "critical",
        }
    ]
