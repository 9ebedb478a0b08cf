"""JWTs: the key ring, verification, minting, and the production safety checks.

Used by ``services.auth`` (verify a ``Bearer`` token on every message) and by the
``ragstream token``/``login`` commands (mint). Every key is pinned to one algorithm: a
token is verified only with the key its ``kid`` names (or the primary key when it names
none) and only with that key's algorithm, so ``alg: none`` and key confusion (an HMAC
token keyed with an RSA public key) cannot pass.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

from streams.errors import AuthenticationError, ConfigError
from streams.settings import AuthSettings, Settings

__all__ = [
    "WELL_KNOWN_SECRETS",
    "KeyRing",
    "TokenMinter",
    "TokenVerifier",
    "VerifiedToken",
    "check_auth_settings",
    "is_weak_password",
    "is_weak_secret",
]

MIN_SECRET_BYTES = 32
MIN_ADMIN_PASSWORD_CHARS = 12

WELL_KNOWN_SECRETS = frozenset(
    {
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "mysecret",
        "my-secret",
        "supersecret",
        "super-secret",
        "changeme",
        "change-me",
        "change_me",
        "changeit",
        "please-change-me",
        "replace-me",
        "your-secret-key",
        "your_secret_key",
        "yoursecretkey",
        "your-secret-key-here",
        "your-256-bit-secret",  # jwt.io's default
        "jwt-secret",
        "jwt_secret",
        "jwtsecret",
        "jwt-secret-key",
        "set jwt_secret_key",
        "ragstream",
        "ragstream-secret",
        "password",
        "admin",
        "test",
        "testing",
        "development",
        "dev",
        "default",
        "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",  # FastAPI docs
        "your-super-secret-jwt-token-with-at-least-32-characters-long",  # Supabase's template
        "change-this-to-a-long-random-secret-in-production",
        "your-secret-key-change-in-production",
        "your-secret-key-change-this-in-production",
    }
)
"""Secrets copied from tutorials, templates and our own docs: refused in production."""

_WEAK_PASSWORDS = frozenset(
    {
        "admin",
        "admin123",
        "administrator",
        "password",
        "password1",
        "password123",
        "changeme",
        "change-me",
        "letmein",
        "welcome",
        "qwerty",
        "123456",
        "12345678",
        "123456789",
        "secret",
        "ragstream",
        "default",
    }
)
_HMAC = frozenset({"HS256", "HS384", "HS512"})


def is_weak_secret(secret: str | bytes) -> bool:
    """Short (< 32 bytes), well-known, or made of fewer than 8 distinct characters."""
    raw = secret.encode() if isinstance(secret, str) else secret
    text = raw.decode("utf-8", errors="replace").strip().lower()
    return len(raw) < MIN_SECRET_BYTES or text in WELL_KNOWN_SECRETS or len(set(raw)) < 8


def is_weak_password(password: str) -> bool:
    """Shorter than 12 characters, well-known, or made of fewer than 6 distinct characters."""
    return (
        len(password) < MIN_ADMIN_PASSWORD_CHARS
        or password.strip().lower() in _WEAK_PASSWORDS | WELL_KNOWN_SECRETS
        or len(set(password)) < 6
    )


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    algorithm: str
    key: Any
    raw_secret: bytes | None = None


class KeyRing:
    """The verification keys: the primary one (``JWT_*``) plus a JWKS file's keys by ``kid``."""

    def __init__(self, settings: AuthSettings) -> None:
        self.primary: _Key | None = None
        self.by_kid: dict[str, _Key] = {}
        algorithms = get_default_algorithms()
        if settings.algorithm in _HMAC:
            if settings.secret_key is not None:
                secret = settings.secret_key.get_secret_value().encode()
                self.primary = _Key(settings.key_id, settings.algorithm, secret, secret)
        elif settings.public_key_file is not None:
            try:
                pem = settings.public_key_file.read_bytes()
                key = algorithms[settings.algorithm].prepare_key(pem)
            except (OSError, ValueError, jwt.InvalidKeyError) as exc:
                raise ConfigError(
                    f"JWT_PUBLIC_KEY_FILE: cannot load a {settings.algorithm} public key: {exc}"
                ) from exc
            if not hasattr(key, "public_bytes") or hasattr(key, "private_bytes"):
                raise ConfigError("JWT_PUBLIC_KEY_FILE must hold a public key, not a private one")
            self.primary = _Key(settings.key_id, settings.algorithm, key)
        if self.primary is not None and self.primary.kid:
            self.by_kid[self.primary.kid] = self.primary
        if settings.jwks_file is not None:
            for key in _load_jwks(settings.jwks_file):
                if key.kid in self.by_kid:
                    raise ConfigError(f"JWT_JWKS_FILE: kid {key.kid!r} appears twice")
                self.by_kid[str(key.kid)] = key

    def __len__(self) -> int:
        return len(self.by_kid) + (1 if self.primary and not self.primary.kid else 0)

    def find(self, kid: Any) -> _Key:
        """The key a token's header names; ``AuthenticationError`` when there is none."""
        if kid is None:
            if self.primary is not None:
                return self.primary
            if len(self.by_kid) == 1:
                return next(iter(self.by_kid.values()))
            raise AuthenticationError("token has no 'kid' and there is no primary key")
        if not isinstance(kid, str) or kid not in self.by_kid:
            raise AuthenticationError("token names an unknown key ('kid')")
        return self.by_kid[kid]

    def hmac_secrets(self) -> list[tuple[str, bytes]]:
        """Every HMAC secret with a label, for the strength checks."""
        found = []
        for key in [self.primary, *self.by_kid.values()]:
            if key is not None and key.raw_secret is not None:
                found.append((f"kid {key.kid!r}" if key.kid else "JWT_SECRET_KEY", key.raw_secret))
        return found


