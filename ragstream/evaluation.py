"""``ragstream eval``'s engine: a BEIR collection in, per-mode retrieval quality and latency out.

Reads a test collection in the BEIR layout (``corpus.jsonl``, ``queries.jsonl``,
``qrels/<split>.tsv``), ingests it over the topics into a scratch tenant with ``IngestClient``
(the running worker chunks, embeds and indexes it as any producer's documents), waits for every
result and until the stores answer for it, then runs every judged query in each mode over the
topics with ``SearchClient`` (bounded concurrency) and scores the rankings with
``ragstream.ir_metrics``. Chunk hits become document rankings by their first occurrence. The
scratch tenant's documents are deleted at the end unless asked to keep them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ragstream.ir_metrics import dedupe, mean, mrr_at, ndcg_at, percentile, recall_at
from schemas.document import DocumentDelete, DocumentUpsert
from schemas.search import SearchResult
from streams.client import IngestClient, SearchClient
from streams.errors import RagstreamError
from streams.settings import KafkaSettings

__all__ = [
    "MODES",
    "Collection",
    "CollectionError",
    "EvalReport",
    "ModeReport",
    "Progress",
    "load_collection",
    "run_eval",
    "score_mode",
]

MODES = ("vector", "keyword", "hybrid")
TIMING_KEYS = ("embed", "vector", "keyword", "fuse", "total")
_TITLE_MAX = 1000


class CollectionError(ValueError):
    """The directory is not a readable BEIR collection (the message says where and why)."""


@dataclass(frozen=True)
class Collection:
    """A BEIR collection: documents, the judged queries, and their judgements."""

    corpus: list[tuple[str, str, str]]
    """(id, title, text) in file order."""
    queries: dict[str, str]
    """Query id to text, only queries with at least one judgement."""
    qrels: dict[str, dict[str, int]]
    """Query id to (document id to grade)."""


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise CollectionError(f"{path} is missing")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise CollectionError(f"{path}:{n}: not JSON ({exc})") from exc
            if not isinstance(row, dict) or not isinstance(row.get("_id"), str | int):
                raise CollectionError(f"{path}:{n}: expected an object with an '_id'")
            rows.append(row)
    return rows


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise CollectionError(f"{path} is missing")
    out: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            cells = line.rstrip("\n").split("\t")
            if not line.strip() or (n == 1 and cells[0] == "query-id"):
                continue
            if len(cells) != 3:
                raise CollectionError(f"{path}:{n}: expected query-id, corpus-id, score (tabs)")
            try:
                grade = int(cells[2])
            except ValueError as exc:
                raise CollectionError(f"{path}:{n}: score {cells[2]!r} is not an integer") from exc
            out.setdefault(cells[0], {})[cells[1]] = grade
    return out


def load_collection(
    root: Path, *, split: str = "test", max_queries: int | None = None
) -> Collection:
    """Read and check a BEIR directory; only judged queries are kept (at most ``max_queries``)."""
    if not root.is_dir():
        raise CollectionError(f"{root} is not a directory")
    corpus = []
    ids: set[str] = set()
    for row in _jsonl(root / "corpus.jsonl"):
        doc_id = str(row["_id"])
        if doc_id in ids:
            raise CollectionError(f"{root / 'corpus.jsonl'}: document id {doc_id!r} is repeated")
        ids.add(doc_id)
        title = str(row.get("title") or "")[:_TITLE_MAX]
        text = str(row.get("text") or "").strip() or title
        if text.strip():
            corpus.append((doc_id, title, text))
    if not corpus:
        raise CollectionError(f"{root / 'corpus.jsonl'} has no document with text")
    texts = {str(r["_id"]): str(r.get("text") or "") for r in _jsonl(root / "queries.jsonl")}
    qrels = _qrels(root / "qrels" / f"{split}.tsv")
    judged = [q for q in texts if q in qrels and texts[q].strip()]
    if max_queries is not None:
        judged = judged[:max_queries]
    if not judged:
        raise CollectionError(f"no query in {root / 'queries.jsonl'} has judgements in {split}")
    return Collection(
        corpus=corpus,
        queries={q: texts[q] for q in judged},
        qrels={q: qrels[q] for q in judged},
    )


class Progress(Protocol):
    """Where the run reports its phases (the CLI draws progress bars)."""

    def phase(self, name: str, total: int) -> None:
        """A new phase of ``total`` steps starts."""

    def advance(self, steps: int = 1) -> None:
        """Steps of the current phase are done."""


class _Silent:
    def phase(self, name: str, total: int) -> None:
        return None

    def advance(self, steps: int = 1) -> None:
        return None


@dataclass
class ModeReport:
    """One mode's quality (means over the judged queries) and latency."""

    mode: str
    queries: int
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    timings_ms: dict[str, float]
    """Mean of each ``timings_ms`` key over the replies that had it."""
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class EvalReport:
    """The whole run."""

    collection: str
    tenant: str
    documents: int
    queries: int
    top_k: int
    concurrency: int
    ingest: dict[str, Any]
    modes: list[ModeReport]
    kept: bool

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return asdict(self)


