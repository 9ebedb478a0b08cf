"""Test keys and hand-made tokens for the auth tests (unit and integration).

``forge`` signs whatever header and claims it is given, including the ones PyJWT refuses
to produce (``alg: none``, HMAC keyed with an RSA public key): the attacks to reject.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["TEST_SECRET", "KeyFiles", "claims", "forge", "make_key_files"]

TEST_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
"""A 50-byte HMAC secret used only by tests."""


@dataclass(frozen=True)
class KeyFiles:
    """An RSA and an EC key pair on disk, plus a JWKS publishing both public keys and an HS key."""

    rsa_private: Path
    rsa_public: Path
    ec_private: Path
    jwks: Path
    rsa_private_pem: bytes
    rsa_public_pem: bytes
    ec_private_pem: bytes
    hs_rotated_secret: bytes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_key_files(directory: Path) -> KeyFiles:
    """Generate keys; the JWKS has ``rsa-1`` (RS256), ``ec-1`` (ES256) and ``hs-2`` (HS256)."""
    directory.mkdir(parents=True, exist_ok=True)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    rsa_private = rsa_key.private_bytes(serialization.Encoding.PEM, pkcs8, none)
    rsa_public = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ec_private = ec_key.private_bytes(serialization.Encoding.PEM, pkcs8, none)
    rotated = b"rotated-hs-secret-" + hashlib.sha256(rsa_public).hexdigest().encode()
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    keys = [
        rsa_jwk | {"kid": "rsa-1", "alg": "RS256", "use": "sig"},
        ec_jwk | {"kid": "ec-1", "alg": "ES256", "use": "sig"},
        {"kty": "oct", "kid": "hs-2", "alg": "HS256", "k": _b64(rotated)},
    ]
    paths = {name: directory / name for name in ("rsa.pem", "rsa.pub", "ec.pem", "jwks.json")}
    paths["rsa.pem"].write_bytes(rsa_private)
    paths["rsa.pub"].write_bytes(rsa_public)
    paths["ec.pem"].write_bytes(ec_private)
    paths["jwks.json"].write_text(json.dumps({"keys": keys}))
    return KeyFiles(
        paths["rsa.pem"],
        paths["rsa.pub"],
        paths["ec.pem"],
        paths["jwks.json"],
        rsa_private,
        rsa_public,
        ec_private,
        rotated,
    )


def claims(tenant: str, *scopes: str, ttl_s: int = 300, **extra: Any) -> dict[str, Any]:
    """Valid claims for ``tenant`` with ``scopes`` (override or add any with ``extra``)."""
    now = int(time.time())
    return {
        "sub": "svc-test",
        "tenant": tenant,
        "scopes": list(scopes),
        "iat": now,
        "exp": now + ttl_s,
    } | extra


def forge(header: dict[str, Any], payload: dict[str, Any], key: bytes | None = None) -> str:
    """A compact JWS with any header; HMAC-SHA256 with ``key``, or no signature when None."""
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    signature = b""
    if key is not None:
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)
