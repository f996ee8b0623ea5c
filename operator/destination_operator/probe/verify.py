"""One verification, without Kubernetes: spec + Secret data + provider -> `Outcome`.

`verify()` runs named steps, in the order that costs least and leaks least
(`STEPS`, as Flux's source-controller lists its `reconcilers`); each returns
the `Outcome` that ends the verification, or None to go on:

1. `provider_and_credentials`: a provider for the spec's type; the Secret
   exists (`SecretNotFound`) and has the provider's keys (`SecretKeyMissing`,
   naming the key, never a value), each one line (`SecretKeyInvalid`: a line
   break or control character inside); the probe's transport
   (`providers.transport`): `spec.transport` and the Secret's `caBundle`
   (`SecretKeyMissing` when it holds no usable certificate; `InvalidSpec` for
   TLS verification skipped outside Development);
2. `credentials_expiry`: when the credentials expire, where their text
   says (`expiry`: the provider's `ReadsExpiry`, the Secret's `caBundle`);
   the earliest goes in every later `Outcome`, and once it has passed the
   verification fails here, before any connection (`AuthenticationFailed`,
   naming the expiry; `decide` makes it Stalled);
3. `endpoint_guard`: the guard, on every URL the Destination's author chose,
   the proxy's included, before any connection (`EndpointBlocked`); the
   probe's control, and its deadline, start here;
4. `probe`: the provider's probe (write, then delete in `WriteDelete` mode).

When every step went on, the probe succeeded (`succeeded`); a probe that
skipped TLS verification says so in its success message.

Every failure becomes an `Outcome` with the `Reason` of its
`DestinationError`, its message scrubbed of every value in the Secret. The
Kubernetes side (reading the Secret, writing status, events) lives in
`engine` and `kube`; this module only computes.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from destination_operator.api.spec import DestinationSpec, VerificationMode, render_prefix
from destination_operator.api.status import Reason, rfc3339
from destination_operator.errors import (
    CredentialsExpiredError,
    DestinationError,
    EndpointBlockedError,
    EndpointUnreachableError,
    InvalidSpecError,
    SecretKeyInvalidError,
    SecretKeyMissingError,
    SecretNotFoundError,
    translate,
)
from destination_operator.expiry import Expiry, ca_bundle_expiry, earliest
from destination_operator.outcome import (
    Outcome,
    StepName,
    StepOutcome,
    StepResult,
    failure,
    fingerprint,
)
from destination_operator.probe.control import ProbeControl
from destination_operator.probe.endpoints import (
    CheckedEndpoint,
    Resolver,
    check_endpoint,
    check_endpoints,
)
from destination_operator.providers.base import ProbeResult, Provider, ReadsExpiry, Stopwatch
from destination_operator.providers.base import probe_object_key as _key_under
from destination_operator.providers.issued import IdentityProvider, Issued
from destination_operator.providers.registry import Registry, default_registry
from destination_operator.providers.transport import (
    CA_BUNDLE_KEY,
    TLS_SKIPPED_NOTE,
    Transport,
    transport_for,
)
from destination_operator.redaction import scrub
from destination_operator.settings import OperatorSettings

__all__ = [
    "STEPS",
    "probe_control",
    "probe_object_key",
    "verify",
]


def probe_object_key(spec: DestinationSpec, uid: str, now: datetime.datetime) -> str:
    """The probe object's key for this Destination: under its rendered `pathPrefix`."""
    prefix = render_prefix(spec.path_prefix or "", now)
    return _key_under(prefix, uid)


def probe_control(
    spec: DestinationSpec,
    *,
    default_timeout: float,
    allow_private: bool,
    resolve: Resolver | None = None,
) -> ProbeControl:
    """The control of one probe of `spec`: its timeout (the spec's, else `default_timeout`),
    and the endpoint guard's rule on private addresses for the hosts the guard did not check.
    `resolve` resolves every name of the probe (tests); None: the system's resolver."""
    return ProbeControl(
        spec.verification.timeout_seconds or default_timeout,
        refuse_private=not allow_private,
        resolve=resolve,
    )


