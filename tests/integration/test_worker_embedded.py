"""The default deployment shape: embedded Chroma, and the CLI, against a real worker.

The worker keeps vectors in an embedded PersistentClient and its catalog in PostgreSQL
(asyncpg); the test drives it only through the ``ragstream`` command, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from stores.catalog import Catalog
from streams.settings import KafkaSettings
from tests.integration.harness import ROOT, WorkerProcess, isolated_env


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cli_env(
    kafka_bootstrap: str,
    elasticsearch_url: str,
    postgres_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, str]]:
    """A ready worker with embedded Chroma and a PostgreSQL catalog; yields the CLI's env."""
    data_dir = tmp_path_factory.mktemp("embedded-worker")
    env = isolated_env(
        kafka_bootstrap=kafka_bootstrap,
        elasticsearch_url=elasticsearch_url,
        data_dir=data_dir,
        DATABASE_URL=postgres_url,
    )
    worker = WorkerProcess(env, log_path=data_dir / "worker.log").start()
    try:
        kafka = KafkaSettings(
            bootstrap_servers=kafka_bootstrap, topic_prefix=env["RAGSTREAM_TOPIC_PREFIX"]
        )
        await worker.wait_ready(kafka, tenant="probe")
        yield env
    finally:
        worker.stop()
    assert (data_dir / "chroma").is_dir(), "the embedded Chroma keeps its files in the data dir"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragstream.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def test_cli_ingest_search_delete(cli_env: dict[str, str], tmp_path: Path) -> None:
    """ingest --wait, search (table and JSON), delete: the README's walkthrough works."""
    docs = tmp_path / "docs"
    (docs / "guide").mkdir(parents=True)
    (docs / "guide" / "breakers.md").write_text(
        "# Circuit breakers\n\nAn open breaker holds the stream until a trial call succeeds."
    )
    (docs / "bread.txt").write_text("Knead the dough, proof it overnight, bake at 250 degrees.")
    (docs / "ignored.pdf").write_text("not a text document")
    ingest = _cli(cli_env, "ingest", str(docs), "--tenant", "acme", "--wait")
    assert ingest.returncode == 0, ingest.stderr
    assert "2 documents: 2 indexed" in ingest.stdout
    again = _cli(cli_env, "ingest", str(docs), "--tenant", "acme", "--wait")
    assert "2 documents: 2 unchanged" in again.stdout, again.stdout + again.stderr
    unawaited = _cli(cli_env, "ingest", str(docs), "--tenant", "acme")
    assert unawaited.returncode == 0, unawaited.stderr
    assert "produced 2 documents" in unawaited.stdout
    assert "results were not awaited" in unawaited.stderr

    table = _cli(cli_env, "search", "what holds the stream?", "--tenant", "acme")
    assert table.returncode == 0, table.stderr
    assert "guide/breakers.md" in table.stdout
    raw = _cli(cli_env, "search", "bake dough", "--tenant", "acme", "--json", "--mode", "keyword")
    body = json.loads(raw.stdout)
    assert body["status"] == "ok" and body["hits"][0]["doc_id"] == "bread.txt"
    assert body["hits"][0]["metadata"] == {"path": "bread.txt", "type": "txt"}

    deleted = _cli(cli_env, "delete", "bread.txt", "--tenant", "acme")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    after = json.loads(_cli(cli_env, "search", "bake dough", "--tenant", "acme", "--json").stdout)
    assert all(hit["doc_id"] != "bread.txt" for hit in after["hits"])
    catalog = Catalog(url=cli_env["DATABASE_URL"])
    try:
        assert await catalog.get("acme", "bread.txt") is None
        record = await catalog.get("acme", "guide/breakers.md")
        assert record is not None and record.status == "indexed" and record.chunk_count == 1
    finally:
        await catalog.aclose()


def test_cli_reports_bad_arguments(cli_env: dict[str, str], tmp_path: Path) -> None:
    """A missing path or a malformed filter is a clear error and a non-zero exit."""
    missing = _cli(cli_env, "ingest", str(tmp_path / "nope"), "--tenant", "acme")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad = _cli(cli_env, "search", "x", "--filter", "novalue", "--tenant", "acme")
    assert bad.returncode == 2 and "key=value" in bad.stderr and bad.stdout == ""
