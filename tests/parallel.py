"""How `make test` shares the tests between its two pytest-xdist workers.

Two groups, each run in collection order by one worker with a control plane of its own:

- `node`: tests/install, the chart and the images on the real node (one node per machine,
  so one worker), and the tests that need neither tests/cluster's session operator nor the
  order around it: tests/hack, tests/identity and tests/providers, and the cluster tests
  with control planes of their own (`OWN_CONTROL_PLANE`);
- `main`: everything else, in the order it has without xdist. tests/cluster's session
  operator acts on every Destination of its control plane until the folder's last test,
  and the tests after it (docs, unit) rely on that order
  (`operator_fixtures.pytest_collection_modifyitems`).

The two share nothing but the machine: most of their time is spent waiting on servers,
so side by side they take about as long as the longer one, and the split keeps the two
about as long as each other (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

NODE_FOLDERS = ("tests/install/", "tests/hack/", "tests/identity/", "tests/providers/")
OWN_CONTROL_PLANE = (
    "tests/cluster/test_controlplane_failures.py",
    "tests/cluster/test_min_kubernetes.py",
    "tests/cluster/test_initial_streaming_refused.py",
)


def group_of(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return "node" if module.startswith(NODE_FOLDERS) or module in OWN_CONTROL_PLANE else "main"


class ByGroup(LoadScopeScheduling):
    """xdist's scope scheduling, a scope being a group: each group goes whole to one
    worker, in collection order."""

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid)


def pytest_xdist_make_scheduler(config: Any, log: Any) -> ByGroup:
    return ByGroup(config, log)
