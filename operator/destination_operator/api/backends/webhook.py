"""The Webhook block: an HTTPS endpoint that receives deliveries."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..rules import HOST, Checks, RuleModel, pattern_rule

__all__ = [
    "URL_PATTERN",
    "Webhook",
]


URL_PATTERN = f"^https?://{HOST}([/?][!-~]*)?$"
_URL_ALLOWED = (
    "must be an http:// or https:// URL: a host name or IPv4 address, an optional :port, then "
    "an optional path or query of printable ASCII without spaces; no user:password@"
)


class Webhook(RuleModel):
    """An HTTPS endpoint that receives deliveries. The Secret (spec.credentials.secretRef.name)
    must hold verificationToken (sent in a request header, so that the receiver can tell the
    requests are genuine), and optionally bearerToken (sent as Authorization: Bearer).
    """

    url: Annotated[
        str,
        Field(
            max_length=2048,
            description=(
                "URL that receives deliveries, such as https://hooks.example.com/destinations. "
                "https:// is required unless spec.environment is Development. No "
                "user:password@. May change (the Destination is then verified again)."
            ),
        ),
        Checks(pattern_rule("spec.webhook.url", URL_PATTERN, _URL_ALLOWED)),
    ]

    def location(self) -> str:
        """Where data goes: the URL."""
        return self.url
