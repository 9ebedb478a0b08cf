"""Both keyword engines analyze English the same way; the embedded one persists and is exclusive.

Runs against the real engines: the tantivy index in a temporary directory and the ES-API
server of the test stack (noida-db, which implements custom analyzers and ``_reindex``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tantivy
from elasticsearch import AsyncElasticsearch

from stores.base import KeywordStore
from stores.elastic import ElasticKeywordStore, chunk_index
from stores.tantivy_keywords import TantivyKeywordStore, analyzer
from streams.errors import ConfigError, StoreRejectedError, StoreUnavailableError
from tests.contract_search_stores import make_chunk
from tests.integration.harness import run_cli

pytestmark = pytest.mark.integration

_SENTENCE = "The Aerodynamics of John's aerodynamic generalizations are running"


@pytest.fixture
async def tantivy_store(tmp_path: Path) -> AsyncIterator[TantivyKeywordStore]:
    """A started tantivy store in a fresh directory."""
    store = TantivyKeywordStore(path=tmp_path / "keywords")
    await store.start()
    yield store
    await store.aclose()


@pytest.fixture
async def elastic_store(elasticsearch_url: str) -> AsyncIterator[ElasticKeywordStore]:
    """A started Elasticsearch store on a fresh index, dropped afterwards."""
    store = ElasticKeywordStore(
        url=elasticsearch_url, index=f"test-analysis-{uuid.uuid4().hex[:12]}", refresh=True
    )
    await store.start()
    yield store
    await store.aclose()
    async with AsyncElasticsearch(elasticsearch_url) as admin:
        await admin.options(ignore_status=404).indices.delete(index=store.index)


@pytest.fixture(params=["tantivy", "elasticsearch"])
def engine(request: pytest.FixtureRequest) -> KeywordStore:
    """Each keyword engine in turn."""
    name = "tantivy_store" if request.param == "tantivy" else "elastic_store"
    store: KeywordStore = request.getfixturevalue(name)
    return store


async def test_both_engines_produce_the_same_tokens(
    elastic_store: ElasticKeywordStore, elasticsearch_url: str
) -> None:
    """tantivy's analyzer and the index's Elasticsearch analyzer give the same terms."""
    async with AsyncElasticsearch(elasticsearch_url) as es:
        response = await es.indices.analyze(index=elastic_store.index, field="text", text=_SENTENCE)
    es_tokens = [token["token"] for token in response["tokens"]]
    assert es_tokens == analyzer().analyze(_SENTENCE)
    assert es_tokens == ["aerodynam", "john", "aerodynam", "general", "run"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("aerodynamic", [0], id="singular-finds-plural"),
        pytest.param("Aerodynamics", [0], id="case-and-plural"),
        pytest.param("wings", [1], id="plural-finds-singular-in-title"),
        pytest.param("the of and", [], id="stop-words-alone-match-nothing"),
    ],
)
async def test_english_stemming_and_stop_words(
    engine: KeywordStore, query: str, expected: list[int]
) -> None:
    """A word finds its other forms, and a query of stop words alone finds nothing."""
    await engine.upsert(
        [
            make_chunk(n=0, text="Studies in aerodynamics and the flow of air"),
            make_chunk(n=1, text="The and of with", title="A wing"),
        ]
    )
    hits = await engine.search("acme", query, top_k=10)
    assert [hit.chunk.n for hit in hits] == expected


async def test_title_match_outranks_text_match(engine: KeywordStore) -> None:
    """The same term in a chunk's title scores above it in another chunk's text."""
    await engine.upsert(
        [
            make_chunk(n=0, text="notes on lighthouses and keepers", title="Notes"),
            make_chunk(n=1, text="notes and keepers", title="Lighthouses"),
        ]
    )
    hits = await engine.search("acme", "lighthouse", top_k=10)
    assert [hit.chunk.n for hit in hits] == [1, 0]


async def test_writes_survive_a_restart(tmp_path: Path) -> None:
    """What one store wrote and deleted is what a new store on the directory finds."""
    path = tmp_path / "keywords"
    first = TantivyKeywordStore(path=path)
    await first.start()
    await first.upsert([make_chunk(doc_id="a", n=i) for i in range(3)])
    await first.delete_document("acme", "a", keep=1)
    await first.aclose()
    second = TantivyKeywordStore(path=path)
    await second.start()
    try:
        assert await second.count("acme", "a") == 1
        [hit] = await second.search("acme", "common", top_k=10)
        assert hit.chunk == make_chunk(doc_id="a", n=0)
    finally:
        await second.aclose()


async def test_concurrent_writes_share_commits(tantivy_store: TantivyKeywordStore) -> None:
    """Writes made at once are committed together, and each returns only when durable."""
    before = tantivy_store.commits
    await asyncio.gather(
        *(tantivy_store.upsert([make_chunk(doc_id=f"d{i}")]) for i in range(20)),
        *(tantivy_store.delete_document("acme", f"gone{i}") for i in range(10)),
    )
    assert await tantivy_store.count("acme") == 20
    assert tantivy_store.commits - before < 30 / 2


async def test_a_second_process_on_the_index_is_refused(
    tantivy_store: TantivyKeywordStore,
) -> None:
    """Another process opening the same directory gets a ConfigError naming the cause."""
    code = (
        "import sys\n"
        "from stores.tantivy_keywords import TantivyKeywordStore\n"
        "from streams.errors import ConfigError\n"
        "try:\n"
        f"    TantivyKeywordStore(path={str(tantivy_store.path)!r}).open()\n"
        "except ConfigError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "another process" in done.stdout


def test_a_second_store_in_this_process_is_refused(tantivy_store: TantivyKeywordStore) -> None:
    """Opening the same directory twice in one process is the same ConfigError."""
    with pytest.raises(ConfigError, match="another process"):
        TantivyKeywordStore(path=tantivy_store.path).open()


async def test_a_directory_of_another_layout_is_refused(tmp_path: Path) -> None:
    """An index with other fields in the directory is a ConfigError, not a crash."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("body")
    tantivy.Index(builder.build(), path=str(tmp_path))
    with pytest.raises(ConfigError, match="another layout"):
        await TantivyKeywordStore(path=tmp_path).start()


