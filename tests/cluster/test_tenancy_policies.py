"""docs/examples/restrict-endpoints.yaml, as the page shows it, on the real API server.

A ValidatingAdmissionPolicy limits, per namespace, which types, endpoint hosts and buckets
its Destinations may use; docs/multi-tenancy.md states each behaviour tested here.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import Cluster

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
CHART = ROOT / "charts" / "destination-operator"
EXAMPLE = EXAMPLES / "restrict-endpoints.yaml"
QUOTA = EXAMPLES / "destination-quota.yaml"
TENANT = "team-a"  # the namespace the example's binding names
POLICY_NAMESPACE = "destination-policies"
DENIED = "denied request: "


def _destination(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "destinations.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": name},
        "spec": {"credentials": {"secretRef": {"name": "team-a-storage"}}, **spec},
    }


def _s3(name: str, endpoint: str, bucket: str, **spec: Any) -> dict[str, Any]:
    member = {"endpoint": endpoint, "bucket": bucket}
    return _destination(name, {"type": "S3Compatible", "s3Compatible": member, **spec})


ALLOWED_HOST = "https://s3.team-a.example.com"


def _create(cluster: Cluster, namespace: str, body: dict[str, Any]) -> tuple[bool, str]:
    done = cluster.kubectl(
        "create", "-n", namespace, "-f", "-", input=yaml.safe_dump(body), check=False
    )
    return done.returncode == 0, done.stderr.strip()


@pytest.fixture(scope="module")
def policy(cluster: Cluster, destination_crd: str) -> Iterator[None]:
    """The example applied as it is, the tenant's namespace, and the policy in force."""
    cluster.kubectl("apply", "-f", str(EXAMPLE))
    cluster.kubectl("create", "namespace", TENANT)
    try:
        # Policies are loaded by the API server a moment after they are written.
        deadline = time.monotonic() + 30
        probe = _s3("not-yet", "https://s3.elsewhere.example.com", "team-a-exports")
        while True:
            done = cluster.kubectl(
                "create",
                "--dry-run=server",
                "-n",
                TENANT,
                "-f",
                "-",
                input=yaml.safe_dump(probe),
                check=False,
            )
            if done.returncode != 0 and DENIED in done.stderr:
                break
            assert time.monotonic() < deadline, f"the policy is not in force: {done.stderr}"
            time.sleep(0.5)
        yield
    finally:
        cluster.kubectl("delete", "namespace", TENANT, "--wait=false", check=False)
        cluster.kubectl("delete", "--ignore-not-found", "-f", str(EXAMPLE), check=False)


