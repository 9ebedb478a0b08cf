"""Fleet-aware breakers, measured: 3 workers, Elasticsearch stopped while documents flow.

    python benchmarks/bench_fleet.py [--modes follow off] [--reset-s 10]

For each ``BREAKER_FLEET`` mode, a fresh group of three workers (one partition each) ingests
a steady stream of documents; Elasticsearch (noida-db) is stopped, and started again once
every worker's ``elasticsearch`` breaker is open. From the workers' logs:

- failed calls: ``breaker_call_failed`` lines of the elasticsearch breaker, fleet-wide, from
  the stop until the last worker's breaker opened (goal with follow: <= fail_max + 2);
- recovery: from Elasticsearch being ready again until every worker wrote a document
  (``document_indexed``), and the same from the fleet's first successful trial (goal with
  follow: <= 2 s after it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragstream import devstack
from schemas.document import DocumentUpsert
from streams.client import IngestClient, SearchClient
from streams.errors import RagstreamError
from streams.settings import KafkaSettings

from benchmarks.fleet import FleetWorker, base_env, parse_at

WORKERS = 3
FAIL_MAX = 3
TEXT = "Breakers that follow their peers fail less and recover sooner. " * 6


async def _ready(kafka: KafkaSettings, workers: list[FleetWorker], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with SearchClient(kafka) as client:
        while True:
            for w in workers:
                if not w.alive():
                    raise RuntimeError(f"{w.name} died:\n{w.tail()}")
            try:
                await client.search("ready?", tenant="probe", mode="keyword", timeout_s=3)
                return
            except RagstreamError:
                if time.monotonic() > deadline:
                    raise TimeoutError("workers not ready") from None


async def _feed(client: IngestClient, stop: asyncio.Event, every_s: float) -> int:
    """Submit a new document every ``every_s`` until ``stop``; results are not awaited."""
    n = 0
    for n in itertools.count():
        if stop.is_set():
            break
        await client.submit(DocumentUpsert(id=f"doc-{n}", tenant="fleet", text=f"{n}. {TEXT}"))
        await asyncio.sleep(every_s)  # the feed's pace
    return n


async def _until(check: Any, *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.2)  # poll interval, bounded by the deadline


def _opened(w: FleetWorker, since: datetime) -> datetime | None:
    for e in w.events("breaker_transition"):
        if e.get("breaker") == "elasticsearch" and e.get("new_state") == "open":
            at = parse_at(e)
            if at >= since:
                return at
    return None


def _wrote(w: FleetWorker, since: datetime) -> datetime | None:
    for e in w.events("document_indexed"):
        at = parse_at(e)
        if at >= since:
            return at
    return None


async def run_mode(
    mode: str, services: dict[str, Any], root: Path, reset_s: float
) -> dict[str, Any]:
    """One outage with ``BREAKER_FLEET=mode``; returns the measurements."""
    env = base_env(
        kafka=services["kafka"].bootstrap,
        elasticsearch=services["es"].url,
        chroma=services["chroma"].url,
        embeddings=services["emb"].url,
        data_dir=root / mode,
        partitions=WORKERS,
    )
    env |= {
        "BREAKER_FLEET": mode,
        "BREAKER_ELASTICSEARCH_FAIL_MAX": str(FAIL_MAX),
        "BREAKER_ELASTICSEARCH_RESET_TIMEOUT_S": str(reset_s),
        "BREAKER_ELASTICSEARCH_CALL_TIMEOUT_S": "5",
        "INGEST_BATCH_MAX": "4",
    }
    kafka = KafkaSettings.model_validate(
        {
            "bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"],
            "RAGSTREAM_TOPIC_PREFIX": env["RAGSTREAM_TOPIC_PREFIX"],
        }
    )
    workers = [
        FleetWorker(env, name=f"{mode}-w{i}", log_path=root / f"{mode}-w{i}.log").start()
        for i in range(WORKERS)
    ]
    stop_feed = asyncio.Event()
    try:
        await _ready(kafka, workers, 600)
        async with IngestClient(kafka) as client:
            feed = asyncio.create_task(_feed(client, stop_feed, 0.05))
            t0 = datetime.now(UTC)
            await _until(
                lambda: all(_wrote(w, t0) for w in workers),
                timeout_s=180,
                what="every worker writing",
            )
            t_stop = datetime.now(UTC)
            await asyncio.to_thread(services["es"].stop)
            opened = await _until(
                lambda: (
                    [_opened(w, t_stop) for w in workers]
                    if all(_opened(w, t_stop) for w in workers)
                    else None
                ),
                timeout_s=120,
                what="every breaker open",
            )
            t_all_open = max(opened)
            failed = sum(
                1
                for w in workers
                for e in w.events("breaker_call_failed")
                if e.get("breaker") == "elasticsearch" and t_stop <= parse_at(e) <= t_all_open
            )
            await asyncio.sleep(2)  # the outage goes on a little, all breakers open
            await asyncio.to_thread(services["es"].start)
            t_back = datetime.now(UTC)
            resumed = await _until(
                lambda: (
                    [_wrote(w, t_back) for w in workers]
                    if all(_wrote(w, t_back) for w in workers)
                    else None
                ),
                timeout_s=max(120, 4 * reset_s),
                what="every worker writing again",
            )
            trials = [
                parse_at(e)
                for w in workers
                for e in w.events("breaker_transition")
                if e.get("breaker") == "elasticsearch"
                and (e.get("old_state"), e.get("new_state")) == ("half-open", "closed")
                and e.get("reason") == "local"
                and parse_at(e) >= t_back
            ]
            stop_feed.set()
            sent = await feed
        first_trial = min(trials) if trials else t_back
        all_back = max(resumed)
        return {
            "mode": mode,
            "docs": sent,
            "failed_calls": failed,
            "open_spread_s": (t_all_open - min(opened)).total_seconds(),
            "recovery_s": (all_back - t_back).total_seconds(),
            "after_first_trial_s": (all_back - first_trial).total_seconds(),
            "followed": sum(1 for w in workers for _ in w.events("breaker_followed_peer")),
        }
    finally:
        stop_feed.set()
        for w in workers:
            w.stop()


async def main(argv: list[str] | None = None) -> int:
    """Run each mode once and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["follow", "off"])
    parser.add_argument("--reset-s", type=float, default=10.0, help="breaker reset timeout")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="ragstream-fleet-"))
    with contextlib.ExitStack() as stack:
        services = {
            "kafka": stack.enter_context(devstack.start_kafka(data_dir=root / "kafka")),
            "es": stack.enter_context(devstack.start_elasticsearch(data_dir=root / "es")),
            "chroma": stack.enter_context(devstack.start_chroma(data_dir=root / "chroma")),
            "emb": stack.enter_context(devstack.start_embedding_server(data_dir=root / "emb")),
        }
        rows = [await run_mode(mode, services, root, args.reset_s) for mode in args.modes]
    print(f"\n3 workers, ES fail_max={FAIL_MAX}, reset timeout {args.reset_s:g} s; logs in {root}")
    print(
        "| BREAKER_FLEET | failed ES calls before all open (goal <= fail_max+2 = "
        f"{FAIL_MAX + 2}) | all open within | ES ready -> all writing | first trial -> all "
        "writing (goal <= 2 s) | docs fed |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['failed_calls']} | {r['open_spread_s']:.2f} s | "
            f"{r['recovery_s']:.2f} s | {r['after_first_trial_s']:.2f} s | {r['docs']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
