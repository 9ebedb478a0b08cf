"""The attack table, on the real stack: a worker with ``RAGSTREAM_AUTH=required``.

Every row sends one hostile message and checks that it is rejected with the right code
(``rejected`` ingest result + dead letter without the credential, or an ``error`` search
reply), that nothing was indexed or returned, and that the worker still answers. The
worker verifies HS256 with a test secret and, through a JWKS file, RS256 (``rsa-1``),
ES256 (``ec-1``) and a rotated HS256 key (``hs-2``).
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import pytest_asyncio

from schemas.document import DocumentUpsert
from schemas.headers import Headers
from schemas.ingest import IngestResult
from schemas.search import SearchRequest, SearchResult
from services.auth_accounts import Accounts
from services.auth_tokens import TokenMinter
from stores.auth_store import SqlAuthStore
from stores.catalog import SqlCatalog
from stores.elastic import ElasticKeywordStore, chunk_index
from streams.client import ReplyChannel
from streams.codec import encode
from streams.errors import AuthenticationError
from streams.settings import Settings
from tests.auth_keys import TEST_SECRET, KeyFiles, claims, forge, make_key_files
from tests.integration.harness import WorkerProcess, isolated_env, new_id, read_until

ISSUER, AUDIENCE = "https://issuer.ragstream.test", "ragstream-test"
HeaderList = list[tuple[str, bytes]]


@dataclass
class Ctx:
    """The secure worker, a reply channel, the accounts and stores behind it."""

    settings: Settings
    worker: WorkerProcess
    channel: ReplyChannel
    accounts: Accounts
    keys: KeyFiles
    catalog: SqlCatalog
    keywords: ElasticKeywordStore
    victim: str
    victim_doc: str
    used: list[str] = field(default_factory=list)

    def token(
        self,
        tenant: str,
        /,
        *scopes: str,
        key: Any = TEST_SECRET,
        alg: str = "HS256",
        kid: str | None = None,
        **overrides: Any,
    ) -> str:
        """A token that passes every check unless ``overrides`` break one."""
        payload = claims(tenant, *scopes, iss=ISSUER, aud=AUDIENCE) | overrides
        token = jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)
        return self.remember(token)

    def remember(self, secret: str) -> str:
        """Note a credential: it must never appear in the worker's log."""
        self.used.append(secret)
        return secret

    def bearer(self, token: str) -> HeaderList:
        """``authorization: Bearer <token>``."""
        return [(Headers.AUTHORIZATION, f"Bearer {self.remember(token)}".encode())]

    async def ingest(
        self, doc: DocumentUpsert, headers: HeaderList, *, key: bytes | None = None
    ) -> IngestResult:
        """Send a document with exactly these credential headers; wait for its result."""
        record = await self.channel.request(
            self.settings.kafka.topic("documents"),
            key=key or doc.id.encode(),
            value=encode(doc),
            timeout_s=60,
            extra_headers=headers,
        )
        return IngestResult.model_validate_json(record.value)

    async def search(self, request: SearchRequest, headers: HeaderList) -> SearchResult:
        """Send a search with exactly these credential headers; wait for its reply."""
        record = await self.channel.request(
            self.settings.kafka.topic("search-requests"),
            key=None,
            value=encode(request),
            timeout_s=30,
            extra_headers=headers,
        )
        return SearchResult.model_validate_json(record.value)

    async def assert_healthy(self) -> None:
        """The worker is alive and answers a well-authenticated search."""
        self.worker.assert_alive()
        reply = await self.search(
            SearchRequest(query="ping", tenant="probe", mode="keyword"),
            self.bearer(self.token("probe", "search:read")),
        )
        assert reply.status == "ok", reply


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    """A module-scoped monkeypatch."""
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ctx(
    kafka_bootstrap: str,
    elasticsearch_url: str,
    chroma_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch_module: pytest.MonkeyPatch,
) -> AsyncIterator[Ctx]:
    """A ready worker requiring auth, with a victim tenant that already has a document."""
    data_dir = tmp_path_factory.mktemp("secure-worker")
    keys = make_key_files(data_dir / "keys")
    env = isolated_env(
        kafka_bootstrap=kafka_bootstrap,
        elasticsearch_url=elasticsearch_url,
        data_dir=data_dir,
        CHROMA_URL=chroma_url,
        RAGSTREAM_AUTH="required",
        JWT_SECRET_KEY=TEST_SECRET,
        JWT_ISSUER=ISSUER,
        JWT_AUDIENCE=AUDIENCE,
        JWT_JWKS_FILE=str(keys.jwks),
        JWT_LEEWAY_S="2",
        AUTH_BCRYPT_ROUNDS="4",
    )
    for name, value in env.items():
        monkeypatch_module.setenv(name, value)
    settings = Settings()
    worker = WorkerProcess(env, log_path=data_dir / "worker.log").start()
    channel = ReplyChannel(settings.kafka)
    store = SqlAuthStore.from_settings(settings)
    catalog = SqlCatalog(url=settings.database_url)
    keywords = ElasticKeywordStore(
        url=settings.elasticsearch.url, index=chunk_index(settings.elasticsearch.index_prefix)
    )
    accounts = Accounts(store, settings.security, minter=TokenMinter(settings.security))
    try:
        await store.start()
        await channel.start()
        c = Ctx(
            settings,
            worker,
            channel,
            accounts,
            keys,
            catalog,
            keywords,
            victim=f"victim-{new_id()}",
            victim_doc="payroll.md",
        )
        await worker.wait_ready(
            settings.kafka, tenant="probe", token=c.token("probe", "search:read")
        )
        secret_doc = DocumentUpsert(
            id=c.victim_doc,
            tenant=c.victim,
            title="Payroll",
            text="Confidential payroll: zanzibar salaries.",
            metadata={"tenant": c.victim, "owner": c.victim},
        )
        result = await c.ingest(secret_doc, c.bearer(c.token(c.victim, "documents:write")))
        assert result.status == "indexed", result
        yield c
    finally:
        worker.stop()
        log = (data_dir / "worker.log").read_text(errors="replace")
        for closer in (channel.aclose, store.aclose, catalog.aclose, keywords.aclose):
            await closer()
    leaked = [s for s in c.used if s in log]
    assert not leaked, "a credential appears in the worker's log"


