"""API keys, users and login sessions: the use cases behind ``ragstream apikey|users|login``.

Sits between the CLI (and the worker's authenticator) and an ``AuthStore`` (``stores.base``).
Secrets are hashed here: API-key secrets and passwords with bcrypt (run in a thread, never on the
event loop), refresh tokens (random, 256 bits) with SHA-256. An API key's bcrypt check is
remembered per key, so a busy producer costs one SQL lookup per message, and revoking a
key takes effect on the next message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt

from stores.base import ApiKeyRecord, AuthStore, RefreshTokenRecord, SessionRecord, UserRecord
from streams.errors import AuthenticationError, SchemaValidationError
from streams.settings import AuthSettings

__all__ = ["SCOPES", "Accounts", "Identity", "NewApiKey", "TokenPair", "check_scopes"]

SCOPES = frozenset({"documents:write", "documents:delete", "search:read", "admin"})
"""Every permission a token, API key or user can hold; ``admin`` implies all the others."""

_API_KEY_PREFIX = "rsk"
_REFRESH_PREFIX = "rrt_"
_MAX_PASSWORD_BYTES = 72  # bcrypt's limit
_CACHE_LIMIT = 10_000


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, sorted and de-duplicated; ``SchemaValidationError`` on an unknown one."""
    found = tuple(sorted(set(scopes)))
    unknown = [s for s in found if s not in SCOPES]
    if unknown:
        raise SchemaValidationError(f"unknown scope(s) {unknown}; known: {sorted(SCOPES)}")
    if not found:
        raise SchemaValidationError("at least one scope is needed")
    return found


def _hash(secret: str, rounds: int) -> str:
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds)).decode()


