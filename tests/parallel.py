"""How `make test` shares the tests between its two pytest-xdist workers.

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

from typing import Any

from xdist.scheduler import LoadScopeScheduling

INSTALL_TESTS = "tests/install/"


def group_of(nodeid: str) -> str:
    return "install" if nodeid.startswith(INSTALL_TESTS) else "main"


class ByGroup(LoadScopeScheduling):
    """xdist's scope scheduling, a scope being a group: each group goes whole to one
    worker, in collection order."""

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid)


def pytest_xdist_make_scheduler(config: Any, log: Any) -> ByGroup:
    return ByGroup(config, log)
