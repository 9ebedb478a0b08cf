"""``ragstream breakers``: the fleet's breaker states, and the alerting consumer.

Reads ``{prefix}.breaker-events`` (compacted) from the beginning. The latest v2 event per
key ``breaker@worker`` is that worker's state; a tombstone (clean shutdown) removes the row,
and a row whose worker sent nothing for three of its heartbeats (``--max-age`` overrides)
ages out. v1 events (key = breaker name) count only for workers that publish no v2 (an
older release). It prints a summary per breaker (workers open, half-open, closed) and a row
per worker. ``--follow`` then prints each new transition as it happens (a line, or JSON with
``--json``), POSTs it to ``--webhook`` (JSON with a Slack-compatible ``text``, retried), and
``--fail-on open`` exits 1 as soon as any worker's breaker is (or becomes) open, for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import TypeAdapter, ValidationError

from ragstream.cli import _env
from ragstream.cli._env import add_command
from schemas.breaker import AnyBreakerEvent, BreakerEvent, BreakerEventV2
from streams.connection import aiokafka_kwargs, check_connection
from streams.settings import Settings
from streams.topics import Topics

__all__ = ["FleetState", "post_webhook", "register", "render_line", "webhook_payload"]

log = structlog.get_logger(__name__)
_ICONS = {
    "open": ":red_circle:",
    "half-open": ":large_yellow_circle:",
    "closed": ":large_green_circle:",
}
_STATES = ("open", "half-open", "closed")
_EVENTS: TypeAdapter[Any] = TypeAdapter(AnyBreakerEvent)
Event = BreakerEvent | BreakerEventV2
# A row ages out after this many heartbeat intervals without any event from its worker.
MISSED_HEARTBEATS = 3


class FleetState:
    """The latest event per (breaker, worker), v2 first, and the per-breaker summary."""

    def __init__(self, *, max_age_s: float | None = None) -> None:
        self.rows: dict[tuple[str, str], Event] = {}
        self._v2_workers: set[str] = set()
        self.max_age_s = max_age_s

    def add(self, event: Event) -> None:
        """Fold one event in (events arrive in topic order)."""
        if isinstance(event, BreakerEventV2):
            if event.worker not in self._v2_workers:
                self._v2_workers.add(event.worker)
                for key in [k for k, e in self.rows.items() if k[1] == event.worker]:
                    del self.rows[key]  # its v1 rows: the v2 ones replace them
        elif event.worker in self._v2_workers:
            return  # the v1 copy of a v2 event
        self.rows[(event.breaker, event.worker)] = event

    def remove(self, key: bytes | None) -> None:
        """A tombstone for ``breaker@worker``: that worker left cleanly."""
        breaker, sep, worker = (key or b"").decode(errors="replace").partition("@")
        if sep:
            self.rows.pop((breaker, worker), None)

    def expire(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """Drop rows whose worker went silent (``max_age_s``, else 3 of its heartbeats)."""
        now = now or datetime.now(UTC)
        gone = []
        for key, event in list(self.rows.items()):
            limit = self.max_age_s
            if limit is None and isinstance(event, BreakerEventV2) and event.heartbeat_s:
                limit = MISSED_HEARTBEATS * event.heartbeat_s
            if limit is not None and now - event.at > timedelta(seconds=limit):
                del self.rows[key]
                gone.append(key)
        return sorted(gone)

    def summary(self) -> dict[str, dict[str, int]]:
        """Per breaker: how many workers are open, half-open and closed."""
        out: dict[str, dict[str, int]] = {}
        for (name, _), event in sorted(self.rows.items()):
            counts = out.setdefault(name, dict.fromkeys(_STATES, 0))
            counts[event.to] += 1
        return out

    def any_in(self, state: str) -> list[str]:
        """``breaker@worker`` of every row in ``state``."""
        return sorted(f"{b}@{w}" for (b, w), e in self.rows.items() if e.to == state)

    def as_json(self) -> dict[str, Any]:
        """``{"breakers": {name: {state: workers}}, "workers": {name: {worker: event}}}``."""
        workers: dict[str, dict[str, Any]] = {}
        for (name, worker), event in sorted(self.rows.items()):
            workers.setdefault(name, {})[worker] = _dump(event)
        return {"breakers": self.summary(), "workers": workers}

    def render(self) -> str:
        """The summary table, then one row per breaker and worker."""
        if not self.rows:
            return "no breaker events yet: every breaker is closed (or no worker has run)"
        head: list[tuple[str, ...]] = [("BREAKER", "WORKERS", "OPEN", "HALF-OPEN", "CLOSED")]
        head += [
            (name, str(sum(c.values())), *(str(c[s]) for s in _STATES))
            for name, c in self.summary().items()
        ]
        rows = [("BREAKER", "WORKER", "STATE", "REASON", "AT (UTC)", "FAILS", "PARTS", "ERROR")]
        for (name, worker), e in sorted(self.rows.items()):
            v2 = e if isinstance(e, BreakerEventV2) else None
            rows.append(
                (
                    name,
                    worker,
                    e.to.upper() if e.to != "closed" else e.to,
                    v2.reason if v2 else "(v1)",
                    _at(e),
                    str(e.fail_counter),
                    ",".join(p.rpartition(".")[2] for p in v2.partitions) if v2 else "",
                    (e.error or "")[:60],
                )
            )
        return _table(head) + "\n\n" + _table(rows)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _dump(event: Event) -> dict[str, Any]:
    dumped: dict[str, Any] = json.loads(event.model_dump_json(by_alias=True))
    return dumped


def _at(event: Event) -> str:
    return event.at.strftime("%Y-%m-%d %H:%M:%S")


def render_line(event: Event) -> str:
    """One human line per transition."""
    line = (
        f"{_at(event)}  {event.breaker}: {event.from_} -> {event.to}  "
        f"worker={event.worker} fails={event.fail_counter}"
    )
    if isinstance(event, BreakerEventV2) and event.reason == "peer":
        line += " (following a peer)"
    return f"{line}  error={event.error}" if event.error else line


def webhook_payload(event: Event) -> dict[str, Any]:
    """The event as JSON plus a Slack-compatible ``text``."""
    text = (
        f"{_ICONS.get(event.to, '')} circuit breaker *{event.breaker}* "
        f"{event.from_} → *{event.to}* on `{event.worker}` (fails: {event.fail_counter})"
    )
    if event.error:
        text += f"\n> {event.error}"
    return {**_dump(event), "text": text.strip()}


async def post_webhook(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    *,
    attempts: int = 4,
    initial_delay_s: float = 0.5,
) -> bool:
    """POST ``payload``, retrying errors, 429 and 5xx; False when every attempt failed."""
    delay = initial_delay_s
    for attempt in range(1, attempts + 1):
        try:
            response = await client.post(url, json=payload)
            if response.status_code < 300:
                return True
            if response.status_code != 429 and response.status_code < 500:
                log.error("webhook_rejected", status=response.status_code)
                return False
            error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = repr(exc)[:200]
        if attempt < attempts:
            log.warning("webhook_retry", attempt=attempt, retry_in_s=delay, error=error)
            await asyncio.sleep(delay)
            delay *= 2
    log.error("webhook_failed", attempts=attempts, error=error)
    return False


def _decode(record: Any) -> Event | None:
    """A record's event; None for a tombstone or an unreadable value (logged)."""
    if record.value is None:
        return None
    try:
        event: Event = _EVENTS.validate_json(record.value)
    except ValidationError as exc:
        log.warning("breaker_event_unreadable", offset=record.offset, error=str(exc)[:200])
        return None
    return event


