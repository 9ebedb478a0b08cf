"""``ragstream.breaker-event.v1``: a circuit breaker changed state (key = breaker name)."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import Field

from schemas._base import WireModel

__all__ = ["BREAKER_EVENT_SCHEMA", "BreakerEvent"]

BREAKER_EVENT_SCHEMA: Final = "ragstream.breaker-event.v1"

State = Literal["closed", "open", "half-open"]


class BreakerEvent(WireModel):
    """One state transition of one breaker in one worker."""

    schema_: Literal["ragstream.breaker-event.v1"] = Field(
        default=BREAKER_EVENT_SCHEMA, alias="schema"
    )
    """Message type and version."""
    breaker: str
    """``openai``, ``embedding``, ``vectordb`` or ``elasticsearch``."""
    from_: State = Field(alias="from")
    """State before."""
    to: State
    """State after."""
    at: datetime
    """When, UTC."""
    fail_counter: int
    """Consecutive failures counted by the breaker."""
    worker: str
    """``host:pid`` of the worker whose breaker moved."""
    error: str | None = None
    """Last error, ``Type: message``, scrubbed."""
