"""``ragstream search``: request-reply over topics, printed as a table or JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from ragstream.cli._env import (
    add_command,
    add_credentials,
    add_tenant,
    credentials,
    fail,
    settings,
)
from schemas.search import SearchResult
from streams.client import SearchClient
from streams.codec import encode
from streams.settings import Settings

__all__ = ["parse_filters", "register", "render", "search"]


def parse_filters(items: list[str]) -> dict[str, str | int | float | bool]:
    """``key=value`` pairs; numbers and true/false are typed."""
    out: dict[str, str | int | float | bool] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"filter {item!r} must look like key=value")
        value: str | int | float | bool = raw
        if raw in ("true", "false"):
            value = raw == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key] = value
    return out


def render(result: SearchResult, console: Console) -> None:
    """A ranked table: doc id, title, score, snippet."""
    if result.status == "degraded":
        console.print(f"[yellow]degraded:[/yellow] {', '.join(result.degraded)} unavailable")
    table = Table(show_lines=False)
    for col in ("#", "doc id", "title", "score", "snippet"):
        table.add_column(col)
    for i, hit in enumerate(result.hits, start=1):
        snippet = " ".join(hit.text.split())[:120]
        table.add_row(str(i), hit.doc_id, hit.title[:40], f"{hit.score:.4f}", snippet)
    console.print(table)
    console.print(f"{len(result.hits)} hits in {result.took_ms:.1f} ms")


async def search(settings: Settings, args: argparse.Namespace) -> int:
    """Run one search and print it."""
    console = Console()
    try:
        filters = parse_filters(args.filter)
    except ValueError as exc:
        return fail("search", str(exc), code=2)
    creds = credentials(args)
    async with SearchClient(settings.kafka, token=creds.token, api_key=creds.api_key) as client:
        result = await client.search(
            args.query,
            tenant=args.tenant,
            top_k=args.top_k,
            mode=args.mode,
            filters=filters,
            timeout_s=args.timeout,
        )
    if args.json:
        print(json.dumps(json.loads(encode(result)), indent=2))
    else:
        render(result, console)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Search over topics and print the hits."""
    return asyncio.run(search(settings(), args))


def register(sub: Any) -> None:
    """Add ``ragstream search``."""
    p = add_command(
        sub,
        "search",
        help="search over topics",
        description="Send one search request over the topics and print the ranked hits.",
        examples=[
            'ragstream search "how do replies find their client?" --tenant acme',
            'ragstream search "dead letter" --mode keyword --filter metadata.type=md --json',
        ],
    )
    p.add_argument("query", help="the query text")
    p.add_argument("--top-k", type=int, default=5, help="hits to return (default 5)")
    p.add_argument("--mode", choices=["hybrid", "vector", "keyword"], default="hybrid")
    add_tenant(p)
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="exact-match filter, e.g. metadata.lang=en (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the raw JSON result")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the reply")
    add_credentials(p)
    p.set_defaults(func=cmd_search)
