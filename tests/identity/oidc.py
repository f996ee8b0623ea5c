"""Verify a Kubernetes ServiceAccount token the way a cloud's token service does.

AWS STS, Google's STS and Entra ID each trust a cluster as an OIDC issuer: they
fetch its discovery document and JWKS, check the token's RS256 signature with
the key its `kid` names, then its issuer, audience, subject and expiry, and
refuse with their own error. The test token services share this check and map
`TokenRefused.reason` onto the cloud's error.

The control plane is such an issuer: kube-apiserver signs ServiceAccount tokens
(`--service-account-issuer`, the API server's URL here) and serves
`/.well-known/openid-configuration` and `/openid/v1/jwks`. The clouds fetch them
anonymously; the tests fetch them with any client that can reach the API server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MAX_TOKEN_BYTES = 16 * 1024
"""Longer than any ServiceAccount token; the services refuse longer input unread."""


class TokenRefused(Exception):
    """The token is not one the issuer's trust would accept; `reason` says which check."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # malformed, signature, issuer, audience, subject, expired
        self.detail = detail


def digest(token: str) -> str:
    """A short one-way name of a token, for the services' records (never the token)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _int(part: str) -> int:
    return int.from_bytes(_b64url(part), "big")


@dataclass(frozen=True)
class Claims:
    issuer: str
    subject: str
    audiences: tuple[str, ...]
    expires: float
    raw: Mapping[str, Any]

    @property
    def namespace_and_name(self) -> tuple[str, str] | None:
        """(namespace, name) of a `system:serviceaccount:NS:NAME` subject, else None."""
        parts = self.subject.split(":")
        if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
            return parts[2], parts[3]
        return None


class ClusterIssuer:
    """One cluster's OIDC issuer, as a cloud configures it: the issuer URL, and its keys
    fetched through discovery (`fetch(url) -> bytes`). `now` is the verifier's clock: the
    API server mints tokens for 600 s at least, so a test moves this clock past `exp` to
    see a service refuse a token of the API server's as expired."""

    def __init__(self, issuer: str, fetch: Callable[[str], bytes]) -> None:
        self.issuer = issuer.rstrip("/")
        self._fetch = fetch
        self.now: Callable[[], float] = time.time
        self._keys: dict[str, rsa.RSAPublicKey] = {}

    @classmethod
    def of_control_plane(cls, server: str, pki_dir: Any) -> ClusterIssuer:
        """The test control plane's issuer, its documents read with the admin's certificate."""
        context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))

        def fetch(url: str) -> bytes:
            with urllib.request.urlopen(url, context=context, timeout=10) as answer:
                return bytes(answer.read(1024 * 1024))

        return cls(server, fetch)

    def keys(self) -> dict[str, rsa.RSAPublicKey]:
        """The issuer's signing keys by `kid`, from discovery then `jwks_uri` (as clouds do)."""
        discovery = json.loads(self._fetch(f"{self.issuer}/.well-known/openid-configuration"))
        if discovery.get("issuer") != self.issuer:
            raise TokenRefused("issuer", "the discovery document names another issuer")
        jwks = json.loads(self._fetch(str(discovery["jwks_uri"])))
        keys = {}
        for key in jwks.get("keys", []):
            if key.get("kty") == "RSA":
                numbers = rsa.RSAPublicNumbers(_int(key["e"]), _int(key["n"]))
                keys[str(key.get("kid", ""))] = numbers.public_key()
        return keys

    def verify(
        self,
        token: str,
        *,
        audience: str,
        subject: str | None = None,
        now: float | None = None,
    ) -> Claims:
        """The token's claims when its signature, issuer, audience, subject (when given) and
        expiry hold; `TokenRefused` naming the first check that fails."""
        if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise TokenRefused("malformed", "not a compact JWS")
        head_b64, body_b64, signature_b64 = token.split(".")
        try:
            header = json.loads(_b64url(head_b64))
            body = json.loads(_b64url(body_b64))
            signature = _b64url(signature_b64)
        except ValueError as err:
            raise TokenRefused("malformed", "undecodable JWS") from err
        if not isinstance(header, dict) or not isinstance(body, dict):
            raise TokenRefused("malformed", "the header or payload is not an object")
        if header.get("alg") != "RS256":
            raise TokenRefused("signature", f"unsupported alg {header.get('alg')!r}")
        kid = str(header.get("kid", ""))
        key = self._keys.get(kid)
        if key is None:  # a new key: fetch the JWKS again, as a cloud does on an unknown kid
            self._keys = self.keys()
            key = self._keys.get(kid)
        if key is None:
            raise TokenRefused("signature", "no key of the issuer has this kid")
        try:
            key.verify(
                signature,
                f"{head_b64}.{body_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature as err:
            raise TokenRefused("signature", "the signature does not verify") from err
        if body.get("iss") != self.issuer:
            raise TokenRefused("issuer", "the token comes from an untrusted issuer")
        audiences = body.get("aud")
        audiences = (audiences,) if isinstance(audiences, str) else tuple(audiences or ())
        if audience not in audiences:
            raise TokenRefused("audience", "the token is not meant for this audience")
        if subject is not None and body.get("sub") != subject:
            raise TokenRefused("subject", "the token's subject is not trusted")
        moment = self.now() if now is None else now
        expires = float(body.get("exp", 0))
        if expires <= moment:
            raise TokenRefused("expired", "the token has expired")
        if float(body.get("nbf", 0)) > moment + 60:
            raise TokenRefused("expired", "the token is not valid yet")
        return Claims(
            issuer=str(body["iss"]),
            subject=str(body.get("sub", "")),
            audiences=audiences,
            expires=expires,
            raw=body,
        )
