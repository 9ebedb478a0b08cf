"""The ingest and search agents through ``AgentContext``, on fakes: no broker, no service."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from agents.ingest import embed_ahead, index_documents, read_documents
from agents.search import handle_search
from schemas.headers import Headers
from services.auth import Authenticator
from services.auth_tokens import TokenMinter, TokenVerifier
from streams.errors import StoreRejectedError, StoreUnavailableError
from streams.settings import AuthSettings
from tests.auth_keys import TEST_SECRET
from tests.fakes import FakeContext, FakeMessage, FakeProducer, Sent


def _doc(doc_id: str = "d1", text: str = "apples and pears grow on trees", **kw: Any) -> bytes:
    body = {"schema": "ragstream.document.v1", "op": "upsert", "id": doc_id, "tenant": "acme"}
    return json.dumps(body | {"text": text} | kw).encode()


def _delete(doc_id: str = "d1", tenant: str = "acme") -> bytes:
    body = {"schema": "ragstream.document.v1", "op": "delete", "id": doc_id, "tenant": tenant}
    return json.dumps(body).encode()


def _request(query: str = "apples", **kw: Any) -> bytes:
    body = {"schema": "ragstream.search-request.v1", "query": query, "tenant": "acme"}
    return json.dumps(body | kw).encode()


async def _ingest(
    context: FakeContext, producer: FakeProducer, *messages: FakeMessage
) -> list[Any]:
    batch = await read_documents(context, messages)
    await embed_ahead(context, batch)
    return await index_documents(context, producer, batch)


def _body(sent: Sent) -> dict[str, Any]:
    assert sent.value is not None
    return json.loads(sent.value)


@pytest.fixture
def context() -> FakeContext:
    """A fresh agent context on empty memory stores, authentication disabled."""
    return FakeContext()


@pytest.fixture
def producer() -> FakeProducer:
    """A producer that records every send."""
    return FakeProducer()


async def test_an_upsert_is_indexed_everywhere_and_reported(
    context: FakeContext, producer: FakeProducer
) -> None:
    """A valid upsert lands in both stores and the catalog; its result goes to ingest-results."""
    text = " ".join(f"word{i}" for i in range(40))
    msg = context.document(_doc("d1", text), key=b"d1", correlation_id="c-1")
    [result] = await _ingest(context, producer, msg)
    assert (result.status, result.id, result.tenant, result.correlation_id) == (
        "indexed",
        "d1",
        "acme",
        "c-1",
    )
    assert result.chunks > 1
    assert await context.vectors.count("acme", "d1") == result.chunks
    assert await context.keywords.count("acme", "d1") == result.chunks
    record = await context.catalog.get("acme", "d1")
    assert record is not None and record.chunk_count == result.chunks
    [sent] = producer.sent
    assert (sent.topic, sent.key) == (context.topics.ingest_results, b"d1")
    assert sent.header(Headers.CORRELATION_ID) == b"c-1"
    assert _body(sent)["status"] == "indexed" and _body(sent)["chunks"] == result.chunks


async def test_the_same_content_again_is_unchanged_and_not_embedded(
    context: FakeContext, producer: FakeProducer
) -> None:
    """Replaying a document reports ``unchanged`` and embeds nothing."""
    await _ingest(context, producer, context.document(_doc(), key=b"d1"))
    calls = len(context.embedder.calls)
    [again] = await _ingest(context, producer, context.document(_doc(), key=b"d1", offset=1))
    assert again.status == "unchanged" and again.chunks == 1
    assert len(context.embedder.calls) == calls


async def test_a_delete_removes_the_document_everywhere(
    context: FakeContext, producer: FakeProducer
) -> None:
    """A delete after an upsert, in one batch, leaves no chunk and no catalog record."""
    results = await _ingest(
        context,
        producer,
        context.document(_doc(), key=b"d1"),
        context.document(_delete(), key=b"d1", offset=1),
    )
    assert [r.status for r in results] == ["indexed", "deleted"]
    assert await context.vectors.count("acme") == await context.keywords.count("acme") == 0
    assert await context.catalog.get("acme", "d1") is None


async def test_a_bad_message_is_dead_lettered_and_the_rest_indexed(
    context: FakeContext, producer: FakeProducer
) -> None:
    """Invalid JSON gets ``rejected`` plus a byte-exact dead letter; its neighbours are indexed."""
    bad = context.document(
        b"{not json", key=b"bad", offset=7, headers=[("trace", b"t-1"), ("x-api-key", b"secret")]
    )
    results = await _ingest(
        context,
        producer,
        context.document(_doc("a"), key=b"a", offset=6),
        bad,
        context.document(_doc("b"), key=b"b", offset=8),
    )
    assert [(r.id, r.status) for r in results] == [
        ("a", "indexed"),
        ("bad", "rejected"),
        ("b", "indexed"),
    ]
    assert results[1].error is not None and results[1].error.code == "malformed_json"
    [dead] = producer.on(context.topics.dead_letters)
    assert (dead.key, dead.value) == (b"bad", b"{not json")
    assert dead.header(Headers.ERROR_CODE) == b"malformed_json"
    assert dead.header(Headers.ORIGINAL_TOPIC) == context.topics.documents.encode()
    assert dead.header(Headers.ORIGINAL_OFFSET) == b"7"
    assert dead.header("trace") == b"t-1" and dead.header("x-api-key") is None
    sent = producer.on(context.topics.ingest_results)
    assert [s.key for s in sent] == [b"a", b"bad", b"b"]
    assert await context.catalog.count("acme") == 2


async def test_a_key_that_is_not_the_id_is_rejected(
    context: FakeContext, producer: FakeProducer
) -> None:
    """The message key must be the document id: otherwise ``invalid_schema``, nothing written."""
    [result] = await _ingest(context, producer, context.document(_doc("d1"), key=b"other"))
    assert result.status == "rejected" and result.error is not None
    assert result.error.code == "invalid_schema" and "key" in result.error.message
    assert len(producer.on(context.topics.dead_letters)) == 1
    assert await context.catalog.count() == 0


async def test_results_also_go_to_the_reply_topic_once(
    context: FakeContext, producer: FakeProducer
) -> None:
    """``reply-to`` gets a copy of the result; a reply-to naming ingest-results gets no second."""
    await _ingest(
        context,
        producer,
        context.document(_doc("a"), key=b"a", reply_to="replies", correlation_id="c-a"),
        context.document(_doc("b"), key=b"b", reply_to=context.topics.ingest_results),
    )
    [reply] = producer.on("replies")
    assert (reply.key, reply.header(Headers.CORRELATION_ID)) == (b"a", b"c-a")
    assert _body(reply)["status"] == "indexed"
    assert [s.key for s in producer.on(context.topics.ingest_results)] == [b"a", b"b"]


async def test_a_failing_reply_topic_does_not_fail_the_batch(context: FakeContext) -> None:
    """A reply that cannot be sent is logged; the result on ingest-results still goes out."""
    producer = FakeProducer(fail_topics=["gone"])
    [result] = await _ingest(
        context, producer, context.document(_doc(), key=b"d1", reply_to="gone")
    )
    assert result.status == "indexed"
    assert len(producer.on(context.topics.ingest_results)) == 1


async def test_vectors_embedded_ahead_are_used_in_order(
    context: FakeContext, producer: FakeProducer
) -> None:
    """``embed_ahead`` embeds the batch's chunks; ``index_documents`` does not embed them again."""
    batch = await read_documents(context, [context.document(_doc(), key=b"d1")])
    await embed_ahead(context, batch)
    assert batch.embedded and context.embedder.calls == [1]
    [result] = await index_documents(context, producer, batch)
    assert result.status == "indexed" and context.embedder.calls == [1]


