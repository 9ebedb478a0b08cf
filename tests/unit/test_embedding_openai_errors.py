"""The OpenAI embedder against a mocked transport: error mapping, batching, normalisation."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx2
import numpy as np
import pytest
from pydantic import SecretStr

from services.embedding import OpenAIEmbedder, build_embedder
from streams.errors import (
    ConfigError,
    EmbeddingRejectedError,
    EmbeddingUnavailableError,
    RagstreamError,
)
from streams.settings import EmbeddingSettings, OpenAISettings, Settings

Handler = Callable[[httpx2.Request], httpx2.Response]


def _embedder(handler: Handler, **kwargs: object) -> OpenAIEmbedder:
    """An OpenAIEmbedder whose HTTP goes to ``handler``."""
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return OpenAIEmbedder(
        api_key="k",
        base_url="http://mock/v1",
        model="m",
        http_client=client,
        **kwargs,  # type: ignore[arg-type]
    )


def _error(status: int, headers: dict[str, str] | None = None) -> Handler:
    """A handler that always answers ``status`` with an OpenAI-style error body."""
    body = {"error": {"message": "nope", "type": "x", "code": None, "param": None}}
    return lambda request: httpx2.Response(status, headers=headers, json=body)


def _echo(request: httpx2.Request) -> httpx2.Response:
    """Answer each input i with the unnormalised vector [i+1, 0, 0], shuffled by index."""
    payload = json.loads(request.content)
    data = [
        {"object": "embedding", "index": i, "embedding": [float(i + 1), 0.0, 3.0]}
        for i in range(len(payload["input"]))
    ]
    return httpx2.Response(200, json={"object": "list", "data": data[::-1], "model": "m"})


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        pytest.param(500, EmbeddingUnavailableError, "embedding_unavailable", id="500"),
        pytest.param(503, EmbeddingUnavailableError, "embedding_unavailable", id="503"),
        pytest.param(400, EmbeddingRejectedError, "embedding_rejected", id="400"),
        pytest.param(404, EmbeddingRejectedError, "embedding_rejected", id="404"),
        pytest.param(422, EmbeddingRejectedError, "embedding_rejected", id="422"),
        pytest.param(401, EmbeddingRejectedError, "embedding_auth", id="401"),
        pytest.param(403, EmbeddingRejectedError, "embedding_auth", id="403"),
    ],
)
async def test_status_codes_map_to_our_errors(
    status: int, error: type[RagstreamError], code: str
) -> None:
    """Each HTTP status becomes the right error class and wire code, chained to the cause."""
    embedder = _embedder(_error(status))
    with pytest.raises(error) as info:
        await embedder.embed(["x"])
    assert info.value.code == code
    assert info.value.__cause__ is not None
    await embedder.aclose()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "7"}, 7.0, id="seconds"),
        pytest.param({"retry-after-ms": "1500"}, 1.5, id="milliseconds"),
        pytest.param({}, None, id="absent"),
        pytest.param({"Retry-After": "soon"}, None, id="garbage"),
    ],
)
async def test_rate_limit_is_retriable_with_retry_after(
    headers: dict[str, str], expected: float | None
) -> None:
    """A 429 is EmbeddingUnavailableError carrying the server's Retry-After in seconds."""
    embedder = _embedder(_error(429, headers))
    with pytest.raises(EmbeddingUnavailableError) as info:
        await embedder.embed(["x"])
    assert info.value.retriable
    assert info.value.retry_after_s == expected
    await embedder.aclose()


async def test_connection_error_is_unavailable() -> None:
    """A transport failure becomes EmbeddingUnavailableError."""

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    embedder = _embedder(refuse)
    with pytest.raises(EmbeddingUnavailableError):
        await embedder.embed(["x"])
    await embedder.aclose()


async def test_batches_keep_order_and_are_normalised() -> None:
    """Five texts in batches of two come back in input order, as unit vectors."""
    requests: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        requests.append(len(json.loads(request.content)["input"]))
        return _echo(request)

    embedder = _embedder(handler, batch_size=2)
    vectors = await embedder.embed(["a", "b", "c", "d", "e"])
    assert requests == [2, 2, 1]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0)
    firsts = [v[0] for v in vectors]
    # Within each batch, input i got [i+1, 0, 3] although the answer listed them reversed.
    expected = [1 / np.sqrt(10), 2 / np.sqrt(13), 1 / np.sqrt(10), 2 / np.sqrt(13), 1 / np.sqrt(10)]
    np.testing.assert_allclose(firsts, expected)
    await embedder.aclose()


async def test_start_learns_dimensions_and_name() -> None:
    """``start`` probes once and the name carries the learned dimensions."""
    embedder = _embedder(_echo, dimensions=None)
    with pytest.raises(RuntimeError):
        _ = embedder.name
    await embedder.start()
    assert embedder.dimensions == 3
    assert embedder.name == "openai-m-3"
    await embedder.aclose()
    await embedder.aclose()


async def test_configured_dimensions_are_sent() -> None:
    """A configured ``dimensions`` goes in the request and a mismatching answer is rejected."""
    sent: list[object] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content).get("dimensions"))
        return _echo(request)

    embedder = _embedder(handler, dimensions=256)
    with pytest.raises(EmbeddingRejectedError):
        await embedder.embed(["x"])
    assert sent == [256]
    await embedder.aclose()


async def test_build_embedder_openai_needs_a_key_or_a_local_server() -> None:
    """No key and no base URL is a ConfigError; a base URL alone gets a placeholder key."""
    openai_only = EmbeddingSettings(provider="openai")
    with pytest.raises(ConfigError):
        build_embedder(Settings(embedding=openai_only, openai=OpenAISettings(api_key=None)))
    local = OpenAISettings(api_key=None, base_url="http://127.0.0.1:1/v1")
    built = build_embedder(Settings(embedding=openai_only, openai=local))
    assert isinstance(built, OpenAIEmbedder)
    await built.aclose()
    keyed = OpenAISettings(api_key=SecretStr("sk-test"), embedding_dimensions=512)
    built = build_embedder(Settings(embedding=openai_only, openai=keyed))
    assert built.name == "openai-text-embedding-3-small-512"
    await built.aclose()
