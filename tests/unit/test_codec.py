"""The wire contract: good and bad examples of every message type."""

from __future__ import annotations

import json

import pytest

from schemas.breaker import BreakerEvent
from schemas.document import DocumentDelete, DocumentUpsert
from schemas.ingest import IngestResult
from schemas.search import SearchRequest, SearchResult
from streams.codec import (
    decode_document,
    decode_search_request,
    encode,
    header,
    public_headers,
)
from streams.errors import (
    InvalidMessageError,
    MalformedMessageError,
    PayloadTooLargeError,
    SchemaValidationError,
    UnsupportedSchemaError,
)

DOC = {
    "schema": "ragstream.document.v1",
    "op": "upsert",
    "id": "guide/intro.md",
    "tenant": "acme",
    "title": "Intro",
    "text": "Hello world",
    "metadata": {"lang": "en", "rev": 3},
}
REQ = {
    "schema": "ragstream.search-request.v1",
    "query": "hello",
    "top_k": 5,
    "mode": "hybrid",
    "filters": {"metadata.lang": "en"},
    "tenant": "acme",
}


def _doc(value: object, *, max_bytes: int = 10_000, max_text_chars: int = 1000) -> object:
    raw = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
    return decode_document(raw, max_bytes=max_bytes, max_text_chars=max_text_chars)


def test_upsert_and_delete_decode() -> None:
    """The documented examples decode to their models."""
    doc = _doc(DOC)
    assert isinstance(doc, DocumentUpsert) and doc.metadata == {"lang": "en", "rev": 3}
    gone = _doc({"schema": "ragstream.document.v1", "op": "delete", "id": "a", "tenant": "acme"})
    assert isinstance(gone, DocumentDelete)


def test_encode_round_trips_with_schema_alias() -> None:
    """Encoding writes ``schema`` (not ``schema_``) and decodes back equal."""
    doc = _doc(DOC)
    data = json.loads(encode(doc))  # type: ignore[arg-type]
    assert data["schema"] == "ragstream.document.v1" and "schema_" not in data
    assert _doc(data) == doc


@pytest.mark.parametrize(
    ("value", "error", "fragment"),
    [
        pytest.param(b"{not json", MalformedMessageError, "not valid JSON", id="malformed-json"),
        pytest.param(b"\xff\xfe", MalformedMessageError, "", id="not-utf8"),
        pytest.param(b"[1, 2]", MalformedMessageError, "JSON object", id="array"),
        pytest.param(None, MalformedMessageError, "tombstone", id="tombstone"),
        pytest.param(
            {**DOC, "schema": "ragstream.document.v9"},
            UnsupportedSchemaError,
            "v9",
            id="unknown-schema",
        ),
        pytest.param(
            {k: v for k, v in DOC.items() if k != "schema"},
            SchemaValidationError,
            "'schema'",
            id="no-schema",
        ),
        pytest.param({**DOC, "op": "merge"}, SchemaValidationError, "'op'", id="unknown-op"),
        pytest.param(
            {k: v for k, v in DOC.items() if k != "text"},
            SchemaValidationError,
            "'text'",
            id="missing-text",
        ),
        pytest.param({**DOC, "text": ""}, SchemaValidationError, "'text'", id="empty-text"),
        pytest.param(
            {**DOC, "text": "   \n "}, SchemaValidationError, "non-whitespace", id="blank-text"
        ),
        pytest.param({**DOC, "text": "x" * 1001}, PayloadTooLargeError, "1001", id="text-too-long"),
        pytest.param({**DOC, "tenant": ""}, SchemaValidationError, "'tenant'", id="empty-tenant"),
        pytest.param(
            {**DOC, "tenant": "a/b"}, SchemaValidationError, "'tenant'", id="tenant-with-slash"
        ),
        pytest.param(
            {**DOC, "metadata": {"nested": {"x": 1}}},
            SchemaValidationError,
            "metadata",
            id="nested-metadata",
        ),
        pytest.param(
            {**DOC, "metadata": {"bad key": 1}},
            SchemaValidationError,
            "metadata",
            id="bad-metadata-key",
        ),
        pytest.param({**DOC, "surprise": 1}, SchemaValidationError, "surprise", id="unknown-field"),
        pytest.param({**DOC, "id": 42}, SchemaValidationError, "'id'", id="id-not-string"),
    ],
)
def test_bad_documents_raise_precise_errors(
    value: object, error: type[Exception], fragment: str
) -> None:
    """Each kind of bad document raises its own error class with a message naming the problem."""
    with pytest.raises(error) as info:
        _doc(value)
    assert isinstance(info.value, InvalidMessageError)
    assert fragment in str(info.value)
    assert info.value.retriable is False


def test_oversized_message_is_rejected_before_parsing() -> None:
    """A message above max_bytes is ``too_large`` even when it is not JSON."""
    with pytest.raises(PayloadTooLargeError):
        _doc(b"x" * 200, max_bytes=100)


