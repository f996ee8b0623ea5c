"""Writing a Destination's status: one JSON patch to the status subresource.

The patch first tests the object's uid, then sets the whole status (the
operator computes all of it, every time). The API server refuses the patch
when the object was deleted and made again under the same name, so a result
about the old object never lands on the new one. (A merge patch cannot carry
this precondition: the status subresource ignores metadata in it.)
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from .client import GROUP, PLURAL, VERSION, api_client, call

JSON_PATCH = "application/json-patch+json"


class StatusWriteFailed(Exception):
    """The status patch was refused; the message carries the HTTP status only."""


def patch_status(
    namespace: str, name: str, uid: str, status: dict[str, Any]
) -> dict[str, Any] | None:
    """Set the status of the object with this uid and return it as stored; None when it
    is gone (deleted, or replaced by another object of the same name)."""
    body = [
        {"op": "test", "path": "/metadata/uid", "value": uid},
        {"op": "add", "path": "/status", "value": _without_nulls(status)},
    ]
    try:
        stored: dict[str, Any] = call(_json_patch, namespace, name, body, subresource="/status")
    except client.ApiException as err:
        if err.status in (404, 409) or (err.status == 422 and _replaced(namespace, name, uid)):
            return None
        raise StatusWriteFailed(
            f"status patch of {namespace}/{name} failed: HTTP {err.status}"
        ) from None
    return stored


def _json_patch(
    namespace: str,
    name: str,
    operations: list[dict[str, Any]],
    *,
    subresource: str = "",
    _request_timeout: Any = None,
) -> Any:
    """PATCH with a JSON patch (the generated client only sends merge patches here)."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}{subresource}"
    return api_client().call_api(
        path,
        "PATCH",
        header_params={"Content-Type": JSON_PATCH, "Accept": "application/json"},
        body=operations,
        response_type="object",
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _request_timeout=_request_timeout,
    )


def _without_nulls(status: dict[str, Any]) -> dict[str, Any]:
    """The status to store: a None field is one the status does not have."""
    return {key: value for key, value in status.items() if value is not None}


def _replaced(namespace: str, name: str, uid: str) -> bool:
    """Is the name gone, or taken by another object? (A failed JSON-patch test says only
    422 "Invalid", with no detail, so ask.)"""
    api = client.CustomObjectsApi(api_client())
    try:
        current = call(api.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
    except client.ApiException as err:
        return bool(err.status == 404)
    return bool(current.get("metadata", {}).get("uid") != uid)


def remove_finalizer(namespace: str, name: str, uid: str, finalizers: list[str]) -> None:
    """Set `metadata.finalizers` to `finalizers` (a JSON patch tested against the uid)."""
    patch = [
        {"op": "test", "path": "/metadata/uid", "value": uid},
        {"op": "replace", "path": "/metadata/finalizers", "value": finalizers},
    ]
    try:
        call(_json_patch, namespace, name, patch)
    except client.ApiException as err:
        if err.status not in (404, 409, 422):
            raise StatusWriteFailed(
                f"finalizer patch of {namespace}/{name} failed: HTTP {err.status}"
            ) from None
