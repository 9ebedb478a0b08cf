"""The embedded stack for the benchmarks: broker, stores, worker processes, and their meters.

One ``Stack`` per run (Tansu, noida-db, a Chroma server, in a temp dir). Each benchmark gets its
own topic prefix, consumer group, index, collection and SQLite catalog, so runs never share data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from ragstream import devstack
from ragstream.workers import WorkerProcess, worker_env
from streams.settings import Settings

__all__ = ["CpuMeter", "RssSampler", "Stack", "Worker", "settings_from"]

ROOT = Path(__file__).resolve().parents[1]


def settings_from(env: Mapping[str, str]) -> Settings:
    """``Settings()`` as a worker with ``env`` would read it."""
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Worker(WorkerProcess):
    """The worker as a child process (``benchmarks/worker.py``), logging JSON to a file."""

    def __init__(self, env: Mapping[str, str], *, log_path: Path) -> None:
        super().__init__(
            env, log_path=log_path, argv=[sys.executable, "-m", "benchmarks.worker"], cwd=ROOT
        )

    async def wait_ready(  # type: ignore[override]
        self, settings: Settings, *, tenant: str = "probe", timeout_s: float = 180
    ) -> float:
        """Poll with keyword searches until the worker answers one; returns seconds waited."""
        return await super().wait_ready(settings.kafka, tenant=tenant, timeout_s=timeout_s)


@dataclass
class Stack:
    """Running services plus the workers started on them."""

    root: Path
    kafka: devstack.Service
    elasticsearch: devstack.Service
    chroma: devstack.Service
    workers: list[Worker] = field(default_factory=list)

    @classmethod
    def start(cls, root: Path | None = None) -> Stack:
        """Start Tansu, noida-db and Chroma on free loopback ports."""
        root = root or Path(tempfile.mkdtemp(prefix="ragstream-bench-"))
        kafka = devstack.start_kafka(data_dir=root / "kafka")
        es = devstack.start_elasticsearch(data_dir=root / "elasticsearch")
        chroma = devstack.start_chroma(data_dir=root / "chroma")
        return cls(root=root, kafka=kafka, elasticsearch=es, chroma=chroma)

    def services(self) -> dict[str, int]:
        """Name to pid of each service process."""
        out = {}
        for s in (self.kafka, self.elasticsearch, self.chroma):
            if s.process is not None and s.process.poll() is None:
                out[s.name] = s.process.pid
        return out

    def env(
        self,
        name: str,
        *,
        embedder: str = "local",
        partitions: int = 4,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """A worker environment isolated under a fresh prefix ``{name}-{random}`` (auth off, as
        in the pipeline tests: JWT checks are a per-message cost not measured here)."""
        prefix = f"{name}-{secrets.token_hex(3)}"
        data_dir = self.root / prefix
        data_dir.mkdir(parents=True, exist_ok=True)
        overrides = {
            "KAFKA_PARTITIONS": str(partitions),
            "CHROMA_URL": self.chroma.url,
            "BENCH_EMBEDDER": embedder,
            **(extra or {}),  # e.g. CHROMA_URL="" for the embedded Chroma
        }
        return worker_env(
            kafka_bootstrap=self.kafka.bootstrap,
            elasticsearch_url=self.elasticsearch.url,
            data_dir=data_dir,
            prefix=prefix,
            **overrides,
        )

    def worker(self, env: Mapping[str, str], *, tag: str = "") -> Worker:
        """Start one worker with ``env`` (call ``wait_ready`` next)."""
        name = f"{env['RAGSTREAM_TOPIC_PREFIX']}{tag}-{len(self.workers)}"
        env = {"RAGSTREAM_HTTP_PORT": str(devstack.free_port()), **env}  # one port each
        w = Worker(env, log_path=self.root / f"{name}.log").start()
        self.workers.append(w)
        return w

    def stop_workers(self) -> None:
        """Stop every worker started so far."""
        for w in self.workers:
            w.stop()
        self.workers.clear()

    def stop(self) -> None:
        """Stop the workers, then the services."""
        self.stop_workers()
        for s in (self.chroma, self.elasticsearch, self.kafka):
            with contextlib.suppress(Exception):
                s.stop()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu_s(pid: int) -> float:
    total = 0.0
    for p in _tree(pid) if pid != os.getpid() else [psutil.Process(pid)]:  # not our children
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _busy_s() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + t.nice + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


class CpuMeter:
    """CPU seconds used by named process trees between ``start()`` and ``stop()``."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._t0 = 0.0
        self._before: dict[str, float] = {}
        self.share: dict[str, float] = {}
        """Name to cores used on average (1.0 = one core busy the whole time)."""

    def start(self) -> CpuMeter:
        """Take the first reading."""
        self._before = {n: _cpu_s(p) for n, p in self.pids.items()}
        self._busy0 = _busy_s()
        self._t0 = time.monotonic()
        return self

    def stop(self) -> dict[str, float]:
        """Cores used per process tree over the window; ``others`` is the rest of the machine."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        self.share = {n: (_cpu_s(p) - self._before[n]) / wall for n, p in self.pids.items()}
        busy = (_busy_s() - self._busy0) / wall
        self.share["others"] = max(busy - sum(self.share.values()), 0.0)
        return self.share

    def text(self) -> str:
        """``worker 0.95, chroma 0.30, ...`` (cores)."""
        return ", ".join(
            f"{n} {v:.2f}" for n, v in sorted(self.share.items(), key=lambda kv: -kv[1])
        )


class RssSampler:
    """Samples the RSS of one process every ``interval_s`` in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self._proc = psutil.Process(pid)
        self._interval = interval_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append((time.monotonic() - self._t0, self._proc.memory_info().rss))
            self._stop.wait(self._interval)

    @contextlib.contextmanager
    def running(self) -> Iterator[RssSampler]:
        """Sample while the block runs."""
        self._t0 = time.monotonic()
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()

    @property
    def peak_mb(self) -> float:
        """Highest sample, MiB."""
        return max((r for _, r in self.samples), default=0) / 2**20

    def at_mb(self, t_s: float) -> float:
        """The last sample taken at or before ``t_s`` seconds, MiB."""
        best = [r for t, r in self.samples if t <= t_s]
        return (best[-1] if best else self.samples[0][1]) / 2**20


async def wait_for(
    predicate: Any, *, timeout_s: float, what: str, interval_s: float = 0.25
) -> None:
    """Poll ``predicate()`` until true, with a deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(interval_s)
