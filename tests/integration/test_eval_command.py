"""``ragstream eval`` end to end: a tiny BEIR collection against a real worker, over the topics."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from streams.client import SearchClient
from streams.settings import KafkaSettings
from tests.integration.harness import ROOT, WorkerProcess, isolated_env

DOCS = {
    "d1": ("Tomatoes", "Tomato plants need deep watering, compost and six hours of sun."),
    "d2": ("Sourdough", "A sourdough starter is flour and water fermented by wild yeast."),
    "d3": ("Telescopes", "A small telescope shows the rings of Saturn and the moons of Jupiter."),
    "d4": ("Kafka", "Kafka stores records in partitions; consumers commit their offsets."),
    "d5": ("Glaciers", "Glaciers carve valleys as the ice slowly flows downhill."),
    "d6": ("Violins", "A violin has four strings tuned in fifths and is played with a bow."),
}
QUERIES = {"q1": "saturn rings telescope", "q2": "sourdough yeast starter", "q3": "violin strings"}
QRELS = {"q1": "d3", "q2": "d2", "q3": "d6"}


def _write_collection(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in DOCS.items())
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
        + json.dumps({"_id": "unjudged", "text": "glaciers"})
        + "\n"
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in QRELS.items())
    )
    return root


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def worker(
    kafka_bootstrap: str, elasticsearch_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """A ready worker on the embedded engines (tantivy keywords, embedded Chroma)."""
    tmp_path = tmp_path_factory.mktemp("eval")
    env = isolated_env(
        kafka_bootstrap=kafka_bootstrap,
        elasticsearch_url=elasticsearch_url,
        data_dir=tmp_path / "worker",
        KEYWORD_STORE="embedded",
    )
    proc = WorkerProcess(env, log_path=tmp_path / "worker.log").start()
    try:
        kafka = KafkaSettings(
            bootstrap_servers=kafka_bootstrap, topic_prefix=env["RAGSTREAM_TOPIC_PREFIX"]
        )
        await proc.wait_ready(kafka, tenant="probe")
        yield env
    finally:
        proc.stop()


def _eval(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragstream.cli", "eval", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


async def test_eval_scores_every_mode_and_cleans_up(worker: dict[str, str], tmp_path: Path) -> None:
    """Each judged query runs in every mode, keyword ranks each answer first, the tenant empties."""
    root = _write_collection(tmp_path / "tiny")
    done = await asyncio.to_thread(
        _eval, worker, str(root), "--json", "--tenant", "eval-tiny", "--concurrency", "2"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["documents"], report["queries"], report["kept"]) == (6, 3, False)
    assert report["ingest"]["statuses"] == {"indexed": 6}
    modes = {m["mode"]: m for m in report["modes"]}
    assert list(modes) == ["vector", "keyword", "hybrid"]
    for m in modes.values():
        assert m["statuses"] == {"ok": 3}
        assert m["recall_at_100"] == 1.0  # six documents: every one is in the top 100
        assert m["p50_ms"] > 0 and m["p99_ms"] >= m["p50_ms"]
        assert "per_query" not in m
    keyword = modes["keyword"]
    assert keyword["ndcg_at_10"] == keyword["mrr_at_10"] == 1.0
    assert set(keyword["timings_ms"]) == {"keyword", "fuse", "total"}
    assert set(modes["hybrid"]["timings_ms"]) == {"embed", "vector", "keyword", "fuse", "total"}
    kafka = KafkaSettings(
        bootstrap_servers=worker["KAFKA_BOOTSTRAP_SERVERS"],
        topic_prefix=worker["RAGSTREAM_TOPIC_PREFIX"],
    )
    async with SearchClient(kafka) as client:
        for mode in ("keyword", "vector"):
            left = await client.search("saturn", tenant="eval-tiny", mode=mode, top_k=10)
            assert left.hits == [], f"{mode} still finds the scratch tenant's documents"


async def test_eval_keep_leaves_the_documents(worker: dict[str, str], tmp_path: Path) -> None:
    """With --keep the scratch tenant stays searchable, and the table names every mode."""
    root = _write_collection(tmp_path / "tiny")
    done = await asyncio.to_thread(
        _eval, worker, str(root), "--tenant", "eval-kept", "--keep", "--mode", "keyword"
    )
    assert done.returncode == 0, done.stderr
    assert "keyword" in done.stdout and "nDCG@10" in done.stdout and "(kept)" in done.stdout
    kafka = KafkaSettings(
        bootstrap_servers=worker["KAFKA_BOOTSTRAP_SERVERS"],
        topic_prefix=worker["RAGSTREAM_TOPIC_PREFIX"],
    )
    async with SearchClient(kafka) as client:
        kept = await client.search("violin", tenant="eval-kept", mode="keyword", top_k=3)
    assert [h.doc_id for h in kept.hits][:1] == ["d6"]
