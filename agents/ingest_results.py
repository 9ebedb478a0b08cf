"""What the ingest agent sends for a batch: results, replies and dead letters, awaited together.

``agents.ingest`` fills one ``Outgoing`` per message; ``publish_all`` sends every dead letter,
result and reply of the batch at once and returns when the broker has them all (the agent
acks the batch only after that).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import structlog

from agents.context import AgentContext
from schemas.headers import Headers
from schemas.ingest import ErrorInfo, IngestResult
from streams import metrics
from streams.codec import HeaderList, encode, header
from streams.errors import AuthError, InvalidMessageError, RagstreamError
from streams.messaging import dead_letter_message, send
from streams.observability import report_agent_failure

__all__ = ["Outgoing", "publish_all", "rejected"]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Outgoing:
    """One incoming message and what will be sent for it."""

    message: Any
    key: bytes | None
    correlation_id: str | None
    reply_to: str | None
    doc_id: str | None
    tenant: str | None = None
    result: IngestResult | None = None
    dead_letter: Exception | None = None

    @classmethod
    def of(cls, message: Any) -> Outgoing:
        """What the message's key and headers say before its body is read."""
        key: bytes | None = message.key
        return cls(
            message=message,
            key=key,
            correlation_id=header(message.headers, Headers.CORRELATION_ID),
            reply_to=header(message.headers, Headers.REPLY_TO),
            doc_id=key.decode("utf-8", errors="replace") if key else None,
        )


def rejected(
    context: AgentContext, item: Outgoing, exc: Exception, *, started: float
) -> IngestResult:
    """Log (and report) why a message failed, mark it for the dead letters, answer ``rejected``."""
    with structlog.contextvars.bound_contextvars(
        doc_id=item.doc_id, tenant=item.tenant, offset=item.message.offset
    ):
        if isinstance(exc, AuthError):  # expected; never with the credential
            log.warning("ingest_refused", error_code=exc.code, reason=exc.message)
        elif not isinstance(exc, InvalidMessageError):
            log.error("ingest_failed", error_type=type(exc).__name__, exc_info=exc)
            report_agent_failure(
                exc,
                agent="ingest",
                message=item.message,
                breakers=context.breaker_tags(),
                document_id=item.doc_id,
                correlation_id=item.correlation_id,
                tenant=item.tenant,
            )
    item.dead_letter = exc
    code = exc.code if isinstance(exc, RagstreamError) else "internal"
    metrics.document("rejected", tenant=item.tenant, error_code=code)
    return IngestResult(
        id=item.doc_id,
        tenant=item.tenant,
        status="rejected",
        error=ErrorInfo(code=code, message=str(exc)[:1000]),
        took_ms=round((time.perf_counter() - started) * 1000, 2),
        correlation_id=item.correlation_id,
    )


async def publish_all(context: AgentContext, producer: Any, items: list[Outgoing]) -> None:
    """Send the batch's dead letters, then its results and replies; wait for all of them."""
    await asyncio.gather(
        *(_dead_letter(context, producer, item) for item in items if item.dead_letter is not None)
    )
    sends = []
    for item in items:
        assert item.result is not None
        value = encode(item.result)
        headers: HeaderList = (
            [(Headers.CORRELATION_ID, item.correlation_id.encode())] if item.correlation_id else []
        )
        key, results_topic = item.key, context.topics.ingest_results
        sends.append(send(producer, results_topic, key=key, value=value, headers=headers))
        if item.reply_to and item.reply_to != results_topic:
            sends.append(_reply(producer, item.reply_to, key=key, value=value, headers=headers))
    await asyncio.gather(*sends)


async def _dead_letter(context: AgentContext, producer: Any, item: Outgoing) -> None:
    """Park one message, byte for byte, with its reason."""
    assert item.dead_letter is not None
    message = item.message
    with structlog.contextvars.bound_contextvars(doc_id=item.doc_id, offset=message.offset):
        await dead_letter_message(
            producer, context.topics.dead_letters, message, error=item.dead_letter
        )


async def _reply(
    producer: Any, reply_to: str, *, key: bytes | None, value: bytes, headers: HeaderList
) -> None:
    """Answer the sender; a missing reply topic is logged, never fatal."""
    try:
        await send(producer, reply_to, key=key, value=value, headers=headers)
    except Exception as exc:
        metrics.reply_failed("ingest")
        log.warning("reply_failed", reply_to=reply_to, error=repr(exc)[:200])
