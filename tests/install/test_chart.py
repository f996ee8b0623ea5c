"""The Helm chart and the kustomize base, against the session's real API server (no node).

- `helm lint`, `helm template` with the defaults and with `namespaces`, the
  values reaching the operator's own settings class, `values.schema.json`
  refusing wrong values at `helm template` and `helm install`;
- the chart's CRD template is the CRD (test_chart_values.py says what crds.install and
  crds.keep do); `manifests/` is the chart rendered (hack/chart.py);
  the API server accepts both (`kubectl apply --dry-run=server`);
- a real `helm install` with `namespaces`, and the operator running out of
  cluster under that release's ServiceAccount token and with its Deployment's
  environment: it verifies Destinations in the watched namespaces only, every
  permission of the namespaced Roles is used (audit log) and none is missing;
- the Argo CD health check of docs/install.md, run in Lua 5.1 on the
  Destinations that operator wrote, beside the kstatus library's verdicts;
- the PrometheusRule's expressions parse and name metrics the operator serves;
- `helm uninstall` keeps the CRD and the Destinations with their status.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from lupa.lua51 import LuaRuntime

import chart
import kstatus
from cluster.dst import apply, condition, get, s3_destination, s3_secret, wait_for
from controlplane import audit_events, die_with_parent, free_port, stop_child
from destination_operator.engine.engine import LEGACY_FINALIZER
from destination_operator.settings import OperatorSettings
from harness import Cluster, patch_status_as
from install.rendered import container_env, objects, one, render
from s3server import S3Server

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / chart.CRD_FILE
INSTALL_DOC = ROOT / "docs" / "install.md"
ARGOCD_KEY = "resource.customizations.health.destinations.io_Destination"
APP_VERSION = yaml.safe_load((chart.CHART / "Chart.yaml").read_text())["appVersion"]


# --- lint and render -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sets",
    [
        [],
        [
            "serviceMonitor.enabled=true,prometheusRule.enabled=true,networkPolicy.enabled=true,"
            "flowSchema.enabled=true",
            "namespaces={team-a,team-b}",
        ],
    ],
    ids=["defaults", "everything-on"],
)
def test_helm_lint_passes(cluster: Cluster, sets: list[str]) -> None:
    args = ["lint", "--strict", str(chart.CHART)]
    for item in sets:
        args += ["--set", item]
    done = cluster.helm(*args, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_the_defaults_render_one_restricted_replica_watching_everything(cluster: Cluster) -> None:
    rendered = objects(render(cluster))
    assert sorted(item["kind"] for item in rendered) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Lease",
        "Pod",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    deployment = one(rendered, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 1
    # helm template cannot look the Lease up: Recreate, as at the install and at the upgrade
    # from a release without leader election (test_replicas_above_one_roll_once_the_lease_exists)
    assert spec["strategy"] == {"type": "Recreate"}
    assert container["image"] == f"localhost/destination-operator:{APP_VERSION}"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert pod["serviceAccountName"] == one(rendered, "ServiceAccount")["metadata"]["name"]
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "resources" in container and container["resources"]["limits"]["memory"]
    assert "DESTINATION_OPERATOR_NAMESPACES" not in container_env(deployment)

    service = one(rendered, "Service")
    pod_labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    test_pod = one(rendered, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["image"] == container["image"]
    selector = spec["selector"]["matchLabels"]
    assert not selector.items() <= test_pod["metadata"]["labels"].items(), (
        "the test pod must not match the Deployment's selector (its ReplicaSet would adopt it)"
    )
    binding = one(rendered, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == one(rendered, "ClusterRole")["metadata"]["name"]


def _watch_rbac(rendered: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The Roles or RoleBindings of the watched namespaces (not leader election's)."""
    return [
        item
        for item in rendered
        if item["kind"] == kind and not item["metadata"]["name"].endswith("-leader-election")
    ]


