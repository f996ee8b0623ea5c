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


def test_the_shards_table_is_the_pages_arithmetic() -> None:
    """Each extrapolated row of the 100,000-Destination table follows from the page's
    formulas (129 MiB + 12 KiB or 22 KiB a Destination, 11.4 ms a verification, 1h);
    the measured rows repeat the figures of the runs the section gives (10,000, and a
    shard of 5,001 among 10,001)."""
    text = PAGE.read_text()
    section = text[text.index("## 100,000 Destinations: shards") :]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 7 and cells[0].isdigit():
            rows[int(cells[0])] = cells
    assert sorted(rows) == [1, 4, 10, 20]

    def number(cell: str) -> float:
        return float(cell.lstrip("~").split()[0].replace(",", ""))

    for shards, cells in rows.items():
        each = 100_000 / shards
        assert number(cells[1]) == each
        assert number(cells[2]) == round(each / 3600, 1)
        assert number(cells[3]) == round(each / 3600 * 11.4)
        if shards == 10:
            assert (cells[4], cells[5]) == ("182.7 MiB", "166.0 MiB")
        elif shards == 20:
            assert (cells[4], cells[5]) == ("under 182.7 MiB (what 10,000 took)", "153.2 MiB")
        else:
            assert number(cells[4]) == round(129 + 12 * each / 1024)
            assert number(cells[5]) == round(129 + 22 * each / 1024)
    runs = " ".join(section[section.index("The measured figures of the table") :].split())
    for measured in ("new: 182.7 and", "peak 166.0 and", "peak 153.2 and"):
        assert measured in runs, measured
    assert "**27.8 a second**" in section and "**317 millicores**" in section
