"""Bytes on a topic <-> wire models, with precise errors for bad input.

Used by the agents (decode requests, encode replies) and the client. Every way a
message can be wrong maps to one ``InvalidMessageError`` subclass whose message says
exactly what to fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.document import DOCUMENT_SCHEMA, DocumentDelete, DocumentMessage, DocumentUpsert
from schemas.headers import Headers
from schemas.search import SEARCH_REQUEST_SCHEMA, SearchRequest
from streams.errors import (
    MalformedMessageError,
    PayloadTooLargeError,
    SchemaValidationError,
    UnsupportedSchemaError,
)

__all__ = [
    "HeaderList",
    "decode_document",
    "decode_search_request",
    "encode",
    "header",
    "headers_to_list",
    "public_headers",
]

HeaderList = list[tuple[str, bytes]]
M = TypeVar("M", bound=BaseModel)

_DOCUMENT = TypeAdapter(DocumentMessage)


def encode(model: BaseModel) -> bytes:
    """A wire model as compact JSON bytes (field aliases, e.g. ``schema``)."""
    return model.model_dump_json(by_alias=True).encode()


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999: valid JSON, but no store can hold it
        raise MalformedMessageError(f"number {text[:40]} is out of range (not a finite float)")
    return number


def _no_constant(name: str) -> Any:
    raise MalformedMessageError(f"{name} is not JSON (only finite numbers are)")


def _load_object(value: bytes | None, *, max_bytes: int) -> dict[str, Any]:
    if value is None:
        raise MalformedMessageError("message has no value (tombstone); expected a JSON object")
    if len(value) > max_bytes:
        raise PayloadTooLargeError(f"message is {len(value)} bytes; the limit is {max_bytes}")
    try:
        data = json.loads(value, parse_float=_finite, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise MalformedMessageError(f"message is not UTF-8: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise MalformedMessageError(
            f"message is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:  # found by fuzzing: "[[[[..." a few thousand deep
        raise MalformedMessageError("message nests JSON arrays or objects too deeply") from exc
    if not isinstance(data, dict):
        raise MalformedMessageError(f"message must be a JSON object, got {type(data).__name__}")
    return data


def _check_schema(data: Mapping[str, Any], expected: str) -> None:
    schema = data.get("schema")
    if schema is None:
        raise SchemaValidationError(f"field 'schema' is required (expected {expected!r})")
    if schema != expected:
        raise UnsupportedSchemaError(f"unknown schema {schema!r}; expected {expected!r}")


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"] if p not in ("upsert", "delete")) or "(root)"
        parts.append(f"field '{loc}': {err['msg']}")
    more = exc.error_count() - 5
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def decode_document(
    value: bytes | None, *, max_bytes: int, max_text_chars: int
) -> DocumentUpsert | DocumentDelete:
    """Parse a documents-topic message or raise the precise ``InvalidMessageError``."""
    data = _load_object(value, max_bytes=max_bytes)
    _check_schema(data, DOCUMENT_SCHEMA)
    op = data.get("op")
    if op not in ("upsert", "delete"):
        raise SchemaValidationError(f"field 'op' must be 'upsert' or 'delete', got {op!r}")
    try:
        doc = _DOCUMENT.validate_python(data)
    except ValidationError as exc:
        raise SchemaValidationError(_explain(exc)) from exc
    if isinstance(doc, DocumentUpsert):
        if not doc.text.strip():
            raise SchemaValidationError("field 'text': must contain non-whitespace characters")
        if len(doc.text) > max_text_chars:
            raise PayloadTooLargeError(
                f"text is {len(doc.text)} characters; the limit is {max_text_chars}"
            )
    return doc


def decode_search_request(value: bytes | None, *, max_bytes: int) -> SearchRequest:
    """Parse a search request or raise the precise ``InvalidMessageError``."""
    data = _load_object(value, max_bytes=max_bytes)
    _check_schema(data, SEARCH_REQUEST_SCHEMA)
    try:
        return SearchRequest.model_validate(data)
    except ValidationError as exc:
        raise SchemaValidationError(_explain(exc)) from exc


def headers_to_list(headers: Any) -> HeaderList:
    """Normalise Kafka headers (a mapping or a list of pairs) to ``[(name, bytes)]``."""
    if not headers:
        return []
    items: Iterable[tuple[str, Any]] = headers.items() if isinstance(headers, Mapping) else headers
    out: HeaderList = []
    for name, value in items:
        if value is None:
            value = b""
        elif isinstance(value, str):
            value = value.encode()
        # A name that is not UTF-8 (found by fuzzing) is read with replacement characters:
        # it can never be one of our header names, and it must not fail the whole message.
        text = name.decode("utf-8", errors="replace") if isinstance(name, bytes) else str(name)
        out.append((text, bytes(value)))
    return out


def header(headers: Any, *names: str) -> str | None:
    """The first of ``names`` present in ``headers``, decoded; ``None`` when absent."""
    found = dict(headers_to_list(headers))
    for name in names:
        if name in found:
            return found[name].decode("utf-8", errors="replace")
    return None


def public_headers(headers: Any) -> HeaderList:
    """Headers without credentials: what may be logged or dead-lettered."""
    return [(k, v) for k, v in headers_to_list(headers) if k.lower() not in Headers.SECRET]
