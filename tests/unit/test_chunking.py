"""Chunking properties: nothing lost, sizes and overlap respected, stable output."""

from __future__ import annotations

import itertools

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


@given(text=texts)
def test_split_is_deterministic(text: str) -> None:
    """The same text gives the same chunks, so chunk ids are stable across replays."""
    assert split_text(text, size=100, overlap=20) == split_text(text, size=100, overlap=20)


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
