"""``ragstream status``: the fleet at a glance.

Workers (the consumer group's members, as the broker reports them; else the workers seen in
breaker events), partitions and their lag (end offset minus the group's committed offset),
breaker states (latest event per breaker), dead letters of the last hour by error code, and
documents per tenant and status from the catalog. Each part that cannot be read is reported
as an error in its place. Exit codes: 0 all read and no ``--fail-on`` condition met, 1 a
condition met or a part unreadable, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from ragstream.cli._env import add_command, settings
from ragstream.cli._topics import read_topic, table
from stores.catalog import SqlCatalog
from streams.connection import aiokafka_kwargs
from streams.settings import Settings
from streams.topics import Topics

__all__ = ["gather", "register"]


async def _members(loaded: Settings) -> list[dict[str, Any]]:
    """The group's members and their partitions, from the broker (DescribeGroups)."""
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(loaded.kafka))
    quiet = logging.getLogger("aiokafka")  # a broker without DescribeGroups: one line, below
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([loaded.kafka.consumer_group])
    finally:
        await admin.close()
        quiet.setLevel(level)
    members = []
    for group in response.to_object()["groups"]:
        for member in group["members"]:
            partitions: list[str] = []
            if member["member_assignment"]:
                decoded = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
                partitions = [f"{t}:{p}" for t, parts in decoded.assignment for p in parts]
            members.append(
                {
                    "member_id": member["member_id"],
                    "client_id": member["client_id"],
                    "host": member["client_host"],
                    "partitions": sorted(partitions),
                }
            )
    return members


