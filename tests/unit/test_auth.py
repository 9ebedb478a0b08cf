"""Authentication of message headers, authorization rules, API keys, users and refresh tokens."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from services.auth import Authenticator, Principal, authorize_document, authorize_search
from services.auth_accounts import Accounts
from services.auth_tokens import TokenMinter, TokenVerifier
from stores.memory_auth import MemoryAuthStore
from streams.errors import (
    AuthenticationError,
    AuthorizationError,
    SchemaValidationError,
    StoreUnavailableError,
)
from streams.settings import AuthSettings
from tests.auth_keys import TEST_SECRET


@pytest.fixture
def auth_settings() -> AuthSettings:
    """HS256 with the test secret and the cheapest bcrypt cost."""
    return AuthSettings(secret_key=TEST_SECRET, bcrypt_rounds=4, issuer="iss", audience="aud")


@pytest.fixture
def accounts(auth_settings: AuthSettings) -> Accounts:
    """Accounts on a memory store, able to mint."""
    return Accounts(MemoryAuthStore(), auth_settings, minter=TokenMinter(auth_settings))


@pytest.fixture
def authenticator(auth_settings: AuthSettings, accounts: Accounts) -> Authenticator:
    """A required-mode authenticator sharing the accounts' store."""
    return Authenticator(required=True, verifier=TokenVerifier(auth_settings), accounts=accounts)


def _mint(settings: AuthSettings, tenant: str = "acme", *scopes: str, **extra: Any) -> str:
    return TokenMinter(settings).mint(
        sub=extra.pop("sub", "svc"), tenant=tenant, scopes=scopes or ("search:read",), extra=extra
    )


async def test_a_bearer_token_becomes_a_principal(
    authenticator: Authenticator, auth_settings: AuthSettings
) -> None:
    """``authorization: Bearer <jwt>`` yields the token's subject, tenant and scopes."""
    token = _mint(auth_settings, "acme", "search:read", "documents:write")
    principal = await authenticator.authenticate(authorization=f"Bearer {token}", api_key=None)
    assert principal == Principal("svc", "acme", frozenset({"search:read", "documents:write"}))
    lower = await authenticator.authenticate(authorization=f"bearer  {token} ", api_key=None)
    assert lower == principal


@pytest.mark.parametrize(
    ("authorization", "api_key", "reason"),
    [
        pytest.param(None, None, "no credential", id="nothing"),
        pytest.param("", "", "no credential", id="empty-headers"),
        pytest.param("Basic dXNlcjpwYXNz", None, "Bearer", id="basic-scheme"),
        pytest.param("Bearer", None, "Bearer", id="bearer-without-token"),
        pytest.param("Bearer x.y.z", "rsk_a_b", "not both", id="both-credentials"),
        pytest.param(None, "not-a-key", "malformed", id="malformed-api-key"),
        pytest.param(None, "rsk_000000000000_secret", "unknown or revoked", id="unknown-api-key"),
    ],
)
async def test_missing_or_malformed_credentials_are_unauthenticated(
    authenticator: Authenticator, authorization: str | None, api_key: str | None, reason: str
) -> None:
    """Every way a message can lack a usable credential raises ``unauthenticated``."""
    with pytest.raises(AuthenticationError, match=reason) as info:
        await authenticator.authenticate(authorization=authorization, api_key=api_key)
    assert info.value.code == "unauthenticated" and not info.value.retriable


async def test_disabled_auth_accepts_everything() -> None:
    """``RAGSTREAM_AUTH=disabled``: no principal, and the authorize checks pass."""
    off = Authenticator(required=False)
    assert await off.authenticate(authorization=None, api_key=None) is None
    authorize_document(None, tenant="any", op="upsert")
    authorize_search(None, tenant="any")


