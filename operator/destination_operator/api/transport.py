"""`spec.transport`: the proxy and the TLS verification of the probe's connections.

A block of its own, beside the member blocks, because it has its own grammar:
a proxy URL (a host and an optional port, never credentials). The rule that
ties `insecureSkipTLSVerify` to `spec.environment` reads the whole spec, so it
stays with `DestinationSpec` in `spec`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .rules import HOST, Checks, Rule, RuleModel, pattern_rule

__all__ = [
    "PROXY_PATTERN",
    "Transport",
]


_PROXY_PATH = "spec.transport.httpsProxy"
PROXY_PATTERN = f"^https?://{HOST}/?$"
_PROXY_ALLOWED = (
    "must be an http:// or https:// URL of a proxy: a host name or IPv4 address and an "
    "optional :port; no path, query or user:password@"
)


def _no_userinfo(path: str) -> Rule:
    def check(value: str) -> bool:
        return "@" not in value

    return Rule(
        cel="!self.contains('@')",
        message=f"{path} must not contain user:password@: proxy credentials are not supported",
        check=check,
    )


class Transport(RuleModel):
    """How the probe's connections reach the target: through an HTTP(S) proxy, and whether the
    target's TLS certificate is verified. CA certificates to trust are not set here but in the
    Secret (spec.credentials.secretRef.name), under the optional key caBundle (PEM): they are
    trusted instead of the system's CAs, for every type.
    """

    https_proxy: (
        Annotated[
            str,
            Field(
                max_length=512,
                description=(
                    "URL of the proxy that the probe's https:// connections go through, such as "
                    "http://proxy.example.com:3128 (https:// for a proxy that itself speaks TLS). "
                    "The probe opens a CONNECT tunnel through it, so TLS runs from the operator "
                    "to the target and the proxy sees only the target's host and port; the "
                    "proxy resolves that host itself. http:// targets (Development only) are "
                    "reached directly. A host name or IPv4 address and an optional :port; no "
                    "user:password@ (proxy credentials are not supported). The operator checks "
                    "the proxy's address as it checks endpoints (cloud metadata and link-local "
                    "addresses are refused, private ones unless the operator allows them)."
                ),
            ),
            Checks(
                pattern_rule(_PROXY_PATH, PROXY_PATTERN, _PROXY_ALLOWED),
                _no_userinfo(_PROXY_PATH),
            ),
        ]
        | None
    ) = None
    insecure_skip_tls_verify: bool = Field(
        default=False,
        alias="insecureSkipTLSVerify",
        description=(
            "true: the probe does not verify the target's TLS certificate nor its host name. "
            "Allowed only when spec.environment is Development (for a test server with a "
            "throw-away certificate); the Verified condition's message then says that TLS "
            "verification was skipped. Elsewhere, put the CA that signed the certificate in the "
            "Secret's caBundle key."
        ),
    )
