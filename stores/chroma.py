"""The vector store on Chroma: chunk embeddings in one cosine collection, filtered by tenant.

Adapter at the edge of the flow: the indexing service writes here, the search service reads
here. The Chroma client is synchronous and CPU-bound, so every call runs in this store's own
worker threads, never on the event loop, under ``asyncio.timeout(timeout_s)``. Chroma never
embeds anything itself (no embedding function: vectors always come from us). Every client
exception is translated in ``_translate`` (the one place); a 401/403 or a failed TLS
handshake is ``DependencyConfigError`` (our token or CA is wrong: no retry, no breaker).

Chroma metadata is flat, so a chunk is stored as ``tenant``, ``doc_id``, ``n``, ``start``,
``title``, each user key under ``metadata.<key>`` (filterable) and the original metadata as
JSON under ``metadata_json`` (returned exactly).
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
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

from schemas.chunks import Chunk, ScoredChunk
from stores.base import METADATA_PREFIX, Filters, check_filters
from streams.errors import (
    ConfigError,
    DependencyConfigError,
    RagstreamError,
    StoreRejectedError,
    StoreUnavailableError,
)

__all__ = ["ChromaVectorStore"]

_T = TypeVar("_T")
_JSON_KEY = "metadata_json"
_WORKERS = 2
_NOT_RUNNING = "Could not connect to a Chroma server"
_TOKEN_PROVIDER = "chromadb.auth.token_authn.TokenAuthClientProvider"  # noqa: S105 (a class)


def _translate(exc: BaseException) -> RagstreamError:
    """Map one client exception to ours (the only place this store does it)."""
    if isinstance(exc, RagstreamError):
        return exc
    tls = _ssl_cause(exc)
    if tls is not None:
        reason = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or tls
        return DependencyConfigError(
            f"TLS to chroma failed: {reason}: check CHROMA_CA_CERTS and that CHROMA_URL names "
            "the host of the server's certificate"
        )
    status = _status(exc)
    if status in (401, 403):
        return DependencyConfigError(
            f"chroma answered {status}: check CHROMA_AUTH_TOKEN (and "
            "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER)"
        )
    if _transport_cause(exc):
        # Also when Chroma's client re-raised it as ``ValueError(str(e))`` (a connection
        # reset while it checks the tenant or the user): the server is down or the network
        # dropped, not a bad request.
        return StoreUnavailableError(f"chroma unreachable or too slow: {exc!r}")
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status == 429 or status >= 500:
            return StoreUnavailableError(f"chroma answered {status}")
        return StoreRejectedError(f"chroma answered {status}")
    if isinstance(exc, chromadb.errors.ChromaError):
        status = exc.code()
        message = f"chroma {exc.name()} ({status}): {exc.message()}"
        if status == 429 or status >= 500:
            return StoreUnavailableError(message)
        return StoreRejectedError(message)
    if isinstance(exc, ValueError) and _NOT_RUNNING in str(exc):
        return StoreUnavailableError(str(exc))
    if isinstance(exc, ValueError | TypeError | KeyError):
        return StoreRejectedError(f"chroma refused the request: {exc}")
    return StoreUnavailableError(f"chroma failed: {exc!r}")


def _transport_cause(exc: BaseException) -> bool:
    """Whether a timeout or a connection failure is ``exc`` or the error it was raised from."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError | httpx.TransportError | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl`` error behind a connection failure, if that is what it is."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a client error (httpx's or Chroma's own), if any.

    Chroma's client re-raises some of them as ``ValueError(str(e))``: the status is then
    found on the error it was raised from.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, httpx.HTTPStatusError):
            return seen.response.status_code
        if isinstance(seen, chromadb.errors.ChromaError) and seen.code() in (401, 403):
            return int(seen.code())
        seen = seen.__cause__ or seen.__context__
    return None


