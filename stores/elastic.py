"""The keyword store on Elasticsearch 8: chunks indexed for BM25, filtered by tenant.

Adapter at the edge of the flow: the indexing service writes here, the search service reads
here. Text and title use the English analyzer of ``stores.keyword_analysis`` (the embedded
tantivy store runs the same one). The index is ``{prefix}-v2``: indexes of the first mapping
(``{prefix}``, no analyzer) are copied over by ``reindex_from`` (``ragstream reindex``).
Every client exception is translated in ``_translate`` (the one place): connection
failures, timeouts, 429 and 5xx become ``StoreUnavailableError``, other 4xx and bad input
``StoreRejectedError``, and 401/403 or a failed TLS handshake ``DependencyConfigError`` (our
credentials or CA are wrong: no retry, no breaker opening).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import elastic_transport
import elasticsearch
from elasticsearch import AsyncElasticsearch
from pydantic import SecretStr

from schemas.chunks import Chunk, ScoredChunk
from stores.base import Filters, check_filters
from stores.keyword_analysis import ANALYZER, ELASTIC_ANALYSIS, TIE_BREAKER, TITLE_BOOST
from streams.errors import (
    ConfigError,
    DependencyConfigError,
    RagstreamError,
    StoreRejectedError,
    StoreUnavailableError,
)

__all__ = [
    "INDEX_MAPPING",
    "INDEX_SETTINGS",
    "MAPPING_VERSION",
    "ElasticKeywordStore",
    "chunk_index",
    "search_query",
]

MAPPING_VERSION = 2
"""Bumped when the mapping or analysis changes; part of the index name."""


def chunk_index(prefix: str) -> str:
    """The chunk index of the current mapping: ``{prefix}-v2`` (``{prefix}`` was version 1)."""
    return f"{prefix}-v{MAPPING_VERSION}"


INDEX_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "dynamic_templates": [
        # User metadata is flat and filtered by exact match: strings are keywords, and
        # floating-point numbers doubles (the default "float" would round 0.1).
        {
            "metadata_strings": {
                "path_match": "metadata.*",
                "match_mapping_type": "string",
                "mapping": {"type": "keyword"},
            }
        },
        {
            "metadata_doubles": {
                "path_match": "metadata.*",
                "match_mapping_type": "double",
                "mapping": {"type": "double"},
            }
        },
    ],
    "properties": {
        "tenant": {"type": "keyword"},
        "doc_id": {"type": "keyword"},
        "n": {"type": "integer"},
        "start": {"type": "integer"},
        "title": {"type": "text", "analyzer": ANALYZER},
        "text": {"type": "text", "analyzer": ANALYZER},
        "metadata": {"type": "object", "dynamic": True},
    },
}
"""The explicit mapping of the chunk index (only ``metadata.*`` is dynamic)."""

INDEX_SETTINGS: dict[str, Any] = {"analysis": ELASTIC_ANALYSIS}
"""The chunk index's settings: the English analyzer both keyword stores share."""


def _is_retriable_status(status: int) -> bool:
    return status == 429 or status >= 500


def _translate(exc: Exception) -> RagstreamError:
    """Map one client exception to ours (the only place this store does it)."""
    if isinstance(exc, RagstreamError):
        return exc
    if isinstance(exc, elasticsearch.ApiError):
        status = exc.meta.status if exc.meta is not None else 0
        detail = str(exc.message) if exc.message not in (None, "None", "") else ""
        message = f"elasticsearch answered {status}" + (f": {detail}" if detail else "")
        if status in (401, 403):
            return DependencyConfigError(
                f"{message}: check ELASTICSEARCH_API_KEY or ELASTICSEARCH_USERNAME and "
                "ELASTICSEARCH_PASSWORD (and the user's privileges on the index)"
            )
        if _is_retriable_status(status):
            return StoreUnavailableError(message)
        return StoreRejectedError(message)
    if isinstance(exc, elastic_transport.SerializationError):
        return StoreRejectedError(f"elasticsearch serialization failed: {exc}")
    if isinstance(exc, elastic_transport.TlsError):
        return DependencyConfigError(
            f"TLS to elasticsearch failed: {_tls_reason(exc)}: check ELASTICSEARCH_CA_CERTS "
            "and that ELASTICSEARCH_URL names the host of the server's certificate"
        )
    if isinstance(exc, elastic_transport.TransportError):
        return StoreUnavailableError(f"elasticsearch unreachable: {exc}")
    if isinstance(exc, ValueError | TypeError):
        return StoreRejectedError(f"elasticsearch request refused: {exc}")
    return StoreUnavailableError(f"elasticsearch failed: {exc!r}")


