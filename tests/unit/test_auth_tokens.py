"""JWT verification rules, minting, key rotation and the production safety checks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from services.auth_tokens import (
    KeyRing,
    TokenMinter,
    TokenVerifier,
    check_auth_settings,
    is_weak_password,
    is_weak_secret,
)
from streams.errors import AuthenticationError, ConfigError
from streams.settings import AuthSettings, Settings
from tests.auth_keys import TEST_SECRET, KeyFiles, claims, forge, make_key_files


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    """An RSA and an EC key pair and a JWKS (rsa-1, ec-1, hs-2), once per module."""
    return make_key_files(tmp_path_factory.mktemp("keys"))


def _auth(**overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "secret_key": TEST_SECRET,
        "issuer": "https://issuer.test",
        "audience": "ragstream",
        "leeway_s": 5,
    }
    return AuthSettings(**(values | overrides))


def _hs(payload: dict[str, Any], key: str | bytes = TEST_SECRET, **headers: Any) -> str:
    return jwt.encode(payload, key, algorithm="HS256", headers=headers or None)


def _good(**extra: Any) -> dict[str, Any]:
    return claims("acme", "search:read", iss="https://issuer.test", aud="ragstream") | extra


def test_a_valid_hs256_token_yields_its_claims() -> None:
    """Signature, times, issuer and audience check out: sub, tenant and scopes come back."""
    verified = TokenVerifier(_auth()).verify(_hs(_good()))
    assert (verified.sub, verified.tenant, verified.scopes) == (
        "svc-test",
        "acme",
        frozenset({"search:read"}),
    )


@pytest.mark.parametrize(
    ("scope_claim", "value", "expected"),
    [
        pytest.param("scopes", ["a", "b"], {"a", "b"}, id="scopes-list"),
        pytest.param("permissions", ["documents:write"], {"documents:write"}, id="permissions"),
        pytest.param(
            "scope", "search:read admin", {"search:read", "admin"}, id="oauth-scope-string"
        ),
    ],
)
def test_scopes_come_from_scopes_permissions_or_scope(
    scope_claim: str, value: Any, expected: set[str]
) -> None:
    """``scopes`` (list or string), ``permissions`` and OAuth's ``scope`` are all understood."""
    payload = _good()
    del payload["scopes"]
    payload[scope_claim] = value
    assert TokenVerifier(_auth()).verify(_hs(payload)).scopes == frozenset(expected)


REJECTED = [
    pytest.param(lambda k: "not-a-token", "malformed", id="malformed"),
    pytest.param(lambda k: "a.b.c", "malformed", id="garbage-segments"),
    pytest.param(
        lambda k: _hs(_good(), key="another-secret-of-32-bytes-or-more!!"),
        "signature",
        id="bad-signature",
    ),
    pytest.param(lambda k: _hs(_good(exp=int(time.time()) - 60)), "expired", id="expired"),
    pytest.param(
        lambda k: _hs(_good(nbf=int(time.time()) + 600)), "not yet valid", id="not-yet-valid"
    ),
    pytest.param(
        lambda k: _hs(_good(iat=int(time.time()) + 600)), "not yet valid", id="issued-in-the-future"
    ),
    pytest.param(lambda k: _hs(_good(iss="https://evil.test")), "issuer", id="wrong-issuer"),
    pytest.param(lambda k: _hs(_good(aud="someone-else")), "audience", id="wrong-audience"),
    pytest.param(
        lambda k: _hs({k: v for k, v in _good().items() if k != "iss"}),
        "required claim",
        id="missing-issuer",
    ),
    pytest.param(
        lambda k: _hs({k: v for k, v in _good().items() if k != "exp"}),
        "required claim",
        id="missing-exp",
    ),
    pytest.param(
        lambda k: _hs({k: v for k, v in _good().items() if k != "sub"}),
        "required claim",
        id="missing-sub",
    ),
    pytest.param(
        lambda k: _hs({k: v for k, v in _good().items() if k != "tenant"}),
        "required claim",
        id="missing-tenant",
    ),
    pytest.param(
        lambda k: _hs({k: v for k, v in _good().items() if k != "scopes"}),
        "scopes",
        id="missing-scopes",
    ),
    pytest.param(lambda k: _hs(_good(scopes={"a": 1})), "scopes", id="scopes-not-a-list"),
    pytest.param(lambda k: _hs(_good(tenant=42)), "tenant", id="tenant-not-a-string"),
    pytest.param(
        lambda k: forge({"alg": "none", "typ": "JWT"}, _good()), "not allowed", id="alg-none"
    ),
    pytest.param(lambda k: forge({"alg": "None"}, _good()), "not allowed", id="alg-None"),
    pytest.param(
        lambda k: _hs(_good(), key=TEST_SECRET, kid="nope"), "unknown key", id="unknown-kid"
    ),
    pytest.param(
        lambda k: forge({"alg": "HS256", "kid": "rsa-1"}, _good(), k.rsa_public_pem),
        "not allowed",
        id="key-confusion-hs256-with-rsa-public-key",
    ),
    pytest.param(
        lambda k: jwt.encode(
            _good(), k.rsa_private_pem, algorithm="RS256", headers={"kid": "ec-1"}
        ),
        "not allowed",
        id="rs256-token-naming-the-ec-key",
    ),
    pytest.param(
        lambda k: jwt.encode(
            _good(), k.rsa_private_pem, algorithm="RS384", headers={"kid": "rsa-1"}
        ),
        "not allowed",
        id="other-rsa-algorithm-than-pinned",
    ),
    pytest.param(
        lambda k: _hs(_good(), key=TEST_SECRET, kid="hs-2"),
        "signature",
        id="primary-secret-under-rotated-kid",
    ),
]


