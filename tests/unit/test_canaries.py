"""The canary registry the cluster tests scan statuses, events and logs with."""

from __future__ import annotations

import canaries


def test_found_in_names_registered_values_without_repeating_them() -> None:
    canaries.register("short", "canary-unit-0123456789")
    assert "short" not in canaries.registered()  # too short to mean anything
    found = canaries.found_in('{"message": "denied for canary-unit-0123456789"}')
    assert found == ["cana…(22 chars)"]
    assert canaries.found_in("nothing here") == []
