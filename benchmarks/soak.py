"""Chaos soak: mixed load on 2+ workers while a seeded schedule injects faults and kills.

    python benchmarks/soak.py --minutes 10 [--seed 1] [--workers 2]     (make soak)

Every dependency of the workers (Kafka, Elasticsearch, Chroma, the embeddings server,
PostgreSQL) sits behind a ``tests.faultproxy.FaultProxy``; Tansu advertises its proxy's port
so the Kafka clients reconnect through it. Load: documents (new, updated, several versions
of one id, deletes) and bad messages of every kind, plus searches in all three modes. The
schedule (``random.Random(seed)``) switches faults on and off on every proxy and SIGKILLs and
restarts workers. At the end, every fault healed, it checks what the module ``check`` lists
and prints the table; the exit code is 1 if any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from ragstream import devstack
from ragstream.runtime import collection_name
from schemas.chunks import chunk_id
from schemas.document import DocumentDelete, DocumentUpsert
from schemas.headers import Headers
from services.embedding import build_embedder
from services.indexing import content_hash
from sqlalchemy.engine import make_url
from stores.catalog import SqlCatalog
from stores.chroma import ChromaVectorStore
from stores.elastic import ElasticKeywordStore, chunk_index
from streams.client import SearchClient
from streams.codec import encode
from streams.errors import RagstreamError, RemoteError, RequestTimeoutError
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.faultproxy import FaultProxy

from benchmarks.fleet import FleetWorker, base_env, log_events

__all__ = ["Soak", "main", "run_soak"]

TENANT = "soak"
MAX_MESSAGE_BYTES = 65536
MAX_TEXT_CHARS = 20000
SEARCH_TIMEOUT_S = 60.0
FAULTS = ("latency", "bandwidth", "reset", "blackhole", "close_after_bytes")


def _bad_messages(n: int) -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(kind, key, value, expected error code): one of each kind of bad message."""
    doc = {"schema": "ragstream.document.v1", "op": "upsert", "tenant": TENANT, "text": "x y z"}

    def body(**changes: Any) -> bytes:
        return json.dumps({**doc, **changes}).encode()

    i = f"bad-{n}"
    return [
        ("tombstone", i.encode(), None, "malformed_json"),
        ("not-json", i.encode(), b"{nope", "malformed_json"),
        ("not-utf8", i.encode(), b"\xff\xfe\xfa", "malformed_json"),
        ("not-an-object", i.encode(), b"[1, 2]", "malformed_json"),
        ("no-schema", i.encode(), json.dumps({"id": i, "op": "upsert"}).encode(), "invalid_schema"),
        (
            "unknown-schema",
            i.encode(),
            body(id=i, schema="ragstream.document.v9"),
            "unknown_schema",
        ),
        ("bad-op", i.encode(), body(id=i, op="merge"), "invalid_schema"),
        ("unknown-field", i.encode(), body(id=i, colour="red"), "invalid_schema"),
        ("blank-text", i.encode(), body(id=i, text="  \n "), "invalid_schema"),
        ("nested-metadata", i.encode(), body(id=i, metadata={"a": {"b": 1}}), "invalid_schema"),
        ("key-not-id", b"other", body(id=i), "invalid_schema"),
        ("too-large", i.encode(), body(id=i, text="w " * MAX_MESSAGE_BYTES), "too_large"),
        ("text-too-long", i.encode(), body(id=i, text="t" * (MAX_TEXT_CHARS + 1)), "too_large"),
    ]


@dataclass
class Soak:
    """Everything counted during a run."""

    produced: dict[str, tuple[str, Any]] = field(default_factory=dict)  # corr -> (kind, detail)
    last: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # doc -> (op, rev, corr)
    texts: dict[str, DocumentUpsert] = field(default_factory=dict)  # corr -> upsert sent
    bad: dict[str, str] = field(default_factory=dict)  # corr -> expected code
    searches: Counter[str] = field(default_factory=Counter)
    search_sent: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    deaths: list[str] = field(default_factory=list)
    rss_peak_mb: float = 0.0
    failures: list[str] = field(default_factory=list)
    table: dict[str, Any] = field(default_factory=dict)
    # Each search without a reply: (correlation id or "", mode, sent at, error), times UTC.
    unanswered: list[tuple[str, str, datetime, str]] = field(default_factory=list)
    timeline: list[tuple[datetime, str]] = field(default_factory=list)  # faults and kills
    diagnosis: str = ""