def _load_jwks(path: Any) -> list[_Key]:
    try:
        data = json.loads(path.read_text())
        entries = data["keys"]
        if not isinstance(entries, list) or not entries:
            raise ValueError("'keys' must be a non-empty list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"JWT_JWKS_FILE {path}: not a JWKS file: {exc}") from exc
    keys = []
    for entry in entries:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if not isinstance(kid, str) or not kid:
            raise ConfigError(f"JWT_JWKS_FILE {path}: every key needs a 'kid'")
        if "d" in entry:
            raise ConfigError(
                f"JWT_JWKS_FILE {path}: key {kid!r} is a private key; publish public keys only"
            )
        try:
            jwk = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            raise ConfigError(f"JWT_JWKS_FILE {path}: key {kid!r}: {exc}") from exc
        secret = None
        if jwk.algorithm_name in _HMAC:
            secret = bytes(jwk.key)
        keys.append(_Key(kid, jwk.algorithm_name, jwk.key, secret))
    return keys


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """The claims of a token whose signature, times, issuer and audience were checked."""

    sub: str
    tenant: str
    scopes: frozenset[str]
    session_id: str | None
    claims: Mapping[str, Any]


# PyJWT's exceptions, in the order to test them, with what we say (never the token).
_REASONS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not yet valid"),
    (jwt.InvalidIssuerError, "token has the wrong issuer"),
    (jwt.InvalidAudienceError, "token has the wrong audience"),
    (jwt.MissingRequiredClaimError, "token lacks a required claim"),
    (jwt.InvalidAlgorithmError, "token algorithm is not allowed for its key"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.DecodeError, "token is malformed"),
]


class TokenVerifier:
    """Checks ``Bearer`` tokens against the key ring and the configured claims."""

    def __init__(self, settings: AuthSettings, keys: KeyRing | None = None) -> None:
        self._settings = settings
        self.keys = keys or KeyRing(settings)

    def verify(self, token: str) -> VerifiedToken:
        """The token's verified claims, or ``AuthenticationError`` saying what is wrong."""
        if not token or len(token) > 8192 or token.count(".") != 2:
            raise AuthenticationError("token is malformed")
        s = self._settings
        required = (
            ["exp", "sub", "tenant"]
            + (["iss"] if s.issuer else [])
            + (["aud"] if s.audience else [])
        )
        try:
            header = jwt.get_unverified_header(token)
            key = self.keys.find(header.get("kid"))
            if header.get("alg") != key.algorithm:
                raise jwt.InvalidAlgorithmError("algorithm mismatch")
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                issuer=s.issuer,
                audience=s.audience,
                leeway=s.leeway_s,
                options={"require": required},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(_reason(exc)) from None
        return _verified(claims)


def _reason(exc: Exception) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "token is invalid"


