"""Which tests share a worker when `make test` runs them in two (pytest-xdist, `--dist
loadgroup`).

Two groups, each run in collection order by one worker with a control plane of its own:

- `install`: tests/install, the chart and the images on the real node (one node per
  machine, so one worker);
- `main`: everything else, in the order it has without xdist. tests/cluster's session
  operator acts on every Destination of its control plane until the folder's last test,
  and the tests after it (docs, identity, providers) rely on that order
  (`operator_fixtures.pytest_collection_modifyitems`).

The two share nothing but the machine: most of their time is spent waiting on servers,
so side by side they take about as long as the longer one (docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

INSTALL_TESTS = Path(__file__).parent / "install"


def group_of(item: pytest.Item) -> str:
    return "install" if INSTALL_TESTS in Path(item.path).parents else "main"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group_of(item)))
