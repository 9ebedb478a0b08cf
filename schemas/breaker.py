"""Breaker events on ``{prefix}.breaker-events`` (compacted).

- ``ragstream.breaker-event.v2`` (key ``breaker@worker``): one worker's breaker changed
  state, or its periodic heartbeat; a null value (tombstone) on that key means the worker
  left cleanly. The latest value per key is that worker's current state.
- ``ragstream.breaker-event.v1`` (key = breaker name): the same transition without
  ``reason``/``partitions``; still published for one release beside v2, then dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import Field

from schemas._base import OutputModel

__all__ = [
    "BREAKER_EVENT_SCHEMA",
    "BREAKER_EVENT_V2_SCHEMA",
    "AnyBreakerEvent",
    "BreakerEvent",
    "BreakerEventV2",
    "fleet_key",
]

BREAKER_EVENT_SCHEMA: Final = "ragstream.breaker-event.v1"
BREAKER_EVENT_V2_SCHEMA: Final = "ragstream.breaker-event.v2"

State = Literal["closed", "open", "half-open"]


def fleet_key(breaker: str, worker: str) -> str:
    """The v2 key: ``breaker@worker`` (one row per breaker and worker after compaction)."""
    return f"{breaker}@{worker}"


class BreakerEvent(OutputModel):
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


class BreakerEventV2(OutputModel):
    """One worker's breaker: a state transition, or a heartbeat restating its state."""

    schema_: Literal["ragstream.breaker-event.v2"] = Field(
        default=BREAKER_EVENT_V2_SCHEMA, alias="schema"
    )
    """Message type and version."""
    breaker: str
    """``openai``, ``embedding``, ``vectordb`` or ``elasticsearch``."""
    from_: State = Field(alias="from")
    """State before (equal to ``to`` in a heartbeat)."""
    to: State
    """State after: the worker's current state of this breaker."""
    at: datetime
    """When, UTC (of the transition, or of the heartbeat)."""
    fail_counter: int
    """Consecutive failures counted by the breaker."""
    worker: str
    """``RAGSTREAM_WORKER_ID`` or ``host:pid`` of the worker."""
    error: str | None = None
    """Last error, ``Type: message``, scrubbed."""
    reason: Literal["local", "peer"] = "local"
    """``local``: the worker's own calls moved it; ``peer``: it followed another worker's event
    (``BREAKER_FLEET=follow``)."""
    partitions: list[str] = Field(default_factory=list)
    """The worker's assigned partitions, ``topic:partition``, sorted."""
    heartbeat: bool = False
    """True when this restates the state (no transition); sent every ``BREAKER_HEARTBEAT_S``."""
    heartbeat_s: float | None = None
    """The sender's heartbeat interval: a reader may drop the row after 3 intervals of silence."""


AnyBreakerEvent = Annotated[BreakerEvent | BreakerEventV2, Field(discriminator="schema_")]
"""Either version, told apart by ``schema``."""
