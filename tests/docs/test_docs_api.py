"""Statements of docs/api.md that no other test checks."""

from __future__ import annotations

from typing import Any

import pytest

from destination_operator.api.spec import DestinationSpec, spec_problems


def with_bucket(kind: str, bucket: str) -> dict[str, Any]:
    member: dict[str, Any]
    if kind == "AmazonS3":
        member = {"amazonS3": {"bucket": bucket, "region": "us-east-1"}}
    else:
        member = {"s3Compatible": {"endpoint": "https://s3.example.com", "bucket": bucket}}
    return {"type": kind, **member, "credentials": {"secretRef": {"name": "creds"}}}


@pytest.mark.parametrize("bucket", ["xn--reports", "sthree-reports", "reports-s3alias"])
def test_amazons_reserved_bucket_names_bind_amazon_s3_only(bucket: str) -> None:
    """docs/api.md: s3Compatible.bucket follows Amazon's general rules but not its reserved
    prefixes and suffixes, which only mean something on AWS."""
    refused = spec_problems(with_bucket("AmazonS3", bucket))
    assert [p.field for p in refused] == ["spec.amazonS3.bucket"]
    assert "reserved by Amazon S3" in refused[0].message
    assert spec_problems(with_bucket("S3Compatible", bucket)) == []


def test_an_ipv6_literal_endpoint_is_refused() -> None:
    """docs/api.md: IPv6 literal endpoints are not accepted (use a host name)."""
    raw = with_bucket("S3Compatible", "reports")
    raw["s3Compatible"]["endpoint"] = "https://[2001:db8::1]:9000"
    assert [p.field for p in spec_problems(raw)] == ["spec.s3Compatible.endpoint"]


def test_model_validate_also_takes_attribute_names() -> None:
    """docs/api.md: `DestinationSpec.model_validate` also accepts attribute names."""
    spec = DestinationSpec.model_validate(
        {
            "type": "AmazonS3",
            "amazon_s3": {"bucket": "example-bucket", "region": "us-east-1"},
            "credentials": {"secret_ref": {"name": "creds"}},
            "path_prefix": "exports/",
        }
    )
    assert spec.amazon_s3 is not None and spec.amazon_s3.bucket == "example-bucket"
    assert spec.path_prefix == "exports/"
    assert spec.secret_name == "creds"
