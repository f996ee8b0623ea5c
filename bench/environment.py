"""Everything a benchmark runs against: control plane, S3 server, CRD, RBAC, namespaces.

All on loopback and all started here: etcd, kube-apiserver and
kube-controller-manager (hack/controlplane.py, with the audit log of
writes), the moto S3 server (hack/s3server.py: signatures and IAM policies
enforced), the Destination CRD, and the operator's ServiceAccount with
exactly the rules of manifests/rbac. The operator and the floor both run
under that ServiceAccount's token.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kubernetes import client

from controlplane import ControlPlane, find_binaries
from harness import Cluster
from logs import OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, AuditLog, S3RequestLog
from objects import GROUP, PLURAL, VERSION, pages, secret
from s3server import KeyPair, S3Server

ROOT = Path(__file__).resolve().parent.parent


class BenchEnvironment:
    """The servers of one benchmark run, and the few things done to them as the admin."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.plane = ControlPlane(work / "cluster", find_binaries(), attached=True)
        self.s3 = S3Server(work / "s3")
        self.cluster: Cluster | None = None
        self.audit: AuditLog | None = None
        self.s3_log: S3RequestLog | None = None
        self.control_plane_start_s = 0.0
        self._tokens = 0

    def start(self) -> None:
        started = time.monotonic()
        self.plane.start()
        self.control_plane_start_s = time.monotonic() - started
        self.cluster = Cluster(self.plane)
        self.s3.start()
        self.cluster.apply_crd(ROOT / "crds" / "destinations.destinations.io.yaml")
        self.cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests" / "rbac"))
        self.audit = AuditLog(self.plane.audit_log)
        self.s3_log = S3RequestLog(self.s3.state / "requests.log")

    def stop(self) -> None:
        self.s3.stop()
        self.plane.stop()

    # --- identities --------------------------------------------------------------------------

    def admin_client(self) -> client.ApiClient:
        assert self.cluster is not None
        return self.cluster.api_client()

    def client_for(self, kubeconfig: Path) -> client.ApiClient:
        """An API client of another identity, from its kubeconfig."""
        assert self.cluster is not None
        return self.cluster.api_client(str(kubeconfig))

    def operator_kubeconfig(self) -> Path:
        """A kubeconfig with a fresh token of the operator's ServiceAccount (valid 1 h)."""
        assert self.cluster is not None
        self._tokens += 1
        folder = self.work / f"token-{self._tokens}"
        folder.mkdir(exist_ok=True)
        return self.cluster.token_kubeconfig(
            OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, out_dir=folder
        )

    # --- namespaces --------------------------------------------------------------------------

    def namespace_with_secret(self, name: str, keys: KeyPair | None = None) -> None:
        """A namespace holding the Secret `s3` (the admin S3 user's key pair by default)."""
        with self.admin_client() as api:
            client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
            client.CoreV1Api(api).create_namespaced_secret(
                name, secret(name, keys or self.s3.users["admin"])
            )

    def replace_secret(self, namespace: str, body: dict[str, Any]) -> None:
        with self.admin_client() as api:
            client.CoreV1Api(api).replace_namespaced_secret(
                body["metadata"]["name"], namespace, body
            )

    def delete_namespace(self, name: str, timeout: float) -> float:
        """Delete a namespace and wait until kube-controller-manager has emptied it."""
        assert self.cluster is not None
        started = time.monotonic()
        with self.admin_client() as api:
            client.CoreV1Api(api).delete_namespace(name)
        self.cluster.wait_namespace_gone(name, timeout=timeout)
        return time.monotonic() - started

    def stored_destinations(self, selector: str = "") -> int:
        """How many Destinations the API server holds, in every namespace: one small list, or
        with a label `selector` every page of the list (the API server counts the rest of a
        list only when it has no selector)."""
        with self.admin_client() as api:
            objects = client.CustomObjectsApi(api)
            if not selector:
                page = objects.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)
                return len(page["items"]) + int(page["metadata"].get("remainingItemCount") or 0)
            listed = pages(
                objects.list_cluster_custom_object, GROUP, VERSION, PLURAL, label_selector=selector
            )
            return sum(len(page["items"]) for page in listed)

    def get_destination(self, namespace: str, name: str) -> Any:
        with self.admin_client() as api:
            return client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
