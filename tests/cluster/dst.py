"""Small helpers for the operator's end-to-end tests: apply, wait, read."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import yaml
from kubernetes import client

import canaries
from harness import Cluster
from s3server import S3Server


def s3_destination(
    name: str,
    s3: S3Server,
    *,
    secret: str,
    bucket: str | None = None,
    endpoint: str | None = None,
    prefix: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "destinations.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": name},
        "spec": {
            "type": "S3Compatible",
            "environment": "Development",
            "s3Compatible": {
                "endpoint": endpoint or s3.endpoint,
                "bucket": bucket or s3.buckets[0],
                "forcePathStyle": True,
            },
            "pathPrefix": prefix or f"{name}/",
            "credentials": {"secretRef": {"name": secret}},
            "verification": {"interval": "1h", "timeout": "5s"},
        },
    }
    body["spec"].update(spec)
    return body


GROUP, VERSION, PLURAL = "destinations.io", "v1alpha1", "destinations"


def destination(name: str, spec: Any) -> dict[str, Any]:
    """A Destination manifest with this spec, as given (even one of the wrong type)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Destination",
        "metadata": {"name": name},
        "spec": spec,
    }


def webhook_destination(name: str, url: str, *, secret: str, **spec: Any) -> dict[str, Any]:
    """A Development Webhook Destination that sends the tokens of Secret `secret` to `url`."""
    return destination(
        name,
        {
            "type": "Webhook",
            "environment": "Development",
            "webhook": {"url": url},
            "credentials": {"secretRef": {"name": secret}},
            **spec,
        },
    )


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that accepts every request and keeps its headers."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(dict(self.headers.items()))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def refusal(call: Callable[[], Any]) -> str | None:
    """None if the API server accepted; else its message."""
    try:
        call()
    except client.ApiException as err:
        try:
            return str(json.loads(err.body)["message"])
        except (TypeError, ValueError, KeyError):
            return f"HTTP {err.status}: {err.body}"
    return None


def create(cluster: Cluster, namespace: str, body: dict[str, Any], *, dry_run: bool) -> str | None:
    """Create `body` through the API (strict field validation); None, or the refusal."""
    api = client.CustomObjectsApi(cluster.api_client())
    extra = {"dry_run": "All"} if dry_run else {}
    return refusal(
        lambda: api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict", **extra
        )
    )


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    """A Secret manifest; its values are registered as canaries (see `canaries`)."""
    canaries.register(*data.values())
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


def s3_secret(s3: S3Server, name: str = "s3", user: str = "admin") -> dict[str, Any]:
    """A Secret with the key pair of one of the S3 server's users."""
    pair = s3.users[user]
    return secret(
        name, {"accessKeyId": pair.access_key_id, "secretAccessKey": pair.secret_access_key}
    )


def apply(cluster: Cluster, namespace: str, *objects: dict[str, Any]) -> None:
    documents = yaml.safe_dump_all(list(objects))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=documents)


def get(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "-n", namespace, "dst", name, "-o", "json").stdout
    body: dict[str, Any] = json.loads(out)
    return body


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def wait_for(
    cluster: Cluster,
    namespace: str,
    name: str,
    kind: str,
    status: str,
    *,
    reason: str | None = None,
    timeout: float = 60,
    after: str | None = None,
) -> dict[str, Any]:
    """Poll until condition `kind` has `status` (and `reason`) for the current generation."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = get(cluster, namespace, name)
        found = condition(body, kind)
        if (
            found.get("status") == status
            and (reason is None or found.get("reason") == reason)
            and found.get("observedGeneration") == body["metadata"]["generation"]
            and (
                after is None
                or (body.get("status") or {}).get("lastProbe", {}).get("time", "") > after
            )
        ):
            return body
        time.sleep(0.25)
    raise AssertionError(
        f"{namespace}/{name}: {kind} never became {status}/{reason}; last status: "
        f"{json.dumps(body.get('status'), indent=1)}"
    )


def events(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name}",
        "-o",
        "json",
    ).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def probe_requests(s3: S3Server, prefix: str) -> list[str]:
    """Lines of the S3 server's request log that touched objects under `prefix`."""
    return [line for line in s3.requests() if f"/{prefix}" in line]
