"""``ragstream dead-letters list|show|replay``: triage the dead-letter topic.

A dead letter is the original message, byte for byte, with its credential headers stripped
and headers saying why and where it came from (``docs/topics.md``). ``replay`` re-produces
the original bytes and headers to the original topic with the operator's credential and a
``replayed-from`` header; replaying twice is harmless (deterministic chunk ids and the
content hash make the second one ``unchanged``). Exit codes: 0 done, 1 failed, 2 usage,
3 nothing matched (``show``: no such dead letter; ``replay``: no dead letter to replay).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ragstream.cli._env import add_command, add_credentials, credentials, fail, settings
from ragstream.cli._topics import EXIT_NOT_FOUND, producer, read_topic, table
from schemas.headers import Headers
from streams.codec import headers_to_list
from streams.errors import ConfigError
from streams.settings import Settings
from streams.topics import Topics

__all__ = ["DeadLetter", "parse_since", "register", "replay_headers"]

_ADDED = frozenset(
    {
        Headers.ERROR_CODE,
        Headers.ERROR_MESSAGE,
        Headers.ORIGINAL_TOPIC,
        Headers.ORIGINAL_PARTITION,
        Headers.ORIGINAL_OFFSET,
        Headers.EXCEPTION_TYPE,
    }
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``90s``, ``30m``, ``1h``, ``2d`` ago, or an ISO-8601 time (UTC if no offset)."""
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match:
        return now - timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--since {text!r}: use 30m, 1h, 2d or an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic."""

    topic: str
    partition: int
    offset: int
    at: datetime
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @classmethod
    def of(cls, record: Any) -> DeadLetter:
        """From an aiokafka record."""
        at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        headers = headers_to_list(record.headers)
        return cls(
            record.topic, record.partition, record.offset, at, record.key, record.value, headers
        )

    def header(self, name: str) -> str | None:
        """The last value of a header, as text."""
        values = [v for k, v in self.headers if k == name]
        return values[-1].decode("utf-8", errors="replace") if values else None

    @property
    def ref(self) -> str:
        """``partition:offset`` in the dead-letter topic."""
        return f"{self.partition}:{self.offset}"

    @property
    def doc_id(self) -> str | None:
        """The message key (the document id on the documents topic)."""
        return self.key.decode("utf-8", errors="replace") if self.key is not None else None

    def as_json(self, *, with_value: bool = False) -> dict[str, Any]:
        """The fields an operator filters on (and, for ``show``, the message itself)."""
        out: dict[str, Any] = {
            "ref": self.ref,
            "partition": self.partition,
            "offset": self.offset,
            "at": self.at.isoformat(),
            "doc_id": self.doc_id,
            "error_code": self.header(Headers.ERROR_CODE),
            "error_message": self.header(Headers.ERROR_MESSAGE),
            "original_topic": self.header(Headers.ORIGINAL_TOPIC),
            "original_partition": self.header(Headers.ORIGINAL_PARTITION),
            "original_offset": self.header(Headers.ORIGINAL_OFFSET),
            "replayed_from": self.header(Headers.REPLAYED_FROM),
        }
        if with_value:
            out["headers"] = {k: v.decode("utf-8", errors="replace") for k, v in self.headers}
            try:
                out["value"] = self.value.decode("utf-8") if self.value is not None else None
            except UnicodeDecodeError:
                assert self.value is not None
                out["value_base64"] = base64.b64encode(self.value).decode()
        return out


def replay_headers(
    letter: DeadLetter, credential: list[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """The original headers (the dead letter's own removed), the credential, ``replayed-from``."""
    kept = [(k, v) for k, v in letter.headers if k not in _ADDED and k != Headers.REPLAYED_FROM]
    source = f"{letter.topic}:{letter.ref}".encode()
    return [*kept, *credential, (Headers.REPLAYED_FROM, source)]


def _credential_headers(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    creds = credentials(args)
    if creds.token:
        return [(Headers.AUTHORIZATION, f"Bearer {creds.token}".encode())]
    if creds.api_key:
        return [(Headers.API_KEY, creds.api_key.encode())]
    return []


async def _matching(loaded: Settings, args: argparse.Namespace) -> list[DeadLetter]:
    topic = Topics.from_settings(loaded.kafka).dead_letters
    letters = [
        DeadLetter.of(r) for r in await read_topic(loaded.kafka, topic, timeout_s=args.timeout)
    ]
    since = parse_since(args.since) if getattr(args, "since", None) else None
    return [
        d
        for d in letters
        if (since is None or d.at >= since)
        and (not args.error_code or d.header(Headers.ERROR_CODE) == args.error_code)
        and (not args.doc_id or d.doc_id == args.doc_id)
    ]


def _print(letters: list[DeadLetter], as_json: bool) -> None:
    if as_json:
        print(json.dumps([d.as_json() for d in letters], indent=2))
        return
    if not letters:
        print("no dead letters match")
        return
    rows = [("REF", "AT (UTC)", "ERROR CODE", "DOC ID", "FROM", "MESSAGE")]
    for d in letters:
        origin = f"{d.header(Headers.ORIGINAL_TOPIC)}:{d.header(Headers.ORIGINAL_PARTITION)}"
        rows.append(
            (
                d.ref,
                d.at.strftime("%Y-%m-%d %H:%M:%S"),
                d.header(Headers.ERROR_CODE) or "",
                (d.doc_id or "")[:40],
                f"{origin}:{d.header(Headers.ORIGINAL_OFFSET)}",
                (d.header(Headers.ERROR_MESSAGE) or "")[:60],
            )
        )
    print(table(rows))


async def _list(args: argparse.Namespace) -> int:
    _print(await _matching(settings(), args), args.json)
    return 0


def _ref(text: str, partition: int) -> tuple[int, int]:
    if ":" in text:
        p, o = text.split(":", 1)
        return int(p), int(o)
    return partition, int(text)


async def _show(args: argparse.Namespace) -> int:
    loaded = settings()
    try:
        partition, offset = _ref(args.offset, args.partition)
    except ValueError:
        return fail(
            "dead-letters show", f"{args.offset!r}: expected OFFSET or PARTITION:OFFSET", code=2
        )
    topic = Topics.from_settings(loaded.kafka).dead_letters
    for record in await read_topic(loaded.kafka, topic, timeout_s=args.timeout):
        if (record.partition, record.offset) == (partition, offset):
            letter = DeadLetter.of(record)
            body = letter.as_json(with_value=True)
            if args.json:
                print(json.dumps(body, indent=2))
            else:
                for key, value in body.items():
                    if key not in ("headers", "value", "value_base64"):
                        print(f"{key:>18}: {value}")
                print("           headers:")
                for name, value in body["headers"].items():
                    print(f"                    {name}: {value}")
                print(body.get("value", f"(binary, base64) {body.get('value_base64')}"))
            return 0
    return fail(
        "dead-letters show",
        f"no dead letter at {partition}:{offset} in {topic}",
        code=EXIT_NOT_FOUND,
    )


async def _replay(args: argparse.Namespace) -> int:
    loaded = settings()
    credential = _credential_headers(args)
    letters = await _matching(loaded, args)
    replayable = [d for d in letters if d.header(Headers.ORIGINAL_TOPIC)]
    plan = [
        {**d.as_json(), "to": d.header(Headers.ORIGINAL_TOPIC), "dry_run": args.dry_run}
        for d in replayable
    ]
    if not args.dry_run and replayable:
        sender = producer(loaded.kafka)
        await sender.start()
        try:
            await asyncio.gather(
                *(
                    sender.send_and_wait(
                        d.header(Headers.ORIGINAL_TOPIC),
                        d.value,
                        key=d.key,
                        headers=replay_headers(d, credential),
                    )
                    for d in replayable
                )
            )
        finally:
            await sender.stop()
    if args.json:
        print(json.dumps(plan, indent=2))
    else:
        verb = "would replay" if args.dry_run else "replayed"
        for item in plan:
            print(f"{verb} {item['ref']} ({item['error_code']}, {item['doc_id']}) to {item['to']}")
        print(
            f"{len(plan)} dead letter(s) {verb}" + ("" if credential else " without a credential")
        )
    return 0 if replayable else EXIT_NOT_FOUND


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="WHEN", help="only newer ones: 30m, 1h, 2d or ISO-8601")
    p.add_argument("--error-code", metavar="CODE", help="only this error code, e.g. too_large")
    p.add_argument("--doc-id", metavar="ID", help="only this document id (message key)")
    _common(p)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to read the topic")


def register(sub: Any) -> None:
    """Add ``ragstream dead-letters list|show|replay``."""
    group = add_command(
        sub,
        "dead-letters",
        help="list, show and replay dead letters",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        examples=[
            "ragstream dead-letters list --since 1h --error-code unauthenticated",
            "ragstream dead-letters show 0:42 --json",
            "RAGSTREAM_TOKEN=... ragstream dead-letters replay --doc-id handbook.md --dry-run",
        ],
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = add_command(
        actions,
        "list",
        help="dead letters, oldest first",
        examples=["ragstream dead-letters list --since 1h --error-code malformed_json --json"],
    )
    _filters(p)
    p.set_defaults(func=lambda a: asyncio.run(_list(a)))
    p = add_command(
        actions,
        "show",
        help="one dead letter, headers and message",
        examples=["ragstream dead-letters show 0:42"],
    )
    p.add_argument("offset", metavar="OFFSET", help="PARTITION:OFFSET (or OFFSET with --partition)")
    p.add_argument("--partition", type=int, default=0, help="partition when OFFSET has none")
    _common(p)
    p.set_defaults(func=lambda a: asyncio.run(_show(a)))
    p = add_command(
        actions,
        "replay",
        help="re-produce matching dead letters to their original topic",
        examples=["ragstream dead-letters replay --doc-id handbook.md --token-stdin < token.txt"],
    )
    _filters(p)
    p.add_argument("--dry-run", action="store_true", help="print what would be replayed")
    add_credentials(p)
    p.set_defaults(func=lambda a: asyncio.run(_replay(a)))