def _verified(claims: dict[str, Any]) -> VerifiedToken:
    sub, tenant = claims.get("sub"), claims.get("tenant")
    if not isinstance(sub, str) or not sub:
        raise AuthenticationError("token claim 'sub' must be a non-empty string")
    if not isinstance(tenant, str) or not tenant or len(tenant) > 64:
        raise AuthenticationError("token claim 'tenant' must be a non-empty string")
    raw = claims.get("scopes", claims.get("permissions", claims.get("scope")))
    if raw is None:
        raise AuthenticationError("token has no 'scopes' (or 'permissions') claim")
    if isinstance(raw, str):
        raw = raw.split()
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise AuthenticationError("token claim 'scopes' must be a list of strings")
    sid = claims.get("sid")
    return VerifiedToken(
        sub=sub,
        tenant=tenant,
        scopes=frozenset(raw),
        session_id=sid if isinstance(sid, str) else None,
        claims=claims,
    )


class TokenMinter:
    """Signs access tokens with ``JWT_SECRET_KEY`` or ``JWT_PRIVATE_KEY_FILE``."""

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        if settings.algorithm in _HMAC:
            if settings.secret_key is None:
                raise ConfigError("minting HS* tokens needs JWT_SECRET_KEY")
            self._key: Any = settings.secret_key.get_secret_value()
        else:
            if settings.private_key_file is None:
                raise ConfigError(f"minting {settings.algorithm} tokens needs JWT_PRIVATE_KEY_FILE")
            try:
                self._key = settings.private_key_file.read_bytes()
            except OSError as exc:
                raise ConfigError(f"JWT_PRIVATE_KEY_FILE: {exc}") from exc

    def mint(
        self,
        *,
        sub: str,
        tenant: str,
        scopes: Iterable[str],
        ttl_s: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed access token for ``sub`` in ``tenant`` with ``scopes``."""
        s = self._settings
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": sub,
            "tenant": tenant,
            "scopes": sorted(set(scopes)),
            "iat": now,
            "nbf": now,
            "exp": now + int(ttl_s if ttl_s is not None else s.expiration_minutes * 60),
            "jti": secrets.token_hex(16),
        }
        if s.issuer:
            claims["iss"] = s.issuer
        if s.audience:
            claims["aud"] = s.audience
        claims |= dict(extra or {})
        headers = {"kid": s.key_id} if s.key_id else None
        try:
            return jwt.encode(claims, self._key, algorithm=s.algorithm, headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigError(
                f"cannot sign a {s.algorithm} token with the configured key: {type(exc).__name__}"
            ) from None


def check_auth_settings(settings: Settings) -> list[str]:
    """Refuse unusable or (in production) unsafe auth settings; return warnings to log."""
    auth = settings.security
    production = settings.env == "production"
    warnings: list[str] = []
    admin = auth.default_admin_password
    if admin is not None and len(admin.get_secret_value()) < 8:
        raise ConfigError("DEFAULT_ADMIN_PASSWORD must have at least 8 characters")
    if admin is not None and is_weak_password(admin.get_secret_value()):
        if production:
            raise ConfigError(
                "DEFAULT_ADMIN_PASSWORD is weak (needs >= 12 characters, not a "
                "well-known password); refused in production"
            )
        warnings.append("DEFAULT_ADMIN_PASSWORD is weak; it would be refused in production")
    if not auth.required:
        if production:
            raise ConfigError("RAGSTREAM_AUTH=disabled is refused with RAGSTREAM_ENV=production")
        return [*warnings, "RAGSTREAM_AUTH=disabled: messages are NOT authenticated"]
    keys = KeyRing(auth)
    if len(keys) == 0:
        needs = (
            "JWT_SECRET_KEY" if auth.algorithm in _HMAC else "JWT_PUBLIC_KEY_FILE"
        ) + " or JWT_JWKS_FILE"
        raise ConfigError(
            f"RAGSTREAM_AUTH=required with JWT_ALGORITHM={auth.algorithm} needs {needs}"
        )
    for label, secret in keys.hmac_secrets():
        if is_weak_secret(secret):
            if production:
                raise ConfigError(
                    f"{label} is missing, shorter than {MIN_SECRET_BYTES} bytes or "
                    "well-known; refused in production"
                )
            warnings.append(f"{label} is weak; it would be refused in production")
    return warnings
