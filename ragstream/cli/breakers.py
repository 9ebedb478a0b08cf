"""``ragstream breakers``: the fleet's breaker states, and the alerting consumer.

Reads ``{prefix}.breaker-events`` (compacted, key = breaker name) from the beginning: the
latest event per key is the fleet's current state of that breaker; the latest per
(breaker, worker) is shown too while compaction has not removed it. ``--follow`` then
prints each new transition as it happens (a line, or JSON with ``--json``), POSTs it to
``--webhook`` (JSON with a Slack-compatible ``text``, retried), and ``--fail-on open``
exits 1 as soon as a breaker is (or becomes) open, for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterable
from typing import Any

import httpx
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from ragstream.cli import _env
from ragstream.cli._env import add_command
from schemas.breaker import BreakerEvent
from streams.settings import Settings
from streams.topics import Topics

__all__ = ["FleetState", "post_webhook", "register", "render_line", "webhook_payload"]

log = structlog.get_logger(__name__)
_ICONS = {
    "open": ":red_circle:",
    "half-open": ":large_yellow_circle:",
    "closed": ":large_green_circle:",
}


class FleetState:
    """Latest event per breaker (the fleet's state) and per (breaker, worker)."""

    def __init__(self) -> None:
        self.latest: dict[str, BreakerEvent] = {}
        self.by_worker: dict[str, dict[str, BreakerEvent]] = {}

    def add(self, event: BreakerEvent) -> None:
        """Fold one event in (events arrive in topic order)."""
        self.latest[event.breaker] = event
        self.by_worker.setdefault(event.breaker, {})[event.worker] = event

    def any_in(self, state: str) -> list[str]:
        """Breakers whose fleet state is ``state``."""
        return sorted(name for name, event in self.latest.items() if event.to == state)

    def as_json(self) -> dict[str, Any]:
        """``{"breakers": {name: event}, "workers": {name: {worker: event}}}``."""
        dump = _dump
        return {
            "breakers": {name: dump(e) for name, e in sorted(self.latest.items())},
            "workers": {
                name: {w: dump(e) for w, e in sorted(per.items())}
                for name, per in sorted(self.by_worker.items())
            },
        }

    def render(self) -> str:
        """A plain table, one row per breaker and worker, the fleet state first."""
        if not self.latest:
            return "no breaker events yet: every breaker is closed (or no worker has run)"
        rows = [("BREAKER", "STATE", "WORKER", "SINCE (UTC)", "FAILS", "LAST ERROR")]
        for name, event in sorted(self.latest.items()):
            rows.append(
                (
                    name,
                    event.to.upper(),
                    "fleet (latest)",
                    _at(event),
                    str(event.fail_counter),
                    (event.error or "")[:60],
                )
            )
            for worker, per in sorted(self.by_worker.get(name, {}).items()):
                rows.append(
                    ("", per.to, worker, _at(per), str(per.fail_counter), (per.error or "")[:60])
                )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        )


def _dump(event: BreakerEvent) -> dict[str, Any]:
    dumped: dict[str, Any] = json.loads(event.model_dump_json(by_alias=True))
    return dumped


def _at(event: BreakerEvent) -> str:
    return event.at.strftime("%Y-%m-%d %H:%M:%S")


def render_line(event: BreakerEvent) -> str:
    """One human line per transition."""
    line = (
        f"{_at(event)}  {event.breaker}: {event.from_} -> {event.to}  "
        f"worker={event.worker} fails={event.fail_counter}"
    )
    return f"{line}  error={event.error}" if event.error else line


def webhook_payload(event: BreakerEvent) -> dict[str, Any]:
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


def _decode(records: Iterable[Any]) -> list[BreakerEvent]:
    events = []
    for record in records:
        if record.value is None:
            continue  # a tombstone
        try:
            events.append(BreakerEvent.model_validate_json(record.value))
        except ValidationError as exc:
            log.warning("breaker_event_unreadable", offset=record.offset, error=str(exc)[:200])
    return events


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
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=200,
    )
    fleet = FleetState()
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
                for event in _decode(r for recs in batch.values() for r in recs):
                    fleet.add(event)
        print(json.dumps(fleet.as_json(), indent=2) if args.json else fleet.render(), flush=True)
        if args.fail_on and fleet.any_in(args.fail_on):
            return 1
        if not args.follow:
            return 0
        if not tps:
            tps = await _assign(consumer, topic, float("inf"))
        return await _follow(consumer, args)
    finally:
        await consumer.stop()


async def _follow(consumer: AIOKafkaConsumer, args: argparse.Namespace) -> int:
    async with httpx.AsyncClient(timeout=10.0) as client:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for event in _decode(r for recs in batch.values() for r in recs):
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
            "ragstream breakers --fail-on open            # exit 1 if any breaker is open",
            "ragstream breakers --follow --json | jq .to",
        ],
    )
    p.add_argument("--follow", action="store_true", help="then print each transition as it happens")
    p.add_argument("--json", action="store_true", help="JSON instead of a table / lines")
    p.add_argument(
        "--fail-on",
        choices=["open", "half-open"],
        default=None,
        help="exit 1 when a breaker is (or, with --follow, becomes) in this state",
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
