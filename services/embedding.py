"""Embedding: text in, unit vectors out, from the local model or an OpenAI-compatible API.

Sits between chunking and indexing. ``name`` identifies the vector space (the Chroma
collection is named after it, so vectors of two models never mix). Provider errors are
mapped here, at the boundary, to ``EmbeddingUnavailableError`` (retriable: connection,
timeout, 5xx, 429) or ``EmbeddingRejectedError`` (the request itself is wrong). Retries and
breakers are not done here but by the resilience layer.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import openai
from pydantic import SecretStr

from services._local_model import DIMENSIONS as _MINILM_DIMENSIONS
from services._local_model import MiniLM
from streams.errors import (
    ConfigError,
    EmbeddingRejectedError,
    EmbeddingUnavailableError,
    RagstreamError,
)
from streams.settings import Settings

if TYPE_CHECKING:
    import httpx2

__all__ = ["Embedder", "LocalEmbedder", "OpenAIEmbedder", "build_embedder"]


@runtime_checkable
class Embedder(Protocol):
    """What the indexing and search services need from an embedding provider."""

    @property
    def name(self) -> str:
        """Stable id of the vector space, e.g. ``all-minilm-l6-v2-int8``."""

    @property
    def dimensions(self) -> int:
        """Length of every vector."""

    async def start(self) -> None:
        """Load the model or probe the server; idempotent."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in the same order."""

    async def aclose(self) -> None:
        """Release threads and connections; idempotent."""