def _now() -> datetime:
    return datetime.now(UTC)


def _doc_text(doc: str, rev: int, rng: random.Random) -> str:
    sentence = f"Document {doc} revision r{rev}x{doc.replace('-', '')} keeps its chunks honest. "
    return sentence * rng.randint(1, 12)


async def _produce_docs(
    producer: AIOKafkaProducer, topic: str, soak: Soak, rng: random.Random, stop: asyncio.Event
) -> None:
    """One message at a time (so the order per key is the order sent), retried until sent."""
    ids = [f"doc-{i:02d}" for i in range(30)]
    revs: Counter[str] = Counter()
    for n in itertools.count():
        if stop.is_set():
            return
        corr = uuid.uuid4().hex
        roll = rng.random()
        key: bytes | None
        value: bytes | None
        if roll < 0.12:
            kind, key, value, code = rng.choice(_bad_messages(n))
            soak.bad[corr] = code
            soak.produced[corr] = ("bad", kind)
        else:
            doc = rng.choice(ids[:8] if rng.random() < 0.5 else ids)  # some ids get many versions
            key = doc.encode()
            message: DocumentUpsert | DocumentDelete
            if roll < 0.25 and doc in soak.last:
                message = DocumentDelete(op="delete", id=doc, tenant=TENANT)
            else:
                revs[doc] += 1
                message = DocumentUpsert(
                    id=doc,
                    tenant=TENANT,
                    text=_doc_text(doc, revs[doc], rng),
                    metadata={"rev": revs[doc]},
                )
                soak.texts[corr] = message
            value = encode(message)
        headers = [(Headers.CORRELATION_ID, corr.encode())]
        while True:
            try:
                await producer.send_and_wait(topic, value, key=key, headers=headers)
                break
            except Exception as exc:  # a Kafka fault: send it again (a duplicate is harmless)
                print(f"  produce retry: {type(exc).__name__}", flush=True)
                await asyncio.sleep(0.5)
        if corr not in soak.bad:
            doc_id = key.decode() if key else ""
            op = "delete" if isinstance(message, DocumentDelete) else "upsert"
            soak.last[doc_id] = (op, revs[doc_id], corr)
            soak.produced[corr] = (op, doc_id)
        await asyncio.sleep(rng.uniform(0.05, 0.3))  # the load's pace


async def _search(
    client: SearchClient, soak: Soak, rng: random.Random, stop: asyncio.Event
) -> None:
    for n in itertools.count():
        if stop.is_set():
            return
        mode = ("hybrid", "keyword", "vector")[n % 3]
        soak.search_sent += 1
        sent_at = _now()
        try:
            result = await client.search(
                rng.choice(["chunks honest", "revision document", "keeps"]),
                tenant=TENANT,
                mode=mode,
                timeout_s=SEARCH_TIMEOUT_S,
            )
            soak.searches[result.status] += 1
        except RemoteError as exc:
            soak.searches[f"error:{exc.code}"] += 1
        except RequestTimeoutError as exc:
            soak.searches["no reply"] += 1
            soak.unanswered.append((exc.correlation_id or "", mode, sent_at, str(exc)))
        except RagstreamError as exc:
            soak.searches[f"client:{exc.code}"] += 1
            soak.unanswered.append(("", mode, sent_at, f"{type(exc).__name__}: {exc}"))
        await asyncio.sleep(rng.uniform(0.2, 1.0))  # the load's pace