async def test_calls_after_close_are_unavailable(tmp_path: Path) -> None:
    """A closed store raises StoreUnavailableError; closing twice is fine."""
    store = TantivyKeywordStore(path=tmp_path)
    await store.start()
    await store.aclose()
    await store.aclose()
    with pytest.raises(StoreUnavailableError):
        await store.search("acme", "x", top_k=1)
    with pytest.raises(StoreUnavailableError):
        await store.upsert([make_chunk()])


async def test_an_unindexable_chunk_is_rejected(tantivy_store: TantivyKeywordStore) -> None:
    """Metadata that is not JSON (NaN) is a StoreRejectedError, and nothing is written."""
    with pytest.raises(StoreRejectedError):
        await tantivy_store.upsert([make_chunk(metadata={"ratio": float("nan")})])
    assert await tantivy_store.count("acme") == 0


async def test_reindex_copies_the_first_mapping_index(
    elasticsearch_url: str, tmp_path: Path
) -> None:
    """A worker refuses an un-migrated v1 index; ``ragstream reindex`` copies it into v2 (and
    finds no shared Chroma collection to move in a fresh data dir)."""
    prefix = f"test-migrate-{uuid.uuid4().hex[:12]}"
    async with AsyncElasticsearch(elasticsearch_url) as admin:
        await admin.index(
            index=prefix,
            id="acme/a#0",
            document={"tenant": "acme", "doc_id": "a", "n": 0, "start": 0, "title": "",
                      "text": "aerodynamics of wings", "metadata": {}},
            refresh=True,
        )  # fmt: skip
        store = ElasticKeywordStore(
            url=elasticsearch_url, index=chunk_index(prefix), legacy_index=prefix, refresh=True
        )
        try:
            with pytest.raises(ConfigError, match="ragstream reindex"):
                await store.start()
            env = {
                **os.environ,
                "ELASTICSEARCH_URL": elasticsearch_url,
                "ELASTICSEARCH_INDEX_PREFIX": prefix,
                "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never a running dev stack's
                "RAGSTREAM_DATA_DIR": str(tmp_path),  # nor its embedded Chroma
                "KEYWORD_STORE": "elasticsearch",
            }
            done = await run_cli("reindex", env=env, timeout_s=120)
            assert done.returncode == 0, done.stderr
            assert f"copied 1 chunks from {prefix} to {prefix}-v2" in done.stdout
            assert "moved 0 vectors from the shared collection" in done.stdout
            assert await store.reindex_from(prefix) == 0  # idempotent
            await store.start()
            [hit] = await store.search("acme", "aerodynamic", top_k=5)
            assert hit.chunk.doc_id == "a"
        finally:
            await store.aclose()
            for index in (prefix, chunk_index(prefix)):
                await admin.options(ignore_status=404).indices.delete(index=index)
