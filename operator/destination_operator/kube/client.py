"""One Kubernetes API client for the operator's own calls, and kopf's login to the same place.

`use()` chooses the kubeconfig and context (`--kubeconfig`, `--context`);
`api_client()` and `connection_info()` (kopf's watch connection) both load
from that choice, so the operator never watches one cluster and writes to
another.

Every call goes through `call()`: it carries a request timeout, and it turns
what a busy or restarting API server answers (5xx, 429, a timeout, a refused
or dropped connection) into `ApiUnavailable`, which the engine retries with
backoff and never reports to users as a reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import kopf
import urllib3
from kubernetes import client, config
from kubernetes.config import ConfigException

from ..api import GROUP, PLURAL, VERSION

__all__ = [
    "GROUP",
    "PLURAL",
    "REQUEST_TIMEOUT",
    "VERSION",
    "ApiUnavailable",
    "ConfigException",
    "api_client",
    "call",
    "configuration",
    "connection_info",
    "use",
]

REQUEST_TIMEOUT = (5.0, 20.0)
"""(connect, read) seconds for every call the operator makes."""

POOL_SIZE = 64
"""Connections kept to the API server; more than the engine's workers, so none waits."""

T = TypeVar("T")


class ApiUnavailable(Exception):
    """The API server did not answer usefully (5xx, 429, timeout, connection); retry later."""


@dataclass(frozen=True)
class _Source:
    kubeconfig: str | None = None
    context: str | None = None


_source = _Source()


def use(kubeconfig: str | None = None, context: str | None = None) -> None:
    """Load from this kubeconfig file and context from now on (None: the defaults), for the
    operator's calls and kopf's alike."""
    global _source
    _source = _Source(kubeconfig, context)
    api_client.cache_clear()


def configuration() -> client.Configuration:
    """A fresh client configuration from the chosen source; raises `ConfigException` when
    it cannot be loaded.

    With neither a kubeconfig nor a context chosen: in a pod, the ServiceAccount
    (unless KUBECONFIG is set); elsewhere, KUBECONFIG or ~/.kube/config. With
    either chosen: that kubeconfig (KUBECONFIG or ~/.kube/config when only a
    context is), at that context (its current-context when only a file is).
    """
    result = client.Configuration()
    chosen = _source.kubeconfig or _source.context
    if (
        not chosen
        and os.environ.get("KUBERNETES_SERVICE_HOST")
        and not os.environ.get("KUBECONFIG")
    ):
        config.load_incluster_config(client_configuration=result)
    else:
        config.load_kube_config(
            config_file=_source.kubeconfig or os.environ.get("KUBECONFIG"),
            context=_source.context,
            client_configuration=result,
        )
    return result


@lru_cache(maxsize=1)
def api_client() -> client.ApiClient:
    """The shared client of the operator's own calls (see `configuration`)."""
    result = configuration()
    result.connection_pool_maxsize = POOL_SIZE
    result.retries = 0  # the engine retries, with backoff, per object
    return client.ApiClient(result)


def connection_info() -> kopf.ConnectionInfo:
    """kopf's credentials, loaded afresh (kopf logs in again on a 401): the same server,
    CA and identity as `api_client()`, so watches and writes go to one cluster."""
    loaded = configuration()
    # Reading the key through this method runs the refresh hook of in-cluster and
    # exec-plugin credentials, so a rotated token is read now.
    header = loaded.get_api_key_with_prefix("BearerToken") or loaded.get_api_key_with_prefix(
        "authorization"
    )
    scheme, _, token = (header or "").partition(" ")
    if not token:  # a bare token, no scheme
        scheme, token = "", scheme
    return kopf.ConnectionInfo(
        server=loaded.host,
        ca_path=loaded.ssl_ca_cert,
        insecure=not loaded.verify_ssl,
        username=loaded.username or None,
        password=loaded.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=loaded.cert_file,
        private_key_path=loaded.key_file,
        proxy_url=loaded.proxy,
    )


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
