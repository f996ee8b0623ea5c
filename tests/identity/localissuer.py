"""A cluster's ServiceAccount token issuer in the test process: an RSA key that signs tokens
as kube-apiserver signs them (RS256, a `kid`, `iss`, `sub`, `aud`, `iat`, `nbf`, `exp`,
the `kubernetes.io` claim), and its discovery document and JWKS, served to
`oidc.ClusterIssuer` as the API server serves them.

The token services' tests use it where the control plane's own issuer would cost a cluster
start: the checks (`oidc.ClusterIssuer.verify`) are the same for both, and
tests/identity/test_oidc.py runs them against the control plane's real tokens.

    issuer = LocalIssuer("https://cluster.example")
    token = issuer.mint("team-a", "uploader", audience="sts.amazonaws.com")
    issuer.trusted().verify(token, audience="sts.amazonaws.com")
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from oidc import ClusterIssuer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(number: int) -> str:
    return _b64(number.to_bytes((number.bit_length() + 7) // 8, "big"))


class LocalIssuer:
    """One issuer URL and one signing key (a second issuer has another key)."""

    def __init__(self, issuer: str = "https://cluster.example") -> None:
        self.issuer = issuer.rstrip("/")
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_urlsafe(16)
        self.fetched: list[str] = []  # the URLs a verifier fetched

    def documents(self) -> dict[str, bytes]:
        """Discovery and JWKS by URL, as kube-apiserver serves them."""
        numbers = self._key.public_key().public_numbers()
        jwks = {
            "keys": [
                {
                    "use": "sig",
                    "kty": "RSA",
                    "kid": self.kid,
                    "alg": "RS256",
                    "n": _int_b64(numbers.n),
                    "e": _int_b64(numbers.e),
                }
            ]
        }
        discovery = {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        return {
            f"{self.issuer}/.well-known/openid-configuration": json.dumps(discovery).encode(),
            f"{self.issuer}/openid/v1/jwks": json.dumps(jwks).encode(),
        }

    def trusted(self) -> ClusterIssuer:
        """A cloud's trust in this issuer: it fetches the documents above."""
        documents = self.documents()

        def fetch(url: str) -> bytes:
            self.fetched.append(url)
            return documents[url]

        return ClusterIssuer(self.issuer, fetch)

    def mint(
        self,
        namespace: str,
        name: str,
        *,
        audience: str,
        seconds: int = 600,
        now: float | None = None,
    ) -> str:
        """A token for ServiceAccount `namespace/name`, as a TokenRequest returns it."""
        issued = int(time.time() if now is None else now)
        claims = {
            "aud": [audience],
            "exp": issued + seconds,
            "iat": issued,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": str(uuid.uuid4())},
            },
            "nbf": issued,
            "sub": f"system:serviceaccount:{namespace}:{name}",
        }
        header = {"alg": "RS256", "kid": self.kid}
        signed = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}.{_b64(signature)}"
