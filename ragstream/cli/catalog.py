"""``ragstream documents get|list``: the catalog's view of documents.

Reads the SQL catalog (``DATABASE_URL``, or the dev stack's SQLite): status (``indexed``, or
``failed`` when the indexer could never write it), chunks, content hash, first and last
indexed, and the last error. Exit codes: 0 found, 1 failed, 2 usage, 3 no such document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from ragstream.cli._env import add_command, add_tenant, fail, settings
from ragstream.cli._topics import EXIT_NOT_FOUND, table
from schemas.chunks import DocumentRecord
from stores.catalog import SqlCatalog

__all__ = ["record_json", "register"]


def record_json(record: DocumentRecord) -> dict[str, Any]:
    """One catalog row as JSON."""
    return {
        "tenant": record.tenant,
        "doc_id": record.doc_id,
        "status": record.status,
        "chunks": record.chunk_count,
        "content_hash": record.content_hash,
        "title": record.title,
        "first_indexed": record.created_at.isoformat() if record.created_at else None,
        "last_indexed": record.updated_at.isoformat() if record.updated_at else None,
        "last_error": record.last_error,
        "last_error_at": record.last_error_at.isoformat() if record.last_error_at else None,
    }


async def _with_catalog(work: Any) -> Any:
    catalog = SqlCatalog.from_settings(settings())
    try:
        return await work(catalog)
    finally:
        await catalog.aclose()


def _get(args: argparse.Namespace) -> int:
    record = asyncio.run(_with_catalog(lambda c: c.get(args.tenant, args.doc_id)))
    if record is None:
        return fail(
            "documents get",
            f"no document {args.doc_id!r} in tenant {args.tenant!r}",
            code=EXIT_NOT_FOUND,
        )
    body = record_json(record)
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        for key, value in body.items():
            print(f"{key:>14}: {'' if value is None else value}")
    return 0


def _list(args: argparse.Namespace) -> int:
    records = asyncio.run(
        _with_catalog(
            lambda c: c.list(args.tenant, limit=args.limit, offset=args.offset, status=args.status)
        )
    )
    if args.json:
        print(json.dumps([record_json(r) for r in records], indent=2))
        return 0
    if not records:
        print(
            f"no documents in tenant {args.tenant!r}"
            + (f" with status {args.status}" if args.status else "")
        )
        return 0
    rows = [("DOC ID", "STATUS", "CHUNKS", "LAST INDEXED (UTC)", "HASH", "LAST ERROR")]
    for r in records:
        at = r.updated_at.strftime("%Y-%m-%d %H:%M:%S") if r.updated_at else ""
        rows.append(
            (
                r.doc_id[:50],
                r.status,
                str(r.chunk_count),
                at,
                r.content_hash[:12],
                (r.last_error or "")[:50],
            )
        )
    print(table(rows))
    return 0


def register(sub: Any) -> None:
    """Add ``ragstream documents get|list``."""
    group = add_command(
        sub,
        "documents",
        help="the catalog's view of documents (get, list)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        examples=[
            "ragstream documents get handbook.md --tenant acme --json",
            "ragstream documents list --tenant acme --status failed",
        ],
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = add_command(
        actions,
        "get",
        help="one document",
        examples=["ragstream documents get handbook.md --tenant acme --json"],
    )
    p.add_argument("doc_id", metavar="ID")
    add_tenant(p)
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    p.set_defaults(func=_get)
    p = add_command(
        actions,
        "list",
        help="a tenant's documents, by id",
        examples=["ragstream documents list --tenant acme --status failed"],
    )
    add_tenant(p)
    p.add_argument("--status", help="only this status (indexed, failed)")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--offset", type=int, default=0, help="skip this many first")
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    p.set_defaults(func=_list)
