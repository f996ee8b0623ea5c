"""Prometheus and promtool from the bin folder, and the chart's rules and dashboard as they run.

hack/build-binaries.sh builds both from github.com/prometheus/prometheus through the Go
module proxy into the bin folder (DESTINATION_OPERATOR_BIN_DIR). A test that needs one and
does not find it fails with a PrometheusError that says how to get it, as kstatus does.

    rules = rule_groups(helm, {"notReadyFor": "5s"})   # the PrometheusRule's spec.groups
    with Prometheus(bin_dir, folder, targets, rules) as prom:
        prom.alerts()  # /api/v1/alerts
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

import chart
from controlplane import die_with_parent, free_port, stop_child

DASHBOARDS = chart.CHART / "dashboards"
METRICS_JOB = f"{chart.RELEASE}-metrics"  # the metrics Service of the release hack/chart.py renders
# What Grafana would put in place of the dashboard's variables when the test queries.
DASHBOARD_VARIABLES = {
    "job": METRICS_JOB,
    "namespace": ".*",  # the variable's "All"
    "__rate_interval": "1m",
}


class PrometheusError(Exception):
    """A binary is missing, or Prometheus did not start or answer."""


def binary(bin_dir: Path, name: str) -> Path:
    """`prometheus` or `promtool` in bin_dir; a PrometheusError that says how to get it."""
    path = bin_dir / name
    if not os.access(path, os.X_OK):
        raise PrometheusError(
            f"{name} missing in {bin_dir}: run 'bash hack/build-binaries.sh' (it needs Go)"
            " and use the folder it prints"
        )
    return path


def rule_groups(helm: Path, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The PrometheusRule's spec.groups, rendered with prometheusRule values `values`."""
    rendered = chart.helm_template(
        helm, values={"prometheusRule": {"enabled": True, **(values or {})}}
    )
    rules = [
        doc for doc in yaml.safe_load_all(rendered) if doc and doc.get("kind") == "PrometheusRule"
    ]
    assert len(rules) == 1, f"{len(rules)} PrometheusRules rendered"
    groups: list[dict[str, Any]] = rules[0]["spec"]["groups"]
    return groups


def dashboards() -> dict[str, dict[str, Any]]:
    """The chart's dashboards: file name -> the parsed JSON."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS.glob("*.json"))
    }


def panel_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel, rows included."""
    found = []
    stack = list(dashboard.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            found.append((str(panel["title"]), str(target["expr"])))
    return found


def substitute(expr: str, variables: Mapping[str, str] = DASHBOARD_VARIABLES) -> str:
    """Grafana's $name and ${name} replaced; a variable not in `variables` is an error."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"dashboard variable ${name} has no test value")
        return variables[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


class Prometheus:
    """A real Prometheus scraping `targets` every second and evaluating `groups` every second."""

    def __init__(
        self,
        bin_dir: Path,
        folder: Path,
        targets: Sequence[Mapping[str, Any]],
        groups: Sequence[Mapping[str, Any]],
    ) -> None:
        """`targets`: scrape configs' static_configs entries ({"targets": [...], "labels": {}})."""
        self.binary = binary(bin_dir, "prometheus")
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "prometheus.log"
        (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": list(groups)}))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [
                {
                    # as the chart's ServiceMonitor: job = the metrics Service, its labels win
                    "job_name": METRICS_JOB,
                    "honor_labels": True,
                    "scrape_timeout": "1s",
                    "static_configs": list(targets),
                }
            ],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(self.binary),
                    f"--config.file={self.folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        self.wait("Prometheus to be ready", self._ready, timeout=60)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stop_child(self.proc, timeout=15)

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise PrometheusError(f"prometheus exited: {self.text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        """The data of a /api/v1 answer; PrometheusError when its status is not success."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector's samples, or one scalar as one sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert pending or firing now."""
        found: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return found

    def firing(self, name: str) -> list[dict[str, str]]:
        """The labels of each firing alert called `name`."""
        return [
            alert["labels"]
            for alert in self.alerts()
            if alert["labels"].get("alertname") == name and alert["state"] == "firing"
        ]

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 90) -> Any:
        """Poll `check` until it returns something truthy; that, or fail saying `what`."""
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.5)