async def _chaos(
    proxies: dict[str, FaultProxy],
    workers: list[FleetWorker],
    soak: Soak,
    rng: random.Random,
    stop: asyncio.Event,
) -> None:
    """Faults on random proxies, and now and then a SIGKILL and restart of a worker."""
    next_kill = time.monotonic() + rng.uniform(15, 30)
    while not stop.is_set():
        name = rng.choice(sorted(proxies))
        kind = rng.choice(FAULTS)
        proxy = proxies[name]
        setting: dict[str, Any] = {
            "latency": {"latency_s": rng.uniform(0.1, 1.0)},
            "bandwidth": {"bandwidth_bps": rng.choice([20_000, 100_000])},
            "reset": {"reset": True},
            "blackhole": {"blackhole": True},
            "close_after_bytes": {"close_after_bytes": rng.choice([100, 2000, 20000])},
        }[kind]
        proxy.set(**setting)
        soak.faults[f"{name}:{kind}"] += 1
        soak.timeline.append((_now(), f"fault {name}:{kind} {setting}"))
        await asyncio.sleep(rng.uniform(0.5, 3.0) if name == "kafka" else rng.uniform(1, 5))
        proxy.heal()
        soak.timeline.append((_now(), f"healed {name}"))
        if time.monotonic() > next_kill:
            victim = rng.choice(workers)
            victim.kill()
            soak.kills += 1
            soak.timeline.append((_now(), f"SIGKILL {victim.name}"))
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            victim.start()
            soak.timeline.append((_now(), f"restarted {victim.name}"))
            next_kill = time.monotonic() + rng.uniform(15, 30)
        await asyncio.sleep(rng.uniform(0.5, 3.0))  # calm between faults


async def _watch(
    workers: list[FleetWorker], soak: Soak, stop: asyncio.Event, max_rss: float
) -> None:
    """Unexpected deaths (restarted, and counted) and RSS peaks."""
    while not stop.is_set():
        for w in workers:
            if w.process is not None and w.process.poll() is not None:
                code = w.process.returncode
                if code != -9:  # -9: our SIGKILL, restarted by _chaos
                    soak.deaths.append(f"{w.name} exited {code}")
                    w.start()
            rss = w.rss_mb()
            soak.rss_peak_mb = max(soak.rss_peak_mb, rss)
            if rss > max_rss:
                soak.failures.append(f"{w.name} RSS {rss:.0f} MiB > {max_rss:.0f}")
        await asyncio.sleep(1)


