"""Kubernetes Events for `kubectl describe`: posted through kopf's queue, off the hot path."""

from __future__ import annotations

from typing import Protocol

import kopf


class EventLike(Protocol):
    type: str  # Normal or Warning
    reason: str
    message: str


def post(body: kopf.Body, event: EventLike) -> None:
    """Queue one Event about the Destination; messages are already scrubbed."""
    kopf.event(body, type=event.type, reason=event.reason, message=event.message)
