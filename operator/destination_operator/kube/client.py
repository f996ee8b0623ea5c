"""One Kubernetes API client for the operator's own calls (kopf has its own for watching)."""

from __future__ import annotations

import os
from functools import lru_cache

from kubernetes import client, config

from ..api import GROUP, PLURAL, VERSION

__all__ = ["GROUP", "PLURAL", "VERSION", "api_client"]


@lru_cache(maxsize=1)
def api_client() -> client.ApiClient:
    """In a pod, the ServiceAccount; elsewhere, KUBECONFIG or ~/.kube/config."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
        return client.ApiClient()
    return config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
