"""The operator commands against a real worker: status, documents get/list, dead letters.

The worker requires credentials. A document sent without one is dead-lettered
(``unauthenticated``, credential-less by design); the operator replays it with their own
token: it is indexed, and replaying it again changes nothing (``unchanged``, same chunks).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from ragstream.cli import main
from schemas.document import DocumentUpsert
from stores.catalog import SqlCatalog
from stores.elastic import ElasticKeywordStore, chunk_index
from streams.client import IngestClient
from streams.settings import Settings
from tests.integration.harness import ROOT, WorkerProcess, isolated_env, new_id, read_until

TEXT = "Dead letters keep the original bytes so an operator can replay them later. " * 8


@dataclass
class Operated:
    """A worker requiring auth, its settings, an operator token and the CLI's environment."""

    settings: Settings
    worker: WorkerProcess
    env: dict[str, str]
    token: str
    tenant: str

    async def cli(self, *args: str, token: bool = False) -> subprocess.CompletedProcess[str]:
        """``ragstream ARGS`` in this process, on a thread (with the operator's token in
        ``RAGSTREAM_TOKEN`` if asked): a fresh interpreter per call is slow on a busy machine."""
        env = self.env | ({"RAGSTREAM_TOKEN": self.token} if token else {})
        out, err = io.StringIO(), io.StringIO()

        def run() -> int:
            with redirect_stdout(out), redirect_stderr(err):
                return main(list(args))

        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            if not token:
                mp.delenv("RAGSTREAM_TOKEN", raising=False)
            code = await asyncio.to_thread(run)
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

    async def json(self, *args: str, token: bool = False) -> Any:
        """``ragstream ARGS --json``, parsed; the command must succeed."""
        done = await self.cli(*args, "--json", token=token)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def operated(
    kafka_bootstrap: str,
    elasticsearch_url: str,
    chroma_url: str,
    openai_base_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Operated]:
    """A ready worker with ``RAGSTREAM_AUTH=required`` and an operator token for a tenant."""
    data_dir = tmp_path_factory.mktemp("operated")
    worker_env = isolated_env(
        kafka_bootstrap=kafka_bootstrap,
        elasticsearch_url=elasticsearch_url,
        data_dir=data_dir,
        CHROMA_URL=chroma_url,
        EMBEDDING_PROVIDER="openai",
        OPENAI_BASE_URL=openai_base_url,
        OPENAI_EMBEDDING_MODEL="e5-small",
        INGEST_CHUNK_SIZE="200",
        INGEST_CHUNK_OVERLAP="40",
        RAGSTREAM_AUTH="required",
        JWT_SECRET_KEY=secrets.token_urlsafe(48),
    )
    env = {k: v for k, v in os.environ.items() if k != "RAGSTREAM_TOKEN"}
    env |= worker_env
    with pytest.MonkeyPatch.context() as mp:
        for key, value in worker_env.items():
            mp.setenv(key, value)
        settings = Settings()
    tenant = f"ops-{new_id()}"
    worker = WorkerProcess(worker_env, log_path=data_dir / "worker.log").start()
    try:
        scopes = ["--scope", "documents:write", "--scope", "search:read"]
        minted = await asyncio.to_thread(  # the console command, once, as a real process
            subprocess.run,
            [sys.executable, "-m", "ragstream.cli", "token", "--tenant", tenant, *scopes],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        token = minted.stdout.strip()
        await worker.wait_ready(settings.kafka, tenant=tenant, token=token)
        yield Operated(settings, worker, env, token, tenant)
    finally:
        worker.stop()


async def _results(o: Operated, doc_id: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` ingest results of ``doc_id``, in order."""
    topic = o.settings.kafka.topic("ingest-results")

    def mine(records: list[Any]) -> list[Any]:
        return [r for r in records if r.key == doc_id.encode()]

    records = await read_until(
        o.settings.kafka.bootstrap_servers, topic, lambda rs: len(mine(rs)) >= count
    )
    return [json.loads(r.value) for r in sorted(mine(records), key=lambda r: r.timestamp)]


async def test_dead_letter_replay_with_the_operators_credential_is_idempotent(
    operated: Operated,
) -> None:
    """An unauthenticated document is dead-lettered; replayed with a token it is indexed;
    replayed again it is ``unchanged`` with the same chunks in Elasticsearch."""
    o, doc_id = operated, f"replay-{new_id()}"
    async with IngestClient(o.settings.kafka) as anonymous:  # no credential at all
        result = await anonymous.ingest(DocumentUpsert(id=doc_id, tenant=o.tenant, text=TEXT))
    assert result.status == "rejected" and result.error.code == "unauthenticated"

    [letter] = await o.json("dead-letters", "list", "--doc-id", doc_id)
    assert letter["error_code"] == "unauthenticated"
    assert letter["original_topic"] == o.settings.kafka.topic("documents")
    assert [
        d["doc_id"] for d in await o.json("dead-letters", "list", "--error-code", "unauthenticated")
    ]
    assert await o.json("dead-letters", "list", "--doc-id", doc_id, "--since", "1h") == [letter]
    shown = await o.json("dead-letters", "show", letter["ref"])
    assert json.loads(shown["value"])["text"] == TEXT
    assert "authorization" not in shown["headers"]  # stripped when it was dead-lettered
    missing = await o.cli("dead-letters", "show", "0:999999")
    assert missing.returncode == 3 and "no dead letter" in missing.stderr

    [planned] = await o.json("dead-letters", "replay", "--doc-id", doc_id, "--dry-run", token=True)
    assert planned["dry_run"] and planned["ref"] == letter["ref"]
    for run in range(2):
        done = await o.cli("dead-letters", "replay", "--doc-id", doc_id, token=True)
        assert done.returncode == 0, done.stderr
        assert "1 dead letter(s) replayed" in done.stdout, (run, done.stdout)
    rejected, first, second = await _results(o, doc_id, 3)
    assert rejected["status"] == "rejected"
    assert first["status"] == "indexed" and second["status"] == "unchanged"
    assert first["chunks"] == second["chunks"] > 1

    replayed = await read_until(
        o.settings.kafka.bootstrap_servers,
        o.settings.kafka.topic("documents"),
        lambda rs: sum(r.key == doc_id.encode() for r in rs) >= 3,
    )
    headers = [dict(r.headers) for r in replayed if r.key == doc_id.encode()][1:]
    for h in headers:
        assert h["replayed-from"].decode().endswith(f":{letter['ref']}")
        assert h["authorization"] == f"Bearer {o.token}".encode()
        assert not {"error-code", "original-topic", "exception-type"} & set(h)
    keywords = ElasticKeywordStore(
        url=o.settings.elasticsearch.url, index=chunk_index(o.settings.elasticsearch.index_prefix)
    )
    try:
        assert await keywords.count(o.tenant, doc_id) == first["chunks"]  # no duplicates
    finally:
        await keywords.aclose()
    assert (await o.cli("dead-letters", "replay", "--doc-id", "nobody")).returncode == 3


async def test_documents_get_and_list_show_the_catalog(operated: Operated) -> None:
    """``documents get`` shows status, chunks, hash and times; ``list`` filters by status."""
    o, doc_id = operated, f"cat-{new_id()}"
    async with IngestClient(o.settings.kafka, token=o.token) as client:
        result = await client.ingest(DocumentUpsert(id=doc_id, tenant=o.tenant, text=TEXT))
    assert result.status == "indexed"
    got = await o.json("documents", "get", doc_id, "--tenant", o.tenant)
    catalog = SqlCatalog(url=o.settings.database_url)
    try:
        record = await catalog.get(o.tenant, doc_id)
    finally:
        await catalog.aclose()
    assert record is not None
    assert got["status"] == "indexed" and got["chunks"] == result.chunks
    assert got["content_hash"] == record.content_hash and got["last_error"] is None
    assert got["first_indexed"] and got["last_indexed"] >= got["first_indexed"]
    listed = await o.json("documents", "list", "--tenant", o.tenant, "--status", "indexed")
    assert doc_id in [d["doc_id"] for d in listed]
    assert await o.json("documents", "list", "--tenant", o.tenant, "--status", "failed") == []
    nothing = await o.cli("documents", "get", "no-such-doc", "--tenant", o.tenant)
    assert nothing.returncode == 3 and "no document" in nothing.stderr
    assert "indexed" in (await o.cli("documents", "get", doc_id, "--tenant", o.tenant)).stdout


async def test_status_shows_partitions_dead_letters_and_documents(operated: Operated) -> None:
    """``status --json`` has lag per partition, the last hour's dead letters and documents;
    ``--fail-on dead-letters`` turns them into exit code 1."""
    o = operated
    async with IngestClient(o.settings.kafka) as anonymous:
        await anonymous.ingest(DocumentUpsert(id=f"s-{new_id()}", tenant=o.tenant, text=TEXT))
    async with IngestClient(o.settings.kafka, token=o.token) as client:
        await client.ingest(DocumentUpsert(id=f"s-{new_id()}", tenant=o.tenant, text=TEXT))
    data = await o.json("status")
    assert data["errors"] == {}, data["errors"]
    documents = o.settings.kafka.topic("documents")
    parts = [p for p in data["partitions"] if p["topic"] == documents]
    assert len(parts) == 2 and all(p["lag"] >= 0 and p["end"] >= 0 for p in parts)
    assert data["dead_letters_last_hour"].get("unauthenticated", 0) >= 1
    mine = {(d["tenant"], d["status"]): d["documents"] for d in data["documents"]}
    assert mine.get((o.tenant, "indexed"), 0) >= 1
    assert data["members"] or data["workers_seen_in_breaker_events"] is not None
    assert (await o.cli("status", "--fail-on", "dead-letters")).returncode == 1
    table = await o.cli("status")
    assert table.returncode == 0, table.stderr
    assert documents in table.stdout and "dead letters, last hour" in table.stdout
