"""Reading and writing the leader election's Lease (`coordination.k8s.io/v1`).

The pinned `kubernetes` client offers only a ConfigMap lock, so these are the
Lease calls themselves. Every write is a PUT (RBAC's `update`) carrying the
resourceVersion that was read: of two replicas writing at once, one gets 409
(`LeaseConflict`) and reads again. The chart creates the Lease; `create` is for
clusters without the chart (the tests, the demo), where the identity may.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from kubernetes import client
from kubernetes.client import ApiException

__all__ = ["ApiException", "LeaseConflict", "create", "read", "record_of", "spec_of", "update"]

from ..election import Record
from .client import api_client, call

MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class LeaseConflict(Exception):
    """Another replica wrote the Lease since it was read (HTTP 409)."""


def _time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _text(value: datetime.datetime | None) -> str | None:
    return value.astimezone(datetime.UTC).strftime(MICRO_TIME) if value else None


def record_of(lease: dict[str, Any]) -> Record:
    spec = lease.get("spec") or {}
    return Record(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_time(spec.get("acquireTime")),
        renew_time=_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def spec_of(record: Record) -> dict[str, Any]:
    return {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "acquireTime": _text(record.acquire_time),
        "renewTime": _text(record.renew_time),
        "leaseTransitions": record.transitions,
    }


def _api() -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api_client())


def _raw(response: Any) -> dict[str, Any]:
    # read without the generated models: they mangle MicroTime
    loaded: dict[str, Any] = json.loads(response.data)
    return loaded


def read(namespace: str, name: str) -> dict[str, Any] | None:
    """The Lease as stored; None when there is no such Lease."""
    try:
        return _raw(call(_api().read_namespaced_lease, name, namespace, _preload_content=False))
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def _written(method: Any, *args: Any) -> dict[str, Any]:
    try:
        return _raw(call(method, *args, _preload_content=False))
    except ApiException as err:
        if err.status == 409:
            raise LeaseConflict(f"HTTP 409: {err.reason}") from None
        raise


def create(namespace: str, name: str, record: Record) -> dict[str, Any]:
    """Make the Lease holding `record`, and return it. `LeaseConflict` when another made
    it first."""
    body = {"metadata": {"name": name, "namespace": namespace}, "spec": spec_of(record)}
    return _written(_api().create_namespaced_lease, namespace, body)


def update(lease: dict[str, Any], record: Record) -> dict[str, Any]:
    """Write `record` into `lease` as it was read (its labels, annotations and
    resourceVersion kept), and return it as stored. `LeaseConflict` when it changed since."""
    meta = lease["metadata"]
    body = {**lease, "spec": spec_of(record)}
    return _written(_api().replace_namespaced_lease, meta["name"], meta["namespace"], body)
