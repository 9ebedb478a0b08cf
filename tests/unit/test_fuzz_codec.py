"""Fuzzing the decoders: any bytes and any headers give a valid message or a precise error.

Every decoder of ``streams.codec`` (documents, search requests, and the Kafka headers both
carry) either returns a valid model or raises an ``InvalidMessageError`` whose ``code`` says
what is wrong; never another exception (which would reach the agent as ``internal``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings

from schemas.document import DocumentDelete, DocumentUpsert
from schemas.headers import Headers
from schemas.search import SearchRequest
from streams.codec import (
    decode_document,
    decode_search_request,
    header,
    headers_to_list,
    public_headers,
)
from streams.errors import InvalidMessageError
from tests.strategies import (
    CODES,
    MAX_BYTES,
    MAX_TEXT,
    any_headers,
    document_values,
    header_names,
    request_values,
)


def _check_error(exc: Exception) -> None:
    assert isinstance(exc, InvalidMessageError), f"{type(exc).__name__}: {exc}"
    assert exc.code in CODES and not exc.retriable
    assert str(exc)


@settings(max_examples=200, deadline=None)
@given(value=document_values)
@example(value=b"[" * 4000).via("regression: deep nesting raised RecursionError")
@example(value=b'{"":' * 1010).via("regression: deep object nesting")
def test_any_bytes_decode_to_a_document_or_a_precise_error(value: bytes | None) -> None:
    """``decode_document`` returns a valid upsert or delete, or raises an ``InvalidMessageError``
    with its code."""
    try:
        doc = decode_document(value, max_bytes=MAX_BYTES, max_text_chars=MAX_TEXT)
    except Exception as exc:
        _check_error(exc)
        return
    assert isinstance(doc, DocumentUpsert | DocumentDelete)
    assert doc.id and doc.tenant
    if isinstance(doc, DocumentUpsert):
        assert doc.text.strip() and len(doc.text) <= MAX_TEXT


@settings(max_examples=200, deadline=None)
@given(value=request_values)
@example(value=b"[" * 4000).via("regression: deep nesting raised RecursionError")
def test_any_bytes_decode_to_a_search_request_or_a_precise_error(value: bytes | None) -> None:
    """``decode_search_request`` returns a valid request, or raises an ``InvalidMessageError``
    with its code."""
    try:
        request = decode_search_request(value, max_bytes=MAX_BYTES)
    except Exception as exc:
        _check_error(exc)
        return
    assert isinstance(request, SearchRequest)
    assert request.query and request.tenant and request.top_k >= 1


@settings(max_examples=200, deadline=None)
@given(headers=any_headers, wanted=header_names)
@example(headers=[(b"\xff\xfe", b"x")], wanted="x").via("regression: non-UTF-8 header name")
def test_any_headers_decode_or_fail_precisely(headers: Any, wanted: str) -> None:
    """Headers (a list of pairs or a mapping, names as text or bytes, values bytes, text or
    None) normalise to ``[(str, bytes)]``; ``header`` reads any of them as text; credentials
    never survive ``public_headers``."""
    try:
        pairs = headers_to_list(headers)
    except Exception as exc:
        _check_error(exc)
        return
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in pairs)
    assert len(pairs) == (len(headers) if headers else 0)
    found = header(headers, wanted)
    assert found is None or isinstance(found, str)
    if found is not None:
        assert wanted in dict(pairs)
    public = public_headers(headers)
    assert not {k.lower() for k, _ in public} & Headers.SECRET