def _fold(fleet: FleetState, records: Iterable[Any]) -> list[Event]:
    """Fold records into ``fleet``; return the new transitions worth printing."""
    shown = []
    for record in records:
        event = _decode(record)
        if event is None:
            if record.value is None:
                fleet.remove(record.key)
            continue
        fleet.add(event)
        kept = fleet.rows.get((event.breaker, event.worker)) is event
        if kept and not (isinstance(event, BreakerEventV2) and event.heartbeat):
            shown.append(event)
    return shown


async def _assign(consumer: AIOKafkaConsumer, topic: str, timeout_s: float) -> list[TopicPartition]:
    deadline = time.monotonic() + timeout_s
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            return tps
        if time.monotonic() > deadline:
            return []
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.2)


async def run_breakers(settings: Settings, args: argparse.Namespace) -> int:
    """The command: snapshot, then (``--follow``) every new transition."""
    topic = Topics.from_settings(settings.kafka).breaker_events
    await check_connection(settings.kafka)
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=200,
    )
    fleet = FleetState(max_age_s=args.max_age)
    try:
        await consumer.start()
        tps = await _assign(consumer, topic, args.timeout)
        if tps:
            end = await consumer.end_offsets(tps)
            deadline = time.monotonic() + args.timeout
            while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
                if time.monotonic() > deadline:
                    print(f"error: could not read {topic} within {args.timeout}s", file=sys.stderr)
                    return 2
                batch = await consumer.getmany(timeout_ms=500)
                _fold(fleet, (r for recs in batch.values() for r in recs))
        fleet.expire()
        print(json.dumps(fleet.as_json(), indent=2) if args.json else fleet.render(), flush=True)
        if args.fail_on and fleet.any_in(args.fail_on):
            return 1
        if not args.follow:
            return 0
        if not tps:
            tps = await _assign(consumer, topic, float("inf"))
        return await _follow(consumer, fleet, args)
    finally:
        await consumer.stop()


async def _follow(consumer: AIOKafkaConsumer, fleet: FleetState, args: argparse.Namespace) -> int:
    async with httpx.AsyncClient(timeout=10.0) as client:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for event in _fold(fleet, (r for recs in batch.values() for r in recs)):
                print(json.dumps(_dump(event)) if args.json else render_line(event), flush=True)
                if args.webhook:
                    await post_webhook(client, args.webhook, webhook_payload(event))
                if args.fail_on and event.to == args.fail_on:
                    return 1


def cmd_breakers(args: argparse.Namespace) -> int:
    """Print the fleet's breaker states (and follow them)."""
    return asyncio.run(run_breakers(_env.settings(), args))


def register(subparsers: Any) -> None:
    """Add ``ragstream breakers`` to the command's subparsers."""
    p = add_command(
        subparsers,
        "breakers",
        help="the fleet's breaker states (events topic)",
        examples=[
            "ragstream breakers --fail-on open            # exit 1 if any worker's is open",
            "ragstream breakers --follow --json | jq .to",
        ],
    )
    p.add_argument("--follow", action="store_true", help="then print each transition as it happens")
    p.add_argument("--json", action="store_true", help="JSON instead of a table / lines")
    p.add_argument(
        "--fail-on",
        choices=["open", "half-open"],
        default=None,
        help="exit 1 when any worker's breaker is (or, with --follow, becomes) in this state",
    )
    p.add_argument(
        "--max-age",
        type=float,
        default=None,
        metavar="SECONDS",
        help="drop a worker's rows after this long without an event "
        f"(default: {MISSED_HEARTBEATS} of its heartbeat intervals; v1 rows never)",
    )
    p.add_argument(
        "--webhook",
        metavar="URL",
        help="with --follow: POST each transition as JSON (Slack-compatible 'text')",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="seconds allowed to read the topic up to its end",
    )
    p.set_defaults(func=cmd_breakers)