def _tls_reason(exc: BaseException) -> str:
    """The certificate problem, from the innermost ``ssl`` error (no secrets in it)."""
    seen: BaseException | None = exc
    while seen is not None:
        message = getattr(seen, "verify_message", None) or getattr(seen, "reason", None)
        if isinstance(message, str) and message:
            return message
        nested = getattr(seen, "errors", None)
        seen = nested[0] if nested else (seen.__cause__ or seen.__context__)
    return type(exc).__name__


@asynccontextmanager
async def _boundary() -> AsyncIterator[None]:
    """Translate whatever the client raises inside the block."""
    try:
        yield
    except RagstreamError:
        raise
    except Exception as exc:
        raise _translate(exc) from exc


def _bool_filter(tenant: str, doc_id: str | None, filters: Filters) -> list[dict[str, Any]]:
    """Tenant first, then the document and the exact-match filters, as ``term`` clauses."""
    clauses: list[dict[str, Any]] = [{"term": {"tenant": tenant}}]
    if doc_id is not None:
        clauses.append({"term": {"doc_id": doc_id}})
    clauses.extend({"term": {key: value}} for key, value in filters.items())
    return clauses


def search_query(tenant: str, query: str, filters: Filters) -> dict[str, Any]:
    """BM25 on text and title: the better field (title x ``TITLE_BOOST``) + a tie-breaker share."""
    return {
        "bool": {
            "must": [
                {
                    "multi_match": {
                        "query": query,
                        "type": "best_fields",
                        "fields": ["text", f"title^{TITLE_BOOST:g}"],
                        "tie_breaker": TIE_BREAKER,
                    }
                }
            ],
            "filter": _bool_filter(tenant, None, filters),
        }
    }


def _source(chunk: Chunk) -> dict[str, Any]:
    return {
        "tenant": chunk.tenant,
        "doc_id": chunk.doc_id,
        "n": chunk.n,
        "start": chunk.start,
        "title": chunk.title,
        "text": chunk.text,
        "metadata": chunk.metadata,
    }


def _chunk(source: dict[str, Any]) -> Chunk:
    return Chunk(
        tenant=source["tenant"],
        doc_id=source["doc_id"],
        n=int(source["n"]),
        text=source.get("text", ""),
        title=source.get("title", ""),
        metadata=dict(source.get("metadata") or {}),
        start=int(source.get("start", 0)),
    )


def _bulk_errors(response: Any) -> None:
    """Raise on the first failed item of a bulk response."""
    if not response.get("errors"):
        return
    for item in response["items"]:
        result = next(iter(item.values()))
        error = result.get("error")
        if error is None:
            continue
        status = int(result.get("status", 0))
        reason = error.get("reason", error) if isinstance(error, dict) else error
        message = f"bulk write of {result.get('_id')!r} failed ({status}): {reason}"
        if _is_retriable_status(status):
            raise StoreUnavailableError(message)
        raise StoreRejectedError(message)