@pytest.mark.parametrize(
    ("scopes", "tenant", "op", "allowed"),
    [
        pytest.param({"documents:write"}, "acme", "upsert", True, id="write-upsert"),
        pytest.param({"documents:write"}, "acme", "delete", False, id="write-cannot-delete"),
        pytest.param({"documents:delete"}, "acme", "delete", True, id="delete-delete"),
        pytest.param({"documents:delete"}, "acme", "upsert", False, id="delete-cannot-upsert"),
        pytest.param({"search:read"}, "acme", "upsert", False, id="read-cannot-write"),
        pytest.param({"admin"}, "acme", "delete", True, id="admin-implies-all"),
        pytest.param({"documents:write"}, "other", "upsert", False, id="cross-tenant-write"),
        pytest.param({"admin"}, "other", "upsert", False, id="admin-stays-in-its-tenant"),
    ],
)
def test_document_authorization(scopes: set[str], tenant: str, op: str, allowed: bool) -> None:
    """Upsert needs documents:write, delete documents:delete, both in the token's tenant."""
    principal = Principal("svc", "acme", frozenset(scopes))
    if allowed:
        authorize_document(principal, tenant=tenant, op=op)
    else:
        with pytest.raises(AuthorizationError) as info:
            authorize_document(principal, tenant=tenant, op=op)
        assert info.value.code == "forbidden"


def test_search_authorization() -> None:
    """A search needs search:read, and its tenant must be the token's: never another's."""
    reader = Principal("svc", "acme", frozenset({"search:read"}))
    authorize_search(reader, tenant="acme")
    with pytest.raises(AuthorizationError, match="tenant"):
        authorize_search(reader, tenant="globex")
    with pytest.raises(AuthorizationError, match="search:read"):
        authorize_search(Principal("svc", "acme", frozenset({"documents:write"})), tenant="acme")


async def test_api_keys_authenticate_until_revoked(
    authenticator: Authenticator, accounts: Accounts
) -> None:
    """A created key works (hashed at rest, checked from cache after once) until revoked."""
    new = await accounts.create_api_key(tenant="acme", scopes=["documents:write"], name="etl")
    assert new.key.startswith(f"rsk_{new.record.key_id}_")
    assert new.key.split("_", 2)[2] not in new.record.secret_hash
    for _ in range(2):  # the second time comes from the verification cache
        principal = await authenticator.authenticate(authorization=None, api_key=new.key)
        assert principal == Principal(
            f"apikey:{new.record.key_id}", "acme", frozenset({"documents:write"})
        )
    wrong = new.key[:-4] + "AAAA"
    with pytest.raises(AuthenticationError):
        await authenticator.authenticate(authorization=None, api_key=wrong)
    assert await accounts.revoke_api_key(new.record.key_id) is True
    with pytest.raises(AuthenticationError, match="revoked"):
        await authenticator.authenticate(authorization=None, api_key=new.key)


async def test_unknown_scopes_are_refused_at_creation(accounts: Accounts) -> None:
    """Keys and users only ever hold the four known permissions."""
    with pytest.raises(SchemaValidationError, match="unknown scope"):
        await accounts.create_api_key(tenant="acme", scopes=["documents:*"])
    with pytest.raises(SchemaValidationError, match="at least one"):
        await accounts.create_user(
            username="u", password="long-enough-pw", tenant="t", permissions=[]
        )


async def _user_tokens(accounts: Accounts, username: str = "alice") -> Any:
    await accounts.create_user(
        username=username,
        password="correct horse",
        tenant="acme",
        permissions=["search:read", "documents:write"],
    )
    return await accounts.login(username, "correct horse")


async def test_login_tokens_follow_the_user(
    authenticator: Authenticator, accounts: Accounts
) -> None:
    """A user's token works while the user is enabled and narrows to current permissions."""
    pair = await _user_tokens(accounts)
    bearer = f"Bearer {pair.access_token}"
    principal = await authenticator.authenticate(authorization=bearer, api_key=None)
    assert principal == Principal(
        "user:alice", "acme", frozenset({"search:read", "documents:write"})
    )
    await accounts.set_permissions("alice", ["search:read"])
    narrowed = await authenticator.authenticate(authorization=bearer, api_key=None)
    assert narrowed is not None and narrowed.scopes == {"search:read"}
    await accounts.set_disabled("alice", True)
    with pytest.raises(AuthenticationError, match="disabled"):
        await authenticator.authenticate(authorization=bearer, api_key=None)


