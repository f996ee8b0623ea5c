"""The S3 provider's client cache: reuse without ever granting more time than is left."""

from __future__ import annotations

import pytest

from destination_operator.providers.s3 import (
    CLIENTS_KEPT,
    S3Credentials,
    S3Target,
    _Sdk,
    client_timeout,
)

TARGET = S3Target(
    bucket="b",
    region="us-east-1",
    endpoint_url="http://127.0.0.1:9",
    path_style=True,
    user_endpoint=True,
)
KEYS = S3Credentials("AKIDEXAMPLE", "secret-one")


@pytest.mark.parametrize(
    ("remaining", "expected"), [(30.0, 30.0), (29.95, 29.0), (1.0, 1.0), (0.4, 0.4)]
)
def test_client_timeout_never_exceeds_what_is_left(remaining: float, expected: float) -> None:
    assert client_timeout(remaining) == expected
    assert client_timeout(remaining) <= remaining


def test_the_same_endpoint_credentials_and_timeout_share_a_client() -> None:
    sdk = _Sdk()
    first = sdk.client(TARGET, KEYS, 29.9)
    assert sdk.client(TARGET, KEYS, 29.2) is first  # both round down to 29 s
    other_bucket = S3Target("c", "us-east-1", "http://127.0.0.1:9", True, True)
    assert sdk.client(other_bucket, KEYS, 29.0) is first  # the bucket is per request
    assert sdk.client(TARGET, S3Credentials("AKIDEXAMPLE", "secret-two"), 29.0) is not first
    assert sdk.client(TARGET, KEYS, 10.0) is not first
    assert first.meta.config.read_timeout == 29.0


def test_the_cache_is_bounded() -> None:
    sdk = _Sdk()
    for i in range(CLIENTS_KEPT + 5):
        sdk.client(TARGET, S3Credentials(f"AKID{i}", "secret"), 5.0)
    assert len(sdk._clients) == CLIENTS_KEPT
