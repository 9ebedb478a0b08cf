"""Authentication and authorization of every document and search message.

The agents hand this module a message's ``authorization`` and ``x-api-key`` header values;
it answers with the ``Principal`` (subject, tenant, scopes) or raises
``AuthenticationError`` (``unauthenticated``). ``authorize_document``/``authorize_search``
then raise ``AuthorizationError`` (``forbidden``) unless the principal holds the scope and
owns the tenant: the tenant always comes from the credential, never from the body.
With ``RAGSTREAM_AUTH=disabled`` ``authenticate`` returns None and nothing is checked.
Credentials never appear in an error message or a log line.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from services.auth_accounts import SCOPES, Accounts
from services.auth_tokens import TokenMinter, TokenVerifier, check_auth_settings
from stores.auth_store import SqlAuthStore
from stores.base import AuthStore
from streams.errors import AuthenticationError, AuthorizationError, ConfigError
from streams.settings import Settings

__all__ = [
    "ADMIN",
    "DOCUMENTS_DELETE",
    "DOCUMENTS_WRITE",
    "SCOPES",
    "SEARCH_READ",
    "Authenticator",
    "Principal",
    "authorize_document",
    "authorize_search",
]

log = structlog.get_logger(__name__)

DOCUMENTS_WRITE = "documents:write"
DOCUMENTS_DELETE = "documents:delete"
SEARCH_READ = "search:read"
ADMIN = "admin"
_USER_PREFIX = "user:"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a message: ``sub`` (``user:<name>``, ``apikey:<id>``, else the token's own),
    the tenant and the scopes."""

    sub: str
    tenant: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """Whether the principal holds ``scope`` (``admin`` holds every scope)."""
        return scope in self.scopes or ADMIN in self.scopes


def _require(principal: Principal, scope: str, tenant: str, what: str) -> None:
    if not principal.allows(scope):
        raise AuthorizationError(f"{what} needs the {scope!r} scope")
    if tenant != principal.tenant:
        raise AuthorizationError(
            f"{what} for tenant {tenant!r} refused: the credential belongs to tenant "
            f"{principal.tenant!r}"
        )


def authorize_document(principal: Principal | None, *, tenant: str, op: str) -> None:
    """An upsert needs ``documents:write``, a delete ``documents:delete``, both in their tenant."""
    if principal is None:
        return
    scope = DOCUMENTS_DELETE if op == "delete" else DOCUMENTS_WRITE
    _require(principal, scope, tenant, f"document {op}")


def authorize_search(principal: Principal | None, *, tenant: str) -> None:
    """A search needs ``search:read``, and its ``tenant`` field must be the credential's."""
    if principal is None:
        return
    _require(principal, SEARCH_READ, tenant, "search")


class Authenticator:
    """Headers in, ``Principal`` out: a ``Bearer`` JWT or an ``x-api-key``."""

    def __init__(
        self,
        *,
        required: bool,
        verifier: TokenVerifier | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        if required and verifier is None:
            raise ConfigError("authentication is required but no token verifier is configured")
        self.required = required
        self._verifier = verifier
        self.accounts = accounts

    @classmethod
    def from_settings(cls, settings: Settings, *, store: AuthStore | None = None) -> Authenticator:
        """Check the settings (refusing unsafe ones in production) and build the authenticator."""
        for warning in check_auth_settings(settings):
            log.warning("auth_settings_warning", warning=warning)
        auth = settings.security
        needs_store = auth.required or auth.default_admin_password is not None
        if store is None and needs_store:
            store = SqlAuthStore.from_settings(settings)
        minter = None
        if auth.default_admin_password is not None or auth.required:
            try:
                minter = TokenMinter(auth)
            except ConfigError:
                minter = None  # a verify-only worker (public keys only) mints nothing
        accounts = Accounts(store, auth, minter=minter) if store is not None else None
        verifier = TokenVerifier(auth) if auth.required else None
        return cls(required=auth.required, verifier=verifier, accounts=accounts)

    async def start(self, settings: Settings) -> None:
        """Create the auth tables and, when ``DEFAULT_ADMIN_PASSWORD`` is set, the first admin."""
        if self.accounts is None:
            return
        await self.accounts.store.start()
        auth = settings.security
        if auth.default_admin_password is not None:
            created = await self.accounts.ensure_user(
                username=auth.default_admin_username,
                password=auth.default_admin_password.get_secret_value(),
                tenant=auth.default_admin_tenant,
                permissions=sorted(SCOPES),
            )
            if created:
                log.warning(
                    "default_admin_created",
                    username=auth.default_admin_username,
                    tenant=auth.default_admin_tenant,
                )

    async def aclose(self) -> None:
        """Release the auth store; idempotent."""
        if self.accounts is not None:
            await self.accounts.store.aclose()

    async def authenticate(
        self, *, authorization: str | None, api_key: str | None
    ) -> Principal | None:
        """The message's principal; None when auth is disabled; else ``AuthenticationError``."""
        if not self.required:
            return None
        if authorization and api_key:
            raise AuthenticationError("send either 'authorization' or 'x-api-key', not both")
        if api_key:
            if self.accounts is None:
                raise AuthenticationError("API keys are not accepted by this worker")
            identity = await self.accounts.verify_api_key(api_key.strip())
            return Principal(identity.sub, identity.tenant, identity.scopes)
        if not authorization:
            raise AuthenticationError(
                "no credential: send 'authorization: Bearer <token>' or 'x-api-key'"
            )
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("header 'authorization' must be 'Bearer <token>'")
        assert self._verifier is not None
        verified = self._verifier.verify(token.strip())
        if verified.sub.startswith(_USER_PREFIX):
            if self.accounts is None:
                raise AuthenticationError("user tokens are not accepted by this worker")
            identity = await self.accounts.check_user_token(
                verified.sub.removeprefix(_USER_PREFIX),
                tenant=verified.tenant,
                scopes=verified.scopes,
                session_id=verified.session_id,
            )
            return Principal(identity.sub, identity.tenant, identity.scopes)
        return Principal(verified.sub, verified.tenant, verified.scopes)
