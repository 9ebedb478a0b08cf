"""A catalog created by an older version gets the new columns at start, rows intact."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from stores.catalog import SqlCatalog


async def test_old_sqlite_catalog_gains_last_error_columns(tmp_path: Path) -> None:
    """Start adds ``last_error``/``last_error_at`` to a 0.1 table; old rows still read."""
    path = tmp_path / "catalog.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE documents (tenant VARCHAR(255) NOT NULL, doc_id VARCHAR(1024) "
                "NOT NULL, content_hash VARCHAR(64) NOT NULL, chunk_count INTEGER NOT NULL, "
                "status VARCHAR(32) NOT NULL, title TEXT NOT NULL, created_at DATETIME NOT NULL, "
                "updated_at DATETIME NOT NULL, PRIMARY KEY (tenant, doc_id))"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO documents VALUES ('acme', 'a', 'h', 2, 'indexed', 'A', "
                "'2025-01-01 00:00:00.000000', '2025-01-02 00:00:00.000000')"
            )
        )
    engine.dispose()
    catalog = SqlCatalog(url=f"sqlite+aiosqlite:///{path}")
    try:
        await catalog.start()
        old = await catalog.get("acme", "a")
        assert old is not None and old.chunk_count == 2 and old.last_error is None
        await catalog.record_failure("acme", "a", "store_rejected: x")
        assert (await catalog.get("acme", "a")).last_error == "store_rejected: x"
    finally:
        await catalog.aclose()
    again = SqlCatalog(url=f"sqlite+aiosqlite:///{path}")
    try:
        await again.start()  # nothing left to add: a second start is a no-op
        assert (await again.get("acme", "a")).last_error == "store_rejected: x"
    finally:
        await again.aclose()
