"""The single-box deployment shape: embedded stores, and the CLI, against a real worker.

The worker keeps vectors in an embedded PersistentClient, keywords in the embedded tantivy
index (``KEYWORD_STORE=embedded``) and its catalog in PostgreSQL (asyncpg); the tests drive it
through the ``ragstream`` command, as a user would, and kill it to prove what it acked stays.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from stores.catalog import Catalog
from stores.tantivy_keywords import TantivyKeywordStore
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
        KEYWORD_STORE="embedded",
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
    assert (data_dir / "keywords" / "meta.json").is_file(), "so does the keyword index"


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


def test_a_second_worker_on_the_data_dir_refuses_to_start(cli_env: dict[str, str]) -> None:
    """The embedded keyword index has one owner: a second worker exits 2 and says why."""
    second = _cli(cli_env, "worker")
    assert second.returncode == 2, second.stderr
    assert "refusing to start" in second.stderr and "another process" in second.stderr


async def test_acknowledged_documents_survive_a_sigkill(
    kafka_bootstrap: str, elasticsearch_url: str, postgres_url: str, tmp_path: Path
) -> None:
    """Documents whose results arrived are in the embedded index after a SIGKILL and restart."""
    data_dir = tmp_path / "data"
    env = isolated_env(
        kafka_bootstrap=kafka_bootstrap,
        elasticsearch_url=elasticsearch_url,
        data_dir=data_dir,
        DATABASE_URL=postgres_url,
        KEYWORD_STORE="embedded",
    )
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=env["RAGSTREAM_TOPIC_PREFIX"]
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"note-{i}.md").write_text(f"Aerodynamics lecture {i}: zeppelin{i} drag.")
    worker = WorkerProcess(env, log_path=tmp_path / "worker.log").start()
    try:
        await worker.wait_ready(kafka, tenant="probe")
        ingest = await asyncio.to_thread(
            _cli, env, "ingest", str(docs), "--tenant", "acme", "--wait"
        )
        assert ingest.returncode == 0 and "12 indexed" in ingest.stdout, ingest.stderr
    finally:
        worker.stop(sig=signal.SIGKILL)
    assert worker.process is not None and worker.process.returncode == -signal.SIGKILL

    # Straight from disk, before any replay could repair anything: every acked chunk is there.
    store = TantivyKeywordStore(path=data_dir / "keywords")
    await store.start()
    try:
        assert await store.count("acme") == 12
        hits = await store.search("acme", "zeppelin7", top_k=5)
        assert [hit.chunk.doc_id for hit in hits] == ["note-7.md"]
    finally:
        await store.aclose()

    worker = WorkerProcess(env, log_path=tmp_path / "worker.log").start()
    try:
        await worker.wait_ready(kafka, tenant="probe")
        found = await asyncio.to_thread(
            _cli, env, "search", "aerodynamic", "--tenant", "acme", "--mode", "keyword",
            "--top-k", "20", "--json",
        )  # fmt: skip
        assert found.returncode == 0, found.stderr
        hits = json.loads(found.stdout)["hits"]
        assert sorted(hit["doc_id"] for hit in hits) == sorted(f"note-{i}.md" for i in range(12))
    finally:
        worker.stop()
