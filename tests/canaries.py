"""Credential values the cluster tests stored, to be looked for where they must never be.

Every Secret a cluster test builds with `dst.secret` registers its values
here; the `namespace` fixture scans the namespace's Destination statuses and
Events for all of them before deleting it, and `test_no_credential_leaks` scans the
operator's log at the end. Values shorter than 8 characters are not
registered: they could occur by chance.

A value is looked for in every form in which a server, a library or a JSON
document may write it back (`forms`): a leak in any of them is a leak.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

_values: set[str] = set()

MIN_LENGTH = 8

_PERCENT = re.compile(r"%[0-9A-F]{2}")
_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def register(*values: str) -> None:
    """Remember credential values that must never appear in a status, event or log."""
    _values.update(v for v in values if len(v) >= MIN_LENGTH)


def registered() -> frozenset[str]:
    return frozenset(_values)


def _lower_hex(encoded: str) -> str:
    return _PERCENT.sub(lambda match: match.group(0).lower(), encoded)


def forms(value: str) -> dict[str, str]:
    """The forms of `value` to look for, by name, "as is" first; each line of a value of
    several lines too. Forms shorter than `MIN_LENGTH` are left out."""
    escaped = json.dumps(value)[1:-1]
    encoded = quote(value, safe="")
    plus = quote_plus(value)
    found = {
        "as is": value,
        "repr-escaped": repr(value)[1:-1],
        "bytes repr-escaped": repr(value.encode("utf-8", "surrogatepass"))[2:-1],
        "JSON-escaped": escaped,
        "JSON-escaped, non-ASCII kept": json.dumps(value, ensure_ascii=False)[1:-1],
        "JSON-escaped, / as \\/": escaped.replace("/", "\\/"),
        # Go's encoding/json, which kubectl's -o json and many servers use, writes <, > and &
        # as \u003c, \u003e and \u0026.
        "JSON-escaped, HTML-safe": escaped.translate(_HTML_SAFE),
        "URL-encoded": encoded,
        "URL-encoded, lower-case hex": _lower_hex(encoded),
        "form-encoded": plus,
        "form-encoded, lower-case hex": _lower_hex(plus),
    }
    lines = [line.strip() for line in value.splitlines()]
    if len(lines) > 1:
        found.update({f"line {number}": line for number, line in enumerate(lines, 1)})
    return {name: text for name, text in found.items() if len(text) >= MIN_LENGTH}


def printed_forms(value: str) -> dict[str, str]:
    """`forms`, and base64, which a command that reads Secret manifests might print back."""
    return {**forms(value), "base64": base64.b64encode(value.encode()).decode()}


def found_in(text: str) -> list[str]:
    """The registered values that occur in `text` in any of their `forms`, each shortened so
    as not to spread it, with the forms it was found in when that is not the value as is."""
    leaked = []
    for value in sorted(_values):
        seen: dict[str, str] = {}  # form -> its first name: equal forms are one form
        for name, form in forms(value).items():
            seen.setdefault(form, name)
        names = [name for form, name in seen.items() if form in text]
        if names == ["as is"]:
            leaked.append(f"{value[:4]}…({len(value)} chars)")
        elif names:
            leaked.append(f"{value[:4]}…({len(value)} chars; {'; '.join(names)})")
    return leaked
