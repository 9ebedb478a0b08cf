"""Fuzzing the agents on fakes: random sequences of valid and invalid messages.

The ingest agent gets batches of upserts, deletes (several versions of a few ids, in two
tenants) and every kind of bad message, while the keyword store fails a random number of
times; every message must get exactly one result (and a bad one exactly one dead letter), and
the stores and the catalog must end as a simple model says: the last version of each id, and
nothing of a deleted one. The search agent gets any bytes and any headers: each request gets
exactly one reply, or one dead letter when it has no reply topic, and never raises.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.ingest import embed_ahead, index_documents, read_documents
from agents.search import handle_search
from schemas.document import DocumentUpsert
from schemas.headers import Headers
from streams.codec import header
from streams.errors import StoreUnavailableError
from tests.fakes import FakeContext, FakeMessage, FakeProducer, fake_settings
from tests.strategies import CODES, any_headers, request_values

TENANTS = ("acme", "globex")
IDS = ("a", "b", "c")
WORDS = ("kafka", "offset", "stream", "chunk", "vector", "lighthouse", "keeper", "wick")
MAX_TEXT_CHARS = 400


@dataclass(frozen=True)
class Msg:
    """A documents-topic message and what the agent must answer."""

    key: bytes | None
    value: bytes | None
    tenant: str | None = None
    doc_id: str | None = None
    text: str | None = None
    """Set for a valid upsert; None for a valid delete."""
    code: str | None = None
    """The error code of an invalid message (None: valid)."""


def _body(**fields: Any) -> bytes:
    return json.dumps({"schema": "ragstream.document.v1"} | fields).encode()


texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=80).map(" ".join)


@st.composite
def messages(draw: st.DrawFn) -> Msg:
    """One valid upsert or delete, or one bad message of some kind."""
    tenant, doc_id = draw(st.sampled_from(TENANTS)), draw(st.sampled_from(IDS))
    key = doc_id.encode()
    kind = draw(
        st.sampled_from(
            ["upsert"] * 6
            + ["delete"] * 2
            + ["not-json", "tombstone", "schema", "key", "blank", "too-long", "tenant", "op"]
        )
    )
    if kind == "upsert":
        text = draw(texts)
        return Msg(
            key, _body(op="upsert", id=doc_id, tenant=tenant, text=text), tenant, doc_id, text
        )
    if kind == "delete":
        return Msg(key, _body(op="delete", id=doc_id, tenant=tenant), tenant, doc_id)
    bad: dict[str, tuple[bytes | None, bytes | None, str]] = {
        "not-json": (key, b"{" + draw(st.binary(max_size=20)), "malformed_json"),
        "tombstone": (key, None, "malformed_json"),
        "schema": (key, b'{"schema": "ragstream.document.v0"}', "unknown_schema"),
        "key": (b"other", _body(op="delete", id=doc_id, tenant=tenant), "invalid_schema"),
        "blank": (key, _body(op="upsert", id=doc_id, tenant=tenant, text=" \n"), "invalid_schema"),
        "too-long": (
            key,
            _body(op="upsert", id=doc_id, tenant=tenant, text="x " * MAX_TEXT_CHARS),
            "too_large",
        ),
        "tenant": (key, _body(op="delete", id=doc_id, tenant="-bad"), "invalid_schema"),
        "op": (key, _body(op="move", id=doc_id, tenant=tenant), "invalid_schema"),
    }
    bad_key, value, code = bad[kind]
    return Msg(bad_key, value, code=code)


def _outage_on_keyword_upserts(context: FakeContext, failures: list[int]) -> None:
    """The keyword store's ``upsert`` fails (retriably) ``failures[i]`` times in batch ``i``."""
    upsert = context.keywords.upsert
    state = {"left": 0}

    async def flaky(chunks: Any) -> None:
        if state["left"] > 0:
            state["left"] -= 1
            raise StoreUnavailableError("elasticsearch is down")
        await upsert(chunks)

    context.keywords.upsert = flaky  # type: ignore[method-assign]
    context.outage = state  # type: ignore[attr-defined]
    # (a batch that writes no chunk leaves its outage unconsumed: the next one resets it)


