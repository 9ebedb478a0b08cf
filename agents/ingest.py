"""Ingest agent: documents topic in; both stores + catalog, an ingest result (and reply) out.

In: ``{prefix}.documents`` (key = document id, value ``ragstream.document.v1``), in batches.
Out: ``{prefix}.ingest-results`` and the ``reply-to`` topic, or ``{prefix}.dead-letters``.
A batch is acked only after every result (or dead letter) is on the broker; while a
dependency is down the agent holds the batch and retries, so nothing is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from agents.context import AgentContext
from agents.ingest_results import Outgoing, publish_all, rejected
from schemas.document import DocumentDelete, DocumentUpsert
from schemas.headers import Headers
from schemas.ingest import IngestResult
from services.auth import authorize_document
from streams import metrics
from streams.codec import decode_document, header
from streams.errors import SchemaValidationError
from streams.messaging import hold_until_done

__all__ = [
    "ReadBatch",
    "embed_ahead",
    "index_documents",
    "read_documents",
]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class ReadBatch:
    """A batch of messages authenticated and decoded, ready to be indexed in order."""

    started: float
    out: list[Outgoing]
    valid: list[tuple[Outgoing, DocumentUpsert | DocumentDelete]]
    embedded: dict[str, list[float]] = field(default_factory=dict)
    """Vectors by chunk text, computed ahead (``embed_ahead``); a hint, never required."""


async def read_documents(context: AgentContext, messages: Sequence[Any]) -> ReadBatch:
    """Authenticate and decode every message; a bad one gets its ``rejected`` result here.

    Needs nothing of earlier batches, so the agent reads a batch while the one before it is
    still being indexed.
    """
    batch = ReadBatch(started=time.perf_counter(), out=[Outgoing.of(m) for m in messages], valid=[])
    for item in batch.out:
        try:
            batch.valid.append((item, await _read(context, item)))
        except Exception as exc:
            item.result = rejected(context, item, exc, started=batch.started)
    return batch


async def embed_ahead(context: AgentContext, batch: ReadBatch) -> None:
    """Embed the batch's chunks ahead of its turn (while the batch before is written).

    Best effort: any failure only means the in-order pass embeds them itself (and holds
    there if the model is down), so nothing is raised or reported here.
    """
    if not batch.valid:
        return
    try:
        batch.embedded = await context.indexer.embed_ahead([doc for _, doc in batch.valid])
    except Exception as exc:
        log.debug("embed_ahead_skipped", error_type=type(exc).__name__, error=str(exc)[:200])


async def index_documents(
    context: AgentContext, producer: Any, batch: ReadBatch
) -> list[IngestResult]:
    """Index the valid documents of a read batch in order, then send every result at once."""
    started, out, valid = batch.started, batch.out, batch.valid
    if valid:
        indexer = context.indexer
        docs = [doc for _, doc in valid]
        with structlog.contextvars.bound_contextvars(
            doc_ids=[d.id for d in docs],
            tenants=sorted({d.tenant for d in docs}),
            correlation_ids=[item.correlation_id for item, _ in valid if item.correlation_id],
        ):
            outcomes = await hold_until_done(
                lambda: indexer.handle_many(docs, embedded=batch.embedded),
                initial_s=context.settings.ingest.retry_initial_s,
                max_s=context.settings.ingest.retry_max_s,
                what="ingest",
            )
        took_ms = round((time.perf_counter() - started) * 1000, 2)
        for (item, doc), outcome in zip(valid, outcomes, strict=True):
            if outcome.error is not None:
                item.result = rejected(context, item, outcome.error, started=started)
                continue
            assert outcome.status != "failed"
            item.result = IngestResult(
                id=doc.id,
                tenant=doc.tenant,
                status=outcome.status,
                chunks=outcome.chunks,
                took_ms=took_ms,
                correlation_id=item.correlation_id,
            )
            metrics.document(outcome.status, tenant=doc.tenant)
            log.info(
                "document_" + outcome.status,
                doc_id=doc.id,
                tenant=doc.tenant,
                correlation_id=item.correlation_id,
                chunks=outcome.chunks,
                took_ms=took_ms,
                batch=len(out),
                op="upsert" if isinstance(doc, DocumentUpsert) else "delete",
            )
    await publish_all(context, producer, out)
    metrics.ingest_batch(time.perf_counter() - started, documents=len(out))
    return [item.result for item in out if item.result is not None]


async def _read(context: AgentContext, item: Outgoing) -> DocumentUpsert | DocumentDelete:
    """Authenticate, decode and authorize one message; raise why it cannot be indexed."""
    message, settings = item.message, context.settings
    # Authenticate before reading the body: an anonymous sender learns nothing about it.
    # (API keys and user tokens are checked in SQL: while it is down, the stream waits.)
    principal = await hold_until_done(
        lambda: context.auth.authenticate(
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
    item.doc_id, item.tenant = doc.id, doc.tenant
    if item.key is not None and item.key.decode("utf-8", errors="replace") != doc.id:
        raise SchemaValidationError(
            f"message key {item.key!r} differs from field 'id' {doc.id!r}; the key must be the id"
        )
    # The tenant comes from the credential: a body naming another tenant is refused.
    authorize_document(principal, tenant=doc.tenant, op=doc.op)
    return doc
