"""No client exception escapes a store unmapped: outages are retriable, bad requests are not.

Needs no service: stores are pointed at a closed port, at a port that never answers, or at an
embedded Chroma in a temporary directory; the translation tables are checked case by case.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import chromadb.errors
import elastic_transport
import elasticsearch
import httpx
import pytest

from stores import chroma as chroma_module
from stores import elastic as elastic_module
from stores.chroma import ChromaVectorStore
from stores.elastic import ElasticKeywordStore
from streams.errors import ConfigError, StoreRejectedError, StoreUnavailableError
from tests.contract_search_stores import make_chunk, vector_for

Call = Callable[[Any], Awaitable[object]]

_VECTOR_CALLS = [
    pytest.param(lambda s: s.start(), id="start"),
    pytest.param(lambda s: s.upsert([make_chunk()], [vector_for(0)]), id="upsert"),
    pytest.param(lambda s: s.delete_document("acme", "d", keep=1), id="delete_document"),
    pytest.param(lambda s: s.query("acme", vector_for(0), top_k=3), id="query"),
    pytest.param(lambda s: s.count("acme", "d"), id="count"),
    pytest.param(lambda s: s.ping(), id="ping"),
]
_KEYWORD_CALLS = [
    pytest.param(lambda s: s.start(), id="start"),
    pytest.param(lambda s: s.upsert([make_chunk()]), id="upsert"),
    pytest.param(lambda s: s.delete_document("acme", "d", keep=1), id="delete_document"),
    pytest.param(lambda s: s.search("acme", "words", top_k=3), id="search"),
    pytest.param(lambda s: s.count("acme", "d"), id="count"),
    pytest.param(lambda s: s.ping(), id="ping"),
]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (in the backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("call", _KEYWORD_CALLS)
async def test_elastic_on_a_closed_port_is_unavailable(closed_port: int, call: Call) -> None:
    """Every ElasticKeywordStore call against a closed port raises StoreUnavailableError."""
    store = ElasticKeywordStore(url=f"http://127.0.0.1:{closed_port}", index="chunks")
    try:
        with pytest.raises(StoreUnavailableError) as info:
            await call(store)
        assert info.value.retriable
        assert isinstance(info.value.__cause__, Exception)
    finally:
        await store.aclose()


async def test_elastic_timeout_is_unavailable(silent_port: int) -> None:
    """A server that never answers makes the call time out as StoreUnavailableError."""
    store = ElasticKeywordStore(url=f"http://127.0.0.1:{silent_port}", index="c", timeout_s=0.3)
    try:
        with pytest.raises(StoreUnavailableError):
            await store.ping()
    finally:
        await store.aclose()


@pytest.mark.parametrize("call", _VECTOR_CALLS)
async def test_chroma_on_a_closed_port_is_unavailable(closed_port: int, call: Call) -> None:
    """Every ChromaVectorStore call against a closed server port raises StoreUnavailableError."""
    store = ChromaVectorStore(collection="chunks", url=f"http://127.0.0.1:{closed_port}")
    try:
        with pytest.raises(StoreUnavailableError) as info:
            await call(store)
        assert info.value.retriable
    finally:
        await store.aclose()


async def test_chroma_timeout_is_unavailable(silent_port: int) -> None:
    """A Chroma server that never answers makes the call time out as StoreUnavailableError."""
    store = ChromaVectorStore(
        collection="chunks", url=f"http://127.0.0.1:{silent_port}", timeout_s=0.3
    )
    try:
        with pytest.raises(StoreUnavailableError):
            await store.ping()
    finally:
        await store.aclose()


async def test_chroma_wrong_dimension_is_rejected(tmp_path: Path) -> None:
    """An embedded Chroma refuses a query of another dimension with StoreRejectedError."""
    store = ChromaVectorStore(collection="chunks", path=tmp_path)
    try:
        await store.upsert([make_chunk()], [vector_for(0)])
        with pytest.raises(StoreRejectedError) as info:
            await store.query("acme", [1.0, 0.0], top_k=1)
        assert not info.value.retriable
    finally:
        await store.aclose()


async def test_chroma_invalid_collection_name_is_rejected(tmp_path: Path) -> None:
    """A collection name Chroma does not allow is rejected when the store starts."""
    store = ChromaVectorStore(collection="x", path=tmp_path)
    try:
        with pytest.raises(StoreRejectedError):
            await store.start()
    finally:
        await store.aclose()


async def test_chroma_closed_store_is_unavailable(tmp_path: Path) -> None:
    """A call after aclose() raises StoreUnavailableError, and aclose() is idempotent."""
    store = ChromaVectorStore(collection="chunks", path=tmp_path)
    await store.aclose()
    await store.aclose()
    with pytest.raises(StoreUnavailableError):
        await store.count("acme")


async def test_chroma_upsert_refuses_mismatched_lengths(tmp_path: Path) -> None:
    """Two chunks with one embedding are rejected before reaching Chroma."""
    store = ChromaVectorStore(collection="chunks", path=tmp_path)
    try:
        with pytest.raises(StoreRejectedError):
            await store.upsert([make_chunk(n=0), make_chunk(n=1)], [vector_for(0)])
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="neither-path-nor-url"),
        pytest.param({"url": ""}, id="empty-url-no-path"),
    ],
)
def test_chroma_needs_a_path_or_a_url(kwargs: dict[str, Any]) -> None:
    """Without a path or a url the store refuses to be built."""
    with pytest.raises(ConfigError):
        ChromaVectorStore(collection="chunks", **kwargs)


async def test_chroma_bad_url_is_a_config_error() -> None:
    """A url that is not http(s)://host[:port] is a ConfigError on start."""
    store = ChromaVectorStore(collection="chunks", url="ftp://somewhere")
    try:
        with pytest.raises(ConfigError):
            await store.start()
    finally:
        await store.aclose()


