"""Reading when credentials expire from their text alone: a SAS token's `se` (also inside a
connection string), a JWT's `exp`, the earliest `notAfter` of a CA bundle. Malformed or
oversized input is unknown (None), never an exception, and no message holds the value."""

from __future__ import annotations

import base64
import datetime
import json
import time

import pytest

from certs import issue
from destination_operator.expiry import (
    MAX_CERTIFICATES,
    MAX_TOKEN_CHARS,
    Expiry,
    ca_bundle_expiry,
    earliest,
    jwt_expiry,
    sas_expiry,
)
from destination_operator.providers.azure import AzureBlobStorageProvider
from destination_operator.providers.webhook import WebhookProvider

UTC = datetime.UTC
SIGNATURE = "sig=Zm9vYmFyYmF6cXV4cXV1eA%3D%3D"


def at(*parts: int) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# --- SAS se ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (f"sv=2025-01-05&se=2026-12-20T08:30:00Z&sp=cw&{SIGNATURE}", at(2026, 12, 20, 8, 30)),
        (f"?sv=2025-01-05&se=2026-12-20T08%3A30%3A00Z&{SIGNATURE}", at(2026, 12, 20, 8, 30)),
        ("se=2026-12-20&sp=r", at(2026, 12, 20)),  # a date alone: midnight UTC
        ("se=2026-12-20T08:30Z", at(2026, 12, 20, 8, 30)),  # no seconds
        ("se=2026-12-20T08:30:15.1234567Z", at(2026, 12, 20, 8, 30, 15)),
        ("  ?se=2026-12-20T08:30:00Z  ", at(2026, 12, 20, 8, 30)),
    ],
)
def test_sas_se_is_read(token: str, expected: datetime.datetime) -> None:
    found = sas_expiry(token, "the SAS token in the Secret's sasToken")
    assert found == Expiry(expected, "the SAS token in the Secret's sasToken")


@pytest.mark.parametrize(
    "token",
    [
        f"sv=2025-01-05&si=policy-1&sp=r&{SIGNATURE}",  # expiry kept in a stored access policy
        "se=",
        "se=tomorrow",
        "se=2026-13-01",  # month 13
        "se=2026-02-30T00:00:00Z",  # no such day
        "se=2026-12-20T25:00:00Z",  # hour 25
        "se=2026-12-20T08:30:00+01:00",  # Azure takes UTC only
        "xse=2026-12-20",  # another field's name ends in se
        "se=" + "9" * 100,
        "",
        "&&&===",
    ],
)
def test_a_sas_without_a_readable_se_is_unknown(token: str) -> None:
    assert sas_expiry(token, "x") is None


def test_an_oversized_sas_is_not_read() -> None:
    token = "se=2026-12-20&" + "a" * MAX_TOKEN_CHARS
    assert sas_expiry(token, "x") is None


def test_the_first_se_counts_as_azure_reads_it() -> None:
    found = sas_expiry("se=2026-12-20&se=2027-01-01", "x")
    assert found is not None and found.at == at(2026, 12, 20)


def test_a_connection_strings_sas_and_a_sas_token_are_read_by_the_azure_provider() -> None:
    provider = AzureBlobStorageProvider()
    sas = f"sv=2025-01-05&se=2026-12-20T08:30:00Z&sr=c&sp=cwd&{SIGNATURE}"
    connection = "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=" + sas
    for data, where in (
        ({"sasToken": "?" + sas}, "the SAS token in the Secret's sasToken"),
        (
            {"connectionString": connection},
            "the SharedAccessSignature in the Secret's connectionString",
        ),
    ):
        credentials = provider.load_credentials(data)
        assert provider.expiries(credentials) == [Expiry(at(2026, 12, 20, 8, 30), where)]
        assert "sig=" not in where and "Zm9v" not in where
    key = base64.b64encode(b"k" * 64).decode()
    credentials = provider.load_credentials({"accountKey": key})
    assert provider.expiries(credentials) == []  # an account key does not expire