def _where(
    tenant: str, doc_id: str | None = None, filters: Filters | None = None, keep: int = 0
) -> dict[str, Any]:
    """A ``where`` that always names the tenant; ``$and`` only around two clauses or more."""
    clauses: list[dict[str, Any]] = [{"tenant": {"$eq": tenant}}]
    if doc_id is not None:
        clauses.append({"doc_id": {"$eq": doc_id}})
    for key, value in (filters or {}).items():
        clauses.append({key: {"$eq": value}})
    if keep > 0:
        clauses.append({"n": {"$gte": keep}})
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
    """A ``VectorStore`` on one Chroma collection, embedded (``path``) or remote (``url``)."""

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
        self._collection: Any = None
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
                self._client = _http_client(
                    self._url, self._timeout_s, settings, ca_certs=self._ca_certs
                )
            else:
                self._client = chromadb.PersistentClient(path=str(self._path), settings=settings)
        return self._client

    def _open(self) -> Any:
        """Get or create the cosine collection (once), in a worker thread."""
        if self._collection is None:
            client = self._connect()
            collection = client.get_or_create_collection(
                name=self.collection_name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
            )
            self._max_batch = max(1, int(client.get_max_batch_size()))
            self._collection = collection
        return self._collection

    async def start(self) -> None:
        """Create the collection (cosine space, no embedding function) if missing; idempotent."""
        await self._run(self._open)

    async def upsert(self, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]]) -> None:
        """Write chunks with their embeddings by chunk id, in batches Chroma accepts."""
        if len(chunks) != len(embeddings):
            raise StoreRejectedError("chunks and embeddings differ in length")
        if not chunks:
            return
        await self._run(self._upsert_sync, list(chunks), [list(map(float, e)) for e in embeddings])

    def _upsert_sync(self, chunks: list[Chunk], embeddings: list[list[float]]) -> None:
        collection = self._open()
        for i in range(0, len(chunks), self._max_batch):
            batch = chunks[i : i + self._max_batch]
            collection.upsert(
                ids=[chunk.id for chunk in batch],
                embeddings=embeddings[i : i + self._max_batch],
                metadatas=[_metadata(chunk) for chunk in batch],
                documents=[chunk.text for chunk in batch],
            )

    async def delete_document(self, tenant: str, doc_id: str, *, keep: int = 0) -> None:
        """Remove the document's chunks with ``n >= keep``."""
        where = _where(tenant, doc_id, keep=keep)
        await self._run(lambda: self._open().delete(where=where))

    async def query(
        self,
        tenant: str,
        embedding: Sequence[float],
        *,
        top_k: int,
        filters: Filters = {},  # noqa: B006 - read-only Mapping default
    ) -> list[ScoredChunk]:
        """The ``top_k`` nearest chunks of the tenant, best first; score = 1 - cosine distance."""
        check_filters(filters)
        if top_k <= 0:
            return []
        result = await self._run(
            lambda: self._open().query(
                query_embeddings=[list(map(float, embedding))],
                n_results=top_k,
                where=_where(tenant, filters=filters),
                include=["metadatas", "documents", "distances"],
            )
        )
        metadatas = (result.get("metadatas") or [[]])[0]
        documents = (result.get("documents") or [[]])[0]
        distances = (result.get("distances") or [[]])[0]
        return [
            ScoredChunk(_chunk(dict(flat), text), 1.0 - float(distance))
            for flat, text, distance in zip(metadatas, documents, distances, strict=True)
        ]

    async def count(self, tenant: str, doc_id: str | None = None) -> int:
        """How many chunks the tenant (or one of its documents) has."""
        where = _where(tenant, doc_id)
        result = await self._run(lambda: self._open().get(where=where, include=[]))
        return len(result["ids"])

    async def ping(self) -> None:
        """A heartbeat (embedded: a trivial call) that raises ``StoreUnavailableError``."""
        await self._run(lambda: self._connect().heartbeat())

    async def aclose(self) -> None:
        """Drop the client and stop the worker threads; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._collection = None
        self._client = None
        self._executor.shutdown(wait=False, cancel_futures=True)
