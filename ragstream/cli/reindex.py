"""``ragstream reindex``: migrate the stores' layouts of an older version into the current ones.

- Elasticsearch (``KEYWORD_STORE=elasticsearch``): the chunk index is named after its mapping
  version (``{ELASTICSEARCH_INDEX_PREFIX}-v2``); version 1 was ``{ELASTICSEARCH_INDEX_PREFIX}``
  itself, without the English analyzer. Workers refuse to start while only the old index
  exists; this copies it server-side (``_reindex``) and leaves the old index for you to delete.
- Chroma: version 1 kept every tenant's vectors in one collection; now each tenant has its own.
  Workers refuse to start while the shared collection holds chunks; this moves them and renames
  the shared collection ``{name}.migrated-{time}`` for you to delete.

Both steps are idempotent. Run it with the workers stopped.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ragstream.cli._env import add_command, settings
from ragstream.runtime import build_vector_store
from services.embedding import build_embedder
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


async def _migrate_vectors() -> tuple[str, int]:
    config = settings()
    embedder = build_embedder(config)  # the collection is named after the model, as in a worker
    await embedder.start()
    await embedder.aclose()
    # A large shared collection takes a while to page through.
    store = build_vector_store(config, embedder.name, timeout_s=max(config.chroma.timeout_s, 600))
    try:
        moved = await store.migrate_shared_collection()
    finally:
        await store.aclose()
    return store.collection_name, moved


def cmd_reindex(args: argparse.Namespace) -> int:
    """Migrate each store that needs it and say how many chunks moved."""
    if settings().keywords.store == "elasticsearch":
        origin, target, copied = asyncio.run(_reindex(args.source))
        print(f"copied {copied} chunks from {origin} to {target}")
    name, moved = asyncio.run(_migrate_vectors())
    print(f"moved {moved} vectors from the shared collection {name} to one per tenant")
    return 0


def register(sub: Any) -> None:
    """Add ``ragstream reindex``."""
    p = add_command(
        sub,
        "reindex",
        help="migrate older store layouts (Elasticsearch index, shared Chroma collection)",
        description=(
            "With KEYWORD_STORE=elasticsearch, create the current chunk index ({prefix}-v2: "
            "English analyzer, boosted title) and copy every chunk of the old one into it, "
            "server-side. Then move the vectors of a shared Chroma collection (one for every "
            "tenant, before this version) into one collection per tenant. Run it with the "
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
