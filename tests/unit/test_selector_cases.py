"""The label selector table of tests/cluster/selector_cases.py, checked offline against the
operator's start-up check (the cluster test sends the same cases to the API server)."""

from __future__ import annotations

import pytest
from selector_cases import CASES

from destination_operator.selectors import SELECTOR_MAX, label_selector


def test_the_table_takes_and_refuses() -> None:
    assert sum(taken for _, taken in CASES) >= 15
    assert sum(not taken for _, taken in CASES) >= 20


@pytest.mark.parametrize(("selector", "taken"), CASES, ids=repr)
def test_the_check_takes_what_the_api_server_takes(selector: str, taken: bool) -> None:
    if taken:
        assert label_selector(selector) == selector
    else:
        with pytest.raises(ValueError) as refused:
            label_selector(selector)
        message = str(refused.value)
        assert message and "\n" not in message and len(message) < 300


def test_a_long_selector_is_refused_before_it_is_read() -> None:
    long = ",".join(["shard=a"] * (SELECTOR_MAX // 8 + 1))
    assert len(long) > SELECTOR_MAX
    with pytest.raises(ValueError, match="at most 4096 characters"):
        label_selector(long)
    fits = long[: long.rfind(",", 0, SELECTOR_MAX)]
    assert label_selector(fits) == fits
