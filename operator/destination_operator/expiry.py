"""When a credential expires, read from its text alone: no network call, no verification.

Three sources can be read offline, each by one function that returns an
`Expiry` (the moment and where it was read, in words that never hold the
value) or None when nothing can be read:

- `sas_expiry`: the `se` (signed expiry) field of an Azure SAS token, given
  alone or as the `SharedAccessSignature` field of a connection string. A SAS
  tied to a stored access policy (`si=`) without `se` keeps its expiry on the
  server: None.
- `jwt_expiry`: the `exp` claim of a JWT (`header.payload.signature`, each
  base64url), read without checking the signature: the operator holds no key
  to check it with, and only the date is read. An opaque token is None.
- `ca_bundle_expiry`: the earliest `notAfter` over the PEM certificates of a
  CA bundle (with `cryptography`).

Every input is a tenant's: each function bounds what it reads (`MAX_TOKEN_CHARS`,
`MAX_BUNDLE_CHARS`, `MAX_CERTIFICATES`), parses in linear time, and returns
None rather than raising on anything malformed; judging a credential is the
probe's job, not this module's. Pure: `cryptography` is imported only by
`ca_bundle_expiry`, so the core that holds an `Expiry` imports no parser.

Temporary credentials that the operator gets and refreshes itself (workload
identity tokens) are not read here: their expiry is not the user's to act on.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = [
    "MAX_BUNDLE_CHARS",
    "MAX_CERTIFICATES",
    "MAX_TOKEN_CHARS",
    "Expiry",
    "ca_bundle_expiry",
    "earliest",
    "jwt_expiry",
    "sas_expiry",
]

MAX_TOKEN_CHARS = 16384
"""A SAS token or JWT longer than this is not read (real ones are well under 4 KiB)."""
MAX_BUNDLE_CHARS = 1 << 20
"""A CA bundle is read up to this many characters (a Secret holds at most 1 MiB)."""
MAX_CERTIFICATES = 1000
"""A CA bundle's certificates are read up to this many (a public trust store has ~150)."""

_LATEST = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)

# Azure's SAS `se`: a date, or a date and time in UTC (minutes, seconds, fractions optional).
_SAS_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,7})?)?Z?)?", re.ASCII
)
_JWT = re.compile(r"[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]*", re.ASCII)
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]{1,65536}?-----END CERTIFICATE-----", re.ASCII
)


@dataclass(frozen=True)
class Expiry:
    """When a credential expires (UTC), and where it was read, in words (never the value)."""

    at: datetime.datetime
    source: str

    def passed(self, now: datetime.datetime) -> bool:
        """Has it expired at `now` (a naive `now` is taken as UTC)?"""
        if now.tzinfo is None:
            now = now.replace(tzinfo=datetime.UTC)
        return self.at <= now


def earliest(found: Iterable[Expiry | None]) -> Expiry | None:
    """The first to expire of `found` (None when none is known)."""
    known = [item for item in found if item is not None]
    return min(known, key=lambda item: item.at) if known else None


def _sas_field(token: str, name: str) -> str | None:
    for part in token.split("&"):
        key, sep, value = part.partition("=")
        if sep and key == name:
            return unquote(value)
    return None


def sas_expiry(token: str, source: str) -> Expiry | None:
    """The `se` of a SAS token (with or without its leading `?`); None when it has none or
    it is not a date Azure would take."""
    if len(token) > MAX_TOKEN_CHARS:
        return None
    value = _sas_field(token.strip().lstrip("?"), "se")
    if value is None or len(value) > 40:
        return None
    match = _SAS_TIME.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(group or 0) for group in match.groups())
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError:  # month 13, hour 25, ...
        return None
    return Expiry(moment, source)


def _base64url(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def jwt_expiry(token: str, source: str) -> Expiry | None:
    """The `exp` claim of a JWT, its signature unchecked; None for a token that is not a JWT
    or has no readable `exp` (a number of seconds since the epoch)."""
    if len(token) > MAX_TOKEN_CHARS:
        return None
    match = _JWT.fullmatch(token.strip())
    if match is None:
        return None
    payload = _base64url(match.group(1))
    if payload is None:
        return None
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp != exp:  # NaN
        return None
    if not 0 <= exp <= _LATEST.timestamp():
        return None
    return Expiry(datetime.datetime.fromtimestamp(int(exp), datetime.UTC), source)


def ca_bundle_expiry(pem: str, source: str) -> Expiry | None:
    """The earliest `notAfter` of the PEM certificates in `pem` (the first
    `MAX_CERTIFICATES`, within `MAX_BUNDLE_CHARS`); a block that is not a certificate is
    skipped. The source names the certificate by its place in the bundle."""
    from cryptography import x509

    found: list[Expiry] = []
    blocks = _PEM_CERTIFICATE.finditer(pem[:MAX_BUNDLE_CHARS])
    for number, block in enumerate(blocks, start=1):
        if number > MAX_CERTIFICATES:
            break
        try:
            certificate = x509.load_pem_x509_certificate(block.group(0).encode("ascii"))
        except ValueError:
            continue
        found.append(Expiry(certificate.not_valid_after_utc, f"certificate {number} in {source}"))
    return earliest(found)
