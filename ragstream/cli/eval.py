"""``ragstream eval DIR``: the worker's retrieval quality and latency on a BEIR collection."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ragstream.cli._env import add_command, add_credentials, credentials, fail, settings
from ragstream.evaluation import (
    MODES,
    Collection,
    CollectionError,
    EvalReport,
    load_collection,
    run_eval,
)

__all__ = ["register", "render"]


class _Bars:
    """One rich progress bar per phase, on stderr."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: Any = None

    def phase(self, name: str, total: int) -> None:
        self._task = self._progress.add_task(name, total=total)

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, steps)


def render(report: EvalReport, console: Console) -> None:
    """The per-mode table: quality, latency, mean worker timings, statuses."""
    ing = report.ingest
    console.print(
        f"{report.collection}: {report.documents} documents ({ing['chunks']} chunks, "
        f"ingested in {ing['seconds']:.1f} s, {ing['docs_per_s']:.1f} docs/s, "
        f"{ing['statuses']}), {report.queries} judged queries, top_k {report.top_k}, "
        f"concurrency {report.concurrency}, tenant {report.tenant}"
        + (" (kept)" if report.kept else " (deleted)")
    )
    table = Table()
    cols = ["mode", "nDCG@10", "Recall@100", "MRR@10", "p50 ms", "p99 ms"]
    cols += ["embed", "vector", "keyword", "fuse", "total", "statuses"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("mode", "statuses") else "right")
    for m in report.modes:
        t = m.timings_ms
        table.add_row(
            m.mode,
            f"{m.ndcg_at_10:.4f}",
            f"{m.recall_at_100:.4f}",
            f"{m.mrr_at_10:.4f}",
            f"{m.p50_ms:.1f}",
            f"{m.p99_ms:.1f}",
            *(f"{t[k]:.2f}" if k in t else "-" for k in ("embed", "vector", "keyword", "fuse")),
            f"{t['total']:.2f}" if "total" in t else "-",
            ", ".join(f"{n} {s}" for s, n in sorted(m.statuses.items())),
        )
    console.print(table)
    console.print(
        "embed .. total: mean worker timings (timings_ms) in ms; p50/p99: round trip over "
        "the topics at this concurrency"
    )


async def evaluate(args: argparse.Namespace, coll: Collection, name: str) -> int:
    """Run the evaluation and print the report."""
    modes = args.mode or list(MODES)
    tenant = args.tenant or f"eval-{secrets.token_hex(4)}"
    creds = credentials(args)
    loaded = settings()
    err = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False, disable=args.no_progress) as progress:
        report = await run_eval(
            loaded.kafka,
            coll,
            collection_name=name,
            tenant=tenant,
            modes=modes,
            top_k=args.top_k,
            concurrency=args.concurrency,
            search_timeout_s=args.timeout,
            ingest_timeout_s=args.ingest_timeout,
            keep=args.keep,
            token=creds.token,
            api_key=creds.api_key,
            progress=_Bars(progress),
        )
    if args.json:
        data = report.as_dict()
        if not args.per_query:
            for m in data["modes"]:
                m.pop("per_query", None)
        json.dump(data, sys.stdout, indent=2)
        print()
    else:
        out = Console()
        render(report, out if out.is_terminal else Console(width=200))  # a file: no wrapping
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate retrieval on a BEIR collection."""
    if args.top_k < 1 or args.concurrency < 1:
        return fail("eval", "--top-k and --concurrency must be at least 1", code=2)
    root = Path(args.dir)
    try:
        coll = load_collection(root, split=args.split, max_queries=args.max_queries)
    except (CollectionError, OSError) as exc:
        return fail("eval", str(exc), code=2)
    return asyncio.run(evaluate(args, coll, root.absolute().name))


def register(sub: Any) -> None:
    """Add ``ragstream eval``."""
    p = add_command(
        sub,
        "eval",
        help="measure retrieval quality on a BEIR collection",
        description=(
            "Ingest a BEIR collection (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) over the "
            "topics into a scratch tenant, run every judged query in each mode, and print "
            "nDCG@10, Recall@100 and MRR@10 per mode with p50/p99 latency and the worker's mean "
            "timings. The scratch tenant's documents are deleted at the end unless --keep. "
            "Chunk hits count for their document at its first rank: Recall@100 needs --top-k "
            "at least 100 (the worker caps it at SEARCH_MAX_TOP_K)."
        ),
        examples=[
            "ragstream eval ../shared/data/ir/cisi",
            "ragstream eval datasets/scifact --mode keyword --mode hybrid --json | jq .modes",
        ],
    )
    p.add_argument("dir", metavar="DIR", help="the collection's directory")
    p.add_argument(
        "--mode",
        action="append",
        choices=list(MODES),
        help="a mode to run (repeatable; default all three)",
    )
    p.add_argument("--split", default="test", help="qrels/SPLIT.tsv (default test)")
    p.add_argument("--top-k", type=int, default=100, help="hits per query (default 100)")
    p.add_argument(
        "--concurrency", type=int, default=4, help="searches in flight at once (default 4)"
    )
    p.add_argument("--max-queries", type=int, default=None, help="only the first N judged queries")
    p.add_argument(
        "--tenant", default=None, help="scratch tenant (default eval-<random>; never yours)"
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch tenant's documents")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--per-query", action="store_true", help="with --json: every query's metrics")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per search (default 30)")
    p.add_argument(
        "--ingest-timeout",
        type=float,
        default=3600.0,
        help="seconds to wait for every ingest result (default 3600)",
    )
    add_credentials(p)
    p.set_defaults(func=cmd_eval)
