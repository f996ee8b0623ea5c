"""Label selectors, and whether the API server takes each one.

One table, two checks: tests/cluster/test_shards.py sends every case to the real API
server (a list with `labelSelector`) beside the operator's start-up check, and
tests/unit/test_selector_cases.py runs the check alone, offline. A selector the
operator lets through is one the API server takes, and the other way round.
This module imports nothing from the project, so both can load it.
"""

from __future__ import annotations

# (selector, whether the API server takes it)
CASES: list[tuple[str, bool]] = [
    ("", True),
    ("shard", True),
    ("!shard", True),
    ("shard=a", True),
    ("shard==a", True),
    ("shard!=a", True),
    ("shard=", True),
    ("shard in (a,b)", True),
    ("shard notin (a, b)", True),
    ("shard in ()", True),
    ("shard in (,a)", True),
    ("shard in (a,)", True),
    ("destinations.io/shard=a,tier!=dev", True),
    ("  shard = a ,  !tier  ", True),
    ("replicas>3", True),
    ("replicas<10", True),
    ("a.b-c_d=E.f-G_h", True),
    ("shard=a,", False),
    (",shard=a", False),
    ("shard a", False),
    ("shard in a", False),
    ("shard in (a", False),
    ("shard in (a b)", False),
    ("shard notin", False),
    ("!shard=a", False),
    ("in=a", True),  # in and notin are operators only after a key
    ("shard=in", True),
    ("shard in (in, notin)", True),
    ("shard in in", False),
    ("shard=(", False),
    ("shard=a=b", False),
    ("replicas>x", False),
    ("replicas>-1", False),
    ("replicas<", False),
    ("Bad.Prefix/shard=a", False),
    ("/shard", False),
    ("a/b/c", False),
    ("-shard=a", False),
    ("shard=-a", False),
    ("shard=" + "x" * 64, False),
    ("x" * 64, False),
    ("shard=a;b", False),
    ("shärd=a", False),
]
