"""Reading the Secret a Destination names, in the Destination's own namespace only."""

from __future__ import annotations

import base64
from typing import NamedTuple

from kubernetes import client

from .client import api_client, call


class SecretUnreadable(Exception):
    """The Secret exists, or may, but the operator may not read it."""


class StoredSecret(NamedTuple):
    """A Secret as read: its uid (the key of its fingerprint) and its decoded data."""

    uid: str
    data: dict[str, bytes]


def decode(data: dict[str, str] | None) -> dict[str, bytes]:
    """A Secret's `data` (base64 values) as bytes."""
    return {key: base64.b64decode(value) for key, value in (data or {}).items()}


def read_secret(namespace: str, name: str) -> StoredSecret | None:
    """The Secret's uid and data, decoded; None when there is no such Secret.

    The namespace is always the Destination's own: cross-namespace references
    cannot be expressed, so they cannot be read. Raises `SecretUnreadable` when
    the operator may not read it, `ApiUnavailable` when the API server should
    be asked again later.
    """
    core = client.CoreV1Api(api_client())
    try:
        secret = call(core.read_namespaced_secret, name, namespace)
    except client.ApiException as err:
        if err.status == 404:
            return None
        if err.status == 403:
            raise SecretUnreadable(
                f"the operator may not read Secret {name!r} (forbidden: it needs get on "
                "secrets in this namespace)"
            ) from None
        raise SecretUnreadable(f"reading Secret {name!r} failed with HTTP {err.status}") from None
    return StoredSecret(uid=str(secret.metadata.uid or ""), data=decode(secret.data))
