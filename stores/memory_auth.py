"""``MemoryAuthStore``: the ``AuthStore`` protocol in dicts, for unit tests (same contract)."""

from __future__ import annotations

import builtins
import dataclasses
from datetime import datetime
from typing import Any

from stores.base import ApiKeyRecord, RefreshTokenRecord, SessionRecord, UserRecord
from streams.errors import StoreRejectedError

__all__ = ["MemoryAuthStore"]


class MemoryAuthStore:
    """Keys, users, sessions and refresh tokens in dicts; nothing persists."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKeyRecord] = {}
        self._users: dict[str, UserRecord] = {}
        self._sessions: dict[str, SessionRecord] = {}
        self._refresh: dict[str, RefreshTokenRecord] = {}
        self._closed = False

    async def start(self) -> None:
        """Nothing to create; idempotent."""
        self._check_open()

    async def add_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key; a duplicate ``key_id`` is ``StoreRejectedError``."""
        self._insert(self._keys, record.key_id, record)

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """One key (revoked or not), or None."""
        self._check_open()
        return self._keys.get(key_id)

    async def list_api_keys(self, tenant: str | None = None) -> builtins.list[ApiKeyRecord]:
        """Every key (of one tenant), oldest first."""
        self._check_open()
        found = [k for k in self._keys.values() if tenant is None or k.tenant == tenant]
        return sorted(found, key=lambda k: (k.created_at, k.key_id))

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        """Revoke a key; True if it existed and was not revoked yet."""
        self._check_open()
        key = self._keys.get(key_id)
        if key is None or key.revoked_at is not None:
            return False
        self._keys[key_id] = dataclasses.replace(key, revoked_at=at)
        return True

    async def add_user(self, record: UserRecord) -> None:
        """Store a new user; an existing username is ``StoreRejectedError``."""
        self._insert(self._users, record.username, record)

    async def get_user(self, username: str) -> UserRecord | None:
        """One user, or None."""
        self._check_open()
        return self._users.get(username)

    async def list_users(self, tenant: str | None = None) -> builtins.list[UserRecord]:
        """Every user (of one tenant), by name."""
        self._check_open()
        return sorted(
            (u for u in self._users.values() if tenant is None or u.tenant == tenant),
            key=lambda u: u.username,
        )

    async def update_user(
        self,
        username: str,
        *,
        disabled: bool | None = None,
        permissions: tuple[str, ...] | None = None,
        password_hash: str | None = None,
    ) -> bool:
        """Change some fields of a user; True if the user exists."""
        self._check_open()
        user = self._users.get(username)
        if user is None:
            return False
        changes: dict[str, Any] = {}
        if disabled is not None:
            changes["disabled"] = disabled
        if permissions is not None:
            changes["permissions"] = tuple(permissions)
        if password_hash is not None:
            changes["password_hash"] = password_hash
        self._users[username] = dataclasses.replace(user, **changes)
        return True

    async def add_session(self, record: SessionRecord) -> None:
        """Start a login session; its user must exist (a foreign key in SQL)."""
        if record.username not in self._users:
            raise StoreRejectedError(f"no user {record.username!r}")
        self._insert(self._sessions, record.session_id, record)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """One session, or None."""
        self._check_open()
        return self._sessions.get(session_id)

    async def revoke_session(self, session_id: str, *, at: datetime) -> bool:
        """Revoke a session; True if it was live."""
        self._check_open()
        found = self._sessions.get(session_id)
        if found is None or found.revoked_at is not None:
            return False
        self._sessions[session_id] = dataclasses.replace(found, revoked_at=at)
        return True

    async def add_refresh_token(self, record: RefreshTokenRecord) -> None:
        """Store a refresh token's digest; its session must exist (a foreign key in SQL)."""
        if record.session_id not in self._sessions:
            raise StoreRejectedError(f"no session {record.session_id!r}")
        self._insert(self._refresh, record.token_hash, record)

    async def get_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        """One refresh token by digest, or None."""
        self._check_open()
        return self._refresh.get(token_hash)

    async def use_refresh_token(self, token_hash: str, *, at: datetime) -> bool:
        """Mark a refresh token used; True only for the first caller."""
        self._check_open()
        found = self._refresh.get(token_hash)
        if found is None or found.used_at is not None:
            return False
        self._refresh[token_hash] = dataclasses.replace(found, used_at=at)
        return True

    async def ping(self) -> None:
        """Always reachable while open."""
        self._check_open()

    async def aclose(self) -> None:
        """Accept nothing more; idempotent."""
        self._closed = True

    def _insert(self, table: dict[str, Any], key: str, record: Any) -> None:
        self._check_open()
        if key in table:
            raise StoreRejectedError(f"duplicate key {key!r}")
        table[key] = record

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("auth store is closed")