def test_the_policy_type_checks_against_the_crd(cluster: Cluster, policy: None) -> None:
    """The API server checks every expression against the Destination schema: no warning."""
    body = json.loads(
        cluster.kubectl(
            "get", "validatingadmissionpolicy", "destinations-allowed-targets", "-o", "json"
        ).stdout
    )
    status = body.get("status") or {}
    assert status.get("observedGeneration") == body["metadata"]["generation"]
    assert not (status.get("typeChecking") or {}).get("expressionWarnings"), status


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            _s3("elsewhere", "https://s3.elsewhere.example.com", "team-a-exports"),
            "endpoint host s3.elsewhere.example.com is not allowed in namespace team-a "
            "(allowed: s3.team-a.example.com)",
        ),
        (
            _s3("metadata", "http://169.254.169.254", "team-a-exports", environment="Development"),
            "endpoint host 169.254.169.254 is not allowed in namespace team-a",
        ),
        (
            _s3("other-bucket", ALLOWED_HOST, "someone-elses-bucket"),
            "bucket someone-elses-bucket is not allowed in namespace team-a "
            "(allowed: team-a-exports, team-a-reports)",
        ),
        (
            _s3(
                "via-proxy",
                ALLOWED_HOST,
                "team-a-exports",
                transport={"httpsProxy": "http://proxy.example.net:3128"},
            ),
            "endpoint host proxy.example.net is not allowed in namespace team-a",
        ),
        (
            _destination(
                "hook", {"type": "Webhook", "webhook": {"url": "https://hooks.example.com/in"}}
            ),
            "spec.type Webhook is not allowed in namespace team-a (allowed: S3Compatible)",
        ),
        (
            _destination(
                "aws",
                {
                    "type": "AmazonS3",
                    "amazonS3": {"bucket": "team-a-exports", "region": "eu-west-1"},
                },
            ),
            "spec.type AmazonS3 is not allowed in namespace team-a",
        ),
        (
            _s3(
                "other-secret",
                ALLOWED_HOST,
                "team-a-exports",
                credentials={"secretRef": {"name": "database-password"}},
            ),
            "Secret database-password may not be used by Destinations in namespace team-a "
            "(allowed: team-a-storage)",
        ),
        (
            _s3("slow", ALLOWED_HOST, "team-a-exports", verification={"timeout": "90s"}),
            "spec.verification.timeout 90s is longer than namespace team-a allows (1m)",
        ),
    ],
    ids=[
        "host",
        "metadata-address",
        "bucket",
        "proxy",
        "webhook",
        "amazon-s3",
        "secret",
        "timeout",
    ],
)
def test_a_destination_outside_the_allowed_targets_is_refused_with_the_policys_message(
    cluster: Cluster, policy: None, body: dict[str, Any], message: str
) -> None:
    created, error = _create(cluster, TENANT, body)
    assert not created
    assert "ValidatingAdmissionPolicy 'destinations-allowed-targets'" in error, error
    assert f"{DENIED}{message}" in error, error


def test_kubectl_prints_the_refusal_as_the_page_shows_it(cluster: Cluster, policy: None) -> None:
    page = (ROOT / "docs" / "multi-tenancy.md").read_text()
    lines = [line.strip() for line in page.splitlines()]
    (shown,) = [line for line in lines if line.startswith('The destinations "')]
    body = _s3("elsewhere", "https://s3.elsewhere.example.com", "team-a-exports")
    created, error = _create(cluster, TENANT, body)
    assert not created
    assert error == shown


def test_a_destination_inside_the_allowed_targets_is_admitted(
    cluster: Cluster, policy: None
) -> None:
    # host names compare without case; a port does not matter
    for body in [
        _s3("exports", ALLOWED_HOST, "team-a-exports"),
        _s3("reports", "https://S3.Team-A.example.com:8443", "team-a-reports"),
        _s3("quick", ALLOWED_HOST, "team-a-exports", verification={"timeout": "60s"}),
    ]:
        created, error = _create(cluster, TENANT, body)
        assert created, error


def test_an_update_is_checked_too_and_status_writes_are_not(cluster: Cluster, policy: None) -> None:
    created, error = _create(cluster, TENANT, _s3("moving", ALLOWED_HOST, "team-a-exports"))
    assert created, error
    proxied = json.dumps({"spec": {"transport": {"httpsProxy": "http://proxy.example.net:3128"}}})
    done = cluster.kubectl(
        "patch", "-n", TENANT, "dst", "moving", "--type=merge", "-p", proxied, check=False
    )
    assert done.returncode != 0 and "endpoint host proxy.example.net" in done.stderr
    # the operator writes through the status subresource, which the policy does not match
    status = json.dumps({"status": {"target": "https://s3.team-a.example.com/team-a-exports"}})
    cluster.kubectl(
        "patch", "-n", TENANT, "dst", "moving", "--subresource=status", "--type=merge", "-p", status
    )


def test_other_namespaces_are_not_bound(cluster: Cluster, policy: None, namespace: str) -> None:
    created, error = _create(
        cluster, namespace, _s3("anywhere", "https://s3.elsewhere.example.com", "any-bucket")
    )
    assert created, error


