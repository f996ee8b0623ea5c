#!/usr/bin/env python3
"""A small Alibaba Cloud OSS server on loopback that checks signatures as OSS does.

No OSS emulator exists, so the AlibabaOSS provider is tested against this one
(TESTING.md). It speaks just enough of the OSS object API for a probe
(PutObject, DeleteObject, and GetObject/HeadObject to read back), and it
refuses what OSS refuses, with OSS's XML error bodies and HTTP statuses:

- signature V1 (`Authorization: OSS <AccessKeyId>:<Signature>`, HMAC-SHA1 over
  the verb, Content-MD5, Content-Type, the date (x-oss-date over Date), the
  canonicalized x-oss- headers and the canonicalized resource) and signature
  V4 (`OSS4-HMAC-SHA256 Credential=<id>/<date>/<region>/oss/aliyun_v4_request,
  AdditionalHeaders=..., Signature=...`, HMAC-SHA256 with the key derived from
  "aliyun_v4" + secret, the date, the region, "oss" and "aliyun_v4_request"),
  implemented here from Alibaba's documentation, not by calling an SDK's signer;
- an unknown key id is `InvalidAccessKeyId` (403), a wrong signature
  `SignatureDoesNotMatch` (403, with the string to sign, as OSS answers), a
  date more than 15 minutes off `RequestTimeTooSkewed` (403), a V4 credential
  scoped to another region `InvalidArgument` (400), a missing bucket
  `NoSuchBucket` (404), an action the user may not take or an unsigned request
  `AccessDenied` (403), a wrong Content-MD5 `InvalidDigest` (400);
- answers carry `x-oss-request-id`, an upper-case MD5 `ETag` and the object's
  CRC-64 (`x-oss-hash-crc64ecma`), which OSS SDKs check.

A bucket named in `elsewhere` lives in another region: OSS refuses it with
`AccessDenied` (403) and names the endpoint to use.

Checks run in this order: signature, bucket, permission. Users (`make_users`):
`admin` may put, get and delete; `writer` may only put (write-only
credentials: a delete is refused); `no-access` authenticates but may do nothing.

With an `ssl.SSLContext` (`tls=`) it serves HTTPS instead of HTTP.

Addressing: path style (`/<bucket>/<key>`, what OSS SDKs send to an IP
address or `localhost`) and virtual-hosted style (`Host: <bucket>.<domain>`,
for a test domain given to the server, `oss.test` by default).

    python hack/ossserver.py --port 9100 --state .servers/oss

serves in the foreground until SIGINT or SIGTERM and writes the endpoint,
region, buckets and key pairs to `<state>/credentials.json`. The tests use
`OSSServer` in-process (a thread on a free loopback port) and read its
`requests` log: method, bucket, key, access key id, signature version, status
and error code of each request (never a signature or a secret).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import email.utils
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape

DEFAULT_REGION = "cn-hangzhou"
"""The server's region, as V4 scopes name it (the region id without `oss-`)."""

DEFAULT_BUCKETS = ("destinations", "destinations-other")
DEFAULT_DOMAIN = "oss.test"
MAX_SKEW_SECONDS = 15 * 60
CREDENTIALS_FILE = "credentials.json"

PUT_OBJECT = "oss:PutObject"
GET_OBJECT = "oss:GetObject"
DELETE_OBJECT = "oss:DeleteObject"

_V1_SUBRESOURCE_NAMES = (
    "acl append asyncFetch bucketInfo callback callback-var cname comp continuation-token "
    "cors delete encryption endTime img inventory inventoryId lifecycle live location "
    "logging metaQuery objectInfo objectMeta partNumber policy position qos qosInfo referer "
    "replication replicationLocation replicationProgress requestPayment resourceGroup "
    "response-cache-control response-content-disposition response-content-encoding "
    "response-content-language response-content-type response-expires restore "
    "security-token sequential startTime stat status style styleName symlink tagging "
    "transferAcceleration udf udfApplication udfApplicationLog udfId udfImage udfImageDesc "
    "udfName uploadId uploads versionId versioning versions vod website worm wormExtend "
    "wormId x-oss-process x-oss-request-payer x-oss-traffic-limit"
)
V1_SUBRESOURCES = frozenset(_V1_SUBRESOURCE_NAMES.split())
"""Query parameters that V1 signs as sub-resources (Alibaba's list); others are not signed."""

