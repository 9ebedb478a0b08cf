"""Search agent: search requests in, one reply per request out.

In: ``{prefix}.search-requests`` with headers ``reply-to`` + ``correlation-id`` (or Spring
Kafka's ``kafka_replyTopic`` + ``kafka_correlationId``), value ``ragstream.search-request.v1``.
Out: ``ragstream.search-result.v1`` on the reply topic, the correlation id echoed as
header and field. A request with no reply topic is dead-lettered: nobody could read
an answer. So is one whose reply could not be sent (the producer already retried it for its
request timeout; a reply topic that does not exist fails the same way): code
``reply_failed``. Either way the request is acked only once its reply or its dead letter is
on the broker; the dead letter is retried while the broker is unreachable.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import structlog

from agents.context import AgentContext
from schemas.headers import Headers
from schemas.ingest import ErrorInfo
from schemas.search import SearchResult
from services.auth import authorize_search
from streams import metrics
from streams.codec import decode_search_request, encode, header, headers_to_list
from streams.errors import DependencyError, RagstreamError, SchemaValidationError
from streams.messaging import dead_letter_message, hold_until_done, send
from streams.observability import report_agent_failure

__all__ = ["handle_search"]

log = structlog.get_logger(__name__)
_SPRING_REPLY_PARTITION = "kafka_replyPartition"


async def handle_search(context: AgentContext, producer: Any, message: Any) -> SearchResult | None:
    """Answer one search request; never raises for bad input."""
    started = time.perf_counter()
    raw = dict(headers_to_list(message.headers))
    reply_to = header(message.headers, Headers.REPLY_TO, Headers.SPRING_REPLY_TOPIC)
    correlation_id = header(message.headers, Headers.CORRELATION_ID)
    spring_id = raw.get(Headers.SPRING_CORRELATION_ID)
    if correlation_id is None and spring_id is not None:
        correlation_id = spring_id.hex() if _is_binary(spring_id) else spring_id.decode()
    if not reply_to:
        await dead_letter_message(
            producer,
            context.topics.dead_letters,
            message,
            error=SchemaValidationError("header 'reply-to' is required on a search request"),
        )
        return None
    mode, tenant = "unknown", None
    try:
        principal = await context.auth.authenticate(
            authorization=header(message.headers, Headers.AUTHORIZATION),
            api_key=header(message.headers, Headers.API_KEY),
        )
        request = decode_search_request(
            message.value, max_bytes=context.settings.kafka.max_message_bytes
        )
        mode = request.mode
        # The request's tenant must be the credential's (refused, not silently rewritten).
        authorize_search(principal, tenant=request.tenant)
        tenant = request.tenant
        if correlation_id is None:
            raise SchemaValidationError("header 'correlation-id' is required on a search request")
        with structlog.contextvars.bound_contextvars(tenant=request.tenant, mode=request.mode):
            result = await context.searcher.search(request, correlation_id=correlation_id)
    except Exception as exc:
        if not isinstance(exc, RagstreamError):
            log.exception("search_failed", error_type=type(exc).__name__)
            report_agent_failure(
                exc,
                agent="search",
                message=message,
                breakers=context.breaker_tags(),
                correlation_id=correlation_id,
            )
        code = exc.code if isinstance(exc, RagstreamError) else "internal"
        result = SearchResult(
            correlation_id=correlation_id,
            status="error",
            error=ErrorInfo(code=code, message=str(exc)[:1000]),
            took_ms=round((time.perf_counter() - started) * 1000, 2),
        )
    headers = []
    if correlation_id is not None:
        headers.append((Headers.CORRELATION_ID, correlation_id.encode()))
    if spring_id is not None:
        headers.append((Headers.SPRING_CORRELATION_ID, spring_id))
    partition = None
    if _SPRING_REPLY_PARTITION in raw and len(raw[_SPRING_REPLY_PARTITION]) == 4:
        partition = struct.unpack(">i", raw[_SPRING_REPLY_PARTITION])[0]
    try:
        await send(
            producer,
            reply_to,
            key=message.key,
            value=encode(result),
            headers=headers,
            partition=partition,
        )
    except Exception as exc:
        metrics.reply_failed("search")
        log.warning("reply_failed", reply_to=reply_to, error=repr(exc)[:200])
        await _dead_letter_unanswered(context, producer, message, reply_to=reply_to, error=exc)
    metrics.search(
        mode=mode,
        status=result.status,
        error_code=result.error.code if result.error is not None else "",
        seconds=time.perf_counter() - started,
        tenant=tenant,
    )
    log.info("search_answered", status=result.status, hits=len(result.hits), took_ms=result.took_ms)
    return result


async def _dead_letter_unanswered(
    context: AgentContext, producer: Any, message: Any, *, reply_to: str, error: Exception
) -> None:
    """Park a request whose reply could not be sent; hold while the dead letter cannot be."""
    reason = RagstreamError(
        f"the reply to {reply_to!r} could not be sent: {error!r}", code="reply_failed"
    )

    async def park() -> None:
        try:
            await dead_letter_message(producer, context.topics.dead_letters, message, error=reason)
        except RagstreamError:
            raise
        except Exception as exc:  # the broker: retriable, the request waits
            raise DependencyError(f"cannot dead-letter the request: {exc!r}") from exc

    await hold_until_done(
        park,
        initial_s=context.settings.ingest.retry_initial_s,
        max_s=context.settings.ingest.retry_max_s,
        what="search-dead-letter",
    )


def _is_binary(value: bytes) -> bool:
    try:
        return not value.decode().isprintable()
    except UnicodeDecodeError:
        return True
