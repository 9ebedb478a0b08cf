"""Sentry for real: sentry-sdk sends envelopes to a receiver on loopback, and we read them.

No mocks of the SDK: ``init_sentry`` gets a DSN pointing at a tiny HTTP server started here;
the assertions are on what arrives (exception type, tags, contexts, breadcrumbs, a sampled
transaction with its spans, and that no credential or document text is in any byte of it).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
import sentry_sdk
import structlog
from pydantic import SecretStr

from ragstream.breaker_events import on_breaker_transition
from services.resilience import Breaker
from streams import observability
from streams.errors import StoreUnavailableError
from streams.scrub import scrub_data, scrub_text
from streams.settings import SentrySettings

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsInRlbmFudCI6ImFjbWUifQ.c2lnbmF0dXJlc2lnbmF0dXJl"
DOC_TEXT = "Confidential merger plan for Globex, do not share"
SECRETS = [JWT, "hunter2", "sk-proj-abcdefghijklmnopqrstuvwx", DOC_TEXT, "s3cr3t-api-key-value"]


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes]

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        self.server.bodies.append(raw)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        return None


def _items(body: bytes) -> Iterator[tuple[dict[str, Any], Any]]:
    """(item header, payload) pairs of one envelope."""
    _, _, rest = body.partition(b"\n")
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        yield header, json.loads(payload) if payload.startswith(b"{") else payload


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    """An HTTP server on loopback that keeps every envelope it is sent."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class _Store:
    """A store whose every call succeeds (or fails, for the last one)."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail

    async def write(self, *args: Any) -> None:
        if self.fail is not None:
            raise self.fail


def _scenario(dsn: str) -> None:
    """What a worker does: one message whose processing fails, and a breaker that opens."""
    assert observability.init_sentry(
        SentrySettings(dsn=SecretStr(dsn), environment="test", traces_sample_rate=1.0)
    )
    logger = structlog.wrap_logger(
        structlog.PrintLogger(open("/dev/null", "w")),  # noqa: SIM115
        processors=[observability.breadcrumbs, structlog.processors.JSONRenderer()],
    )

    async def main() -> None:
        observability.enable_asyncio()
        breaker = Breaker(
            "elasticsearch",
            fail_max=1,
            reset_timeout_s=60,
            call_timeout_s=1,
            unavailable=StoreUnavailableError,
        )
        breaker.subscribe(on_breaker_transition)
        message = SimpleNamespace(topic="p.documents", partition=1, offset=42)
        with observability.message_transaction("ingest", message):
            logger.info("indexing", authorization=f"Bearer {JWT}", text=DOC_TEXT, doc_id="d1")
            for op in ("embedding", "vector", "keyword", "catalog"):
                await observability.Traced(_Store(), op=op).write()
            with pytest.raises(StoreUnavailableError):
                await breaker.call(_Store(StoreUnavailableError("es down, password=hunter2")).write)
            try:
                raise RuntimeError(f"bug near {JWT} and sk-proj-abcdefghijklmnopqrstuvwx")
            except RuntimeError as exc:
                event_id = observability.report_agent_failure(
                    exc,
                    agent="ingest",
                    message=message,
                    breakers={"breaker.elasticsearch": breaker.state},
                    document_id="d1",
                    correlation_id="c-1",
                    tenant="acme",
                )
        assert event_id is not None

    try:
        asyncio.run(main())
        sentry_sdk.flush(timeout=10)
    finally:
        sentry_sdk.get_client().close(timeout=5)
        sentry_sdk.get_global_scope().set_client(None)


async def test_envelopes_carry_the_failure_the_warning_and_the_transaction(
    receiver: ThreadingHTTPServer,
) -> None:
    """Exception with tags and context, a warning for the breaker, spans; no secret leaves."""
    port = receiver.server_address[1]
    await asyncio.to_thread(_scenario, f"http://publickey@127.0.0.1:{port}/1")
    bodies: list[bytes] = receiver.bodies  # type: ignore[attr-defined]
    for secret in SECRETS:
        assert all(secret.encode() not in body for body in bodies), secret
    items = [item for body in bodies for item in _items(body)]
    events = [p for h, p in items if h.get("type") == "event"]
    transactions = [p for h, p in items if h.get("type") == "transaction"]

    [failure] = [e for e in events if e.get("exception")]
    assert failure["exception"]["values"][-1]["type"] == "RuntimeError"
    assert failure["environment"] == "test"
    assert {
        "agent": "ingest",
        "topic": "p.documents",
        "partition": "1",
        "offset": "42",
        "breaker.elasticsearch": "open",
    }.items() <= failure["tags"].items()
    assert failure["contexts"]["message"] == {
        "document_id": "d1",
        "correlation_id": "c-1",
        "tenant": "acme",
    }
    crumbs = [c for c in failure["breadcrumbs"]["values"] if c.get("message") == "indexing"]
    assert crumbs and crumbs[0]["data"]["doc_id"] == "d1"
    assert crumbs[0]["data"]["authorization"] == "[Filtered]"

    [warning] = [e for e in events if not e.get("exception")]
    assert warning["level"] == "warning"
    assert (
        warning["message"] == "circuit breaker 'elasticsearch' opened"
        or warning["logentry"]["message"] == "circuit breaker 'elasticsearch' opened"
    )
    assert warning["tags"]["breaker"] == "elasticsearch"

    [transaction] = transactions
    assert transaction["transaction"] == "ingest p.documents"
    assert transaction["contexts"]["trace"]["op"] == "queue.process"
    ops = {span["op"] for span in transaction["spans"]}
    assert {"embedding", "vector", "keyword", "catalog"} <= ops


def test_without_a_dsn_sentry_stays_off() -> None:
    """No DSN: init does nothing, and the helpers return no event id."""
    assert observability.init_sentry(SentrySettings(dsn=None)) is False
    assert observability.capture_message("hello") is None
    assert observability.capture_exception(ValueError("x")) is None


@pytest.mark.parametrize(
    ("raw", "leaked"),
    [
        pytest.param("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl", id="bearer"),
        pytest.param(f"token {JWT}", JWT, id="jwt"),
        pytest.param(
            "key sk-abcdefghijklmnopqrstuvwxyz012345", "sk-abcdefghijklmnop", id="api-key"
        ),
        pytest.param("postgresql://app:p4ssw0rd@db:5432/x", "p4ssw0rd", id="url-password"),
        pytest.param("connect failed password='hunter2' user=bob", "hunter2", id="password-pair"),
        pytest.param("api_key=s3cr3t-api-key-value&x=1", "s3cr3t-api-key-value", id="api-key-pair"),
    ],
)
def test_scrub_text_removes_credentials(raw: str, leaked: str) -> None:
    """Each kind of credential is replaced by ``[Filtered]``."""
    scrubbed = scrub_text(raw)
    assert leaked not in scrubbed and "[Filtered]" in scrubbed


def test_scrub_data_filters_sensitive_keys_and_header_pairs() -> None:
    """Sensitive keys (any case, - or _) and ``[name, value]`` header pairs are filtered."""
    data = {
        "headers": [["Authorization", "Basic Zm9vOmJhcg=="], ["trace", "keep"]],
        "X-Api-Key": "k",
        "doc": {"text": DOC_TEXT, "id": "d1"},
        "n": 3,
    }
    assert scrub_data(data) == {
        "headers": [["Authorization", "[Filtered]"], ["trace", "keep"]],
        "X-Api-Key": "[Filtered]",
        "doc": {"text": "[Filtered]", "id": "d1"},
        "n": 3,
    }
