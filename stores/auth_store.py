"""The auth store: API keys, users and login sessions in the SQL catalog's database.

A sibling of ``stores.catalog`` (same URL, same error mapping: every database exception
leaves as ``StoreUnavailableError`` or ``StoreRejectedError``). It stores only hashes:
bcrypt hashes of API-key secrets and passwords (computed by ``services.auth_accounts``)
and SHA-256 digests of refresh tokens. ``SqlAuthStore`` implements the ``stores.base.AuthStore``
protocol (whose records it re-exports); ``stores.memory_auth`` is its in-memory fake.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)

# The catalog's one error mapping and column type are shared, not copied.
from stores._sql import SqlStore, UTCDateTime
from stores.base import ApiKeyRecord, RefreshTokenRecord, SessionRecord, UserRecord
from streams.settings import Settings

__all__ = [
    "ApiKeyRecord",
    "RefreshTokenRecord",
    "SessionRecord",
    "SqlAuthStore",
    "UserRecord",
    "auth_metadata",
]


auth_metadata = MetaData()

api_keys = Table(
    "api_keys",
    auth_metadata,
    Column("key_id", String(64), primary_key=True),
    Column("tenant", String(255), nullable=False, index=True),
    Column("scopes", Text, nullable=False),
    Column("secret_hash", String(128), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)
users = Table(
    "users",
    auth_metadata,
    Column("username", String(255), primary_key=True),
    Column("tenant", String(255), nullable=False),
    Column("permissions", Text, nullable=False),
    Column("password_hash", String(128), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
)
sessions = Table(
    "auth_sessions",
    auth_metadata,
    Column("session_id", String(64), primary_key=True),
    Column("username", String(255), ForeignKey("users.username"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)
refresh_tokens = Table(
    "refresh_tokens",
    auth_metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "session_id", String(64), ForeignKey("auth_sessions.session_id"), nullable=False, index=True
    ),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
)


def _words(value: str) -> tuple[str, ...]:
    return tuple(value.split())


class SqlAuthStore(SqlStore):
    """API keys, users and sessions in a SQL database, behind one async engine."""

    def __init__(self, *, url: str, pool_size: int = 5, max_overflow: int = 10) -> None:
        super().__init__(
            url=url,
            metadata=auth_metadata,
            what="auth store",
            pool_size=pool_size,
            max_overflow=max_overflow,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SqlAuthStore:
        """The auth store in the catalog's database."""
        return cls(url=settings.database_url)

    # -- API keys -----------------------------------------------------------------------------

    async def add_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key; a duplicate ``key_id`` is ``StoreRejectedError``."""
        async with self._begin() as conn:
            await conn.execute(
                api_keys.insert().values(
                    key_id=record.key_id,
                    tenant=record.tenant,
                    scopes=" ".join(record.scopes),
                    secret_hash=record.secret_hash,
                    name=record.name,
                    created_at=record.created_at,
                    revoked_at=record.revoked_at,
                )
            )

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """One key (revoked or not), or None."""
        async with self._begin() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
        return _api_key(row) if row is not None else None

    async def list_api_keys(self, tenant: str | None = None) -> builtins.list[ApiKeyRecord]:
        """Every key (of one tenant), oldest first."""
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if tenant is not None:
            query = query.where(api_keys.c.tenant == tenant)
        async with self._begin() as conn:
            return [_api_key(row) for row in await conn.execute(query)]

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        """Revoke a key; True if it existed and was not revoked yet."""
        query = (
            update(api_keys)
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        async with self._begin() as conn:
            return bool((await conn.execute(query)).rowcount)

    # -- users --------------------------------------------------------------------------------

    async def add_user(self, record: UserRecord) -> None:
        """Store a new user; an existing username is ``StoreRejectedError``."""
        async with self._begin() as conn:
            await conn.execute(
                users.insert().values(
                    username=record.username,
                    tenant=record.tenant,
                    permissions=" ".join(record.permissions),
                    password_hash=record.password_hash,
                    disabled=record.disabled,
                    created_at=record.created_at,
                )
            )

    async def get_user(self, username: str) -> UserRecord | None:
        """One user, or None."""
        async with self._begin() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        return _user(row) if row is not None else None

    async def list_users(self, tenant: str | None = None) -> builtins.list[UserRecord]:
        """Every user (of one tenant), by name."""
        query = select(users).order_by(users.c.username)
        if tenant is not None:
            query = query.where(users.c.tenant == tenant)
        async with self._begin() as conn:
            return [_user(row) for row in await conn.execute(query)]

    async def update_user(
        self,
        username: str,
        *,
        disabled: bool | None = None,
        permissions: tuple[str, ...] | None = None,
        password_hash: str | None = None,
    ) -> bool:
        """Change some fields of a user; True if the user exists."""
        changes: dict[str, Any] = {}
        if disabled is not None:
            changes["disabled"] = disabled
        if permissions is not None:
            changes["permissions"] = " ".join(permissions)
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if not changes:
            return await self.get_user(username) is not None
        async with self._begin() as conn:
            result = await conn.execute(
                update(users).where(users.c.username == username).values(**changes)
            )
            return bool(result.rowcount)

    # -- sessions and refresh tokens ----------------------------------------------------------

    async def add_session(self, record: SessionRecord) -> None:
        """Start a login session (a refresh-token family)."""
        async with self._begin() as conn:
            await conn.execute(
                sessions.insert().values(
                    session_id=record.session_id,
                    username=record.username,
                    created_at=record.created_at,
                    revoked_at=record.revoked_at,
                )
            )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """One session, or None."""
        query = select(sessions).where(sessions.c.session_id == session_id)
        async with self._begin() as conn:
            row = (await conn.execute(query)).first()
        return (
            None
            if row is None
            else SessionRecord(
                session_id=row.session_id,
                username=row.username,
                created_at=row.created_at,
                revoked_at=row.revoked_at,
            )
        )

    async def revoke_session(self, session_id: str, *, at: datetime) -> bool:
        """Revoke a session (and so every token of its family); True if it was live."""
        query = (
            update(sessions)
            .where(sessions.c.session_id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        async with self._begin() as conn:
            return bool((await conn.execute(query)).rowcount)

    async def add_refresh_token(self, record: RefreshTokenRecord) -> None:
        """Store a refresh token's digest in its session."""
        async with self._begin() as conn:
            await conn.execute(
                refresh_tokens.insert().values(
                    token_hash=record.token_hash,
                    session_id=record.session_id,
                    expires_at=record.expires_at,
                    created_at=record.created_at,
                    used_at=record.used_at,
                )
            )

    async def get_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        """One refresh token by digest, or None."""
        query = select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
        async with self._begin() as conn:
            row = (await conn.execute(query)).first()
        return (
            None
            if row is None
            else RefreshTokenRecord(
                token_hash=row.token_hash,
                session_id=row.session_id,
                expires_at=row.expires_at,
                created_at=row.created_at,
                used_at=row.used_at,
            )
        )

    async def use_refresh_token(self, token_hash: str, *, at: datetime) -> bool:
        """Mark a refresh token used; True only for the one caller that used it first."""
        query = (
            update(refresh_tokens)
            .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None))
            .values(used_at=at)
        )
        async with self._begin() as conn:
            return bool((await conn.execute(query)).rowcount)


def _api_key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id,
        tenant=row.tenant,
        scopes=_words(row.scopes),
        secret_hash=row.secret_hash,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _user(row: Any) -> UserRecord:
    return UserRecord(
        username=row.username,
        tenant=row.tenant,
        permissions=_words(row.permissions),
        password_hash=row.password_hash,
        created_at=row.created_at,
        disabled=bool(row.disabled),
    )
