"""``ragstream dev``: the embedded stack plus a worker, in the foreground.

Starts a Kafka-protocol broker (Tansu) and a worker process that uses the embedded keyword
index (tantivy), embedded Chroma and a SQLite catalog in the data dir and the local embedding
model; with ``keyword_store="elasticsearch"`` it also starts an Elasticsearch-API server
(noida-db) and the worker keeps its keywords there. Writes ``{data dir}/dev-stack.json`` so
the other commands find it, and stops everything cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType

from ragstream.devstack import Service, start_elasticsearch, start_kafka
from ragstream.workers import WorkerProcess, worker_env
from streams.errors import RagstreamError

__all__ = ["run_dev"]

STATE_FILE = "dev-stack.json"


class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _say(message: str) -> None:
    print(f"ragstream dev | {message}", file=sys.stderr, flush=True)


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_dev(
    *,
    data_dir: Path,
    kafka_port: int,
    elasticsearch_port: int,
    keyword_store: str = "embedded",
    http_port: int = 6066,
) -> int:
    """Run until interrupted; return the exit code."""
    ports = [("kafka", "--kafka-port", kafka_port), ("worker HTTP", "--http-port", http_port)]
    if keyword_store == "elasticsearch":
        ports.append(("elasticsearch", "--elasticsearch-port", elasticsearch_port))
    for name, flag, port in ports:
        if _port_taken(port):
            _say(
                f"error: {name} port {port} is already in use (another ragstream dev?); "
                f"stop it or pick another with {flag}"
            )
            return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    state = data_dir / STATE_FILE
    services: list[Service] = []
    worker: WorkerProcess | None = None
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        kafka = start_kafka(port=kafka_port, data_dir=data_dir / "kafka")
        services.append(kafka)
        _say(f"kafka (Tansu, memory storage: topics are lost on restart)  {kafka.bootstrap}")
        es_url = os.environ.get("ELASTICSEARCH_URL", "http://127.0.0.1:9200")
        if keyword_store == "elasticsearch":
            es = start_elasticsearch(port=elasticsearch_port, data_dir=data_dir / "elasticsearch")
            services.append(es)
            es_url = es.url
            _say(f"keywords: elasticsearch API (noida-db)                     {es.url}")
        else:
            where = data_dir / "keywords"
            _say(f"keywords: embedded (tantivy, persistent)                   {where}")
        env = worker_env(
            kafka_bootstrap=kafka.bootstrap,
            elasticsearch_url=es_url,
            data_dir=data_dir,
            session_timeout_s=os.environ.get("KAFKA_SESSION_TIMEOUT_S", "6"),
            rebalance_timeout_s=os.environ.get("KAFKA_REBALANCE_TIMEOUT_S", "2"),
            KEYWORD_STORE=keyword_store,
            ELASTICSEARCH_REFRESH=os.environ.get("ELASTICSEARCH_REFRESH", "true"),
            # Only the dev stack defaults to no authentication (RAGSTREAM_AUTH=required: on).
            RAGSTREAM_AUTH=os.environ.get("RAGSTREAM_AUTH", "disabled"),
            RAGSTREAM_HTTP_PORT=str(http_port),
        )
        _say(f"chroma (embedded, persistent)                              {data_dir / 'chroma'}")
        _say(
            f"catalog (SQLite)                                           {data_dir / 'catalog.db'}"
        )
        _say("embeddings: local all-MiniLM-L6-v2 (int8 ONNX, no network)")
        endpoint = f"http://127.0.0.1:{http_port}"
        _say(f"worker probes and metrics    {endpoint}/health/live  /health/ready  /metrics")
        if env["RAGSTREAM_AUTH"] == "disabled":
            _say("!" * 78)
            _say("AUTHENTICATION IS DISABLED: any client may write and search any tenant.")
            _say("Development only. Set RAGSTREAM_AUTH=required and JWT_SECRET_KEY to try auth.")
            _say("!" * 78)
        else:
            _say("authentication: required (RAGSTREAM_AUTH=required)")
        state.write_text(json.dumps({"pid": os.getpid(), "env": env}, indent=2))
        worker = WorkerProcess(env).start()  # logs to this terminal
        _say(f"worker pid {worker.pid}; logs below. Ctrl-C stops everything.")
        _say('try:  ragstream ingest docs/ --wait   then   ragstream search "what is ragstream"')
        while True:
            code = worker.poll()
            if code is not None:
                _say(f"worker exited with code {code}")
                return code or 1
            time.sleep(0.5)
    except _Stop as stop:
        _say(f"{stop}: stopping")
        return 0
    except RagstreamError as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if worker is not None:
            worker.stop(grace_s=30)  # SIGTERM, then SIGKILL
        for service in reversed(services):
            service.stop()
        state.unlink(missing_ok=True)
        _say("stopped")
