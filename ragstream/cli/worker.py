"""``ragstream dev`` and ``ragstream worker``: run the stream processor."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ragstream.cli._env import add_command, configure_logging, fail, settings
from streams.settings import default_data_dir

__all__ = ["register"]


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the worker against the configured services."""
    import asyncio

    from services.auth_tokens import check_auth_settings
    from streams.connection import check_connection

    loaded = settings()
    configure_logging(loaded)
    check_auth_settings(loaded)  # fail fast, before connecting to anything
    # Kafka next, before the heavy imports below: a bad TLS/SASL setting fails in seconds.
    asyncio.run(check_connection(loaded.kafka))

    from ragstream.app import run_worker

    run_worker(loaded)
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """Run the embedded stack plus a worker in the foreground."""
    from ragstream.devrun import run_dev

    return run_dev(
        data_dir=Path(args.data_dir).resolve(),
        kafka_port=args.kafka_port,
        elasticsearch_port=args.elasticsearch_port,
        keyword_store=args.keyword_store,
        http_port=args.http_port,
    )


def _refusing(args: argparse.Namespace) -> int:
    """``worker``, where a ``ConfigError`` means "refusing to start" (exit 2)."""
    from streams.errors import ConfigError

    try:
        return cmd_worker(args)
    except ConfigError as exc:  # unsafe or unusable settings: refuse to start, say why
        return fail("worker", f"refusing to start: {exc}", code=2)


def register(sub: Any) -> None:
    """Add ``ragstream dev`` and ``ragstream worker``."""
    p = add_command(
        sub,
        "dev",
        help="run the embedded stack and a worker in the foreground",
        description=(
            "Start a Kafka-protocol broker on 127.0.0.1, then a worker with the embedded "
            "keyword index, embedded Chroma, SQLite and the local model; Ctrl-C stops all."
        ),
        examples=[
            "ragstream dev --data-dir /tmp/rs --kafka-port 19092",
            "ragstream dev --keyword-store elasticsearch   # keywords in an ES-API server",
        ],
    )
    p.add_argument("--data-dir", default=str(default_data_dir()), help="where the stack keeps data")
    p.add_argument("--kafka-port", type=int, default=9092, help="broker port (default 9092)")
    p.add_argument(
        "--elasticsearch-port",
        type=int,
        default=9200,
        help="Elasticsearch API port, with --keyword-store elasticsearch (default 9200)",
    )
    p.add_argument(
        "--keyword-store",
        choices=("embedded", "elasticsearch"),
        default="embedded",
        help="embedded tantivy index in the data dir (default), or an Elasticsearch-API server",
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=6066,
        help="the worker's probes and /metrics on 127.0.0.1 (default 6066)",
    )
    p.set_defaults(func=cmd_dev)

    p = add_command(
        sub,
        "worker",
        help="run only the worker against configured services",
        description="Run one worker; configure it with environment variables (README).",
        examples=[
            "KAFKA_BOOTSTRAP_SERVERS=kafka:9092 ELASTICSEARCH_URL=http://es:9200 ragstream worker",
        ],
    )
    p.set_defaults(func=_refusing)