# -- the document attacks -------------------------------------------------------------------

Builder = Callable[[Ctx, str], "HeaderList | Awaitable[HeaderList]"]


async def _revoked_api_key(c: Ctx, tenant: str) -> HeaderList:
    new = await c.accounts.create_api_key(tenant=tenant, scopes=["documents:write"])
    assert await c.accounts.revoke_api_key(new.record.key_id)
    return [(Headers.API_KEY, c.remember(new.key).encode())]


async def _login(c: Ctx, tenant: str) -> tuple[str, Any]:
    username = f"user-{new_id()}"
    await c.accounts.create_user(
        username=username,
        password="correct horse battery",
        tenant=tenant,
        permissions=["documents:write", "search:read"],
    )
    return username, await c.accounts.login(username, "correct horse battery")


async def _reused_refresh_token(c: Ctx, tenant: str) -> HeaderList:
    _, first = await _login(c, tenant)
    second = await c.accounts.refresh(first.refresh_token)  # the legitimate rotation
    with pytest.raises(AuthenticationError, match="already used"):
        await c.accounts.refresh(first.refresh_token)  # the stolen copy is replayed
    c.remember(first.refresh_token)
    return c.bearer(second.access_token)  # every token of the family is now dead


async def _disabled_user(c: Ctx, tenant: str) -> HeaderList:
    username, pair = await _login(c, tenant)
    assert await c.accounts.set_disabled(username, True)
    return c.bearer(pair.access_token)


def _expired(c: Ctx, t: str) -> HeaderList:
    return c.bearer(c.token(t, "documents:write", exp=int(time.time()) - 120))


def _not_yet_valid(c: Ctx, t: str) -> HeaderList:
    return c.bearer(c.token(t, "documents:write", nbf=int(time.time()) + 600))


def _alg_none(c: Ctx, t: str) -> HeaderList:
    payload = claims(t, "documents:write", iss=ISSUER, aud=AUDIENCE)
    return c.bearer(forge({"alg": "none", "typ": "JWT"}, payload))


