"""AWS: a ServiceAccount token for temporary credentials, through STS
`AssumeRoleWithWebIdentity` (EKS's IRSA convention).

- The role: the ServiceAccount's `eks.amazonaws.com/role-arn` annotation (object level),
  or the pod's `AWS_ROLE_ARN` with the token file `AWS_WEB_IDENTITY_TOKEN_FILE` that EKS's
  webhook (or the chart) sets (the operator's own identity).
- The audience: `sts.amazonaws.com`.
- The call: botocore's STS client, unsigned (the call carries the token, never a key),
  at the `aws_sts_endpoint` setting or AWS's regional endpoint, one attempt, the probe's
  timeout. The client never resolves credentials, so no default chain runs and the node's
  metadata service is never asked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar

from destination_operator.api.spec import DestinationType
from destination_operator.errors import (
    IdentityExchangeFailedError,
    IdentityNotConfiguredError,
    ProviderUnavailableError,
)
from destination_operator.identity.clouds import OperatorTarget, Target
from destination_operator.kube.serviceaccounts import ServiceAccountView
from destination_operator.providers.issued import AwsSession
from destination_operator.redaction import scrub
from destination_operator.settings import OperatorSettings

__all__ = ["AUDIENCE", "ROLE_ANNOTATION", "Aws"]

ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
AUDIENCE = "sts.amazonaws.com"
DEFAULT_REGION = "us-east-1"
_ROLE_ARN = re.compile(r"arn:aws[a-z-]{0,16}:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}")
_SESSION_UNSAFE = re.compile(r"[^A-Za-z0-9+=,.@_-]+")


def session_name(subject: str) -> str:
    """STS's RoleSessionName for a subject: its allowed characters, at most 64 (CloudTrail
    shows it: which ServiceAccount, or the operator, assumed the role)."""
    return _SESSION_UNSAFE.sub("-", subject)[:64] or "destination-operator"


class Aws:
    """The AWS cloud of `identity.clouds` (see there)."""

    name: ClassVar[str] = "AWS"
    types: ClassVar[frozenset[DestinationType]] = frozenset({DestinationType.AmazonS3})
    annotations: ClassVar[tuple[str, ...]] = (ROLE_ANNOTATION,)

    def __init__(self, settings: OperatorSettings, environ: Any = None) -> None:
        self.endpoint = settings.aws_sts_endpoint
        self.environ = os.environ if environ is None else environ

    def target(self, account: ServiceAccountView) -> Target:
        role = account.annotations.get(ROLE_ANNOTATION, "").strip()
        where = f"ServiceAccount {account.name!r}"
        if not role:
            raise IdentityNotConfiguredError(
                f"{where} has no {ROLE_ANNOTATION} annotation naming the IAM role to assume"
            )
        if not _ROLE_ARN.fullmatch(role):
            raise IdentityNotConfiguredError(
                f"{where}: its {ROLE_ANNOTATION} annotation is not an IAM role ARN "
                "(arn:aws:iam::<12-digit account>:role/<name>)"
            )
        return Target(
            audience=AUDIENCE,
            key=(role,),
            described=f"role {role}",
            details={"role": role, "session": session_name(account.subject)},
        )

    def operator_target(self) -> OperatorTarget:
        role = str(self.environ.get("AWS_ROLE_ARN") or "").strip()
        token_file = str(self.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") or "").strip()
        if not role or not token_file:
            raise IdentityNotConfiguredError(
                "the operator's own AWS identity needs AWS_ROLE_ARN and "
                "AWS_WEB_IDENTITY_TOKEN_FILE in its environment (set by EKS's pod identity "
                "webhook or the chart's aws.roleArn value)"
            )
        if not _ROLE_ARN.fullmatch(role):
            raise IdentityNotConfiguredError("the operator's AWS_ROLE_ARN is not an IAM role ARN")
        target = Target(
            audience=AUDIENCE,
            key=(role, token_file),
            described=f"role {role}",
            details={"role": role, "session": "destination-operator"},
        )
        return OperatorTarget(target=target, token_file=Path(token_file))

    def exchange(self, token: str, target: Target, timeout_seconds: float) -> AwsSession:
        try:
            import botocore
            import botocore.config
            import botocore.exceptions
            import botocore.session
        except ImportError:
            raise ProviderUnavailableError("botocore", "s3") from None
        role = target.details["role"]
        where = f"exchange at AWS STS (AssumeRoleWithWebIdentity) for {target.described}"
        session = botocore.session.Session()
        config = botocore.config.Config(
            signature_version=botocore.UNSIGNED,
            connect_timeout=max(1.0, timeout_seconds),
            read_timeout=max(1.0, timeout_seconds),
            retries={"max_attempts": 1, "mode": "standard"},
        )
        region = str(self.environ.get("AWS_REGION") or DEFAULT_REGION)
        try:
            sts: Any = session.create_client(
                "sts", region_name=region, endpoint_url=self.endpoint, config=config
            )
            answer = sts.assume_role_with_web_identity(
                RoleArn=role, RoleSessionName=target.details["session"], WebIdentityToken=token
            )
        except botocore.exceptions.ClientError as err:
            error = err.response.get("Error", {})
            code = str(error.get("Code") or "an error")
            said = str(error.get("Message") or "")[:300]
            raise IdentityExchangeFailedError(
                f"{where}: {code}" + (f": {said}" if said else ""), secrets=(token,)
            ) from None
        except botocore.exceptions.BotoCoreError as err:
            raise IdentityExchangeFailedError(
                f"{where}: STS could not be reached: {scrub(str(err), (token,))}",
                secrets=(token,),
            ) from None
        found = answer["Credentials"]
        return AwsSession(
            access_key_id=found["AccessKeyId"],
            secret_access_key=found["SecretAccessKey"],
            session_token=found["SessionToken"],
            expires_at=found["Expiration"].timestamp(),
        )
