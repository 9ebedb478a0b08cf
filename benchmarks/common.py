"""Shared by the benchmarks: options, the results record, ingest-until-done, timing helpers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from schemas.document import DocumentUpsert
from streams.client import IngestClient
from streams.settings import KafkaSettings

from benchmarks.stats import Figure, Goal

__all__ = ["IngestRun", "Options", "Results", "ingest_all"]


@dataclass(frozen=True)
class Options:
    """What the command line chose."""

    quick: bool = False
    repeats: int = 3
    memory_minutes: float = 3.0
    profile: bool = True
    sizes: tuple[int, ...] = (10_000, 100_000, 300_000)
    """Index sizes (chunks) of the growth benchmark."""
    engines: tuple[str, ...] = ("embedded", "servers")
    """Engine pairs of the growth benchmark: embedded Chroma + embedded keywords, or servers."""


@dataclass
class Results:
    """Everything measured in one run of the runner, shared across benchmarks."""

    goals: list[Goal] = field(default_factory=list)
    figures: dict[str, Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    """Hand-over between benchmarks (e.g. the first ingest's time, for replay)."""

    def figure(self, key: str, unit: str) -> Figure:
        """The figure named ``key``, created on first use."""
        if key not in self.figures:
            self.figures[key] = Figure(key, unit)
        return self.figures[key]

    def note(self, text: str) -> None:
        """A line printed under the tables, and echoed now."""
        print(f"  . {text}", flush=True)
        self.notes.append(text)


@dataclass
class IngestRun:
    """One batch of documents produced and their results collected."""

    docs: int
    chunks: int
    wall_s: float
    statuses: dict[str, int]
    took_ms: list[float] = field(default_factory=list)
    """The worker's own time per document (``IngestResult.took_ms``)."""

    @property
    def chunks_per_s(self) -> float:
        """End-to-end throughput in chunks."""
        return self.chunks / self.wall_s

    @property
    def docs_per_s(self) -> float:
        """End-to-end throughput in documents."""
        return self.docs / self.wall_s


async def ingest_all(
    kafka: KafkaSettings, docs: list[DocumentUpsert], *, timeout_s: float = 1800
) -> IngestRun:
    """Produce every document, then wait for every result: time from first send to last result."""
    async with IngestClient(kafka) as client:
        started = time.perf_counter()
        futures = await asyncio.gather(*(client.submit(d) for d in docs))
        async with asyncio.timeout(timeout_s):
            results = await asyncio.gather(*futures)
        wall = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return IngestRun(
        len(docs),
        sum(r.chunks for r in results),
        wall,
        statuses,
        [r.took_ms for r in results if r.took_ms is not None],
    )
