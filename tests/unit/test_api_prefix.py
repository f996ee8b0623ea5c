"""spec.pathPrefix: the grammar, and how render_prefix fills in the tokens."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from destination_operator.api.prefix import PROBE_TOKEN_VALUE, PrefixToken, render_prefix
from destination_operator.api.spec import spec_problems

NOW = datetime.datetime(2024, 3, 9, 23, 30, tzinfo=datetime.UTC)


def with_prefix(prefix: Any) -> dict[str, Any]:
    return {
        "type": "GoogleCloudStorage",
        "googleCloudStorage": {"bucket": "example"},
        "credentials": {"secretRef": {"name": "c"}},
        "pathPrefix": prefix,
    }


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "exports",
        "exports/",
        "a/b/c/",
        "%DATE%",
        "%COLLECTION_ID%/%COLLECTION_NAME%/%RESULT_SET_ID%/%DATE%/",
        "date=%DATE%/part-",
        "a.b_c-d/",
        "./x",
        "x" * 256,
    ],
)
def test_valid_prefixes(prefix: str) -> None:
    assert spec_problems(with_prefix(prefix)) == []


@pytest.mark.parametrize(
    ("prefix", "fragment"),
    [
        ("/exports", "must not start with '/'"),
        ("a/../b", "must not contain '..'"),
        ("..", "must not contain '..'"),
        ("a..b", "must not contain '..'"),
        ("a//b", "'//'"),
        ("%DATE", "may contain only"),
        ("%YEAR%", "may contain only"),
        ("%date%", "may contain only"),
        ("%%", "may contain only"),
        ("a b", "may contain only"),
        ("a\\b", "may contain only"),
        ("a\nb", "may contain only"),
        ("exportés", "may contain only"),
        ("a?b", "may contain only"),
        ("x" * 257, "Too long"),
        (12, "must be of type string"),
    ],
)
def test_invalid_prefixes(prefix: Any, fragment: str) -> None:
    problems = spec_problems(with_prefix(prefix))
    assert problems, prefix
    assert all(p.field == "spec.pathPrefix" for p in problems)
    assert any(fragment in p.message for p in problems)


def test_render_tokens() -> None:
    prefix = "%COLLECTION_ID%/%COLLECTION_NAME%/%RESULT_SET_ID%/%DATE%/x"
    assert render_prefix(
        prefix, NOW, collection_id="c1", collection_name="n", result_set_id="r"
    ) == ("c1/n/r/2024_03_09/x")
    assert render_prefix(prefix, NOW) == "/".join([PROBE_TOKEN_VALUE] * 3) + "/2024_03_09/x"


def test_render_date_is_utc() -> None:
    tokyo = datetime.timezone(datetime.timedelta(hours=9))
    assert render_prefix("%DATE%", NOW.astimezone(tokyo)) == "2024_03_09"
    assert render_prefix("%DATE%", datetime.datetime(2024, 12, 31, 23, 59)) == "2024_12_31"


def test_render_empty_and_plain() -> None:
    assert render_prefix(None, NOW) == ""
    assert render_prefix("", NOW) == ""
    assert render_prefix("exports/", NOW) == "exports/"


def test_render_does_not_rescan_substituted_values() -> None:
    assert render_prefix("%COLLECTION_ID%", NOW, collection_id="%DATE%") == "%DATE%"


@given(
    st.lists(
        st.one_of(
            st.sampled_from([t.value for t in PrefixToken]),
            st.text(alphabet="abc._-=/", min_size=1, max_size=5),
        ),
        max_size=8,
    )
)
def test_rendered_valid_prefix_has_no_token_left(parts: list[str]) -> None:
    prefix = "".join(parts)
    if spec_problems(with_prefix(prefix)):
        return
    rendered = render_prefix(prefix, NOW)
    assert "%" not in rendered
    assert not rendered.startswith("/")
    assert ".." not in rendered
