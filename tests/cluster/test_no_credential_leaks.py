"""No credential value anywhere the operator writes or says anything, over the whole run.

Every value the cluster tests store in a Secret is registered (`canaries`);
each test namespace is scanned before it is deleted (the `namespace` fixture,
tests/controlplane_fixtures.py), and after the other tests of tests/cluster
(it is marked `after_cluster_tests`) this scans what is left: every
Destination status, every Event, and the operator's whole log, exceptions
included. The log of a process that was replaced during the run (the chaos
tests restart it) is the same file, appended to.
"""

from __future__ import annotations

import pytest
from operator_fixtures import CANARY_SECRET_KEY, CANARY_TOKEN, OperatorProcess

import canaries
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster


@pytest.mark.after_cluster_tests
def test_no_credential_value_in_status_events_or_logs(
    cluster: Cluster, operator: OperatorProcess, s3: S3Server
) -> None:
    statuses = cluster.kubectl("get", "dst", "-A", "-o", "json").stdout
    events = cluster.kubectl("get", "events", "-A", "-o", "json").stdout
    log = operator.text()
    # the log must hold verifications, or scanning it proves nothing (the statuses and
    # events were scanned namespace by namespace before each was deleted)
    assert "verification of" in log and "ProbeSucceeded" in log
    # Every value the tests stored in a Secret (canaries.register, via dst.secret): the
    # canaries, a webhook's tokens and the S3 server's real secret keys among them.
    stored = canaries.registered()
    assert {CANARY_SECRET_KEY, CANARY_TOKEN} <= stored
    assert {user.secret_access_key for user in s3.users.values()} <= stored
    assert canaries.found_in(statuses) == []
    assert canaries.found_in(events) == []
    assert canaries.found_in(log) == []
