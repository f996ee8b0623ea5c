"""AWS STS's `AssumeRoleWithWebIdentity` on loopback, checked as AWS checks it.

moto's STS issues credentials for any token it is given, so it cannot stand for
AWS alone. This front does what AWS does before it issues anything:

1. verifies the web identity token against the cluster's OIDC issuer
   (`oidc.ClusterIssuer`: RS256 signature with the JWKS key its `kid` names,
   issuer, audience, expiry), the issuer being registered as an IAM OIDC
   provider whose client id is `sts.amazonaws.com`;
2. reads the role's trust policy from moto's IAM and grants the call only when
   a statement allows `sts:AssumeRoleWithWebIdentity` to that provider
   (`Principal.Federated`) and its `StringEquals`/`StringLike` conditions on
   `<issuer>:sub` and `<issuer>:aud` hold for the token's claims;
3. then asks moto's STS (signed with the admin's key) for the role's temporary
   credentials, which moto's S3, with IAM enforced (hack/s3server.py), checks
   like any: the signature, the session token, and the role's own policy.

Refusals use AWS's codes and HTTP statuses: `InvalidIdentityToken` (400:
malformed, bad signature, untrusted issuer, wrong audience),
`ExpiredTokenException` (400), `AccessDenied` (403: no role, or a trust policy
that does not grant this subject). `exchanges` counts the calls that issued
credentials (`issued_for`, by role), `calls` every call; `claims` holds the verified
claims of each token that got credentials (subject, audience, the pod a kubelet bound it to).
"""

from __future__ import annotations

import fnmatch
import json
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

from oidc import ClusterIssuer, TokenRefused

import canaries

ACCOUNT = "123456789012"  # moto's default account
AUDIENCE = "sts.amazonaws.com"
MAX_BODY = 64 * 1024
NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def issuer_path(issuer: str) -> str:
    """The issuer as IAM names it in ARNs and condition keys: without `https://`."""
    return issuer.split("://", 1)[-1].rstrip("/")


def provider_arn(issuer: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer_path(issuer)}"


