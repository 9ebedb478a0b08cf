"""``ragstream search``: request-reply over topics, printed as a table or JSON."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from schemas.search import SearchResult
from streams.client import SearchClient
from streams.codec import encode
from streams.errors import RagstreamError
from streams.settings import Settings

__all__ = ["parse_filters", "render", "search"]


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
        async with SearchClient(settings.kafka, token=args.token, api_key=args.api_key) as client:
            result = await client.search(
                args.query,
                tenant=args.tenant,
                top_k=args.top_k,
                mode=args.mode,
                filters=filters,
                timeout_s=args.timeout,
            )
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except RagstreamError as exc:
        console.print(f"[red]error ({exc.code}):[/red] {exc}")
        return 1
    if args.json:
        print(json.dumps(json.loads(encode(result)), indent=2))
    else:
        render(result, console)
    return 0
