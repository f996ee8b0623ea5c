"""Reading the Secret a Destination names, in the Destination's own namespace only."""

from __future__ import annotations

import base64
import json
import re
from typing import NamedTuple

from kubernetes import client

from .client import api_client, call


class SecretUnreadable(Exception):
    """The Secret exists, or may, but reading it failed with an answer a retry may change."""


class SecretForbidden(SecretUnreadable):
    """The API server refused the read: RBAC (403) or the operator's own credentials (401)."""


# The user in a 403's message: `... User "system:serviceaccount:ns:sa" cannot get ...`.
_FORBIDDEN_USER = re.compile(r'User "([^"]{1,253})" cannot')


def _forbidden_message(namespace: str, name: str, status: int, body: object) -> str:
    """What the operator lacks, in words that say which grant fixes it; no Secret data."""
    if status == 401:
        return (
            f"the API server refused the operator's own credentials (HTTP 401) when reading "
            f"Secret {name!r}: check the operator's ServiceAccount token"
        )
    who = "the operator"
    try:
        found = _FORBIDDEN_USER.search(str(json.loads(str(body)).get("message", "")))
    except (ValueError, AttributeError):
        found = None
    if found:
        who = found.group(1)
    return (
        f"RBAC does not let {who} read Secret {name!r}: it needs get on secrets "
        f"(core API group) in namespace {namespace!r}; grant it with a Role and RoleBinding "
        "there, or install with that namespace in the chart's namespaces value"
    )


class StoredSecret(NamedTuple):
    """A Secret as read: its uid (the key of its fingerprint), its decoded data and the
    resourceVersion it was read at."""

    uid: str
    data: dict[str, bytes]
    version: str = ""


def decode(data: dict[str, str] | None) -> dict[str, bytes]:
    """A Secret's `data` (base64 values) as bytes."""
    return {key: base64.b64decode(value) for key, value in (data or {}).items()}


def read_secret(namespace: str, name: str) -> StoredSecret | None:
    """The Secret's uid and data, decoded; None when there is no such Secret.

    The namespace is always the Destination's own: cross-namespace references
    cannot be expressed, so they cannot be read. Raises `SecretForbidden` when
    the operator may not read it, `SecretUnreadable` for another refusal, and
    `ApiUnavailable` when the API server should be asked again later.
    """
    core = client.CoreV1Api(api_client())
    try:
        secret = call(core.read_namespaced_secret, name, namespace)
    except client.ApiException as err:
        if err.status == 404:
            return None
        if err.status in (401, 403):
            message = _forbidden_message(namespace, name, err.status, err.body)
            raise SecretForbidden(message) from None
        raise SecretUnreadable(f"reading Secret {name!r} failed with HTTP {err.status}") from None
    return StoredSecret(
        uid=str(secret.metadata.uid or ""),
        data=decode(secret.data),
        version=str(secret.metadata.resource_version or ""),
    )