V4_ALGORITHM = "OSS4-HMAC-SHA256"
V4_TERMINATOR = "aliyun_v4_request"
V4_PRODUCT = "oss"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_V4_DATE = re.compile(r"^\d{8}T\d{6}Z$")

Query = Sequence[tuple[str, str]]


# --- signatures: pure functions, from Alibaba's documentation ---------------------------------


def v1_canonical_resource(bucket: str | None, key: str, query: Query) -> str:
    """`/<bucket>/<key>` (or `/`) and the signed sub-resources, sorted: `?acl&uploadId=1`."""
    resource = "/" if bucket is None else f"/{bucket}/{key}"
    signed = sorted((name, value) for name, value in query if name in V1_SUBRESOURCES)
    if signed:
        resource += "?" + "&".join(f"{name}={value}" if value else name for name, value in signed)
    return resource


def v1_string_to_sign(
    method: str, headers: Mapping[str, str], bucket: str | None, key: str, query: Query
) -> str:
    """V1's string to sign. `headers` have lower-case names; the date is x-oss-date, else Date."""
    date = headers.get("x-oss-date") or headers.get("date", "")
    oss_headers = sorted(
        (name, value.strip()) for name, value in headers.items() if name.startswith("x-oss-")
    )
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in oss_headers)
    return "\n".join(
        [
            method,
            headers.get("content-md5", ""),
            headers.get("content-type", ""),
            date,
            canonical_headers + v1_canonical_resource(bucket, key, query),
        ]
    )


def v1_signature(secret: str, string_to_sign: str) -> str:
    """base64(HMAC-SHA1(secret, string to sign))."""
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def v4_uri_encode(text: str, *, keep_slash: bool) -> str:
    """RFC 3986 encoding: unreserved characters stay, everything else is %XX (upper case)."""
    return quote(text, safe="-_.~" + ("/" if keep_slash else ""))


def v4_canonical_request(
    method: str,
    bucket: str | None,
    key: str,
    query: Query,
    headers: Mapping[str, str],
    additional_headers: Sequence[str],
) -> str:
    """V4's canonical request.

    Verb; the URI-encoded `/<bucket>/<key>` (slashes kept; `/` without a
    bucket); every query parameter, names and values encoded and sorted; the
    signed headers (every x-oss- header, Content-Type and Content-MD5, and the
    additional headers that are present), `name:value` sorted by name; the
    additional header names; the payload hash from x-oss-content-sha256.
    """
    uri = "/" if bucket is None else f"/{bucket}/{key}"
    encoded = sorted(
        (v4_uri_encode(name, keep_slash=False), v4_uri_encode(value, keep_slash=False))
        for name, value in query
    )
    canonical_query = "&".join(f"{name}={value}" if value else name for name, value in encoded)
    extra = set(additional_headers)
    signed = sorted(
        name
        for name in headers
        if name.startswith("x-oss-") or name in ("content-type", "content-md5") or name in extra
    )
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    return "\n".join(
        [
            method,
            v4_uri_encode(uri, keep_slash=True),
            canonical_query,
            canonical_headers,
            ";".join(sorted(extra)),
            headers.get("x-oss-content-sha256", UNSIGNED_PAYLOAD),
        ]
    )


def v4_scope(date: str, region: str) -> str:
    """`<yyyymmdd>/<region>/oss/aliyun_v4_request`."""
    return f"{date}/{region}/{V4_PRODUCT}/{V4_TERMINATOR}"


def v4_string_to_sign(timestamp: str, region: str, canonical_request: str) -> str:
    """Algorithm, x-oss-date, scope and the SHA-256 of the canonical request, one a line."""
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return "\n".join([V4_ALGORITHM, timestamp, v4_scope(timestamp[:8], region), digest])


