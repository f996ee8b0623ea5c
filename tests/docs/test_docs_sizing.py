"""The chart defaults and fixed figures that docs/sizing.md sizes against.

The page recommends resources relative to the chart's defaults and explains
throughput from the operator's pool sizes; a change of either that does not
change the page fails here.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from destination_operator.engine.engine import Engine
from destination_operator.providers import s3
from destination_operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "charts" / "destination-operator" / "values.yaml"
PAGE = ROOT / "docs" / "sizing.md"


def test_the_chart_defaults_are_the_ones_this_page_sizes() -> None:
    values = yaml.safe_load(VALUES.read_text())
    assert values["resources"] == {
        "requests": {"cpu": "50m", "memory": "160Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert (values["probeConcurrency"], values["workers"]) == (8, 32)
    text = " ".join(PAGE.read_text().split())
    assert (
        "`resources.requests` 50m CPU and 160Mi, `limits` 512Mi memory and no CPU limit; "
        "`probeConcurrency` 8, `workers` 32"
    ) in text


def test_the_pools_and_the_s3_client_cache_are_the_sizes_the_page_names() -> None:
    settings = OperatorSettings(probe_concurrency=8, workers=32)
    engine = Engine(settings)
    try:
        assert engine.probe_pool._max_workers == 2 * settings.probe_concurrency
        assert engine.api_pool._max_workers == settings.workers
    finally:
        engine.probe_pool.shutdown()
        engine.api_pool.shutdown()
    assert s3.CLIENTS_KEPT == 256
    text = " ".join(PAGE.read_text().split())
    assert "keeps up to 256 boto3 clients" in text
    assert "probes in a pool of 2 \N{MULTIPLICATION SIGN} `probeConcurrency` threads" in text
