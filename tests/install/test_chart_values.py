"""The chart's values beyond the operator's settings, rendered by helm: the CRD's lifecycle
(`crds.install`, `crds.keep`), labels and annotations of every object, the pod's extras
(arguments, environment, volumes, spread), the ServiceMonitor's, and the schema's open top
level; the API server accepts them all (server dry run).

That `helm upgrade` upgrades the CRD and `helm uninstall` keeps it, on a real API server:
tests/cluster/test_upgrade_uninstall.py."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

import chart
from harness import Cluster
from install.rendered import objects, one

pytestmark = pytest.mark.install

CRD_KIND = "CustomResourceDefinition"
SELECTOR = {"app.kubernetes.io/name": "destination-operator", "app.kubernetes.io/instance": "r"}
SPREAD = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone"}
EXTRAS: dict[str, Any] = {
    "commonLabels": {"team": "storage", "cost-center": "42"},
    "deploymentAnnotations": {"reloader.stakater.com/auto": "true"},
    "revisionHistoryLimit": 7,
    "extraArgs": ["--log-level", "DEBUG"],
    "envFrom": [{"secretRef": {"name": "proxy-settings"}, "prefix": "HTTPS_"}],
    "extraVolumes": [{"name": "ca", "configMap": {"name": "private-ca"}}],
    "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/private-ca", "readOnly": True}],
    "topologySpreadConstraints": [
        {**SPREAD, "whenUnsatisfiable": "ScheduleAnyway"},
        {
            "maxSkew": 2,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"own": "selector"}},
        },
    ],
    "podLabels": {"team": "pod-wins"},
}


@pytest.fixture(scope="module")
def helm() -> Path:
    return chart.helm_binary()


def render(helm: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return objects(chart.helm_template(helm, release="r", values=values))


def test_crds_install_and_keep_decide_the_crd_and_its_annotation(helm: Path) -> None:
    crd = one(render(helm), CRD_KIND)
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == "r"
    removable = one(render(helm, {"crds": {"keep": False}}), CRD_KIND)
    assert "annotations" not in removable["metadata"]
    assert removable["spec"] == crd["spec"]
    without = render(helm, {"crds": {"install": False}})
    assert CRD_KIND not in {item["kind"] for item in without}


def test_common_labels_are_on_every_object_and_the_pods(helm: Path) -> None:
    everything = {
        **EXTRAS,
        "createNamespace": True,
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboards": {"enabled": True},
        "flowSchema": {"enabled": True},
        "networkPolicy": {"enabled": True},
        "objectLevelIdentity": True,
        "replicas": 2,
    }
    rendered = render(helm, everything)
    assert len({item["kind"] for item in rendered}) >= 18
    for item in rendered:
        labels = item["metadata"]["labels"]
        assert labels["cost-center"] == "42", item["kind"]
        assert labels["app.kubernetes.io/instance"] == "r", item["kind"]
    pod = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    # podLabels win over commonLabels; the selector's labels stay
    assert pod == {**SELECTOR, "team": "pod-wins", "cost-center": "42"}


def test_the_pods_extras_reach_the_deployment(helm: Path) -> None:
    deployment = one(render(helm, EXTRAS), "Deployment")
    assert deployment["metadata"]["annotations"] == EXTRAS["deploymentAnnotations"]
    assert "reloader.stakater.com/auto" not in (
        deployment["spec"]["template"]["metadata"].get("annotations") or {}
    )
    assert deployment["spec"]["revisionHistoryLimit"] == 7
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["run", "--log-level", "DEBUG"]
    assert container["envFrom"] == EXTRAS["envFrom"]
    assert container["volumeMounts"][-1] == EXTRAS["extraVolumeMounts"][0]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["volumes"][-1] == EXTRAS["extraVolumes"][0]
    # an item without a labelSelector spreads the Deployment's own pods; one with it keeps it
    assert pod["topologySpreadConstraints"] == [
        {**EXTRAS["topologySpreadConstraints"][0], "labelSelector": {"matchLabels": SELECTOR}},
        EXTRAS["topologySpreadConstraints"][1],
    ]
    # with shards, each Deployment spreads its own shard's pods
    sharded = render(
        helm,
        {
            "topologySpreadConstraints": [{**SPREAD, "whenUnsatisfiable": "DoNotSchedule"}],
            "shards": [
                {"name": "a", "destinationSelector": "destinations.io/shard=a"},
                {"name": "b", "destinationSelector": "destinations.io/shard!=a"},
            ],
        },
    )
    for item in (d for d in sharded if d["kind"] == "Deployment"):
        (spread,) = item["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert spread["labelSelector"]["matchLabels"] == item["spec"]["selector"]["matchLabels"]
        assert "destinations.io/shard" in spread["labelSelector"]["matchLabels"]


def test_the_defaults_render_none_of_the_extras(helm: Path) -> None:
    deployment = one(render(helm), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "annotations" not in deployment["metadata"]
    assert deployment["spec"]["revisionHistoryLimit"] == 3
    assert container["args"] == ["run"]
    assert "envFrom" not in container and "topologySpreadConstraints" not in pod
    assert [volume["name"] for volume in pod["volumes"]] == ["tmp"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == SELECTOR


def test_the_service_monitors_values(helm: Path) -> None:
    relabel = [{"action": "replace", "targetLabel": "cluster", "replacement": "eu-1"}]
    drop = [{"action": "drop", "sourceLabels": ["__name__"], "regex": "python_gc_.*"}]
    monitor = one(
        render(
            helm,
            {
                "serviceMonitor": {
                    "enabled": True,
                    "namespace": "monitoring",
                    "interval": "1m",
                    "scrapeTimeout": "20s",
                    "honorLabels": False,
                    "relabelings": relabel,
                    "metricRelabelings": drop,
                }
            },
        ),
        "ServiceMonitor",
    )
    assert monitor["metadata"]["namespace"] == "monitoring"
    # it still scrapes the release's namespace
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [chart.NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "metrics",
        "path": "/metrics",
        "honorLabels": False,
        "interval": "1m",
        "scrapeTimeout": "20s",
        "relabelings": relabel,
        "metricRelabelings": drop,
    }
    default = one(render(helm, {"serviceMonitor": {"enabled": True}}), "ServiceMonitor")
    assert default["metadata"]["namespace"] == chart.NAMESPACE
    (endpoint,) = default["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    assert "relabelings" not in endpoint and "metricRelabelings" not in endpoint


def test_the_top_level_takes_keys_of_other_charts(helm: Path) -> None:
    """A values file shared across charts: `global` and another chart's keys are ignored,
    so the render is the defaults' (a misspelt key of an object the chart owns is refused:
    test_chart.py::test_wrong_values_are_refused_with_a_clear_message)."""
    shared = {"global": {"imageRegistry": "registry.example.com"}, "certManager": {"x": 1}}
    assert render(helm, shared) == render(helm)


def test_the_api_server_accepts_the_extras(cluster: Cluster, destination_crd: str) -> None:
    suffix = secrets.token_hex(3)
    namespace = f"chart-extras-{suffix}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        text = chart.helm_template(
            cluster.bin_dir / "helm",
            namespace=namespace,
            # the session's CRD is not this release's (test_chart.py dry-runs the chart's)
            values={**EXTRAS, "replicas": 2, "crds": {"install": False}},
        )
        # kubectl's field validation is strict: an unknown field fails the apply
        # server-side: objects of the same names that earlier tests left are not warned of
        done = cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-", input=text
        )
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        assert len(lines) == len(objects(text)), done.stdout
        assert all("(server dry run)" in line for line in lines), done.stdout
        assert any(line.startswith("deployment.apps/") for line in lines)
        assert not done.stderr.strip(), done.stderr
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
