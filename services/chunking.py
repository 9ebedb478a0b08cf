"""Chunking: a document's text becomes overlapping, word-aligned pieces.

Sits between the ingest agent's decoded document and the embedder. Pure and
deterministic: the same text and settings always give the same chunks, so chunk ids
(``{tenant}/{doc_id}#{n}``) are stable across replays.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TextSpan", "split_text"]


@dataclass(frozen=True, slots=True)
class TextSpan:
    """A chunk's text and where it starts in the document."""

    start: int
    text: str

    @property
    def end(self) -> int:
        """Offset just past the chunk's last character."""
        return self.start + len(self.text)


def _skip_space(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos].isspace():
        pos += 1
    return pos


def _cut(text: str, pos: int, limit: int) -> int:
    """The end of the chunk starting at ``pos``: the last word end at or before ``limit``."""
    if limit >= len(text):
        return len(text)
    i = limit
    while i > pos and not text[i].isspace():
        i -= 1
    if i > pos:
        return i
    return limit  # one word longer than a whole chunk: the only place we split a word


def _next_start(text: str, pos: int, end: int, overlap: int) -> int:
    """Where the next chunk starts: the first word start at or after ``end - overlap``."""
    start = max(end - overlap, pos + 1)
    if 0 < start < len(text) and not text[start - 1].isspace() and not text[start].isspace():
        while start < end and not text[start].isspace():  # inside a word: go to its end
            start += 1
    start = _skip_space(text, start)
    return start if start > pos else end


def split_text(text: str, *, size: int, overlap: int) -> list[TextSpan]:
    """Split ``text`` into chunks of at most ``size`` characters that end on word boundaries.

    Consecutive chunks share at most ``overlap`` characters, and every non-space
    character of the text is in at least one chunk. A word longer than ``size`` is the
    one case that gets cut inside a word.
    """
    if size <= 0 or overlap < 0 or overlap >= size:
        raise ValueError("need size > 0 and 0 <= overlap < size")
    spans: list[TextSpan] = []
    pos = _skip_space(text, 0)
    n = len(text)
    while pos < n:
        end = _cut(text, pos, pos + size)
        chunk = text[pos:end].rstrip()
        spans.append(TextSpan(pos, chunk))
        if end >= n or not text[end:].strip():
            break
        pos = _next_start(text, pos, end, overlap)
    return spans