def v4_signing_key(secret: str, date: str, region: str) -> bytes:
    """HMAC-SHA256 chained over date, region, "oss", "aliyun_v4_request" from "aliyun_v4"+secret."""
    key = ("aliyun_v4" + secret).encode()
    for part in (date, region, V4_PRODUCT, V4_TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def v4_signature(secret: str, timestamp: str, region: str, canonical_request: str) -> str:
    """Lower-case hex HMAC-SHA256 of the string to sign with the derived key."""
    string_to_sign = v4_string_to_sign(timestamp, region, canonical_request)
    key = v4_signing_key(secret, timestamp[:8], region)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _crc64_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xC96C5795D7870F42 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC64_TABLE = _crc64_table()


def crc64(data: bytes) -> int:
    """CRC-64/XZ (ECMA-182 polynomial, reflected, all-ones start and end): OSS's crc64ecma."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = _CRC64_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


_V1_KEY_ID = re.compile(r"^OSS ([^:\s]+):")
_V4_KEY_ID = re.compile(r"^OSS4-HMAC-SHA256 .*?Credential=([^/,\s]+)/")


def claimed_identity(authorization: str) -> tuple[str, str]:
    """(access key id, "V1" or "V4") that an Authorization header claims; ("-", "-") if none."""
    for pattern, version in ((_V1_KEY_ID, "V1"), (_V4_KEY_ID, "V4")):
        match = pattern.match(authorization)
        if match:
            return match.group(1), version
    return "-", "-"


# --- users, objects, errors ------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """A key pair and the actions it may take."""

    name: str
    access_key_id: str
    access_key_secret: str = field(repr=False)
    actions: frozenset[str] = frozenset()

    def secret_data(self) -> dict[str, bytes]:
        """The key pair as a Kubernetes Secret's `data` (decoded) for the AlibabaOSS provider."""
        return {
            "accessKeyId": self.access_key_id.encode(),
            "accessKeySecret": self.access_key_secret.encode(),
        }


def make_users(secret_marker: str = "") -> dict[str, User]:
    """`admin`, `writer` (write-only) and `no-access`, with fresh keys.

    `secret_marker` starts every secret (tests use a canary there, to show it
    never appears in a message).
    """
    grants = {
        "admin": frozenset({PUT_OBJECT, GET_OBJECT, DELETE_OBJECT}),
        "writer": frozenset({PUT_OBJECT}),
        "no-access": frozenset(),
    }
    return {
        name: User(
            name=name,
            access_key_id="LTAI" + secrets.token_hex(10),
            access_key_secret=secret_marker + secrets.token_urlsafe(22),
            actions=actions,
        )
        for name, actions in grants.items()
    }


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    content_type: str
    metadata: tuple[tuple[str, str], ...]
    modified: float


@dataclass(frozen=True)
class Record:
    """One request as the server saw it (never a signature or a secret)."""

    method: str
    bucket: str | None
    key: str
    access_key_id: str  # "-" when unsigned
    signature_version: str  # "V1", "V4" or "-"
    status: int
    code: str  # the OSS error code, "" on success


class OSSError(Exception):
    """An OSS error answer: HTTP status, code, message and extra XML elements."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self, request_id: str, host: str) -> bytes:
        items = [("Code", self.code), ("Message", self.message), ("RequestId", request_id)]
        items += [("HostId", host), *self.extra.items()]
        inner = "".join(f"  <{name}>{escape(value)}</{name}>\n" for name, value in items)
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n{inner}</Error>\n'.encode()


def _access_denied(
    message: str = "You have no right to access this object.", **extra: str
) -> OSSError:
    return OSSError(403, "AccessDenied", message, **extra)


def _invalid_argument(message: str, name: str, value: str) -> OSSError:
    return OSSError(400, "InvalidArgument", message, ArgumentName=name, ArgumentValue=value)


@dataclass
class Request:
    """A parsed request: header names lower-case, the key and query decoded."""

    method: str
    host: str
    bucket: str | None
    key: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


# --- the server ------------------------------------------------------------------------------


class OSSServer:
    """The OSS server in a thread on 127.0.0.1 (a free port unless `port` is given).

    with OSSServer() as oss:
        oss.endpoint, oss.region, oss.buckets, oss.users["writer"], oss.requests
    """

    def __init__(
        self,
        *,
        region: str = DEFAULT_REGION,
        buckets: Iterable[str] = DEFAULT_BUCKETS,
        elsewhere: Mapping[str, str] | None = None,
        users: Mapping[str, User] | None = None,
        domain: str = DEFAULT_DOMAIN,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.region = region
        self.buckets = list(buckets)
        self.elsewhere = dict(elsewhere or {})
        self.users = dict(users) if users is not None else make_users()
        self.domain = domain.lower()
        self.clock = clock
        self.tls = tls
        self.requests: list[Record] = []
        self._host, self._port = host, port
        self._keys = {user.access_key_id: user for user in self.users.values()}
        self._objects: dict[tuple[str, str], StoredObject] = {}
        self._lock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life ---

    @property
    def port(self) -> int:
        assert self._http is not None, "the server is not running"
        return int(self._http.server_address[1])

    @property
    def endpoint(self) -> str:
        """`http://127.0.0.1:<port>` (https with `tls`): a client's OSS endpoint (path style)."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self._host}:{self.port}"

    def start(self) -> OSSServer:
        handler = type("Handler", (_Handler,), {"oss": self})
        self._http = ThreadingHTTPServer((self._host, self._port), handler)
        self._http.daemon_threads = True
        if self.tls is not None:
            self._http.socket = self.tls.wrap_socket(self._http.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._http.serve_forever, args=(0.05,), name="ossserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.shutdown()
            http.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> OSSServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- state, for tests ---

    def object(self, bucket: str, key: str) -> bytes | None:
        """The stored body of `bucket`/`key`, or None."""
        with self._lock:
            stored = self._objects.get((bucket, key))
        return None if stored is None else stored.body

    def requests_for(self, key: str) -> list[Record]:
        """The requests that named `key`, in order."""
        with self._lock:
            return [record for record in self.requests if record.key == key]

    def credentials_document(self) -> dict[str, Any]:
        """Endpoint, region, buckets and key pairs, as `credentials.json` holds them."""
        return {
            "endpoint": self.endpoint,
            "region": self.region,
            "buckets": self.buckets,
            "users": {
                name: {"accessKeyId": u.access_key_id, "accessKeySecret": u.access_key_secret}
                for name, u in self.users.items()
            },
        }

    # --- one request ---

    def route(self, host: str, raw_path: str) -> tuple[str | None, str]:
        """(bucket, key) from the Host header and the undecoded path."""
        hostname = (urlsplit(f"//{host}").hostname or "").lower()
        if self.domain and hostname.endswith("." + self.domain):
            return hostname[: -len(self.domain) - 1], unquote(raw_path[1:])
        bucket, _, key = raw_path[1:].partition("/")
        return (unquote(bucket) or None), unquote(key)

    def handle(self, request: Request, request_id: str) -> tuple[Answer, Record]:
        """Authenticate, find the bucket, authorize, act; every refusal is an OSS error."""
        key_id, version = claimed_identity(request.headers.get("authorization", ""))
        try:
            user = self._authenticate(request)
            self._locate(request.bucket)
            answer = self._act(user, request)
            code = ""
        except OSSError as err:
            answer = Answer(
                err.status,
                (("Content-Type", "application/xml"),),
                err.body(request_id, request.host),
            )
            code = err.code
        record = Record(
            request.method, request.bucket, request.key, key_id, version, answer.status, code
        )
        with self._lock:
            self.requests.append(record)
        return answer, record

    def _locate(self, bucket: str | None) -> None:
        """Refuse a bucket that does not exist, or that lives in another region."""
        if bucket is None or bucket in self.buckets:
            return
        region = self.elsewhere.get(bucket)
        if region is None:
            raise OSSError(
                404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=bucket
            )
        raise _access_denied(
            "The bucket you are attempting to access must be addressed using the specified "
            "endpoint. Please send all future requests to this endpoint.",
            Bucket=bucket,
            Endpoint=f"oss-{region}.aliyuncs.com",
        )

    def _authenticate(self, request: Request) -> User | None:
        """The user who signed the request; None when it is unsigned."""
        authorization = request.headers.get("authorization", "")
        if not authorization:
            return None
        if authorization.startswith("OSS "):
            return self._verify_v1(request, authorization)
        if authorization.startswith(V4_ALGORITHM + " "):
            return self._verify_v4(request, authorization)
        raise _invalid_argument("Authorization header is invalid.", "Authorization", "")

    def _user(self, access_key_id: str) -> User:
        user = self._keys.get(access_key_id)
        if user is None:
            raise OSSError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                OSSAccessKeyId=access_key_id,
            )
        return user

    def _check_time(self, when: datetime.datetime) -> None:
        skew = abs(self.clock() - when.timestamp())
        if skew > MAX_SKEW_SECONDS:
            raise OSSError(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                MaxAllowedSkewMilliseconds=str(MAX_SKEW_SECONDS * 1000),
            )

    def _verify_v1(self, request: Request, authorization: str) -> User:
        key_id, colon, provided = authorization[len("OSS ") :].strip().rpartition(":")
        if not colon or not key_id:
            raise _invalid_argument("Authorization header is invalid.", "Authorization", "")
        user = self._user(key_id)
        date = request.headers.get("x-oss-date") or request.headers.get("date", "")
        try:
            when = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError):
            raise _access_denied("OSS authentication requires a valid Date.") from None
        self._check_time(when)
        string_to_sign = v1_string_to_sign(
            request.method, request.headers, request.bucket, request.key, request.query
        )
        expected = v1_signature(user.access_key_secret, string_to_sign)
        if not hmac.compare_digest(expected, provided):
            raise OSSError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                StringToSign=string_to_sign,
                SignatureProvided=provided,
                OSSAccessKeyId=key_id,
            )
        return user

    def _verify_v4(self, request: Request, authorization: str) -> User:
        fields: dict[str, str] = {}
        for part in authorization[len(V4_ALGORITHM) :].split(","):
            name, _, value = part.strip().partition("=")
            fields[name] = value
        credential, provided = fields.get("Credential", ""), fields.get("Signature", "")
        scope = credential.split("/")
        if len(scope) != 5 or not provided:
            raise _invalid_argument("Authorization header is invalid.", "Authorization", "")
        key_id, date, region, product, terminator = scope
        user = self._user(key_id)
        if product != V4_PRODUCT:
            raise _invalid_argument(
                "Invalid signing product in Authorization header.", "Credential", product
            )
        if region != self.region:
            raise _invalid_argument(
                "Invalid signing region in Authorization header.", "Credential", region
            )
        if terminator != V4_TERMINATOR:
            raise _invalid_argument(
                "Invalid signing terminator in Authorization header.", "Credential", terminator
            )
        timestamp = request.headers.get("x-oss-date", "")
        if not _V4_DATE.match(timestamp):
            raise _access_denied("OSS authentication requires a valid x-oss-date.")
        if date != timestamp[:8]:
            raise _invalid_argument(
                "Invalid signing date in Authorization header.", "Credential", date
            )
        self._check_time(
            datetime.datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
        )
        payload = request.headers.get("x-oss-content-sha256")
        if payload is None:
            raise _invalid_argument(
                "Missing required header for this request: x-oss-content-sha256.",
                "x-oss-content-sha256",
                "",
            )
        if payload != UNSIGNED_PAYLOAD and payload != hashlib.sha256(request.body).hexdigest():
            raise _invalid_argument(
                "The x-oss-content-sha256 you specified did not match what we received.",
                "x-oss-content-sha256",
                payload,
            )
        additional = [h.strip().lower() for h in fields.get("AdditionalHeaders", "").split(";")]
        canonical = v4_canonical_request(
            request.method,
            request.bucket,
            request.key,
            request.query,
            request.headers,
            [h for h in additional if h],
        )
        expected = v4_signature(user.access_key_secret, timestamp, self.region, canonical)
        if not hmac.compare_digest(expected, provided):
            raise OSSError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                CanonicalRequest=canonical,
                StringToSign=v4_string_to_sign(timestamp, self.region, canonical),
                SignatureProvided=provided,
                OSSAccessKeyId=key_id,
            )
        return user

    def _act(self, user: User | None, request: Request) -> Answer:
        if request.bucket is None or not request.key or request.query:
            raise OSSError(
                501,
                "NotImplemented",
                "This server implements only PutObject, GetObject, HeadObject and DeleteObject.",
            )
        action = {
            "PUT": PUT_OBJECT,
            "GET": GET_OBJECT,
            "HEAD": GET_OBJECT,
            "DELETE": DELETE_OBJECT,
        }.get(request.method)
        if action is None:
            raise OSSError(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
                Method=request.method,
            )
        if user is None or action not in user.actions:
            raise _access_denied()
        where = (request.bucket, request.key)
        if request.method == "PUT":
            return self._put(where, request)
        if request.method == "DELETE":
            with self._lock:
                self._objects.pop(where, None)
            return Answer(204)
        with self._lock:
            stored = self._objects.get(where)
        if stored is None:
            raise OSSError(404, "NoSuchKey", "The specified key does not exist.", Key=request.key)
        headers = (*_object_headers(stored), ("Content-Type", stored.content_type))
        return Answer(200, headers, stored.body)

    def _put(self, where: tuple[str, str], request: Request) -> Answer:
        md5 = hashlib.md5(request.body).digest()
        given = request.headers.get("content-md5")
        if given is not None and given != base64.b64encode(md5).decode():
            raise OSSError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
        stored = StoredObject(
            body=request.body,
            content_type=request.headers.get("content-type", "application/octet-stream"),
            metadata=tuple(
                sorted((k, v) for k, v in request.headers.items() if k.startswith("x-oss-meta-"))
            ),
            modified=self.clock(),
        )
        with self._lock:
            self._objects[where] = stored
        return Answer(200, _object_headers(stored)[:2])


