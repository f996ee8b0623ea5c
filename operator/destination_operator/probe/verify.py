"""One verification, without Kubernetes: spec + Secret data + provider -> `Outcome`.

`verify()` runs the checks in the order that costs least and leaks least:

1. a provider for the spec's type;
2. the Secret exists (`SecretNotFound`) and has the provider's keys
   (`SecretKeyMissing`, naming the key, never a value), each one line
   (`SecretKeyInvalid`: a line break or control character inside);
3. the probe's transport (`providers.transport`): `spec.transport` and the
   Secret's `caBundle` (`SecretKeyMissing` when it holds no usable
   certificate; `InvalidSpec` for TLS verification skipped outside
   Development);
4. the endpoint guard, on every URL the Destination's author chose, the
   proxy's included, before any connection (`EndpointBlocked`);
5. the provider's probe (write, then delete in `WriteDelete` mode). A probe
   that skipped TLS verification says so in its success message.

Every failure becomes an `Outcome` with the `Reason` of its
`DestinationError`, its message scrubbed of every value in the Secret. The
Kubernetes side (reading the Secret, writing status, events) lives in
`engine` and `kube`; this module only computes.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from destination_operator.api.spec import DestinationSpec, VerificationMode, render_prefix
from destination_operator.api.status import Reason
from destination_operator.errors import (
    EndpointBlockedError,
    EndpointUnreachableError,
    InvalidSpecError,
    SecretKeyInvalidError,
    SecretKeyMissingError,
    SecretNotFoundError,
    translate,
)
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
from destination_operator.providers.base import Stopwatch
from destination_operator.providers.base import probe_object_key as _key_under
from destination_operator.providers.registry import Registry, default_registry
from destination_operator.providers.transport import TLS_SKIPPED_NOTE, Transport, transport_for
from destination_operator.redaction import scrub
from destination_operator.settings import OperatorSettings

__all__ = [
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
    """
    if control is not None and control.refuse_private == allow_private:
        raise ValueError("the probe's control and allow_private disagree on private addresses")
    mode = VerificationMode(spec.verification.mode)
    print_ = fingerprint(secret_data, secret_uid)
    secrets: tuple[bytes, ...] = tuple(secret_data.values()) if secret_data else ()
    context: dict[str, Any] = {
        "time": now,
        "fingerprint": print_,
        "object_key": object_key,
        "mode": mode,
    }
    secret_name = spec.credentials.secret_ref.name
    try:
        provider = (registry or default_registry()).get(spec.type)
        if secret_data is None:
            raise SecretNotFoundError(
                f"Secret {secret_name!r} not found in the Destination's namespace"
            )
        data, undecodable = _decode(secret_data)
        try:
            credentials = provider.load_credentials(data)
        except SecretKeyMissingError as err:
            hint = "its value is not UTF-8 text" if err.key in undecodable else err.hint
            raise SecretKeyMissingError(
                err.key, secret_name=secret_name, hint=hint, alternatives=err.alternatives
            ) from None
        except SecretKeyInvalidError as err:
            raise SecretKeyInvalidError(err.key, err.problem, secret_name=secret_name) from None
        urls = provider.endpoints(spec)
        transport = transport_for(spec, secret_data)
    except Exception as err:  # noqa: BLE001 - ours, or a provider bug: never take the operator down
        return failure(translate(err, secrets=secrets), **context)
    # Only when there is something to say: a provider written before transports keeps working.
    options: dict[str, Any] = {"transport": transport} if transport != Transport() else {}

    bound = control
    if bound is None:
        bound = probe_control(
            spec, default_timeout=default_timeout, allow_private=allow_private, resolve=resolve
        )

    def guard_resolve(host: str, port: int) -> Sequence[str]:
        return bound.resolve(host, port, resolve)

    with bound:
        try:
            for checked in check_endpoints(
                urls, allow_private=allow_private, resolve=guard_resolve
            ):
                bound.pin(checked.host, checked.addresses)
            if transport.https_proxy:
                checked = _check_proxy(transport.https_proxy, allow_private, guard_resolve)
                bound.pin(checked.host, checked.addresses)
        except Exception as err:  # noqa: BLE001 - as above
            return failure(translate(bound.end_error() or err, secrets=secrets), **context)

        watch = Stopwatch()
        try:
            result = provider.probe(
                spec, credentials, object_key, mode, bound.timeout_seconds, **options
            )
        except Exception as err:  # noqa: BLE001 - steps fail in the result; anything else here
            error = translate(bound.end_error() or err, secrets=secrets)
            return Outcome(
                verified=False,
                reason=error.reason,
                message=error.message,
                duration_ms=watch.ms(),
                probed=True,
                **context,
            )
        if result.error is not None:
            ended = bound.end_error()
            error = translate(ended or result.error, secrets=secrets)
            steps = _scrubbed(result.steps, secrets)
            if ended is not None:
                # The SDK's words describe a socket the control shut, not the cause.
                steps = tuple(
                    replace(step, message=error.message)
                    if step.outcome is StepOutcome.Failed
                    else step
                    for step in steps
                )
                if any(
                    step.name is StepName.Write and step.outcome is StepOutcome.Succeeded
                    for step in steps
                ) and any(step.outcome is StepOutcome.Failed for step in steps):
                    error.add_detail("the probe object was written and may be left in place")
            return Outcome(
                verified=False,
                reason=error.reason,
                message=error.message,
                steps=steps,
                duration_ms=watch.ms(),
                probed=True,
                **context,
            )
    done = "wrote and deleted" if mode == VerificationMode.WriteDelete else "wrote"
    message = result.summary or f"{done} probe object {object_key!r}"
    if not transport.verify_tls:  # first: a long message is shortened at its end
        message = f"{TLS_SKIPPED_NOTE}: {message}"
    return Outcome(
        verified=True,
        reason=Reason.ProbeSucceeded,
        message=scrub(message, secrets),
        steps=_scrubbed(result.steps, secrets),
        duration_ms=watch.ms(),
        probed=True,
        **context,
    )
