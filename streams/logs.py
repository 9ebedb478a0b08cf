"""structlog setup: JSON lines in production, a console renderer in a terminal.

Every line inside an agent carries topic, partition, offset and correlation id through
``structlog.contextvars``; secrets never reach a log line (settings are SecretStr and
credential headers are stripped before anything is bound).
"""

from __future__ import annotations

import logging
import sys

import structlog

from streams.observability import breadcrumbs

__all__ = ["configure_logging"]


def configure_logging(*, level: str = "INFO", fmt: str = "auto") -> None:
    """Configure structlog (and route stdlib logging through the same renderer)."""
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            breadcrumbs,  # each line is also a Sentry breadcrumb (no-op without Sentry)
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info if json_lines else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
