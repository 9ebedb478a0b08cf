"""The vector store on Chroma: chunk embeddings in one cosine collection per tenant.

Adapter at the edge of the flow: the indexing service writes here, the search service reads
here. The Chroma client is synchronous and CPU-bound, so every call runs in this store's own
worker threads, never on the event loop, under ``asyncio.timeout(timeout_s)``. Chroma never
embeds anything itself (no embedding function: vectors always come from us). Every client
exception is translated in ``_translate`` (the one place); a 401/403 or a failed TLS
handshake is ``DependencyConfigError`` (our token or CA is wrong: no retry, no breaker).

One collection per tenant (``tenant_collection``), not one shared collection filtered by a
``tenant`` clause: Chroma answers a ``where`` by listing every matching id from its metadata
index before the vector search, so a tenant filter that matches most of the collection costs
more than the nearest-neighbour search itself, and grows with the tenant (14 ms vs 3.8 ms at
10k chunks embedded, and the gap widens). A tenant's collection is searched with no ``where``
at all unless the request has metadata filters; isolation is by construction. A collection is
created on a tenant's first write; reads of a tenant without one find nothing and create
nothing. Version 1 kept every tenant in one collection named after the store
(``collection``): a worker refuses to start while it still holds chunks, and
``migrate_shared_collection`` (``ragstream reindex``) moves them.

Chroma metadata is flat, so a chunk is stored as ``tenant``, ``doc_id``, ``n``, ``start``,
``title``, each user key under ``metadata.<key>`` (filterable) and the original metadata as
JSON under ``metadata_json`` (returned exactly).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
import ssl
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import chromadb
import chromadb.errors
import httpx
from chromadb.config import Settings
from pydantic import SecretStr

from schemas.chunks import Chunk, ScoredChunk, identity
from stores.base import METADATA_PREFIX, Filters, check_filters
from stores.chroma_errors import translate as _translate
from streams.errors import (
    ConfigError,
    StoreRejectedError,
    StoreUnavailableError,
)

__all__ = ["ChromaVectorStore", "tenant_collection"]

_T = TypeVar("_T")
_JSON_KEY = "metadata_json"
_TENANT_MARK = "ragstream_tenant"  # on a tenant's collection: whose it is
_WORKERS = 2
_TOKEN_PROVIDER = "chromadb.auth.token_authn.TokenAuthClientProvider"  # noqa: S105 (a class)


_READABLE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.))*[A-Za-z0-9]$|^[A-Za-z0-9]$")


# Chroma's rule for a collection name.
_VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")


def tenant_collection(base: str, tenant: str) -> str:
    """The collection of ``tenant``'s chunks: ``{base}.t-{tenant}`` when the tenant is a valid
    tail of a Chroma name (letters, digits, ``_ - .``, no ``..``, ending in a letter or digit),
    else ``{base}.h-{sha256(tenant)[:32]}``. The two forms never meet, so no two tenants share
    a collection; ``base`` (the store's ``collection``) is never a tenant's."""
    if _READABLE.match(tenant):
        return f"{base}.t-{tenant}"
    return f"{base}.h-{hashlib.sha256(tenant.encode()).hexdigest()[:32]}"


def _where(
    doc_id: str | None = None, filters: Filters | None = None, keep: int = 0
) -> dict[str, Any] | None:
    """The ``where`` within a tenant's collection; ``None`` when there is nothing to filter,
    ``$and`` only around two clauses or more."""
    clauses: list[dict[str, Any]] = []
    if doc_id is not None:
        clauses.append({"doc_id": {"$eq": doc_id}})
    for key, value in (filters or {}).items():
        clauses.append({key: {"$eq": value}})
    if keep > 0:
        clauses.append({"n": {"$gte": keep}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _metadata(chunk: Chunk) -> dict[str, Any]:
    flat: dict[str, Any] = {
        "tenant": chunk.tenant,
        "doc_id": chunk.doc_id,
        "n": chunk.n,
        "start": chunk.start,
        "title": chunk.title,
        _JSON_KEY: json.dumps(chunk.metadata),
    }
    flat.update({f"{METADATA_PREFIX}{key}": value for key, value in chunk.metadata.items()})
    return flat


def _chunk(flat: dict[str, Any], text: str | None) -> Chunk:
    return Chunk(
        tenant=str(flat["tenant"]),
        doc_id=str(flat["doc_id"]),
        n=int(flat["n"]),
        text=text or "",
        title=str(flat.get("title") or ""),
        metadata=json.loads(str(flat.get(_JSON_KEY) or "{}")),
        start=int(flat.get("start") or 0),
    )


def _http_client(
    url: str, timeout_s: float, settings: Settings, *, ca_certs: Path | None = None
) -> Any:
    """A client of the Chroma server at ``url`` (connects at once: call it off the loop)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"chroma url must be http(s)://host[:port], got {url!r}")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 8000)
    if https and ca_certs is not None:
        try:
            context = ssl.create_default_context(cafile=str(ca_certs))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"CHROMA_CA_CERTS: cannot load {ca_certs}: {exc}") from exc
        # Chroma's setting is typed bool | str (a str is deprecated by httpx): set the context
        # itself, which its client hands to httpx as ``verify=``.
        object.__setattr__(settings, "chroma_server_ssl_verify", context)
    client = chromadb.HttpClient(host=parts.hostname, port=port, ssl=https, settings=settings)
    # The client's httpx session has no timeout at all; give it ours (best effort, private).
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(timeout_s)
    return client


