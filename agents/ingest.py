"""Ingest agent: documents topic in; both stores + catalog, an ingest result (and reply) out.

In: ``{prefix}.documents`` (key = document id, value ``ragstream.document.v1``).
Out: ``{prefix}.ingest-results`` and the ``reply-to`` topic, or ``{prefix}.dead-letters``.
A message is acked only after its result (or dead letter) is on the broker; while a
dependency is down the agent holds the message and retries, so nothing is skipped.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from schemas.document import DocumentUpsert
from schemas.headers import Headers
from schemas.ingest import ErrorInfo, IngestResult
from services.auth import authorize_document
from streams.codec import decode_document, encode, header
from streams.errors import AuthError, InvalidMessageError, RagstreamError, SchemaValidationError
from streams.messaging import hold_until_done, send, send_dead_letter
from streams.observability import report_agent_failure
from streams.runtime import Runtime

__all__ = ["handle_document"]

log = structlog.get_logger(__name__)


async def handle_document(runtime: Runtime, producer: Any, message: Any) -> IngestResult:
    """Process one documents-topic message end to end; never raises for bad input."""
    started = time.perf_counter()
    key: bytes | None = message.key
    correlation_id = header(message.headers, Headers.CORRELATION_ID)
    reply_to = header(message.headers, Headers.REPLY_TO)
    doc_id = key.decode("utf-8", errors="replace") if key else None
    tenant = None
    settings = runtime.settings
    try:
        # Authenticate before reading the body: an anonymous sender learns nothing about it.
        # (API keys and user tokens are checked in SQL: while it is down, the stream waits.)
        principal = await hold_until_done(
            lambda: runtime.auth.authenticate(
                authorization=header(message.headers, Headers.AUTHORIZATION),
                api_key=header(message.headers, Headers.API_KEY),
            ),
            initial_s=settings.ingest.retry_initial_s,
            max_s=settings.ingest.retry_max_s,
            what="authenticate",
        )
        doc = decode_document(
            message.value,
            max_bytes=settings.kafka.max_message_bytes,
            max_text_chars=settings.ingest.max_text_chars,
        )
        doc_id, tenant = doc.id, doc.tenant
        if key is not None and key.decode("utf-8", errors="replace") != doc.id:
            raise SchemaValidationError(
                f"message key {key!r} differs from field 'id' {doc.id!r}; the key must be the id"
            )
        # The tenant comes from the credential: a body naming another tenant is refused.
        authorize_document(principal, tenant=doc.tenant, op=doc.op)
        with structlog.contextvars.bound_contextvars(doc_id=doc.id, tenant=doc.tenant):
            assert runtime.indexer is not None
            indexer = runtime.indexer
            outcome = await hold_until_done(
                lambda: indexer.handle(doc),
                initial_s=settings.ingest.retry_initial_s,
                max_s=settings.ingest.retry_max_s,
                what="ingest",
            )
        result = IngestResult(
            id=doc.id,
            tenant=doc.tenant,
            status=outcome.status,
            chunks=outcome.chunks,
            took_ms=round((time.perf_counter() - started) * 1000, 2),
            correlation_id=correlation_id,
        )
        log.info(
            "document_" + outcome.status,
            chunks=outcome.chunks,
            took_ms=result.took_ms,
            op="upsert" if isinstance(doc, DocumentUpsert) else "delete",
        )
    except Exception as exc:
        if isinstance(exc, AuthError):  # expected; never with the credential
            log.warning("ingest_refused", error_code=exc.code, reason=exc.message)
        elif not isinstance(exc, InvalidMessageError):
            log.exception("ingest_failed", error_type=type(exc).__name__)
            report_agent_failure(
                exc,
                agent="ingest",
                message=message,
                breakers=runtime.breaker_tags(),
                document_id=doc_id,
                correlation_id=correlation_id,
                tenant=tenant,
            )
        await send_dead_letter(
            producer,
            runtime.topics.dead_letters,
            key=key,
            value=message.value,
            headers=message.headers,
            error=exc,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        )
        code = exc.code if isinstance(exc, RagstreamError) else "internal"
        result = IngestResult(
            id=doc_id,
            tenant=tenant,
            status="rejected",
            error=ErrorInfo(code=code, message=str(exc)[:1000]),
            took_ms=round((time.perf_counter() - started) * 1000, 2),
            correlation_id=correlation_id,
        )
    await _publish(
        runtime, producer, result, key=key, reply_to=reply_to, correlation_id=correlation_id
    )
    return result


async def _publish(
    runtime: Runtime,
    producer: Any,
    result: IngestResult,
    *,
    key: bytes | None,
    reply_to: str | None,
    correlation_id: str | None,
) -> None:
    value = encode(result)
    headers = [(Headers.CORRELATION_ID, correlation_id.encode())] if correlation_id else []
    await send(producer, runtime.topics.ingest_results, key=key, value=value, headers=headers)
    if reply_to and reply_to != runtime.topics.ingest_results:
        try:
            await send(producer, reply_to, key=key, value=value, headers=headers)
        except Exception as exc:
            log.warning("reply_failed", reply_to=reply_to, error=repr(exc)[:200])
