"""What every SQL store shares: one async engine, table creation, and error mapping.

The catalog (``stores.catalog``) and the auth store (``stores.auth_store``) live in the same
database (``DATABASE_URL``: SQLite by default, PostgreSQL via asyncpg in production). Every
driver and SQLAlchemy exception leaves a store through ``mapped``, the one place where it
becomes ``StoreUnavailableError`` (retriable) or ``StoreRejectedError``. TLS to PostgreSQL
is set in the URL with libpq's names (``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``,
``sslnegotiation=direct``), which ``_asyncpg_tls`` maps onto asyncpg's ``ssl``/``direct_tls``.
"""

from __future__ import annotations

import asyncio
import builtins
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from streams.errors import (
    ConfigError,
    DependencyConfigError,
    StoreRejectedError,
    StoreUnavailableError,
)

__all__ = ["SqlStore", "UTCDateTime", "map_error", "mapped"]

_SQLITE_BUSY_TIMEOUT_MS = 10_000
_CONNECT_TIMEOUT_S = 10.0

_UNAVAILABLE = (
    sa_exc.OperationalError,  # connection refused or lost, locked, server shutting down
    sa_exc.InterfaceError,
    sa_exc.InternalError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # the pool had no connection to give
    OSError,  # drivers that raise socket errors unwrapped while connecting
    builtins.TimeoutError,  # asyncio.TimeoutError is the same class
)
_REJECTED = (
    sa_exc.IntegrityError,
    sa_exc.DataError,
    sa_exc.ProgrammingError,
    sa_exc.NotSupportedError,
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("stored timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def map_error(
    exc: Exception, *, what: str = "catalog"
) -> StoreUnavailableError | StoreRejectedError | DependencyConfigError:
    """The one place a database exception becomes ours."""
    tls = exc if isinstance(exc, ssl.SSLError) else getattr(exc, "orig", None)
    if isinstance(tls, ssl.SSLError):
        reason = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or tls
        return DependencyConfigError(
            f"TLS to the {what} database failed: {reason}: check sslmode/sslrootcert in "
            "DATABASE_URL"
        )
    if isinstance(exc, _REJECTED):
        return StoreRejectedError(f"{what} rejected the request: {exc}")
    if isinstance(exc, (*_UNAVAILABLE, sa_exc.DBAPIError)):
        return StoreUnavailableError(f"{what} unavailable: {exc}")
    return StoreRejectedError(f"{what} error: {exc}")


@asynccontextmanager
async def mapped(what: str = "catalog") -> AsyncIterator[None]:
    """Run a block; any database exception leaves it as one of ours (``from`` the original)."""
    try:
        yield
    except (sa_exc.SQLAlchemyError, OSError, builtins.TimeoutError) as exc:
        raise map_error(exc, what=what) from exc


_LIBPQ_TLS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslnegotiation")
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _asyncpg_tls(url: URL) -> tuple[URL, dict[str, Any]]:
    """Move libpq's TLS parameters out of the URL into asyncpg connect arguments.

    asyncpg takes ``ssl`` (a mode or an ``SSLContext``), not ``sslmode``/``sslrootcert``:
    left in the URL they would reach ``asyncpg.connect`` as unknown keywords. ``verify-ca``
    and ``verify-full`` build a context from ``sslrootcert`` (default: the system's CAs);
    ``require`` with ``sslrootcert`` verifies the CA, as libpq does.
    """
    query = dict(url.query)
    given = {k: str(query.pop(k)) for k in _LIBPQ_TLS if k in query}
    if not given:
        return url, {}
    if "ssl" in query:
        raise ConfigError("DATABASE_URL: use ssl= or sslmode=, not both")
    mode = given.get("sslmode", "prefer")
    if mode not in _SSLMODES:
        raise ConfigError(f"DATABASE_URL: sslmode={mode!r}, expected one of {_SSLMODES}")
    args: dict[str, Any] = {}
    if given.get("sslnegotiation") == "direct":
        args["direct_tls"] = True
    root, cert, key = given.get("sslrootcert"), given.get("sslcert"), given.get("sslkey")
    verify = mode in ("verify-ca", "verify-full") or (mode == "require" and root)
    if not verify and not cert:
        args["ssl"] = False if mode == "disable" else mode
        return url.set(query=query), args
    try:
        context = ssl.create_default_context(cafile=root)
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"DATABASE_URL: cannot load its TLS files: {exc}") from exc
    context.check_hostname = mode == "verify-full"
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    args["ssl"] = context
    return url.set(query=query), args


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL (readers don't block the writer), a busy timeout and enforced foreign keys."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


class SqlStore:
    """One async engine on a database URL, the tables of ``metadata``, mapped errors."""

    def __init__(
        self,
        *,
        url: str,
        metadata: MetaData,
        what: str,
        pool_size: int = 20,
        max_overflow: int = 40,
        pool_pre_ping: bool = True,
        pool_recycle: int = 3600,
        echo: bool = False,
    ) -> None:
        self._what = what
        self._metadata = metadata
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError as exc:
            raise ConfigError(f"invalid {what} URL: {exc}") from exc
        self._dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        self._sqlite_path: Path | None = None
        if self._dialect == "sqlite":
            # The dialect picks the pool (a queue pool for files, a static one for :memory:).
            database = parsed.database or ""
            self._sqlite_path = Path(database) if database not in ("", ":memory:") else None
        else:
            kwargs |= {
                "pool_size": pool_size,
                "max_overflow": max_overflow,
                "pool_pre_ping": pool_pre_ping,
                "pool_recycle": pool_recycle,
            }
            if parsed.get_driver_name() == "asyncpg":
                parsed, tls = _asyncpg_tls(parsed)
                kwargs["connect_args"] = {"timeout": _CONNECT_TIMEOUT_S, **tls}
        try:
            self._engine: AsyncEngine = create_async_engine(parsed, **kwargs)
        except (sa_exc.ArgumentError, ImportError, TypeError) as exc:
            raise ConfigError(f"cannot use {what} URL {parsed!r}: {exc}") from exc
        if self._dialect == "sqlite":
            event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closed = False

    def _mapped(self) -> Any:
        return mapped(self._what)

    async def start(self) -> None:
        """Create the tables if missing (and SQLite's directory); idempotent."""
        async with self._start_lock:
            self._check_open()
            if self._started:
                return
            async with self._mapped():
                if self._sqlite_path is not None:
                    self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    async with self._engine.begin() as conn:
                        await conn.run_sync(self._metadata.create_all)
                except sa_exc.DBAPIError:
                    # Another worker may have created them at the same moment: fine if they exist.
                    async with self._engine.connect() as conn:
                        if not await conn.run_sync(self._has_tables):
                            raise
                await self._add_missing_columns()
            self._started = True

    async def _add_missing_columns(self) -> None:
        """Add the nullable columns a table created by an older version lacks (a migration)."""
        async with self._engine.connect() as conn:
            missing = await conn.run_sync(self._missing_columns)
        for table, column in missing:
            ddl = column.type.compile(dialect=self._engine.dialect)
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        text(f'ALTER TABLE {table} ADD COLUMN "{column.name}" {ddl}')
                    )
            except sa_exc.DBAPIError:
                # Another worker may have added it at the same moment: fine if it exists now.
                async with self._engine.connect() as conn:
                    if (table, column) in await conn.run_sync(self._missing_columns):
                        raise

    def _missing_columns(self, conn: Any) -> builtins.list[tuple[str, Any]]:
        """(table, column) for every nullable column the database does not have yet."""
        inspector = inspect(conn)
        missing = []
        for name, table in self._metadata.tables.items():
            present = {c["name"] for c in inspector.get_columns(name)}
            missing += [(name, c) for c in table.columns if c.name not in present and c.nullable]
        return missing

    def _has_tables(self, conn: Any) -> bool:
        """Whether every table exists (run on a sync connection)."""
        inspector = inspect(conn)
        return all(inspector.has_table(name) for name in self._metadata.tables)

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, on a started store, errors mapped."""
        self._check_open()
        if not self._started:
            await self.start()
        async with self._mapped(), self._engine.begin() as conn:
            yield conn

    async def ping(self) -> None:
        """Round-trip to the database (``SELECT 1``)."""
        self._check_open()
        async with self._mapped(), self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def _check_open(self) -> None:
        """Refuse to work after ``aclose`` (the engine would silently reconnect)."""
        if self._closed:
            raise RuntimeError(f"{self._what} is closed")

    async def aclose(self) -> None:
        """Dispose of the engine and its pool; idempotent."""
        if not self._closed:
            self._closed = True
            await self._engine.dispose()