async def test_a_failed_look_ahead_only_means_embedding_in_order(
    context: FakeContext, producer: FakeProducer
) -> None:
    """An embedding outage during the look-ahead is swallowed; the in-order pass embeds."""
    batch = await read_documents(context, [context.document(_doc(), key=b"d1")])
    context.embedder.error = StoreUnavailableError("model down")
    await embed_ahead(context, batch)
    assert batch.embedded == {}
    context.embedder.error = None
    [result] = await index_documents(context, producer, batch)
    assert result.status == "indexed" and context.embedder.calls == [1]


async def test_a_store_outage_holds_the_batch_until_it_is_back(
    context: FakeContext, producer: FakeProducer
) -> None:
    """While a store is down the batch is retried, not dropped, and completes once it is up."""
    attempts = 0
    upsert = context.keywords.upsert

    async def flaky(chunks: Any) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise StoreUnavailableError("elasticsearch is down")
        await upsert(chunks)

    context.keywords.upsert = flaky  # type: ignore[method-assign]
    [result] = await _ingest(context, producer, context.document(_doc(), key=b"d1"))
    assert attempts == 4 and result.status == "indexed"
    assert await context.keywords.count("acme", "d1") == 1
    assert producer.on(context.topics.dead_letters) == []


async def test_a_store_rejection_dead_letters_only_that_document(
    context: FakeContext, producer: FakeProducer
) -> None:
    """A non-retriable store error fails the one document it is about; the others are indexed."""
    upsert = context.keywords.upsert

    async def picky(chunks: Any) -> None:
        if any(c.doc_id == "bad" for c in chunks):
            raise StoreRejectedError("mapping conflict")
        await upsert(chunks)

    context.keywords.upsert = picky  # type: ignore[method-assign]
    results = await _ingest(
        context,
        producer,
        context.document(_doc("a"), key=b"a"),
        context.document(_doc("bad"), key=b"bad"),
        context.document(_doc("c"), key=b"c"),
    )
    assert [r.status for r in results] == ["indexed", "rejected", "indexed"]
    assert results[1].error is not None and results[1].error.code == "store_rejected"
    [dead] = producer.on(context.topics.dead_letters)
    assert dead.key == b"bad" and dead.header(Headers.ERROR_CODE) == b"store_rejected"


