"""Reading the Secret a Destination names, in the Destination's own namespace only."""

from __future__ import annotations

import base64
from typing import NamedTuple

from kubernetes import client

from .client import api_client


class SecretUnreadable(Exception):
    """The Secret exists, or may, but the operator may not read it."""


class StoredSecret(NamedTuple):
    """A Secret as read: its uid (the key of its fingerprint) and its decoded data."""

    uid: str
    data: dict[str, bytes]


def read_secret(namespace: str, name: str) -> StoredSecret | None:
    """The Secret's uid and data, decoded; None when there is no such Secret.

    The namespace is always the Destination's own: cross-namespace references
    cannot be expressed, so they cannot be read.
    """
    core = client.CoreV1Api(api_client())
    try:
        secret = core.read_namespaced_secret(name, namespace)
    except client.ApiException as err:
        if err.status == 404:
            return None
        if err.status == 403:
            raise SecretUnreadable(
                f"the operator may not read Secret {name!r} (forbidden)"
            ) from None
        raise SecretUnreadable(f"reading Secret {name!r} failed with HTTP {err.status}") from None
    data = {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
    return StoredSecret(uid=str(secret.metadata.uid or ""), data=data)
