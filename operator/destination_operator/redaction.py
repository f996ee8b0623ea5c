"""What may be said of a text that an SDK or a tenant's endpoint wrote: `scrub`.

Every byte of an answer may come from a hostile server, and the credentials
the probe sent may come back in it, in any encoding. `scrub` turns such a text
into one short line fit for a condition message, an Event, a log line or a
step message, in time linear in its input (Python's regular expressions hold
the GIL, so one slow pattern would stall every probe and the event loop):

1. the input is cut to `MAX_INPUT` characters (the reads are bounded too:
   `probe.hooks.MAX_ANSWER_BYTES`);
2. each credential value is masked in every form an error text can carry it
   (`secret_forms`: as is, stripped, on one line, each long line of it,
   `repr()`-escaped, JSON-escaped, URL-encoded in either case), by plain
   replacement, before anything is cut, so no cut can split a value that a
   mask would have caught;
3. the text is cut to `MAX_PATTERN_INPUT` characters, and control characters
   (C0 but whitespace, DEL, C1, bidirectional overrides) are dropped: an
   escape sequence from a server must not rewrite an operator's terminal;
4. credential shapes nobody named (Authorization headers, signatures, JSON
   Web Tokens, `user:password@`) are masked by patterns that stay linear:
   each starts only where a run of its characters starts, and every
   repetition that a failure could make it retry is bounded;
5. whitespace is collapsed and the line cut to `MAX_MESSAGE_LENGTH`;
6. last defence: if any form of a value survived, the whole text is withheld.

A value shorter than 8 characters cannot be masked in place (the text around
the mask would give it away): a text holding one as a word of its own is
withheld.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

__all__ = [
    "MAX_INPUT",
    "MAX_MESSAGE_LENGTH",
    "MAX_PATTERN_INPUT",
    "scrub",
    "secret_forms",
]

MAX_MESSAGE_LENGTH = 240
"""Longest message `scrub` returns (condition messages should be short)."""

MAX_INPUT = 65536
"""Characters of a text that `scrub` looks at; the rest is dropped unread."""

MAX_PATTERN_INPUT = 4096
"""Characters the credential-shape patterns see, after the values are masked."""

_SHORT_SECRET = 8
_WITHHELD = "(details withheld: the provider's message contained a credential)"
_MASK = "***"

# C0 controls but the whitespace that `str.split` collapses, DEL, C1, and the Unicode
# marks and overrides that reorder what a terminal shows.
_CONTROLS = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)

# A JWT, a URL and a header token all start where a run of their characters starts:
# anchoring there is what keeps `eyJ-eyJ-…` and `a.a.a.…` from being tried at each position.
_JWT_CHARS = "A-Za-z0-9_-"
_SCHEME_CHARS = "a-z0-9+.-"

# Things that look like credentials whatever the provider: (pattern, replacement).
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # An Authorization header, in any quoting: keep the header name only.
    (re.compile(r"(?i)(authorization['\"]?\s{0,8}[:=]\s{0,8}['\"]?)[^'\"}\n]+"), rf"\1{_MASK}"),
    # SigV4 parts, in headers and presigned query strings.
    (
        re.compile(
            r"(?i)\b(x-amz-signature|x-amz-credential|x-amz-security-token|signature)=[^&\s,'\"]+"
        ),
        rf"\1={_MASK}",
    ),
    (re.compile(r"(?i)\b(credential)=[^,\s'\"]+"), rf"\1={_MASK}"),
    # Azure connection strings and SAS tokens, OSS/Webhook style tokens.
    (
        re.compile(
            r"(?i)\b(accountkey|sharedaccesssignature|sig|token|access_token|password)=[^&;\s,'\"]+"
        ),
        rf"\1={_MASK}",
    ),
    (re.compile(r"(?i)\b(bearer)\s{1,8}[A-Za-z0-9+/=._~\-]{8,}"), rf"\1 {_MASK}"),
    (re.compile(r"\b(SharedKey|OSS|AWS)\s{1,8}[\w.\-]{1,256}:[A-Za-z0-9+/=]+"), rf"\1 {_MASK}"),
    # JSON Web Tokens (OAuth2 assertions and access tokens): header.payload.signature.
    (
        re.compile(
            rf"(?<![{_JWT_CHARS}])eyJ[{_JWT_CHARS}]{{4,8192}}\.[{_JWT_CHARS}]{{4,8192}}"
            rf"\.[{_JWT_CHARS}]*"
        ),
        f"{_MASK}jwt{_MASK}",
    ),
    # Credentials in a URL: scheme://user:password@host keeps the scheme and the host.
    (
        re.compile(
            rf"(?i)(?<![{_SCHEME_CHARS}])([a-z][{_SCHEME_CHARS}]{{0,31}}://)"
            r"[^/\s:@]{1,256}:[^/\s@]{1,256}@"
        ),
        rf"\1{_MASK}@",
    ),
    # AWS access key ids (long-term AKIA, temporary ASIA).
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), _MASK),
    # PEM private keys (a service-account JSON pasted into an error).
    (
        re.compile(
            r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----.*?(-----END [A-Z ]{0,40}PRIVATE KEY-----|$)",
            re.S,
        ),
        f"{_MASK}private key{_MASK}",
    ),
)

_PERCENT = re.compile(r"%[0-9A-F]{2}")


def _as_text(value: str | bytes) -> str:
    return value.decode("utf-8", "ignore") if isinstance(value, bytes) else value


@functools.lru_cache(maxsize=256)
def secret_forms(value: str) -> frozenset[str]:
    """Every form in which an error text may carry `value` (blank forms left out).

    As is, stripped of its ends, on one line, each line of its own; and each
    of those `repr()`-escaped (as a str and as bytes: what `http.client`
    quotes in a refused header), JSON-escaped (with `/` as `\\/`, non-ASCII
    as `\\uXXXX`, and `<>&` as Go escapes them), and URL-encoded (upper- and lower-case hex, `+` for
    spaces).
    """
    plain = {value, value.strip(), " ".join(value.split())}
    # A line of its own only when long enough to mask: a short one says little, and would
    # withhold every message that happens to hold it.
    plain.update(line.strip() for line in value.splitlines() if len(line.strip()) >= _SHORT_SECRET)
    forms: set[str] = set()
    for text in plain:
        if not text.strip():
            continue
        forms.add(text)
        forms.add(repr(text)[1:-1])
        forms.add(repr(text.encode("utf-8", "surrogatepass"))[2:-1])
        for escaped in (json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]):
            forms.update((escaped, escaped.replace("/", "\\/"), _go_json(escaped)))
        for encoded in (quote(text, safe=""), quote(text), quote_plus(text)):
            forms.update((encoded, _PERCENT.sub(lambda m: m.group(0).lower(), encoded)))
    return frozenset(forms)


def _go_json(escaped: str) -> str:
    """Go's JSON escaping (the API server's, kubectl's `-o json`): `<`, `>`, `&` as \\u00XX."""
    return escaped.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass(frozen=True)
