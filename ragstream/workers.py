"""Worker processes: ``ragstream worker`` as a child, its environment, and a clean stop.

One harness for everything that starts workers: ``ragstream dev`` (``ragstream.devrun``), the
integration tests (``tests/integration/harness.py``) and the benchmarks
(``benchmarks/stack.py``). ``worker_env`` is the environment of a worker on a given broker and
Elasticsearch API; ``WorkerProcess`` spawns it, waits until it answers a search, and stops it
with SIGTERM (a clean shutdown: in-flight batches finish or stay unacked), then SIGKILL after
a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ragstream.devstack import free_port
from streams.client import SearchClient
from streams.errors import RagstreamError
from streams.settings import KafkaSettings

__all__ = ["WORKER_ARGV", "WorkerProcess", "worker_env"]

WORKER_ARGV: tuple[str, ...] = (sys.executable, "-m", "ragstream.cli", "worker")
"""``ragstream worker`` run by this interpreter (so a virtualenv's workers use it too)."""


def worker_env(
    *,
    kafka_bootstrap: str,
    elasticsearch_url: str,
    data_dir: Path,
    prefix: str | None = None,
    session_timeout_s: str = "3",
    rebalance_timeout_s: str = "1",
    **overrides: str,
) -> dict[str, str]:
    """The environment of a worker on ``kafka_bootstrap`` and ``elasticsearch_url``.

    Its files (embedded Chroma, the default SQLite catalog) go to ``data_dir``; authentication
    is disabled. With ``prefix`` the worker is isolated from any other on the same services:
    its own topics, consumer group, index and collection, a SQLite catalog in ``data_dir``,
    and JSON logs. ``overrides`` set or replace any variable.
    """
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ELASTICSEARCH_URL": elasticsearch_url,
        "RAGSTREAM_DATA_DIR": str(data_dir),
        # Tansu holds every JoinGroup for the full rebalance timeout: keep both short.
        "KAFKA_SESSION_TIMEOUT_S": session_timeout_s,
        "KAFKA_REBALANCE_TIMEOUT_S": rebalance_timeout_s,
        # Workers started here are for development, tests and benchmarks; production sets
        # RAGSTREAM_AUTH=required (the default) itself.
        "RAGSTREAM_AUTH": "disabled",
        # Probes and /metrics on a free port: several workers share one host here.
        "RAGSTREAM_HTTP_PORT": str(free_port()),
    }
    if prefix is not None:
        env |= {
            "RAGSTREAM_TOPIC_PREFIX": prefix,
            "KAFKA_CONSUMER_GROUP": f"{prefix}-worker",
            "ELASTICSEARCH_INDEX_PREFIX": f"{prefix}-chunks",
            "CHROMA_COLLECTION_PREFIX": prefix,
            "DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'catalog.db'}",
            "RAGSTREAM_LOG_FORMAT": "json",
        }
    return env | overrides


class WorkerProcess:
    """A worker as a child process with its own environment (added to this one's).

    Output goes to ``log_path`` (appended) or, without one, to this process's stdout/stderr.
    ``argv`` runs another entry point with the same lifecycle (the benchmarks' worker).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        log_path: Path | None = None,
        argv: Sequence[str] = WORKER_ARGV,
        cwd: Path | None = None,
    ) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.argv = list(argv)
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        """Spawn the worker (ready only after ``wait_ready``)."""
        if self.log_path is None:
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd)
            return self
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        """The worker's process id."""
        assert self.process is not None, "not started"
        return self.process.pid

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        assert self.process is not None, "not started"
        return self.process.poll()

    def assert_alive(self) -> None:
        """Raise (with the log tail) if the worker has exited."""
        code = self.poll()
        if code is not None:
            raise RuntimeError(f"worker exited with {code}:\n{self.log_tail()}")

    async def wait_ready(
        self,
        kafka: KafkaSettings,
        *,
        tenant: str = "probe",
        timeout_s: float = 120,
        token: str | None = None,
    ) -> float:
        """Poll with keyword searches (carrying ``token`` if given) until the worker answers
        one; return the seconds waited. Raises if the worker exits or the deadline passes."""
        started = time.monotonic()
        async with SearchClient(kafka, token=token) as client:
            while True:
                self.assert_alive()
                try:
                    await client.search("ready?", tenant=tenant, mode="keyword", timeout_s=3)
                    return time.monotonic() - started
                except RagstreamError:
                    if time.monotonic() - started > timeout_s:
                        raise TimeoutError(
                            f"worker not ready in {timeout_s}s:\n{self.log_tail()}"
                        ) from None

    def stop(self, *, sig: int = signal.SIGTERM, grace_s: float = 30) -> int | None:
        """Send ``sig`` (SIGTERM: a clean shutdown), SIGKILL after ``grace_s``; the exit code.

        Idempotent: a worker already gone returns its code (None if never started).
        """
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the worker's log."""
        if self.log_path is None:
            return "(log on the terminal)"
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def count_log(self, event: str) -> int:
        """How many JSON log lines of this worker name ``event``."""
        if self.log_path is None:
            return 0
        try:
            return self.log_path.read_text(errors="replace").count(f'"{event}"')
        except OSError:
            return 0
