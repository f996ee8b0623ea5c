"""Writing a Destination's status: one merge patch to the status subresource.

The patch names the object's uid: the API server refuses it (409) when the
object was deleted and made again under the same name, so a result about the
old object never lands on the new one.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from .client import GROUP, PLURAL, VERSION, api_client, call


class StatusWriteFailed(Exception):
    """The status patch was refused; the message carries the HTTP status only."""


def patch_status(
    namespace: str, name: str, uid: str, status: dict[str, Any]
) -> dict[str, Any] | None:
    """Merge-patch the status of the object with this uid and return it as stored;
    None when it is gone (deleted, or replaced by another object of the same name)."""
    api = client.CustomObjectsApi(api_client())
    body = {"metadata": {"uid": uid}, "status": status}
    try:
        stored: dict[str, Any] = call(
            api.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, PLURAL, name, body
        )
    except client.ApiException as err:
        if err.status in (404, 409) or _uid_refused(err):
            return None
        raise StatusWriteFailed(
            f"status patch of {namespace}/{name} failed: HTTP {err.status}"
        ) from None
    return stored


def _uid_refused(err: client.ApiException) -> bool:
    """A 422 that is about metadata.uid: the name now belongs to another object."""
    return err.status == 422 and "metadata.uid" in str(err.body or "")


def remove_finalizer(namespace: str, name: str, uid: str, finalizers: list[str]) -> None:
    """Set `metadata.finalizers` to `finalizers` (a JSON patch tested against the uid)."""
    api = client.CustomObjectsApi(api_client())
    patch = [
        {"op": "test", "path": "/metadata/uid", "value": uid},
        {"op": "replace", "path": "/metadata/finalizers", "value": finalizers},
    ]
    try:
        call(
            api.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            patch,
        )
    except client.ApiException as err:
        if err.status not in (404, 409, 422):
            raise StatusWriteFailed(
                f"finalizer patch of {namespace}/{name} failed: HTTP {err.status}"
            ) from None
