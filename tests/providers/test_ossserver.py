"""The OSS test server (hack/ossserver.py) accepts what OSS accepts and refuses what it refuses.

Its signing code is written from Alibaba's documentation. First it is held to
known answers: the V1 and V4 vectors published in the test suites of
Alibaba's own OSS SDKs (the Java SDK's V1 signer, the Python V2 SDK's V4
signer), so it agrees with Alibaba's signers and not only with oss2. Then
oss2, signing with V1 (`oss2.Auth`) and with V4 (`oss2.AuthV4`), talks to the
running server: a round trip, and each refusal with OSS's status and code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import oss2  # type: ignore[import-untyped]
import pytest
import requests

from destination_operator.probe.control import ProbeControl
from ossserver import (
    DEFAULT_DOMAIN,
    OSSServer,
    crc64,
    make_users,
    v1_signature,
    v1_string_to_sign,
    v4_canonical_request,
    v4_signature,
)

BUCKET = "destinations"
REGION = "cn-hangzhou"
VERSIONS = ["V1", "V4"]

# --- known answers ---------------------------------------------------------------------------

V1_DATE = "Wed, 28 Dec 2022 10:27:41 GMT"
V1_PUT = {
    "content-md5": "eB5eJF1ptWaXm4bijSPyxw==",
    "content-type": "text/html",
    "x-oss-meta-author": "alice",
    "x-oss-meta-magic": "abracadabra",
    "x-oss-date": V1_DATE,
}
V1_VECTORS = [
    ("object", "PUT", V1_PUT, "nelson", [], "kSHKmLxlyEAKtZPkJhG9bZb5k7M="),
    ("sub-resource", "PUT", V1_PUT, "nelson", [("acl", "")], "/afkugFbmWDQ967j1vr6zygBLQk="),
    (
        "unsigned-parameter",
        "GET",
        {"x-oss-date": V1_DATE},
        "",
        [("resourceGroup", ""), ("non-resousce", "null")],
        "vkQmfuUDyi1uDi3bKt67oemssIs=",
    ),
    (
        "sorted-sub-resources",
        "GET",
        {"x-oss-date": V1_DATE},
        "",
        [("resourceGroup", ""), ("acl", "")],
        "x3E5TgOvl/i7PN618s5mEvpJDYk=",
    ),
]


@pytest.mark.parametrize(
    ("method", "headers", "key", "query", "expected"),
    [vector[1:] for vector in V1_VECTORS],
    ids=[vector[0] for vector in V1_VECTORS],
)
def test_v1_signature_matches_alibabas_vectors(
    method: str, headers: dict[str, str], key: str, query: list[tuple[str, str]], expected: str
) -> None:
    string_to_sign = v1_string_to_sign(method, headers, "examplebucket", key, query)
    assert v1_signature("sk", string_to_sign) == expected


V4_HEADERS = {
    "x-oss-head1": "value",
    "abc": "value",
    "zabc": "value",
    "xyz": "value",
    "content-type": "text/plain",
    "x-oss-content-sha256": "UNSIGNED-PAYLOAD",
}
V4_QUERY = [
    ("param1", "value1"),
    ("+param1", "value3"),
    ("|param1", "value4"),
    ("+param2", ""),
    ("|param2", ""),
    ("param2", ""),
]
V4_VECTORS = [
    (
        "plain",
        "20231216T162057Z",
        {},
        [],
        "e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe",
    ),
    (
        "security-token",
        "20231217T034736Z",
        {"x-oss-security-token": "token"},
        [],
        "b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea",
    ),
    (
        "additional-headers",
        "20231216T172512Z",
        {},
        ["abc", "zabc"],
        "4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f",
    ),
]


@pytest.mark.parametrize(
    ("timestamp", "extra", "additional", "expected"),
    [vector[1:] for vector in V4_VECTORS],
    ids=[vector[0] for vector in V4_VECTORS],
)
def test_v4_signature_matches_alibabas_vectors(
    timestamp: str, extra: dict[str, str], additional: list[str], expected: str
) -> None:
    headers = {**V4_HEADERS, **extra, "x-oss-date": timestamp}
    canonical = v4_canonical_request(
        "PUT", "bucket", "1234+-/123/1.txt", V4_QUERY, headers, additional
    )
    assert v4_signature("sk", timestamp, REGION, canonical) == expected


def test_crc64_is_crc64_xz() -> None:
    """The catalogue's check value of CRC-64/XZ, which OSS calls crc64ecma."""
    assert crc64(b"123456789") == 0x995DC9BBDF1939FA
    assert crc64(b"") == 0


