"""An OIDC issuer in the test process: an RSA key, its discovery document and JWKS, and
ServiceAccount-shaped tokens signed with it (RS256), for the token services' tests that
run without a control plane. `issuer` is a `oidc.ClusterIssuer` reading this one's
documents, so the services verify these tokens exactly as they verify the API server's.
The cluster tests use the API server's own tokens instead."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from oidc import ClusterIssuer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class LocalIssuer:
    def __init__(self, url: str = "https://issuer.test", kid: str = "key-1") -> None:
        self.url = url
        self.kid = kid
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._key.public_key().public_numbers()
        jwk = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid}
        jwk |= {"n": _uint(numbers.n), "e": _uint(numbers.e)}
        self._documents = {
            f"{url}/.well-known/openid-configuration": json.dumps(
                {"issuer": url, "jwks_uri": f"{url}/openid/v1/jwks"}
            ).encode(),
            f"{url}/openid/v1/jwks": json.dumps({"keys": [jwk]}).encode(),
        }
        self.issuer = ClusterIssuer(url, self._documents.__getitem__)

    def token(
        self,
        namespace: str,
        name: str,
        *,
        audience: str,
        seconds: int = 600,
        issuer: str | None = None,
        now: float | None = None,
    ) -> str:
        """A token as the API server's TokenRequest mints it (the claims clouds read)."""
        moment = time.time() if now is None else now
        claims: dict[str, Any] = {
            "iss": issuer or self.url,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": [audience],
            "iat": int(moment),
            "nbf": int(moment),
            "exp": int(moment + seconds),
        }
        head = _b64(json.dumps({"alg": "RS256", "kid": self.kid, "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims).encode())
        signature = self._key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{_b64(signature)}"