def _decode(secret_data: Mapping[str, bytes]) -> tuple[dict[str, str], set[str]]:
    text: dict[str, str] = {}
    undecodable: set[str] = set()
    for key, value in secret_data.items():
        if isinstance(value, str):
            text[key] = value
            continue
        try:
            text[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            undecodable.add(key)
    return text, undecodable


def _check_proxy(url: str, allow_private: bool, resolve: Resolver) -> CheckedEndpoint:
    """The endpoint guard on the proxy's URL; a refusal says it was the proxy's."""
    try:
        return check_endpoint(url, allow_private=allow_private, resolve=resolve)
    except (EndpointBlockedError, EndpointUnreachableError, InvalidSpecError) as err:
        raise type(err)(f"the proxy (spec.transport.httpsProxy): {err.message}") from None


def _scrubbed(steps: Sequence[StepResult], secrets: Sequence[bytes]) -> tuple[StepResult, ...]:
    """The provider's steps with messages fit for a status: an endpoint chose their words."""
    return tuple(
        replace(step, message=scrub(step.message, secrets)) if step.message else step
        for step in steps
    )


@dataclass
class Verification:
    """One verification as its steps see it: the inputs, and what each step found."""

    spec: DestinationSpec
    secret_data: Mapping[str, bytes] | None
    object_key: str
    allow_private: bool
    default_timeout: float
    registry: Registry | None
    resolve: Resolver | None
    control: ProbeControl | None  # made by `endpoint_guard` when None
    context: dict[str, Any]  # time, fingerprint, object_key, mode: in every Outcome
    secrets: tuple[bytes, ...]  # every Secret value, scrubbed from every message
    under_control: contextlib.ExitStack  # the control, once entered, until verify() returns
    issued: Issued | None = None  # a workload identity's credentials, instead of a Secret
    provider: Provider | None = None
    credentials: Any = None
    urls: Sequence[str] = ()
    transport: Transport = field(default_factory=Transport)
    watch: Stopwatch = field(default_factory=Stopwatch)
    result: ProbeResult | None = None

    @property
    def mode(self) -> VerificationMode:
        mode: VerificationMode = self.context["mode"]
        return mode

    @property
    def bound(self) -> ProbeControl:
        """The probe's control (from `endpoint_guard` on)."""
        assert self.control is not None, "the control is made by the endpoint guard"
        return self.control


Step = Callable[[Verification], Outcome | None]


def provider_and_credentials(run: Verification) -> Outcome | None:
    """The provider for the spec's type, the credentials it reads from the Secret, the URLs
    the guard checks and the probe's transport; a failure names the key, never a value."""
    spec, secret_data = run.spec, run.secret_data
    secret_name = spec.secret_name or ""
    try:
        run.provider = (run.registry or default_registry()).get(spec.type)
        if spec.credentials.uses_identity:
            return _identity_credentials(run)
        if secret_data is None:
            raise SecretNotFoundError(
                f"Secret {secret_name!r} not found in the Destination's namespace"
            )
        data, undecodable = _decode(secret_data)
        try:
            run.credentials = run.provider.load_credentials(data)
        except SecretKeyMissingError as err:
            hint = "its value is not UTF-8 text" if err.key in undecodable else err.hint
            raise SecretKeyMissingError(
                err.key, secret_name=secret_name, hint=hint, alternatives=err.alternatives
            ) from None
        except SecretKeyInvalidError as err:
            raise SecretKeyInvalidError(err.key, err.problem, secret_name=secret_name) from None
        run.urls = run.provider.endpoints(spec)
        run.transport = transport_for(spec, secret_data)
    except Exception as err:  # noqa: BLE001 - ours, or a provider bug: never take the operator down
        return failure(translate(err, secrets=run.secrets), **run.context)
    return None


def _identity_credentials(run: Verification) -> Outcome | None:
    """The provider's credentials from what the cloud issued (no Secret, no caBundle)."""
    provider, spec = run.provider, run.spec
    if run.issued is None:
        raise InvalidSpecError("spec.credentials: no credentials were issued for the identity")
    if not isinstance(provider, IdentityProvider):
        raise InvalidSpecError(
            f"spec.credentials: type {spec.type.value} takes a secretRef, not a workload identity"
        )
    run.credentials = provider.load_identity(run.issued)
    assert provider is not None
    run.urls = provider.endpoints(spec)
    run.transport = transport_for(spec, {})
    return None


def _expiries(run: Verification) -> list[Expiry | None]:
    found: list[Expiry | None] = []
    if isinstance(run.provider, ReadsExpiry):
        found.extend(run.provider.expiries(run.credentials))
    bundle = (run.secret_data or {}).get(CA_BUNDLE_KEY)
    if bundle:  # decoded and checked by `transport_for` already
        text = bundle.decode("utf-8", "replace") if isinstance(bundle, bytes) else bundle
        found.append(ca_bundle_expiry(text, f"the Secret's {CA_BUNDLE_KEY}"))
    return found


def credentials_expiry(run: Verification) -> Outcome | None:
    """Read when the credentials expire (no connection); once that has passed, stop here:
    the service would refuse them, and the request would send them for nothing."""
    try:
        found = earliest(_expiries(run))
    except Exception:  # noqa: BLE001 - an unreadable expiry is unknown, never a failure
        found = None
    run.context["expiry"] = found
    if found is None or not found.passed(run.context["time"]):
        return None
    error = CredentialsExpiredError(
        f"{found.source} expired at {rfc3339(found.at)}; nothing was sent: "
        "put unexpired credentials in the Secret"
    )
    return failure(error, **run.context)


def endpoint_guard(run: Verification) -> Outcome | None:
    """Start the probe's control (its deadline counts from here), check every URL the
    author chose, the proxy's too, and pin each host to the addresses checked."""
    if run.control is None:
        run.control = probe_control(
            run.spec,
            default_timeout=run.default_timeout,
            allow_private=run.allow_private,
            resolve=run.resolve,
        )
    bound = run.under_control.enter_context(run.control)

    def guard_resolve(host: str, port: int) -> Sequence[str]:
        return bound.resolve(host, port, run.resolve)

    try:
        for checked in check_endpoints(
            run.urls, allow_private=run.allow_private, resolve=guard_resolve
        ):
            bound.pin(checked.host, checked.addresses)
        if run.transport.https_proxy:
            checked = _check_proxy(run.transport.https_proxy, run.allow_private, guard_resolve)
            bound.pin(checked.host, checked.addresses)
    except Exception as err:  # noqa: BLE001 - as above
        return failure(translate(bound.end_error() or err, secrets=run.secrets), **run.context)
    return None


def probe(run: Verification) -> Outcome | None:
    """The provider's probe under the control; a failure is reported in its own words,
    or the control's when it ended the probe."""
    assert run.provider is not None
    bound = run.bound
    # Only when there is something to say: a provider written before transports keeps working.
    options: dict[str, Any] = {"transport": run.transport} if run.transport != Transport() else {}
    run.watch = Stopwatch()
    try:
        run.result = run.provider.probe(
            run.spec, run.credentials, run.object_key, run.mode, bound.timeout_seconds, **options
        )
    except Exception as err:  # noqa: BLE001 - steps fail in the result; anything else here
        error = translate(bound.end_error() or err, secrets=run.secrets)
        return _probe_failed(run, error, ())
    if run.result.error is None:
        return None
    ended = bound.end_error()
    error = translate(ended or run.result.error, secrets=run.secrets)
    steps = _scrubbed(run.result.steps, run.secrets)
    if ended is not None:
        # The SDK's words describe a socket the control shut, not the cause.
        steps = tuple(
            replace(step, message=error.message) if step.outcome is StepOutcome.Failed else step
            for step in steps
        )
        if any(
            step.name is StepName.Write and step.outcome is StepOutcome.Succeeded for step in steps
        ) and any(step.outcome is StepOutcome.Failed for step in steps):
            error.add_detail("the probe object was written and may be left in place")
    return _probe_failed(run, error, steps)


def _probe_failed(
    run: Verification, error: DestinationError, steps: tuple[StepResult, ...]
) -> Outcome:
    return Outcome(
        verified=False,
        reason=error.reason,
        message=error.message,
        steps=steps,
        duration_ms=run.watch.ms(),
        probed=True,
        **run.context,
    )


def succeeded(run: Verification) -> Outcome:
    """The outcome when every step went on: the probe wrote (and deleted) its object."""
    assert run.result is not None
    done = "wrote and deleted" if run.mode == VerificationMode.WriteDelete else "wrote"
    message = run.result.summary or f"{done} probe object {run.object_key!r}"
    if not run.transport.verify_tls:  # first: a long message is shortened at its end
        message = f"{TLS_SKIPPED_NOTE}: {message}"
    return Outcome(
        verified=True,
        reason=Reason.ProbeSucceeded,
        message=scrub(message, run.secrets),
        steps=_scrubbed(run.result.steps, run.secrets),
        duration_ms=run.watch.ms(),
        probed=True,
        **run.context,
    )


STEPS: tuple[Step, ...] = (provider_and_credentials, credentials_expiry, endpoint_guard, probe)
"""A verification's steps, in order: each ends it with an `Outcome`, or goes on (None)."""


def verify(
    spec: DestinationSpec,
    secret_data: Mapping[str, bytes] | None,
    *,
    secret_uid: str,
    object_key: str,
    allow_private: bool,
    now: datetime.datetime,
    default_timeout: float = OperatorSettings.model_fields["timeout_seconds"].default,
    registry: Registry | None = None,
    resolve: Resolver | None = None,
    control: ProbeControl | None = None,
    issued: Issued | None = None,
    credentials_fingerprint: str | None = None,
) -> Outcome:
    """Verify `spec` with `secret_data` (None: the Secret does not exist); never raises
    for a verification failure, which is reported in the `Outcome`.

    `secret_uid` is the Secret's `metadata.uid`, the key of its fingerprint.

    `allow_private` lets the endpoint guard pass loopback and private
    addresses; `default_timeout` bounds the probe when the spec sets none
    (the default of the operator's `timeout_seconds` setting, its one owner).

    The endpoint guard and the probe run under `control` (see
    `probe.control`): a hard deadline counted from the guard's start, bounded
    name resolution, and connections pinned to the addresses the guard
    checked. The engine passes a control (made by `probe_control`) to be able
    to `abort()` the probe; without one, `probe_control` makes one here from
    `default_timeout`, `allow_private` and `resolve`. A control that does not
    refuse private addresses exactly when `allow_private` is False is a
    `ValueError`: the guard and the connections would follow different rules.
    A probe that fails after its deadline or an abort reports reason `Timeout`
    with the control's message; one whose every step succeeded stands (its
    sockets were not shut before it had its answers).

    A Destination with a workload identity has no Secret: `issued` holds what its cloud
    issued (`identity.resolve`), scrubbed from every message like a Secret's values, and
    `credentials_fingerprint` the fingerprint of the identity it stands for.
    """
    if control is not None and control.refuse_private == allow_private:
        raise ValueError("the probe's control and allow_private disagree on private addresses")
    with contextlib.ExitStack() as under_control:
        run = Verification(
            spec=spec,
            secret_data=secret_data,
            object_key=object_key,
            allow_private=allow_private,
            default_timeout=default_timeout,
            registry=registry,
            resolve=resolve,
            control=control,
            context={
                "time": now,
                "fingerprint": (
                    fingerprint(secret_data, secret_uid)
                    if credentials_fingerprint is None
                    else credentials_fingerprint
                ),
                "object_key": object_key,
                "mode": VerificationMode(spec.verification.mode),
                "expiry": None,  # read by `credentials_expiry`
            },
            secrets=(
                tuple(value.encode() for value in issued.values())
                if issued is not None
                else tuple(secret_data.values())
                if secret_data
                else ()
            ),
            under_control=under_control,
            issued=issued,
        )
        for step in STEPS:
            ended = step(run)
            if ended is not None:
                return ended
    return succeeded(run)