def _batches(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    """``texts`` in consecutive slices of at most ``size``."""
    return [texts[i : i + size] for i in range(0, len(texts), size)]


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) in-process, in one dedicated thread (384 dimensions).

    ``batch_size`` is texts per forward pass (``EMBEDDING_MODEL_BATCH_SIZE``). On 2 cores the
    int8 model is fastest at 1 and slower with every larger batch, sorted by length or not
    (BENCHMARKS.md); a call of any size is still one job on the embedding thread.
    """

    name = "all-minilm-l6-v2-int8"
    dimensions = _MINILM_DIMENSIONS

    def __init__(
        self,
        *,
        batch_size: int = 1,
        max_tokens: int = 256,
        threads: int = 0,
        spin: bool = True,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
    ) -> None:
        self._batch_size = batch_size
        self._model_args: dict[str, Any] = {
            "max_tokens": max_tokens,
            "threads": threads,
            "spin": spin,
            "model_path": model_path,
            "tokenizer_path": tokenizer_path,
        }
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding")
        self._model: MiniLM | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def start(self) -> None:
        """Load the tokenizer and the ONNX session (in the embedding thread); idempotent."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("LocalEmbedder is closed")
            if self._model is None:
                loop = asyncio.get_running_loop()
                self._model = await loop.run_in_executor(
                    self._executor, lambda: MiniLM(**self._model_args)
                )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` off the event loop: one thread job, ``batch_size`` texts per pass."""
        if not texts:
            return []
        if self._model is None:
            await self.start()
        model = self._model
        assert model is not None
        loop = asyncio.get_running_loop()
        try:
            array = await loop.run_in_executor(self._executor, self._encode, model, list(texts))
        except RagstreamError:
            raise
        except Exception as exc:  # onnxruntime/tokenizers errors are untyped
            raise EmbeddingRejectedError(f"local embedding failed: {exc}") from exc
        vectors: list[list[float]] = array.tolist()
        return vectors

    def _encode(self, model: MiniLM, texts: list[str]) -> np.ndarray:
        """Every text through the model, ``batch_size`` per forward pass (embedding thread)."""
        return np.concatenate([model.encode(b) for b in _batches(texts, self._batch_size)])

    async def aclose(self) -> None:
        """Stop the embedding thread (a running batch finishes in the background)."""
        self._closed = True
        self._model = None
        self._executor.shutdown(wait=False, cancel_futures=True)


def _retry_after_s(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(float(ms) / 1000.0, 0.0)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _map_openai_error(exc: openai.OpenAIError) -> RagstreamError:
    """The one place where the openai client's exceptions become ours."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return EmbeddingUnavailableError(f"embedding server unreachable: {exc}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = f"embedding server answered {status}: {exc.message}"
        if status == 429:
            return EmbeddingUnavailableError(
                detail, retry_after_s=_retry_after_s(exc.response.headers)
            )
        if status in (401, 403):
            return EmbeddingRejectedError(detail, code="embedding_auth")
        if status >= 500 or status in (408, 409):
            return EmbeddingUnavailableError(
                detail, retry_after_s=_retry_after_s(exc.response.headers)
            )
        return EmbeddingRejectedError(detail)
    # An unparsable answer is the server's fault, not the document's: hold, don't drop.
    return EmbeddingUnavailableError(f"embedding server misbehaved: {exc}")


_NOT_COLLECTION_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OpenAIEmbedder:
    """Embeddings from the OpenAI API or any server that speaks ``POST /v1/embeddings``."""

    def __init__(
        self,
        *,
        api_key: str | SecretStr,
        base_url: str | None = None,
        model: str,
        dimensions: int | None = None,
        timeout_s: float = 30.0,
        batch_size: int = 32,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key:
            raise ConfigError("the openai embedder needs a non-empty api key")
        self._model = model
        self._requested_dimensions = dimensions
        self._dimensions = dimensions
        self._batch_size = batch_size
        self._client = openai.AsyncOpenAI(
            api_key=key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,  # retries belong to the resilience layer
            http_client=http_client,
        )
        self._closed = False

    @property
    def dimensions(self) -> int:
        """Vector length: configured, or learned from the first answer (see ``start``)."""
        if self._dimensions is None:
            raise RuntimeError("dimensions unknown: call start() first")
        return self._dimensions

    @property
    def name(self) -> str:
        """``openai-{model}-{dimensions}``, made safe for a Chroma collection name."""
        return _NOT_COLLECTION_SAFE.sub("-", f"openai-{self._model}-{self.dimensions}")

    async def start(self) -> None:
        """Embed ``"ping"`` once: checks the server, key and model, and learns dimensions."""
        await self.embed(["ping"])

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` in batches of ``batch_size``, one request per batch."""
        vectors: list[list[float]] = []
        for batch in _batches(texts, self._batch_size):
            vectors.extend(await self._embed_batch(batch))
        return vectors

    async def _embed_batch(self, batch: Sequence[str]) -> list[list[float]]:
        """One request; the answer is reordered by ``index`` and L2-normalised."""
        extra: dict[str, Any] = {}
        if self._requested_dimensions is not None:
            extra["dimensions"] = self._requested_dimensions
        try:
            response = await self._client.embeddings.create(
                model=self._model, input=list(batch), encoding_format="float", **extra
            )
        except openai.OpenAIError as exc:
            raise _map_openai_error(exc) from exc
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(batch):
            raise EmbeddingUnavailableError(
                f"embedding server returned {len(data)} vectors for {len(batch)} texts"
            )
        array = np.asarray([item.embedding for item in data], dtype=np.float64)
        if self._dimensions is None:
            self._dimensions = int(array.shape[1])
        elif array.shape[1] != self._dimensions:
            raise EmbeddingRejectedError(
                f"model {self._model!r} returned {array.shape[1]} dimensions, "
                f"expected {self._dimensions}"
            )
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms < 1e-12):
            raise EmbeddingUnavailableError("embedding server returned a zero or invalid vector")
        result: list[list[float]] = (array / norms).tolist()
        return result

    async def aclose(self) -> None:
        """Close the HTTP client; idempotent."""
        if not self._closed:
            self._closed = True
            await self._client.close()


def build_embedder(settings: Settings) -> Embedder:
    """The embedder ``settings.embedding.provider`` names (not started yet)."""
    emb = settings.embedding
    if emb.provider == "local":
        return LocalEmbedder(
            batch_size=emb.model_batch_size,
            max_tokens=emb.max_tokens,
            threads=emb.threads,
            spin=emb.spin,
        )
    oa = settings.openai
    key = oa.api_key.get_secret_value() if oa.api_key is not None else ""
    if not key:
        if not oa.base_url:
            raise ConfigError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY")
        key = "unused"  # a local OpenAI-compatible server ignores it, the client wants one
    return OpenAIEmbedder(
        api_key=key,
        base_url=oa.base_url,
        model=oa.embedding_model,
        dimensions=oa.embedding_dimensions,
        timeout_s=oa.timeout_s,
        batch_size=emb.batch_size,
    )
