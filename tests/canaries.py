"""Credential values the cluster tests stored, to be looked for where they must never be.

Every Secret a cluster test builds with `dst.secret` registers its values
here; the `namespace` fixture scans the namespace's Destination statuses and
Events for all of them before deleting it, and `test_zz_canary` scans the
operator's log at the end. Values shorter than 8 characters are not
registered: they could occur by chance.
"""

from __future__ import annotations

_values: set[str] = set()

MIN_LENGTH = 8


def register(*values: str) -> None:
    """Remember credential values that must never appear in a status, event or log."""
    _values.update(v for v in values if len(v) >= MIN_LENGTH)


def registered() -> frozenset[str]:
    return frozenset(_values)


def found_in(text: str) -> list[str]:
    """The registered values that occur in `text`, each shortened so as not to spread it."""
    return [f"{value[:4]}…({len(value)} chars)" for value in sorted(_values) if value in text]