async def _read_topic(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


def _header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


async def _settle(bootstrap: str, topics: Any, soak: Soak, timeout_s: float) -> dict[str, Any]:
    """Wait until every produced message has its result; return results by correlation id."""
    deadline = time.monotonic() + timeout_s
    while True:
        results: dict[str, Any] = {}
        for r in await _read_topic(bootstrap, topics.ingest_results):
            body = json.loads(r.value)
            results.setdefault(body.get("correlation_id"), body)  # first result
        missing = [c for c in soak.produced if c not in results]
        if not missing or time.monotonic() > deadline:
            return results
        await asyncio.sleep(2)  # poll interval, bounded by the deadline


async def _check_stores(
    settings: Settings, soak: Soak, results: dict[str, Any], model: str, es_url: str
) -> dict[str, int]:
    """Each document's final state in both stores and the catalog; duplicates and orphans."""
    counts = Counter[str]()
    prefix = settings.kafka.topic_prefix
    keywords = ElasticKeywordStore(
        url=es_url, index=chunk_index(settings.elasticsearch.index_prefix)
    )
    vectors = ChromaVectorStore(collection=collection_name(prefix, model), url=settings.chroma.url)
    catalog = SqlCatalog.from_settings(settings)
    await asyncio.gather(keywords.start(), vectors.start(), catalog.start())
    expected_total = 0
    try:
        async with httpx.AsyncClient(base_url=es_url, timeout=30) as http:
            for doc, (op, rev, corr) in sorted(soak.last.items()):
                if corr not in results:  # its last message is not processed yet: no verdict
                    counts["documents not settled"] += 1
                    expected_total = -(10**9)  # no tenant totals either
                    continue
                es_n, vec_n = await keywords.count(TENANT, doc), await vectors.count(TENANT, doc)
                record = await catalog.get(TENANT, doc)
                if op == "delete":
                    if es_n or vec_n or record is not None:
                        soak.failures.append(f"{doc}: deleted, still {es_n}/{vec_n}/{record}")
                        counts["orphan chunks"] += es_n + vec_n
                    continue
                want = int(results.get(corr, {}).get("chunks", -1))
                expected_total += want
                query = {
                    "bool": {
                        "filter": [
                            {"term": {"tenant": TENANT}},
                            {"term": {"doc_id": doc}},
                            {"term": {"metadata.rev": rev}},
                        ]
                    }
                }
                index = chunk_index(settings.elasticsearch.index_prefix)
                current = (await http.post(f"/{index}/_count", json={"query": query})).json()
                es_rev = int(current["count"])
                # Chunks are numbered from 0: the document's ids up to what either count saw.
                ids = [chunk_id(TENANT, doc, n) for n in range(max(want, vec_n, 0))]
                vec_rev = sum(
                    1 for c in await vectors.get(TENANT, ids) if c.metadata.get("rev") == rev
                )
                digest = content_hash(
                    soak.texts[corr],
                    model=model,
                    chunk_size=settings.ingest.chunk_size,
                    chunk_overlap=settings.ingest.chunk_overlap,
                )
                ok = (
                    es_n == vec_n == es_rev == vec_rev == want
                    and record is not None
                    and record.content_hash == digest
                    and record.chunk_count == want
                )
                if not ok:
                    soak.failures.append(
                        f"{doc} r{rev}: want {want} chunks; es {es_n} (r{rev}: {es_rev}), "
                        f"chroma {vec_n} (r{rev}: {vec_rev}), catalog {record}"
                    )
                counts["duplicate chunks"] += max(es_n - want, 0) + max(vec_n - want, 0)
            if expected_total < 0:
                return dict(counts)  # unsettled documents: "lost" already fails the run
            es_total, vec_total = await keywords.count(TENANT), await vectors.count(TENANT)
            counts["orphan chunks"] += max(es_total - expected_total, 0)
            counts["orphan chunks"] += max(vec_total - expected_total, 0)
            if es_total != expected_total or vec_total != expected_total:
                soak.failures.append(
                    f"tenant totals: want {expected_total}, es {es_total}, chroma {vec_total}"
                )
    finally:
        await asyncio.gather(keywords.aclose(), vectors.aclose(), catalog.aclose())
    return dict(counts)


async def run_soak(
    *,
    seconds: float,
    seed: int,
    workers: int,
    services: dict[str, str],
    root: Path,
    max_rss_mb: float = 2048,
    settle_s: float = 600,
) -> Soak:
    """The soak against ES, Chroma, embeddings and PostgreSQL URLs in ``services``; it starts
    its own Tansu (advertising its proxy's port). Returns what it counted (``failures`` empty
    when every check passed)."""
    rng = random.Random(seed)
    soak = Soak()

    def upstream(url: str) -> tuple[str, int]:
        parts = httpx.URL(url)
        return parts.host, int(parts.port or 80)

    kafka_port = devstack.free_port()
    proxies = {
        "kafka": FaultProxy("127.0.0.1", kafka_port),
        "elasticsearch": FaultProxy(*upstream(services["elasticsearch"])),
        "chroma": FaultProxy(*upstream(services["chroma"])),
        "embeddings": FaultProxy(*upstream(services["embeddings"])),
        "postgres": FaultProxy(*_pg_upstream(services["postgres"])),
    }
    for proxy in proxies.values():
        await proxy.start()
    kafka = await asyncio.to_thread(
        devstack.start_kafka,
        port=kafka_port,
        data_dir=root / "kafka",
        advertised_port=proxies["kafka"].port,
    )
    fleet: list[FleetWorker] = []
    stop = asyncio.Event()
    try:
        env = base_env(
            kafka=proxies["kafka"].address,
            elasticsearch=f"http://{proxies['elasticsearch'].address}",
            chroma=f"http://{proxies['chroma'].address}",
            embeddings=f"http://{proxies['embeddings'].address}",
            data_dir=root / "workers",
            partitions=4,
            database_url=_through(services["postgres"], proxies["postgres"].address),
        )
        env |= {
            "KAFKA_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
            "INGEST_MAX_TEXT_CHARS": str(MAX_TEXT_CHARS),
            "INGEST_BATCH_MAX": "8",
            # Generous for a loaded 2-core machine: a slow answer is not the fault under test.
            "OPENAI_TIMEOUT_S": "30",
            "EMBEDDING_BATCH_SIZE": "8",
            **{
                f"BREAKER_{name}_{knob}": value
                for name in ("OPENAI", "VECTORDB", "ELASTICSEARCH")
                for knob, value in (
                    ("FAIL_MAX", "3"),
                    ("RESET_TIMEOUT_S", "3"),
                    ("CALL_TIMEOUT_S", "45"),
                )
            },
        }
        settings = _settings(env)
        topics = await ensure_topics(settings.kafka)
        embedder = build_embedder(settings)  # its name (the collection's) needs its dimensions
        await embedder.start()
        model = embedder.name
        await embedder.aclose()
        fleet = [
            FleetWorker(env, name=f"soak-w{i}", log_path=root / f"soak-w{i}.log").start()
            for i in range(workers)
        ]
        bootstrap = proxies["kafka"].address
        async with SearchClient(settings.kafka) as client:
            await _ready(client, fleet)
            started = time.monotonic()
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap, acks="all", request_timeout_ms=30_000
            )
            await producer.start()
            try:
                load = [
                    asyncio.create_task(_produce_docs(producer, topics.documents, soak, rng, stop)),
                    *(
                        asyncio.create_task(_search(client, soak, random.Random(seed + i), stop))
                        for i in range(3)
                    ),
                ]
                chaos = asyncio.create_task(_chaos(proxies, fleet, soak, rng, stop))
                watch = asyncio.create_task(_watch(fleet, soak, stop, max_rss_mb))
                await asyncio.sleep(seconds)  # the soak's length
                stop.set()
                await chaos
                for proxy in proxies.values():
                    proxy.heal()
                await asyncio.gather(*load)
            finally:
                await producer.stop()
            results = await _settle(bootstrap, topics, soak, settle_s)
            await watch
        lost = [c for c in soak.produced if c not in results]
        dead = {}
        for r in await _read_topic(bootstrap, topics.dead_letters):
            corr = _header(r, Headers.CORRELATION_ID)
            if corr:
                dead[corr] = _header(r, Headers.ERROR_CODE)
        wrong_code = {c: (want, dead.get(c)) for c, want in soak.bad.items() if dead.get(c) != want}
        not_rejected = [
            c
            for c in soak.bad
            if results.get(c, {}).get("status") != "rejected"
            or (results.get(c, {}).get("error") or {}).get("code") != soak.bad[c]
        ]
        stored = await _check_stores(settings, soak, results, model, services["elasticsearch"])
        for w in fleet:
            if not w.alive():
                soak.failures.append(f"{w.name} not running at the end")
        if lost:
            soak.failures.append(f"{len(lost)} messages without an ingest result: {lost[:5]}")
        if wrong_code:
            soak.failures.append(
                f"dead letters missing or wrong code: {list(wrong_code.items())[:5]}"
            )
        if not_rejected:
            soak.failures.append(f"bad messages without a 'rejected' result: {not_rejected[:5]}")
        unanswered = soak.searches["no reply"] + sum(
            v for k, v in soak.searches.items() if k.startswith("client:")
        )
        if unanswered:
            soak.failures.append(f"{unanswered} searches without a reply in {SEARCH_TIMEOUT_S}s")
        if soak.deaths:
            soak.failures.append(f"unexpected worker deaths: {soak.deaths}")
        where: dict[str, tuple[int, int]] = {}  # correlation id -> (partition, offset)
        if soak.unanswered:
            for r in await _read_topic(bootstrap, topics.search_requests):
                corr = _header(r, Headers.CORRELATION_ID)
                if corr:
                    where[corr] = (r.partition, r.offset)
        soak.diagnosis = diagnose(soak, fleet, where)
        statuses = Counter(r.get("status") for c, r in results.items() if c in soak.produced)
        soak.table = {
            "load seconds": round(seconds),
            "seconds to settle (load + every result in)": round(time.monotonic() - started),
            "workers": workers,
            "seed": seed,
            "messages in": len(soak.produced),
            "indexed (incl. unchanged)": statuses["indexed"] + statuses["unchanged"],
            "deleted": statuses["deleted"],
            "dead-lettered": sum(1 for c in soak.bad if c in dead),
            "bad messages sent": len(soak.bad),
            "lost (must be 0)": len(lost),
            "duplicate chunks (must be 0)": stored.get("duplicate chunks", 0),
            "orphan chunks (must be 0)": stored.get("orphan chunks", 0),
            "documents not settled (must be 0)": stored.get("documents not settled", 0),
            "searches sent": soak.search_sent,
            "searches answered": dict(sorted(soak.searches.items())),
            "faults injected": dict(sorted(soak.faults.items())),
            "kills": soak.kills,
            "peak worker RSS MiB": round(soak.rss_peak_mb),
        }
        return soak
    finally:
        stop.set()
        for w in fleet:
            w.stop()
        for proxy in proxies.values():
            await proxy.stop()
        await asyncio.to_thread(kafka.stop)


