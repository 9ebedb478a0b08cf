"""The embedded keyword store on tantivy: an on-disk inverted index in the data dir, BM25.

Adapter at the edge of the flow, the embedded twin of ``stores.elastic`` (same contract, same
filters, same English analysis and title boost). One process owns the index: tantivy's writer
holds a lock file, and a second process on the same directory gets a ``ConfigError``.

Durability: every ``upsert``/``delete_document`` returns only after ``IndexWriter.commit()``
(which fsyncs) and a searcher reload, so what the ingest agent acks survives a SIGKILL and is
visible to the next search. Concurrent writes are grouped: calls arriving while a commit runs
are applied together and committed once. Blocking calls run in this store's threads, off the
event loop. Every tantivy exception (a Rust panic included) is translated in ``_translate``.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import tantivy

from schemas.chunks import Chunk, ScoredChunk
from stores.base import METADATA_PREFIX, Filters, check_filters
from stores.keyword_analysis import STOP_WORDS, TIE_BREAKER, TITLE_BOOST
from streams.errors import ConfigError, RagstreamError, StoreRejectedError, StoreUnavailableError

__all__ = ["TantivyKeywordStore", "analyzer"]

_T = TypeVar("_T")
_ANALYZER = "ragstream_en"
_WRITER_HEAP_BYTES = 64_000_000
_READ_THREADS = 4
_MAX_TOKEN_CHARS = 40


def analyzer() -> tantivy.TextAnalyzer:
    """English analysis: words, long tokens dropped, lowercase, stop words, Porter-style stems."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(_MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        # "s": the simple tokenizer splits "John's" in two; Elasticsearch drops the possessive.
        .filter(tantivy.Filter.custom_stopword([*STOP_WORDS, "s"]))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("tenant", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("doc_id", tokenizer_name="raw", index_option="basic")
    builder.add_integer_field("n", indexed=True, fast=True)
    builder.add_text_field("title", tokenizer_name=_ANALYZER, index_option="freq")
    builder.add_text_field("text", tokenizer_name=_ANALYZER, index_option="freq")
    # Exact-match filters: raw strings, numbers by value, booleans apart; "a.b" is a path (as ES).
    builder.add_json_field(
        "metadata", tokenizer_name="raw", index_option="basic", expand_dots_enabled=True
    )
    builder.add_bytes_field("source", stored=True)
    return builder.build()


def _translate(exc: BaseException) -> RagstreamError:
    """Map one tantivy exception to ours (the only place this store does it)."""
    if isinstance(exc, RagstreamError):
        return exc
    message = str(exc)
    if "LockBusy" in message:
        return ConfigError(
            "the embedded keyword index is open in another process (one worker per data dir; "
            "use KEYWORD_STORE=elasticsearch to scale out)"
        )
    if isinstance(exc, ValueError | TypeError | OverflowError):
        return StoreRejectedError(f"tantivy refused the request: {message}")
    return StoreUnavailableError(f"tantivy failed: {exc!r}")


def _document(chunk: Chunk) -> tantivy.Document:
    """The indexed fields of a chunk, plus the whole chunk as stored JSON (types round-trip)."""
    doc = tantivy.Document()
    doc.add_text("id", chunk.id)
    doc.add_text("tenant", chunk.tenant)
    doc.add_text("doc_id", chunk.doc_id)
    doc.add_integer("n", chunk.n)
    doc.add_text("title", chunk.title)
    doc.add_text("text", chunk.text)
    doc.add_json("metadata", chunk.metadata)
    source = {
        "tenant": chunk.tenant,
        "doc_id": chunk.doc_id,
        "n": chunk.n,
        "start": chunk.start,
        "title": chunk.title,
        "text": chunk.text,
        "metadata": chunk.metadata,
    }
    doc.add_bytes("source", json.dumps(source, allow_nan=False).encode())
    return doc


def _chunk(source: bytes) -> Chunk:
    data = json.loads(source)
    return Chunk(
        tenant=data["tenant"],
        doc_id=data["doc_id"],
        n=int(data["n"]),
        text=data["text"],
        title=data["title"],
        metadata=dict(data["metadata"]),
        start=int(data["start"]),
    )


class _Write:
    """One write call: a function of the writer, and the future its caller awaits."""

    __slots__ = ("apply", "done")

    def __init__(self, apply: Callable[[Any], None], done: asyncio.Future[None]) -> None:
        self.apply = apply
        self.done = done


class TantivyKeywordStore:
    """A ``KeywordStore`` on one tantivy index in a directory, owned by this process."""

    def __init__(self, *, path: str | Path, title_boost: float = TITLE_BOOST) -> None:
        self.path = Path(path)
        self._title_boost = float(title_boost)
        self._schema = _schema()
        self._analyzer = analyzer()
        self._index: Any = None
        self._writer: Any = None
        self._reads = ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="tantivy-read")
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="tantivy-write")
        self._pending: list[_Write] = []
        self._flusher: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False
        self.commits = 0
        """How many commits this store made (each one fsyncs): writes per commit is the gain."""

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, executor: ThreadPoolExecutor, fn: Callable[..., _T], *args: Any) -> _T:
        """Run one blocking call in our threads, translating whatever it raises."""
        if self._closed:
            raise StoreUnavailableError("tantivy keyword store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, functools.partial(fn, *args))
        except RagstreamError:
            raise
        except BaseException as exc:  # a Rust panic is a BaseException (pyo3 PanicException)
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            raise _translate(exc) from exc

    def open(self) -> None:
        """Open or create the index and take its writer lock, now (blocking); idempotent.

        The worker calls it before its event loop runs, so a second process on the same
        directory refuses to start (``ConfigError``) instead of failing later.
        """
        if self._closed:
            raise StoreUnavailableError("tantivy keyword store is closed")
        try:
            self._open()
        except RagstreamError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc

    def _open(self) -> None:
        if self._writer is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            index = tantivy.Index(self._schema, path=str(self.path), reuse=True)
        except ValueError as exc:
            if "schema does not match" not in str(exc):
                raise
            raise ConfigError(
                f"{self.path} holds a keyword index of another layout: move it away and "
                "re-ingest (or point KEYWORD_PATH elsewhere)"
            ) from exc
        index.register_tokenizer(_ANALYZER, self._analyzer)
        self._writer = index.writer(heap_size=_WRITER_HEAP_BYTES, num_threads=1)
        index.reload()
        self._index = index

    async def start(self) -> None:
        """Open (or create) the index in ``path`` and take its writer lock; idempotent."""
        async with self._start_lock:
            if self._index is None:
                await self._run(self._writes, self._open)

    def _searcher(self) -> Any:
        if self._index is None:
            raise StoreUnavailableError("tantivy keyword store is not started")
        return self._index.searcher()

    # -- writes: grouped, committed before they return --------------------------------------

    async def _write(self, apply: Callable[[Any], None]) -> None:
        """Queue one write; return once a commit holding it is durable and searchable."""
        if self._closed:
            raise StoreUnavailableError("tantivy keyword store is closed")
        if self._index is None:
            raise StoreUnavailableError("tantivy keyword store is not started")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(apply, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="tantivy-commit")
        await asyncio.shield(done)

    async def _flush(self) -> None:
        """Apply every queued write and commit once, until the queue is empty."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._run(self._writes, self._commit, [w.apply for w in batch])
            except asyncio.CancelledError:
                for write in batch:  # the commit may still finish: its outcome is unknown
                    write.done.cancel()
                raise
            except BaseException as exc:
                for write in batch:
                    if not write.done.done():
                        write.done.set_exception(exc)
            else:
                for write in batch:
                    if not write.done.done():
                        write.done.set_result(None)

    def _commit(self, applies: list[Callable[[Any], None]]) -> None:
        """In the writer thread: apply, commit (fsync), make it visible; roll back on failure."""
        writer = self._writer
        try:
            for apply in applies:
                apply(writer)
            writer.commit()
        except BaseException:
            writer.rollback()
            raise
        self.commits += 1
        self._index.reload()

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Replace chunks by id (delete the id's term, add the new version), one commit."""
        if not chunks:
            return
        try:
            docs = [(chunk.id, _document(chunk)) for chunk in chunks]
        except (ValueError, TypeError) as exc:
            raise StoreRejectedError(f"chunk cannot be indexed: {exc}") from exc

        def apply(writer: Any) -> None:
            for chunk_id, doc in docs:
                writer.delete_documents_by_term("id", chunk_id)
                writer.add_document(doc)

        await self._write(apply)

    async def delete_document(self, tenant: str, doc_id: str, *, keep: int = 0) -> None:
        """Delete the document's chunks with ``n >= keep``."""
        clauses = self._filters(tenant, doc_id, {})
        if keep > 0:
            clauses.append(
                tantivy.Query.range_query(
                    self._schema, "n", tantivy.FieldType.Integer, lower_bound=keep
                )
            )
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in clauses])
        await self._write(lambda writer: writer.delete_documents_by_query(query))

    # -- reads ------------------------------------------------------------------------------

    def _filters(self, tenant: str, doc_id: str | None, filters: Filters) -> list[Any]:
        """Tenant first, then the document and the exact-match filters, as term queries."""
        term = functools.partial(tantivy.Query.term_query, self._schema)
        clauses = [term("tenant", tenant)]
        if doc_id is not None:
            clauses.append(term("doc_id", doc_id))
        for key, value in filters.items():
            if key == "doc_id":
                clauses.append(term("doc_id", str(value)))
            else:
                name = key.removeprefix(METADATA_PREFIX)
                clauses.append(term(f"metadata.{name}", value))
        return clauses

    def _match(self, field: str, tokens: Sequence[str]) -> Any:
        """A ``match`` query: one optional BM25 term per query token (repeats count again)."""
        terms = [
            (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, field, token, "freq"))
            for token in tokens
        ]
        return tantivy.Query.boolean_query(terms)

    def query(self, tenant: str, text: str, filters: Filters) -> Any | None:
        """The search query, or None when the text has no searchable term (all stop words).

        Like the Elasticsearch adapter: the better field (text, or title boosted) plus
        ``TIE_BREAKER`` times the other; the tenant and filters are scoreless required clauses.
        """
        tokens = self._analyzer.analyze(text)
        if not tokens:
            return None
        scoring = tantivy.Query.disjunction_max_query(
            [
                self._match("text", tokens),
                tantivy.Query.boost_query(self._match("title", tokens), self._title_boost),
            ],
            TIE_BREAKER,
        )
        required = [
            (tantivy.Occur.Must, tantivy.Query.const_score_query(q, 0.0))
            for q in self._filters(tenant, None, filters)
        ]
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, scoring), *required])

    def _search_sync(self, tenant: str, text: str, top_k: int, filters: Filters) -> list[Any]:
        query = self.query(tenant, text, filters)
        if query is None:
            return []
        searcher = self._searcher()
        hits = searcher.search(query, top_k, count=False).hits
        return [
            ScoredChunk(_chunk(searcher.doc(address).get_first("source")), float(score))
            for score, address in hits
        ]

    async def search(
        self,
        tenant: str,
        query: str,
        *,
        top_k: int,
        filters: Filters = {},  # noqa: B006 - read-only Mapping default
    ) -> list[ScoredChunk]:
        """BM25 on text and title (boosted), English analysis, tenant and filters required."""
        check_filters(filters)
        if top_k <= 0 or not query.strip():
            return []
        return await self._run(self._reads, self._search_sync, tenant, query, top_k, filters)

    def _count_sync(self, tenant: str, doc_id: str | None) -> int:
        clauses = self._filters(tenant, doc_id, {})
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in clauses])
        return int(self._searcher().search(query, 1, count=True).count)

    async def count(self, tenant: str, doc_id: str | None = None) -> int:
        """How many chunks the tenant (or one of its documents) has."""
        return await self._run(self._reads, self._count_sync, tenant, doc_id)

    async def ping(self) -> None:
        """Open a searcher on the index: raises ``StoreUnavailableError`` if it cannot."""
        await self._run(self._reads, lambda: self._searcher().num_docs)

    # -- lifecycle --------------------------------------------------------------------------

    def _release(self) -> None:
        """In the writer thread: finish merges and drop the writer, which frees the lock."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.wait_merging_threads()

    async def aclose(self) -> None:
        """Wait for queued writes, release the writer lock, stop the threads; idempotent."""
        if self._closed:
            return
        if self._flusher is not None and not self._flusher.done():
            await asyncio.gather(self._flusher, return_exceptions=True)
        try:
            await self._run(self._writes, self._release)
        finally:
            self._closed = True
            self._index = None
            self._reads.shutdown(wait=False, cancel_futures=True)
            self._writes.shutdown(wait=True)