async def _run_ingest(batches: list[list[Msg]], failures: list[int]) -> None:
    context = FakeContext(settings=fake_settings(max_text_chars=MAX_TEXT_CHARS))
    _outage_on_keyword_upserts(context, failures)
    producer = FakeProducer()
    model: dict[tuple[str, str], str] = {}
    offset = 0
    for batch, failing in zip(batches, failures, strict=True):
        context.outage["left"] = failing  # type: ignore[attr-defined]
        fakes = []
        for msg in batch:
            fakes.append(context.document(msg.value, key=msg.key, offset=offset))
            offset += 1
        sent_before = len(producer.sent)
        read = await read_documents(context, fakes)
        await embed_ahead(context, read)
        results = await index_documents(context, producer, read)

        # Exactly one result per message, in order, each also on the results topic.
        assert len(results) == len(batch)
        sent = producer.sent[sent_before:]
        on_results = [s for s in sent if s.topic == context.topics.ingest_results]
        dead = [s for s in sent if s.topic == context.topics.dead_letters]
        assert [s.key for s in on_results] == [m.key for m in batch]
        assert len(sent) == len(on_results) + len(dead)
        assert [(d.key, d.value) for d in dead] == [(m.key, m.value) for m in batch if m.code]
        for msg, result in zip(batch, results, strict=True):
            if msg.code is not None:
                assert result.status == "rejected" and result.error is not None
                assert result.error.code == msg.code, result.error
                continue
            assert msg.tenant is not None and msg.doc_id is not None
            key = (msg.tenant, msg.doc_id)
            if msg.text is None:
                assert result.status == "deleted"
                model.pop(key, None)
            else:
                expected = "unchanged" if model.get(key) == msg.text else "indexed"
                assert result.status == expected, (msg, model.get(key))
                model[key] = msg.text

    # The final state is the model's: the last version of each id, nothing of deleted ones.
    for tenant in TENANTS:
        records = await context.catalog.list(tenant, limit=100)
        assert {r.doc_id for r in records} == {d for (t, d) in model if t == tenant}
        total = 0
        for record in records:
            text = model[(tenant, record.doc_id)]
            doc = DocumentUpsert(id=record.doc_id, tenant=tenant, text=text)
            chunks = context.indexer.chunk(doc)
            assert record.chunk_count == len(chunks)
            assert await context.vectors.count(tenant, record.doc_id) == len(chunks)
            assert await context.keywords.count(tenant, record.doc_id) == len(chunks)
            hits = await context.keywords.search(tenant, text, top_k=1000)
            assert {h.chunk.text for h in hits if h.chunk.doc_id == record.doc_id} == {
                c.text for c in chunks
            }
            total += len(chunks)
        # No orphans: the stores hold exactly the chunks of the catalog's documents.
        assert await context.vectors.count(tenant) == total
        assert await context.keywords.count(tenant) == total


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.lists(messages(), min_size=1, max_size=6), min_size=1, max_size=6),
    data=st.data(),
)
def test_every_document_message_gets_one_result_and_the_stores_match_the_model(
    batches: list[list[Msg]], data: st.DataObject
) -> None:
    """Any sequence of document messages, in any batches, through a flaky keyword store:
    one result each, one dead letter per bad one, and the final state of the model."""
    failures = data.draw(st.lists(st.integers(0, 3), min_size=len(batches), max_size=len(batches)))
    asyncio.run(_run_ingest(batches, failures))


# --- search ---


async def _search_context() -> FakeContext:
    context = FakeContext()
    producer = FakeProducer()
    for tenant, doc_id, text in [
        ("acme", "a", "kafka offsets and streams"),
        ("acme", "b", "a lighthouse keeper trims the wick"),
        ("globex", "a", "kafka vectors for another tenant"),
    ]:
        value = _body(op="upsert", id=doc_id, tenant=tenant, text=text)
        read = await read_documents(context, [context.document(value, key=doc_id.encode())])
        await index_documents(context, producer, read)
    return context


valid_requests = st.fixed_dictionaries(
    {
        "schema": st.just("ragstream.search-request.v1"),
        "query": st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
        "tenant": st.sampled_from(TENANTS),
    },
    optional={
        "mode": st.sampled_from(["hybrid", "vector", "keyword"]),
        "top_k": st.integers(1, 50),
        "filters": st.sampled_from([{}, {"doc_id": "a"}, {"metadata.lang": "en"}]),
    },
).map(lambda body: json.dumps(body).encode())

reply_headers = st.lists(
    st.sampled_from(
        [
            (Headers.REPLY_TO, b"replies"),
            (Headers.REPLY_TO, b""),
            (Headers.CORRELATION_ID, b"c-1"),
            (Headers.SPRING_REPLY_TOPIC, b"spring-replies"),
            (Headers.SPRING_CORRELATION_ID, bytes(range(16))),
            ("kafka_replyPartition", b"\x00\x00\x00\x01"),
        ]
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=valid_requests | request_values,
    headers=reply_headers | any_headers,
)
def test_every_search_request_gets_one_reply_or_one_dead_letter(value: Any, headers: Any) -> None:
    """Any bytes with any headers: exactly one message out (a reply to the reply topic, or a
    dead letter without one), never an exception; ``ok`` hits stay in the request's tenant."""
    asyncio.run(_run_search(value, headers))


async def _run_search(value: bytes | None, headers: Any) -> None:
    context = await _search_context()
    producer = FakeProducer()
    message = FakeMessage(value, key=b"k", headers=headers, topic=context.topics.search_requests)
    result = await handle_search(context, producer, message)
    [out] = producer.sent
    reply_to = header(headers, Headers.REPLY_TO, Headers.SPRING_REPLY_TOPIC)
    if not reply_to:
        assert result is None and out.topic == context.topics.dead_letters
        assert (out.key, out.value) == (b"k", value)
        assert out.header(Headers.ERROR_CODE) == b"invalid_schema"
        return
    assert result is not None and out.topic == reply_to
    assert out.value is not None and json.loads(out.value)["status"] == result.status
    if result.status == "error":
        assert result.error is not None
        assert result.error.code in CODES | {"unavailable"}, result.error
        return
    request = json.loads(value or b"{}")
    expected = {"acme": {"a", "b"}, "globex": {"a"}}[request["tenant"]]
    assert {hit.doc_id for hit in result.hits} <= expected
    if request.get("filters") == {"doc_id": "a"}:
        assert {hit.doc_id for hit in result.hits} <= {"a"}
