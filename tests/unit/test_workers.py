"""The worker-process harness (``ragstream.workers``) on stand-in child processes."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest

from ragstream.workers import WORKER_ARGV, WorkerProcess, worker_env
from streams.settings import Settings

_IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)
_WAITS = "import time\nprint('ready', flush=True)\ntime.sleep(120)\n"


async def _started(tmp_path: Path, code: str) -> WorkerProcess:
    """A child running ``code`` that has printed ``ready`` (polled with a deadline)."""
    child = WorkerProcess(
        {"MARKER": "1"}, log_path=tmp_path / "child.log", argv=[sys.executable, "-c", code]
    ).start()
    deadline = time.monotonic() + 30
    while "ready" not in child.log_tail():
        child.assert_alive()
        assert time.monotonic() < deadline, "the child never got ready"
        await asyncio.sleep(0.05)  # poll interval, bounded by the deadline
    return child


def test_the_default_command_is_ragstream_worker() -> None:
    """Without ``argv`` the child is ``ragstream worker`` run by this interpreter."""
    assert (sys.executable, "-m", "ragstream.cli", "worker") == WORKER_ARGV
    assert WorkerProcess({}).argv == list(WORKER_ARGV)


async def test_sigterm_stops_a_worker_that_honours_it(tmp_path: Path) -> None:
    """``stop`` sends SIGTERM and returns the exit code; a second ``stop`` returns it again."""
    child = await _started(tmp_path, _WAITS)
    assert child.stop(grace_s=30) == -signal.SIGTERM
    assert child.stop() == -signal.SIGTERM
    assert child.poll() == -signal.SIGTERM


async def test_a_worker_ignoring_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path,
) -> None:
    """A child that ignores SIGTERM is SIGKILLed once ``grace_s`` has passed."""
    child = await _started(tmp_path, _IGNORES_SIGTERM)
    assert child.stop(grace_s=0.2) == -signal.SIGKILL


async def test_a_dead_worker_is_reported_with_its_log(tmp_path: Path) -> None:
    """``assert_alive`` raises with the exit code and the log tail once the child exited."""
    child = WorkerProcess(
        {},
        log_path=tmp_path / "child.log",
        argv=[sys.executable, "-c", "print('boom: bad setting'); raise SystemExit(3)"],
    ).start()
    assert child.process is not None
    child.process.wait(timeout=60)
    with pytest.raises(RuntimeError, match=r"(?s)exited with 3.*boom: bad setting"):
        child.assert_alive()
    assert child.count_log("boom") == 0  # only JSON ``"event"`` names are counted


def test_stop_before_start_is_a_no_op() -> None:
    """Stopping a worker that never started returns None."""
    assert WorkerProcess({}).stop() is None


def test_an_isolated_environment_is_read_by_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``worker_env(prefix=...)`` gives the worker its own topics, group, index, collection and
    SQLite catalog, authentication off, and ``Settings()`` reads every one of them."""
    env = worker_env(
        kafka_bootstrap="127.0.0.1:1",
        elasticsearch_url="http://127.0.0.1:2",
        data_dir=tmp_path,
        prefix="p1",
        KAFKA_PARTITIONS="3",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:1"
    assert settings.kafka.topic("documents") == "p1.documents"
    assert settings.kafka.consumer_group == "p1-worker"
    assert settings.kafka.partitions == 3
    assert settings.elasticsearch.index_prefix == "p1-chunks"
    assert settings.chroma.collection_prefix == "p1"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}"
    assert settings.security.mode == "disabled"
    assert settings.data_dir == tmp_path


def test_without_a_prefix_the_worker_uses_the_defaults() -> None:
    """No prefix: only the connection, data dir, timeouts, auth and a free HTTP port are set."""
    env = worker_env(
        kafka_bootstrap="k:1",
        elasticsearch_url="http://e:2",
        data_dir=Path("/d"),
        session_timeout_s="6",
        rebalance_timeout_s="2",
    )
    port = int(env.pop("RAGSTREAM_HTTP_PORT"))
    assert 0 < port < 65536 and port != 6066
    assert env == {
        "KAFKA_BOOTSTRAP_SERVERS": "k:1",
        "ELASTICSEARCH_URL": "http://e:2",
        "RAGSTREAM_DATA_DIR": "/d",
        "KAFKA_SESSION_TIMEOUT_S": "6",
        "KAFKA_REBALANCE_TIMEOUT_S": "2",
        "RAGSTREAM_AUTH": "disabled",
    }