def _key_confusion(c: Ctx, t: str) -> HeaderList:
    payload = claims(t, "documents:write", iss=ISSUER, aud=AUDIENCE)
    return c.bearer(forge({"alg": "HS256", "kid": "rsa-1"}, payload, c.keys.rsa_public_pem))


DOCUMENT_ATTACKS = [
    pytest.param(lambda c, t: [], "unauthenticated", id="no-token"),
    pytest.param(lambda c, t: c.bearer("not.a.jwt"), "unauthenticated", id="malformed-token"),
    pytest.param(
        lambda c, t: [(Headers.AUTHORIZATION, b"Basic dXNlcjpwYXNz")],
        "unauthenticated",
        id="wrong-scheme",
    ),
    pytest.param(
        lambda c, t: c.bearer(
            c.token(t, "documents:write", key="an-attackers-own-secret-of-32-bytes!")
        ),
        "unauthenticated",
        id="bad-signature",
    ),
    pytest.param(_expired, "unauthenticated", id="expired"),
    pytest.param(_not_yet_valid, "unauthenticated", id="not-yet-valid"),
    pytest.param(
        lambda c, t: c.bearer(c.token(t, "documents:write", iss="https://evil.test")),
        "unauthenticated",
        id="wrong-issuer",
    ),
    pytest.param(
        lambda c, t: c.bearer(c.token(t, "documents:write", aud="another-service")),
        "unauthenticated",
        id="wrong-audience",
    ),
    pytest.param(_alg_none, "unauthenticated", id="alg-none"),
    pytest.param(_key_confusion, "unauthenticated", id="hs256-signed-with-rs256-public-key"),
    pytest.param(
        lambda c, t: c.bearer(c.token(t, "documents:write", kid="kid-from-nowhere")),
        "unauthenticated",
        id="unknown-kid",
    ),
    pytest.param(lambda c, t: c.bearer(c.token(t, "search:read")), "forbidden", id="missing-scope"),
    pytest.param(
        lambda c, t: c.bearer(c.token(f"attacker-{new_id()}", "documents:write")),
        "forbidden",
        id="cross-tenant-document-write",
    ),
    pytest.param(
        lambda c, t: c.bearer(c.token(t, "documents:write", tenant=[t])),
        "unauthenticated",
        id="tenant-claim-not-a-string",
    ),
    pytest.param(_revoked_api_key, "unauthenticated", id="revoked-api-key"),
    pytest.param(_reused_refresh_token, "unauthenticated", id="reused-refresh-token-family"),
    pytest.param(_disabled_user, "unauthenticated", id="disabled-users-token"),
]


async def _headers(builder: Builder, c: Ctx, tenant: str) -> HeaderList:
    made = builder(c, tenant)
    return await made if inspect.isawaitable(made) else made  # type: ignore[return-value]


async def _dead_letter(c: Ctx, correlation_id: str) -> Any:
    topic = c.settings.kafka.topic("dead-letters")
    records = await read_until(
        c.settings.kafka.bootstrap_servers,
        topic,
        lambda rs: any(
            dict(r.headers).get(Headers.CORRELATION_ID) == correlation_id.encode() for r in rs
        ),
    )
    return next(
        r for r in records if dict(r.headers).get(Headers.CORRELATION_ID) == correlation_id.encode()
    )


async def _assert_not_indexed(c: Ctx, tenant: str, doc_id: str) -> None:
    assert await c.catalog.get(tenant, doc_id) is None
    await c.keywords.start()
    assert await c.keywords.count(tenant, doc_id) == 0


@pytest.mark.parametrize(("builder", "code"), DOCUMENT_ATTACKS)
async def test_document_attacks_are_rejected(ctx: Ctx, builder: Builder, code: str) -> None:
    """The document is rejected with the code, dead-lettered without credentials, not indexed."""
    tenant = f"t-{new_id()}"
    doc = DocumentUpsert(id=f"doc-{new_id()}", tenant=tenant, text="Attack payload: quokka.")
    result = await ctx.ingest(doc, await _headers(builder, ctx, tenant))
    assert (result.status, result.error and result.error.code) == ("rejected", code), result
    assert result.correlation_id is not None
    dead = await _dead_letter(ctx, result.correlation_id)
    names = {name.lower() for name, _ in dead.headers}
    assert dict(dead.headers)[Headers.ERROR_CODE] == code.encode()
    assert not names & {Headers.AUTHORIZATION, Headers.API_KEY}
    await _assert_not_indexed(ctx, tenant, doc.id)
    await ctx.assert_healthy()


