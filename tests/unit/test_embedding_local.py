"""The local embedder: the real int8 MiniLM model, in-process (nothing running needed)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

import services
from services._local_model import default_tokenizer_path
from services.embedding import Embedder, LocalEmbedder, build_embedder
from streams.settings import EmbeddingSettings, Settings

QUERY = "How do I reset my password?"
ANSWER = "To reset your password, open settings, choose Security and click 'Reset password'."
UNRELATED = "The train leaves at noon."


@pytest.fixture(scope="module")
async def embedder() -> AsyncIterator[LocalEmbedder]:
    """One loaded local embedder shared by the module (loading takes about a second)."""
    local = LocalEmbedder(batch_size=2)
    await local.start()
    yield local
    await local.aclose()


def _cos(a: list[float], b: list[float]) -> float:
    """Cosine of two unit vectors."""
    return float(np.dot(a, b))


async def test_vectors_are_unit_length_with_384_dimensions(embedder: LocalEmbedder) -> None:
    """Every vector has 384 components and norm 1."""
    vectors = await embedder.embed([QUERY, ANSWER, UNRELATED])
    assert len(vectors) == 3
    assert all(len(v) == embedder.dimensions == 384 for v in vectors)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_related_text_is_closer_than_unrelated_text(embedder: LocalEmbedder) -> None:
    """The password answer is nearer the password question than the train timetable is."""
    query, answer, unrelated = await embedder.embed([QUERY, ANSWER, UNRELATED])
    assert _cos(query, answer) > _cos(query, unrelated) + 0.3


async def test_empty_input_gives_empty_output(embedder: LocalEmbedder) -> None:
    """No texts, no vectors, and no work."""
    assert await embedder.embed([]) == []


async def test_same_text_gives_same_vector(embedder: LocalEmbedder) -> None:
    """Embedding is deterministic for the same text in the same batch shape."""
    first = await embedder.embed([ANSWER])
    second = await embedder.embed([ANSWER])
    assert first == second


async def test_order_is_kept_across_batches(embedder: LocalEmbedder) -> None:
    """Five texts in batches of two come back in input order, matching one-by-one vectors."""
    texts = [QUERY, ANSWER, UNRELATED, "Kafka partitions", "Elasticsearch mappings"]
    together = await embedder.embed(texts)
    for text, vector in zip(texts, together, strict=True):
        (alone,) = await embedder.embed([text])
        np.testing.assert_allclose(vector, alone, atol=1e-4)


async def test_long_text_is_truncated_not_rejected(embedder: LocalEmbedder) -> None:
    """A text far beyond max_tokens still yields one unit vector."""
    (vector,) = await embedder.embed(["word " * 5000])
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-5


async def test_embed_after_close_fails_loudly() -> None:
    """A closed embedder refuses to start again instead of hanging."""
    local = LocalEmbedder()
    await local.aclose()
    await local.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await local.embed(["x"])


async def test_build_embedder_defaults_to_local() -> None:
    """The default settings build a LocalEmbedder that satisfies the Embedder protocol."""
    built = build_embedder(Settings(embedding=EmbeddingSettings(provider="local")))
    try:
        assert isinstance(built, LocalEmbedder)
        assert isinstance(built, Embedder)
        assert built.name == "all-minilm-l6-v2-int8"
    finally:
        await built.aclose()


async def test_model_batch_size_sets_texts_per_forward_pass() -> None:
    """EMBEDDING_MODEL_BATCH_SIZE cuts one call into forward passes of that many texts."""
    built = build_embedder(Settings(embedding=EmbeddingSettings(model_batch_size=2)))
    assert isinstance(built, LocalEmbedder)
    try:
        await built.start()
        model = built._model
        assert model is not None
        sizes: list[int] = []
        encode = model.encode

        def counting(texts: list[str]) -> np.ndarray:
            sizes.append(len(texts))
            return encode(texts)

        model.encode = counting  # type: ignore[method-assign]
        vectors = await built.embed([QUERY, ANSWER, UNRELATED, "Kafka", "Chroma"])
        assert sizes == [2, 2, 1]
        assert len(vectors) == 5
    finally:
        await built.aclose()


def test_local_model_runs_one_text_per_pass_by_default() -> None:
    """The default is the int8 model's fastest pass size on these machines (BENCHMARKS.md)."""
    assert EmbeddingSettings().model_batch_size == 1
    assert EmbeddingSettings().batch_size == 32
    assert EmbeddingSettings().spin is True


@pytest.mark.parametrize(("spin", "expected"), [(False, "0"), (True, None)])
async def test_embedding_spin_sets_the_sessions_spinning(spin: bool, expected: str | None) -> None:
    """EMBEDDING_SPIN=false stops idle onnxruntime threads from busy-waiting."""
    built = build_embedder(Settings(embedding=EmbeddingSettings(spin=spin)))
    assert isinstance(built, LocalEmbedder)
    try:
        await built.start()
        assert built._model is not None
        options = built._model._session.get_session_options()
        try:
            value = options.get_session_config_entry("session.intra_op.allow_spinning")
        except Exception:  # never set: onnxruntime's default, spinning
            value = None
        assert value == expected
        assert len(await built.embed([QUERY])) == 1
    finally:
        await built.aclose()


def test_tokenizer_ships_with_the_package_unmodified() -> None:
    """The tokenizer is services' package data, byte for byte the file its NOTICE names."""
    path = default_tokenizer_path()
    assert path.parent == Path(services.__file__).parent / "data"
    notice = (path.parent / "NOTICE").read_text()
    (pinned,) = re.findall(r"^sha256 ([0-9a-f]{64})$", notice, re.MULTILINE)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == pinned
    assert "Apache License" in (path.parent / "LICENSE-Apache-2.0.txt").read_text()
