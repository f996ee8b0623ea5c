"""The Google Cloud Storage block, with Cloud Storage's bucket naming rules."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..rules import Checks, Rule, RuleModel, immutable, matches, not_ip, pattern_rule

__all__ = [
    "GoogleCloudStorage",
    "gcs_bucket_rules",
]


def gcs_bucket_rules(path: str) -> tuple[Rule, ...]:
    """Cloud Storage's bucket naming rules."""

    def short_or_dotted(value: str) -> bool:
        return len(value) <= 63 or "." in value

    def parts_short(value: str) -> bool:
        return not matches(value, "[^.]{64}")

    def not_google(value: str) -> bool:
        return not value.startswith("goog") and "google" not in value and "g00gle" not in value

    return (
        pattern_rule(
            path,
            "^[a-z0-9][-a-z0-9_.]*[a-z0-9]$",
            "must use only lowercase letters, digits, '-', '_' and '.', "
            "and start and end with a letter or digit",
        ),
        Rule(
            cel="self.size() <= 63 || self.contains('.')",
            message=f"{path} must be at most 63 characters (at most 222 if it contains dots)",
            check=short_or_dotted,
        ),
        Rule(
            cel="!self.matches('[^.]{64}')",
            message=f"{path} must not have a dot-separated part longer than 63 characters",
            check=parts_short,
        ),
        not_ip(path),
        Rule(
            cel="!self.startsWith('goog') && !self.contains('google') && !self.contains('g00gle')",
            message=f"{path} must not start with 'goog' nor contain 'google' or 'g00gle'",
            check=not_google,
        ),
    )


class GoogleCloudStorage(RuleModel):
    """A Google Cloud Storage bucket. The Secret (spec.credentials.secretRef.name) must hold either
    serviceAccountJson (a service account key file in JSON), or hmacAccessKey and hmacSecret
    (interoperability HMAC keys).
    """

    bucket: Annotated[
        str,
        Field(
            min_length=3,
            max_length=222,
            description=(
                "Name of an existing bucket: 3-63 lowercase letters, digits, '-', '_' and '.' "
                "(up to 222 with dots, each dot-separated part at most 63), starting and ending "
                "with a letter or digit, not formatted as an IP address, not starting with "
                "goog and not containing google. Immutable."
            ),
        ),
        Checks(
            *gcs_bucket_rules("spec.googleCloudStorage.bucket"),
            immutable("spec.googleCloudStorage.bucket"),
        ),
    ]

    def location(self) -> str:
        """Where data goes: `gs://<bucket>`."""
        return f"gs://{self.bucket}"
