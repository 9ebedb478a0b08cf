"""``ragstream ingest`` and ``ragstream delete``: files in, documents on the topic."""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from ragstream.cli._env import (
    add_command,
    add_credentials,
    add_tenant,
    credentials,
    fail,
    settings,
)
from schemas.document import DocumentDelete, DocumentUpsert
from streams.client import IngestClient
from streams.settings import Settings

__all__ = ["collect_documents", "delete_document", "ingest_paths", "register"]

SUFFIXES = {".txt", ".md", ".markdown"}


def collect_documents(
    paths: list[str], *, tenant: str, doc_id: str | None = None
) -> list[DocumentUpsert]:
    """One document per txt/md file; id = path relative to the argument (or ``--id``)."""
    docs: list[DocumentUpsert] = []
    for arg in paths:
        root = Path(arg)
        if root.is_dir():
            files = sorted(
                p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
            )
            pairs = [(f, f.relative_to(root).as_posix()) for f in files]
        elif root.is_file():
            pairs = [(root, root.name)]
        else:
            raise FileNotFoundError(f"no such file or directory: {arg}")
        for path, rel in pairs:
            text = path.read_text(encoding="utf-8", errors="replace")
            if not text.strip():
                continue
            title = _title(text, path)
            docs.append(
                DocumentUpsert(
                    id=doc_id or rel,
                    tenant=tenant,
                    title=title,
                    text=text,
                    metadata={"path": rel, "type": path.suffix.lstrip(".").lower()},
                )
            )
    if doc_id and len(docs) > 1:
        raise ValueError("--id needs exactly one file")
    return docs


def _title(text: str, path: Path) -> str:
    for line in text.splitlines():
        stripped = line.strip().lstrip("#").strip()
        if stripped:
            return stripped[:200]
    return path.stem


async def ingest_paths(settings: Settings, args: argparse.Namespace) -> int:
    """Produce every file; with ``--wait`` print a summary of the results."""
    console = Console(stderr=True)
    try:
        docs = collect_documents(args.paths, tenant=args.tenant, doc_id=args.doc_id)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    if not docs:
        console.print("nothing to ingest (no non-empty .txt or .md files)")
        return 0
    counts: Counter[str] = Counter()
    creds = credentials(args)
    try:
        async with IngestClient(settings.kafka, token=creds.token, api_key=creds.api_key) as client:
            with Progress(console=console, transient=False) as progress:
                task = progress.add_task("producing", total=len(docs))
                futures = []
                for doc in docs:
                    futures.append((doc, await client.submit(doc)))
                    progress.advance(task)
                if args.wait:
                    done = progress.add_task("indexing", total=len(docs))
                    async with asyncio.timeout(args.timeout):
                        for doc, future in futures:
                            result = await future
                            counts[result.status] += 1
                            if result.status == "rejected" and result.error:
                                console.print(
                                    f"[red]rejected[/red] {doc.id}: "
                                    f"{result.error.code}: {result.error.message}"
                                )
                            progress.advance(done)
    except TimeoutError:
        return fail("ingest", f"results did not all arrive within {args.timeout}s")
    if args.wait:
        summary = ", ".join(
            f"{counts[s]} {s}" for s in ("indexed", "unchanged", "rejected") if counts[s]
        )
        print(f"{len(docs)} documents: {summary}")
        return 1 if counts["rejected"] else 0
    print(f"produced {len(docs)} documents to {settings.kafka.topic('documents')}")
    console.print("results were not awaited: pass --wait to wait for them and see rejections")
    return 0


async def delete_document(settings: Settings, args: argparse.Namespace) -> int:
    """Delete one document and wait for the result."""
    creds = credentials(args)
    async with IngestClient(settings.kafka, token=creds.token, api_key=creds.api_key) as client:
        result = await client.ingest(
            DocumentDelete(op="delete", id=args.doc_id, tenant=args.tenant),
            timeout_s=args.timeout,
        )
    print(f"{result.id}: {result.status}")
    return 0 if result.status == "deleted" else 1


def cmd_ingest(args: argparse.Namespace) -> int:
    """Produce files as documents, optionally waiting for their results."""
    return asyncio.run(ingest_paths(settings(), args))


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete a document everywhere."""
    return asyncio.run(delete_document(settings(), args))


def register(sub: Any) -> None:
    """Add ``ragstream ingest`` and ``ragstream delete``."""
    p = add_command(
        sub,
        "ingest",
        help="produce files (txt, md) as documents",
        description=(
            "Produce one document per .txt/.md file (id = path relative to the argument). "
            "Without --wait the command returns once the broker has them."
        ),
        examples=[
            "ragstream ingest docs/ --tenant acme --wait",
            "RAGSTREAM_TOKEN=$(ragstream token --tenant acme --scope documents:write) \\",
            "  ragstream ingest notes.md --id notes --tenant acme",
        ],
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    add_tenant(p)
    p.add_argument("--id", dest="doc_id", help="document id (only with a single file)")
    p.add_argument("--wait", action="store_true", help="wait for each ingest result")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait with --wait")
    add_credentials(p)
    p.set_defaults(func=cmd_ingest)

    p = add_command(
        sub,
        "delete",
        help="delete a document from both stores and the catalog",
        description="Delete one document everywhere and wait for the result.",
        examples=[
            "ragstream delete topics.md --tenant acme",
        ],
    )
    p.add_argument("doc_id", metavar="ID", help="the document id")
    add_tenant(p)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the result")
    add_credentials(p)
    p.set_defaults(func=cmd_delete)
