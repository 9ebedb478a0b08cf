"""The SQL catalog's error boundary, without a database server."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc

from stores._sql import map_error as _map_error
from stores.catalog import SqlCatalog
from streams.errors import ConfigError, StoreRejectedError, StoreUnavailableError
from streams.settings import DatabaseSettings, Settings
from tests.contract_catalog import make_record


def _dbapi(cls: type[sa_exc.DBAPIError]) -> sa_exc.DBAPIError:
    """A SQLAlchemy-wrapped driver error of class ``cls``."""
    return cls("SELECT 1", {}, Exception("driver says no"))


@pytest.mark.parametrize(
    ("raised", "mapped"),
    [
        pytest.param(_dbapi(sa_exc.OperationalError), StoreUnavailableError, id="operational"),
        pytest.param(_dbapi(sa_exc.InterfaceError), StoreUnavailableError, id="interface"),
        pytest.param(_dbapi(sa_exc.InternalError), StoreUnavailableError, id="internal"),
        pytest.param(_dbapi(sa_exc.DatabaseError), StoreUnavailableError, id="database"),
        pytest.param(sa_exc.TimeoutError("pool exhausted"), StoreUnavailableError, id="pool"),
        pytest.param(ConnectionRefusedError(111, "refused"), StoreUnavailableError, id="refused"),
        pytest.param(TimeoutError(), StoreUnavailableError, id="timeout"),
        pytest.param(_dbapi(sa_exc.IntegrityError), StoreRejectedError, id="integrity"),
        pytest.param(_dbapi(sa_exc.DataError), StoreRejectedError, id="data"),
        pytest.param(_dbapi(sa_exc.ProgrammingError), StoreRejectedError, id="programming"),
        pytest.param(sa_exc.ArgumentError("bad"), StoreRejectedError, id="other-sqlalchemy"),
    ],
)
def test_database_errors_map_to_ours(raised: Exception, mapped: type[Exception]) -> None:
    """Each family of database exception becomes the right one of ours."""
    assert type(_map_error(raised)) is mapped


async def test_sqlite_in_an_unusable_place_is_unavailable(tmp_path: Path) -> None:
    """A SQLite path under a regular file fails as StoreUnavailableError, chained to the cause."""
    (tmp_path / "file").write_text("not a directory")
    catalog = SqlCatalog(url=f"sqlite+aiosqlite:///{tmp_path / 'file' / 'sub' / 'catalog.db'}")
    with pytest.raises(StoreUnavailableError) as info:
        await catalog.upsert(make_record("t", "d"))
    assert isinstance(info.value.__cause__, OSError)
    await catalog.aclose()


def test_unknown_driver_is_a_config_error() -> None:
    """A URL naming a driver that is not installed fails at construction as ConfigError."""
    with pytest.raises(ConfigError):
        SqlCatalog(url="nosuchdb+nodriver://x/y")


async def test_from_settings_uses_the_data_dir_sqlite(tmp_path: Path) -> None:
    """Default settings give a SQLite file in the data dir, created on start."""
    settings = Settings(data_dir=tmp_path / "data", database=DatabaseSettings(url=""))
    catalog = SqlCatalog.from_settings(settings)
    await catalog.start()
    await catalog.start()
    assert (tmp_path / "data" / "catalog.db").exists()
    await catalog.upsert(make_record("t", "d"))
    assert await catalog.count() == 1
    await catalog.aclose()
    await catalog.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await catalog.ping()


async def test_in_memory_sqlite_works() -> None:
    """``sqlite+aiosqlite://`` (in memory, static pool) needs no pool arguments and works."""
    catalog = SqlCatalog(url="sqlite+aiosqlite://", pool_size=5)
    await catalog.upsert(make_record("t", "d"))
    assert (await catalog.get("t", "d")) is not None
    assert (await catalog.upsert(make_record("t", "d", chunk_count=9))).chunk_count == 9
    with pytest.raises(StoreRejectedError):
        await catalog.upsert(make_record("t", "e", chunk_count=-1))
    await catalog.aclose()
