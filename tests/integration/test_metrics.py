"""The worker's probes and metrics, scraped by a real Prometheus and read back with PromQL.

One worker (own Elasticsearch, so stopping it disturbs nobody) and one Prometheus
(``tests/integration/prometheus.py``) scraping it every second, with the shipped alert rules.
The tests run in order: a known ingest, searches, a bad message, then a forced breaker
opening while documents are held, and the dashboard's metric names against ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from ragstream import devstack
from ragstream.devstack import Service
from schemas.document import DocumentDelete, DocumentUpsert
from streams.client import IngestClient, SearchClient
from streams.errors import RemoteError
from streams.settings import KafkaSettings, Settings
from tests.integration.harness import WorkerProcess, isolated_env, new_id, produce
from tests.integration.prometheus import Prometheus

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/ragstream.json"
TEXT = "Prometheus scrapes the worker; the breaker opens when Elasticsearch stops. " * 6


@dataclass
class Observed:
    """The worker, its Elasticsearch, and the Prometheus scraping it."""

    worker: WorkerProcess
    kafka: KafkaSettings
    elasticsearch: Service
    prometheus: Prometheus
    tenant: str


@pytest.fixture(scope="module")
def own_elasticsearch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An Elasticsearch API server this module may stop."""
    with devstack.start_elasticsearch(data_dir=tmp_path_factory.mktemp("metrics-es")) as es:
        yield es


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def observed(
    own_elasticsearch: Service,
    kafka_bootstrap: str,
    chroma_url: str,
    openai_base_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Observed]:
    """A ready worker and a ready Prometheus scraping its ``/metrics``."""
    env = isolated_env(
        kafka_bootstrap=kafka_bootstrap,
        elasticsearch_url=own_elasticsearch.url,
        data_dir=tmp_path_factory.mktemp("metrics-worker"),
        CHROMA_URL=chroma_url,
        EMBEDDING_PROVIDER="openai",
        OPENAI_BASE_URL=openai_base_url,
        OPENAI_EMBEDDING_MODEL="e5-small",
        ELASTICSEARCH_TIMEOUT_S="3",
        INGEST_CHUNK_SIZE="200",
        INGEST_CHUNK_OVERLAP="40",
        INGEST_RETRY_INITIAL_S="0.2",
        INGEST_RETRY_MAX_S="1",
        BREAKER_ELASTICSEARCH_FAIL_MAX="2",
        BREAKER_ELASTICSEARCH_RESET_TIMEOUT_S="2",
        BREAKER_ELASTICSEARCH_CALL_TIMEOUT_S="5",
    )
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
    root = tmp_path_factory.mktemp("metrics")
    worker = WorkerProcess(env, log_path=root / "worker.log").start()
    target = worker.http_url.removeprefix("http://")
    prometheus = Prometheus(root / "prometheus", targets=[target])
    try:
        await prometheus.wait_ready()
        await worker.wait_ready(settings.kafka, tenant="probe")
        yield Observed(worker, settings.kafka, own_elasticsearch, prometheus, f"m-{new_id()}")
    finally:
        worker.stop()
        prometheus.stop()