async def _lag(loaded: Settings, topics: Topics) -> list[dict[str, Any]]:
    """Per partition of the consumed topics: end offset, the group's committed offset, lag.

    The committed offsets are fetched as a member would (OffsetFetch through the group
    coordinator, without joining), which every Kafka-protocol broker answers.
    """
    reader = AIOKafkaConsumer(
        **aiokafka_kwargs(loaded.kafka),
        group_id=loaded.kafka.consumer_group,
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        await reader._client.force_metadata_update()
        tps = [
            TopicPartition(topic, p)
            for topic in (topics.documents, topics.search_requests)
            for p in sorted(reader.partitions_for_topic(topic) or ())
        ]
        if not tps:
            return []
        reader.assign(tps)
        ends = await reader.end_offsets(tps)
        committed = {tp: await reader.committed(tp) for tp in tps}
    finally:
        await reader.stop()
    return [
        {
            "topic": tp.topic,
            "partition": tp.partition,
            "end": ends[tp],
            "committed": committed[tp],
            "lag": max(ends[tp] - (committed[tp] or 0), 0),
        }
        for tp in tps
    ]


async def _breakers(loaded: Settings, topics: Topics) -> tuple[dict[str, Any], set[str]]:
    """Latest state per breaker, and every worker named in the events."""
    latest: dict[str, Any] = {}
    workers: set[str] = set()
    for record in await read_topic(loaded.kafka, topics.breaker_events):
        if record.value is None:
            continue
        try:
            event = json.loads(record.value)
            latest[event["breaker"]] = {
                "state": event["to"],
                "at": event["at"],
                "worker": event["worker"],
            }
            workers.add(event["worker"])
        except (ValueError, KeyError, TypeError):
            continue  # not an event this version can read
    return dict(sorted(latest.items())), workers


async def _dead_letters(loaded: Settings, topics: Topics) -> dict[str, int]:
    """Dead letters of the last hour, by error code."""
    since = (datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000
    codes: Counter[str] = Counter()
    for record in await read_topic(loaded.kafka, topics.dead_letters):
        if record.timestamp >= since:
            headers = {k: v for k, v in record.headers or ()}
            codes[headers.get("error-code", b"?").decode("utf-8", errors="replace")] += 1
    return dict(sorted(codes.items()))


async def _documents(loaded: Settings) -> list[dict[str, Any]]:
    catalog = SqlCatalog.from_settings(loaded)
    try:
        return [{"tenant": t, "status": s, "documents": n} for t, s, n in await catalog.summary()]
    finally:
        await catalog.aclose()


async def _part(out: dict[str, Any], errors: dict[str, str], name: str, work: Any) -> Any:
    try:
        out[name] = await work
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
        out[name] = None


async def gather(loaded: Settings) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON-ready data (``errors`` names unreadable parts)."""
    topics = Topics.from_settings(loaded.kafka)
    out: dict[str, Any] = {"group": loaded.kafka.consumer_group}
    errors: dict[str, str] = {}
    optional: dict[str, str] = {}  # not every broker answers DescribeGroups (Tansu does not)
    await asyncio.gather(
        _part(out, optional, "members", _members(loaded)),
        _part(out, errors, "partitions", _lag(loaded, topics)),
        _part(out, errors, "breakers", _breakers(loaded, topics)),
        _part(out, errors, "dead_letters_last_hour", _dead_letters(loaded, topics)),
        _part(out, errors, "documents", _documents(loaded)),
    )
    breakers: tuple[dict[str, Any], set[str]] = out.pop("breakers") or ({}, set())
    out["breakers"], seen = breakers
    out["workers_seen_in_breaker_events"] = sorted(seen)
    out["errors"] = errors
    if optional:
        out["members_unavailable"] = optional["members"]
    return out


def _render(data: dict[str, Any]) -> str:
    lines = [f"consumer group {data['group']}"]
    members = data.get("members")
    if members:
        lines.append(f"\nworkers ({len(members)}, from the broker)")
        rows: list[tuple[str, ...]] = [("MEMBER", "HOST", "PARTITIONS")]
        rows += [(m["member_id"][:40], m["host"], ", ".join(m["partitions"])) for m in members]
        lines.append(table(rows))
    else:
        seen = data.get("workers_seen_in_breaker_events") or []
        named = ", ".join(seen) or "none"
        lines.append(f"\nworkers: the broker reports no members; in breaker events: {named}")
    if data.get("partitions"):
        rows = [("TOPIC", "PARTITION", "END", "COMMITTED", "LAG")]
        rows += [
            (p["topic"], str(p["partition"]), str(p["end"]), str(p["committed"]), str(p["lag"]))
            for p in data["partitions"]
        ]
        lines += ["", table(rows)]
    states = data.get("breakers") or {}
    lines.append(
        "\nbreakers: "
        + (
            ", ".join(f"{n} {b['state']} (since {b['at']})" for n, b in states.items())
            or "no events: all closed"
        )
    )
    dead = data.get("dead_letters_last_hour") or {}
    lines.append(
        f"dead letters, last hour: {sum(dead.values())}"
        + (" (" + ", ".join(f"{c} {n}" for c, n in dead.items()) + ")" if dead else "")
    )
    if data.get("documents"):
        rows = [("TENANT", "STATUS", "DOCUMENTS")]
        rows += [(d["tenant"], d["status"], str(d["documents"])) for d in data["documents"]]
        lines += ["", table(rows)]
    for part, error in data["errors"].items():
        lines.append(f"error reading {part}: {error}")
    return "\n".join(lines)


def _failed(data: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """Which ``--fail-on`` / ``--max-lag`` conditions hold."""
    reasons = [f"unreadable: {part}" for part in data["errors"]]
    if "open" in args.fail_on:
        reasons += [
            f"breaker {n} open" for n, b in (data["breakers"] or {}).items() if b["state"] == "open"
        ]
    if "dead-letters" in args.fail_on and sum((data["dead_letters_last_hour"] or {}).values()):
        reasons.append("dead letters in the last hour")
    if args.max_lag is not None:
        lag = sum(p["lag"] for p in data["partitions"] or ())
        if lag > args.max_lag:
            reasons.append(f"lag {lag} > {args.max_lag}")
    return reasons


def _cmd(args: argparse.Namespace) -> int:
    data = asyncio.run(gather(settings()))
    reasons = _failed(data, args)
    data["failed"] = reasons
    print(json.dumps(data, indent=2) if args.json else _render(data))
    return 1 if reasons else 0


def register(sub: Any) -> None:
    """Add ``ragstream status``."""
    p = add_command(
        sub,
        "status",
        help="the fleet at a glance: workers, lag, breakers, dead letters, documents",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        examples=[
            "ragstream status",
            "ragstream status --json --fail-on open --max-lag 1000   # cron / CI",
        ],
    )
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    p.add_argument(
        "--fail-on",
        action="append",
        choices=["open", "dead-letters"],
        default=[],
        help="exit 1 when a breaker is open / there were dead letters in the last hour",
    )
    p.add_argument("--max-lag", type=int, metavar="N", help="exit 1 when the total lag exceeds N")
    p.set_defaults(func=_cmd)
