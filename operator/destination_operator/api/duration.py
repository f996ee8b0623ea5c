"""Go duration strings (`1h30m`, `45s`, `500ms`, `0s`), parsed exactly as Go does.

The API server checks `spec.verification.*` with CEL's `duration()`, which is
Go's `time.ParseDuration`; `parse_go_duration` is a line-by-line port of it
(same grammar, same units including both micro signs, same int64 overflow
limits), so the models accept and reject the same strings.
`parse_duration` is what the operator uses: it also refuses negative values.
`duration_rule` is the admission rule of a duration field, CEL and Python.
"""

from __future__ import annotations

from .rules import Rule, cel_string, matches

__all__ = [
    "DURATION_PATTERN",
    "DurationError",
    "duration_rule",
    "parse_duration",
    "parse_go_duration",
]

_NANOSECOND = 1
_MICROSECOND = 1000 * _NANOSECOND
_MILLISECOND = 1000 * _MICROSECOND
_SECOND = 1000 * _MILLISECOND
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE

_UNITS = {
    "ns": _NANOSECOND,
    "us": _MICROSECOND,
    "\u00b5s": _MICROSECOND,  # U+00B5 micro sign
    "\u03bcs": _MICROSECOND,  # U+03BC Greek small letter mu
    "ms": _MILLISECOND,
    "s": _SECOND,
    "m": _MINUTE,
    "h": _HOUR,
}

_LIMIT = 1 << 63

DURATION_PATTERN = "^(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$"
"""What the CRD accepts before calling `duration()`: Go's grammar without a sign."""


class DurationError(ValueError):
    """The string is not a (non-negative) Go duration."""


def _leading_int(s: str) -> tuple[int, str]:
    x = 0
    i = 0
    while i < len(s) and "0" <= s[i] <= "9":
        if x > _LIMIT // 10:
            raise DurationError("overflow")
        x = x * 10 + ord(s[i]) - ord("0")
        if x > _LIMIT:
            raise DurationError("overflow")
        i += 1
    return x, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    x = 0
    scale = 1.0
    overflow = False
    i = 0
    while i < len(s) and "0" <= s[i] <= "9":
        if not overflow:
            if x > (_LIMIT - 1) // 10:
                overflow = True
            else:
                y = x * 10 + ord(s[i]) - ord("0")
                if y > _LIMIT:
                    overflow = True
                else:
                    x = y
                    scale *= 10
        i += 1
    return x, scale, s[i:]


def parse_go_duration(text: str) -> int:
    """Nanoseconds, as Go's `time.ParseDuration` computes them (sign allowed).

    Raises `DurationError` where Go returns an error.
    """
    if not isinstance(text, str):
        raise DurationError("a duration must be a string")
    invalid = DurationError(f"invalid duration {text!r}")
    s = text
    neg = False
    if s and s[0] in "-+":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        before = len(s)
        try:
            v, s = _leading_int(s)
        except DurationError:
            raise invalid from None
        pre = before != len(s)
        post = False
        f, scale = 0, 1.0
        if s and s[0] == ".":
            s = s[1:]
            before = len(s)
            f, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise DurationError(f"missing unit in duration {text!r}")
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise DurationError(f"unknown unit {unit_name!r} in duration {text!r}")
        if v > _LIMIT // unit:
            raise invalid
        v *= unit
        if f > 0:
            v += int(float(f) * (float(unit) / scale))
            if v > _LIMIT:
                raise invalid
        total += v
        if total > _LIMIT:
            raise invalid
    if neg:
        return -total
    if total > _LIMIT - 1:
        raise invalid
    return total


def parse_duration(text: str) -> float:
    """Seconds in a non-negative Go duration string: `"1h30m"` -> 5400.0, `"0s"` -> 0.0.

    Raises `DurationError` for anything Go would not parse and for negative
    durations.
    """
    nanos = parse_go_duration(text)
    if nanos < 0:
        raise DurationError(f"duration {text!r} is negative")
    return nanos / _SECOND


def duration_rule(
    path: str,
    *,
    allowed: str,
    above_zero: bool = False,
    zero_or_at_least: str | None = None,
    maximum: str | None = None,
) -> Rule:
    """A Go duration: CEL checks the grammar first, so garbage gets this message, not a
    `duration()` evaluation error; then the bounds.

    `above_zero`: more than 0s. `zero_or_at_least`: exactly zero (any spelling Go parses
    to zero, such as `0`, `0s` or `0h0m`) or at least this duration. `maximum`: at most
    this duration. Without a bound, any non-negative duration passes.
    """
    if above_zero and zero_or_at_least is not None:
        raise ValueError("above_zero and zero_or_at_least exclude each other")
    cel = f"self.matches({cel_string(DURATION_PATTERN)})"
    low = None
    if zero_or_at_least is not None:
        low = parse_go_duration(zero_or_at_least)
        if low <= 0:
            raise ValueError(f"zero_or_at_least must be above 0s, not {zero_or_at_least!r}")
        cel += (
            " && (duration(self) == duration('0s')"
            f" || duration(self) >= duration('{zero_or_at_least}'))"
        )
    else:
        comparison = ">" if above_zero else ">="
        cel += f" && duration(self) {comparison} duration('0s')"
    high = None
    if maximum is not None:
        high = parse_go_duration(maximum)
        cel += f" && duration(self) <= duration('{maximum}')"

    def check(value: str) -> bool:
        if not matches(value, DURATION_PATTERN):
            return False
        try:
            nanos = parse_go_duration(value)
        except DurationError:
            return False
        if nanos < 0 or (above_zero and nanos == 0):
            return False
        if low is not None and 0 < nanos < low:
            return False
        return high is None or nanos <= high

    return Rule(cel=cel, message=f"{path} {allowed}", check=check)
