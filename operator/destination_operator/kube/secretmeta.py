"""Secrets as metadata only: one page of a list, and a watch, without any Secret's data.

Asked with `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`
(for a watch, `as=PartialObjectMetadata`), the API server sends each Secret's
metadata and nothing of its data, so the operator never receives, let alone
parses, a Secret no Destination names. An answer of any other kind is refused:
it would carry data. A named Secret's data is read with `secrets.read_secret`.

Every read is bounded: a page (`PAGE_LIMIT` Secrets, each's annotations at most
256 KiB by the API server's own rule) and a watch event (`MAX_EVENT_BYTES`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import urllib3
from kubernetes import client

from .client import ApiUnavailable, api_client

__all__ = [
    "ACCEPT_LIST",
    "ACCEPT_WATCH",
    "Expired",
    "Page",
    "SecretMeta",
    "WatchEvent",
    "WatchRefused",
    "list_page",
    "watch",
]

ACCEPT_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
ACCEPT_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
PAGE_LIMIT = 250
"""Secrets per page at most: at worst (annotations at the API server's 256 KiB limit) 64 MiB."""
MAX_PAGE_BYTES = 72 * 1024 * 1024
MAX_EVENT_BYTES = 2 * 1024 * 1024
"""One watch event: metadata with annotations at their limit (256 KiB) and room to spare."""
CONNECT_TIMEOUT = 5.0
LIST_READ_TIMEOUT = 60.0


class SecretMeta(NamedTuple):
    """What the operator keeps of any Secret: where it is, its uid and resourceVersion."""

    namespace: str
    name: str
    uid: str
    version: str


class Page(NamedTuple):
    """One page of a list: its Secrets, the list's resourceVersion, the next page's token."""

    items: list[SecretMeta]
    version: str
    next: str


class WatchEvent(NamedTuple):
    """ADDED, MODIFIED, DELETED (with the Secret) or BOOKMARK (version only)."""

    type: str
    secret: SecretMeta | None
    version: str


class Expired(Exception):
    """410 Gone: the resourceVersion or continue token is too old; list again."""


class WatchRefused(Exception):
    """The API server refused the list or watch for good (403, 404, a non-metadata answer)."""


class Forbidden(WatchRefused):
    """401 or 403. For good when the operator's RBAC lacks the grant, but also what a
    kube-apiserver answers for a moment after it starts, before its authorizer has
    read the RBAC objects: the watch retries it for a while before giving up."""


def _path(namespace: str | None) -> str:
    return "/api/v1/secrets" if namespace is None else f"/api/v1/namespaces/{namespace}/secrets"


def _request(
    namespace: str | None, query: list[tuple[str, Any]], accept: str, read_timeout: float
) -> urllib3.HTTPResponse:
    """The streaming answer to a GET of the Secrets' path; raises on any status but 2xx."""
    try:
        answer = api_client().call_api(
            _path(namespace),
            "GET",
            query_params=query,
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=(CONNECT_TIMEOUT, read_timeout),
            _return_http_data_only=True,
        )
    except client.ApiException as err:
        if err.status == 410:
            raise Expired(f"HTTP 410: {err.reason}") from None
        if err.status is None or err.status == 0 or err.status >= 500 or err.status == 429:
            raise ApiUnavailable(f"HTTP {err.status}: {err.reason}") from None
        if err.status in (401, 403):
            raise Forbidden(f"listing Secrets failed with HTTP {err.status}") from None
        raise WatchRefused(f"listing Secrets failed with HTTP {err.status}") from None
    except (urllib3.exceptions.HTTPError, OSError) as err:
        raise ApiUnavailable(f"{type(err).__name__}: {err}") from None
    return answer  # type: ignore[no-any-return]


def _meta(item: Any) -> SecretMeta:
    meta = item.get("metadata") if isinstance(item, dict) else None
    if not isinstance(meta, dict):
        raise WatchRefused("a Secret without metadata in a metadata-only answer")
    return SecretMeta(
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        str(meta.get("uid") or ""),
        str(meta.get("resourceVersion") or ""),
    )


def _partial(document: Any, kind: str) -> dict[str, Any]:
    """`document` if it is the metadata-only kind asked for; anything else may carry data."""
    if not isinstance(document, dict) or document.get("kind") != kind:
        found = document.get("kind") if isinstance(document, dict) else type(document).__name__
        raise WatchRefused(f"the API server answered {found!r}, not {kind!r}")
    return document


def list_page(namespace: str | None, token: str = "", limit: int = PAGE_LIMIT) -> Page:
    """One page of at most `limit` (capped at `PAGE_LIMIT`) Secrets' metadata (every
    namespace when `namespace` is None)."""
    query: list[tuple[str, Any]] = [("limit", min(limit, PAGE_LIMIT) if limit > 0 else PAGE_LIMIT)]
    if token:
        query.append(("continue", token))
    answer = _request(namespace, query, ACCEPT_LIST, LIST_READ_TIMEOUT)
    try:
        body = answer.read(MAX_PAGE_BYTES + 1, decode_content=True)
    except (urllib3.exceptions.HTTPError, OSError) as err:
        raise ApiUnavailable(f"{type(err).__name__}: {err}") from None
    finally:
        answer.release_conn()
    if len(body) > MAX_PAGE_BYTES:
        raise WatchRefused(f"a page of Secrets' metadata over {MAX_PAGE_BYTES} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise ApiUnavailable("a page of Secrets' metadata was cut short") from None
    listed = _partial(document, "PartialObjectMetadataList")
    meta = listed.get("metadata") or {}
    items = [_meta(item) for item in listed.get("items") or []]
    return Page(items, str(meta.get("resourceVersion") or ""), str(meta.get("continue") or ""))


def _event(line: bytes) -> WatchEvent:
    try:
        event = json.loads(line)
    except ValueError:
        raise ApiUnavailable("a watch event was cut short") from None
    kind = str(event.get("type") or "") if isinstance(event, dict) else ""
    obj = event.get("object") if isinstance(event, dict) else None
    if kind == "ERROR":
        code = obj.get("code") if isinstance(obj, dict) else None
        if code == 410:
            raise Expired("the watch's resourceVersion is too old")
        if isinstance(code, int) and (code >= 500 or code == 429):
            raise ApiUnavailable(f"the watch ended with HTTP {code}")
        raise WatchRefused(f"the watch ended with an error (code {code})")
    secret = _meta(_partial(obj, "PartialObjectMetadata"))
    if kind == "BOOKMARK":
        return WatchEvent(kind, None, secret.version)
    if kind not in ("ADDED", "MODIFIED", "DELETED"):
        raise WatchRefused(f"a watch event of unknown type {kind[:20]!r}")
    return WatchEvent(kind, secret, secret.version)


def lines(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """The newline-ended lines of a stream of chunks; a line longer than `limit` is refused."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            if end > start:
                yield bytes(pending[start:end])
            start = end + 1
        del pending[:start]
        if len(pending) > limit:
            raise WatchRefused(f"a watch event over {limit} bytes")
    if pending.strip():
        yield bytes(pending)


def watch(namespace: str | None, version: str, timeout_seconds: int) -> Iterator[WatchEvent]:
    """Secrets' metadata events from `version` on, bookmarks included, until the API server
    ends the watch (after `timeout_seconds`). Raises `Expired` when `version` is too old,
    `ApiUnavailable` when the connection fails or goes silent."""
    query: list[tuple[str, Any]] = [
        ("watch", "true"),
        ("resourceVersion", version),
        ("allowWatchBookmarks", "true"),
        ("timeoutSeconds", timeout_seconds),
    ]
    answer = _request(namespace, query, ACCEPT_WATCH, timeout_seconds + 30.0)
    try:
        for line in lines(answer.stream(64 * 1024, decode_content=True), MAX_EVENT_BYTES):
            yield _event(line)
    except (urllib3.exceptions.HTTPError, OSError) as err:
        raise ApiUnavailable(f"{type(err).__name__}: {err}") from None
    finally:
        answer.release_conn()
