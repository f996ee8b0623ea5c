"""The harness itself: a real API server that authenticates, authorizes and runs controllers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from kubernetes import client

from harness import Cluster

pytestmark = pytest.mark.cluster

WIDGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.harness.example.com
spec:
  group: harness.example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer, minimum: 1}
"""


def test_api_server_is_healthy_and_reports_v1_34(cluster: Cluster) -> None:
    version = client.VersionApi(cluster.api_client()).get_code()
    assert version.major == "1"
    assert version.minor == "34"
    assert version.git_version.startswith("v1.34.")
    readyz = cluster.kubectl("get", "--raw", "/readyz")
    assert readyz.stdout.strip() == "ok"


def test_kubectl_reports_the_real_release(cluster: Cluster) -> None:
    out = cluster.kubectl("version", "--client").stdout
    assert "Client Version: v1.34." in out


def test_a_crd_installs_and_becomes_established(cluster: Cluster, tmp_path: Path) -> None:
    path = tmp_path / "widget-crd.yaml"
    path.write_text(WIDGET_CRD)
    name = cluster.apply_crd(path)
    status = cluster.kubectl(
        "get", "crd", name, "-o", 'jsonpath={.status.conditions[?(@.type=="Established")].status}'
    )
    assert status.stdout == "True"
    bad = cluster.kubectl(
        "create",
        "--dry-run=server",
        "-f",
        "-",
        input="apiVersion: harness.example.com/v1\nkind: Widget\n"
        "metadata: {name: w, namespace: default}\nspec: {size: 0}\n",
        check=False,
    )
    assert bad.returncode != 0
    assert "spec.size" in bad.stderr


def test_the_destination_crd_is_established(cluster: Cluster, destination_crd: str) -> None:
    assert destination_crd == "destinations.destinations.io"
    names = cluster.kubectl("api-resources", "--api-group=destinations.io", "-o", "name")
    assert "destinations.destinations.io" in names.stdout


def test_service_account_token_is_denied_until_bound(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    unbound = cluster.service_account_kubeconfig(namespace, "nobody", out_dir=tmp_path)
    denied = cluster.kubectl(
        "get", "configmaps", "-n", namespace, kubeconfig=str(unbound), check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert f"system:serviceaccount:{namespace}:nobody" in denied.stderr

    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
    bound = cluster.service_account_kubeconfig(namespace, "reader", rules=rules, out_dir=tmp_path)
    allowed = cluster.kubectl("get", "configmaps", "-n", namespace, kubeconfig=str(bound))
    assert "kube-root-ca.crt" in allowed.stdout  # published by the controller manager
    still_denied = cluster.kubectl(
        "get", "secrets", "-n", namespace, kubeconfig=str(bound), check=False
    )
    assert still_denied.returncode != 0


def test_deleting_a_namespace_completes(cluster: Cluster) -> None:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespace({"metadata": {"name": "harness-delete-me"}})
    core.create_namespaced_config_map(
        "harness-delete-me", {"metadata": {"name": "cm"}, "data": {"a": "b"}}
    )
    core.delete_namespace("harness-delete-me")
    cluster.wait_namespace_gone("harness-delete-me")


def test_service_account_tokens_controller_runs(cluster: Cluster, namespace: str) -> None:
    """The default ServiceAccount appears in a new namespace: the controllers run."""
    core = client.CoreV1Api(cluster.api_client())
    cluster.kubectl(
        "wait", "--for=create", "serviceaccount/default", "-n", namespace, "--timeout=30s"
    )
    assert core.read_namespaced_service_account("default", namespace).metadata.name == "default"


def test_helm_assumes_the_real_kubernetes_release(cluster: Cluster, tmp_path: Path) -> None:
    """Built with the ldflags of helm's Makefile, `helm template` assumes v1.34, not v1.20."""
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n"
        "data: {kube: '{{ .Capabilities.KubeVersion.Version }}'}\n"
    )
    helm = subprocess.run(
        [str(cluster.bin_dir / "helm"), "template", str(chart)], capture_output=True, text=True
    )
    assert helm.returncode == 0, helm.stderr
    assert "kube: 'v1.34.0'" in helm.stdout
    version = subprocess.run(
        [str(cluster.bin_dir / "helm"), "version", "--short"], capture_output=True, text=True
    )
    assert version.stdout.startswith("v3.19.")


def test_rbac_manifests_apply(cluster: Cluster) -> None:
    """`kubectl apply -k manifests/rbac`, as the README says, is accepted by the API server."""
    root = Path(__file__).resolve().parents[2]
    done = cluster.kubectl("apply", "--server-side", "-k", str(root / "manifests" / "rbac"))
    for kind in (
        "namespace",
        "serviceaccount",
        "clusterrole.rbac.authorization.k8s.io",
        "clusterrolebinding.rbac.authorization.k8s.io",
    ):
        assert f"{kind}/destination-operator" in done.stdout