def test_search_request_decodes_and_validates() -> None:
    """A good request decodes; a bad top_k or mode names the field."""
    req = decode_search_request(json.dumps(REQ).encode(), max_bytes=10_000)
    assert req.filters == {"metadata.lang": "en"} and req.top_k == 5
    for bad, field in [
        ({**REQ, "top_k": 0}, "top_k"),
        ({**REQ, "mode": "fuzzy"}, "mode"),
        ({**REQ, "query": ""}, "query"),
        ({**REQ, "filters": {"a": {"b": 1}}}, "filters"),
    ]:
        with pytest.raises(SchemaValidationError, match=field):
            decode_search_request(json.dumps(bad).encode(), max_bytes=10_000)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        pytest.param(b'{"metadata": {"k": 1e999}}', "1e999 is out of range", id="overflow"),
        pytest.param(b'{"metadata": {"k": -1E400}}', "out of range", id="negative-overflow"),
        pytest.param(b'{"metadata": {"k": NaN}}', "NaN is not JSON", id="nan"),
        pytest.param(b'{"metadata": {"k": Infinity}}', "Infinity is not JSON", id="infinity"),
    ],
)
def test_non_finite_numbers_are_malformed_json(raw: bytes, fragment: str) -> None:
    """``NaN``/``Infinity`` (Python's JSON extensions) and numbers beyond a double are refused
    as malformed in documents and in search filters, never stored or matched as inf/nan."""
    document = json.dumps({k: v for k, v in DOC.items() if k != "metadata"})[:-1].encode()
    request = json.dumps({k: v for k, v in REQ.items() if k != "filters"})[:-1].encode()
    filters = raw.replace(b'"metadata": {"k"', b'"filters": {"metadata.k"')
    with pytest.raises(MalformedMessageError, match=fragment):
        _doc(document + b", " + raw[1:])
    with pytest.raises(MalformedMessageError, match=fragment):
        decode_search_request(request + b", " + filters[1:], max_bytes=10_000)
    finite = json.loads(document + b', "metadata": {"k": 1.5e300}}')
    assert _doc(finite).metadata == {"k": 1.5e300}  # type: ignore[attr-defined]


def test_models_refuse_non_finite_floats() -> None:
    """A producer building the models in Python cannot put NaN or infinity in them either."""
    with pytest.raises(ValueError, match="metadata"):
        DocumentUpsert(id="a", tenant="t", text="x", metadata={"k": float("nan")})
    with pytest.raises(ValueError, match="filters"):
        SearchRequest(query="q", tenant="t", filters={"metadata.k": float("inf")})


def test_what_workers_send_is_read_tolerantly_what_they_read_strictly() -> None:
    """A v1 reply, result or breaker event may gain optional fields: readers ignore the ones
    they do not know (an older client keeps working against a newer worker). A document or
    search request with an unknown field is still an error (a producer's typo)."""
    hit = {"chunk_id": "t/d#0", "doc_id": "d", "title": "", "text": "t", "score": 0.5}
    reply = {
        "schema": "ragstream.search-result.v1",
        "correlation_id": "c1",
        "status": "ok",
        "hits": [{**hit, "sources": ["vector"], "added_later": 1}],
        "timings_ms": {"embed": 1.0, "rerank": 2.0},
        "added_later": {"x": 1},
    }
    parsed = SearchResult.model_validate_json(json.dumps(reply))
    assert parsed.status == "ok" and parsed.hits[0].doc_id == "d"
    assert parsed.timings_ms is not None and parsed.timings_ms.embed == 1.0
    result = IngestResult.model_validate(
        {"id": "d", "tenant": "t", "status": "indexed", "added_later": True}
    )
    assert result.status == "indexed"
    event = {
        "breaker": "openai",
        "from": "closed",
        "to": "open",
        "at": "2026-12-01T00:00:00Z",
        "fail_counter": 3,
        "worker": "h:1",
        "added_later": 1,
    }
    assert BreakerEvent.model_validate(event).to == "open"
    with pytest.raises(SchemaValidationError, match="surprise"):
        decode_search_request(json.dumps({**REQ, "surprise": 1}).encode(), max_bytes=10_000)


def test_result_models_serialise_to_the_documented_shape() -> None:
    """Results carry their schema string and the documented fields."""
    result = json.loads(encode(IngestResult(id="a", tenant="t", status="indexed", chunks=2)))
    assert result["schema"] == "ragstream.ingest-result.v1" and result["error"] is None
    reply = json.loads(encode(SearchResult(correlation_id="c", status="ok")))
    assert set(reply) >= {
        "schema",
        "correlation_id",
        "status",
        "hits",
        "degraded",
        "error",
        "took_ms",
    }
    event = BreakerEvent.model_validate(
        {
            "breaker": "elasticsearch",
            "from": "closed",
            "to": "open",
            "at": "2026-01-01T00:00:00Z",
            "fail_counter": 3,
            "worker": "h:1",
        }
    )
    assert json.loads(encode(event))["from"] == "closed"


def test_headers_helpers_strip_credentials() -> None:
    """Credentials never survive ``public_headers``; lookups accept lists and dicts."""
    headers = [("authorization", b"Bearer secret"), ("x-api-key", b"k"), ("reply-to", b"r")]
    assert public_headers(headers) == [("reply-to", b"r")]
    assert header({"correlation-id": b"abc"}, "correlation-id") == "abc"
    assert header(headers, "missing", "reply-to") == "r"
    assert header(None, "reply-to") is None