def _authenticating_context() -> tuple[FakeContext, TokenMinter]:
    settings = AuthSettings(secret_key=TEST_SECRET, bcrypt_rounds=4, issuer="iss", audience="aud")
    auth = Authenticator(required=True, verifier=TokenVerifier(settings))
    return FakeContext(auth=auth), TokenMinter(settings)


async def test_a_document_for_another_tenant_is_forbidden(producer: FakeProducer) -> None:
    """A credential for tenant ``other`` cannot write ``acme``: ``forbidden``, token not kept."""
    context, minter = _authenticating_context()
    token = minter.mint(sub="svc", tenant="other", scopes=("documents:write",))
    auth = [(Headers.AUTHORIZATION, f"Bearer {token}".encode())]
    results = await _ingest(
        context,
        producer,
        context.document(_doc(), key=b"d1", headers=auth),
        context.document(_doc(), key=b"d1", offset=1),
    )
    assert [r.error.code for r in results if r.error] == ["forbidden", "unauthenticated"]
    dead = producer.on(context.topics.dead_letters)
    assert [d.header(Headers.AUTHORIZATION) for d in dead] == [None, None]
    assert await context.catalog.count() == 0


# --- search ---


async def test_a_search_is_answered_on_the_reply_topic(
    context: FakeContext, producer: FakeProducer
) -> None:
    """A request with reply-to and correlation-id gets ``ok`` hits of its tenant, echoed ids."""
    await _ingest(context, producer, context.document(_doc("fruit"), key=b"fruit"))
    other = json.dumps(
        {"schema": "ragstream.document.v1", "id": "x", "tenant": "other", "text": "apples"}
    ).encode()
    await _ingest(context, producer, context.document(other, key=b"x"))
    producer.sent.clear()
    msg = context.search_request(_request(), key=b"k", reply_to="replies", correlation_id="c-9")
    result = await handle_search(context, producer, msg)
    assert result is not None and result.status == "ok"
    [reply] = producer.sent
    assert (reply.topic, reply.key, reply.partition) == ("replies", b"k", None)
    assert reply.header(Headers.CORRELATION_ID) == b"c-9"
    body = _body(reply)
    assert body["status"] == "ok" and body["correlation_id"] == "c-9"
    assert [h["doc_id"] for h in body["hits"]] == ["fruit"]


@pytest.mark.parametrize(
    ("value", "correlation_id", "code"),
    [
        pytest.param(b"[1, 2]", "c", "malformed_json", id="not-an-object"),
        pytest.param(_request(top_k=0), "c", "invalid_schema", id="bad-field"),
        pytest.param(_request(schema="v0"), "c", "unknown_schema", id="unknown-schema"),
        pytest.param(_request(), None, "invalid_schema", id="no-correlation-id"),
        pytest.param(_request(filters={"tenant": "x"}), "c", "invalid_schema", id="bad-filter"),
    ],
)
async def test_a_bad_request_gets_an_error_reply(
    context: FakeContext,
    producer: FakeProducer,
    value: bytes,
    correlation_id: str | None,
    code: str,
) -> None:
    """Every invalid request is answered ``error`` with its precise code, never dropped."""
    msg = context.search_request(value, reply_to="replies", correlation_id=correlation_id)
    result = await handle_search(context, producer, msg)
    assert result is not None and result.status == "error" and result.error is not None
    assert result.error.code == code
    [reply] = producer.sent
    assert reply.topic == "replies" and _body(reply)["error"]["code"] == code
    assert producer.on(context.topics.dead_letters) == []


async def test_a_request_without_reply_topic_is_dead_lettered(
    context: FakeContext, producer: FakeProducer
) -> None:
    """Nobody could read an answer: the request goes to the dead letters, byte for byte."""
    msg = context.search_request(_request(), key=b"k", offset=3, correlation_id="c")
    assert await handle_search(context, producer, msg) is None
    [dead] = producer.sent
    assert (dead.topic, dead.key, dead.value) == (context.topics.dead_letters, b"k", _request())
    assert dead.header(Headers.ERROR_CODE) == b"invalid_schema"
    assert dead.header(Headers.ORIGINAL_OFFSET) == b"3"


