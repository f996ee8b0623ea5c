"""`redaction.scrub` against hostile text: every form of a secret, linear time, no controls.

The forms are those an error text carries a credential in: `http.client`
quotes a refused header value with `repr()`, JSON bodies escape it, URLs
encode it (in either case of hex), and a multi-line value can come back one
line at a time.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from destination_operator.redaction import (
    _PATTERNS,
    MAX_INPUT,
    MAX_MESSAGE_LENGTH,
    scrub,
    secret_forms,
)


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


TRANSFORMS: dict[str, Callable[[str], str]] = {
    "exact": lambda v: v,
    "stripped": str.strip,
    "one line": lambda v: " ".join(v.split()),
    "repr": lambda v: repr(v)[1:-1],
    "bytes repr": lambda v: repr(v.encode())[2:-1],
    "json": lambda v: json.dumps(v)[1:-1],
    "json unicode": lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
    "json slash": lambda v: json.dumps(v)[1:-1].replace("/", "\\/"),
    "json go": lambda v: (
        json.dumps(v)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    ),
    "url": lambda v: quote(v, safe=""),
    "url lower": lambda v: _lower_hex(quote(v, safe="")),
    "url path": quote,
    "url plus": quote_plus,
    "url plus lower": lambda v: _lower_hex(quote_plus(v)),
}

# Characters that each transform treats differently, and ordinary ones.
_SECRET_CHARS = st.sampled_from(
    [*"abcXYZ0189+/=-_.~%&<>\"'\\ \t\r\n", "\x1b", "\x07", "\x7f", "é", "ü", "\u2028"]
)


@settings(max_examples=300, deadline=None)
@given(
    # long enough to mask in every form: on one line too (a shorter form withholds the text)
    secret=st.text(alphabet=_SECRET_CHARS, min_size=8, max_size=48).filter(
        lambda s: len(" ".join(s.split())) >= 8
    ),
    transform=st.sampled_from(sorted(TRANSFORMS)),
    before=st.text(max_size=60),
    after=st.text(max_size=60),
)
def test_no_form_of_a_secret_survives(secret: str, transform: str, before: str, after: str) -> None:
    shown = TRANSFORMS[transform](secret)
    out = scrub(f"{before}{shown}{after}", [secret])
    assert shown not in out
    assert len(out) <= MAX_MESSAGE_LENGTH


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=8),
        min_size=2,
        max_size=4,
    ),
    before=st.text(max_size=40),
)
def test_each_long_line_of_a_multi_line_value_is_masked_on_its_own(
    lines: list[str], before: str
) -> None:
    secret = "\n".join(lines)
    for line in lines:
        assert line not in scrub(f"{before} {line} tail", [secret])


def test_a_session_token_quoted_by_http_client_is_masked() -> None:
    """http.client refuses a header with a line break, quoting the value's bytes."""
    token = "FwoGZXIvYXdzEJr//////////wEaDNb\nIwS2l4Ldk3xjH7iKyAYF7SNcw"
    connection = http.client.HTTPConnection("localhost")
    connection.putrequest("PUT", "/bucket/key", skip_host=True)  # sends nothing yet
    try:
        connection.putheader("X-Amz-Security-Token", token)
    except ValueError as exc:
        text = str(exc)
    else:  # pragma: no cover - http.client accepted it: the test's premise is gone
        pytest.fail("http.client accepted a header value with a line break")
    assert token.split("\n")[0] in text  # the premise: the value is there, escaped
    out = scrub(text, [token])
    for form in ("FwoGZXIvYXdzEJr", "IwS2l4Ldk3xjH7iKyAYF7SNcw", repr(token.encode())[2:-1]):
        assert form not in out


def test_secret_forms_cover_every_transform() -> None:
    secret = 'line/one+two=\n ü"x\\y'
    forms = secret_forms(secret)
    for name, transform in TRANSFORMS.items():
        assert transform(secret) in forms, name


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("\x1b]0;pwned\x07title \x1b[2Jcleared", "]0;pwnedtitle [2Jcleared"),
        ("back\x08\x08space and del\x7f", "backspace and del"),
        ("c1 \x9b31m red \x85 next", "c1 31m red next"),
        ("rtl \u202eevil\u202c text", "rtl evil text"),
        ("nul\x00 and bell\x07", "nul and bell"),
    ],
)
def test_control_characters_are_dropped(text: str, kept: str) -> None:
    assert scrub(text) == kept


# --- time: linear in the input -------------------------------------------------------------

SHAPES: dict[str, Callable[[int], str]] = {
    # each was quadratic, or could be, for some pattern a release once had
    "url userinfo": lambda n: "a." * (n // 2),
    "url after a scheme": lambda n: "http://" + "a:" * (n // 2),
    "jwt": lambda n: "eyJ-" * (n // 4),
    "jwt segments": lambda n: "eyJaaaa." * (n // 8),
    "bearer": lambda n: "bearer " * (n // 7),
    "shared key": lambda n: "AWS " + "a." * (n // 2),
    "authorization": lambda n: "authorization" + " " * n,
    "private key": lambda n: "-----BEGIN " + "A" * n,
    "schemes": lambda n: "http://" * (n // 7),
}


def _best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_pattern_is_linear_in_its_input(shape: str) -> None:
    """Eight times the input costs about eight times the time, not sixty-four.

    The patterns run here without the cut that `scrub` makes, so that a
    pattern which backtracks shows. Quadratic patterns of earlier releases
    took 9 s on 40 kB of such text.
    """
    small, large = SHAPES[shape](16_000), SHAPES[shape](128_000)

    def run(text: str) -> Callable[[], object]:
        return lambda: [pattern.sub(replacement, text) for pattern, replacement in _PATTERNS]

    t_small, t_large = _best_of(5, run(small)), _best_of(5, run(large))
    print(f"{shape}: 16 kB {t_small * 1000:.2f} ms, 128 kB {t_large * 1000:.2f} ms")
    assert t_large < 1.0
    # Noise dominates below a millisecond: only a clear superlinear growth fails.
    assert t_large < max(24 * t_small, 0.005), (t_small, t_large)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_scrub_of_a_megabyte_of_hostile_text_takes_milliseconds(shape: str) -> None:
    text = SHAPES[shape](1_000_000)
    secrets = ["zQ9+wXs/ECRET-very-distinctive-VALUE-4b1d", "two\nlines-of-a-token"]
    took = _best_of(3, lambda: scrub(text, secrets))
    print(f"{shape}: {took * 1000:.2f} ms")
    assert took < 0.25


def test_a_secret_past_the_input_bound_is_not_in_the_output() -> None:
    secret = "zQ9+wXs/ECRET-very-distinctive-VALUE-4b1d"
    out = scrub("x" * (MAX_INPUT - 5) + secret, [secret])
    assert secret[:5] not in out and len(out) <= MAX_MESSAGE_LENGTH


def test_a_form_of_a_long_value_is_masked_though_it_is_short() -> None:
    """`00000 \t0` is 8 characters; on one line, 7: still nearly all of the value."""
    assert scrub("x100000 0y", ["00000 \t0"]) == "x1***y"


def test_a_short_line_of_a_multi_line_value_is_no_form_of_its_own() -> None:
    """A certificate's last base64 line can be 4 characters; it must not withhold messages."""
    bundle = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\nAA==\n-----END CERTIFICATE-----"
    assert scrub("refused: AA== is not base64 padding", [bundle]) == (
        "refused: AA== is not base64 padding"
    )
