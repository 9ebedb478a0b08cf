"""``ragstream reindex``: copy the chunks of an older Elasticsearch index into the current one.

The chunk index is named after its mapping version (``{ELASTICSEARCH_INDEX_PREFIX}-v2``);
version 1 was ``{ELASTICSEARCH_INDEX_PREFIX}`` itself, without the English analyzer. Workers
refuse to start while only the old index exists; this command migrates it server-side
(``_reindex``), idempotently, and leaves the old index for you to delete.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ragstream.cli._env import add_command, settings
from stores.elastic import ElasticKeywordStore, chunk_index

__all__ = ["register"]


async def _reindex(source: str | None) -> tuple[str, str, int]:
    es = settings().elasticsearch
    store = ElasticKeywordStore(
        url=es.url,
        index=chunk_index(es.index_prefix),
        timeout_s=max(es.timeout_s, 600.0),  # a server-side copy of a large index takes a while
        username=es.username,
        password=es.password,
        api_key=es.api_key,
        ca_certs=es.ca_certs,
        verify_certs=es.verify_certs,
        cloud_id=es.cloud_id,
    )
    origin = source or es.index_prefix
    try:
        copied = await store.reindex_from(origin)
    finally:
        await store.aclose()
    return origin, store.index, copied


def cmd_reindex(args: argparse.Namespace) -> int:
    """Copy the old index into the current one and say how many chunks moved."""
    origin, target, copied = asyncio.run(_reindex(args.source))
    print(f"copied {copied} chunks from {origin} to {target}")
    return 0


def register(sub: Any) -> None:
    """Add ``ragstream reindex``."""
    p = add_command(
        sub,
        "reindex",
        help="migrate an older Elasticsearch chunk index to the current mapping",
        description=(
            "Create the current chunk index ({prefix}-v2: English analyzer, boosted title) "
            "and copy every chunk of the old one into it, server-side. Run it with the "
            "workers stopped; run it again to copy only what is missing."
        ),
        examples=[
            "ELASTICSEARCH_URL=http://es:9200 ragstream reindex",
            "ragstream reindex --from my-old-index",
        ],
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="INDEX",
        help="index to copy (default $ELASTICSEARCH_INDEX_PREFIX, the version-1 index)",
    )
    p.set_defaults(func=cmd_reindex)
