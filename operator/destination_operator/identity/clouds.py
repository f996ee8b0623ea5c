"""What a cloud contributes to workload identity: the `Cloud` protocol, and which clouds
this build has.

A cloud knows, for the Destination types it serves:

- `annotations`: the ServiceAccount annotations it reads, in its own convention (their
  values go into the credentials fingerprint, so a changed one verifies again);
- `target(account)`: the cloud identity a ServiceAccount stands for, read from those
  annotations only (`IdentityNotConfiguredError` naming the missing or malformed one);
  its `audience` is what the TokenRequest asks for, its `key` what the cache keys by;
- `operator_target()`: the operator's own identity, from its pod's environment (the
  projected token file and what the cloud's webhook or the chart set), never from a
  Destination (`IdentityNotConfiguredError` when the pod has none);
- `exchange(token, target, timeout)`: the token for credentials, through the SDK's
  explicit flow at an operator-level endpoint (settings), never a default chain, which
  would fall back to the node's metadata service. Refusals raise
  `IdentityExchangeFailedError` with the service's error code and never the token.

To add a cloud: a module beside `aws.py` with a class meeting `Cloud`, constructed from
the settings (its endpoints are settings named `<cloud>_<service>_endpoint`, for tests
and private endpoints), and a line in `clouds_for`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from destination_operator.api.spec import DestinationType
from destination_operator.errors import IdentityNotConfiguredError
from destination_operator.kube.serviceaccounts import ServiceAccountView
from destination_operator.providers.issued import Issued
from destination_operator.settings import OperatorSettings

__all__ = [
    "MAX_TOKEN_BYTES",
    "TOKEN_SECONDS",
    "Cloud",
    "OperatorTarget",
    "Target",
    "clouds_for",
    "read_token_file",
]

TOKEN_SECONDS = 600
"""The lifetime the operator asks of a ServiceAccount token: long enough for one exchange."""

MAX_TOKEN_BYTES = 16 * 1024
"""More than any ServiceAccount token; a projected token file longer than this is refused."""


@dataclass(frozen=True)
class Target:
    """The cloud identity to become and how to ask for it.

    `audience`: the token's audience the cloud's token service expects; `key`: everything
    besides the ServiceAccount's uid that changes the result (role, service account,
    tenant, client), for the cache; `described`: words for messages (no secret);
    `details`: what the exchange needs, by name."""

    audience: str
    key: tuple[str, ...]
    described: str
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OperatorTarget:
    """The operator's own identity: its target and the projected token file to present."""

    target: Target
    token_file: Path


class Cloud(Protocol):
    """One cloud's workload identity (see the module's docstring)."""

    name: ClassVar[str]
    types: ClassVar[frozenset[DestinationType]]
    annotations: ClassVar[tuple[str, ...]]

    def target(self, account: ServiceAccountView) -> Target: ...

    def operator_target(self) -> OperatorTarget: ...

    def exchange(self, token: str, target: Target, timeout_seconds: float) -> Issued: ...


def read_token_file(path: Path, what: str) -> str:
    """The operator's projected token, read anew each time (the kubelet rotates it);
    `IdentityNotConfiguredError` when it is missing, empty or too long."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as err:
        raise IdentityNotConfiguredError(
            f"the operator's own identity: cannot read {what} {str(path)!r} "
            f"({err.strerror or type(err).__name__}); is the projected token volume mounted?"
        ) from None
    token = raw.decode("ascii", errors="replace").strip()
    if not token or len(raw) > MAX_TOKEN_BYTES:
        raise IdentityNotConfiguredError(
            f"the operator's own identity: {what} {str(path)!r} holds no usable token"
        )
    return token


def clouds_for(settings: OperatorSettings) -> dict[DestinationType, Cloud]:
    """The clouds of this build, by the Destination type each serves."""
    from destination_operator.identity.aws import Aws
    from destination_operator.identity.azure import Azure
    from destination_operator.identity.google import Google

    clouds: tuple[Cloud, ...] = (
        Aws(settings),
        Google(
            sts_url=settings.gcp_sts_endpoint,
            iamcredentials_url=settings.gcp_iamcredentials_endpoint,
            default_provider=settings.gcp_workload_identity_provider,
            ca_bundle=settings.identity_ca_bundle,
        ),
        Azure(
            authority_host=settings.azure_entra_endpoint,
            default_tenant=settings.azure_tenant_id,
            ca_bundle=settings.identity_ca_bundle,
        ),
    )
    found: dict[DestinationType, Cloud] = {}
    for cloud in clouds:
        for kind in cloud.types:
            found[kind] = cloud
    return found