def test_watch_namespaces_render_roles_and_no_cluster_wide_secrets(cluster: Cluster) -> None:
    rendered = objects(render(cluster, {"namespaces": ["team-a", "team-b"]}))
    roles = _watch_rbac(rendered, "Role")
    bindings = _watch_rbac(rendered, "RoleBinding")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for role in roles:
        resources = {r for rule in role["rules"] for r in rule["resources"]}
        assert resources == {"destinations", "destinations/status", "secrets", "events"}
    cluster_rules = one(rendered, "ClusterRole")["rules"]
    cluster_resources = {r for rule in cluster_rules for r in rule["resources"]}
    assert cluster_resources == {"customresourcedefinitions", "namespaces"}
    named = [rule for rule in cluster_rules if "get" in rule["verbs"]]
    assert named == [
        {
            "apiGroups": [""],
            "resources": ["namespaces"],
            "verbs": ["get"],
            "resourceNames": ["team-a", "team-b"],
        }
    ]
    env = container_env(one(rendered, "Deployment"))
    assert json.loads(env["DESTINATION_OPERATOR_NAMESPACES"]) == ["team-a", "team-b"]


def _settings_from_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> OperatorSettings:
    for name in list(os.environ):
        if name.startswith("DESTINATION_OPERATOR_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return OperatorSettings()


def test_values_reach_the_operator_as_its_own_settings(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rendered variables, read by the operator's settings class: the chart's defaults
    are the operator's defaults but for JSON logs, and each value lands on its setting."""
    defaults = container_env(one(objects(render(cluster)), "Deployment"))
    assert _settings_from_env(defaults, monkeypatch) == _settings_from_env(
        {"DESTINATION_OPERATOR_LOG_FORMAT": "json", "DESTINATION_OPERATOR_LEADER_ELECT": "true"},
        monkeypatch,
    )

    values = {
        "namespaces": ["team-a"],
        "allowPrivateEndpoints": True,
        "probeConcurrency": 3,
        "workers": 5,
        "defaultIntervalSeconds": 600,
        "timeoutSeconds": 12.5,
        "secretGraceSeconds": 7,
        "credentialsExpiryWindow": 604800,
        "stuckAfterSeconds": 120,
        "logLevel": "DEBUG",
        "logFormat": "json",
        "health": {"port": 18080},
        "metrics": {"port": 19090, "service": {"port": 9090}},
        "leaderElect": False,
        "leaderElectionId": "other-lease",
        "leaderElectionLeaseDuration": 30,
        "leaderElectionRenewDeadline": 20.5,
        "leaderElectionRetryPeriod": 4,
        "listChunkSize": 0,
        "initialStreaming": True,
    }
    env = container_env(one(objects(render(cluster, values)), "Deployment"))
    settings = _settings_from_env(env, monkeypatch)
    assert settings.model_dump(mode="json") == {
        **_settings_from_env({}, monkeypatch).model_dump(mode="json"),
        "namespaces": ["team-a"],
        "allow_private_endpoints": True,
        "probe_concurrency": 3,
        "workers": 5,
        "default_interval_seconds": 600.0,
        "timeout_seconds": 12.5,
        "secret_grace_seconds": 7.0,
        "credentials_expiry_window": 604800.0,
        "stuck_after_seconds": 120.0,
        "log_level": "DEBUG",
        "log_format": "json",
        "health_port": 18080,
        "metrics_port": 19090,
        "leader_elect": False,
        "leader_election_id": "other-lease",
        "leader_election_lease_duration": 30.0,
        "leader_election_renew_deadline": 20.5,
        "leader_election_retry_period": 4.0,
        "list_chunk_size": 0,
        "initial_streaming": True,
    }


WRONG_VALUES = [
    ("replicas=-1", "at '/replicas': minimum: got -1, want 0"),
    (
        "replicas=2,leaderElect=false",
        "replicas above 1 need leaderElect: true (else every replica would probe every",
    ),
    ("leaderElectionId=Not_A_Name", "at '/leaderElectionId': 'Not_A_Name' does not match"),
    ("leaderElectionRetryPeriod=0", "at '/leaderElectionRetryPeriod': exclusiveMinimum"),
    ("podDisruptionBudget.maxUnavailable=1", "additional properties 'maxUnavailable' not allowed"),
    (
        "leaderElectionRenewDeadline=15",
        "leaderElectionLeaseDuration must be longer than leaderElectionRenewDeadline",
    ),
    (
        "leaderElectionRetryPeriod=9",
        "leaderElectionRenewDeadline must be longer than 1.2 times leaderElectionRetryPeriod",
    ),
    # the top level takes unknown keys (values files shared across charts); the chart's own
    # objects refuse them: cert-manager's spelling of crds.install does nothing here
    ("crds.enabled=true", "at '/crds': additional properties 'enabled' not allowed"),
    ("image.tags=v1", "at '/image': additional properties 'tags' not allowed"),
    (
        "serviceMonitor.honorlabels=false",
        "at '/serviceMonitor': additional properties 'honorlabels' not allowed",
    ),
    ("commonLabels.helm\\.sh/chart=mine", "invalid propertyName 'helm.sh/chart'"),
    ("revisionHistoryLimit=-1", "at '/revisionHistoryLimit': minimum: got -1, want 0"),
    ("extraArgs=--debug", "at '/extraArgs': got string, want array"),
    (
        "topologySpreadConstraints[0].maxSkew=1,topologySpreadConstraints[0].topologyKey=zone,"
        "topologySpreadConstraints[0].whenUnsatisfiable=Never",
        "at '/topologySpreadConstraints/0/whenUnsatisfiable': value must be one of",
    ),
    ("envFrom[0].secretRefs.name=s", "at '/envFrom/0': additional properties 'secretRefs'"),
    ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of"),
    ("namespaces=team-a", "at '/namespaces': got string, want array"),
    ("namespaces={Team_A}", "at '/namespaces/0': 'Team_A' does not match pattern"),
    ("logFormat=xml", "at '/logFormat': value must be one of 'text', 'json'"),
    ("probeConcurrency=0", "at '/probeConcurrency': minimum: got 0, want 1"),
    ("credentialsExpiryWindow=-1", "at '/credentialsExpiryWindow': minimum: got -1, want 0"),
    ("allowPrivateEndpoints=yes", "at '/allowPrivateEndpoints': got string, want boolean"),
    ("health.port=70000", "at '/health/port': maximum"),
    ("networkPolicy.storage.cidrs={10.0.0.0}", "at '/networkPolicy/storage/cidrs/0'"),
    ("serviceMonitor.interval=30 seconds", "at '/serviceMonitor/interval'"),
    ("podSecurityContext.runAsNonRoot=false", "at '/podSecurityContext/runAsNonRoot'"),
    ("health.port=9090", "health.port and metrics.port must differ (both are 9090)"),
]


@pytest.mark.parametrize(("value", "message"), WRONG_VALUES, ids=[v for v, _ in WRONG_VALUES])
def test_wrong_values_are_refused_with_a_clear_message(
    cluster: Cluster, destination_crd: str, namespace: str, value: str, message: str
) -> None:
    # (destination_crd: the namespace fixture's canary scan lists Destinations)
    with pytest.raises(chart.ChartError) as refused:
        render(cluster, set_values=[value])
    assert message in str(refused.value)
    # helm install refuses them too, before anything reaches the cluster
    done = cluster.helm(
        "install", "refused", str(chart.CHART), "-n", namespace, "--set", value, check=False
    )
    assert done.returncode != 0
    assert message in done.stderr
    listed = cluster.helm("list", "-n", namespace, "--all", "-q", check=False)
    assert listed.returncode == 0 and listed.stdout.strip() == ""


# --- one CRD, one source ----------------------------------------------------------------------


def test_the_charts_crd_is_the_crd(cluster: Cluster) -> None:
    """The chart's CRD template is crds/ wrapped (hack/chart.py, fresh), no crds/ folder of
    the chart's own (Helm would install that too), and the CRD it renders is crds/' with the
    chart's labels and the keep annotation; manifests/ holds crds/' file as it is."""
    assert chart.CRD_TEMPLATE.read_text() == chart.crd_template(CRD.read_text()), (
        "the chart's CRD template is stale: run 'python hack/chart.py render'"
    )
    assert not (chart.CHART / "crds").exists()
    assert (ROOT / "manifests" / "crd" / chart.CRD_FILE).read_bytes() == CRD.read_bytes()
    rendered = one(objects(render(cluster)), "CustomResourceDefinition")
    metadata = rendered.pop("metadata")
    source = yaml.safe_load(CRD.read_text())
    assert metadata.pop("annotations") == {"helm.sh/resource-policy": "keep"}
    assert metadata.pop("labels")["app.kubernetes.io/managed-by"] == "Helm"
    assert {**rendered, "metadata": metadata} == source


def test_the_kustomize_base_is_the_chart_rendered(cluster: Cluster) -> None:
    helm_path = cluster.bin_dir / "helm"
    diffs = chart.stale(chart.manifests_files(helm_path))
    assert not diffs, "manifests/ is stale: run 'python hack/chart.py render'\n" + "".join(diffs)
    kustomized = objects(cluster.kubectl("kustomize", str(ROOT / "manifests")).stdout)
    rendered = [
        *objects(chart.strip_helm_labels(chart.helm_template(helm_path, values=chart.BASE_VALUES))),
        yaml.safe_load(CRD.read_text()),  # the base's CRD is crds/' file
    ]

    def key(item: dict[str, Any]) -> tuple[str, str, str]:
        meta = item["metadata"]
        return (item["kind"], meta.get("namespace", ""), meta["name"])

    assert sorted(kustomized, key=key) == sorted(rendered, key=key)
    assert not any("samples" in json.dumps(item) for item in kustomized)


def _dry_run(cluster: Cluster, *args: str, stdin: str | None = None) -> list[str]:
    done = cluster.kubectl("apply", "--dry-run=server", *args, input=stdin)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines and all("(server dry run)" in line for line in lines), done.stdout
    return lines


def test_the_api_server_accepts_the_chart_and_the_base(
    cluster: Cluster, destination_crd: str
) -> None:
    suffix = secrets.token_hex(3)
    release_namespace, team = f"chart-dry-{suffix}", f"chart-team-{suffix}"
    for name in (release_namespace, team):
        cluster.kubectl("create", "namespace", name)
    try:
        defaults = render(cluster, namespace=release_namespace)
        assert len(_dry_run(cluster, "-f", "-", stdin=defaults)) == len(objects(defaults))
        everything = render(
            cluster,
            {"namespaces": [team], "networkPolicy": {"enabled": True}},
            namespace=release_namespace,
        )
        lines = _dry_run(cluster, "-f", "-", stdin=everything)
        assert len(lines) == len(objects(everything))
        assert any(line.startswith("networkpolicy") for line in lines)
        assert any(line.startswith("role.rbac") for line in lines)
        # the base's own namespace must exist for its namespaced objects to dry-run
        cluster.kubectl(
            "apply", "--server-side", "-f", str(ROOT / "manifests" / "rbac" / "namespace.yaml")
        )
        lines = _dry_run(cluster, "-k", str(ROOT / "manifests"))
        assert len(lines) == len(
            objects(cluster.kubectl("kustomize", str(ROOT / "manifests")).stdout)
        )
    finally:
        for name in (release_namespace, team):
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_the_flow_schema_is_optional_and_classifies_the_operators_requests(
    cluster: Cluster, tmp_path: Path
) -> None:
    assert not any(
        item["apiVersion"].startswith("flowcontrol.") for item in objects(render(cluster))
    )
    suffix = secrets.token_hex(3)
    release_namespace = f"chart-apf-{suffix}"
    text = render(
        cluster,
        {"flowSchema": {"enabled": True}},
        release=f"apf-{suffix}",
        namespace=release_namespace,
    )
    rendered = objects(text)
    schema, level = one(rendered, "FlowSchema"), one(rendered, "PriorityLevelConfiguration")
    service_account = one(rendered, "ServiceAccount")["metadata"]["name"]
    assert schema["spec"]["priorityLevelConfiguration"]["name"] == level["metadata"]["name"]
    subject = schema["spec"]["rules"][0]["subjects"][0]["serviceAccount"]
    assert subject == {"name": service_account, "namespace": release_namespace}
    # before the built-in service-accounts schema (9000), which would otherwise match first
    assert schema["spec"]["matchingPrecedence"] < 9000
    cluster.kubectl("create", "namespace", release_namespace)
    apf = [item for item in rendered if item["apiVersion"].startswith("flowcontrol.")]
    try:
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(apf))
        cluster.kubectl("create", "serviceaccount", service_account, "-n", release_namespace)
        stored = json.loads(
            cluster.kubectl("get", "flowschema", schema["metadata"]["name"], "-o", "json").stdout
        )
        # the API server found the level (not Dangling) ...
        _wait(
            "the FlowSchema's Dangling condition",
            lambda: any(
                c["type"] == "Dangling" and c["status"] == "False"
                for c in json.loads(
                    cluster.kubectl(
                        "get", "flowschema", schema["metadata"]["name"], "-o", "json"
                    ).stdout
                )
                .get("status", {})
                .get("conditions", [])
            ),
        )
        # ... and a request of the operator's ServiceAccount is classified by this schema
        kubeconfig = cluster.token_kubeconfig(release_namespace, service_account, out_dir=tmp_path)
        config = yaml.safe_load(kubeconfig.read_text())
        token = config["users"][0]["user"]["token"]
        request = urllib.request.Request(
            f"{cluster.server}/api/v1/namespaces/{release_namespace}/secrets",
            headers={"Authorization": f"Bearer {token}"},
        )
        context = ssl.create_default_context(cafile=str(cluster.plane.pki / "ca.crt"))
        try:
            urllib.request.urlopen(request, context=context, timeout=10)
        except urllib.error.HTTPError as err:  # 403: no RBAC here, but classified all the same
            headers = err.headers
        else:
            raise AssertionError("the ServiceAccount was allowed to list Secrets")
        assert headers["X-Kubernetes-PF-FlowSchema-UID"] == stored["metadata"]["uid"]
    finally:
        cluster.kubectl("delete", "-f", "-", "--wait=false", input=yaml.safe_dump_all(apf))
        cluster.kubectl("delete", "namespace", release_namespace, "--wait=false", check=False)


def test_optional_monitoring_objects_select_the_metrics_service(cluster: Cluster) -> None:
    rendered = objects(
        render(cluster, {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}})
    )
    service, monitor = one(rendered, "Service"), one(rendered, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {
        "matchNames": [service["metadata"]["namespace"]]
    }
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert service["spec"]["ports"][0]["name"] == "metrics"
    rules = one(rendered, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert len(rules) == 8  # each one: tests/install/test_alerts.py
    for rule in rules:
        promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error
        assert f'job="{service["metadata"]["name"]}"' in rule["expr"]
    # the per-Destination series keep the Destination's namespace label
    assert [e["honorLabels"] for e in monitor["spec"]["endpoints"]] == [True]


# --- a real install, and the operator under its identity --------------------------------------


@dataclass
class Operator:
    """`destination-operator run` with a release's environment, as its ServiceAccount."""

    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = Path(sys.executable).parent / "destination-operator"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(binary), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=die_with_parent,
            )

    def stop(self) -> None:
        stop_child(self.proc, timeout=15)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Release:
    """A `helm install` with namespaces, its operator, and the Destinations it wrote."""

    name: str
    namespace: str
    service_account: str
    watched: list[str]
    ignored: str
    operator: Operator
    kubeconfig: Path
    health_port: int
    metrics_port: int
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    uninstalled: bool = False

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def _wait(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def _scenario(cluster: Cluster, release: Release, s3: S3Server, silent_port: int) -> None:
    """Destinations in every state the operator reports, in the watched namespaces, and one
    in a namespace it does not watch."""
    a, b = release.watched
    closed = free_port()  # nothing listens there: EndpointUnreachable, retried
    legacy = s3_destination("legacy", s3, secret="s3")
    legacy["metadata"]["finalizers"] = [LEGACY_FINALIZER]
    apply(
        cluster,
        a,
        s3_secret(s3),
        s3_destination("verified", s3, secret="s3"),
        legacy,
        s3_destination("retrying", s3, secret="s3", endpoint=f"http://127.0.0.1:{closed}"),
        s3_destination("stalled", s3, secret="no-such-secret"),
        s3_destination("disabled", s3, secret="s3", enabled=False),
        s3_destination("archived", s3, secret="s3", archived=True),
    )
    apply(cluster, b, s3_secret(s3), s3_destination("verified-b", s3, secret="s3"))
    apply(cluster, release.ignored, s3_secret(s3), s3_destination("ignored", s3, secret="s3"))
    pending = s3_destination("pending", s3, secret="s3", endpoint=f"http://127.0.0.1:{silent_port}")
    pending["spec"]["verification"]["timeout"] = "2m"
    apply(cluster, a, pending)

    found = release.objects
    found["pending"] = wait_for(cluster, a, "pending", "Reconciling", "True", reason="Verifying")
    found["verified"] = wait_for(cluster, a, "verified", "Ready", "True")
    found["verified-b"] = wait_for(cluster, b, "verified-b", "Ready", "True")
    found["retrying"] = wait_for(cluster, a, "retrying", "Reconciling", "True", reason="Retrying")
    found["stalled"] = wait_for(cluster, a, "stalled", "Stalled", "True", reason="SecretNotFound")
    found["disabled"] = wait_for(cluster, a, "disabled", "Verified", "Unknown", reason="Disabled")
    found["archived"] = wait_for(cluster, a, "archived", "Archived", "True")
    wait_for(cluster, a, "legacy", "Ready", "True")
    _wait(
        "the first releases' finalizer to go",
        lambda: not get(cluster, a, "legacy")["metadata"].get("finalizers"),
    )
    found["legacy"] = get(cluster, a, "legacy")
    # A result about a replaced object, written by the operator's own code as the operator:
    # refused by the uid test, then dropped after a GET (the race `get` is granted for).
    done = patch_status_as(
        str(release.kubeconfig), a, "verified", "uid-of-a-deleted-one", {"target": "stale"}
    )
    assert done.returncode == 0 and done.stdout.strip() == "null", done.stdout + done.stderr
    found["ignored"] = get(cluster, release.ignored, "ignored")


@pytest.fixture(scope="module")
def release(
    cluster: Cluster, destination_crd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    suffix = secrets.token_hex(3)
    name = f"chart-{suffix}"
    folder = tmp_path_factory.mktemp("chart-release")
    watched = [f"chart-a-{suffix}", f"chart-b-{suffix}"]
    ignored = f"chart-c-{suffix}"
    namespace = f"chart-operator-{suffix}"
    for team in (*watched, ignored):
        cluster.kubectl("create", "namespace", team)
    health_port, metrics_port = free_port(), free_port()
    values = {
        # no node here: the operator runs out of cluster, as the release's ServiceAccount
        "replicas": 0,
        "crds": {"install": False},  # the session's CRD, shared with the other tests
        "namespaces": watched,
        "allowPrivateEndpoints": True,  # the S3 server is on loopback
        "secretGraceSeconds": 2,
        "logLevel": "DEBUG",
        "logFormat": "json",
        "health": {"port": health_port},
        "metrics": {"port": metrics_port, "service": {"port": 9090}},
    }
    done = cluster.helm(
        "install",
        name,
        str(chart.CHART),
        "-n",
        namespace,
        "--create-namespace",
        "--values",
        "-",
        input=yaml.safe_dump(values),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    deployment = json.loads(
        cluster.kubectl(
            "get", "deployment", f"{name}-destination-operator", "-n", namespace, "-o", "json"
        ).stdout
    )
    service_account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = cluster.token_kubeconfig(namespace, service_account, out_dir=folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESTINATION_OPERATOR_")}
    env |= container_env(deployment) | {"KUBECONFIG": str(kubeconfig)}
    # out of a pod there is no ServiceAccount mount to tell the Lease's namespace
    env["DESTINATION_OPERATOR_LEADER_ELECTION_NAMESPACE"] = namespace
    operator = Operator(env, folder / "operator.log")
    found = Release(
        name=name,
        namespace=namespace,
        service_account=service_account,
        watched=watched,
        ignored=ignored,
        operator=operator,
        kubeconfig=kubeconfig,
        health_port=health_port,
        metrics_port=metrics_port,
    )
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections complete and are never answered: a probe that hangs
    try:
        with S3Server(folder / "s3") as s3:
            operator.start()
            _scenario(cluster, found, s3, silent.getsockname()[1])
            yield found
    finally:
        operator.stop()
        silent.close()
        if not found.uninstalled:
            cluster.helm("uninstall", name, "-n", namespace, check=False)
        for team in (*watched, ignored, namespace):
            cluster.kubectl("delete", "namespace", team, "--wait=false", check=False)


def test_the_release_verifies_destinations_only_in_the_watched_namespaces(
    cluster: Cluster, release: Release
) -> None:
    assert release.objects["verified-b"]["status"]["conditions"][0]["reason"] == "Ready"
    assert "status" not in release.objects["ignored"], (
        "a namespace not watched was written (is another operator running?)"
    )
    log = release.operator.text()
    assert "Not enough permissions" not in log and "Forbidden" not in log, log[-3000:]
    with urllib.request.urlopen(f"http://127.0.0.1:{release.health_port}/healthz") as answer:
        assert answer.status == 200
    json_lines = [line for line in log.splitlines() if line.startswith("{")]
    assert json_lines, "logFormat=json did not reach the operator"


def test_the_prometheus_rule_names_metrics_the_operator_serves(
    cluster: Cluster, release: Release
) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{release.metrics_port}/metrics") as answer:
        served = answer.read().decode()
    rules = one(objects(render(cluster, {"prometheusRule": {"enabled": True}})), "PrometheusRule")
    named = {
        name
        for rule in rules["spec"]["groups"][0]["rules"]
        for name in re.findall(r"\b(destination_operator_[a-z_]+)\b", rule["expr"])
    }
    # with samples here; the credentials' expiry only for credentials whose expiry can be
    # read (none here), and the others only for a state this release's Destinations lack
    sampled = {
        "destination_operator_probes_total",
        "destination_operator_destinations",
        "destination_operator_destinations_synced",
        "destination_operator_destination_condition",
        "destination_operator_destination_verified_reason",
        "destination_operator_destination_next_verification_timestamp_seconds",
        "destination_operator_leader",
    }
    assert named == sampled | {
        "destination_operator_destination_credentials_expiry_timestamp_seconds"
    }
    for name in named:
        assert re.search(rf"^# TYPE {name} ", served, re.MULTILINE), f"{name} not defined"
    for name in sampled:
        assert re.search(rf"^{name}(\{{| )", served, re.MULTILINE), f"{name} not served"
    assert re.search(r'^destination_operator_probes_total\{.*reason="ProbeSucceeded"', served, re.M)


def argocd_health_script() -> str:
    """The Lua of docs/install.md's argocd-cm block, exactly as users copy it."""
    text = INSTALL_DOC.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    configs = [yaml.safe_load(block) for block in blocks if ARGOCD_KEY in block]
    assert len(configs) == 1, "docs/install.md must show the argocd-cm block once"
    script: str = configs[0]["data"][ARGOCD_KEY]
    return script


def argocd_health(script: str, body: dict[str, Any]) -> dict[str, str]:
    """Run the check as Argo CD does: Lua 5.1 (gopher-lua), the object as global `obj`."""
    lua = LuaRuntime()
    lua.globals().obj = lua.table_from(json.loads(json.dumps(body)), recursive=True)
    result = lua.execute(script)
    return {"status": str(result["status"]), "message": str(result["message"] or "")}


# (Argo CD, kstatus) per object; two rows differ on purpose (docs/install.md says why)
EXPECTED = {
    "verified": ("Healthy", "Current"),
    "verified-b": ("Healthy", "Current"),
    "legacy": ("Healthy", "Current"),
    "archived": ("Healthy", "Current"),
    "pending": ("Progressing", "InProgress"),
    "retrying": ("Progressing", "InProgress"),
    "stalled": ("Degraded", "Failed"),
    "disabled": ("Suspended", "Current"),
    "ignored": ("Progressing", "Current"),
    "spec-not-observed": ("Progressing", "InProgress"),
}
AGREE = {"Healthy": "Current", "Progressing": "InProgress", "Degraded": "Failed"}


def test_the_argocd_health_check_on_real_destinations_agrees_with_kstatus(
    cluster: Cluster, release: Release
) -> None:
    script = argocd_health_script()
    cases = dict(release.objects)
    # the verified object as the API server returns it right after a spec change
    changed = json.loads(json.dumps(release.objects["verified"]))
    changed["metadata"]["generation"] += 1
    cases["spec-not-observed"] = changed
    assert set(cases) == set(EXPECTED)
    names = sorted(cases)
    verdicts = kstatus.compute([cases[name] for name in names], cluster.bin_dir)
    seen = {}
    for name, verdict in zip(names, verdicts, strict=True):
        health = argocd_health(script, cases[name])
        seen[name] = (health["status"], verdict)
        assert health["message"], name
        if health["status"] in AGREE and name != "ignored":
            assert AGREE[health["status"]] == verdict, (name, health, verdict)
    assert seen == EXPECTED
    assert "EndpointUnreachable" in argocd_health(script, cases["retrying"])["message"]
    assert "SecretNotFound" in argocd_health(script, cases["stalled"])["message"]


def _grants(role: dict[str, Any], scope: str) -> set[tuple[str, str, str, str]]:
    return {
        (scope, group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_every_namespaced_permission_is_used_and_none_is_missing(
    cluster: Cluster, release: Release
) -> None:
    """Grants compared as (scope, group, resource, verb), scope being "cluster" for the
    ClusterRole and "namespaced" for the Roles (leader election's among them: the operator
    read and took the chart's Lease, and never needed to create one); and each watched
    namespace was watched."""
    fullname = f"{release.name}-destination-operator"
    cluster_role = json.loads(cluster.kubectl("get", "clusterrole", fullname, "-o", "json").stdout)
    granted = _grants(cluster_role, "cluster")
    assert not any("secrets" in rule["resources"] for rule in cluster_role["rules"])
    for team in release.watched:
        role = json.loads(cluster.kubectl("get", "role", fullname, "-n", team, "-o", "json").stdout)
        granted |= _grants(role, "namespaced")
    election = json.loads(
        cluster.kubectl(
            "get", "role", f"{fullname}-leader-election", "-n", release.namespace, "-o", "json"
        ).stdout
    )
    assert _grants(election, "namespaced") == {
        ("namespaced", "coordination.k8s.io", "leases", "get"),
        ("namespaced", "coordination.k8s.io", "leases", "update"),
    }
    granted |= _grants(election, "namespaced")
    lease = json.loads(
        cluster.kubectl(
            "get", "lease", "destination-operator", "-n", release.namespace, "-o", "json"
        ).stdout
    )
    assert lease["spec"]["holderIdentity"], "the operator did not take the chart's Lease"
    requests: dict[str, dict[str, Any]] = {}
    for entry in audit_events(cluster.plane.audit_log):
        if entry.get("user", {}).get("username") == release.user:
            requests.setdefault(entry["auditID"], entry)
    assert requests, f"the audit log holds no request of {release.user}"
    assert any(e["verb"] in {"get", "list", "watch"} for e in requests.values()), (
        "the audit log holds no reads: the audit policy of hack/controlplane.py must record "
        "ServiceAccounts' get, list and watch, or no read permission can be shown to be used"
    )
    used: set[tuple[str, str, str, str]] = set()
    watched: set[tuple[str, str]] = set()
    for entry in requests.values():
        decision = (entry.get("annotations") or {}).get("authorization.k8s.io/decision")
        assert decision == "allow", f"RBAC refused {entry.get('requestURI')}"
        ref = entry.get("objectRef") or {}
        if not ref.get("resource"):
            continue  # discovery
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        # a namespace's objectRef names it as its own namespace too
        namespaced = bool(ref.get("namespace")) and ref["resource"] != "namespaces"
        scope = "namespaced" if namespaced else "cluster"
        used.add((scope, ref.get("apiGroup", ""), resource, entry["verb"]))
        if namespaced and entry["verb"] == "watch":
            watched.add((ref["namespace"], resource))
    assert not granted - used, f"granted, never used: {sorted(granted - used)}"
    for team in release.watched:
        assert {(team, "destinations"), (team, "secrets")} <= watched, team
    assert not any(namespace == release.ignored for namespace, _ in watched)


def test_uninstall_keeps_the_crd_and_every_destination_with_its_status(
    cluster: Cluster, release: Release
) -> None:
    release.operator.stop()  # its permissions go with the release
    a = release.watched[0]
    before = {name: get(cluster, a, name)["status"] for name in ("verified", "stalled")}
    done = cluster.helm("uninstall", release.name, "-n", release.namespace, "--wait", check=False)
    assert done.returncode == 0, done.stderr
    release.uninstalled = True
    fullname = f"{release.name}-destination-operator"
    for kind, name, namespace in (
        ("deployment", fullname, release.namespace),
        ("serviceaccount", fullname, release.namespace),
        ("service", f"{fullname}-metrics", release.namespace),
        ("clusterrole", fullname, None),
        ("role", fullname, a),
        ("role", f"{fullname}-leader-election", release.namespace),
        ("lease", "destination-operator", release.namespace),
    ):
        scoped = ["-n", namespace] if namespace else []
        gone = cluster.kubectl("get", kind, name, *scoped, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr, (kind, gone.stdout)
    cluster.kubectl("get", "crd", "destinations.destinations.io")
    for name, status in before.items():
        after = get(cluster, a, name)
        assert after["status"] == status
        assert not after["metadata"].get("finalizers")
    assert condition(get(cluster, a, "verified"), "Ready")["status"] == "True"
    # no finalizer: deleting a Destination does not wait for the operator that is gone
    cluster.kubectl("delete", "dst", "archived", "-n", a, "--timeout=20s")
    assert cluster.kubectl("get", "dst", "archived", "-n", a, check=False).returncode != 0