async def test_a_replayed_dead_letter_does_not_carry_the_token(ctx: Ctx) -> None:
    """A legitimately authenticated message that was dead-lettered, replayed, is anonymous."""
    tenant = f"t-{new_id()}"
    doc = DocumentUpsert(id=f"doc-{new_id()}", tenant=tenant, text="Replay me: wombat.")
    token = ctx.token(tenant, "documents:write")
    first = await ctx.ingest(doc, ctx.bearer(token), key=b"a-key-that-is-not-the-id")
    assert first.error is not None and first.error.code == "invalid_schema"
    assert first.correlation_id is not None
    dead = await _dead_letter(ctx, first.correlation_id)
    assert token.encode() not in b"".join(v for _, v in dead.headers)
    routing = {Headers.CORRELATION_ID, Headers.REPLY_TO}
    replayed = await ctx.channel.request(
        ctx.settings.kafka.topic("documents"),
        key=doc.id.encode(),
        value=dead.value,
        timeout_s=60,
        extra_headers=[(k, v) for k, v in dead.headers if k not in routing],
    )
    result = IngestResult.model_validate_json(replayed.value)
    assert (result.status, result.error and result.error.code) == ("rejected", "unauthenticated")
    await _assert_not_indexed(ctx, tenant, doc.id)
    await ctx.assert_healthy()


# -- the search attacks ---------------------------------------------------------------------


def _victim_filters(c: Ctx) -> list[tuple[str, Any, str]]:
    """(id, filters, expected): filters aimed at the victim's document from another tenant."""
    return [
        ("tenant-key", {"tenant": c.victim}, "invalid_schema"),
        ("tenant-metadata", {"metadata.tenant": c.victim}, "ok"),
        ("victim-doc-id", {"doc_id": c.victim_doc}, "ok"),
        ("both", {"doc_id": c.victim_doc, "metadata.owner": c.victim}, "ok"),
        ("nested-key", {"metadata.tenant.keyword": c.victim}, "invalid_schema"),
        ("injection", {'metadata.x" OR tenant:*': c.victim}, "invalid_schema"),
        ("oversized-value", {"metadata.owner": "x" * 600}, "invalid_schema"),
    ]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(n, id=i)
        for n, i in enumerate(
            [
                "tenant-key",
                "tenant-metadata",
                "victim-doc-id",
                "both",
                "nested-key",
                "injection",
                "oversized-value",
            ]
        )
    ],
)
async def test_cross_tenant_search_through_filters_finds_nothing(ctx: Ctx, case: int) -> None:
    """Filters can narrow one's own tenant but never reach another's data (either leg)."""
    _, filters, expected = _victim_filters(ctx)[case]
    attacker = f"attacker-{new_id()}"
    for mode in ("hybrid", "vector", "keyword"):
        request = SearchRequest.model_construct(
            query="zanzibar payroll salaries", top_k=10, mode=mode, filters=filters, tenant=attacker
        )
        reply = await ctx.search(request, ctx.bearer(ctx.token(attacker, "search:read")))
        if expected == "ok":
            assert reply.status == "ok" and reply.hits == [], reply
            # Control: the same filters do reach the document from its own tenant.
            own = await ctx.search(
                request.model_copy(update={"tenant": ctx.victim}),
                ctx.bearer(ctx.token(ctx.victim, "search:read")),
            )
            assert [h.doc_id for h in own.hits] == [ctx.victim_doc], own
        else:
            assert reply.status == "error" and reply.error is not None, reply
            assert reply.error.code == expected and reply.hits == []
    await ctx.assert_healthy()


