"""Go duration strings, parsed exactly as Go's time.ParseDuration (and so CEL's duration())."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from destination_operator.api.duration import (
    DURATION_PATTERN,
    DurationError,
    parse_duration,
    parse_go_duration,
)
from destination_operator.api.rules import matches

NS = 1
US = 1000
MS = 1000 * US
S = 1000 * MS
M = 60 * S
H = 60 * M


# Expected values are Go's (time.ParseDuration), including its edge cases.
@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("0", 0),
        ("0s", 0),
        ("-0", 0),
        ("+0", 0),
        ("5s", 5 * S),
        ("30s", 30 * S),
        ("1478s", 1478 * S),
        ("-5s", -5 * S),
        ("+5s", 5 * S),
        ("-0s", 0),
        ("5.0s", 5 * S),
        ("5.6s", 5 * S + 600 * MS),
        ("5.s", 5 * S),
        (".5s", 500 * MS),
        ("1.0s", 1 * S),
        ("1.00s", 1 * S),
        ("1.004s", 1 * S + 4 * MS),
        ("1.0040s", 1 * S + 4 * MS),
        ("100.00100s", 100 * S + 1 * MS),
        ("10ns", 10 * NS),
        ("11us", 11 * US),
        ("12\u00b5s", 12 * US),
        ("12\u03bcs", 12 * US),
        ("13ms", 13 * MS),
        ("14s", 14 * S),
        ("15m", 15 * M),
        ("16h", 16 * H),
        ("3h30m", 3 * H + 30 * M),
        ("10.5s4m", 4 * M + 10 * S + 500 * MS),
        ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
        ("1h2m3s4ms5us6ns", 1 * H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
        ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
        ("52763797000ns", 52763797000 * NS),
        ("0.3333333333333333333h", 20 * M),
        ("9007199254740993ns", (1 << 53) + 1),
        ("9223372036854775807ns", (1 << 63) - 1),
        ("9223372036854775.807us", (1 << 63) - 1),
        ("9223372036s854ms775us807ns", (1 << 63) - 1),
        ("-9223372036854775808ns", -(1 << 63)),
        ("-9223372036854775.808us", -(1 << 63)),
        ("-9223372036s854ms775us808ns", -(1 << 63)),
        ("-2562047h47m16.854775808s", -(1 << 63)),
        ("0.100000000000000000000h", 6 * M),
        ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS),
        ("2562047h47m16.854775807s", (1 << 63) - 1),
    ],
)
def test_go_parse_duration_values(text: str, nanos: int) -> None:
    assert parse_go_duration(text) == nanos


@pytest.mark.parametrize(
    "text",
    [
        "",
        "3",
        "-",
        "s",
        ".",
        "-.",
        ".s",
        "+.s",
        "1d",
        "1 h",
        " 1h",
        "1h ",
        "\x85\x85",
        "\xffff",
        "hello \xffff world",
        "9223372036854775808ns",
        "9223372036854775.808us",
        "9223372036854ms775us808ns",
        "-9223372036854775809ns",
        "2562047h47m16.854775808s",
        "99999999999999999999h",
        "1h-1m",
    ],
)
def test_go_parse_duration_errors(text: str) -> None:
    with pytest.raises(DurationError):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h30m", 5400.0), ("45s", 45.0), ("500ms", 0.5), ("0s", 0.0), ("1h", 3600.0)],
)
def test_parse_duration_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-1s", "-1h30m", "garbage", "", "1y"])
def test_parse_duration_refuses_negative_and_garbage(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_parse_duration_refuses_non_strings() -> None:
    with pytest.raises(DurationError):
        parse_go_duration(5)  # type: ignore[arg-type]


@given(st.text(alphabet="0123456789.hmsunµμ+- ", max_size=12))
@example("1000000000m")  # overflows int64 nanoseconds in 11 characters
def test_pattern_accepts_only_what_go_parses_unsigned(text: str) -> None:
    """The CRD's grammar check never lets through what Go refuses for a grammar reason."""
    if matches(text, DURATION_PATTERN):
        assert not text.startswith(("-", "+"))
        try:
            assert parse_go_duration(text) >= 0
        except DurationError as err:  # only overflow may remain
            assert "invalid duration" in str(err)
            assert _nanoseconds(text) > 2**63 - 1, text


_UNIT_NS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "μs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def _nanoseconds(text: str) -> Decimal:
    """The exact length of a duration the pattern accepted (Go refuses it past int64)."""
    parts = re.findall(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)", text)
    return sum((Decimal(number) * _UNIT_NS[unit] for number, unit in parts), Decimal(0))


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(["h", "m", "s", "ms", "us", "ns"])),
        min_size=1,
        max_size=4,
    )
)
def test_composed_durations_add_up(parts: list[tuple[int, str]]) -> None:
    unit = {"h": H, "m": M, "s": S, "ms": MS, "us": US, "ns": NS}
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_go_duration(text) == sum(n * unit[u] for n, u in parts)
    assert matches(text, DURATION_PATTERN)
