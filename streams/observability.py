"""Sentry: unexpected agent failures, breaker openings and a transaction per message.

Part of the Kafka toolkit (next to ``streams.logs``); breaker openings are reported by the
composition root (``ragstream.breaker_events``). ``init_sentry`` is a no-op without
``SENTRY_DSN``; every helper here is safe to call when Sentry is off. ``before_send``,
``before_send_transaction`` and ``before_breadcrumb`` pass everything through
``streams.scrub`` (tokens, API keys, passwords, document and query text never leave).
``Traced`` wraps a store or the embedder so each call is a span of the message's
transaction; ``breadcrumbs`` is a structlog processor turning log lines into breadcrumbs.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import sentry_sdk
import structlog

from streams.scrub import scrub_data, scrub_text
from streams.settings import SentrySettings

__all__ = [
    "Traced",
    "breadcrumbs",
    "capture_exception",
    "capture_message",
    "enable_asyncio",
    "init_sentry",
    "message_transaction",
    "report_agent_failure",
    "scrub_event",
]

log = structlog.get_logger(__name__)

_INTEGRATIONS = [
    ("sentry_sdk.integrations.asyncio", "AsyncioIntegration"),
    ("sentry_sdk.integrations.sqlalchemy", "SqlalchemyIntegration"),
    ("sentry_sdk.integrations.httpx", "HttpxIntegration"),
    ("sentry_sdk.integrations.httpx2", "Httpx2Integration"),  # the openai client's transport
]
_LEVELS = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "fatal",
}


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _integrations() -> list[Any]:
    """The integrations this sentry-sdk version ships (and whose library is installed)."""
    found = []
    for module, name in _INTEGRATIONS:
        if name == "AsyncioIntegration" and not _loop_running():
            continue  # it patches the running loop: ``enable_asyncio()`` does it from inside
        try:
            found.append(getattr(importlib.import_module(module), name)())
        except (ImportError, AttributeError, sentry_sdk.integrations.DidNotEnable):
            continue
    return found


def scrub_event(event: Any, hint: Any = None) -> Any:
    """``before_send``: the event with credentials and document text removed."""
    return scrub_data(event)


def _scrub_breadcrumb(crumb: Any, hint: Any = None) -> Any:
    return scrub_data(crumb)


def init_sentry(settings: SentrySettings, *, release: str | None = None, **options: Any) -> bool:
    """Start the Sentry client from settings; False (and nothing done) without a DSN."""
    if settings.dsn is None or not settings.dsn.get_secret_value():
        return False
    sentry_sdk.init(
        dsn=settings.dsn.get_secret_value(),
        environment=settings.environment,
        release=release,
        traces_sample_rate=settings.traces_sample_rate,
        send_default_pii=False,
        integrations=_integrations(),
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        before_breadcrumb=_scrub_breadcrumb,
        **options,
    )
    log.info(
        "sentry_started",
        environment=settings.environment,
        traces_sample_rate=settings.traces_sample_rate,
    )
    return True


def enable_asyncio() -> None:
    """Instrument the running loop (the worker's) when Sentry was started outside of it."""
    from sentry_sdk.integrations.asyncio import enable_asyncio_integration

    enable_asyncio_integration()  # no-op when Sentry is off or the loop is patched already


def capture_exception(
    exc: BaseException,
    *,
    context: Mapping[str, Mapping[str, Any]] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> str | None:
    """Report ``exc`` with named contexts and tags; the event id (None when Sentry is off)."""
    with sentry_sdk.new_scope() as scope:
        for key, value in (tags or {}).items():
            if value is not None:
                scope.set_tag(key, str(value))
        for name, values in (context or {}).items():
            scope.set_context(name, {k: v for k, v in values.items() if v is not None})
        return sentry_sdk.capture_exception(exc)


def capture_message(
    message: str,
    *,
    level: str = "info",
    context: Mapping[str, Mapping[str, Any]] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> str | None:
    """Report a message at ``level``; the event id (None when Sentry is off)."""
    with sentry_sdk.new_scope() as scope:
        for key, value in (tags or {}).items():
            if value is not None:
                scope.set_tag(key, str(value))
        for name, values in (context or {}).items():
            scope.set_context(name, dict(values))
        return sentry_sdk.capture_message(scrub_text(message), level=level)  # type: ignore[arg-type]


def report_agent_failure(
    exc: BaseException,
    *,
    agent: str,
    message: Any,
    breakers: Mapping[str, str],
    document_id: str | None = None,
    correlation_id: str | None = None,
    tenant: str | None = None,
) -> str | None:
    """An unexpected agent exception: tags (agent, topic, partition, offset, breaker states)
    and the message context (document id, correlation id, tenant)."""
    tags = {
        "agent": agent,
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        **breakers,
    }
    context = {
        "message": {"document_id": document_id, "correlation_id": correlation_id, "tenant": tenant}
    }
    return capture_exception(exc, tags=tags, context=context)


@contextlib.contextmanager
def message_transaction(
    agent: str, message: Any, *, tags: Mapping[str, Any] | None = None
) -> Iterator[Any]:
    """One isolated scope and one (sampled) transaction per processed message."""
    with sentry_sdk.isolation_scope() as scope:
        scope.set_tag("agent", agent)
        scope.set_tag("topic", message.topic)
        scope.set_tag("partition", str(message.partition))
        scope.set_tag("offset", str(message.offset))
        for key, value in (tags or {}).items():
            scope.set_tag(key, str(value))
        with sentry_sdk.start_transaction(
            op="queue.process", name=f"{agent} {message.topic}", source="task"
        ) as transaction:
            yield transaction


class Traced:
    """A proxy whose coroutine methods each run in a Sentry span ``op``."""

    def __init__(self, inner: Any, *, op: str) -> None:
        self._inner = inner
        self._op = op

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in ("start", "aclose") or not inspect.iscoroutinefunction(attr):
            return attr
        op = self._op

        async def traced(*args: Any, **kwargs: Any) -> Any:
            with sentry_sdk.start_span(op=op, name=f"{op}.{name}"):
                return await attr(*args, **kwargs)

        traced.__name__ = name
        return traced


def breadcrumbs(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every log line is also a (scrubbed) Sentry breadcrumb."""
    if sentry_sdk.get_client().is_active():
        data = {
            k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
            for k, v in event_dict.items()
            if k not in ("event", "timestamp", "exc_info")
        }
        sentry_sdk.add_breadcrumb(
            category="log",
            message=str(event_dict.get("event", "")),
            level=_LEVELS.get(method_name, "info"),
            data=data,
        )
    return event_dict
