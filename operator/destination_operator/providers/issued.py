"""Credentials a cloud issued for a workload identity, as a provider receives them.

The operator's `identity` package requests a ServiceAccount token and exchanges it with
the cloud; what comes back is one of these, handed to the provider's `load_identity`
instead of Secret data going to `load_credentials`. A provider for a type that takes no
identity has no `load_identity`, and the verification says so.

    AwsSession    AWS STS temporary credentials (AssumeRoleWithWebIdentity)
    AccessToken   an OAuth 2.0 bearer token (Google's STS or iamcredentials, Entra ID)

Every value is a secret: `repr` shows none, and `values()` lists them for scrubbing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["AccessToken", "AwsSession", "IdentityProvider", "Issued"]


@dataclass(frozen=True)
class AwsSession:
    """Temporary AWS credentials and when they expire (epoch seconds)."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: float

    def values(self) -> tuple[str, ...]:
        """Every credential value, for scrubbing messages."""
        return (self.access_key_id, self.secret_access_key, self.session_token)


@dataclass(frozen=True)
class AccessToken:
    """A bearer token for a cloud's storage API and when it expires (epoch seconds)."""

    token: str = field(repr=False)
    expires_at: float

    def values(self) -> tuple[str, ...]:
        return (self.token,)


Issued = AwsSession | AccessToken
"""What an exchange yields."""


@runtime_checkable
class IdentityProvider(Protocol):
    """A provider that can probe with issued credentials (the types that take an identity)."""

    def load_identity(self, issued: Issued) -> Any:
        """The provider's credentials from `issued`; `InvalidSpecError` for a kind it cannot
        use (an `AccessToken` for S3, say)."""
        ...
