"""Runs last: no credential value anywhere the operator writes or says anything.

Every credential the cluster tests create that could leak carries a canary
value (conftest.CANARY_*). After the other tests, scan every Destination
status, every Event, and the operator's whole log, exceptions included.
"""

from __future__ import annotations

import pytest

from conftest import CANARY_SECRET_KEY, CANARY_TOKEN, OperatorProcess
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster


def test_no_credential_value_in_status_events_or_logs(
    cluster: Cluster, operator: OperatorProcess, s3: S3Server
) -> None:
    statuses = cluster.kubectl("get", "dst", "-A", "-o", "json").stdout
    events = cluster.kubectl("get", "events", "-A", "-o", "json").stdout
    log = operator.text()
    assert log, "the operator log is empty: the scan would prove nothing"
    assert "Verified" in statuses
    # the S3 server's real secret keys were in the tests' Secrets too
    real = [user.secret_access_key for user in s3.users.values()]
    for canary in (CANARY_SECRET_KEY, CANARY_TOKEN, *real):
        assert statuses.count(canary) == 0
        assert events.count(canary) == 0
        assert log.count(canary) == 0
