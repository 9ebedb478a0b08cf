"""Both keyword stores are configured for the same English analysis (no service needed)."""

from __future__ import annotations

from stores.elastic import INDEX_MAPPING, INDEX_SETTINGS, chunk_index, search_query
from stores.keyword_analysis import ANALYZER, STOP_WORDS, TIE_BREAKER, TITLE_BOOST
from stores.tantivy_keywords import analyzer


def test_elasticsearch_mapping_analyzes_text_and_title_in_english() -> None:
    """Text and title use the shared analyzer: stop words, then Snowball English stems."""
    props = INDEX_MAPPING["properties"]
    assert props["text"]["analyzer"] == props["title"]["analyzer"] == ANALYZER
    analysis = INDEX_SETTINGS["analysis"]
    chain = analysis["analyzer"][ANALYZER]["filter"]
    filters = [analysis["filter"].get(name, {"type": name}) for name in chain]
    assert {"type": "stop", "stopwords": list(STOP_WORDS)} in filters
    assert filters[-1] == {"type": "stemmer", "language": "porter2"}


def test_elasticsearch_query_boosts_the_title_and_filters_by_tenant() -> None:
    """multi_match best_fields with the title boost and tie-breaker; tenant and filters as terms."""
    body = search_query("acme", "wings", {"metadata.lang": "en"})
    [match] = body["bool"]["must"]
    assert match["multi_match"]["fields"] == ["text", f"title^{TITLE_BOOST:g}"]
    assert match["multi_match"]["tie_breaker"] == TIE_BREAKER
    assert body["bool"]["filter"] == [
        {"term": {"tenant": "acme"}},
        {"term": {"metadata.lang": "en"}},
    ]


def test_a_new_mapping_gets_a_new_index_name() -> None:
    """The index of the English mapping is the prefix plus -v2, so old indexes stay apart."""
    assert chunk_index("ragstream-chunks") == "ragstream-chunks-v2"


def test_tantivy_analyzer_stems_and_drops_stop_words() -> None:
    """ "aerodynamic" and "aerodynamics" share a term; stop words and possessives vanish."""
    analyze = analyzer().analyze
    assert analyze("aerodynamic") == analyze("Aerodynamics") == ["aerodynam"]
    assert analyze("the of and with") == []
    assert analyze("John's wings") == ["john", "wing"]
