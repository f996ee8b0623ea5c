"""Error classification and scrubbing: each lower-layer failure gets its reason; no secret leaks."""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any
from urllib.parse import quote

import botocore.exceptions as bce
import pytest
from hypothesis import given
from hypothesis import strategies as st

from destination_operator.api.status import Reason
from destination_operator.errors import (
    DestinationError,
    ProbeFailedError,
    ProviderUnavailableError,
    SecretKeyMissingError,
    map_exceptions,
    translate,
)
from destination_operator.providers.s3errors import classify_botocore
from destination_operator.redaction import MAX_MESSAGE_LENGTH, scrub

SECRET = "zQ9+wXs/ECRET-very-distinctive-VALUE-4b1d"
KEY_ID = "AKIADISTINCTIVEKEYID7"
TOKEN = "FwoGZXIvYXdzEDistinctiveSessionToken//abc=="
ALL = (SECRET, KEY_ID, TOKEN)


def client_error(code: str, message: str = "", status: int = 400, op: str = "PutObject") -> Any:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return bce.ClientError(response, op)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (client_error("InvalidAccessKeyId", status=403), Reason.AuthenticationFailed),
        (client_error("SignatureDoesNotMatch", status=403), Reason.AuthenticationFailed),
        (client_error("ExpiredToken", status=400), Reason.AuthenticationFailed),
        (client_error("AccessDenied", "Access Denied", 403), Reason.AccessDenied),
        (client_error("", status=403, op="HeadBucket"), Reason.AccessDenied),
        (
            client_error("NoSuchBucket", "The specified bucket does not exist", 404),
            Reason.BucketNotFound,
        ),
        (client_error("RequestTimeout", status=400), Reason.Timeout),
        (
            client_error("InternalError", "We encountered an internal error", 500),
            Reason.ProbeFailed,
        ),
        (
            bce.EndpointConnectionError(endpoint_url="http://127.0.0.1:1/b/k"),
            Reason.EndpointUnreachable,
        ),
        (
            bce.ConnectionClosedError(endpoint_url="http://127.0.0.1:1/b/k"),
            Reason.EndpointUnreachable,
        ),
        (bce.ReadTimeoutError(endpoint_url="http://127.0.0.1:1/b/k"), Reason.Timeout),
        (bce.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1/b/k"), Reason.Timeout),
        (
            bce.SSLError(
                endpoint_url="https://x/", error=ssl.SSLError("certificate verify failed")
            ),
            Reason.TLSError,
        ),
        (bce.NoCredentialsError(), Reason.AuthenticationFailed),
        (bce.ParamValidationError(report="Invalid bucket name"), Reason.InvalidSpec),
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            Reason.EndpointUnreachable,
        ),
        (socket.gaierror(-2, "Name or service not known"), Reason.EndpointUnreachable),
        (OSError(errno.EHOSTUNREACH, "No route to host"), Reason.EndpointUnreachable),
        (TimeoutError("timed out"), Reason.Timeout),
        (ssl.SSLCertVerificationError("certificate verify failed"), Reason.TLSError),
        (RuntimeError("something odd"), Reason.ProbeFailed),
        (ValueError("connection refused by peer"), Reason.EndpointUnreachable),
    ],
)
def test_translate_maps_each_failure_to_its_reason(exc: BaseException, reason: Reason) -> None:
    error = translate(exc, classify=classify_botocore)
    assert isinstance(error, DestinationError)
    assert error.reason == reason
    assert error.message and "\n" not in error.message


def test_client_error_message_names_operation_and_code() -> None:
    error = translate(
        client_error("AccessDenied", "Access Denied", 403, op="DeleteObject"),
        classify=classify_botocore,
    )
    assert error.message == "DeleteObject: AccessDenied (Access Denied)"


def test_errors_knows_no_sdk_without_the_providers_classifier() -> None:
    error = translate(client_error("AccessDenied", "Access Denied", 403))
    assert error.reason == Reason.ProbeFailed


def test_a_wrapped_low_level_error_is_found_in_the_chain() -> None:
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        except OSError as inner:
            raise RuntimeError("request failed") from inner
    except RuntimeError as outer:
        assert translate(outer).reason == Reason.EndpointUnreachable


def test_translate_keeps_our_own_errors() -> None:
    original = SecretKeyMissingError("secretAccessKey")
    assert translate(original) is original
    assert original.reason == Reason.SecretKeyMissing


def test_map_exceptions_reraises_translated_without_the_original() -> None:
    with pytest.raises(DestinationError) as info, map_exceptions(ALL, classify_botocore):
        raise client_error("SignatureDoesNotMatch", f"bad {SECRET}", 403)
    assert info.value.reason == Reason.AuthenticationFailed
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert SECRET not in str(info.value)


# --- scrubbing ---------------------------------------------------------------------------------

LEAKY = [
    f"The secret was {SECRET}",
    f"key {KEY_ID} with secret {SECRET} and token {TOKEN}",
    f"url http://host/b/k?X-Amz-Credential={KEY_ID}%2F20260101%2Fus-east-1&X-Amz-Signature=abcdef0123",
    f"quoted {quote(SECRET, safe='')} in a URL",
    f"Authorization: AWS4-HMAC-SHA256 Credential={KEY_ID}/20260101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0123456789abcdef0123456789abcdef",
    f"headers {{'Authorization': 'AWS4-HMAC-SHA256 Credential={KEY_ID}/x, Signature=deadbeef'}}",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    "Authorization: SharedKey account:bm90LWEtcmVhbC1rZXk=",
    "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=bm90LWEtcmVhbC1rZXk=;",
    "https://a.blob.core.windows.net/c?sv=2024&sig=bm90LWEtcmVhbC1zaWc%3D",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
]