def trust_policy(issuer: str, subject: str, audience: str = AUDIENCE) -> dict[str, Any]:
    """The trust policy EKS's documentation gives for IRSA: this issuer, this subject."""
    path = issuer_path(issuer)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn(issuer)},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{path}:sub": subject, f"{path}:aud": audience}},
            }
        ],
    }


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _values(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _grants(policy: Mapping[str, Any], issuer: str, claims: Mapping[str, Any]) -> bool:
    """Does a statement of the trust policy let this token's subject assume the role?"""
    path = issuer_path(issuer)
    facts = {f"{path}:sub": str(claims.get("sub", "")), f"{path}:aud": claims.get("aud")}
    statements = policy.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Allow":
            continue
        if "sts:AssumeRoleWithWebIdentity" not in _values(statement.get("Action", [])):
            continue
        federated = (statement.get("Principal") or {}).get("Federated", [])
        if provider_arn(issuer) not in _values(federated):
            continue
        if _conditions_hold(statement.get("Condition") or {}, facts):
            return True
    return False


def _conditions_hold(conditions: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    for operator, pairs in conditions.items():
        if operator not in ("StringEquals", "StringLike"):
            return False  # an operator this front does not know grants nothing
        for key, wanted in pairs.items():
            have = facts.get(key)
            have_values = _values(have) if have is not None else []
            if not have_values:
                return False
            match = (
                (lambda h, w: h == w)
                if operator == "StringEquals"
                else (lambda h, w: fnmatch.fnmatchcase(h, w))
            )
            if not any(match(h, w) for h in have_values for w in _values(wanted)):
                return False
    return True


class AwsStsFront:
    """The front on 127.0.0.1 (a free port): `endpoint` is the URL the operator's
    `aws_sts_endpoint` setting names. `moto` is the moto server's endpoint, `admin` a
    (key id, secret) pair of a user allowed everything there."""

    def __init__(self, issuer: ClusterIssuer, moto: str, admin: tuple[str, str]) -> None:
        import boto3

        self.issuer = issuer
        session = boto3.session.Session(
            aws_access_key_id=admin[0], aws_secret_access_key=admin[1], region_name="us-east-1"
        )
        self.iam = session.client("iam", endpoint_url=moto)
        self.sts = session.client("sts", endpoint_url=moto)
        self.calls = 0
        self.exchanges = 0
        self.refusals: list[str] = []  # codes, in order
        self.issued_for: Counter[str] = Counter()  # role ARN -> credentials issued
        self.claims: list[Mapping[str, Any]] = []  # of the tokens that got credentials
        self.secrets: set[str] = set()  # every token presented and secret issued (canaries)
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                front._serve(self)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # --- roles ---------------------------------------------------------------------------------

    def create_role(
        self,
        name: str,
        *,
        subject: str,
        allow: list[str],
        deny: list[str] = (),  # type: ignore[assignment]
    ) -> str:
        """A role that trusts `subject` of this issuer, with an inline policy allowing
        `allow` (and denying `deny`) on every resource; its ARN."""
        statements: list[dict[str, Any]] = [{"Effect": "Allow", "Action": allow, "Resource": "*"}]
        if deny:
            statements.append({"Effect": "Deny", "Action": list(deny), "Resource": "*"})
        trust = trust_policy(self.issuer.issuer, subject)
        # The front itself (the admin user) must be let assume it in moto, which checks
        # sts:AssumeRole against the trust policy; the web identity check above is separate.
        admin = self.iam.get_user()["User"]["Arn"]
        trust["Statement"].append(
            {"Effect": "Allow", "Principal": {"AWS": admin}, "Action": "sts:AssumeRole"}
        )
        role = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]
        self.iam.put_role_policy(
            RoleName=name,
            PolicyName=f"{name}-policy",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        return str(role["Arn"])

    # --- the call ------------------------------------------------------------------------------

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(request, 413, _error("Sender", "RequestEntityTooLarge", "too large"))
            return
        form = urllib.parse.parse_qs(request.rfile.read(length).decode("utf-8", "replace"))
        params = {key: values[0] for key, values in form.items()}
        with self._lock:
            self.calls += 1
        try:
            body = self._assume(params)
        except Refused as refused:
            with self._lock:
                self.refusals.append(refused.code)
            kind = "Sender"
            self._answer(request, refused.status, _error(kind, refused.code, refused.message))
            return
        with self._lock:
            self.exchanges += 1
            self.issued_for[params.get("RoleArn", "")] += 1
        self._answer(request, 200, body)

    def _assume(self, params: Mapping[str, str]) -> bytes:
        if params.get("Action") != "AssumeRoleWithWebIdentity":
            raise Refused(400, "InvalidAction", "only AssumeRoleWithWebIdentity is served here")
        role_arn = params.get("RoleArn", "")
        session = params.get("RoleSessionName", "")
        token = params.get("WebIdentityToken", "")
        if not role_arn or not session or not token:
            raise Refused(400, "MissingParameter", "RoleArn, RoleSessionName, WebIdentityToken")
        try:
            claims = self.issuer.verify(token, audience=AUDIENCE)
        except TokenRefused as refused:
            if refused.reason == "expired":
                raise Refused(400, "ExpiredTokenException", "Token expired") from None
            if refused.reason == "audience":
                raise Refused(400, "InvalidIdentityToken", "Incorrect token audience") from None
            raise Refused(
                400, "InvalidIdentityToken", f"Couldn't verify the token: {refused.reason}"
            ) from None
        name = role_arn.rsplit("/", 1)[-1]
        try:
            role = self.iam.get_role(RoleName=name)["Role"]
        except self.iam.exceptions.NoSuchEntityException:
            role = None
        if role is None or role["Arn"] != role_arn:
            raise Refused(
                403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"
            )
        policy = role["AssumeRolePolicyDocument"]
        if isinstance(policy, str):
            policy = json.loads(urllib.parse.unquote(policy))
        if not _grants(policy, self.issuer.issuer, claims.raw):
            raise Refused(
                403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"
            )
        issued = self.sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
        # No status, Event or log line may hold these (the namespace fixture and the tests
        # look for them).
        found = (token, str(issued["SecretAccessKey"]), str(issued["SessionToken"]))
        canaries.register(*found)
        with self._lock:
            self.secrets.update(found)
            self.claims.append(dict(claims.raw))
        expiration = issued["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f'<AssumeRoleWithWebIdentityResponse xmlns="{NS}">'
            "<AssumeRoleWithWebIdentityResult>"
            f"<SubjectFromWebIdentityToken>{escape(claims.subject)}</SubjectFromWebIdentityToken>"
            f"<Audience>{AUDIENCE}</Audience>"
            "<AssumedRoleUser>"
            f"<Arn>{escape(role_arn)}/{escape(session)}</Arn>"
            f"<AssumedRoleId>AROA:{escape(session)}</AssumedRoleId>"
            "</AssumedRoleUser>"
            "<Credentials>"
            f"<AccessKeyId>{issued['AccessKeyId']}</AccessKeyId>"
            f"<SecretAccessKey>{escape(issued['SecretAccessKey'])}</SecretAccessKey>"
            f"<SessionToken>{escape(issued['SessionToken'])}</SessionToken>"
            f"<Expiration>{expiration}</Expiration>"
            "</Credentials>"
            f"<Provider>{escape(provider_arn(self.issuer.issuer))}</Provider>"
            "</AssumeRoleWithWebIdentityResult>"
            "<ResponseMetadata><RequestId>front</RequestId></ResponseMetadata>"
            "</AssumeRoleWithWebIdentityResponse>"
        ).encode()

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Type", "text/xml")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _error(kind: str, code: str, message: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="{NS}"><Error><Type>{kind}</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>front</RequestId></ErrorResponse>"
    ).encode()


@contextmanager
def running(issuer: ClusterIssuer, moto: str, admin: tuple[str, str]) -> Iterator[AwsStsFront]:
    front = AwsStsFront(issuer, moto, admin)
    try:
        yield front
    finally:
        front.close()