class ElasticKeywordStore:
    """A ``KeywordStore`` on one Elasticsearch index."""

    def __init__(
        self,
        *,
        url: str,
        index: str,
        timeout_s: float = 10,
        refresh: bool = False,
        username: str | None = None,
        password: str | SecretStr | None = None,
        legacy_index: str | None = None,
        api_key: str | SecretStr | None = None,
        ca_certs: str | Path | None = None,
        verify_certs: bool = True,
        cloud_id: str | None = None,
    ) -> None:
        self.index = index
        self.legacy_index = legacy_index
        """The index of the previous mapping, which ``start`` refuses to leave behind."""
        self._refresh = refresh
        if isinstance(password, SecretStr):
            password = password.get_secret_value()
        if isinstance(api_key, SecretStr):
            api_key = api_key.get_secret_value()
        options: dict[str, Any] = {"request_timeout": timeout_s, "max_retries": 1}
        if api_key:
            options["api_key"] = api_key
        elif username:
            options["basic_auth"] = (username, password or "")
        if cloud_id:
            options["cloud_id"] = cloud_id
        else:
            options["hosts"] = url
        if cloud_id or url.startswith("https:"):
            options["verify_certs"] = verify_certs
            if ca_certs:
                options["ca_certs"] = str(ca_certs)
            if not verify_certs:
                options["ssl_show_warn"] = False
        self._client = AsyncElasticsearch(**options)
        self._closed = False

    async def start(self) -> None:
        """Create the index with ``INDEX_SETTINGS`` and ``INDEX_MAPPING`` if missing; idempotent.

        Refuses (``ConfigError``) while the previous mapping's index (``legacy_index``) still
        holds chunks the new one lacks: run ``ragstream reindex`` first.
        """
        async with _boundary():
            if await self._client.indices.exists(index=self.index):
                return
            legacy = self.legacy_index
            if legacy and await self._client.indices.exists(index=legacy):
                raise ConfigError(
                    f"elasticsearch index {legacy!r} has the old mapping and {self.index!r} "
                    "does not exist yet: run 'ragstream reindex' (README: Migrating)"
                )
            try:
                await self._create(self.index)
            except elasticsearch.BadRequestError as exc:
                if exc.error != "resource_already_exists_exception":
                    raise  # a concurrent start() created it: fine

    async def _create(self, index: str) -> None:
        await self._client.indices.create(
            index=index, settings=INDEX_SETTINGS, mappings=INDEX_MAPPING
        )

    async def reindex_from(self, source: str) -> int:
        """Copy every chunk of ``source`` into this index (created if missing), server-side.

        ``op_type: create`` keeps chunks already written to this index; returns how many
        were copied. Idempotent: run it again and it copies only what is missing.
        """
        async with _boundary():
            if not await self._client.indices.exists(index=source):
                raise StoreRejectedError(f"elasticsearch index {source!r} does not exist")
            if not await self._client.indices.exists(index=self.index):
                await self._create(self.index)
            response = await self._client.reindex(
                source={"index": source},
                dest={"index": self.index, "op_type": "create"},
                conflicts="proceed",
                refresh=True,
                wait_for_completion=True,
            )
        failures = response.get("failures") or []
        if failures:
            raise StoreUnavailableError(f"reindex left {len(failures)} failures: {failures[0]}")
        return int(response.get("created", 0))

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Index chunks in one bulk request, ``_id`` = chunk id."""
        if not chunks:
            return
        operations: list[dict[str, Any]] = []
        for chunk in chunks:
            operations.append({"index": {"_index": self.index, "_id": chunk.id}})
            operations.append(_source(chunk))
        async with _boundary():
            response = await self._client.bulk(
                operations=operations, refresh="wait_for" if self._refresh else False
            )
        _bulk_errors(response)

    async def delete_document(self, tenant: str, doc_id: str, *, keep: int = 0) -> None:
        """Delete the document's chunks with ``n >= keep`` by query."""
        clauses = _bool_filter(tenant, doc_id, {})
        if keep > 0:
            clauses.append({"range": {"n": {"gte": keep}}})
        async with _boundary():
            response = await self._client.delete_by_query(
                index=self.index,
                query={"bool": {"filter": clauses}},
                conflicts="proceed",
                refresh=self._refresh,
            )
        failures = response.get("failures") or []
        if failures:
            raise StoreUnavailableError(f"delete_by_query left {len(failures)} failures")

    async def search(
        self,
        tenant: str,
        query: str,
        *,
        top_k: int,
        filters: Filters = {},  # noqa: B006 - read-only Mapping default
    ) -> list[ScoredChunk]:
        """BM25 on text and title (boosted), tenant and filters as filter clauses."""
        check_filters(filters)
        if top_k <= 0 or not query.strip():
            return []
        body = search_query(tenant, query, filters)
        async with _boundary():
            response = await self._client.search(index=self.index, query=body, size=top_k)
        return [
            ScoredChunk(_chunk(hit["_source"]), float(hit["_score"] or 0.0))
            for hit in response["hits"]["hits"]
        ]

    async def count(self, tenant: str, doc_id: str | None = None) -> int:
        """How many chunks the tenant (or one of its documents) has."""
        query = {"bool": {"filter": _bool_filter(tenant, doc_id, {})}}
        async with _boundary():
            response = await self._client.count(index=self.index, query=query)
        return int(response["count"])

    async def ping(self) -> None:
        """Ask the cluster for its info (raises instead of returning False, unlike ``ping``)."""
        async with _boundary():
            await self._client.info()

    async def aclose(self) -> None:
        """Close the HTTP session; idempotent."""
        if self._closed:
            return
        self._closed = True
        async with _boundary():
            await self._client.close()
