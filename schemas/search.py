"""Search request-reply: ``ragstream.search-request.v1`` in, ``ragstream.search-result.v1`` out."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from schemas._base import OutputModel, WireModel
from schemas.document import FiniteFloat, Metadata
from schemas.ingest import ErrorInfo

__all__ = [
    "SEARCH_REQUEST_SCHEMA",
    "SEARCH_RESULT_SCHEMA",
    "SearchHit",
    "SearchRequest",
    "SearchResult",
    "SearchTimings",
]

SEARCH_REQUEST_SCHEMA: Final = "ragstream.search-request.v1"
SEARCH_RESULT_SCHEMA: Final = "ragstream.search-result.v1"

Mode = Literal["hybrid", "vector", "keyword"]


class SearchRequest(WireModel):
    """A query; headers ``reply-to`` and ``correlation-id`` say where the answer goes."""

    schema_: Literal["ragstream.search-request.v1"] = Field(
        default=SEARCH_REQUEST_SCHEMA, alias="schema"
    )
    """Message type and version."""
    query: str = Field(min_length=1)
    """The question or keywords."""
    top_k: int = Field(default=5, ge=1)
    """How many hits to return (capped by the worker's ``SEARCH_MAX_TOP_K``)."""
    mode: Mode = "hybrid"
    """``hybrid`` fuses both legs by reciprocal rank; ``vector`` or ``keyword`` uses one."""
    filters: dict[str, str | int | FiniteFloat | bool] = Field(default_factory=dict, max_length=16)
    """Exact-match filters, keys ``metadata.<key>`` (or ``doc_id``)."""
    tenant: str = Field(min_length=1, max_length=64)
    """Whose documents to search."""


class SearchHit(OutputModel):
    """One ranked chunk."""

    chunk_id: str
    """Stable id ``{tenant}/{doc_id}#{n}``."""
    doc_id: str
    """The document the chunk belongs to."""
    title: str
    """The document's title."""
    text: str
    """The chunk's text."""
    score: float
    """Fused score (RRF) in hybrid mode, else the leg's own score; higher is better."""
    metadata: Metadata = Field(default_factory=dict)
    """The document's metadata."""
    sources: list[Literal["vector", "keyword"]]
    """Which legs found this chunk."""


class SearchTimings(OutputModel):
    """Where one search's time went inside the worker, in milliseconds.

    The vector leg embeds the query, then queries the vector store; the keyword leg runs
    at the same time, so ``total`` is about ``max(embed + vector, keyword) + fuse``. A leg
    that did not run (or failed) is ``null``.
    """

    embed: float | None = None
    """Embedding the query (vector leg)."""
    vector: float | None = None
    """The vector store's query, without the embedding."""
    keyword: float | None = None
    """The keyword store's search."""
    fuse: float | None = None
    """Fusing the legs (RRF) and building the hits."""
    total: float | None = None
    """The whole search: validation, both legs (concurrent), fusion."""


class SearchResult(OutputModel):
    """The answer to one search request."""

    schema_: Literal["ragstream.search-result.v1"] = Field(
        default=SEARCH_RESULT_SCHEMA, alias="schema"
    )
    """Message type and version."""
    correlation_id: str | None
    """Echo of the request's correlation id."""
    status: Literal["ok", "degraded", "error"]
    """``degraded``: a leg was unavailable and the hits come from the other one."""
    hits: list[SearchHit] = Field(default_factory=list)
    """Best first."""
    degraded: list[Literal["vector", "keyword"]] = Field(default_factory=list)
    """The legs that could not answer."""
    error: ErrorInfo | None = None
    """Set when status is ``error``."""
    took_ms: float = 0.0
    """Processing time in the worker."""
    timings_ms: SearchTimings | None = None
    """Per-leg timings (optional: absent from older workers and from ``error`` replies that
    never reached the stores)."""