async def test_wrong_passwords_and_unknown_users_look_the_same(accounts: Accounts) -> None:
    """Login failures say the same thing whether or not the user exists."""
    await _user_tokens(accounts)
    for username, password in (("alice", "wrong password"), ("nobody", "whatever1")):
        with pytest.raises(AuthenticationError, match="invalid username or password"):
            await accounts.login(username, password)


async def test_refresh_rotates_and_reuse_revokes_the_family(
    authenticator: Authenticator, accounts: Accounts
) -> None:
    """Each refresh token works once; replaying a spent one kills every token of the session."""
    first = await _user_tokens(accounts)
    second = await accounts.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    third = await accounts.refresh(second.refresh_token)
    with pytest.raises(AuthenticationError, match="already used"):
        await accounts.refresh(first.refresh_token)  # the thief (or the victim) replays
    for pair in (third, second):
        with pytest.raises(AuthenticationError, match="revoked"):
            await accounts.refresh(pair.refresh_token)
        with pytest.raises(AuthenticationError, match="revoked"):
            await authenticator.authenticate(
                authorization=f"Bearer {pair.access_token}", api_key=None
            )


async def test_logout_revokes_the_session(authenticator: Authenticator, accounts: Accounts) -> None:
    """``logout`` revokes the refresh token's session and its access tokens."""
    pair = await _user_tokens(accounts)
    assert await accounts.logout(pair.refresh_token) is True
    with pytest.raises(AuthenticationError):
        await authenticator.authenticate(authorization=f"Bearer {pair.access_token}", api_key=None)
    assert await accounts.logout("rrt_unknown") is False


async def test_expired_refresh_tokens_are_refused(accounts: Accounts) -> None:
    """A refresh token past its expiry does not rotate."""
    pair = await _user_tokens(accounts)
    store: MemoryAuthStore = accounts.store
    [(digest, record)] = list(store._refresh.items())
    store._refresh[digest] = replace(record, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(AuthenticationError, match="expired"):
        await accounts.refresh(pair.refresh_token)


async def test_a_user_token_for_another_tenant_is_refused(
    authenticator: Authenticator, accounts: Accounts, auth_settings: AuthSettings
) -> None:
    """A ``user:`` token whose tenant is not the user's is refused even when well signed."""
    await _user_tokens(accounts)
    forged = _mint(auth_settings, "globex", "search:read", sub="user:alice")
    with pytest.raises(AuthenticationError):
        await authenticator.authenticate(authorization=f"Bearer {forged}", api_key=None)


async def test_first_admin_only_when_a_password_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """No password: no admin. With one: an admin with every permission, created once."""
    from streams.settings import Settings

    monkeypatch.setenv("JWT_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("AUTH_BCRYPT_ROUNDS", "4")
    monkeypatch.delenv("DEFAULT_ADMIN_PASSWORD", raising=False)
    store = MemoryAuthStore()
    await Authenticator.from_settings(Settings(), store=store).start(Settings())
    assert await store.list_users() == []
    monkeypatch.setenv("DEFAULT_ADMIN_PASSWORD", "c0rrect-h0rse-battery-staple")
    settings = Settings()
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            await Authenticator.from_settings(settings, store=store).start(settings)
    [admin] = await store.list_users()
    assert admin.username == "admin" and set(admin.permissions) == {
        "admin",
        "documents:write",
        "documents:delete",
        "search:read",
    }
    assert [e["event"] for e in logs].count("default_admin_created") == 1
    assert "battery" not in str(logs)


async def test_a_store_outage_is_retriable(auth_settings: AuthSettings) -> None:
    """API-key checks need the store: its outage is a retriable error, not a rejection."""

    class Down(MemoryAuthStore):
        async def get_api_key(self, key_id: str) -> Any:
            raise StoreUnavailableError("down")

    auth = Authenticator(
        required=True,
        verifier=TokenVerifier(auth_settings),
        accounts=Accounts(Down(), auth_settings),
    )
    with pytest.raises(StoreUnavailableError) as info:
        await auth.authenticate(authorization=None, api_key="rsk_0123456789ab_secret")
    assert info.value.retriable