# --- oss2 against the running server ---------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[OSSServer]:
    with OSSServer(elsewhere={"beijing-bucket": "cn-beijing"}) as running:
        yield running


def auth(version: str, access_key_id: str, secret: str) -> Any:
    return (oss2.Auth if version == "V1" else oss2.AuthV4)(access_key_id, secret)


def bucket(
    server: OSSServer,
    version: str,
    user: str = "admin",
    *,
    name: str = BUCKET,
    secret: str | None = None,
    access_key_id: str | None = None,
    region: str = REGION,
    endpoint: str | None = None,
) -> Any:
    """An oss2 Bucket on `server`, signing as `user` (or with the given key id and secret)."""
    pair = server.users[user]
    return oss2.Bucket(
        auth(version, access_key_id or pair.access_key_id, secret or pair.access_key_secret),
        endpoint or server.endpoint,
        name,
        region=region,
    )


def refused(call: Callable[[], object]) -> Any:
    """The OssError that `call` raises (it must raise one)."""
    with pytest.raises(oss2.exceptions.OssError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip(server: OSSServer, version: str) -> None:
    admin = bucket(server, version)
    key = f"round-trip/{version}/a b+c.txt"
    put = admin.put_object(key, b"hello", headers={"x-oss-meta-purpose": "test"})
    assert put.status == 200 and put.etag == "5D41402ABC4B2A76B9719D911017C592"
    assert put.crc == crc64(b"hello")  # oss2 compared it with its own CRC already
    got = admin.get_object(key)
    assert got.read() == b"hello" and got.headers["x-oss-meta-purpose"] == "test"
    assert admin.delete_object(key).status == 204
    assert refused(lambda: admin.get_object(key)).code == "NoSuchKey"
    seen = server.requests_for(key)
    assert [(r.method, r.status, r.signature_version) for r in seen] == [
        ("PUT", 200, version),
        ("GET", 200, version),
        ("DELETE", 204, version),
        ("GET", 404, version),
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_chunked_upload_is_stored_whole(server: OSSServer, version: str) -> None:
    key = f"chunked/{version}.txt"
    bucket(server, version).put_object(key, iter([b"part one, ", b"part two"]))
    assert server.object(BUCKET, key) == b"part one, part two"


REFUSALS: list[tuple[str, Callable[[OSSServer, str], Callable[[], object]], int, str]] = [
    (
        "wrong-secret",
        lambda s, v: lambda: bucket(s, v, secret="not-the-secret").put_object("r/a", b"x"),
        403,
        "SignatureDoesNotMatch",
    ),
    (
        "unknown-key-id",
        lambda s, v: lambda: bucket(s, v, access_key_id="LTAInosuchkey").put_object("r/a", b"x"),
        403,
        "InvalidAccessKeyId",
    ),
    (
        "no-such-bucket",
        lambda s, v: lambda: bucket(s, v, name="no-such-bucket").put_object("r/a", b"x"),
        404,
        "NoSuchBucket",
    ),
    (
        "bucket-in-another-region",
        lambda s, v: lambda: bucket(s, v, name="beijing-bucket").put_object("r/a", b"x"),
        403,
        "AccessDenied",
    ),
    (
        "write-only-user-deletes",
        lambda s, v: lambda: bucket(s, v, "writer").delete_object("r/a"),
        403,
        "AccessDenied",
    ),
    (
        "no-access-user-writes",
        lambda s, v: lambda: bucket(s, v, "no-access").put_object("r/a", b"x"),
        403,
        "AccessDenied",
    ),
    (
        "wrong-content-md5",
        lambda s, v: (
            lambda: bucket(s, v).put_object(
                "r/a", b"x", headers={"Content-MD5": "eB5eJF1ptWaXm4bijSPyxw=="}
            )
        ),
        400,
        "InvalidDigest",
    ),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("make_call", "status", "code"),
    [refusal[1:] for refusal in REFUSALS],
    ids=[refusal[0] for refusal in REFUSALS],
)
def test_refusals(
    server: OSSServer,
    version: str,
    make_call: Callable[[OSSServer, str], Callable[[], object]],
    status: int,
    code: str,
) -> None:
    error = refused(make_call(server, version))
    assert (error.status, error.code) == (status, code)
    assert error.request_id and error.details["RequestId"] == error.request_id
    assert server.requests[-1].signature_version == version


@pytest.mark.parametrize("version", VERSIONS)
def test_a_wrong_signature_is_answered_with_the_string_to_sign(
    server: OSSServer, version: str
) -> None:
    """As OSS does, so that a client's author can compare it with their own."""
    error = refused(lambda: bucket(server, version, secret="wrong").put_object("r/s", b"x"))
    assert error.details["StringToSign"].startswith("PUT\n" if version == "V1" else "OSS4-HMAC")
    assert error.details["OSSAccessKeyId"] == server.users["admin"].access_key_id


@pytest.mark.parametrize("version", VERSIONS)
def test_a_clock_off_by_twenty_minutes_is_refused(version: str) -> None:
    users = make_users()
    with OSSServer(users=users, clock=lambda: time.time() + 20 * 60) as skewed:
        error = refused(lambda: bucket(skewed, version).put_object("r/t", b"x"))
    assert (error.status, error.code) == (403, "RequestTimeTooSkewed")


def test_a_v4_signature_for_another_region_is_refused(server: OSSServer) -> None:
    error = refused(lambda: bucket(server, "V4", region="cn-shanghai").put_object("r/b", b"x"))
    assert (error.status, error.code) == (400, "InvalidArgument")
    assert "signing region" in error.message


def test_an_unsigned_request_is_access_denied(server: OSSServer) -> None:
    answer = requests.put(f"{server.endpoint}/{BUCKET}/r/anonymous", data=b"x", timeout=5)
    assert answer.status_code == 403
    assert "<Code>AccessDenied</Code>" in answer.text
    assert f"<RequestId>{answer.headers['x-oss-request-id']}</RequestId>" in answer.text
    assert server.object(BUCKET, "r/anonymous") is None


@pytest.mark.parametrize("version", VERSIONS)
def test_a_signature_is_good_for_its_own_request_only(server: OSSServer, version: str) -> None:
    """Signed for one key and sent for another: refused; sent as signed: accepted."""
    admin = server.users["admin"]
    signer = auth(version, admin.access_key_id, admin.access_key_secret)
    signed_for = f"{server.endpoint}/{BUCKET}/replay/{version}-a"
    request = oss2.http.Request("PUT", signed_for, data=b"x", region=REGION, product="oss")
    signer._sign_request(request, BUCKET, f"replay/{version}-a")
    headers = {k: v for k, v in request.headers.items() if v is not None}
    other = requests.put(signed_for.replace("-a", "-b"), data=b"x", headers=headers, timeout=5)
    assert other.status_code == 403 and "SignatureDoesNotMatch" in other.text
    same = requests.put(signed_for, data=b"x", headers=headers, timeout=5)
    assert same.status_code == 200
    assert server.object(BUCKET, f"replay/{version}-b") is None


@pytest.mark.parametrize("version", VERSIONS)
def test_virtual_hosted_requests_name_the_bucket_in_the_host(
    server: OSSServer, version: str
) -> None:
    """oss2 puts the bucket in front of a host name; the connection is pinned to loopback."""
    endpoint = f"http://{DEFAULT_DOMAIN}:{server.port}"
    key = f"virtual/{version}.txt"
    with ProbeControl(5, pins={f"{BUCKET}.{DEFAULT_DOMAIN}": ["127.0.0.1"]}):
        bucket(server, version, endpoint=endpoint).put_object(key, b"v")
    assert server.object(BUCKET, key) == b"v"
    assert [(r.bucket, r.status) for r in server.requests_for(key)] == [(BUCKET, 200)]