@dataclass
class _Answer:
    ranked: list[str]
    latency_ms: float
    status: str
    timings: dict[str, float]


def score_mode(mode: str, coll: Collection, answers: dict[str, _Answer]) -> ModeReport:
    """Metrics and latency of one mode's answers (a query without an answer scores 0)."""
    per_query = {}
    for qid, judged in coll.qrels.items():
        ranked = answers[qid].ranked if qid in answers else []
        per_query[qid] = {
            "ndcg@10": ndcg_at(ranked, judged, 10),
            "recall@100": recall_at(ranked, judged, 100),
            "mrr@10": mrr_at(ranked, judged, 10),
        }
    latencies = [a.latency_ms for a in answers.values() if a.status != "error"]
    timings = {
        key: round(mean(vals), 3)
        for key in TIMING_KEYS
        if (vals := [a.timings[key] for a in answers.values() if key in a.timings])
    }
    return ModeReport(
        mode=mode,
        queries=len(coll.qrels),
        ndcg_at_10=mean([m["ndcg@10"] for m in per_query.values()]),
        recall_at_100=mean([m["recall@100"] for m in per_query.values()]),
        mrr_at_10=mean([m["mrr@10"] for m in per_query.values()]),
        p50_ms=round(percentile(latencies, 50), 2),
        p99_ms=round(percentile(latencies, 99), 2),
        statuses=dict(Counter(a.status for a in answers.values())),
        timings_ms=timings,
        per_query=per_query,
    )


def _answer(result: SearchResult, latency_ms: float) -> _Answer:
    timings = result.timings_ms.model_dump(exclude_none=True) if result.timings_ms else {}
    return _Answer(dedupe([h.doc_id for h in result.hits]), latency_ms, result.status, timings)


async def _ingest(
    client: IngestClient, coll: Collection, tenant: str, timeout_s: float, progress: Progress
) -> dict[str, Any]:
    progress.phase("ingesting", len(coll.corpus))
    started = time.perf_counter()
    futures = []
    for doc_id, title, text in coll.corpus:
        doc = DocumentUpsert(id=doc_id, tenant=tenant, title=title, text=text)
        futures.append(await client.submit(doc))
    statuses: Counter[str] = Counter()
    chunks = 0
    rejected: list[str] = []
    searchable: list[tuple[str, str, str]] = []
    try:
        async with asyncio.timeout(timeout_s):
            for row, future in zip(coll.corpus, futures, strict=True):
                doc_id = row[0]
                result = await future
                statuses[result.status] += 1
                if result.status in ("indexed", "unchanged"):
                    searchable.append(row)
                chunks += result.chunks
                if result.status == "rejected" and len(rejected) < 10:
                    detail = result.error.message if result.error else "?"
                    rejected.append(f"{doc_id}: {detail}")
                progress.advance()
    except TimeoutError:
        raise RagstreamError(
            f"ingest results did not all arrive within {timeout_s}s "
            f"({sum(statuses.values())} of {len(futures)})",
            code="timeout",
        ) from None
    wall = time.perf_counter() - started
    return {
        "statuses": dict(statuses),
        "chunks": chunks,
        "seconds": round(wall, 2),
        "docs_per_s": round(len(futures) / wall, 1),
        "rejected": rejected,
        "_probes": searchable[-3:] + searchable[:1],
    }


