"""``make bench``: start the embedded stack, run the benchmarks, print the tables and the machine.

    python benchmarks/run.py [search|ingest|replay|pipeline|scale|memory|metrics|all ...] [--quick]
    python benchmarks/run.py growth [--sizes 10000,100000,300000] [--engines embedded,servers]

``all`` is every benchmark but ``growth`` (issue 12's cost growth: long, run it on its own).

Every goal is a ratio against a baseline measured in the same run (the machines are shared and
noisy); absolute figures are printed too, as median [min-max, n=runs]. Results and worker logs
stay in the run's directory (printed at the end), with ``results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import (
    bench_growth,
    bench_ingest,
    bench_memory,
    bench_metrics,
    bench_scale,
    bench_search,
)
from benchmarks.common import Options, Results
from benchmarks.machine import describe
from benchmarks.stack import Stack
from benchmarks.stats import render_table

BENCHMARKS = {
    "search": bench_search.run,
    "ingest": bench_ingest.run_ingest,
    "replay": bench_ingest.run_replay,
    "pipeline": bench_ingest.run_pipeline,
    "scale": bench_scale.run,
    "memory": bench_memory.run,
    "metrics": bench_metrics.run,
    "growth": bench_growth.run,
}
ORDER = ["search", "ingest", "replay", "pipeline", "scale", "memory", "metrics", "growth"]
ALL = ORDER[:-1]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCH",
        help=f"any of {', '.join(ORDER)}, all (default: all = all but growth)",
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes, fewer repeats (~8 min for all)"
    )
    p.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (default 3)")
    p.add_argument(
        "--memory-minutes",
        type=float,
        default=None,
        help="length of the mixed-load memory run (default 3, --quick 1; the issue's is 10)",
    )
    p.add_argument("--long-memory", action="store_true", help="the issue's 10-minute memory run")
    p.add_argument(
        "--no-profile", action="store_true", help="skip py-spy during the pipeline benchmark"
    )
    p.add_argument(
        "--sizes",
        default="10000,100000,300000",
        help="growth: index sizes in chunks, comma-separated (default 10000,100000,300000)",
    )
    p.add_argument(
        "--engines",
        default="embedded,servers",
        help="growth: embedded (embedded Chroma + keyword store) and/or servers (Chroma + ES API)",
    )
    p.add_argument("--out", type=Path, default=None, help="directory for logs and results.json")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks; 0 even when a goal is missed (they are measurements)."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.benchmarks = args.benchmarks or ["all"]
    if unknown := set(args.benchmarks) - {*ORDER, "all"}:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}: choose from {', '.join(ORDER)}, all")
    chosen = ALL if "all" in args.benchmarks else [b for b in ORDER if b in args.benchmarks]
    minutes = 10.0 if args.long_memory else args.memory_minutes or (1.0 if args.quick else 3.0)
    opts = Options(
        quick=args.quick,
        repeats=args.repeats,
        memory_minutes=minutes,
        profile=not args.no_profile,
        sizes=tuple(int(s) for s in args.sizes.split(",")),
        engines=tuple(args.engines.split(",")),
    )
    logging.basicConfig(level=logging.WARNING)
    machine = describe()
    print("machine: " + "; ".join(f"{k}: {v}" for k, v in machine.items()), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stack = Stack.start(args.out)
    print(
        f"stack up in {time.monotonic() - started:.1f}s: kafka {stack.kafka.bootstrap}, "
        f"elasticsearch {stack.elasticsearch.url}, chroma {stack.chroma.url}; logs in {stack.root}",
        flush=True,
    )
    results = Results()
    failed: list[str] = []
    try:
        for name in chosen:
            t0 = time.monotonic()
            print(f"\n== {name} ==", flush=True)
            try:
                asyncio.run(BENCHMARKS[name](stack, opts, results))
            except Exception as exc:
                failed.append(name)
                results.note(f"{name} FAILED: {exc!r}"[:2000])
                stack.stop_workers()
            print(f"   ({name} took {time.monotonic() - t0:.0f}s)", flush=True)
    finally:
        stack.stop()
    _report(machine, opts, chosen, results, stack.root, time.monotonic() - started)
    return 1 if failed else 0


def _report(
    machine: dict[str, str],
    opts: Options,
    chosen: list[str],
    results: Results,
    root: Path,
    total_s: float,
) -> None:
    print("\n## Machine\n")
    print(render_table(["", ""], list(machine.items())))
    print(f"\n## Goals ({'quick' if opts.quick else 'full'} run, {total_s / 60:.1f} min)\n")
    header = ["bench", "figure", "measured", "baseline (same run)", "ratio", "goal", "met"]
    print(render_table(header, [g.row() for g in results.goals]))
    print("\n## Absolute figures: median [min-max, n=runs]\n")
    print(render_table(["figure", "value"], [[k, f.text()] for k, f in results.figures.items()]))
    if results.notes:
        print("\n## Notes\n")
        for n in results.notes:
            print(f"- {n}")
    out = root / "results.json"
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "options": opts.__dict__,
                "benchmarks": chosen,
                "goals": [g.__dict__ for g in results.goals],
                "figures": {k: f.as_dict() for k, f in results.figures.items()},
                "notes": results.notes,
            },
            indent=2,
            default=str,
        )
    )
    print(f"\nresults: {out}")


if __name__ == "__main__":
    sys.exit(main())
