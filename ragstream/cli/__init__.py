"""The ``ragstream`` command: one module per command group, each adding itself by ``register``.

Part of the composition root (``ragstream``), which nothing else imports. Every command
reads the same settings (environment variables, ``ragstream.cli._env``); when
``KAFKA_BOOTSTRAP_SERVERS`` is not set, commands find a running ``ragstream dev`` stack.
Errors go to stderr as one line; ``--json`` output on stdout stays clean for ``jq``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from ragstream.cli import (
    _env,
    auth,
    breakers,
    catalog,
    contract,
    dead_letters,
    documents,
    eval,
    reindex,
    search,
    status,
    worker,
)

__all__ = ["build_parser", "main"]

# In ``ragstream --help`` order.
_GROUPS = (
    worker,
    documents,
    search,
    eval,
    breakers,
    auth,
    contract,
    reindex,
    status,
    catalog,
    dead_letters,
)


def _version() -> str:
    try:
        return version("ragstream")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = argparse.ArgumentParser(
        prog="ragstream",
        description="Event-driven ingestion and hybrid search for RAG, on Kafka.",
        epilog=_env.example(
            "ragstream dev                       # the embedded stack + a worker",
            "ragstream ingest docs/ --wait       # in another terminal",
            'ragstream search "dead letters" --json | jq .hits',
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "-b",
        "--bootstrap-server",
        metavar="HOST:PORT",
        help="Kafka brokers, comma-separated (overrides $KAFKA_BOOTSTRAP_SERVERS)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragstream`` console script."""
    args = build_parser().parse_args(argv)
    if args.bootstrap_server:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = args.bootstrap_server
    return _env.run(args.func, args)
