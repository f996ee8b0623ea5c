"""Whether a namespace is being deleted: then its Destinations need no more status.

When a namespace is deleted, Kubernetes removes its objects in no set order;
a Secret that goes before the Destinations naming it would make the operator
write `SecretNotFound` to every one of them (and post events the terminating
namespace refuses). The engine asks here first, on that path only.
"""

from __future__ import annotations

from kubernetes import client

from .client import api_client, call


def terminating(name: str) -> bool:
    """True when the namespace is being deleted or is gone; raises `ApiUnavailable`."""
    try:
        namespace = call(client.CoreV1Api(api_client()).read_namespace, name)
    except client.ApiException as err:
        if err.status == 404:
            return True
        if err.status == 403:
            return False  # the operator may not look: write as before
        raise
    return namespace.metadata.deletion_timestamp is not None
