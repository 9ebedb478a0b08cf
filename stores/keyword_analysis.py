"""How both keyword stores analyze text: one definition, so Elasticsearch and tantivy agree.

Used by ``stores.elastic`` (index settings) and ``stores.tantivy_keywords`` (its analyzer):
words, lowercase, Lucene's English stop words, Snowball English (Porter2) stems; the title
field is searched too: a document scores as its better field (title x ``TITLE_BOOST``) plus
``TIE_BREAKER`` times the other (Elasticsearch's ``best_fields`` multi_match).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ANALYZER", "ELASTIC_ANALYSIS", "STOP_WORDS", "TIE_BREAKER", "TITLE_BOOST"]

STOP_WORDS: tuple[str, ...] = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with",
)  # fmt: skip
"""Lucene's English stop words (Elasticsearch's ``_english_``): matched by nothing."""

TITLE_BOOST = 1.2
"""A title match counts this many times a text match. Chosen on CISI (BENCHMARKS.md): from
0.8 to 1.2 nDCG@10 stays within 0.005; 2.0 loses 12% (a short title's BM25 is high already)."""

TIE_BREAKER = 0.3
"""How much the weaker field adds to the better one (0: only the best field counts)."""

ANALYZER = "ragstream_english"
"""Name of the analyzer in the Elasticsearch index settings."""

ELASTIC_ANALYSIS: dict[str, Any] = {
    "filter": {
        "ragstream_english_stop": {"type": "stop", "stopwords": list(STOP_WORDS)},
        # Snowball English, the stemmer tantivy's "english" filter runs (not Lucene's Porter).
        "ragstream_english_stemmer": {"type": "stemmer", "language": "porter2"},
        "ragstream_english_possessive": {"type": "stemmer", "language": "possessive_english"},
    },
    "analyzer": {
        ANALYZER: {
            "type": "custom",
            "tokenizer": "standard",
            "filter": [
                "ragstream_english_possessive",
                "lowercase",
                "ragstream_english_stop",
                "ragstream_english_stemmer",
            ],
        }
    },
}
"""``settings.analysis`` of the Elasticsearch chunk index."""
