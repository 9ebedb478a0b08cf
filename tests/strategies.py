"""Hypothesis strategies for the fuzz tests: message bytes and Kafka headers, valid and not.

Values range from random bytes to JSON close to a valid document or search request (fields
dropped or replaced by odd values), so the fuzzing reaches every layer of validation.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from schemas.document import DOCUMENT_SCHEMA
from schemas.headers import Headers
from schemas.search import SEARCH_REQUEST_SCHEMA

__all__ = [
    "CODES",
    "MAX_BYTES",
    "MAX_TEXT",
    "any_headers",
    "document_values",
    "header_names",
    "header_values",
    "json_values",
    "request_values",
]

CODES = {"malformed_json", "invalid_schema", "unknown_schema", "too_large"}
"""The codes an undecodable message may get."""

MAX_BYTES = 4096
MAX_TEXT = 300

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


def _near(valid: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]]) -> Any:
    """Messages close to ``valid``: some fields dropped, some replaced by odd values."""
    return st.fixed_dictionaries(
        {},
        optional={
            name: st.one_of(st.just(valid[name]) if name in valid else st.nothing(), strategy)
            for name, strategy in fields.items()
        },
    )


_DOCUMENT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "schema": st.sampled_from([DOCUMENT_SCHEMA, "ragstream.document.v2", ""]) | json_values,
    "op": st.sampled_from(["upsert", "delete", "UPSERT"]) | json_values,
    "id": st.text(max_size=600) | json_values,
    "tenant": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,70}", fullmatch=True) | json_values,
    "title": st.text(max_size=20) | json_values,
    "text": st.text(max_size=MAX_TEXT + 20) | json_values,
    "metadata": st.dictionaries(st.text(max_size=130), json_values, max_size=3) | json_values,
}
_VALID_DOCUMENT = {
    "schema": DOCUMENT_SCHEMA,
    "op": "upsert",
    "id": "d",
    "tenant": "acme",
    "title": "",
    "text": "hello",
    "metadata": {},
}
_REQUEST_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "schema": st.sampled_from([SEARCH_REQUEST_SCHEMA, "ragstream.search-request.v0"]) | json_values,
    "query": st.text(max_size=50) | json_values,
    "tenant": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,70}", fullmatch=True) | json_values,
    "top_k": st.integers() | json_values,
    "mode": st.sampled_from(["hybrid", "vector", "keyword", "both"]) | json_values,
    "filters": st.dictionaries(st.text(max_size=20), json_values, max_size=20) | json_values,
}
_VALID_REQUEST = {"schema": SEARCH_REQUEST_SCHEMA, "query": "q", "tenant": "acme"}


def _encoded(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return strategy.map(lambda value: json.dumps(value).encode())


any_value = (
    st.none()
    | st.binary(max_size=MAX_BYTES + 10)
    | _encoded(json_values)
    | st.binary(max_size=200).map(lambda b: b'{"schema": ' + b)
)
document_values = any_value | _encoded(_near(_VALID_DOCUMENT, _DOCUMENT_FIELDS))
request_values = any_value | _encoded(_near(_VALID_REQUEST, _REQUEST_FIELDS))

header_names = st.sampled_from(
    [
        Headers.REPLY_TO,
        Headers.CORRELATION_ID,
        Headers.SPRING_REPLY_TOPIC,
        Headers.SPRING_CORRELATION_ID,
        "kafka_replyPartition",
        Headers.AUTHORIZATION,
        Headers.API_KEY,
        "X-Api-Key",
    ]
) | st.text(max_size=20)
header_values = st.none() | st.binary(max_size=40) | st.text(max_size=40)
any_headers = (
    st.none()
    | st.lists(st.tuples(header_names | st.binary(max_size=20), header_values), max_size=8)
    | st.dictionaries(header_names, header_values, max_size=8)
)