def _pg_upstream(url: str) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "127.0.0.1", int(parsed.port or 5432)


def _through(url: str, address: str) -> str:
    """The database URL with the proxy's host and port."""
    host, port = address.split(":")
    return make_url(url).set(host=host, port=int(port)).render_as_string(hide_password=False)


def _settings(env: dict[str, str]) -> Settings:
    import os

    saved = dict(os.environ)
    try:
        os.environ.update(env)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def _ready(client: SearchClient, fleet: list[FleetWorker], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        for w in fleet:
            if not w.alive():
                raise RuntimeError(f"{w.name} died at start:\n{w.tail()}")
        try:
            await client.search("ready?", tenant="probe", mode="keyword", timeout_s=5)
            return
        except RagstreamError:
            if time.monotonic() > deadline:
                raise TimeoutError("workers not ready") from None


def diagnose(
    soak: Soak, fleet: list[FleetWorker], where: dict[str, tuple[int, int]] | None = None
) -> str:
    """For each search without a reply: the faults and kills around it, every worker log line
    that names its correlation id and the answers to its partition's neighbouring offsets
    (``where``: the requests' partition and offset); then every ``reply_failed`` line."""
    out: list[str] = []
    for corr, mode, sent_at, error in soak.unanswered:
        partition, offset = (where or {}).get(corr, (-1, -1))
        out.append(
            f"UNANSWERED {mode} search {corr or '(no id)'} sent {sent_at.isoformat()}, "
            f"request at partition {partition} offset {offset}"
        )
        out.append(f"  client: {error[:300]}")
        window = (sent_at - timedelta(seconds=15), sent_at + timedelta(seconds=SEARCH_TIMEOUT_S))
        out.extend(
            f"  {at.isoformat()} {what}"
            for at, what in soak.timeline
            if window[0] <= at <= window[1]
        )
        for w in fleet:
            for record in log_events(w.log_path):
                near = (
                    record.get("event") == "search_answered"
                    and record.get("partition") == partition
                    and abs(int(record.get("offset", -99)) - offset) <= 4
                )
                if (corr and corr in json.dumps(record)) or near:
                    out.append(f"  {w.name}: {json.dumps(record)[:600]}")
    for w in fleet:
        for record in log_events(w.log_path, "reply_failed"):
            out.append(f"reply_failed {w.name}: {json.dumps(record)[:600]}")
    return "\n".join(out)


def render(soak: Soak) -> str:
    """The table, as Markdown."""
    lines = ["| | |", "|---|---|"]
    for key, value in soak.table.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        lines.append(f"| {key} | {value} |")
    return "\n".join(lines)


async def _postgres_database() -> tuple[str, str]:
    """A fresh database on the machine's PostgreSQL: (its URL, its name)."""
    import asyncpg

    name = f"ragstream_soak_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", name


async def main(argv: list[str] | None = None) -> int:
    """Start the services, run the soak, print the table; 1 if a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="ragstream-soak-"))
    pg_url, _ = await _postgres_database()
    with contextlib.ExitStack() as stack:
        es = stack.enter_context(devstack.start_elasticsearch(data_dir=root / "es"))
        chroma = stack.enter_context(devstack.start_chroma(data_dir=root / "chroma"))
        emb = stack.enter_context(devstack.start_embedding_server(data_dir=root / "emb"))
        soak = await run_soak(
            seconds=args.minutes * 60,
            seed=args.seed,
            workers=args.workers,
            services={
                "elasticsearch": es.url,
                "chroma": chroma.url,
                "embeddings": emb.url,
                "postgres": pg_url,
            },
            root=root,
        )
    print(render(soak))
    if soak.diagnosis:
        print(soak.diagnosis)
    print(f"logs in {root}")
    for failure in soak.failures:
        print(f"FAILED: {failure}")
    return 1 if soak.failures else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
