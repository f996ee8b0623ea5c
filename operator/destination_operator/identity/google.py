"""Google Cloud: a ServiceAccount token for a Cloud Storage access token, through Google's STS
and, when the ServiceAccount names a Google service account, iamcredentials impersonation.

- The identity: the ServiceAccount's `iam.gke.io/gcp-service-account` (GKE's convention: the
  service account to impersonate; without it the federated principal itself is used) and the
  workload identity pool provider that trusts the cluster: its
  `destinations.io/gcp-workload-identity-provider` annotation, else the operator's
  default (`default_provider`). The token's audience is the provider's default
  allowed audience (`https://iam.googleapis.com/projects/N/.../providers/X`).
- The operator's own identity: its projected token at `GOOGLE_WORKLOAD_IDENTITY_TOKEN_FILE`
  (the chart mounts it with the provider's audience), the default provider, and
  `GOOGLE_SERVICE_ACCOUNT` when it impersonates one. GKE's metadata server is
  never asked (the probe's guard refuses its link-local address; only projected tokens).
- The exchange: `providers.google_identity.exchange` (google-auth's identity_pool credentials
  built from the token held here), at the operator's STS and IAM Credentials endpoints
  (`sts_url`, `iamcredentials_url`) or Google's public ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from destination_operator.api.spec import DestinationType
from destination_operator.errors import IdentityExchangeFailedError, IdentityNotConfiguredError
from destination_operator.identity.clouds import OperatorTarget, Target
from destination_operator.kube.serviceaccounts import ServiceAccountView
from destination_operator.providers import google_identity as federation
from destination_operator.providers.issued import AccessToken

__all__ = ["Google"]

TOKEN_FILE_ENV = "GOOGLE_WORKLOAD_IDENTITY_TOKEN_FILE"
SERVICE_ACCOUNT_ENV = "GOOGLE_SERVICE_ACCOUNT"


class Google:
    """The Google cloud of `identity.clouds` (see there)."""

    name: ClassVar[str] = "Google"
    types: ClassVar[frozenset[DestinationType]] = frozenset({DestinationType.GoogleCloudStorage})
    annotations: ClassVar[tuple[str, ...]] = (
        federation.PROVIDER_ANNOTATION,
        federation.SERVICE_ACCOUNT_ANNOTATION,
    )

    def __init__(
        self,
        *,
        sts_url: str | None = None,
        iamcredentials_url: str | None = None,
        default_provider: str | None = None,
        ca_bundle: str | None = None,
        environ: Any = None,
    ) -> None:
        """The endpoints are the operator's (settings; unset: Google's public ones), checked
        with `ca_bundle` when given; `default_provider` serves ServiceAccounts without the
        provider annotation and the operator's own identity."""
        self.ca_bundle = ca_bundle
        self.sts_url = sts_url or federation.STS_TOKEN_URL
        self.iamcredentials_url = iamcredentials_url or federation.IAM_CREDENTIALS_URL
        self.default_provider = default_provider
        self.environ = os.environ if environ is None else environ

    def _target(self, annotations: Any, where: str) -> Target:
        try:
            identity = federation.google_identity(
                annotations, where, default_provider=self.default_provider
            )
        except federation.IdentityNotConfigured as err:
            raise IdentityNotConfiguredError(str(err)) from None
        return Target(
            audience=identity.token_audience,
            key=identity.key,
            described=identity.described,
            details={"provider": identity.provider, "service_account": identity.service_account},
        )

    def target(self, account: ServiceAccountView) -> Target:
        return self._target(account.annotations, f"ServiceAccount {account.name!r}")

    def operator_target(self) -> OperatorTarget:
        token_file = str(self.environ.get(TOKEN_FILE_ENV) or "").strip()
        if not token_file:
            raise IdentityNotConfiguredError(
                f"the operator's own Google identity needs {TOKEN_FILE_ENV} (a projected token "
                "with the workload identity provider's audience; the chart's gcp values)"
            )
        if not self.default_provider:
            raise IdentityNotConfiguredError(
                "the operator's own Google identity needs the operator's workload identity "
                "provider (setting gcp_workload_identity_provider)"
            )
        email = str(self.environ.get(SERVICE_ACCOUNT_ENV) or "").strip()
        annotations = {federation.SERVICE_ACCOUNT_ANNOTATION: email} if email else {}
        target = self._target(annotations, "the operator")
        return OperatorTarget(target=target, token_file=Path(token_file))

    def exchange(self, token: str, target: Target, timeout_seconds: float) -> AccessToken:
        identity = federation.GoogleIdentity(
            target.details["provider"], target.details["service_account"]
        )
        try:
            return federation.exchange(
                token,
                identity,
                timeout_seconds=timeout_seconds,
                sts_url=self.sts_url,
                iamcredentials_url=self.iamcredentials_url,
                ca_bundle=self.ca_bundle,
            )
        except federation.FederationRefused as refused:
            service = "Google STS" if refused.step == "sts" else "IAM Credentials"
            said = f"{refused.code}: {refused.detail}" if refused.detail else refused.code
            raise IdentityExchangeFailedError(
                f"exchange at {service} for {target.described}: {said}", secrets=(token,)
            ) from None
