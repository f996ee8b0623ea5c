"""The objects a benchmark stores, and how it stores many of them quickly.

Both the operator's runs and the floor's get the same objects made the same
way: S3Compatible Destinations (WriteDelete probes, interval 1h) created
through the Kubernetes API by a fixed pool of threads, each with its own API
client. One `kubectl apply` per object would make 10,000 take longer than
their verification. Every other Destination is labelled
`destinations.io/shard=a`, the rest `=b` (`SHARD_LABEL`), so that a start with
a `destination_selector` can be measured over half of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client

from s3server import KeyPair, S3Server

GROUP, VERSION, PLURAL = "destinations.io", "v1alpha1", "destinations"
SECRET_NAME = "s3"
VERIFY_REQUESTED_AT = "destinations.io/verify-requested-at"
SHARD_LABEL = "destinations.io/shard"  # the label docs/operations.md's shards select on

ApiClientFactory = Callable[[], client.ApiClient]
PAGE = 500  # objects per page of a list


def pages(list_call: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Each page of a list (`limit` and `continue`), asked for once the one before is used."""
    token = None
    while True:
        page = list_call(*args, limit=PAGE, _continue=token, **kwargs)
        yield page
        token = page["metadata"].get("continue")
        if not token:
            return


def name_of(i: int) -> str:
    """The i-th Destination of a namespace, in the operator's runs and the floor's."""
    return f"d{i:05d}"


def destination(
    namespace: str, name: str, s3: S3Server, secret: str = SECRET_NAME, shard: str = "a"
) -> Any:
    """One S3Compatible Destination with its own prefix, so its probe requests can be told."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Destination",
        "metadata": {"name": name, "namespace": namespace, "labels": {SHARD_LABEL: shard}},
        "spec": {
            "type": "S3Compatible",
            "environment": "Development",
            "s3Compatible": {
                "endpoint": s3.endpoint,
                "bucket": s3.buckets[0],
                "forcePathStyle": True,
            },
            "pathPrefix": f"{probe_prefix(namespace)}{name}/",
            "credentials": {"secretRef": {"name": secret}},
            "verification": {"interval": "1h", "timeout": "10s"},
        },
    }


def probe_prefix(namespace: str) -> str:
    """The object-key prefix of every probe in a namespace (see `destination`)."""
    return f"bench/{namespace}/"


def secret(namespace: str, keys: KeyPair, name: str = SECRET_NAME) -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {
            "accessKeyId": keys.access_key_id,
            "secretAccessKey": keys.secret_access_key,
        },
    }


def unrelated_secret(namespace: str, i: int, size: int) -> Any:
    """A Secret no Destination names (a Helm release's, a token), with `size` bytes of data."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"unrelated-{i:05d}", "namespace": namespace},
        "stringData": {"payload": ("x" * 63 + "\n") * (size // 64)},
    }


class ObjectMaker:
    """Creates and patches Destinations from a fixed pool of threads, one API client each."""

    def __init__(self, new_api_client: ApiClientFactory, threads: int) -> None:
        self.threads = threads
        self._new_api_client = new_api_client
        self._local = threading.local()
        self._clients: list[client.ApiClient] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="create")

    def _api(self) -> client.CustomObjectsApi:
        api: client.CustomObjectsApi | None = getattr(self._local, "api", None)
        if api is None:
            made = self._new_api_client()
            with self._lock:
                self._clients.append(made)
            api = self._local.api = client.CustomObjectsApi(made)
        return api

    def create_one(self, body: Any) -> Any:
        namespace = body["metadata"]["namespace"]
        return self._api().create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def create(self, bodies: Iterable[Any]) -> float:
        """Create every body, `threads` at a time; the wall seconds it took."""
        started = time.monotonic()
        list(self._pool.map(self.create_one, bodies))
        return time.monotonic() - started

    def create_secrets(self, bodies: Iterable[Any]) -> float:
        """Create every Secret, `threads` at a time; the wall seconds it took."""

        def create(body: Any) -> None:
            namespace = body["metadata"]["namespace"]
            client.CoreV1Api(self._api().api_client).create_namespaced_secret(namespace, body)

        started = time.monotonic()
        list(self._pool.map(create, bodies))
        return time.monotonic() - started

    def request_verification(self, namespace: str, names: Iterable[str], value: str) -> float:
        """Set the verify-requested-at annotation on each; the wall seconds it took."""

        def annotate(name: str) -> None:
            patch = {"metadata": {"annotations": {VERIFY_REQUESTED_AT: value}}}
            self._api().patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, patch
            )

        started = time.monotonic()
        list(self._pool.map(annotate, names))
        return time.monotonic() - started

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for made in self._clients:
            made.close()
