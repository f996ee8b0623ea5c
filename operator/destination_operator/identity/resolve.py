"""From a Destination's `spec.credentials` to credentials its cloud issued: the policy, the
ServiceAccount, its token, the exchange, each step's failure in its own words.

    identities = Identities(settings)
    resolved = identities.resolve(namespace, spec, timeout_seconds)   # blocking
    resolved.issued          # for the provider's load_identity
    resolved.fingerprint     # the status's credentialsFingerprint: never a token

The steps, each raising the `DestinationError` that names it:

1. policy (`IdentityNotAllowedError`, before any call): `serviceAccountName` needs the
   `object_level_identity` setting; `operatorIdentity` needs `operator_identity`, unless
   `default_service_account` names the ServiceAccount of the Destination's namespace to
   use instead (then `object_level_identity` is needed); a type without a cloud is refused;
2. the ServiceAccount (`ServiceAccountNotFoundError`, `TokenRequestForbiddenError`) and the
   cloud identity its annotations name (`IdentityNotConfiguredError`);
3. the token: a TokenRequest with the cloud's audience, `TOKEN_SECONDS` long
   (`TokenRequestForbiddenError`), or the operator's projected token file;
4. the exchange (`IdentityExchangeFailedError`).

Tokens and issued credentials are cached (`providers.tokencache`) until shortly before they
expire; the ServiceAccount is read at every verification, so a changed annotation takes
effect (and changes the fingerprint) at the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from destination_operator.api.spec import DestinationSpec
from destination_operator.errors import IdentityNotAllowedError
from destination_operator.identity.clouds import (
    TOKEN_SECONDS,
    Cloud,
    Target,
    clouds_for,
    read_token_file,
)
from destination_operator.kube.serviceaccounts import (
    IssuedToken,
    ServiceAccountView,
    read_service_account,
    request_token,
)
from destination_operator.outcome import fingerprint
from destination_operator.providers.issued import Issued
from destination_operator.providers.tokencache import TokenCache
from destination_operator.settings import OperatorSettings, flag

__all__ = ["Identities", "Resolved"]

ReadAccount = Callable[[str, str], ServiceAccountView]
RequestToken = Callable[[ServiceAccountView, str, int], IssuedToken]


@dataclass(frozen=True)
class Resolved:
    """Credentials for one verification, and the fingerprint of what they stand for."""

    issued: Issued
    fingerprint: str
    described: str  # "ServiceAccount 'x' as role ..." or "the operator's own identity ..."
    cache_key: Hashable  # to forget credentials the storage refused


def account_fingerprint(account: ServiceAccountView, cloud: Cloud) -> str:
    """A one-way digest of the ServiceAccount's uid and the annotations the cloud reads."""
    data = {
        name: account.annotations[name].encode()
        for name in cloud.annotations
        if name in account.annotations
    }
    data["uid"] = account.uid.encode()
    return fingerprint(data, account.uid)


class Identities:
    """Resolves identities for Destinations; one per operator (its cache is shared)."""

    def __init__(
        self,
        settings: OperatorSettings,
        *,
        clouds: dict[Any, Cloud] | None = None,
        cache: TokenCache | None = None,
        read_account: ReadAccount = read_service_account,
        token_for: RequestToken = request_token,
    ) -> None:
        self.settings = settings
        self.clouds = clouds if clouds is not None else clouds_for(settings)
        # Not `cache or ...`: an empty cache is falsy (`__len__`), and it would be dropped.
        self.cache = cache if cache is not None else TokenCache()
        self._read_account = read_account
        self._token_for = token_for

    def account_name(self, spec: DestinationSpec) -> str | None:
        """The ServiceAccount of the Destination's namespace the identity is read from
        (None: the operator's own); raises `IdentityNotAllowedError` per the settings."""
        credentials = spec.credentials
        settings = self.settings
        if credentials.service_account_name is not None:
            if not settings.object_level_identity:
                raise IdentityNotAllowedError(
                    "spec.credentials.serviceAccountName: this operator does not use "
                    "ServiceAccounts of Destinations (start it with "
                    f"{flag('object_level_identity')})"
                )
            return credentials.service_account_name
        if settings.default_service_account is not None:
            if not settings.object_level_identity:
                raise IdentityNotAllowedError(
                    "spec.credentials.operatorIdentity: this operator maps it to ServiceAccount "
                    f"{settings.default_service_account!r} of the Destination's namespace, but "
                    "does not use ServiceAccounts of Destinations "
                    f"({flag('object_level_identity')} is off)"
                )
            return settings.default_service_account
        if not settings.operator_identity:
            raise IdentityNotAllowedError(
                "spec.credentials.operatorIdentity: this operator does not lend its own identity "
                f"to Destinations (start it with {flag('operator_identity')})"
            )
        return None

    def cloud(self, spec: DestinationSpec) -> Cloud:
        """The cloud that serves the spec's type; `IdentityNotAllowedError` when none does."""
        cloud = self.clouds.get(spec.type)
        if cloud is None:
            raise IdentityNotAllowedError(
                f"spec.credentials: this operator has no workload identity for type "
                f"{spec.type.value} (use a secretRef)"
            )
        return cloud

    def resolve(self, namespace: str, spec: DestinationSpec, timeout_seconds: float) -> Resolved:
        """Credentials for `spec` in `namespace` (blocking: API calls and the exchange)."""
        name = self.account_name(spec)
        cloud = self.cloud(spec)
        if name is None:
            return self._operator(cloud, timeout_seconds)
        account = self._read_account(namespace, name)
        target = cloud.target(account)

        def exchanged() -> tuple[Issued, float]:
            token = self._token(account, target)
            issued = cloud.exchange(token, target, timeout_seconds)
            return issued, issued.expires_at

        key = (cloud.name, account.uid, *target.key)
        issued = self.cache.fetch(key, exchanged)
        return Resolved(
            issued=issued,
            fingerprint=account_fingerprint(account, cloud),
            described=f"ServiceAccount {name!r} as {target.described}",
            cache_key=key,
        )

    def _token(self, account: ServiceAccountView, target: Target) -> str:
        def requested() -> tuple[str, float]:
            issued = self._token_for(account, target.audience, TOKEN_SECONDS)
            return issued.token, issued.expires_at

        token: str = self.cache.fetch(("token", account.uid, target.audience), requested)
        return token

    def _operator(self, cloud: Cloud, timeout_seconds: float) -> Resolved:
        own = cloud.operator_target()
        target = own.target

        def exchanged() -> tuple[Issued, float]:
            token = read_token_file(own.token_file, "the projected token file")
            issued = cloud.exchange(token, target, timeout_seconds)
            return issued, issued.expires_at

        key = ("operator", cloud.name, *target.key)
        issued = self.cache.fetch(key, exchanged)
        digest = fingerprint({"operator": "\n".join(target.key).encode()}, "operator")
        return Resolved(
            issued=issued,
            fingerprint=digest,
            described=f"the operator's own {target.described}",
            cache_key=key,
        )
