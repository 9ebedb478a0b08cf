"""The ``ragstream`` command: dev stack, worker, ingest, search, delete.

Top of the import graph. Every command reads the same settings (environment
variables); when ``KAFKA_BOOTSTRAP_SERVERS`` is not set, commands find a running
``ragstream dev`` stack through ``{data dir}/dev-stack.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.settings import Settings, default_data_dir

__all__ = ["main"]


def _discover_dev_stack() -> None:
    """Point the environment at a running dev stack unless it is configured already."""
    from streams.devrun import STATE_FILE

    state = default_data_dir() / STATE_FILE
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ or not state.exists():
        return
    try:
        data = json.loads(state.read_text())
        env, pid = data["env"], int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not _alive(pid):  # `ragstream dev` was killed (SIGKILL, a crash): its ports are dead
        print(f"ignoring {state}: the dev stack (pid {pid}) is not running", file=sys.stderr)
        state.unlink(missing_ok=True)
        return
    for name, value in env.items():
        os.environ.setdefault(name, value)


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal still exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _settings() -> Settings:
    _discover_dev_stack()
    return Settings()


def _configure_logging(settings: Settings) -> None:
    from streams.logs import configure_logging

    configure_logging(level=settings.log_level, fmt=settings.log_format)


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the worker against the configured services."""
    from services.auth_tokens import check_auth_settings
    from streams.app import run_worker
    from streams.errors import ConfigError

    settings = _settings()
    _configure_logging(settings)
    try:
        check_auth_settings(settings)  # fail fast, before connecting to anything
        run_worker(settings)
    except ConfigError as exc:  # unsafe or unusable settings: refuse to start, say why
        print(f"ragstream worker: refusing to start: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """Run the embedded stack plus a worker in the foreground."""
    from streams.devrun import run_dev

    return run_dev(
        data_dir=Path(args.data_dir).resolve(),
        kafka_port=args.kafka_port,
        elasticsearch_port=args.elasticsearch_port,
    )


def cmd_ingest(args: argparse.Namespace) -> int:
    """Produce files as documents, optionally waiting for their results."""
    from streams.cli_ingest import ingest_paths

    settings = _settings()
    return asyncio.run(ingest_paths(settings, args))


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete a document everywhere."""
    from streams.cli_ingest import delete_document

    return asyncio.run(delete_document(_settings(), args))


def cmd_search(args: argparse.Namespace) -> int:
    """Search over topics and print the hits."""
    from streams.cli_search import search

    return asyncio.run(search(_settings(), args))


def cmd_schemas(args: argparse.Namespace) -> int:
    """Write the JSON Schema files of the contract."""
    from schemas.export import write_json_schemas

    for path in write_json_schemas(Path(args.out)):
        print(path)
    return 0


def _add_credentials(p: argparse.ArgumentParser) -> None:
    """``--token`` / ``--api-key`` (from ``RAGSTREAM_TOKEN`` / ``RAGSTREAM_API_KEY``)."""
    p.add_argument(
        "--token",
        default=os.environ.get("RAGSTREAM_TOKEN"),
        help="JWT sent as 'authorization: Bearer' (default $RAGSTREAM_TOKEN)",
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("RAGSTREAM_API_KEY"),
        help="API key sent as 'x-api-key' (default $RAGSTREAM_API_KEY)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ragstream", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dev", help="run the embedded stack and a worker in the foreground")
    p.add_argument("--data-dir", default=str(default_data_dir()))
    p.add_argument("--kafka-port", type=int, default=9092)
    p.add_argument("--elasticsearch-port", type=int, default=9200)
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("worker", help="run only the worker against configured services")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("ingest", help="produce files (txt, md) as documents")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--tenant", default=os.environ.get("RAGSTREAM_TENANT", "default"))
    p.add_argument("--id", dest="doc_id", help="document id (only with a single file)")
    p.add_argument("--wait", action="store_true", help="wait for each ingest result")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait with --wait")
    _add_credentials(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="search over topics")
    p.add_argument("query")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--mode", choices=["hybrid", "vector", "keyword"], default="hybrid")
    p.add_argument("--tenant", default=os.environ.get("RAGSTREAM_TENANT", "default"))
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="exact-match filter, e.g. metadata.lang=en (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the raw JSON result")
    p.add_argument("--timeout", type=float, default=15.0)
    _add_credentials(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("delete", help="delete a document from both stores and the catalog")
    p.add_argument("doc_id", metavar="ID")
    p.add_argument("--tenant", default=os.environ.get("RAGSTREAM_TENANT", "default"))
    p.add_argument("--timeout", type=float, default=60.0)
    _add_credentials(p)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("schemas", help="write the contract's JSON Schema files")
    p.add_argument("--out", default="schemas/json")
    p.set_defaults(func=cmd_schemas)
    __import__("streams.cli_breakers", fromlist=["register"]).register(sub)
    __import__("streams.cli_auth", fromlist=["register"]).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragstream`` console script."""
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
