"""Kubernetes Events for `kubectl describe`, posted by the operator itself.

Events are posted only on transitions (see `conditions.transition_events`), so
they are few; a failure to post one is logged and never retried, as kubelet
and controller-runtime do.
"""

from __future__ import annotations

import datetime
import logging
import secrets
import socket
from typing import Any, Protocol

from kubernetes import client

from ..api import API_VERSION, KIND
from ..api.status import rfc3339
from .client import ApiUnavailable, api_client, call

logger = logging.getLogger("destination_operator.events")
COMPONENT = "destination-operator"


class EventLike(Protocol):
    type: str  # Normal or Warning
    reason: str
    message: str


def post(namespace: str, name: str, uid: str, event: EventLike) -> bool:
    """Post one Event about the Destination; messages are already scrubbed. True if posted."""
    stamp = rfc3339(datetime.datetime.now(datetime.UTC))
    body: dict[str, Any] = {
        "metadata": {"name": f"{name}.{secrets.token_hex(8)}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:1024],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname(),
    }
    try:
        call(client.CoreV1Api(api_client()).create_namespaced_event, namespace, body)
    except (client.ApiException, ApiUnavailable) as err:
        reason = err.status if isinstance(err, client.ApiException) else err
        logger.warning(
            "could not post event %s on %s/%s: %s", event.reason, namespace, name, reason
        )
        return False
    return True