@pytest.mark.parametrize(("make", "reason"), REJECTED)
def test_bad_tokens_are_rejected_with_a_reason(keys: KeyFiles, make: Any, reason: str) -> None:
    """Every broken, forged or mis-keyed token is ``unauthenticated``, saying why in words."""
    verifier = TokenVerifier(_auth(jwks_file=keys.jwks))
    token = make(keys)
    with pytest.raises(AuthenticationError) as info:
        verifier.verify(token)
    assert info.value.code == "unauthenticated"
    assert reason in str(info.value)
    assert token not in str(info.value)


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("rsa-1", id="rs256"),
        pytest.param("ec-1", id="es256"),
        pytest.param("hs-2", id="rotated-hs256"),
    ],
)
def test_keys_of_the_jwks_are_found_by_kid(keys: KeyFiles, kid: str) -> None:
    """Rotation: a token naming any JWKS key verifies with that key and its pinned algorithm."""
    signer = {
        "rsa-1": (keys.rsa_private_pem, "RS256"),
        "ec-1": (keys.ec_private_pem, "ES256"),
        "hs-2": (keys.hs_rotated_secret, "HS256"),
    }[kid]
    token = jwt.encode(_good(), signer[0], algorithm=signer[1], headers={"kid": kid})
    assert TokenVerifier(_auth(jwks_file=keys.jwks)).verify(token).tenant == "acme"


def test_rs256_with_a_public_key_file_and_a_private_key_to_mint(keys: KeyFiles) -> None:
    """The worker holds only the public key; ``TokenMinter`` signs with the private one."""
    settings = _auth(
        secret_key=None,
        algorithm="RS256",
        public_key_file=keys.rsa_public,
        private_key_file=keys.rsa_private,
        key_id="main",
    )
    token = TokenMinter(settings).mint(sub="cli", tenant="acme", scopes=["search:read"], ttl_s=60)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": "main", "typ": "JWT"}
    verified = TokenVerifier(settings).verify(token)
    assert verified.scopes == {"search:read"} and verified.claims["iss"] == "https://issuer.test"
    hmac_attempt = forge({"alg": "HS256"}, _good(), keys.rsa_public_pem)
    with pytest.raises(AuthenticationError, match="not allowed"):
        TokenVerifier(settings).verify(hmac_attempt)


def test_leeway_accepts_a_token_expired_by_less_than_it() -> None:
    """A token that expired 2 s ago passes with 5 s of leeway, and fails with none."""
    token = _hs(_good(exp=int(time.time()) - 2))
    assert TokenVerifier(_auth(leeway_s=5)).verify(token).tenant == "acme"
    with pytest.raises(AuthenticationError, match="expired"):
        TokenVerifier(_auth(leeway_s=0)).verify(token)


def test_without_a_configured_audience_tokens_with_one_are_refused() -> None:
    """PyJWT's rule, documented: no ``JWT_AUDIENCE`` means no ``aud`` may be present."""
    with pytest.raises(AuthenticationError, match="audience"):
        TokenVerifier(_auth(audience=None)).verify(_hs(_good()))
    no_aud = {k: v for k, v in _good().items() if k != "aud"}
    assert TokenVerifier(_auth(audience=None)).verify(_hs(no_aud)).sub == "svc-test"


def test_minted_tokens_carry_the_configured_claims() -> None:
    """``mint`` sets iss, aud, exp from the TTL, a jti, and sorted unique scopes."""
    settings = _auth(key_id="k1")
    token = TokenMinter(settings).mint(sub="me", tenant="t", scopes=["b", "a", "b"], ttl_s=90)
    payload = jwt.decode(token, TEST_SECRET, algorithms=["HS256"], audience="ragstream")
    assert payload["scopes"] == ["a", "b"] and payload["iss"] == "https://issuer.test"
    assert 85 <= payload["exp"] - time.time() <= 91 and len(payload["jti"]) == 32
    assert jwt.get_unverified_header(token)["kid"] == "k1"


