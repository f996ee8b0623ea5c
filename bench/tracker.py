"""When did each Destination of a namespace reach a state: one list, then one watch.

Polling 10,000 objects for "all verified" would itself load the API server
and move the figures. A tracker lists the namespace once (in pages), then
follows a single watch stream from that list's resourceVersion, and notes the
first moment (time.monotonic) each object met its predicate. It relists only
when the API server says the watch's resourceVersion is too old (410).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, watch

from objects import GROUP, PLURAL, VERSION, ApiClientFactory, pages

Predicate = Callable[[Mapping[str, Any]], bool]

WATCH_SECONDS = 20  # the server ends each watch after this long; the tracker resumes


def condition(body: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for item in (body.get("status") or {}).get("conditions") or ():
        if item.get("type") == kind:
            return dict(item)
    return {}


def verified(body: Mapping[str, Any]) -> bool:
    """Verified=True for the object's current generation."""
    found = condition(body, "Verified")
    generation = (body.get("metadata") or {}).get("generation")
    observed = found.get("observedGeneration", (body.get("status") or {}).get("observedGeneration"))
    return found.get("status") == "True" and observed == generation


def verified_with_request(value: str) -> Predicate:
    """Verified=True after handling the verify-requested-at annotation `value`."""
    return lambda body: (
        verified(body) and (body.get("status") or {}).get("lastHandledVerifyRequest") == value
    )


def verified_with_new_credentials(old_fingerprint: str) -> Predicate:
    """Verified=True with credentials whose fingerprint is not `old_fingerprint`."""
    return lambda body: (
        verified(body)
        and (body.get("status") or {}).get("credentialsFingerprint")
        not in (None, "", old_fingerprint)
    )


class StatusTracker:
    """Follows one namespace's Destinations and notes when each first meets `predicate`."""

    def __init__(
        self, new_api_client: ApiClientFactory, namespace: str, predicate: Predicate
    ) -> None:
        self.namespace = namespace
        self.predicate = predicate
        self._api_client = new_api_client()
        self._api = client.CustomObjectsApi(self._api_client)
        self._met: dict[str, float] = {}
        self._changed = threading.Condition()
        self._listed = threading.Event()
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"track-{namespace}", daemon=True)

    def start(self) -> StatusTracker:
        """Start following; returns once the first list is done (the watch resumes from it)."""
        self._thread.start()
        self._listed.wait(timeout=120)
        self._raise_failure()
        return self

    def stop(self) -> None:
        """Stop at the end of the current watch (the thread is a daemon: nothing waits)."""
        self._stop.set()

    def met(self) -> dict[str, float]:
        """Name -> the monotonic time it first met the predicate."""
        with self._changed:
            return dict(self._met)

    def wait(self, count: int, timeout: float) -> bool:
        """Block until `count` objects have met the predicate; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._met) < count:
                self._raise_failure()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 1.0))
        return True

    def wait_for(self, name: str, timeout: float) -> float | None:
        """The time `name` met the predicate, waiting up to `timeout`; None if it did not."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while name not in self._met:
                self._raise_failure()
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(min(left, 1.0))
            return self._met[name]

    # --- the thread --------------------------------------------------------------------------

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise RuntimeError(f"tracking {self.namespace} failed: {self._failure}")

    def _see(self, body: Mapping[str, Any], at: float) -> None:
        name = str((body.get("metadata") or {}).get("name"))
        if name in self._met or not self.predicate(body):
            return
        with self._changed:
            self._met.setdefault(name, at)
            self._changed.notify_all()

    def _list(self) -> str:
        version = ""
        listed = pages(
            self._api.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL
        )
        for page in listed:
            at = time.monotonic()
            version = version or page["metadata"]["resourceVersion"]
            for body in page["items"]:
                self._see(body, at)
        return version

    def _run(self) -> None:
        try:
            version = self._list()
            self._listed.set()
            while not self._stop.is_set():
                try:
                    version = self._follow(version)
                except client.ApiException as err:
                    if err.status != 410:
                        raise
                    version = self._list()  # too old: the state now, then watch again
        except BaseException as err:  # noqa: BLE001 - reported to whoever waits
            self._failure = err
            self._listed.set()
            with self._changed:
                self._changed.notify_all()
        finally:
            self._api_client.close()

    def _follow(self, version: str) -> str:
        stream = watch.Watch()
        for event in stream.stream(
            self._api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=WATCH_SECONDS + 30,
        ):
            body = event["raw_object"]
            version = body.get("metadata", {}).get("resourceVersion") or version
            if event["type"] in ("ADDED", "MODIFIED"):
                self._see(body, time.monotonic())
            if self._stop.is_set():
                stream.stop()
        return version
