"""`spec.pathPrefix`: its grammar and how its tokens render.

A prefix is prepended to every object key the operator (and whatever delivers
data to the Destination) writes. It may contain only:

* letters, digits, `.`, `_`, `-`, `=` (for `key=value` partition folders);
* `/`, which makes sub-directories (not first, never two in a row);
* the tokens `%COLLECTION_ID%`, `%COLLECTION_NAME%`, `%RESULT_SET_ID%` and
  `%DATE%` (the UTC date as `YYYY_MM_DD`).

`..` is refused anywhere, so a rendered prefix can never climb out of the
bucket's intended folder. `prefix_rules` are these rules as the CRD and the
models check them.
"""

from __future__ import annotations

import datetime
from enum import StrEnum

from .rules import Rule, no_double_dot, pattern_rule

__all__ = [
    "PREFIX_MAX_LENGTH",
    "PREFIX_PATTERN",
    "PROBE_TOKEN_VALUE",
    "PrefixToken",
    "prefix_rules",
    "render_prefix",
]

PREFIX_MAX_LENGTH = 256


class PrefixToken(StrEnum):
    """The tokens a path prefix may contain."""

    COLLECTION_ID = "%COLLECTION_ID%"
    COLLECTION_NAME = "%COLLECTION_NAME%"
    RESULT_SET_ID = "%RESULT_SET_ID%"
    DATE = "%DATE%"


PREFIX_PATTERN = "^([-A-Za-z0-9._=/]|%(COLLECTION_ID|COLLECTION_NAME|RESULT_SET_ID|DATE)%)*$"
"""Allowed characters and tokens (the CRD's CEL and the models use this one pattern)."""

PROBE_TOKEN_VALUE = "verification"
"""What the collection and result-set tokens become in a verification probe's key."""


def prefix_rules() -> tuple[Rule, ...]:
    """The rules of `spec.pathPrefix`, in the order the CRD lists them."""
    path = "spec.pathPrefix"

    def no_leading_slash(value: str) -> bool:
        return not value.startswith("/")

    def no_empty_segment(value: str) -> bool:
        return "//" not in value

    return (
        pattern_rule(
            path,
            PREFIX_PATTERN,
            "may contain only letters, digits, '.', '_', '-', '=', '/' and the tokens "
            "%COLLECTION_ID%, %COLLECTION_NAME%, %RESULT_SET_ID% and %DATE%",
        ),
        Rule(
            cel="!self.startsWith('/')",
            message=f"{path} must not start with '/'",
            check=no_leading_slash,
        ),
        no_double_dot(path, "'..'"),
        Rule(
            cel="!self.contains('//')",
            message=f"{path} must not contain '//' (an empty folder name)",
            check=no_empty_segment,
        ),
    )


def render_prefix(
    prefix: str | None,
    now: datetime.datetime,
    *,
    collection_id: str = PROBE_TOKEN_VALUE,
    collection_name: str = PROBE_TOKEN_VALUE,
    result_set_id: str = PROBE_TOKEN_VALUE,
) -> str:
    """The prefix with its tokens replaced; `%DATE%` is `now` in UTC as `YYYY_MM_DD`.

    A naive `now` is taken to be UTC. `None` renders as the empty prefix.
    """
    if not prefix:
        return ""
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.UTC)
    values = {
        PrefixToken.COLLECTION_ID: collection_id,
        PrefixToken.COLLECTION_NAME: collection_name,
        PrefixToken.RESULT_SET_ID: result_set_id,
        PrefixToken.DATE: now.astimezone(datetime.UTC).strftime("%Y_%m_%d"),
    }
    out = []
    rest = prefix
    while rest:
        for token, value in values.items():
            if rest.startswith(token):
                out.append(value)
                rest = rest[len(token) :]
                break
        else:
            out.append(rest[0])
            rest = rest[1:]
    return "".join(out)