def _object_headers(stored: StoredObject) -> tuple[tuple[str, str], ...]:
    etag = hashlib.md5(stored.body).hexdigest().upper()
    return (
        ("ETag", f'"{etag}"'),
        ("x-oss-hash-crc64ecma", str(crc64(stored.body))),
        ("Last-Modified", email.utils.formatdate(stored.modified, usegmt=True)),
        *stored.metadata,
    )


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every request goes to `OSSServer.handle`."""

    oss: OSSServer
    protocol_version = "HTTP/1.1"
    server_version = "AliyunOSS"
    sys_version = ""

    def do_PUT(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the server keeps its own log (`OSSServer.requests`)."""

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = []
        for item in parts.query.split("&") if parts.query else []:
            name, _, value = item.partition("=")
            query.append((unquote(name), unquote(value)))
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            lower = name.lower()
            headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
        host = headers.get("host", "")
        bucket, key = self.oss.route(host, parts.path or "/")
        request = Request(self.command, host, bucket, key, query, headers, self._body())
        request_id = secrets.token_hex(12).upper()
        answer, _ = self.oss.handle(request, request_id)
        body = answer.body
        self.send_response(answer.status)
        self.send_header("x-oss-request-id", request_id)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


# --- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9100, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--region", default=DEFAULT_REGION, help="region V4 scopes must name")
    parser.add_argument("--state", type=Path, required=True, help="folder for credentials.json")
    parser.add_argument(
        "--bucket",
        action="append",
        dest="buckets",
        help=f"bucket to serve (repeatable; default: {', '.join(DEFAULT_BUCKETS)})",
    )
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = OSSServer(
        region=args.region,
        buckets=args.buckets or DEFAULT_BUCKETS,
        host=args.host,
        port=args.port,
    )
    with server:
        args.state.mkdir(parents=True, exist_ok=True)
        target = args.state / CREDENTIALS_FILE
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(server.credentials_document(), indent=2) + "\n")
        os.chmod(tmp, 0o600)
        tmp.replace(target)
        print(f"ossserver: serving {server.endpoint} (credentials in {target})", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
