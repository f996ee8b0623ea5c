"""The defaults and fixed figures that docs/conditions.md and docs/design.md state.

Each value here is written in the docs as a number; a change of the code that
does not change the docs fails here.
"""

from __future__ import annotations

import os

import kopf
import pytest

from destination_operator.engine import engine
from destination_operator.kube import client as kube_client
from destination_operator.settings import OperatorSettings


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> OperatorSettings:
    """The operator's settings with no DESTINATION_OPERATOR_ variable set."""
    for key in list(os.environ):
        if key.startswith("DESTINATION_OPERATOR_"):
            monkeypatch.delenv(key)
    return OperatorSettings()


def test_documented_defaults(settings: OperatorSettings) -> None:
    assert settings.backoff_base_seconds == 5  # "5 s base"
    assert settings.backoff_cap_seconds == 300  # "5 min cap", "a 300 s cap"
    assert settings.interval_jitter == 0.1  # "up to 10 %"
    assert settings.default_interval_seconds == 3600  # "1 h"
    assert settings.timeout_seconds == 30
    assert settings.secret_grace_seconds == 60  # "the grace period, 60 s by default"
    assert settings.stuck_after_seconds == 900  # "longer than the longest probe timeout"
    assert settings.stuck_after_seconds > 600  # the CRD caps verification.timeout at 10m
    assert settings.workers == 32
    assert settings.probe_concurrency == 8


def test_kubernetes_request_timeouts_and_retry_backoff() -> None:
    assert kube_client.REQUEST_TIMEOUT == (5.0, 20.0)  # "5 s connect, 20 s read"
    assert (engine.API_BACKOFF_BASE, engine.API_BACKOFF_CAP) == (0.5, 30.0)  # "0.5 s to 30 s"


def test_kopf_request_timeout_and_idle_timeout(settings: OperatorSettings) -> None:
    kopf_settings = kopf.OperatorSettings()
    settings.apply_to_kopf(kopf_settings)
    assert kopf_settings.networking.request_timeout == 30  # "kopf's own requests 30 s"
    assert kopf_settings.queueing.idle_timeout == 1.0  # "an idle_timeout of 1 s"
