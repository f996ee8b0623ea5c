"""`initial_streaming` on an API server whose WatchList feature gate is off.

kopf (1.45) opens its watches with `sendInitialEvents=true` and does not fall back to a
list when the server refuses them: the operator must then stop with exit status 1 and
the server's reason, not keep running without watching anything. Its own control plane,
so the gate is off for this module only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_fixtures import OperatorProcess

from controlplane import find_binaries
from controlplane_fixtures import own_cluster
from harness import Cluster

pytestmark = pytest.mark.cluster

REFUSAL = "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"


@pytest.fixture(scope="module")
def without_watch_list(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with own_cluster(
        tmp_path_factory.mktemp("controlplane-no-watchlist"),
        find_binaries(),
        apiserver_flags=("--feature-gates=WatchList=false",),
    ) as cluster:
        yield cluster


def test_the_server_refuses_a_streamed_list_and_still_serves_a_list(
    without_watch_list: Cluster,
) -> None:
    path = "/apis/destinations.io/v1alpha1/destinations"
    streamed = "?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
    refused = without_watch_list.kubectl("get", "--raw", path + streamed, check=False)
    assert refused.returncode != 0 and REFUSAL in refused.stderr, refused.stderr
    assert '"items"' in without_watch_list.kubectl("get", "--raw", path).stdout


def test_the_operator_exits_1_when_its_streamed_watch_is_refused(
    without_watch_list: Cluster, tmp_path: Path
) -> None:
    operator = OperatorProcess(Path(without_watch_list.kubeconfig), tmp_path / "operator.log")
    operator.start({"DESTINATION_OPERATOR_INITIAL_STREAMING": "true"})
    try:
        deadline = time.monotonic() + 60
        while operator.alive():
            assert time.monotonic() < deadline, "still running 60 s after the refusal"
            time.sleep(0.5)
        assert operator.proc is not None and operator.proc.returncode == 1, operator.text()[-3000:]
        assert REFUSAL in operator.text()
        assert "the operator stopped:" in operator.text()  # and says so last
    finally:
        operator.stop()
