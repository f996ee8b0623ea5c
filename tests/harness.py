"""A handle on the test session's control plane: kubectl, API clients, RBAC-scoped identities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from controlplane import ControlPlane, kubeconfig_yaml


def patch_status_as(
    kubeconfig: str, namespace: str, name: str, uid: str, status: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """The operator's own status writer (`kube.status.patch_status`), run in a process of
    its own under `kubeconfig`'s identity; its stdout is the JSON of what it returned."""
    script = (
        "import json, sys\n"
        "from destination_operator.kube.status import patch_status\n"
        "print(json.dumps(patch_status(*sys.argv[1:4], json.load(sys.stdin))))\n"
    )
    return subprocess.run(  # the status on stdin: a long one is past the limit of one argument
        [sys.executable, "-c", script, namespace, name, uid],
        input=json.dumps(status),
        env={**os.environ, "KUBECONFIG": kubeconfig},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Cluster:
    """The running control plane as tests see it."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.kubeconfig = str(plane.kubeconfig)
        self.bin_dir = plane.bin_dir
        self.server = plane.server

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster; raise with its stderr when check fails."""
        done = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def helm(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the real helm against this cluster; raise with its stderr when check fails."""
        done = subprocess.run(
            [str(self.bin_dir / "helm"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def api_client(self, kubeconfig: str | None = None) -> client.ApiClient:
        return config.new_client_from_config(config_file=kubeconfig or self.kubeconfig)

    def apply_crd(self, path: Path) -> str:
        """Apply a CRD server-side and wait until the API server says Established."""
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        self.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
        return name

    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        *,
        rules: list[dict[str, Any]] | None = None,
        cluster_rules: list[dict[str, Any]] | None = None,
        out_dir: Path,
    ) -> Path:
        """A ServiceAccount bound to exactly these rules, and a kubeconfig with its token.

        The token is minted through the TokenRequest API, as a kubelet would for a pod.
        """
        api = self.api_client()
        core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        subject = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
        if rules is not None:
            rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
            rbac.create_namespaced_role_binding(
                namespace,
                {
                    "metadata": {"name": name},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": name,
                    },
                    "subjects": subject,
                },
            )
        if cluster_rules is not None:
            cluster_name = f"{namespace}-{name}"
            rbac.create_cluster_role({"metadata": {"name": cluster_name}, "rules": cluster_rules})
            rbac.create_cluster_role_binding(
                {
                    "metadata": {"name": cluster_name},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": cluster_name,
                    },
                    "subjects": subject,
                }
            )
        return self.token_kubeconfig(namespace, name, out_dir=out_dir)

    def token_kubeconfig(self, namespace: str, name: str, *, out_dir: Path) -> Path:
        """A kubeconfig for an existing ServiceAccount, its token minted through TokenRequest."""
        core = client.CoreV1Api(self.api_client())
        token = core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": 3600}}
        ).status.token
        path = out_dir / f"{namespace}-{name}.kubeconfig"
        ca = (self.plane.pki / "ca.crt").read_bytes()
        path.write_text(kubeconfig_yaml(self.server, ca, {"token": token}, name))
        path.chmod(0o600)
        return path

    def wait_namespace_gone(self, name: str, timeout: float = 60) -> None:
        core = client.CoreV1Api(self.api_client())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                core.read_namespace(name)
            except client.ApiException as err:
                if err.status == 404:
                    return
                raise
            time.sleep(0.2)
        raise AssertionError(f"namespace {name} still exists after {timeout}s")