async def test_a_reply_that_cannot_be_sent_dead_letters_the_request(context: FakeContext) -> None:
    """The reply topic refuses (gone, or the broker failed past the producer's own retries):
    the request is parked with ``reply_failed`` before it is acked, never silently dropped."""
    producer = FakeProducer(fail_topics=["gone"])
    msg = context.search_request(
        _request(), key=b"k", offset=7, reply_to="gone", correlation_id="c"
    )
    result = await handle_search(context, producer, msg)
    assert result is not None and result.status == "ok"
    [dead] = producer.sent
    assert (dead.topic, dead.key, dead.value) == (context.topics.dead_letters, b"k", _request())
    assert dead.header(Headers.ERROR_CODE) == b"reply_failed"
    assert b"gone" in (dead.header(Headers.ERROR_MESSAGE) or b"")
    assert dead.header(Headers.ORIGINAL_OFFSET) == b"7"
    assert dead.header(Headers.CORRELATION_ID) == b"c"


async def test_the_dead_letter_of_an_unanswered_request_waits_for_the_broker(
    context: FakeContext,
) -> None:
    """The broker down: the reply fails, the dead letter is retried until it is on the broker."""
    producer = FakeProducer(fail=3)  # the reply, then two dead-letter attempts
    msg = context.search_request(_request(), reply_to="replies", correlation_id="c")
    await handle_search(context, producer, msg)
    assert producer.calls == 4
    [dead] = producer.sent
    assert dead.topic == context.topics.dead_letters
    assert dead.header(Headers.ERROR_CODE) == b"reply_failed"


async def test_spring_kafka_headers_are_understood(
    context: FakeContext, producer: FakeProducer
) -> None:
    """Spring's reply topic, binary correlation id and reply partition are honoured and echoed."""
    spring_id = bytes(range(16))
    msg = FakeMessage(
        _request(),
        headers=[
            (Headers.SPRING_REPLY_TOPIC, b"spring-replies"),
            (Headers.SPRING_CORRELATION_ID, spring_id),
            ("kafka_replyPartition", struct.pack(">i", 2)),
        ],
        topic=context.topics.search_requests,
    )
    result = await handle_search(context, producer, msg)
    assert result is not None and result.status == "ok"
    assert result.correlation_id == spring_id.hex()
    [reply] = producer.sent
    assert (reply.topic, reply.partition) == ("spring-replies", 2)
    assert reply.header(Headers.SPRING_CORRELATION_ID) == spring_id
    assert reply.header(Headers.CORRELATION_ID) == spring_id.hex().encode()


async def test_a_search_with_every_leg_down_is_an_error_reply(
    context: FakeContext, producer: FakeProducer
) -> None:
    """When both stores are down the request still gets an answer: ``error``/``unavailable``."""
    context.vectors.error = StoreUnavailableError("chroma down")
    context.keywords.error = StoreUnavailableError("elasticsearch down")
    msg = context.search_request(_request(), reply_to="replies", correlation_id="c")
    result = await handle_search(context, producer, msg)
    assert result is not None and result.error is not None
    assert (result.status, result.error.code) == ("error", "unavailable")
    assert sorted(result.degraded) == ["keyword", "vector"]
    assert len(producer.on("replies")) == 1


async def test_a_search_for_another_tenant_is_forbidden(producer: FakeProducer) -> None:
    """The request's tenant must be the credential's: ``forbidden`` in the reply."""
    context, minter = _authenticating_context()
    token = minter.mint(sub="svc", tenant="other", scopes=("search:read",))
    msg = context.search_request(
        _request(),
        reply_to="replies",
        correlation_id="c",
        headers=[(Headers.AUTHORIZATION, f"Bearer {token}".encode())],
    )
    result = await handle_search(context, producer, msg)
    assert result is not None and result.error is not None and result.error.code == "forbidden"


async def test_an_auth_store_outage_holds_the_read_until_it_is_back(
    producer: FakeProducer,
) -> None:
    """While credentials cannot be checked the read waits; nothing is rejected meanwhile."""

    class FlakyAuth:
        calls = 0

        async def authenticate(self, *, authorization: str | None, api_key: str | None) -> None:
            self.calls += 1
            if self.calls <= 2:
                raise StoreUnavailableError("postgres down")

    auth = FlakyAuth()
    context = FakeContext(auth=auth)
    [result] = await _ingest(context, producer, context.document(_doc(), key=b"d1"))
    assert auth.calls == 3 and result.status == "indexed"
    assert producer.on(context.topics.dead_letters) == []