class ChromaVectorStore:
    """A ``VectorStore`` on one Chroma collection per tenant, embedded (``path``) or remote
    (``url``); ``collection`` is the base of their names."""

    def __init__(
        self,
        *,
        collection: str,
        path: str | Path | None = None,
        url: str | None = None,
        timeout_s: float = 30,
        auth_token: str | SecretStr | None = None,
        auth_header: str = "Authorization",
        ca_certs: str | Path | None = None,
    ) -> None:
        """``auth_token``: sent on every request to a server, as ``Authorization: Bearer``
        or ``X-Chroma-Token`` (``auth_header``); ``ca_certs``: CA bundle of an https server."""
        if isinstance(auth_token, SecretStr):
            auth_token = auth_token.get_secret_value()
        self._auth_token = auth_token or None
        self._auth_header = auth_header
        self._ca_certs = Path(ca_certs) if ca_certs else None
        if not url and path is None:
            raise ConfigError("ChromaVectorStore needs a path (embedded) or a url (server)")
        self.collection_name = collection
        self._path = Path(path) if path is not None else None
        self._url = url or ""
        self._timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(_WORKERS, thread_name_prefix="chroma")
        self._client: Any = None
        self._collections: dict[str, Any] = {}  # tenant -> its collection, once seen
        self._max_batch = 1000
        self._closed = False

    async def _run(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run one blocking client call in our threads, translating whatever it raises."""
        if self._closed:
            raise StoreUnavailableError("chroma store is closed")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await loop.run_in_executor(
                    self._executor, functools.partial(fn, *args, **kwargs)
                )
        except Exception as exc:
            raise _translate(exc) from exc

    def _connect(self) -> Any:
        """Open the client (once), in a worker thread."""
        if self._client is None:
            settings = Settings(anonymized_telemetry=False, allow_reset=False)
            if self._url:
                if self._auth_token:
                    settings = Settings(
                        anonymized_telemetry=False,
                        allow_reset=False,
                        chroma_client_auth_provider=_TOKEN_PROVIDER,
                        chroma_client_auth_credentials=self._auth_token,
                        chroma_auth_token_transport_header=self._auth_header,
                    )
                client = _http_client(self._url, self._timeout_s, settings, ca_certs=self._ca_certs)
            else:
                client = chromadb.PersistentClient(path=str(self._path), settings=settings)
            # Kept only once the server answered: a failed first call opens it again next time.
            self._max_batch = max(1, int(client.get_max_batch_size()))
            self._client = client
        return self._client

    def _collection(self, tenant: str, *, create: bool) -> Any:
        """The tenant's collection (created if ``create``, else ``None`` when it has none), in
        a worker thread. Only found collections are cached: another worker may create one."""
        found = self._collections.get(tenant)
        if found is not None:
            return found
        client = self._connect()
        name = tenant_collection(self.collection_name, tenant)
        if create:
            found = client.get_or_create_collection(
                name=name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={_TENANT_MARK: tenant},
            )
        else:
            try:
                found = client.get_collection(name=name, embedding_function=None)
            except chromadb.errors.NotFoundError:
                return None
        self._collections[tenant] = found
        return found

    def _start_sync(self) -> None:
        if not _VALID_NAME.match(self.collection_name) or ".." in self.collection_name:
            raise StoreRejectedError(
                f"chroma collection name {self.collection_name!r}: expected 3-512 characters "
                "of [a-zA-Z0-9._-], starting and ending with a letter or digit, no '..'"
            )
        legacy = self._legacy(self._connect())
        if legacy is not None and legacy.count() > 0:
            raise ConfigError(
                f"chroma collection {self.collection_name!r} holds chunks of every tenant "
                "(ragstream before per-tenant collections): run `ragstream reindex` with the "
                "workers stopped to move them into one collection per tenant"
            )

    def _legacy(self, client: Any) -> Any:
        """The version-1 shared collection (named ``collection`` itself), if it exists."""
        try:
            return client.get_collection(name=self.collection_name, embedding_function=None)
        except chromadb.errors.NotFoundError:
            return None

    async def start(self) -> None:
        """Connect; refuse (``ConfigError``) while a version-1 shared collection holds chunks.
        Tenants' collections are created on their first write."""
        await self._run(self._start_sync)

    async def upsert(self, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]]) -> None:
        """Write chunks with their embeddings by chunk id, in batches Chroma accepts."""
        if len(chunks) != len(embeddings):
            raise StoreRejectedError("chunks and embeddings differ in length")
        if not chunks:
            return
        await self._run(self._upsert_sync, list(chunks), [list(map(float, e)) for e in embeddings])

    def _upsert_sync(self, chunks: list[Chunk], embeddings: list[list[float]]) -> None:
        self._write(
            [chunk.tenant for chunk in chunks],
            ids=[chunk.id for chunk in chunks],
            embeddings=embeddings,
            metadatas=[_metadata(chunk) for chunk in chunks],
            documents=[chunk.text for chunk in chunks],
        )

    def _write(
        self,
        tenants: list[str],
        *,
        ids: list[str],
        embeddings: list[list[float]],
        metadatas: list[dict[str, Any]],
        documents: list[str],
    ) -> None:
        """Upsert rows (``tenants[i]`` owns row ``i``) into their tenants' collections, in
        batches Chroma accepts."""
        by_tenant: dict[str, list[int]] = defaultdict(list)
        for i, tenant in enumerate(tenants):
            by_tenant[tenant].append(i)
        for tenant, positions in by_tenant.items():
            collection = self._collection(tenant, create=True)
            for start in range(0, len(positions), self._max_batch):
                batch = positions[start : start + self._max_batch]
                collection.upsert(
                    ids=[ids[i] for i in batch],
                    embeddings=[embeddings[i] for i in batch],
                    metadatas=[metadatas[i] for i in batch],
                    documents=[documents[i] for i in batch],
                )

    async def delete_document(self, tenant: str, doc_id: str, *, keep: int = 0) -> None:
        """Remove the document's chunks with ``n >= keep``."""
        where = _where(doc_id, keep=keep)

        def delete() -> None:
            collection = self._collection(tenant, create=False)
            if collection is not None:
                collection.delete(where=where)

        await self._run(delete)

    async def query(
        self,
        tenant: str,
        embedding: Sequence[float],
        *,
        top_k: int,
        filters: Filters = {},  # noqa: B006 - read-only Mapping default
        content: bool = True,
    ) -> list[ScoredChunk]:
        """The ``top_k`` nearest chunks of the tenant, best first; score = 1 - cosine distance.
        ``content=False`` reads ids and distances only (Chroma's metadata and document reads
        are most of a query's cost: 0.9 vs 5.3 ms for 100 hits at 10k chunks)."""
        check_filters(filters)
        if top_k <= 0:
            return []
        vector = [list(map(float, embedding))]
        where = _where(filters=filters)
        include = ["metadatas", "documents", "distances"] if content else ["distances"]

        def query() -> Any:
            collection = self._collection(tenant, create=False)
            if collection is None:
                return {}
            return collection.query(
                query_embeddings=vector, n_results=top_k, where=where, include=include
            )

        result = await self._run(query)
        distances = (result.get("distances") or [[]])[0]
        if not content:
            ids = (result.get("ids") or [[]])[0]
            return [
                ScoredChunk(identity(key), 1.0 - float(distance))
                for key, distance in zip(ids, distances, strict=True)
            ]
        metadatas = (result.get("metadatas") or [[]])[0]
        documents = (result.get("documents") or [[]])[0]
        return [
            ScoredChunk(_chunk(dict(flat), text), 1.0 - float(distance))
            for flat, text, distance in zip(metadatas, documents, distances, strict=True)
        ]

    async def get(self, tenant: str, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The tenant's chunks with these ids, in the order given (only its collection is
        read, so another tenant's id finds nothing)."""
        wanted = list(dict.fromkeys(chunk_ids))
        if not wanted:
            return []

        def get() -> dict[str, Chunk]:
            collection = self._collection(tenant, create=False)
            if collection is None:
                return {}
            got = collection.get(ids=wanted, include=["metadatas", "documents"])
            return {
                key: _chunk(dict(flat), text)
                for key, flat, text in zip(
                    got["ids"], got["metadatas"], got["documents"], strict=True
                )
            }

        found = await self._run(get)
        return [found[key] for key in chunk_ids if key in found]

    async def count(self, tenant: str, doc_id: str | None = None) -> int:
        """How many chunks the tenant (or one of its documents) has."""

        def count() -> int:
            collection = self._collection(tenant, create=False)
            if collection is None:
                return 0
            if doc_id is None:
                return int(collection.count())
            return len(collection.get(where=_where(doc_id), include=[])["ids"])

        return await self._run(count)

    async def migrate_shared_collection(self, *, page: int = 1000) -> int:
        """Move the chunks of a version-1 shared collection (named ``collection``) into one
        collection per tenant, then rename it ``{collection}.migrated-{unix time}`` (kept for
        you to delete). Idempotent: chunks are written by id; with no shared collection left it
        copies nothing. Run it with the workers stopped. Returns how many chunks moved."""
        return await self._run(self._migrate_sync, page)

    def _migrate_sync(self, page: int) -> int:
        legacy = self._legacy(self._connect())
        if legacy is None:
            return 0
        moved, offset = 0, 0
        while True:
            got = legacy.get(
                limit=page, offset=offset, include=["embeddings", "metadatas", "documents"]
            )
            ids = got["ids"]
            if not ids:
                break
            self._write(
                [str(flat["tenant"]) for flat in got["metadatas"]],
                ids=ids,
                embeddings=[list(map(float, e)) for e in got["embeddings"]],
                metadatas=got["metadatas"],
                documents=got["documents"],
            )
            moved += len(ids)
            offset += len(ids)
        legacy.modify(name=f"{self.collection_name}.migrated-{int(time.time())}")
        return moved

    async def ping(self) -> None:
        """A heartbeat (embedded: a trivial call) that raises ``StoreUnavailableError``."""
        await self._run(lambda: self._connect().heartbeat())

    async def aclose(self) -> None:
        """Drop the client and stop the worker threads; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._collections.clear()
        self._client = None
        self._executor.shutdown(wait=False, cancel_futures=True)
