#!/usr/bin/env python3
"""The floor: the most direct script that does the operator's work, to compare it with.

    python bench/floor.py --kubeconfig SA.kubeconfig --namespace NS --count N
    python bench/floor.py ... --contract        # the contract floor: two patches each

Lists the namespace's Destinations and follows a watch for new ones; for each
one, once: PUT and DELETE its probe object on the S3 endpoint its spec names
(with the key pair of the Secret it names, read once), then PATCH its status
to Verified=True. `--concurrency` objects at once (the operator's
`--probe-concurrency` default, 8). Nothing else: no backoff or schedule (an
object that fails is tried three times at once), no events, no conditions
computed.

`--contract` writes what the API contract requires of a new Destination: first
a status that says `Reconciling=True` (so that kstatus and Flux's `wait` never
read a status-less object as Current while its probe runs), then the result:
two status patches, still no Event.

It runs as its own process, under the operator's ServiceAccount token, so
that API Priority and Fairness treats it as it treats the operator and it
does not share an interpreter with the benchmark's watchers. It prints
`ready` once its first list is done, and one JSON line when `--count`
objects are done; it exits 1 only when it could not do the work.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import queue
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config, watch

GROUP, VERSION, PLURAL = "destinations.io", "v1alpha1", "destinations"
PROBE_BODY = b"destination-operator probe: safe to delete\n"
ATTEMPTS = 3
PAGE = 500


def rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def verified_status(generation: int, target: str, key: str, started: float) -> dict[str, Any]:
    """A status of the operator's shape: Verified and Ready True, the last probe's steps."""
    now = rfc3339(datetime.datetime.now(datetime.UTC))

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
            "observedGeneration": generation,
        }

    millis = int((time.monotonic() - started) * 1000)
    return {
        "observedGeneration": generation,
        "conditions": [
            condition("Verified", "True", "ProbeSucceeded", "probe object written and deleted"),
            condition("Ready", "True", "Ready", "verified"),
            condition("Archived", "False", "NotArchived", "not archived"),
        ],
        "target": target,
        "lastVerifiedTime": now,
        "lastProbe": {
            "time": now,
            "durationMilliseconds": millis,
            "objectKey": key,
            "mode": "WriteDelete",
            "steps": [
                {"name": "Write", "outcome": "Succeeded"},
                {"name": "Delete", "outcome": "Succeeded"},
            ],
        },
    }


def reconciling_status(generation: int) -> dict[str, Any]:
    """The first-sight status: a probe of this generation is pending."""
    now = rfc3339(datetime.datetime.now(datetime.UTC))
    message = f"a probe of generation {generation} is pending"

    def condition(kind: str, status: str, reason: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
            "observedGeneration": generation,
        }

    return {
        "observedGeneration": generation,
        "conditions": [
            condition("Ready", "Unknown", "Pending"),
            condition("Verified", "Unknown", "Pending"),
            condition("Reconciling", "True", "Verifying"),
            condition("Archived", "False", "NotArchived"),
        ],
    }


class Floor:
    """List, watch, and do each Destination's work once, `concurrency` at a time."""

    def __init__(
        self, kubeconfig: str, namespace: str, count: int, concurrency: int, contract: bool
    ) -> None:
        self.kubeconfig = kubeconfig
        self.contract = contract
        self.namespace = namespace
        self.count = count
        self.concurrency = concurrency
        self.todo: queue.Queue[Mapping[str, Any]] = queue.Queue()
        self.seen: set[str] = set()
        self.done = 0
        self.errors: list[str] = []
        self.finished = threading.Event()
        self.listed = threading.Event()
        self._lock = threading.Lock()
        self._secret_lock = threading.Lock()
        self._secrets: dict[str, tuple[str, str]] = {}
        self._api: client.CustomObjectsApi | None = None
        self._s3_clients: dict[tuple[str, tuple[str, str], bool], Any] = {}

    # --- clients, shared by the threads as the operator shares its own ----------------------

    def _kube(self) -> client.CustomObjectsApi:
        with self._lock:
            if self._api is None:
                configuration = client.Configuration()
                config.load_kube_config(
                    config_file=self.kubeconfig, client_configuration=configuration
                )
                configuration.connection_pool_maxsize = self.concurrency + 2
                self._api = client.CustomObjectsApi(client.ApiClient(configuration))
            return self._api

    def _s3(self, endpoint: str, keys: tuple[str, str], path_style: bool) -> Any:
        """One boto3 client per endpoint and key pair (clients are thread-safe, sessions not)."""
        wanted = (endpoint, keys, path_style)
        with self._lock:
            if wanted not in self._s3_clients:
                import boto3
                from botocore.config import Config

                self._s3_clients[wanted] = boto3.session.Session().client(
                    "s3",
                    endpoint_url=endpoint,
                    region_name="us-east-1",
                    aws_access_key_id=keys[0],
                    aws_secret_access_key=keys[1],
                    config=Config(
                        s3={"addressing_style": "path" if path_style else "virtual"},
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                        retries={"total_max_attempts": 1, "mode": "standard"},
                        max_pool_connections=self.concurrency,
                    ),
                )
            return self._s3_clients[wanted]

    def _keys(self, secret_name: str) -> tuple[str, str]:
        """The Secret's key pair, read once (a GET) and kept."""
        with self._secret_lock:
            if secret_name not in self._secrets:
                core = client.CoreV1Api(self._kube().api_client)
                data = core.read_namespaced_secret(secret_name, self.namespace).data or {}
                self._secrets[secret_name] = (
                    base64.b64decode(data["accessKeyId"]).decode(),
                    base64.b64decode(data["secretAccessKey"]).decode(),
                )
            return self._secrets[secret_name]

    # --- the work ----------------------------------------------------------------------------

    def verify(self, body: Mapping[str, Any]) -> None:
        """PUT and DELETE the probe object, then PATCH the status once (with `contract`, a
        first PATCH to Reconciling before the probe)."""
        meta, spec = body["metadata"], body["spec"]
        if self.contract and not (body.get("status") or {}).get("observedGeneration"):
            pending = reconciling_status(int(meta["generation"]))
            self._kube().patch_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, meta["name"], {"status": pending}
            )
        target = spec["s3Compatible"]
        keys = self._keys(spec["credentials"]["secretRef"]["name"])
        s3 = self._s3(target["endpoint"], keys, bool(target.get("forcePathStyle")))
        key = f"{spec.get('pathPrefix', '')}.destination-operator-probe/{meta['uid']}.txt"
        started = time.monotonic()
        s3.put_object(
            Bucket=target["bucket"],
            Key=key,
            Body=PROBE_BODY,
            ContentType="text/plain",
            Metadata={"purpose": "destination-operator-probe"},
        )
        s3.delete_object(Bucket=target["bucket"], Key=key)
        status = verified_status(int(meta["generation"]), f"s3://{target['bucket']}", key, started)
        self._kube().patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, meta["name"], {"status": status}
        )

    def _worker(self) -> None:
        while not self.finished.is_set():
            try:
                body = self.todo.get(timeout=0.5)
            except queue.Empty:
                continue
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    self.verify(body)
                    break
                except Exception as err:  # noqa: BLE001 - counted and reported
                    if attempt == ATTEMPTS:
                        with self._lock:
                            self.errors.append(f"{body['metadata']['name']}: {type(err).__name__}")
                    time.sleep(0.2 * attempt)
            with self._lock:
                self.done += 1
                if self.done >= self.count:
                    self.finished.set()

    def _offer(self, body: Mapping[str, Any]) -> None:
        name = body["metadata"]["name"]
        if name not in self.seen:
            self.seen.add(name)
            self.todo.put(body)

    def _feed(self) -> None:
        """The objects there now (a paginated list), then the new ones (a watch)."""
        api = client.CustomObjectsApi(config.new_client_from_config(config_file=self.kubeconfig))
        token, version = None, ""
        while True:
            page = api.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, limit=PAGE, _continue=token
            )
            version = version or page["metadata"]["resourceVersion"]
            for body in page["items"]:
                self._offer(body)
            token = page["metadata"].get("continue")
            if not token:
                break
        self.listed.set()
        while not self.finished.is_set():
            for event in watch.Watch().stream(
                api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=5,
            ):
                body = event["raw_object"]
                version = body.get("metadata", {}).get("resourceVersion") or version
                if event["type"] == "ADDED":
                    self._offer(body)

    def run(self) -> float:
        started = time.monotonic()
        feeder = threading.Thread(target=self._feed, name="feed", daemon=True)
        feeder.start()
        workers = [
            threading.Thread(target=self._worker, name=f"floor-{n}", daemon=True)
            for n in range(self.concurrency)
        ]
        for thread in workers:
            thread.start()
        self.listed.wait()
        print("ready", flush=True)
        while not self.finished.wait(1.0):
            if not feeder.is_alive():
                raise RuntimeError("the list/watch of Destinations ended")
        return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--count", type=int, required=True, help="stop after this many")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--contract", action="store_true", help="a Reconciling patch first: two patches each"
    )
    args = parser.parse_args(argv)
    floor = Floor(args.kubeconfig, args.namespace, args.count, args.concurrency, args.contract)
    seconds = floor.run()
    summary = {
        "done": floor.done,
        "errors": len(floor.errors),
        "first_errors": floor.errors[:5],
        "seconds": round(seconds, 3),
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
