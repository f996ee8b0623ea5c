"""RFC 7662 token introspection, for a storage front that accepts tokens another local
service issued (hack/gcsserver.py's `--introspect`, with tests/identity/googlests.py)."""

from __future__ import annotations

import http.client
import json
import urllib.parse

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_ANSWER = 64 * 1024


def introspected(url: str, authorization: str) -> tuple[str, frozenset[str]] | None:
    """(whose, permissions) of a token the introspection endpoint knows (RFC 7662), or
    None: how tokens of workload identity federation (tests/identity/googlests.py) are
    checked."""
    scheme, _, value = authorization.partition(" ")
    if not url or scheme.lower() != "bearer" or not value.strip():
        return None
    form = urllib.parse.urlencode({"token": value.strip()}).encode()
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(
            "POST", parts.path, body=form, headers={"Content-Type": FORM_CONTENT_TYPE}
        )
        answer = json.loads(connection.getresponse().read(MAX_ANSWER) or b"{}")
    except (OSError, ValueError):
        return None
    finally:
        connection.close()
    if not isinstance(answer, dict) or answer.get("active") is not True:
        return None
    return str(answer.get("sub") or "-"), frozenset(map(str, answer.get("permissions", ())))
