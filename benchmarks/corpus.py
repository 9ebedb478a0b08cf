"""Deterministic synthetic documents (~2 KB) and queries, the same in every run."""

from __future__ import annotations

import random

from schemas.document import DocumentUpsert
from services.chunking import split_text

__all__ = ["QUERIES", "chunk_texts", "documents"]

_TOPICS = {
    "garden": "tomato soil compost watering seedlings mulch pruning harvest greenhouse sunlight",
    "kitchen": "sourdough starter flour yeast oven crust knead proof salt butter",
    "sky": "telescope saturn jupiter galaxy nebula orbit eclipse comet lens observatory",
    "ops": "kafka partition consumer offset broker replica topic latency throughput commit",
    "health": "sleep exercise protein hydration stretching heart recovery posture muscle vitamin",
    "travel": "train ticket luggage passport hostel itinerary museum ferry border currency",
}
_FILLER = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "for",
    "with",
    "on",
    "that",
    "by",
    "this",
    "as",
    "at",
    "from",
    "it",
    "be",
    "are",
    "was",
    "can",
    "will",
    "should",
    "when",
    "which",
    "how",
    "every",
    "after",
    "before",
    "while",
    "because",
    "often",
    "usually",
    "rarely",
]

QUERIES = [
    "how often should I water tomato plants",
    "feeding a sourdough starter",
    "rings of saturn",
    "consumer group offsets after restart",
    "how much protein after exercise",
    "what to pack for a train trip",
    "compost and mulch for seedlings",
    "crisp crust in the oven",
    "observing a comet with a small telescope",
    "partition replica latency",
    "stretching for better posture",
    "crossing a border with currency",
]


def _text(rng: random.Random, topic: str, size: int) -> str:
    words = _TOPICS[topic].split()
    out: list[str] = []
    length = 0
    while length < size:
        sentence = [
            rng.choice(words) if rng.random() < 0.45 else rng.choice(_FILLER)
            for _ in range(rng.randint(8, 18))
        ]
        s = " ".join(sentence).capitalize() + "."
        out.append(s)
        length += len(s) + 1
    return " ".join(out)[:size]


def documents(
    tenant: str, n: int, *, seed: int = 0, size: int = 2000, prefix: str = "doc"
) -> list[DocumentUpsert]:
    """``n`` documents of ``size`` characters for ``tenant``; same seed, same documents."""
    rng = random.Random(seed)
    topics = sorted(_TOPICS)
    docs = []
    for i in range(n):
        topic = topics[i % len(topics)]
        docs.append(
            DocumentUpsert(
                id=f"{prefix}-{seed}-{i:05d}",
                tenant=tenant,
                title=f"{topic} notes {i}",
                text=_text(rng, topic, size),
                metadata={"section": topic, "n": i},
            )
        )
    return docs


def chunk_texts(docs: list[DocumentUpsert], *, size: int, overlap: int) -> list[str]:
    """The chunk texts the worker will embed (same splitter, same settings)."""
    return [span.text for d in docs for span in split_text(d.text, size=size, overlap=overlap)]
