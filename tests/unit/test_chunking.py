"""Chunking properties: nothing lost, sizes and overlap respected, stable output."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.chunking import split_text

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéü0123456789", min_size=1, max_size=12)
texts = st.lists(words, min_size=0, max_size=400).flatmap(
    lambda ws: st.lists(
        st.sampled_from([" ", "  ", "\n", "\n\n", "\t"]), min_size=len(ws), max_size=len(ws)
    ).map(lambda seps: "".join(w + s for w, s in zip(ws, seps, strict=True)))
)
sizes = st.tuples(
    st.integers(min_value=20, max_value=300), st.integers(min_value=0, max_value=9)
).map(lambda t: (t[0], t[0] * t[1] // 20))


@settings(max_examples=300, deadline=None)
@given(text=texts, size_overlap=sizes)
def test_every_word_is_in_a_chunk_at_its_offset(text: str, size_overlap: tuple[int, int]) -> None:
    """Each chunk is the text at its offset, and together they cover every non-space char."""
    size, overlap = size_overlap
    spans = split_text(text, size=size, overlap=overlap)
    covered = [False] * len(text)
    for span in spans:
        assert text[span.start : span.end] == span.text
        for i in range(span.start, span.end):
            covered[i] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())


@settings(max_examples=300, deadline=None)
@given(text=texts, size_overlap=sizes)
def test_chunks_respect_size_overlap_and_word_boundaries(
    text: str, size_overlap: tuple[int, int]
) -> None:
    """No chunk exceeds size, neighbours share at most ``overlap`` chars, words stay whole."""
    size, overlap = size_overlap
    spans = split_text(text, size=size, overlap=overlap)
    for span in spans:
        assert 0 < len(span.text) <= size
        assert not span.text[0].isspace() and not span.text[-1].isspace()
        # a chunk starts and ends on word boundaries (words here are shorter than size)
        assert span.start == 0 or text[span.start - 1].isspace()
        assert span.end == len(text) or text[span.end].isspace()
    for prev, nxt in itertools.pairwise(spans):
        assert nxt.start > prev.start
        assert prev.end - nxt.start <= overlap


_CHUNK_IDS = """
import json, sys
from schemas.document import DocumentUpsert
from services.indexing import Indexer, content_hash
from streams.settings import IngestSettings

settings = IngestSettings(chunk_size=100, chunk_overlap=20)
indexer = Indexer(catalog=None, vectors=None, keywords=None, embedder=None, settings=settings)
out = []
for fields in json.load(sys.stdin):
    doc = DocumentUpsert(**fields)
    chunks = [(c.id, c.start, c.text) for c in indexer.chunk(doc)]
    digest = content_hash(doc, model="m", chunk_size=100, chunk_overlap=20)
    out.append([chunks, digest])
json.dump(out, sys.stdout)
"""


def _chunk_ids_in_a_new_process(docs: list[dict[str, Any]], *, hash_seed: str) -> Any:
    """Chunk ids, offsets, texts and content hash of ``docs``, computed by a fresh interpreter."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", _CHUNK_IDS],
        input=json.dumps(docs),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout)


def test_chunk_ids_and_hashes_are_the_same_in_every_process() -> None:
    """Two interpreters with different hash seeds cut the same chunks, ids and content hashes,
    so a replay on another worker overwrites instead of duplicating."""
    rng = random.Random(20240521)
    vocabulary = ["kafka", "offset", "Ünïcödé", "東京", "x" * 130, "a", "b-c", "d_e", "\n\n"]
    docs = []
    for i in range(40):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(1, 120))]
        keys = rng.sample(["lang", "year", "kind", "team", "z", "a"], k=rng.randint(0, 6))
        docs.append(
            {
                "id": f"doc-{i}",
                "tenant": rng.choice(["acme", "globex"]),
                "title": rng.choice(["", "Title", "Café"]),
                "text": " ".join(words),
                "metadata": {key: rng.choice([1, "v", True, 2.5]) for key in keys},
            }
        )
    first = _chunk_ids_in_a_new_process(docs, hash_seed="1")
    second = _chunk_ids_in_a_new_process(docs, hash_seed="2")
    assert first == second
    assert sum(len(chunks) for chunks, _ in first) > len(docs)  # several chunks per document
    assert len({digest for _, digest in first}) == len(docs)


def test_long_word_is_the_only_mid_word_cut() -> None:
    """A word longer than a chunk is cut; the pieces still cover it."""
    text = "start " + "x" * 250 + " end"
    spans = split_text(text, size=100, overlap=10)
    assert all(len(s.text) <= 100 for s in spans)
    covered = {i for s in spans for i in range(s.start, s.end)}
    assert set(range(6, 256)) <= covered
    assert spans[0].text == "start"


@pytest.mark.parametrize(
    ("size", "overlap"),
    [
        pytest.param(0, 0, id="zero-size"),
        pytest.param(10, 10, id="overlap-equals-size"),
        pytest.param(10, -1, id="negative-overlap"),
    ],
)
def test_bad_parameters_raise(size: int, overlap: int) -> None:
    """Impossible sizes are refused instead of looping forever."""
    with pytest.raises(ValueError):
        split_text("some text", size=size, overlap=overlap)


def test_whitespace_only_text_has_no_chunks() -> None:
    """Blank text gives no chunks."""
    assert split_text(" \n\t ", size=50, overlap=5) == []
