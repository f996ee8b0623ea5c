"""A restart after downtime (docs/upgrade.md): a verified Destination whose next verification
fell due while no operator ran is probed at once by the next one, and writes only afterwards."""

from __future__ import annotations

from test_decide import POLICY, observed, verified_once

from destination_operator import decide
from destination_operator.decide import Memory


def test_a_restart_probes_what_fell_due_while_no_operator_ran() -> None:
    status = verified_once(Memory(), observed())
    for minutes in (61, 24 * 60):  # just due; due for most of a day
        plan = decide.plan(observed(status=status, minutes=minutes), Memory(), POLICY)
        assert plan.probe and plan.status is None, minutes