# --- JWT exp -----------------------------------------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims: object, header: object | None = None) -> str:
    head = b64url(json.dumps(header or {"alg": "RS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(b'signature-bytes')}"


def test_a_jwt_exp_is_read_without_its_signature() -> None:
    exp = int(at(2026, 12, 20, 8, 30).timestamp())
    found = jwt_expiry(jwt({"sub": "pipeline", "exp": exp}), "the JWT in the Secret's bearerToken")
    assert found == Expiry(at(2026, 12, 20, 8, 30), "the JWT in the Secret's bearerToken")
    fractional = jwt_expiry(jwt({"exp": exp + 0.75}), "x")
    assert fractional is not None and fractional.at == at(2026, 12, 20, 8, 30)
    unsigned = jwt_expiry(jwt({"exp": exp}).rsplit(".", 1)[0] + ".", "x")
    assert unsigned is not None  # `alg: none` has an empty signature


@pytest.mark.parametrize(
    "token",
    [
        "opaque-token-4f8e2a1c",  # not a JWT: its expiry is unknown
        jwt({"sub": "no exp"}),
        jwt({"exp": "2026-12-20"}),  # a string
        jwt({"exp": True}),
        jwt({"exp": None}),
        jwt({"exp": -1}),
        jwt({"exp": 1e300}),  # beyond year 9999
        jwt([1, 2, 3]),  # claims that are not an object
        "a.b.c",  # payload not JSON
        "a.!!!.c",  # not base64url
        "a.b",
        "a.b.c.d",
        "eyJhbGciOiJub25lIn0." + b64url(b'{"exp": 1e999}') + ".",  # infinity
        "eyJhbGciOiJub25lIn0." + b64url(b'{"exp": NaN}') + ".",
        "eyJhbGciOiJub25lIn0." + b64url(b"[" * 100000) + ".",  # too deep / too long
    ],
)
def test_a_token_without_a_readable_exp_is_unknown(token: str) -> None:
    assert jwt_expiry(token, "x") is None


def test_the_webhook_provider_reads_its_bearer_tokens_exp() -> None:
    provider = WebhookProvider()
    exp = int(at(2026, 12, 20).timestamp())
    data = {"verificationToken": "v" * 32, "bearerToken": jwt({"exp": exp})}
    found = provider.expiries(provider.load_credentials(data))
    assert found == [Expiry(at(2026, 12, 20), "the JWT in the Secret's bearerToken")]
    opaque = provider.load_credentials({"verificationToken": "v" * 32, "bearerToken": "opaque"})
    assert provider.expiries(opaque) == []
    without = provider.load_credentials({"verificationToken": "v" * 32})
    assert provider.expiries(without) == []


# --- caBundle notAfter -------------------------------------------------------------------------


def certificate(name: str, not_after: datetime.datetime) -> str:
    return issue(name, ca=True, not_before=at(2026, 1, 1), not_after=not_after).pem


def test_the_earliest_not_after_in_a_bundle_is_read() -> None:
    later = certificate("root", at(2030, 1, 1))
    sooner = certificate("intermediate", at(2026, 12, 20, 8, 30))
    bundle = f"# our CAs\n{later}\n{sooner}"
    found = ca_bundle_expiry(bundle, "the Secret's caBundle")
    assert found == Expiry(at(2026, 12, 20, 8, 30), "certificate 2 in the Secret's caBundle")


def test_a_bundle_block_that_is_not_a_certificate_is_skipped() -> None:
    good = certificate("root", at(2027, 3, 1))
    broken = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----"
    found = ca_bundle_expiry(f"{broken}\n{good}", "b")
    assert found == Expiry(at(2027, 3, 1), "certificate 2 in b")
    assert ca_bundle_expiry(broken, "b") is None
    assert ca_bundle_expiry("not PEM at all", "b") is None


def test_only_the_first_certificates_of_a_bundle_are_read() -> None:
    late = certificate("late", at(2030, 1, 1))
    early = certificate("early", at(2026, 12, 20))
    bundle = "\n".join([late] * MAX_CERTIFICATES + [early])
    found = ca_bundle_expiry(bundle, "b")
    assert found is not None and found.at == at(2030, 1, 1)


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN CERTIFICATE-----" + "A" * 1_000_000,  # never ends
        "-----BEGIN CERTIFICATE-----\n" * 40_000,  # many starts, no end
        "se=" + "&se=" * 4000,
    ],
)
def test_hostile_input_is_read_in_linear_time(text: str) -> None:
    started = time.monotonic()
    assert ca_bundle_expiry(text, "b") is None
    assert sas_expiry(text, "x") is None
    assert jwt_expiry(text, "x") is None
    assert time.monotonic() - started < 2


# --- earliest ----------------------------------------------------------------------------------


def test_earliest_and_passed() -> None:
    a = Expiry(at(2026, 12, 20), "a")
    b = Expiry(at(2026, 12, 10), "b")
    assert earliest([None, a, b, None]) == b
    assert earliest([None]) is None
    assert b.passed(at(2026, 12, 10))  # at the very second: expired
    assert not b.passed(at(2026, 12, 9, 23, 59, 59))
    assert b.passed(datetime.datetime(2026, 12, 11))  # a naive time is UTC
