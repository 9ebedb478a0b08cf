"""``ragstream worker`` with an optional benchmark-only embedder (``BENCH_EMBEDDER=wordllama``).

Registers the provider by replacing ``build_embedder`` where the runtime looks it up, then runs
the unchanged worker command. Nothing in the worker itself changes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["main"]


def _install_wordllama() -> None:
    import ragstream.runtime
    import services.embedding

    from benchmarks.wordllama_embedder import WordLlamaEmbedder

    built: list[WordLlamaEmbedder] = []

    def build(settings: Any) -> WordLlamaEmbedder:
        # One instance for ingest and search: the runtime sees the same object twice and
        # shares it (a static model answers a query in microseconds, no need for a second).
        if not built:
            built.append(WordLlamaEmbedder(batch_size=max(settings.embedding.batch_size, 64)))
        return built[0]

    services.embedding.build_embedder = build
    if hasattr(ragstream.runtime, "build_embedder"):
        ragstream.runtime.build_embedder = build


def main() -> int:
    """Run the worker."""
    embedder = os.environ.get("BENCH_EMBEDDER", "local")
    if embedder == "wordllama":
        _install_wordllama()
    elif embedder != "local":
        raise SystemExit(f"BENCH_EMBEDDER={embedder!r}: expected 'local' or 'wordllama'")
    from ragstream.cli import main as cli_main

    return cli_main(["worker"])


if __name__ == "__main__":
    sys.exit(main())
