"""One Kubernetes API client for the operator's own calls (kopf has its own for watching).

Every call goes through `call()`: it carries a request timeout, and it turns
what a busy or restarting API server answers (5xx, 429, a timeout, a refused
or dropped connection) into `ApiUnavailable`, which the engine retries with
backoff and never reports to users as a reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config

from ..api import GROUP, PLURAL, VERSION

__all__ = [
    "GROUP",
    "PLURAL",
    "REQUEST_TIMEOUT",
    "VERSION",
    "ApiUnavailable",
    "api_client",
    "call",
]

REQUEST_TIMEOUT = (5.0, 20.0)
"""(connect, read) seconds for every call the operator makes."""

POOL_SIZE = 64
"""Connections kept to the API server; more than the engine's workers, so none waits."""

T = TypeVar("T")


class ApiUnavailable(Exception):
    """The API server did not answer usefully (5xx, 429, timeout, connection); retry later."""


@lru_cache(maxsize=1)
def api_client() -> client.ApiClient:
    """In a pod, the ServiceAccount; elsewhere, KUBECONFIG or ~/.kube/config."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    configuration.connection_pool_maxsize = POOL_SIZE
    configuration.retries = 0  # the engine retries, with backoff, per object
    return client.ApiClient(configuration)


def call(method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`method(*args, **kwargs)` with the request timeout; raises `ApiUnavailable` for
    answers worth retrying and `client.ApiException` for the others (404, 403, 409, ...)."""
    try:
        return method(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    except client.ApiException as err:
        if err.status is None or err.status == 0 or err.status >= 500 or err.status == 429:
            raise ApiUnavailable(f"HTTP {err.status}: {err.reason}") from None
        raise
    except (urllib3.exceptions.HTTPError, OSError) as err:
        raise ApiUnavailable(f"{type(err).__name__}: {err}") from None
