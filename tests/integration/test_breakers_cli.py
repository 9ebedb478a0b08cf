"""``ragstream breakers`` on the real broker: fleet rows, ageing, --follow, --fail-on, --webhook."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from schemas.breaker import BreakerEvent, BreakerEventV2, fleet_key
from streams.codec import encode
from streams.settings import KafkaSettings
from streams.topics import ensure_topics
from tests.integration.harness import ROOT, produce


def _fields(breaker: str, old: str, new: str, worker: str, fails: int) -> dict[str, Any]:
    return {
        "breaker": breaker,
        "from": old,
        "to": new,
        "at": datetime.now(UTC),
        "fail_counter": fails,
        "worker": worker,
        "error": "StoreUnavailableError: refused" if new == "open" else None,
    }


def _event(breaker: str, old: str, new: str, worker: str, fails: int = 0) -> BreakerEvent:
    return BreakerEvent.model_validate(_fields(breaker, old, new, worker, fails))


def _v2(breaker: str, old: str, new: str, worker: str, fails: int = 0, **kw: Any) -> BreakerEventV2:
    return BreakerEventV2.model_validate(
        _fields(breaker, old, new, worker, fails) | {"heartbeat_s": 30.0} | kw
    )


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server: Any = self.server
        server.attempts += 1
        status = 503 if server.attempts == 1 else 200  # the first try fails: retried
        if status == 200:
            server.received.append(body)
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def webhook() -> Iterator[Any]:
    """A Slack-like webhook on loopback that answers 503 once, then 200."""
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.attempts, server.received = 0, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ragstream.cli", "breakers", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def test_fleet_state_follow_fail_on_open_and_webhook(
    kafka_bootstrap: str,
    topic_prefix: str,
    webhook: Any,
) -> None:
    """A row per worker and a per-breaker summary; tombstoned and silent workers age out; any
    worker's open fails ``--fail-on open``; a new transition is printed, posted, exits 1."""
    # The prefix has only its env alias: ``KafkaSettings(topic_prefix=...)`` would be ignored.
    kafka = KafkaSettings.model_validate(
        {"bootstrap_servers": kafka_bootstrap, "RAGSTREAM_TOPIC_PREFIX": topic_prefix}
    )
    assert kafka.topic_prefix == topic_prefix
    topics = await ensure_topics(kafka)
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "RAGSTREAM_TOPIC_PREFIX": topic_prefix}
    old = datetime.now(UTC) - timedelta(seconds=91)  # 3 heartbeats of 30 s missed
    history: list[tuple[bytes, BreakerEvent | BreakerEventV2 | None]] = []
    for v2 in [
        _v2("elasticsearch", "closed", "open", "a:1", 3),
        _v2("elasticsearch", "open", "half-open", "a:1", 3),
        _v2("elasticsearch", "half-open", "closed", "a:1"),
        _v2("elasticsearch", "closed", "open", "b:2", 3, partitions=["p.documents:1"]),
        _v2("vectordb", "closed", "open", "b:2", 3),
        _v2("elasticsearch", "closed", "open", "c:3", 0, reason="peer"),
        _v2("elasticsearch", "closed", "open", "gone:4", 3),  # then a tombstone
        _v2("elasticsearch", "open", "open", "silent:5", 3, heartbeat=True, at=old),
    ]:
        history += [(fleet_key(v2.breaker, v2.worker).encode(), v2)]
        v1 = _event(v2.breaker, v2.from_, v2.to, v2.worker, v2.fail_counter)
        history += [(v2.breaker.encode(), v1)]  # what a worker of this release sends too
    history += [(b"elasticsearch@gone:4", None)]
    history += [(b"elasticsearch", _event("elasticsearch", "closed", "open", "old:6", 3))]
    for key, event in history:
        value = encode(event) if event is not None else None
        await produce(kafka_bootstrap, topics.breaker_events, key=key, value=value)

    snapshot = _cli(env, "--json")
    out, err = await asyncio.to_thread(snapshot.communicate, timeout=60)
    assert snapshot.returncode == 0, err
    state = json.loads(out)
    assert state["breakers"] == {
        "elasticsearch": {"open": 3, "half-open": 0, "closed": 1},
        "vectordb": {"open": 1, "half-open": 0, "closed": 0},
    }
    rows = {w: (e["to"], e.get("reason")) for w, e in state["workers"]["elasticsearch"].items()}
    assert rows == {
        "a:1": ("closed", "local"),
        "b:2": ("open", "local"),
        "c:3": ("open", "peer"),
        "old:6": ("open", None),  # a v1-only worker (an older release) still shows
    }
    assert state["workers"]["elasticsearch"]["b:2"]["partitions"] == ["p.documents:1"]

    failing = _cli(env, "--fail-on", "open")
    out, _ = await asyncio.to_thread(failing.communicate, timeout=60)
    assert failing.returncode == 1 and "vectordb" in out and "OPEN" in out
    assert "b:2" in out and "gone:4" not in out and "silent:5" not in out

    follower = _cli(
        {**env},
        "--follow",
        "--json",
        "--fail-on",
        "half-open",
        "--webhook",
        f"http://127.0.0.1:{webhook.server_address[1]}/hook",
    )
    try:
        await _wait_for_line(follower)  # the snapshot is printed: now following
        await produce(
            kafka_bootstrap,
            topics.breaker_events,
            key=b"openai@c:3",
            value=encode(_v2("openai", "open", "half-open", "c:3", 5)),
        )
        code = await asyncio.to_thread(follower.wait, timeout=60)
        out = follower.stdout.read() if follower.stdout else ""
    finally:
        if follower.poll() is None:
            follower.kill()
    assert code == 1
    followed = [json.loads(line) for line in out.splitlines() if line.startswith('{"schema"')]
    assert [(e["breaker"], e["to"]) for e in followed] == [("openai", "half-open")]
    assert webhook.attempts == 2
    [posted] = webhook.received
    assert posted["breaker"] == "openai" and posted["to"] == "half-open"
    assert "*openai*" in posted["text"] and "half-open" in posted["text"]


async def _wait_for_line(process: subprocess.Popen[str], timeout_s: float = 60) -> None:
    """Block until the process printed the closing brace of its JSON snapshot."""
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = await asyncio.to_thread(process.stdout.readline)
        if line.rstrip() == "}":
            return
        if not line and process.poll() is not None:
            err = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"breakers exited early: {err}")
    raise TimeoutError("no snapshot printed")