def _api_error(status: int) -> elasticsearch.ApiError:
    meta = elastic_transport.ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=elastic_transport.HttpHeaders(),
        duration=0.0,
        node=elastic_transport.NodeConfig("http", "127.0.0.1", 9200),
    )
    return elasticsearch.ApiError("boom", meta=meta, body={"error": {"type": "x"}})


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(_api_error(503), StoreUnavailableError, id="503"),
        pytest.param(_api_error(429), StoreUnavailableError, id="429"),
        pytest.param(_api_error(400), StoreRejectedError, id="400"),
        pytest.param(_api_error(404), StoreRejectedError, id="404"),
        pytest.param(
            elastic_transport.ConnectionError("refused"), StoreUnavailableError, id="conn"
        ),
        pytest.param(
            elastic_transport.ConnectionTimeout("slow"), StoreUnavailableError, id="timeout"
        ),
        pytest.param(
            elastic_transport.SerializationError("bad"), StoreRejectedError, id="serialize"
        ),
        pytest.param(ValueError("bad arg"), StoreRejectedError, id="value-error"),
        pytest.param(RuntimeError("odd"), StoreUnavailableError, id="unknown"),
    ],
)
def test_elastic_translation_table(exc: Exception, expected: type[Exception]) -> None:
    """Each kind of Elasticsearch client exception maps to the right error of ours."""
    assert type(elastic_module._translate(exc)) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(400, StoreRejectedError, id="400-mapping"),
        pytest.param(429, StoreUnavailableError, id="429-queue-full"),
        pytest.param(503, StoreUnavailableError, id="503"),
    ],
)
def test_elastic_bulk_item_errors(status: int, expected: type[Exception]) -> None:
    """A failed item in a bulk response raises, retriable only for 429 and 5xx."""
    response = {
        "errors": True,
        "items": [
            {"index": {"_id": "ok", "status": 201}},
            {"index": {"_id": "bad", "status": status, "error": {"reason": "nope"}}},
        ],
    }
    with pytest.raises(expected, match="bad"):
        elastic_module._bulk_errors(response)


def _http_status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://127.0.0.1")
    return httpx.HTTPStatusError(
        "x", request=request, response=httpx.Response(status, request=request)
    )


def _reraised_as_value_error(cause: Exception) -> ValueError:
    """What Chroma's client does with some errors: ``raise ValueError(str(e))`` in ``except``."""
    try:
        try:
            raise cause
        except Exception as exc:
            raise ValueError(str(exc))  # noqa: B904 (the client's own pattern)
    except ValueError as wrapped:
        return wrapped


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(chromadb.errors.InternalError("x"), StoreUnavailableError, id="internal"),
        pytest.param(chromadb.errors.RateLimitError("x"), StoreUnavailableError, id="rate-limit"),
        pytest.param(chromadb.errors.InvalidArgumentError("x"), StoreRejectedError, id="invalid"),
        pytest.param(chromadb.errors.NotFoundError("x"), StoreRejectedError, id="not-found"),
        pytest.param(httpx.ConnectError("refused"), StoreUnavailableError, id="connect"),
        pytest.param(httpx.ReadTimeout("slow"), StoreUnavailableError, id="read-timeout"),
        pytest.param(_http_status_error(502), StoreUnavailableError, id="http-502"),
        pytest.param(_http_status_error(422), StoreRejectedError, id="http-422"),
        pytest.param(TimeoutError(), StoreUnavailableError, id="asyncio-timeout"),
        pytest.param(
            ValueError("Could not connect to a Chroma server. Are you sure it is running?"),
            StoreUnavailableError,
            id="not-running",
        ),
        pytest.param(ValueError("bad where"), StoreRejectedError, id="value-error"),
        pytest.param(
            _reraised_as_value_error(httpx.ReadError("[Errno 104] Connection reset by peer")),
            StoreUnavailableError,
            id="reset-reraised-as-value-error",
        ),
        pytest.param(
            _reraised_as_value_error(ConnectionResetError(104, "Connection reset by peer")),
            StoreUnavailableError,
            id="os-reset-reraised-as-value-error",
        ),
        pytest.param(Exception("500 text"), StoreUnavailableError, id="unknown"),
    ],
)
def test_chroma_translation_table(exc: Exception, expected: type[Exception]) -> None:
    """Each kind of Chroma client exception maps to the right error of ours."""
    assert type(chroma_module._translate(exc)) is expected
