"""Operator settings: environment, flags, and what they tell kopf."""

from __future__ import annotations

import json
import logging
import os

import kopf
import pytest

from destination_operator import cli, main
from destination_operator.settings import LogFormat, LogLevel, OperatorSettings


def test_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("DESTINATION_OPERATOR_"):
            monkeypatch.delenv(key)
    settings = OperatorSettings()
    assert settings.namespaces == []  # every namespace
    assert settings.allow_private_endpoints is False
    assert settings.log_format == LogFormat.TEXT
    assert settings.default_interval_seconds == 3600
    assert settings.timeout_seconds == 30
    assert settings.log_level == LogLevel.INFO
    # workload identity: neither ServiceAccounts of Destinations nor the operator's own
    assert settings.object_level_identity is False
    assert settings.operator_identity is False
    assert settings.default_service_account is None
    assert settings.aws_sts_endpoint is None and settings.aws_s3_endpoint is None


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION_OPERATOR_ALLOW_PRIVATE_ENDPOINTS", "true")
    monkeypatch.setenv("DESTINATION_OPERATOR_NAMESPACES", '["team-a", "team-b"]')
    monkeypatch.setenv("DESTINATION_OPERATOR_PROBE_CONCURRENCY", "3")
    monkeypatch.setenv("DESTINATION_OPERATOR_LOG_FORMAT", "json")
    settings = OperatorSettings()
    assert settings.allow_private_endpoints is True
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.probe_concurrency == 3
    assert settings.log_format == LogFormat.JSON


def test_bad_settings_get_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DESTINATION_OPERATOR_PROBE_CONCURRENCY", "0")
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "destination-operator: DESTINATION_OPERATOR_PROBE_CONCURRENCY='0': "
        "should be greater than or equal to 1\n"
    )


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION_OPERATOR_PROBE_CONCURRENCY", "3")
    seen: list[OperatorSettings] = []
    monkeypatch.setattr(cli, "_start", seen.append)
    assert (
        cli.main(["run", "--probe-concurrency", "5", "--namespace", "a", "--namespace", "b"]) == 0
    )
    assert seen[0].probe_concurrency == 5
    assert seen[0].namespaces == ["a", "b"]


def test_kopf_is_told_to_write_as_little_as_possible() -> None:
    kopf_settings = kopf.OperatorSettings()
    OperatorSettings().apply_to_kopf(kopf_settings)
    assert kopf_settings.peering.standalone is True
    assert kopf_settings.posting.enabled is False  # log lines never become Events
    # no worker limit: with @kopf.index a limit deadlocks once objects outnumber workers
    assert kopf_settings.queueing.worker_limit is None
    assert kopf_settings.networking.request_timeout is not None


def test_the_first_lists_come_in_pages_of_list_chunk_size() -> None:
    kopf_settings = kopf.OperatorSettings()
    OperatorSettings().apply_to_kopf(kopf_settings)
    assert kopf_settings.watching.chunk_size == 500
    OperatorSettings(list_chunk_size=0).apply_to_kopf(kopf_settings)
    assert kopf_settings.watching.chunk_size is None  # one answer for all
    assert kopf_settings.watching.initial_streaming is False  # see docs/benchmarks.md


def test_initial_streaming_is_kopfs() -> None:
    kopf_settings = kopf.OperatorSettings()
    OperatorSettings(initial_streaming=True).apply_to_kopf(kopf_settings)
    assert kopf_settings.watching.initial_streaming is True


def test_json_logs_are_one_json_object_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        cli._configure_logging(OperatorSettings(log_format=LogFormat.JSON))
        logging.getLogger("destination_operator").warning("probe of %s failed", "team-a/reports")
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert record["message"] == "probe of team-a/reports failed"
        assert record["severity"] == "warn"
        assert record["timestamp"]
        # the SDKs' wire loggers never go below INFO, whatever the operator's level
        cli._configure_logging(OperatorSettings(log_level=LogLevel.DEBUG))
        assert logging.getLogger("kubernetes").level == logging.INFO
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_kopfs_line_per_event_shows_only_at_debug() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        cli._configure_logging(OperatorSettings(log_level=LogLevel.INFO))
        assert logging.getLogger("kopf.objects").level == logging.WARNING
        assert logging.getLogger("destination_operator").getEffectiveLevel() == logging.INFO
        cli._configure_logging(OperatorSettings(log_level=LogLevel.DEBUG))
        assert logging.getLogger("kopf.objects").level == logging.DEBUG
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        logging.getLogger("kopf.objects").setLevel(logging.NOTSET)


def test_a_bad_destination_selector_stops_run_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[OperatorSettings] = []
    monkeypatch.setattr(cli, "_start", started.append)
    monkeypatch.setenv("DESTINATION_OPERATOR_DESTINATION_SELECTOR", "shard in (a,b")
    assert cli.main(["run"]) == 2
    assert capsys.readouterr().err == (
        "destination-operator: DESTINATION_OPERATOR_DESTINATION_SELECTOR='shard in (a,b': "
        "the values of 'shard' have no ')'\n"
    )
    assert cli.main(["run", "--destination-selector", "shard=a=b"]) == 2
    assert capsys.readouterr().err == (
        "destination-operator: --destination-selector 'shard=a=b': "
        "found '='; expected ',' or the end\n"
    )
    assert started == []
    assert cli.main(["run", "--destination-selector", "shard notin (a,b)"]) == 0
    assert started[0].destination_selector == "shard notin (a,b)"


def test_the_destination_selector_filters_the_destination_watch_only() -> None:
    destinations = kopf.Resource("destinations.io", "v1alpha1", "destinations", namespaced=True)
    secrets = kopf.Resource("", "v1", "secrets", namespaced=True)
    kopf_settings = kopf.OperatorSettings()
    main.watch_only(kopf_settings, "")
    assert kopf_settings.watching.label_selectors.collect(destinations) == []
    main.watch_only(kopf_settings, "destinations.io/shard=a")
    assert kopf_settings.watching.label_selectors.collect(destinations) == [
        "destinations.io/shard=a"
    ]
    assert kopf_settings.watching.label_selectors.collect(secrets) == []


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("AWS_STS_ENDPOINT", "http://user:pw@sts.local", "is not an http:// or https:// URL"),
        ("AWS_STS_ENDPOINT", "file:///etc/passwd", "is not an http:// or https:// URL"),
        ("AWS_S3_ENDPOINT", "https://s3.local/?x=1", "is not an http:// or https:// URL"),
        ("DEFAULT_SERVICE_ACCOUNT", "Uploader_1", "is not a ServiceAccount name"),
    ],
)
def test_identity_settings_refuse_what_they_cannot_use(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    said: str,
) -> None:
    monkeypatch.setenv(f"DESTINATION_OPERATOR_{variable}", value)
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1


def test_identity_endpoints_lose_their_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION_OPERATOR_AWS_STS_ENDPOINT", "http://127.0.0.1:4566/")
    monkeypatch.setenv("DESTINATION_OPERATOR_DEFAULT_SERVICE_ACCOUNT", "destinations")
    settings = OperatorSettings()
    assert settings.aws_sts_endpoint == "http://127.0.0.1:4566"
    assert settings.default_service_account == "destinations"