@pytest.mark.parametrize("text", LEAKY)
def test_scrub_removes_values_and_credential_shapes(text: str) -> None:
    out = scrub(text, ALL)
    for value in (*ALL, quote(SECRET, safe="")):
        assert value not in out
    for shape in (
        "abcdef0123",
        "0123456789abcdef",
        "deadbeef",
        "eyJhbGci",
        "bm90LWEtcmVhbC",
        "MIIEvQ",
    ):
        assert shape not in out
    assert "\n" not in out


@pytest.mark.parametrize("text", LEAKY)
def test_every_error_class_scrubs_its_message(text: str) -> None:
    kinds = [
        cls for cls in _subclasses(DestinationError) if cls.__init__ is DestinationError.__init__
    ]
    assert len(kinds) >= 10
    for cls in kinds:
        message = cls(text, secrets=ALL).message
        assert all(value not in message for value in ALL), cls


def _subclasses(cls: type[DestinationError]) -> list[type[DestinationError]]:
    found = [cls]
    sub: type[DestinationError]
    for sub in cls.__subclasses__():
        found += _subclasses(sub)
    return found


def test_translate_scrubs_sdk_messages() -> None:
    exc = client_error("SignatureDoesNotMatch", f"expected signature for {KEY_ID}:{SECRET}", 403)
    error = translate(exc, secrets=ALL, classify=classify_botocore)
    assert error.reason == Reason.AuthenticationFailed
    assert SECRET not in error.message and KEY_ID not in error.message
    assert "***" in error.message


def test_secret_bytes_are_scrubbed_too() -> None:
    assert SECRET not in scrub(f"x {SECRET} y", [SECRET.encode()])


def test_a_short_secret_withholds_the_whole_message() -> None:
    out = scrub("Access denied for key abc", ["abc"])
    assert "abc" not in out and "withheld" in out


def test_a_short_value_inside_a_word_is_harmless() -> None:
    assert scrub("the operator has no provider", ["a", "s3"]) == "the operator has no provider"
    assert "withheld" in scrub("bucket s3 refused", ["s3"])


def test_blank_values_scrub_nothing() -> None:
    assert scrub("all fine here", ["", "   ", b""]) == "all fine here"


def test_a_mask_cannot_rebuild_the_secret() -> None:
    secret = "ab***cde"
    assert secret not in scrub(f"ab{secret}cde", [secret])


def test_messages_are_one_short_line() -> None:
    out = scrub("line one\n  line two\t" + "x" * 1000)
    assert "\n" not in out and "\t" not in out
    assert len(out) <= MAX_MESSAGE_LENGTH
    assert out.startswith("line one line two")


def test_provider_unavailable_names_the_extra() -> None:
    error = ProviderUnavailableError("AWS (boto3)", "s3")
    assert isinstance(error, ProbeFailedError)
    assert error.reason == Reason.ProviderUnavailable
    assert "pip install 'destination-operator[s3]'" in error.message


def test_secret_key_missing_names_the_key_only() -> None:
    error = SecretKeyMissingError("secretAccessKey", secret_name="creds")
    assert error.message == "Secret 'creds' has no key 'secretAccessKey'"
    assert error.key == "secretAccessKey"


@given(
    secret=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=8, max_size=60
    ).filter(lambda s: s.strip() == s and s.split() == [s]),
    before=st.text(max_size=80),
    after=st.text(max_size=80),
)
def test_scrub_never_lets_a_secret_through(secret: str, before: str, after: str) -> None:
    out = scrub(f"{before}{secret}{after}", [secret])
    assert secret not in out


def test_secret_key_missing_names_the_alternatives() -> None:
    error = SecretKeyMissingError(
        "accountKey", secret_name="az", alternatives=("accountKey", "sasToken", "connectionString")
    )
    assert (
        error.message == "Secret 'az' has none of the keys accountKey, sasToken or connectionString"
    )
    assert error.alternatives == ("accountKey", "sasToken", "connectionString")


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        (
            "token refused: eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJhQGIuY29tIn0.c2lnbmF0dXJl-_x",
            "eyJhbGciOiJSUzI1NiJ9",
        ),
        ("proxy https://alice:s3cr3t-pass@proxy.example.com:3128 refused", "s3cr3t-pass"),
        ("key AKIAIOSFODNN7EXAMPLE is not valid", "AKIAIOSFODNN7EXAMPLE"),
        ("temporary ASIAIOSFODNN7EXAMPLE expired", "ASIAIOSFODNN7EXAMPLE"),
        ("sas ?sv=2024-01-01&sp=cw&sig=AbCdEf%2Bghij%3D denied", "AbCdEf%2Bghij%3D"),
    ],
)
def test_scrub_removes_credential_shapes_nobody_named(text: str, gone: str) -> None:
    cleaned = scrub(text)
    assert gone not in cleaned
    assert "***" in cleaned


def test_scrub_keeps_the_host_of_a_url_with_credentials() -> None:
    assert (
        scrub("via https://u:p4ssw0rd@proxy.example.com/") == "via https://***@proxy.example.com/"
    )
