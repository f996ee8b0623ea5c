"""Expiries read at each probe, through `probe.verify.verify` against the HTTPS webhook
receiver on loopback: a JWT bearer token's `exp` and the earliest `notAfter` of the Secret's
`caBundle` ride in the outcome of a probe that passed; once one has passed, the verification
fails with AuthenticationFailed naming it, before any connection (the receiver sees nothing).

The receiver checks a JWT's HS256 signature and `exp` itself, as a real one would: with the
operator's clock behind, the same expired token reaches it and is refused there.
"""

from __future__ import annotations

import datetime
import uuid

import pytest
from cryptography import x509
from webhookserver import VERIFICATION_TOKEN, WebhookReceiver, make_jwt

from certs import issue
from destination_operator.api.spec import parse_spec
from destination_operator.api.status import Reason, rfc3339
from destination_operator.expiry import Expiry
from destination_operator.outcome import Outcome
from destination_operator.probe.verify import verify
from destination_operator.providers.base import PROBE_DIRECTORY
from destination_operator.providers.registry import Registry

pytest_plugins = ["webhook_fixtures"]

SECRET_UID = "5d1e7a40-2c3b-4f8e-9a61-0b7c2d4e6f81"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def probe(
    receiver: WebhookReceiver,
    registry: Registry,
    secret: dict[str, str],
    at: datetime.datetime | None = None,
) -> tuple[Outcome, int]:
    """Verify the receiver's `/gated/hook` with `secret`; the outcome and the requests it got."""
    key = f"{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"
    spec = parse_spec(
        {
            "type": "Webhook",
            "webhook": {"url": receiver.url("/gated/hook")},
            "credentials": {"secretRef": {"name": "hook"}},
            "verification": {"mode": "Write", "timeout": "5s"},
        }
    )
    outcome = verify(
        spec,
        {k: v.encode() for k, v in secret.items()},
        secret_uid=SECRET_UID,
        object_key=key,
        allow_private=True,
        now=at or now(),
        registry=registry,
    )
    return outcome, len(receiver.received(key))


def shown(outcome: Outcome) -> str:
    return " ".join([outcome.message, repr(outcome), *(s.message for s in outcome.steps)])


def authority(not_after: datetime.datetime) -> str:
    """A CA certificate (PEM) that ends at `not_after`."""
    not_before = not_after - datetime.timedelta(days=365)
    return issue("retired CA", ca=True, not_before=not_before, not_after=not_after).pem


def test_a_jwt_bearer_tokens_exp_rides_in_a_probe_that_passed(
    webhook_receiver: WebhookReceiver, webhook_registry: Registry
) -> None:
    exp = now() + datetime.timedelta(days=10)
    token = make_jwt(exp)
    outcome, received = probe(
        webhook_receiver,
        webhook_registry,
        {"verificationToken": VERIFICATION_TOKEN, "bearerToken": token},
    )
    assert outcome.verified, outcome
    assert received == 1
    assert outcome.expiry == Expiry(exp, "the JWT in the Secret's bearerToken")
    assert token not in shown(outcome)


def test_an_expired_jwt_fails_before_any_connection(
    webhook_receiver: WebhookReceiver, webhook_registry: Registry
) -> None:
    exp = now() - datetime.timedelta(minutes=5)
    token = make_jwt(exp)
    secret = {"verificationToken": VERIFICATION_TOKEN, "bearerToken": token}
    outcome, received = probe(webhook_receiver, webhook_registry, secret)
    assert outcome.reason == Reason.AuthenticationFailed
    assert outcome.expired and not outcome.probed
    assert received == 0  # nothing was sent
    assert outcome.last_probe() is None
    assert f"the JWT in the Secret's bearerToken expired at {rfc3339(exp)}" in outcome.message
    assert "nothing was sent" in outcome.message
    assert token not in shown(outcome) and token.split(".")[1] not in shown(outcome)

    # The receiver refuses the same token by itself: an operator clock behind would not help.
    behind, received = probe(
        webhook_receiver, webhook_registry, secret, at=exp - datetime.timedelta(hours=1)
    )
    assert behind.reason == Reason.AuthenticationFailed
    assert received == 1 and not behind.expired


def test_the_earliest_ca_bundle_not_after_rides_in_a_probe_that_passed(
    webhook_receiver: WebhookReceiver, system_trust_registry: Registry
) -> None:
    """The receiver's CA (valid one day) in the Secret's caBundle: trusted, and its end is
    the expiry, being sooner than the bearer token's."""
    ca = webhook_receiver.ca_file.read_text()
    later = authority(now() + datetime.timedelta(days=400))
    token = make_jwt(now() + datetime.timedelta(days=30))
    outcome, received = probe(
        webhook_receiver,
        system_trust_registry,
        {"verificationToken": VERIFICATION_TOKEN, "bearerToken": token, "caBundle": later + ca},
    )
    assert outcome.verified, outcome
    assert received == 1
    not_after = x509.load_pem_x509_certificate(ca.encode()).not_valid_after_utc
    assert outcome.expiry == Expiry(not_after, "certificate 2 in the Secret's caBundle")


@pytest.mark.parametrize("place", ["first", "last"])
def test_an_expired_ca_in_the_bundle_fails_before_any_connection(
    place: str, webhook_receiver: WebhookReceiver, system_trust_registry: Registry
) -> None:
    ca = webhook_receiver.ca_file.read_text()
    ended = now() - datetime.timedelta(days=2)
    retired = authority(ended)
    bundle = retired + ca if place == "first" else ca + retired
    outcome, received = probe(
        webhook_receiver,
        system_trust_registry,
        {"verificationToken": VERIFICATION_TOKEN, "caBundle": bundle},
    )
    assert outcome.reason == Reason.AuthenticationFailed
    assert received == 0 and outcome.expired
    number = 1 if place == "first" else 2
    said = f"certificate {number} in the Secret's caBundle expired at {rfc3339(ended)}"
    assert said in outcome.message