def _check(secret: str, hashed: str) -> bool:
    raw = secret.encode()
    if len(raw) > _MAX_PASSWORD_BYTES:
        return False
    try:
        return bcrypt.checkpw(raw, hashed.encode())
    except ValueError:
        return False


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A created key: ``key`` is shown once and never stored."""

    record: ApiKeyRecord
    key: str


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What ``login`` and ``refresh`` return."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret


@dataclass(frozen=True, slots=True)
class Identity:
    """Who an API key or a user token turned out to be, after the store said yes."""

    sub: str
    tenant: str
    scopes: frozenset[str]


class Accounts:
    """API keys, users and sessions on an auth store (SQL or memory)."""

    def __init__(self, store: AuthStore, settings: AuthSettings, *, minter: Any = None) -> None:
        self.store = store
        self._settings = settings
        self._minter = minter
        self._verified: dict[tuple[str, str], str] = {}
        self._dummy_hash: str | None = None

    def _now(self) -> datetime:
        return datetime.now(UTC)

    # -- API keys -----------------------------------------------------------------------------

    async def create_api_key(
        self, *, tenant: str, scopes: Iterable[str], name: str = ""
    ) -> NewApiKey:
        """A new key for ``tenant`` with ``scopes``: ``rsk_<id>_<secret>``."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        hashed = await asyncio.to_thread(_hash, secret, self._settings.bcrypt_rounds)
        record = ApiKeyRecord(
            key_id=key_id,
            tenant=tenant,
            scopes=check_scopes(scopes),
            secret_hash=hashed,
            name=name,
            created_at=self._now(),
        )
        await self.store.add_api_key(record)
        return NewApiKey(record, f"{_API_KEY_PREFIX}_{key_id}_{secret}")

    async def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key by id; True if it was live."""
        return bool(await self.store.revoke_api_key(key_id, at=self._now()))

    async def verify_api_key(self, key: str) -> Identity:
        """Who an ``x-api-key`` value is; ``AuthenticationError`` if unknown or revoked."""
        prefix, _, rest = key.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != _API_KEY_PREFIX or not key_id or not secret or len(key) > 256:
            raise AuthenticationError("API key is malformed")
        record = await self.store.get_api_key(key_id)
        if record is None or record.revoked_at is not None:
            raise AuthenticationError("API key is unknown or revoked")
        cache_key = (key_id, record.secret_hash)
        remembered = self._verified.get(cache_key)
        if remembered is None or not hmac.compare_digest(remembered, _digest(secret)):
            if not await asyncio.to_thread(_check, secret, record.secret_hash):
                raise AuthenticationError("API key is unknown or revoked")
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[cache_key] = _digest(secret)
        return Identity(
            sub=f"apikey:{key_id}", tenant=record.tenant, scopes=frozenset(record.scopes)
        )

    # -- users --------------------------------------------------------------------------------

    async def create_user(
        self,
        *,
        username: str,
        password: str,
        tenant: str,
        permissions: Iterable[str],
    ) -> UserRecord:
        """A new enabled user with a bcrypt password hash."""
        if not username or len(username) > 255 or ":" in username:
            raise SchemaValidationError("username must be 1-255 characters without ':'")
        if len(password.encode()) > _MAX_PASSWORD_BYTES or len(password) < 8:
            raise SchemaValidationError("password must be 8 characters to 72 bytes")
        hashed = await asyncio.to_thread(_hash, password, self._settings.bcrypt_rounds)
        record = UserRecord(
            username=username,
            tenant=tenant,
            permissions=check_scopes(permissions),
            password_hash=hashed,
            created_at=self._now(),
        )
        await self.store.add_user(record)
        return record

    async def ensure_user(
        self,
        *,
        username: str,
        password: str,
        tenant: str,
        permissions: Iterable[str],
    ) -> bool:
        """Create the user unless it exists (the first admin); True if created."""
        if await self.store.get_user(username) is not None:
            return False
        await self.create_user(
            username=username, password=password, tenant=tenant, permissions=permissions
        )
        return True

    async def set_disabled(self, username: str, disabled: bool) -> bool:
        """Disable (or enable) a user; their tokens stop working on the next message."""
        return bool(await self.store.update_user(username, disabled=disabled))

    async def set_permissions(self, username: str, permissions: Iterable[str]) -> bool:
        """Replace a user's permissions; tokens already issued are narrowed to them at once."""
        return bool(await self.store.update_user(username, permissions=check_scopes(permissions)))

    async def check_user_token(
        self,
        username: str,
        *,
        tenant: str,
        scopes: frozenset[str],
        session_id: str | None,
    ) -> Identity:
        """The live identity behind a ``user:<name>`` token: enabled, same tenant, live session."""
        user = await self.store.get_user(username)
        if user is None or user.disabled or user.tenant != tenant:
            raise AuthenticationError("token user is unknown or disabled")
        if session_id is not None:
            session = await self.store.get_session(session_id)
            if session is None or session.revoked_at is not None or session.username != username:
                raise AuthenticationError("token session is revoked")
        return Identity(
            sub=f"user:{username}", tenant=tenant, scopes=scopes & frozenset(user.permissions)
        )

    # -- login, refresh, logout ---------------------------------------------------------------

    async def login(self, username: str, password: str) -> TokenPair:
        """Check a password and start a session: an access token and a refresh token."""
        user = await self.store.get_user(username)
        if user is None:
            if self._dummy_hash is None:  # same bcrypt cost whether or not the user exists
                self._dummy_hash = await asyncio.to_thread(
                    _hash, secrets.token_hex(8), self._settings.bcrypt_rounds
                )
            await asyncio.to_thread(_check, password, self._dummy_hash)
            raise AuthenticationError("invalid username or password")
        if not await asyncio.to_thread(_check, password, user.password_hash) or user.disabled:
            raise AuthenticationError("invalid username or password")
        session = SessionRecord(
            session_id=secrets.token_hex(16), username=username, created_at=self._now()
        )
        await self.store.add_session(session)
        return await self._issue(user, session.session_id)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: a used refresh token is spent; using it again revokes its whole session."""
        digest = _digest(refresh_token)
        record = await self.store.get_refresh_token(digest)
        if record is None:
            raise AuthenticationError("refresh token is unknown")
        session = await self.store.get_session(record.session_id)
        if session is None or session.revoked_at is not None:
            raise AuthenticationError("refresh token's session is revoked")
        first_use = record.used_at is None and await self.store.use_refresh_token(
            digest, at=self._now()
        )
        if not first_use:
            await self.store.revoke_session(record.session_id, at=self._now())
            raise AuthenticationError("refresh token was already used: its session is revoked")
        if record.expires_at <= self._now():
            raise AuthenticationError("refresh token has expired")
        user = await self.store.get_user(session.username)
        if user is None or user.disabled:
            raise AuthenticationError("user is unknown or disabled")
        return await self._issue(user, session.session_id)

    async def logout(self, refresh_token: str) -> bool:
        """Revoke the session of a refresh token (every token of the family)."""
        record = await self.store.get_refresh_token(_digest(refresh_token))
        if record is None:
            return False
        return bool(await self.store.revoke_session(record.session_id, at=self._now()))

    async def _issue(self, user: UserRecord, session_id: str) -> TokenPair:
        if self._minter is None:
            raise RuntimeError("Accounts was built without a token minter")
        ttl = self._settings.expiration_minutes * 60
        access = self._minter.mint(
            sub=f"user:{user.username}",
            tenant=user.tenant,
            scopes=user.permissions,
            ttl_s=ttl,
            extra={"sid": session_id},
        )
        refresh = _REFRESH_PREFIX + secrets.token_urlsafe(32)
        now = self._now()
        await self.store.add_refresh_token(
            RefreshTokenRecord(
                token_hash=_digest(refresh),
                session_id=session_id,
                created_at=now,
                expires_at=now + timedelta(minutes=self._settings.refresh_expiration_minutes),
            )
        )
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=ttl)
