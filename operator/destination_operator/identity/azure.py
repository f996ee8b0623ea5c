"""Azure: a ServiceAccount token, presented to Entra ID as a client assertion, for a Blob
storage bearer token (AKS's workload identity convention).

- The identity: the ServiceAccount's `azure.workload.identity/client-id` and
  `azure.workload.identity/tenant-id` annotations (the tenant defaults to the operator's
  `default_tenant`). The token's audience is `api://AzureADTokenExchange`.
- The operator's own identity: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and
  `AZURE_FEDERATED_TOKEN_FILE`, which AKS's workload identity webhook (or the chart) sets.
- The exchange: `providers.azure_identity.exchange` (azure-identity's
  ClientAssertionCredential) at the operator's authority host or Entra's public cloud,
  HTTPS only, trusting `ca_bundle` when given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from destination_operator.api.spec import DestinationType
from destination_operator.errors import IdentityExchangeFailedError, IdentityNotConfiguredError
from destination_operator.identity.clouds import OperatorTarget, Target
from destination_operator.kube.serviceaccounts import ServiceAccountView
from destination_operator.providers import azure_identity as entra
from destination_operator.providers.issued import AccessToken

__all__ = ["Azure"]


class Azure:
    """The Azure cloud of `identity.clouds` (see there)."""

    name: ClassVar[str] = "Azure"
    types: ClassVar[frozenset[DestinationType]] = frozenset({DestinationType.AzureBlobStorage})
    annotations: ClassVar[tuple[str, ...]] = (
        entra.CLIENT_ID_ANNOTATION,
        entra.TENANT_ID_ANNOTATION,
    )

    def __init__(
        self,
        *,
        authority_host: str | None = None,
        default_tenant: str | None = None,
        ca_bundle: str | None = None,
        environ: Any = None,
    ) -> None:
        """The authority is the operator's (a setting; unset: Entra's public cloud), checked
        with `ca_bundle` when given; `default_tenant` serves ServiceAccounts without the
        tenant-id annotation."""
        self.authority = authority_host or entra.AUTHORITY_HOST
        self.default_tenant = default_tenant
        self.ca_bundle = ca_bundle
        self.environ = os.environ if environ is None else environ

    def _target(self, annotations: Any, where: str) -> Target:
        try:
            identity = entra.azure_identity(annotations, where, default_tenant=self.default_tenant)
        except entra.IdentityNotConfigured as err:
            raise IdentityNotConfiguredError(str(err)) from None
        return Target(
            audience=identity.token_audience,
            key=identity.key,
            described=identity.described,
            details={"tenant": identity.tenant_id, "client": identity.client_id},
        )

    def target(self, account: ServiceAccountView) -> Target:
        return self._target(account.annotations, f"ServiceAccount {account.name!r}")

    def operator_target(self) -> OperatorTarget:
        environ = self.environ
        client = str(environ.get("AZURE_CLIENT_ID") or "").strip()
        token_file = str(environ.get("AZURE_FEDERATED_TOKEN_FILE") or "").strip()
        if not client or not token_file:
            raise IdentityNotConfiguredError(
                "the operator's own Azure identity needs AZURE_CLIENT_ID and "
                "AZURE_FEDERATED_TOKEN_FILE in its environment (set by AKS's workload identity "
                "webhook or the chart's azure values)"
            )
        annotations = {entra.CLIENT_ID_ANNOTATION: client}
        tenant = str(environ.get("AZURE_TENANT_ID") or "").strip()
        if tenant:
            annotations[entra.TENANT_ID_ANNOTATION] = tenant
        target = self._target(annotations, "the operator")
        return OperatorTarget(target=target, token_file=Path(token_file))

    def exchange(self, token: str, target: Target, timeout_seconds: float) -> AccessToken:
        identity = entra.AzureIdentity(target.details["tenant"], target.details["client"])
        try:
            return entra.exchange(
                token,
                identity,
                timeout_seconds=timeout_seconds,
                authority_host=self.authority,
                ca_bundle=self.ca_bundle,
            )
        except entra.AssertionRefused as refused:
            said = " ".join(part for part in (refused.aadsts, refused.detail) if part)
            raise IdentityExchangeFailedError(
                f"exchange at Entra ID for {target.described}: {refused.code}"
                + (f": {said}" if said else ""),
                secrets=(token,),
            ) from None
