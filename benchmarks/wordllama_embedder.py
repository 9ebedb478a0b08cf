"""A fast embedder for benchmark 1b: WordLlama static embeddings behind the ``Embedder`` protocol.

Lives here, not in ``services``: it exists so the pipeline's own ceiling can be measured with an
embedder that is not the bottleneck. Fully offline: the weights ship in the ``wordllama`` wheel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["WordLlamaEmbedder", "load_wordllama"]


def load_wordllama() -> Any:
    """The default WordLlama model (256 dimensions) from the package's own directory."""
    import wordllama

    return wordllama.WordLlama.load(
        cache_dir=Path(wordllama.__file__).parent, disable_download=True
    )


class WordLlamaEmbedder:
    """WordLlama ``l2_supercat`` (256 dimensions), L2-normalised, in one dedicated thread."""

    name = "wordllama-l2-supercat-256"
    dimensions = 256

    def __init__(self, *, batch_size: int = 64) -> None:
        self._batch_size = batch_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding")
        self._model: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Load the model once (in the embedding thread)."""
        async with self._lock:
            if self._model is None:
                loop = asyncio.get_running_loop()
                self._model = await loop.run_in_executor(self._executor, load_wordllama)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, off the event loop."""
        if not texts:
            return []
        if self._model is None:
            await self.start()
        model = self._model
        loop = asyncio.get_running_loop()
        array = await loop.run_in_executor(
            self._executor, lambda: model.embed(list(texts), norm=True, batch_size=self._batch_size)
        )
        result: list[list[float]] = array.tolist()
        return result

    async def aclose(self) -> None:
        """Stop the embedding thread; idempotent."""
        self._model = None
        self._executor.shutdown(wait=False, cancel_futures=True)