class _Forms:
    masked: tuple[str, ...]  # replaced wherever they occur, longest first
    words: tuple[str, ...]  # too short to mask: the text is withheld if one stands as a word


def _forms(secrets: Iterable[str | bytes]) -> _Forms:
    masked: set[str] = set()
    words: set[str] = set()
    for secret in secrets:
        value = _as_text(secret)
        if not value.strip():
            continue
        if len(value.strip()) < _SHORT_SECRET:
            words |= secret_forms(value)
            continue
        # A form of a long value is masked even when the form is shorter (its one-line
        # form, say): it is nearly all of the value. Under 4 characters a mask would
        # rewrite ordinary words, so such a form withholds the text as a short value does.
        for form in secret_forms(value):
            (masked if len(form) >= 4 else words).add(form)
    return _Forms(
        masked=tuple(sorted(masked, key=len, reverse=True)),  # a mask never cuts a longer one
        words=tuple(sorted(words - masked, key=len, reverse=True)),
    )


def _as_token(value: str, text: str) -> bool:
    """`value` occurs in `text` not as part of a longer word (for values too short to mask).

    A one-letter value inside "has" says nothing about it; "key abc" says everything.
    """
    pattern = rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])"
    return re.search(pattern, text) is not None


def _word_leaks(forms: _Forms, text: str) -> bool:
    return any(_as_token(form, text) for form in forms.words)


def _leaks(forms: _Forms, text: str) -> bool:
    return any(form in text for form in forms.masked) or _word_leaks(forms, text)


def scrub(text: str, secrets: Iterable[str | bytes] = ()) -> str:
    """`text` without any form of `secrets` nor anything credential-shaped, as one short line.

    Linear in `len(text)`; see the module's docstring for the steps. If a
    secret too short to mask safely (under 8 characters) occurs in the text
    as a word of its own, the whole text is withheld.
    """
    forms = _forms(secrets)
    text = text[:MAX_INPUT]
    for form in forms.masked:
        # A mask beside look-alike text could form the value again: a few rounds, then the
        # last defence below withholds what is left.
        for _ in range(3):
            if form not in text:
                break
            text = text.replace(form, _MASK)
    if _word_leaks(forms, text):
        return _WITHHELD
    text = _CONTROLS.sub("", text[:MAX_PATTERN_INPUT])
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    if len(text) > MAX_MESSAGE_LENGTH:
        text = text[: MAX_MESSAGE_LENGTH - 1].rstrip() + "…"
    # Last line of defence: whatever the rewriting did, no form of a value survives.
    return _WITHHELD if _leaks(forms, text) else text