def test_without_its_configmap_the_namespace_gets_no_destination(
    cluster: Cluster, policy: None
) -> None:
    """`parameterNotFoundAction: Deny`: a missing list of allowed values allows nothing.
    Runs last in this module: it removes the ConfigMap."""
    cluster.kubectl("delete", "configmap", TENANT, "-n", POLICY_NAMESPACE)
    deadline = time.monotonic() + 30
    body = _s3("after", ALLOWED_HOST, "team-a-exports")
    while True:
        created, error = _create(cluster, TENANT, body)
        if not created:
            break
        cluster.kubectl("delete", "-n", TENANT, "dst", "after")
        assert time.monotonic() < deadline, "still admitted without the ConfigMap"
        time.sleep(0.5)
    assert "no params found for policy binding with `Deny` parameterNotFoundAction" in error


def test_a_resource_quota_caps_the_destinations_of_a_namespace(
    cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    quota = yaml.safe_load(QUOTA.read_text())
    limit = int(quota["spec"]["hard"]["count/destinations.destinations.io"])
    # Admission counts against the quota once the quota controller has counted what exists.
    # It counts a custom resource only after its discovery has seen the CRD (every 30 s), and
    # looks again at a quota made before that only on its full resync (5 min): make it anew.
    deadline = time.monotonic() + 120
    while True:
        cluster.kubectl("apply", "-n", namespace, "-f", str(QUOTA))
        until = time.monotonic() + 5
        while time.monotonic() < until:
            used = cluster.kubectl(
                "get",
                "resourcequota",
                "destinations",
                "-n",
                namespace,
                "-o",
                "jsonpath={.status.used}",
            ).stdout
            if '"count/destinations.destinations.io"' in used:
                break
            time.sleep(0.25)
        else:
            assert time.monotonic() < deadline, "the quota controller never counted Destinations"
            cluster.kubectl("delete", "resourcequota", "destinations", "-n", namespace)
            continue
        break
    off = {"enabled": False}  # at rest: the operator writes one status and never probes
    many = [_s3(f"d{n}", ALLOWED_HOST, "team-a-exports", **off) for n in range(limit)]
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(many))
    created, error = _create(
        cluster, namespace, _s3("one-more", ALLOWED_HOST, "team-a-exports", **off)
    )
    assert not created
    resource = "count/destinations.destinations.io"
    assert (
        f"exceeded quota: destinations, requested: {resource}=1, used: {resource}={limit}, "
        f"limited: {resource}={limit}"
    ) in error, error


def test_the_charts_network_policy_lets_every_ipv4_address_but_link_local_through_by_default(
    cluster: Cluster,
) -> None:
    """What `networkPolicy.enabled=true` renders with the other values left alone: egress to
    0.0.0.0/0 except 169.254.0.0/16 on 443 and 6443 (the API server rule) and on 443 (the
    storage rule), private ranges included; DNS to kube-dns; no IPv6 block."""
    done = subprocess.run(
        [
            str(cluster.bin_dir / "helm"),
            "template",
            "destination-operator",
            str(CHART),
            "--set",
            "networkPolicy.enabled=true",
            "--show-only",
            "templates/networkpolicy.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    policy = yaml.safe_load(done.stdout)
    assert policy["spec"]["policyTypes"] == ["Egress"]
    blocks, selectors = [], []
    for rule in policy["spec"]["egress"]:
        ports = sorted((port["protocol"], port["port"]) for port in rule["ports"])
        for peer in rule["to"]:
            if "ipBlock" in peer:
                block = peer["ipBlock"]
                blocks.append((block["cidr"], tuple(block.get("except", ())), tuple(ports)))
            else:
                selectors.append((peer["podSelector"]["matchLabels"], tuple(ports)))
    assert sorted(blocks) == [
        ("0.0.0.0/0", ("169.254.0.0/16",), (("TCP", 443),)),
        ("0.0.0.0/0", ("169.254.0.0/16",), (("TCP", 443), ("TCP", 6443))),
    ]
    assert selectors == [({"k8s-app": "kube-dns"}, (("TCP", 53), ("UDP", 53)))]
