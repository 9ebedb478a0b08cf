"""``ragstream.ingest-result.v1``: one per document message, on the results topic and reply-to."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from schemas._base import OutputModel

__all__ = ["INGEST_RESULT_SCHEMA", "ErrorInfo", "IngestResult"]

INGEST_RESULT_SCHEMA: Final = "ragstream.ingest-result.v1"


class ErrorInfo(OutputModel):
    """Why a message was rejected or a request failed."""

    code: str
    """Stable machine-readable code, e.g. ``invalid_schema``, ``too_large``, ``unavailable``."""
    message: str
    """Human explanation, precise enough to fix the message."""


class IngestResult(OutputModel):
    """The outcome of one document message."""

    schema_: Literal["ragstream.ingest-result.v1"] = Field(
        default=INGEST_RESULT_SCHEMA, alias="schema"
    )
    """Message type and version."""
    id: str | None
    """Document id (the message key when the body could not be read)."""
    tenant: str | None
    """Tenant of the document, when known."""
    status: Literal["indexed", "unchanged", "deleted", "rejected"]
    """What happened."""
    chunks: int = 0
    """Chunks now indexed for the document."""
    error: ErrorInfo | None = None
    """Set when status is ``rejected``."""
    took_ms: float = 0.0
    """Time in the worker, from reading the message's batch to this result (a batch read
    ahead also waits here for the batch before it)."""
    correlation_id: str | None = None
    """Echo of the ``correlation-id`` header, when sent."""