async def _at_least(p: Prometheus, promql: str, floor: float, *, timeout_s: float = 60) -> float:
    """Poll until ``promql`` is at least ``floor``."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await p.value(promql)
        if got is not None and got >= floor:
            return got
        assert time.monotonic() < deadline, f"{promql} = {got}, expected >= {floor}"
        await asyncio.sleep(0.5)  # poll interval, bounded by the deadline


async def test_probes_answer(observed: Observed) -> None:
    """A started worker is live and ready; its ready body lists partitions and breakers."""
    async with httpx.AsyncClient(base_url=observed.worker.http_url, timeout=5) as http:
        live = await http.get("/health/live")
        assert live.status_code == 200 and live.json()["live"] is True
        deadline = time.monotonic() + 30
        while (ready := await http.get("/health/ready")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            await asyncio.sleep(0.2)  # poll interval, bounded by the deadline
        body = ready.json()
        assert body["runtime_started"] and body["partitions"]
        assert body["breakers"] == {
            "openai": "closed",
            "vectordb": "closed",
            "elasticsearch": "closed",
        }
        assert (await http.get("/nope")).status_code == 404


async def test_ingest_searches_and_a_bad_message_are_counted(observed: Observed) -> None:
    """Known documents, searches and one malformed message show up exactly in PromQL."""
    p, tenant, kafka = observed.prometheus, observed.tenant, observed.kafka
    async with IngestClient(kafka) as client:
        results = await asyncio.gather(
            *[
                client.ingest(DocumentUpsert(id=i, tenant=tenant, text=f"{i}: {TEXT}"))
                for i in ("a", "b", "c")
            ]
        )
        assert {r.status for r in results} == {"indexed"}
        chunks = sum(r.chunks for r in results)
        again = await client.ingest(DocumentUpsert(id="a", tenant=tenant, text=f"a: {TEXT}"))
        assert again.status == "unchanged"
        gone = await client.ingest(DocumentDelete(id="c", tenant=tenant, op="delete"))
        assert gone.status == "deleted"
    await produce(kafka.bootstrap_servers, kafka.topic("documents"), value=b"{oops", key=b"bad")
    async with SearchClient(kafka) as search:
        for query in ("breaker opens", "Prometheus scrapes"):
            result = await search.search(query, tenant=tenant, mode="hybrid", timeout_s=20)
            assert result.status == "ok" and result.hits

    docs = "ragstream_documents_total"
    await p.until(f'sum({docs}{{outcome="indexed"}})', 3)
    await p.until(f'sum({docs}{{outcome="unchanged"}})', 1)
    await p.until(f'sum({docs}{{outcome="deleted"}})', 1)
    await p.until(f'sum({docs}{{outcome="rejected", error_code="malformed_json"}})', 1)
    await p.until('sum(ragstream_dead_letters_total{error_code="malformed_json"})', 1)
    await p.until("sum(ragstream_chunks_written_total)", chunks)
    await p.until("sum(ragstream_ingest_document_seconds_count)", 6)  # 3 + 1 + 1 + the bad one
    await p.until('sum(ragstream_searches_total{mode="hybrid", status="ok"})', 2)
    await p.until('sum(ragstream_search_leg_seconds_count{leg="vector"})', 2)
    await p.until('sum(ragstream_embedding_call_seconds_count{purpose="search"})', 2)
    await _at_least(p, 'sum(ragstream_search_leg_seconds_count{leg="keyword"})', 2)
    # Identical chunk texts are embedded once: fewer texts embedded than chunks written.
    await _at_least(p, 'sum(ragstream_embedding_call_chunks_sum{purpose="ingest"})', 3)
    await p.until('up{job="ragstream"}', 1)
    # Everything read was committed: no lag on the documents topic.
    await p.until(f'sum(ragstream_consumer_lag{{topic="{kafka.topic("documents")}"}})', 0)


async def test_open_breaker_holds_ingest_and_shows_everywhere(observed: Observed) -> None:
    """Elasticsearch stopped: breaker gauge 2, alert pending, lag and hold time grow, still
    ready; restarted: gauge 0, lag 0, the held documents indexed."""
    p, tenant, kafka = observed.prometheus, observed.tenant, observed.kafka
    documents = kafka.topic("documents")
    await asyncio.to_thread(observed.elasticsearch.stop)
    try:
        async with IngestClient(kafka) as client:
            held = [
                await client.submit(DocumentUpsert(id=f"held-{i}", tenant=tenant, text=TEXT))
                for i in range(2)
            ]
            async with SearchClient(kafka) as search:

                async def unavailable() -> bool:
                    try:
                        await search.search("x", tenant=tenant, mode="keyword", timeout_s=20)
                    except RemoteError as exc:
                        return exc.code == "unavailable"
                    return False

                deadline = time.monotonic() + 60
                while not await unavailable():
                    assert time.monotonic() < deadline, "the elasticsearch breaker never opened"
            await p.until('ragstream_breaker_state{breaker="elasticsearch"}', 2)
            await _at_least(p, f'sum(ragstream_consumer_lag{{topic="{documents}"}})', 1)
            await _at_least(p, 'ragstream_holding_seconds{what="ingest"}', 1.5)
            opened = '{breaker="elasticsearch", to_state="open"}'
            await _at_least(p, f"sum(ragstream_breaker_transitions_total{opened})", 1)
            await _at_least(
                p, 'sum(ragstream_searches_total{mode="keyword", error_code="unavailable"})', 1
            )
            alerts = {a["labels"]["alertname"]: a for a in await p.alerts()}
            assert alerts["RagstreamBreakerOpen"]["labels"]["breaker"] == "elasticsearch"
            async with httpx.AsyncClient(base_url=observed.worker.http_url, timeout=5) as http:
                ready = await http.get("/health/ready")
            # An outage is reported, but does not make the worker unready.
            assert ready.status_code == 200, ready.text
            assert ready.json()["breakers"]["elasticsearch"] in ("open", "half-open")
            assert not any(f.done() for f in held)
            await asyncio.to_thread(observed.elasticsearch.start)
            results = await asyncio.wait_for(asyncio.gather(*held), 120)
    finally:
        if not observed.elasticsearch.is_running():
            await asyncio.to_thread(observed.elasticsearch.start)
    assert {r.status for r in results} == {"indexed"}
    await p.until('ragstream_breaker_state{breaker="elasticsearch"}', 0)
    await p.until(f'sum(ragstream_consumer_lag{{topic="{documents}"}})', 0)
    await p.until('ragstream_holding_seconds{what="ingest"}', 0)
    await _at_least(p, 'ragstream_held_seconds_total{what="ingest"}', 1.5)
    observed.worker.assert_alive()


_NAME = re.compile(r"\b(ragstream_[a-z_]+|process_[a-z_]+|up)\b")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


async def test_dashboard_uses_only_metrics_the_worker_exports(observed: Observed) -> None:
    """Every metric the Grafana dashboard queries is one ``/metrics`` declares."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{observed.worker.http_url}/metrics")).text
    declared = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    exported = declared | {name + suffix for name in declared for suffix in _SUFFIXES} | {"up"}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    used = {name for expr in exprs for name in _NAME.findall(expr)}
    assert len(exprs) >= 8 and len(used) >= 8, used
    assert used <= exported, sorted(used - exported)