async def _wait_searchable(
    client: SearchClient,
    probes: Sequence[tuple[str, str, str]],
    tenant: str,
    modes: Sequence[str],
    timeout_s: float,
) -> None:
    """Until sample documents (the last ones indexed, and the first) are found in each store."""
    deadline = time.monotonic() + timeout_s
    for doc_id, title, text in probes:
        query = (title + " " + text)[:300]
        for mode in [m for m in modes if m != "hybrid"] or ["hybrid"]:
            while True:
                result = await client.search(
                    query, tenant=tenant, top_k=1, mode=mode, filters={"doc_id": doc_id}
                )
                if result.hits:
                    break
                if time.monotonic() > deadline:
                    raise RagstreamError(
                        f"document {doc_id!r} is indexed but {mode} search does not find it "
                        f"after {timeout_s}s",
                        code="timeout",
                    )
                await asyncio.sleep(0.2)


async def _run_mode(
    client: SearchClient,
    coll: Collection,
    tenant: str,
    mode: str,
    *,
    top_k: int,
    concurrency: int,
    timeout_s: float,
    progress: Progress,
) -> dict[str, _Answer]:
    progress.phase(f"searching ({mode})", len(coll.queries))
    gate = asyncio.Semaphore(concurrency)
    answers: dict[str, _Answer] = {}

    async def one(qid: str, text: str) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                result = await client.search(
                    text, tenant=tenant, top_k=top_k, mode=mode, timeout_s=timeout_s
                )
                answers[qid] = _answer(result, (time.perf_counter() - started) * 1000)
            except RagstreamError:
                answers[qid] = _Answer([], (time.perf_counter() - started) * 1000, "error", {})
            progress.advance()

    await asyncio.gather(*(one(q, t) for q, t in coll.queries.items()))
    return answers


async def _delete(
    client: IngestClient, coll: Collection, tenant: str, timeout_s: float, progress: Progress
) -> None:
    progress.phase("deleting the scratch tenant", len(coll.corpus))
    futures = [
        await client.submit(DocumentDelete(op="delete", id=doc_id, tenant=tenant))
        for doc_id, *_ in coll.corpus
    ]
    async with asyncio.timeout(timeout_s):
        for future in futures:
            await future
            progress.advance()


async def run_eval(
    kafka: KafkaSettings,
    coll: Collection,
    *,
    collection_name: str,
    tenant: str,
    modes: Sequence[str] = MODES,
    top_k: int = 100,
    concurrency: int = 4,
    search_timeout_s: float = 30.0,
    ingest_timeout_s: float = 3600.0,
    keep: bool = False,
    token: str | None = None,
    api_key: str | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Ingest, search in every mode, score; delete the tenant's documents unless ``keep``."""
    progress = progress or _Silent()
    async with (
        IngestClient(kafka, token=token, api_key=api_key) as ingest,
        SearchClient(kafka, token=token, api_key=api_key) as search,
    ):
        try:
            ingested = await _ingest(ingest, coll, tenant, ingest_timeout_s, progress)
            probes = ingested.pop("_probes")
            await _wait_searchable(search, probes, tenant, modes, timeout_s=120)
            reports = []
            for mode in modes:
                answers = await _run_mode(
                    search,
                    coll,
                    tenant,
                    mode,
                    top_k=top_k,
                    concurrency=concurrency,
                    timeout_s=search_timeout_s,
                    progress=progress,
                )
                reports.append(score_mode(mode, coll, answers))
        finally:
            if not keep:
                await _delete(ingest, coll, tenant, ingest_timeout_s, progress)
    return EvalReport(
        collection=collection_name,
        tenant=tenant,
        documents=len(coll.corpus),
        queries=len(coll.queries),
        top_k=top_k,
        concurrency=concurrency,
        ingest=ingested,
        modes=reports,
        kept=keep,
    )
