"""The wire contract: versioned, immutable message models.

Every message carries a ``schema`` string naming its type and version. This package
imports nothing else of ragstream's, so any tool can read the contract from it alone.
"""

from schemas.breaker import BreakerEvent, BreakerEventV2
from schemas.chunks import Chunk, DocumentRecord, ScoredChunk
from schemas.document import DocumentDelete, DocumentMessage, DocumentUpsert, Metadata
from schemas.headers import Headers
from schemas.ingest import ErrorInfo, IngestResult
from schemas.search import SearchHit, SearchRequest, SearchResult

__all__ = [
    "BreakerEvent",
    "BreakerEventV2",
    "Chunk",
    "DocumentDelete",
    "DocumentMessage",
    "DocumentRecord",
    "DocumentUpsert",
    "ErrorInfo",
    "Headers",
    "IngestResult",
    "Metadata",
    "ScoredChunk",
    "SearchHit",
    "SearchRequest",
    "SearchResult",
]
