"""Writing a Destination's status: one merge patch to the status subresource."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from .client import GROUP, PLURAL, VERSION, api_client


class StatusWriteFailed(Exception):
    """The status patch was refused; the message carries the HTTP status only."""


def patch_status(namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any] | None:
    """Merge-patch the status and return the object as stored; None when it is gone."""
    api = client.CustomObjectsApi(api_client())
    try:
        stored: dict[str, Any] = api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}
        )
    except client.ApiException as err:
        if err.status == 404:
            return None
        raise StatusWriteFailed(
            f"status patch of {namespace}/{name} failed: HTTP {err.status}"
        ) from None
    return stored
