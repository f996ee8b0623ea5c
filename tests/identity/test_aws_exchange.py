"""The AWS exchange (`identity.aws`) against a verifying STS front and moto's S3 with IAM
enforced: a ServiceAccount token for temporary credentials, then the operator's own probe
(`probe.verify.verify`) with what STS issued.

The tokens are signed by an issuer in the test process (tests/identity/localissuer.py),
verified as AWS verifies them (tests/identity/oidc.py); tests/identity/test_aws_identity.py
runs the same exchange with the control plane's own TokenRequest tokens.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from types import MappingProxyType

import pytest
from awssts import AwsStsFront
from localissuer import LocalIssuer

from destination_operator.api.spec import DestinationSpec, DestinationType, parse_spec
from destination_operator.api.status import Reason
from destination_operator.errors import IdentityExchangeFailedError, IdentityNotConfiguredError
from destination_operator.identity.aws import AUDIENCE, ROLE_ANNOTATION, Aws
from destination_operator.identity.resolve import Identities
from destination_operator.kube.serviceaccounts import IssuedToken, ServiceAccountView
from destination_operator.probe.verify import verify
from destination_operator.providers.issued import AwsSession
from destination_operator.providers.registry import registry_for
from destination_operator.settings import OperatorSettings
from s3server import S3Server

NOW = datetime.datetime(2026, 12, 7, 7, 0, tzinfo=datetime.UTC)
NS = "team-a"


@pytest.fixture(scope="module")
def local() -> LocalIssuer:
    return LocalIssuer()


@pytest.fixture(scope="module")
def front(local: LocalIssuer, s3: S3Server) -> Iterator[AwsStsFront]:
    admin = s3.users["admin"]
    server = AwsStsFront(local.issuer, s3.endpoint, (admin.access_key_id, admin.secret_access_key))
    try:
        yield server
    finally:
        server.close()


def _role(front: AwsStsFront, subject: str, allow: list[str], deny: list[str] = ()) -> str:  # type: ignore[assignment]
    return front.create_role(f"r-{uuid.uuid4().hex[:12]}", subject=subject, allow=allow, deny=deny)


def _account(name: str, role: str | None, namespace: str = NS) -> ServiceAccountView:
    annotations = {ROLE_ANNOTATION: role} if role else {}
    return ServiceAccountView(namespace, name, str(uuid.uuid4()), MappingProxyType(annotations))


def _spec(bucket: str, mode: str = "WriteDelete", account: str = "uploader") -> DestinationSpec:
    return parse_spec(
        {
            "type": "AmazonS3",
            "amazonS3": {"bucket": bucket, "region": "us-east-1"},
            "pathPrefix": "probes/",
            "credentials": {"serviceAccountName": account},
            "verification": {"mode": mode, "timeout": "10s"},
        }
    )


def _aws(front: AwsStsFront) -> Aws:
    return Aws(OperatorSettings(aws_sts_endpoint=front.endpoint), environ={})


def _probe(s3: S3Server, issued: AwsSession, mode: str = "WriteDelete") -> object:
    return verify(
        _spec(s3.buckets[0], mode),
        None,
        secret_uid="",
        object_key=f"probes/.destination-operator/{uuid.uuid4()}.txt",
        allow_private=True,
        now=NOW,
        registry=registry_for(aws_s3_endpoint=s3.endpoint),
        issued=issued,
        credentials_fingerprint="fp",
    )


def test_a_trusted_token_gets_credentials_that_s3_accepts(
    local: LocalIssuer, front: AwsStsFront, s3: S3Server
) -> None:
    account = _account("uploader", None)
    role = _role(front, account.subject, ["s3:PutObject", "s3:DeleteObject"])
    aws = _aws(front)
    target = aws.target(_account("uploader", role))
    assert target.audience == AUDIENCE == "sts.amazonaws.com"
    token = local.token(NS, "uploader", audience=AUDIENCE)
    issued = aws.exchange(token, target, 10)
    assert isinstance(issued, AwsSession) and issued.expires_at > time.time() + 600
    assert issued.access_key_id.startswith("ASIA")  # temporary, with a session token
    found = _probe(s3, issued)
    assert found.reason == Reason.ProbeSucceeded, found.message  # type: ignore[attr-defined]
    assert issued.secret_access_key not in repr(issued)


def test_the_roles_policy_refusing_the_write_is_access_denied(
    local: LocalIssuer, front: AwsStsFront, s3: S3Server
) -> None:
    account = _account("reader", None)
    role = _role(front, account.subject, ["s3:GetObject"], deny=["s3:PutObject"])
    aws = _aws(front)
    issued = aws.exchange(
        local.token(NS, "reader", audience=AUDIENCE), aws.target(_account("reader", role)), 10
    )
    found = _probe(s3, issued)
    assert found.reason == Reason.AccessDenied, found.message  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("other-subject", "AccessDenied"),
        ("other-namespace", "AccessDenied"),
        ("wrong-audience", "InvalidIdentityToken"),
        ("expired", "ExpiredTokenException"),
        ("untrusted-issuer", "InvalidIdentityToken"),
        ("no-such-role", "AccessDenied"),
    ],
)
def test_refusals_name_the_exchange_and_the_code_never_the_token(
    local: LocalIssuer, front: AwsStsFront, case: str, code: str
) -> None:
    trusted = _account("uploader", None)
    role = _role(front, trusted.subject, ["s3:PutObject"])
    name, namespace, audience, now, issuer = "uploader", NS, AUDIENCE, None, None
    if case == "other-subject":
        name = "intruder"  # the role trusts team-a's uploader only
    elif case == "other-namespace":
        namespace = "team-b"  # the same name in another namespace is another subject
    elif case == "wrong-audience":
        audience = "api://AzureADTokenExchange"
    elif case == "expired":
        now = time.time() - 3600
    elif case == "untrusted-issuer":
        issuer = "https://another-cluster.test"
    elif case == "no-such-role":
        role = role + "-gone"
    token = local.token(namespace, name, audience=audience, now=now, issuer=issuer)
    aws = _aws(front)
    before = front.exchanges
    with pytest.raises(IdentityExchangeFailedError) as refused:
        aws.exchange(token, aws.target(_account(name, role, namespace)), 10)
    message = refused.value.message
    assert message.startswith("exchange at AWS STS (AssumeRoleWithWebIdentity) for role ")
    assert f": {code}" in message
    assert token not in message and token.split(".")[2] not in message
    assert front.exchanges == before and front.refusals[-1] == code


def test_an_unreachable_sts_is_an_exchange_failure(local: LocalIssuer, closed_port: int) -> None:
    aws = Aws(OperatorSettings(aws_sts_endpoint=f"http://127.0.0.1:{closed_port}"), environ={})
    role = "arn:aws:iam::123456789012:role/uploader"
    with pytest.raises(IdentityExchangeFailedError) as refused:
        aws.exchange(local.token(NS, "u", audience=AUDIENCE), aws.target(_account("u", role)), 2)
    assert "STS could not be reached" in refused.value.message


@pytest.mark.parametrize(
    ("annotation", "said"),
    [
        (None, "has no eks.amazonaws.com/role-arn annotation"),
        ("uploader", "is not an IAM role ARN"),
        ("arn:aws:iam::123:role/x", "is not an IAM role ARN"),
    ],
)
def test_the_role_comes_from_the_annotation_only(annotation: str | None, said: str) -> None:
    aws = Aws(OperatorSettings(), environ={"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/op"})
    with pytest.raises(IdentityNotConfiguredError) as refused:
        aws.target(_account("uploader", annotation))
    assert said in refused.value.message


def test_n_verifications_cost_one_token_and_one_exchange(
    local: LocalIssuer, front: AwsStsFront, s3: S3Server
) -> None:
    account = _account("cached", None)
    role = _role(front, account.subject, ["s3:PutObject", "s3:DeleteObject"])
    account = ServiceAccountView(
        NS, "cached", account.uid, MappingProxyType({ROLE_ANNOTATION: role})
    )
    tokens: list[str] = []

    def token_for(who: ServiceAccountView, audience: str, seconds: int) -> IssuedToken:
        token = local.token(who.namespace, who.name, audience=audience, seconds=seconds)
        tokens.append(token)
        return IssuedToken(token, time.time() + seconds)

    settings = OperatorSettings(object_level_identity=True, aws_sts_endpoint=front.endpoint)
    identities = Identities(
        settings,
        clouds={DestinationType.AmazonS3: _aws(front)},
        read_account=lambda namespace, name: account,
        token_for=token_for,
    )
    spec = _spec(s3.buckets[0], account="cached")
    before = front.exchanges
    results = []
    for _ in range(5):
        resolved = identities.resolve(NS, spec, 10)
        results.append(_probe(s3, resolved.issued))  # type: ignore[arg-type]
    assert [r.reason for r in results] == [Reason.ProbeSucceeded] * 5  # type: ignore[attr-defined]
    assert front.exchanges - before == 1 and len(tokens) == 1
