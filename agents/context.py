"""What an agent needs from the worker: the agent context, a small protocol.

The agents depend on this, never on the runtime that implements it
(``ragstream.runtime.Runtime``): a unit test hands them fakes through the same protocol.
Each member is the narrowest view of a service the agents call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from schemas.document import DocumentDelete, DocumentUpsert
from schemas.search import SearchRequest, SearchResult
from services.auth import Principal
from services.indexing import IndexOutcome
from streams.settings import Settings
from streams.topics import Topics

__all__ = ["AgentContext", "Authenticates", "Indexes", "Searches"]

Doc = DocumentUpsert | DocumentDelete


class Authenticates(Protocol):
    """Turns a message's credential headers into a principal (None with auth disabled)."""

    async def authenticate(
        self, *, authorization: str | None, api_key: str | None
    ) -> Principal | None:
        """The principal, or ``AuthenticationError``."""
        ...


class Indexes(Protocol):
    """Writes documents to both stores and the catalog, in order."""

    async def handle_many(
        self, docs: Sequence[Doc], *, embedded: Mapping[str, list[float]] | None = None
    ) -> list[IndexOutcome]:
        """One outcome per document; a retriable error propagates (the agent holds)."""
        ...

    async def embed_ahead(self, docs: Sequence[Doc]) -> dict[str, list[float]]:
        """Vectors by chunk text for the new or changed chunks (a hint for later)."""
        ...


class Searches(Protocol):
    """Answers one search request."""

    async def search(
        self, req: SearchRequest, *, correlation_id: str | None = None
    ) -> SearchResult:
        """The result; raises only for an invalid request."""
        ...


class AgentContext(Protocol):
    """Everything the ingest and search agents use, and nothing else."""

    @property
    def settings(self) -> Settings:
        """The worker's settings (limits, retry intervals)."""
        ...

    @property
    def topics(self) -> Topics:
        """Names of the results, dead-letters and other topics."""
        ...

    @property
    def auth(self) -> Authenticates:
        """The credential check."""
        ...

    @property
    def indexer(self) -> Indexes:
        """The ingest use case (available once the worker has started)."""
        ...

    @property
    def searcher(self) -> Searches:
        """The search use case (available once the worker has started)."""
        ...

    def breaker_tags(self) -> dict[str, str]:
        """``breaker.<name>: <state>`` per breaker, for failure reports."""
        ...