@pytest.mark.parametrize(
    "jwks",
    [
        pytest.param({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, id="key-without-kid"),
        pytest.param({"keys": []}, id="no-keys"),
        pytest.param({"nope": 1}, id="not-a-jwks"),
        pytest.param(
            {"keys": [{"kty": "RSA", "kid": "x", "alg": "HS256", "n": "AQAB", "e": "AQAB"}]},
            id="rsa-key-pinned-to-hmac",
        ),
    ],
)
def test_bad_jwks_files_are_config_errors(tmp_path: Path, jwks: dict[str, Any]) -> None:
    """A JWKS the worker cannot use exactly as written stops it at start."""
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    with pytest.raises(ConfigError, match="JWT_JWKS_FILE"):
        KeyRing(_auth(jwks_file=path))


def test_private_keys_in_a_jwks_are_refused(tmp_path: Path) -> None:
    """Publishing a private RSA key (``d``) as a verification key is a mistake to stop."""
    path = tmp_path / "jwks.json"
    path.write_text(
        json.dumps({"keys": [{"kty": "RSA", "kid": "x", "d": "AQAB", "n": "AQAB", "e": "AQAB"}]})
    )
    with pytest.raises(ConfigError, match="private"):
        KeyRing(_auth(jwks_file=path))


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("short", id="short"),
        pytest.param("secret", id="secret"),
        pytest.param("changeme", id="changeme"),
        pytest.param("your-secret-key", id="your-secret-key"),
        pytest.param("your-super-secret-jwt-token-with-at-least-32-characters-long", id="supabase"),
        pytest.param("a" * 64, id="one-character-repeated"),
    ],
)
def test_weak_secrets_are_detected(secret: str) -> None:
    """Short, tutorial-copied or low-entropy secrets count as weak."""
    assert is_weak_secret(secret)


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in (
        "JWT_SECRET_KEY",
        "RAGSTREAM_AUTH",
        "DEFAULT_ADMIN_PASSWORD",
        "RAGSTREAM_ENV",
        "JWT_ALGORITHM",
        "JWT_JWKS_FILE",
        "JWT_PUBLIC_KEY_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({}, "needs JWT_SECRET_KEY", id="missing-secret"),
        pytest.param({"JWT_SECRET_KEY": "too-short"}, "refused in production", id="short-secret"),
        pytest.param(
            {"JWT_SECRET_KEY": "your-256-bit-secret"}, "refused in production", id="jwt-io-secret"
        ),
        pytest.param(
            {"JWT_SECRET_KEY": TEST_SECRET, "DEFAULT_ADMIN_PASSWORD": "admin123"},
            "DEFAULT_ADMIN_PASSWORD",
            id="weak-admin-password",
        ),
        pytest.param(
            {"JWT_SECRET_KEY": TEST_SECRET, "DEFAULT_ADMIN_PASSWORD": "aaaaaaaaaaaaaaab"},
            "DEFAULT_ADMIN_PASSWORD",
            id="low-entropy-admin-password",
        ),
        pytest.param({"RAGSTREAM_AUTH": "disabled"}, "disabled", id="auth-disabled"),
        pytest.param(
            {"JWT_ALGORITHM": "RS256", "JWT_SECRET_KEY": TEST_SECRET},
            "JWT_PUBLIC_KEY_FILE",
            id="rs256-without-public-key",
        ),
    ],
)
def test_production_refuses_unsafe_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    """With RAGSTREAM_ENV=production the worker does not start on unsafe auth settings."""
    settings = _settings(monkeypatch, RAGSTREAM_ENV="production", **env)
    with pytest.raises(ConfigError, match=message):
        check_auth_settings(settings)


def test_production_accepts_a_strong_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long random secret and a strong admin password start cleanly, without warnings."""
    settings = _settings(
        monkeypatch,
        RAGSTREAM_ENV="production",
        JWT_SECRET_KEY=TEST_SECRET,
        DEFAULT_ADMIN_PASSWORD="c0rrect-h0rse-battery-staple",
    )
    assert check_auth_settings(settings) == []


def test_development_warns_instead_of_refusing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside production a weak secret or disabled auth starts, with a warning each."""
    weak = check_auth_settings(_settings(monkeypatch, JWT_SECRET_KEY="secret"))
    assert weak and "weak" in weak[0]
    off = check_auth_settings(_settings(monkeypatch, RAGSTREAM_AUTH="disabled"))
    assert off and "NOT authenticated" in off[-1]


def test_no_admin_password_exists_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """There is no default admin password anywhere: unset means no admin is created."""
    assert _settings(monkeypatch).security.default_admin_password is None
    assert is_weak_password("admin") and not is_weak_password("c0rrect-h0rse-battery-staple")


def test_secrets_never_show_in_settings_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    """``masked()`` and ``repr`` hide the JWT secret and the admin password."""
    settings = _settings(
        monkeypatch,
        JWT_SECRET_KEY=TEST_SECRET,
        DEFAULT_ADMIN_PASSWORD="c0rrect-h0rse-battery-staple",
    )
    dumped = str(settings.masked()) + repr(settings)
    assert TEST_SECRET not in dumped and "battery" not in dumped
