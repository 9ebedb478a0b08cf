"""The ``AuthStore`` contract: one set of behaviour tests for MemoryAuthStore and SqlAuthStore.

A test module subclasses ``AuthStoreContract`` and provides an ``auth_store`` fixture
yielding a started store (memory, SQLite or PostgreSQL). Every test uses random ids, so a
shared database never leaks rows between tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stores.base import ApiKeyRecord, AuthStore, RefreshTokenRecord, SessionRecord, UserRecord
from streams.errors import StoreRejectedError
from tests.protocols import protocol_mismatches

__all__ = ["AuthStoreContract"]


def _id() -> str:
    return uuid.uuid4().hex[:12]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _key(tenant: str, **changes: Any) -> ApiKeyRecord:
    fields: dict[str, Any] = {
        "key_id": _id(),
        "tenant": tenant,
        "scopes": ("search:read",),
        "secret_hash": "$2b$04$hash",
        "name": "producer",
        "created_at": _now(),
    } | changes
    return ApiKeyRecord(**fields)


def _user(tenant: str, **changes: Any) -> UserRecord:
    fields: dict[str, Any] = {
        "username": f"u-{_id()}",
        "tenant": tenant,
        "permissions": ("documents:write", "search:read"),
        "password_hash": "$2b$04$hash",
        "created_at": _now(),
    } | changes
    return UserRecord(**fields)


class AuthStoreContract:
    """Behaviour every auth store implementation shares."""

    async def test_api_keys_round_trip_and_list_by_tenant(self, auth_store: Any) -> None:
        """A stored key comes back equal; ``list_api_keys`` filters by tenant."""
        tenant = f"t-{_id()}"
        key = _key(tenant, scopes=("documents:write", "search:read"))
        await auth_store.add_api_key(key)
        await auth_store.add_api_key(_key(f"t-{_id()}"))
        assert await auth_store.get_api_key(key.key_id) == key
        assert await auth_store.list_api_keys(tenant) == [key]
        assert await auth_store.get_api_key("missing") is None

    async def test_revoking_a_key_is_reported_once(self, auth_store: Any) -> None:
        """``revoke_api_key`` is True once, then False; the key keeps its revocation time."""
        key = _key(f"t-{_id()}")
        await auth_store.add_api_key(key)
        at = _now()
        assert await auth_store.revoke_api_key(key.key_id, at=at) is True
        assert await auth_store.revoke_api_key(key.key_id, at=at) is False
        assert await auth_store.revoke_api_key("missing", at=at) is False
        assert (await auth_store.get_api_key(key.key_id)).revoked_at == at

    async def test_duplicate_ids_are_rejected(self, auth_store: Any) -> None:
        """A second key with the same id, or a second user with the same name, is refused."""
        key = _key(f"t-{_id()}")
        await auth_store.add_api_key(key)
        with pytest.raises(StoreRejectedError):
            await auth_store.add_api_key(key)
        user = _user(f"t-{_id()}")
        await auth_store.add_user(user)
        with pytest.raises(StoreRejectedError):
            await auth_store.add_user(user)

    async def test_users_round_trip_and_update(self, auth_store: Any) -> None:
        """Users come back equal; disable, permissions and password change in place."""
        tenant = f"t-{_id()}"
        user = _user(tenant)
        await auth_store.add_user(user)
        assert await auth_store.get_user(user.username) == user
        assert await auth_store.list_users(tenant) == [user]
        assert (
            await auth_store.update_user(
                user.username, disabled=True, permissions=("admin",), password_hash="new"
            )
            is True
        )
        changed = await auth_store.get_user(user.username)
        assert (changed.disabled, changed.permissions, changed.password_hash) == (
            True,
            ("admin",),
            "new",
        )
        assert await auth_store.update_user("missing", disabled=True) is False

    async def test_sessions_and_refresh_tokens(self, auth_store: Any) -> None:
        """A refresh token is used once; its session can be revoked once."""
        user = _user(f"t-{_id()}")
        await auth_store.add_user(user)
        session = SessionRecord(session_id=_id(), username=user.username, created_at=_now())
        await auth_store.add_session(session)
        token = RefreshTokenRecord(
            token_hash=uuid.uuid4().hex * 2,
            session_id=session.session_id,
            expires_at=_now() + timedelta(days=1),
            created_at=_now(),
        )
        await auth_store.add_refresh_token(token)
        assert await auth_store.get_refresh_token(token.token_hash) == token
        at = _now()
        assert await auth_store.use_refresh_token(token.token_hash, at=at) is True
        assert await auth_store.use_refresh_token(token.token_hash, at=at) is False
        assert (await auth_store.get_refresh_token(token.token_hash)).used_at == at
        assert await auth_store.revoke_session(session.session_id, at=at) is True
        assert await auth_store.revoke_session(session.session_id, at=at) is False
        assert (await auth_store.get_session(session.session_id)).revoked_at == at

    async def test_a_refresh_token_needs_an_existing_session(self, auth_store: Any) -> None:
        """Orphan refresh tokens are refused (a foreign key in SQL)."""
        token = RefreshTokenRecord(
            token_hash=uuid.uuid4().hex,
            session_id="no-such-session",
            expires_at=_now(),
            created_at=_now(),
        )
        with pytest.raises(StoreRejectedError):
            await auth_store.add_refresh_token(token)

    async def test_methods_match_the_protocol(self, auth_store: Any) -> None:
        """Every ``AuthStore`` method exists, is async and takes the protocol's parameters."""
        assert protocol_mismatches(auth_store, AuthStore) == []

    async def test_start_is_idempotent_and_ping_answers_until_closed(self, auth_store: Any) -> None:
        """A second ``start`` keeps the rows; ``ping`` answers while open, refuses once closed."""
        user = _user(_id())
        await auth_store.add_user(user)
        await auth_store.start()
        await auth_store.start()
        assert await auth_store.get_user(user.username) == user
        assert await auth_store.ping() is None
        await auth_store.aclose()
        await auth_store.aclose()  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            await auth_store.ping()
        with pytest.raises(RuntimeError, match="closed"):
            await auth_store.get_user(user.username)