SEARCH_ATTACKS = [
    pytest.param(lambda c: [], lambda c: c.victim, "unauthenticated", id="no-token"),
    pytest.param(
        lambda c: c.bearer(c.token(c.victim, "search:read", exp=int(time.time()) - 60)),
        lambda c: c.victim,
        "unauthenticated",
        id="expired",
    ),
    pytest.param(
        lambda c: c.bearer(
            forge({"alg": "none"}, claims(c.victim, "search:read", iss=ISSUER, aud=AUDIENCE))
        ),
        lambda c: c.victim,
        "unauthenticated",
        id="alg-none",
    ),
    pytest.param(
        lambda c: c.bearer(c.token(c.victim, "documents:write")),
        lambda c: c.victim,
        "forbidden",
        id="missing-scope",
    ),
    pytest.param(
        lambda c: c.bearer(c.token(f"attacker-{new_id()}", "search:read")),
        lambda c: c.victim,
        "forbidden",
        id="cross-tenant-request-tenant",
    ),
    pytest.param(
        lambda c: c.bearer(c.token(f"attacker-{new_id()}", "admin")),
        lambda c: c.victim,
        "forbidden",
        id="admin-of-another-tenant",
    ),
]


@pytest.mark.parametrize(("headers", "tenant", "code"), SEARCH_ATTACKS)
async def test_search_attacks_get_error_replies(
    ctx: Ctx, headers: Callable[[Ctx], HeaderList], tenant: Callable[[Ctx], str], code: str
) -> None:
    """A search the credential does not allow gets an ``error`` reply and no hits."""
    request = SearchRequest(query="zanzibar payroll", tenant=tenant(ctx), mode="keyword")
    reply = await ctx.search(request, headers(ctx))
    assert reply.status == "error" and reply.error is not None and reply.hits == [], reply
    assert reply.error.code == code
    await ctx.assert_healthy()


# -- what must keep working -----------------------------------------------------------------


async def test_every_accepted_credential_writes_and_searches_its_own_tenant(ctx: Ctx) -> None:
    """HS256, rotated keys by kid (RS256, ES256, HS256), an API key and a user token all work."""
    tenant = f"ok-{new_id()}"
    api = await ctx.accounts.create_api_key(
        tenant=tenant, scopes=["documents:write", "search:read"]
    )
    username = f"user-{new_id()}"
    await ctx.accounts.create_user(
        username=username, password="correct horse battery", tenant=tenant, permissions=["admin"]
    )
    user = await ctx.accounts.login(username, "correct horse battery")
    scopes = ("documents:write", "search:read")
    credentials = {
        "hs256": ctx.bearer(ctx.token(tenant, *scopes)),
        "rs256": ctx.bearer(
            ctx.token(tenant, *scopes, key=ctx.keys.rsa_private_pem, alg="RS256", kid="rsa-1")
        ),
        "es256": ctx.bearer(
            ctx.token(tenant, *scopes, key=ctx.keys.ec_private_pem, alg="ES256", kid="ec-1")
        ),
        "hs256-rotated": ctx.bearer(
            ctx.token(tenant, *scopes, key=ctx.keys.hs_rotated_secret, kid="hs-2")
        ),
        "api-key": [(Headers.API_KEY, ctx.remember(api.key).encode())],
        "user": ctx.bearer(user.access_token),
    }
    for name, headers in credentials.items():
        doc = DocumentUpsert(id=f"{name}.md", tenant=tenant, text=f"Written with {name}: okapi.")
        result = await ctx.ingest(doc, headers)
        assert result.status == "indexed", (name, result)
        reply = await ctx.search(
            SearchRequest(query="okapi", tenant=tenant, mode="keyword", filters={"doc_id": doc.id}),
            headers,
        )
        assert [h.doc_id for h in reply.hits] == [doc.id], (name, reply)
    ctx.remember(user.refresh_token)


def test_credentials_never_reach_the_worker_log(ctx: Ctx) -> None:
    """No token, API key or refresh token sent so far appears in the worker's log."""
    log = ctx.worker.log_path.read_text(errors="replace")
    assert "ingest_refused" in log  # the rejections were logged, without their credentials
    refused = [json.loads(line) for line in log.splitlines() if '"ingest_refused"' in line]
    # ... and say where the message came from (a batch is read ahead of its indexing).
    assert all({"topic", "partition", "offset", "batch"} <= set(r) for r in refused), refused[:1]
    assert ctx.used and not [s for s in ctx.used if s in log]
