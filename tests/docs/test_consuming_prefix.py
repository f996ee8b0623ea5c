"""The worked example of docs/consuming.md: a pathPrefix rendered by a writer and by the probe.

Each value below is also in the page, so the page cannot drift from what the code renders.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from destination_operator.api.prefix import render_prefix
from destination_operator.api.spec import parse_spec
from destination_operator.probe.verify import probe_object_key

PAGE = Path(__file__).resolve().parents[2] / "docs" / "consuming.md"

# One run of a collection: 00:30 in Berlin on 10 March is still 9 March in UTC.
RUN = datetime.datetime(2026, 3, 10, 0, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
COLLECTION = {
    "collection_id": "F7A3C2D1",
    "collection_name": "weekly-prices",
    "result_set_id": "42",
}
UID = "0b5d8f2e-9c41-4a7e-8d2f-6a1b3c4d5e6f"

# pathPrefix -> (what a writer puts before its file name, the operator's probe object key)
EXAMPLES = {
    "exports/%COLLECTION_NAME%/%DATE%/%RESULT_SET_ID%/": (
        "exports/weekly-prices/2026_03_09/42/",
        f"exports/verification/2026_03_09/verification/.destination-operator-probe/{UID}.txt",
    ),
    "raw/%COLLECTION_ID%/%DATE%-": (
        "raw/F7A3C2D1/2026_03_09-",
        f"raw/verification/2026_03_09-.destination-operator-probe/{UID}.txt",
    ),
    "": ("", f".destination-operator-probe/{UID}.txt"),
}


@pytest.mark.parametrize("prefix", list(EXAMPLES), ids=["by-name", "by-id", "no-prefix"])
def test_the_worked_example_renders_as_the_page_says(prefix: str) -> None:
    written, probe = EXAMPLES[prefix]
    assert render_prefix(prefix, RUN, **COLLECTION) == written
    spec = parse_spec(
        {
            "type": "S3Compatible",
            "s3Compatible": {"endpoint": "https://s3.team-a.example.com", "bucket": "reports"},
            "credentials": {"secretRef": {"name": "reports-credentials"}},
            "pathPrefix": prefix or None,
        }
    )
    assert probe_object_key(spec, UID, RUN) == probe
    page = PAGE.read_text()
    for text in (prefix, written, probe):
        assert f"`{text}`" in page or not text, f"{text!r} is not on docs/consuming.md"


def test_the_page_shows_the_example_run() -> None:
    page = PAGE.read_text()
    for value in (*COLLECTION.values(), "2026-03-10T00:30:00+01:00", UID):
        assert value in page


def test_values_are_put_in_as_given() -> None:
    """The writer's values are not checked against the prefix grammar: a `/` in a collection
    name makes a folder, `..` stays `..`. Cleaning them is the writer's job."""
    rendered = render_prefix("exports/%COLLECTION_NAME%/", RUN, collection_name="a/../b c")
    assert rendered == "exports/a/../b c/"
