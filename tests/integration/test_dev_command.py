"""``ragstream dev``: the main job, as a newcomer runs it, start to clean stop and restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ragstream.devstack import free_port
from streams.settings import KafkaSettings
from tests.integration.harness import ROOT, WorkerProcess

_ENV_NAMES = (
    "KAFKA_",
    "ELASTICSEARCH_",
    "KEYWORD_",
    "CHROMA_",
    "DATABASE_URL",
    "RAGSTREAM_",
    "DB_",
)


def _clean_env(data_dir: Path) -> dict[str, str]:
    """The user's environment: nothing of ours configured but the data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_NAMES)}
    return env | {"RAGSTREAM_DATA_DIR": str(data_dir)}


def _start_dev(
    data_dir: Path, kafka_port: int, es_port: int, http_port: int | None = None
) -> subprocess.Popen[bytes]:
    args = [
        "dev",
        "--http-port",
        str(http_port or free_port()),
        "--data-dir",
        str(data_dir),
        "--kafka-port",
        str(kafka_port),
        "--elasticsearch-port",
        str(es_port),
    ]
    log = (data_dir.parent / "dev.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "ragstream.cli", *args],
        cwd=ROOT,
        env=_clean_env(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def _wait_ready(data_dir: Path, dev: subprocess.Popen[bytes]) -> None:
    state = data_dir / "dev-stack.json"
    deadline = time.monotonic() + 60
    while not state.exists():
        assert dev.poll() is None, (data_dir.parent / "dev.log").read_text()
        assert time.monotonic() < deadline, "dev-stack.json never appeared"
        await asyncio.sleep(0.2)  # poll interval, bounded by the deadline
    bootstrap = json.loads(state.read_text())["env"]["KAFKA_BOOTSTRAP_SERVERS"]
    probe = WorkerProcess({}, log_path=data_dir.parent / "dev.log")
    probe.process = dev  # type: ignore[assignment]  # "alive" means the dev command runs
    await probe.wait_ready(KafkaSettings(bootstrap_servers=bootstrap), tenant="probe")


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragstream.cli", *args],
        cwd=ROOT,
        env=_clean_env(data_dir),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def _assert_endpoints(port: int) -> None:
    """The dev worker serves its probes and metrics (README: "Operating it")."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while (ready := await http.get("/health/ready")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            await asyncio.sleep(0.2)  # poll interval, bounded by the deadline
        assert ready.json()["runtime_started"] is True
        assert (await http.get("/health/live")).json()["live"] is True
        text = (await http.get("/metrics")).text
    assert 'ragstream_breaker_state{breaker="elasticsearch"} 0.0' in text


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(dev: subprocess.Popen[bytes]) -> int:
    dev.send_signal(signal.SIGTERM)
    return dev.wait(timeout=60)


async def test_dev_runs_finds_stops_and_keeps_data(tmp_path: Path) -> None:
    """Start, ingest and search via discovery, stop cleanly, restart: the data is still there."""
    data_dir = tmp_path / "data"
    kafka_port, es_port, http_port = free_port(), free_port(), free_port()
    dev = _start_dev(data_dir, kafka_port, es_port, http_port)
    try:
        await _wait_ready(data_dir, dev)
        await _assert_endpoints(http_port)
        doc = tmp_path / "notes.md"
        doc.write_text("# Lighthouses\n\nA lighthouse keeper trims the wick at dusk.")
        ingest = _cli(data_dir, "ingest", str(doc), "--tenant", "acme", "--wait")
        assert ingest.returncode == 0 and "1 indexed" in ingest.stdout, ingest.stderr
    finally:
        code = _stop(dev)
    assert code == 0
    assert not (data_dir / "dev-stack.json").exists()
    assert not _listening(kafka_port) and not _listening(es_port)
    log = (tmp_path / "dev.log").read_text()
    assert "AUTHENTICATION IS DISABLED" in log and "stopped" in log
    assert "keywords: embedded" in log and (data_dir / "keywords" / "meta.json").is_file()

    dev = _start_dev(data_dir, kafka_port, es_port)
    try:
        await _wait_ready(data_dir, dev)
        found = _cli(data_dir, "search", "who trims the wick?", "--tenant", "acme", "--json")
        assert found.returncode == 0, found.stderr
        hits = json.loads(found.stdout)["hits"]
        assert hits and hits[0]["doc_id"] == "notes.md"
        assert sorted(hits[0]["sources"]) == ["keyword", "vector"]  # both stores kept it
    finally:
        assert _stop(dev) == 0


def test_dev_refuses_a_taken_port(tmp_path: Path) -> None:
    """A port already in use is a clear error, not a hang or a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        dev = _start_dev(tmp_path / "data", port, free_port())
        code = dev.wait(timeout=60)
    log = (tmp_path / "dev.log").read_text()
    assert code == 2 and "Traceback" not in log, log
    assert f"kafka port {port} is already in use" in log and "--kafka-port" in log


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
