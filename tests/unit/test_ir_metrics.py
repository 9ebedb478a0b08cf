"""Retrieval metrics and BEIR loading for ``ragstream eval``, against hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ragstream.evaluation import CollectionError, _Answer, load_collection, score_mode
from ragstream.ir_metrics import dedupe, mrr_at, ndcg_at, percentile, recall_at

QRELS = {"a": 1, "b": 1, "c": 1, "z": 0}


def test_ndcg_binary_by_hand() -> None:
    """Relevant at ranks 1 and 3 of three relevant: (1 + 1/2) / (1 + 1/log2 3 + 1/2)."""
    got = ndcg_at(["a", "x", "b", "y"], QRELS, 10)
    assert got == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3) + 0.5))


def test_ndcg_graded_uses_linear_gain_and_ideal_order() -> None:
    """Grades 2 and 1 in the wrong order: (1 + 2/log2 3) / (2 + 1/log2 3)."""
    qrels = {"hi": 2, "lo": 1}
    assert ndcg_at(["lo", "hi"], qrels, 10) == pytest.approx(
        (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    )
    assert ndcg_at(["hi", "lo"], qrels, 10) == pytest.approx(1.0)


def test_ndcg_cut_at_k_and_edge_cases() -> None:
    """Only the first k count; nothing relevant or nothing retrieved scores 0."""
    assert ndcg_at(["x", "a"], QRELS, 1) == 0.0
    assert ndcg_at(["a"], QRELS, 1) == pytest.approx(1.0)  # the ideal at k=1 is one hit
    assert ndcg_at([], QRELS, 10) == 0.0
    assert ndcg_at(["a"], {"a": 0}, 10) == 0.0


def test_recall_by_hand() -> None:
    """Two of three relevant in the first 3; a judged-irrelevant doc counts for nothing."""
    assert recall_at(["a", "z", "c", "b"], QRELS, 3) == pytest.approx(2 / 3)
    assert recall_at(["a", "z", "c", "b"], QRELS, 100) == pytest.approx(1.0)
    assert recall_at(["a"], {"a": 0}, 10) == 0.0


def test_mrr_by_hand() -> None:
    """First relevant at rank 3 scores 1/3; beyond k or absent scores 0."""
    assert mrr_at(["x", "z", "b"], QRELS, 10) == pytest.approx(1 / 3)
    assert mrr_at(["x", "z", "b"], QRELS, 2) == 0.0
    assert mrr_at(["x"], QRELS, 10) == 0.0


def test_a_document_found_twice_counts_once_at_its_first_rank() -> None:
    """Two chunks of one document: the document takes one rank, the first."""
    assert dedupe(["a", "a", "x", "a", "b"]) == ["a", "x", "b"]
    assert mrr_at(["x", "x", "a"], QRELS, 2) == pytest.approx(1 / 2)
    assert recall_at(["a", "a", "a", "b"], QRELS, 2) == pytest.approx(2 / 3)


def test_percentile_interpolates() -> None:
    """p50 of 1..4 is 2.5; p99 of 1..101 is 100; no values give 0."""
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile(list(range(1, 102)), 99) == pytest.approx(100.0)
    assert percentile([], 50) == 0.0


def _write(root: Path, corpus: list[dict], queries: list[dict], qrels: str) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


def test_load_keeps_judged_queries_and_title_only_documents(tmp_path: Path) -> None:
    """Unjudged queries are dropped; a document with only a title is searchable by it."""
    root = _write(
        tmp_path / "c",
        [{"_id": "1", "title": "T", "text": "body"}, {"_id": 2, "title": "Only title", "text": ""}],
        [{"_id": "q1", "text": "body?"}, {"_id": "q2", "text": "unjudged"}],
        "query-id\tcorpus-id\tscore\nq1\t1\t1\nq1\t2\t0\n",
    )
    coll = load_collection(root)
    assert coll.corpus == [("1", "T", "body"), ("2", "Only title", "Only title")]
    assert coll.queries == {"q1": "body?"}
    assert coll.qrels == {"q1": {"1": 1, "2": 0}}


@pytest.mark.parametrize(
    ("corpus_line", "qrels", "message"),
    [
        ('{"_id": "1", "text": "x"}\nnot json\n', "q\t1\t1\n", r"corpus.jsonl:2: not JSON"),
        ('{"text": "x"}\n', "q\t1\t1\n", r"corpus.jsonl:1: expected an object with an '_id'"),
        ('{"_id": "1", "text": "x"}\n', "q\t1\n", r"test.tsv:1: expected query-id"),
        ('{"_id": "1", "text": "x"}\n', "q\t1\thigh\n", r"score 'high' is not an integer"),
        ('{"_id": "1", "text": "x"}\n', "other\t1\t1\n", r"no query .* has judgements"),
        ('{"_id": "1", "text": "x"}\n{"_id": "1", "text": "y"}\n', "q\t1\t1\n", "repeated"),
    ],
)
def test_bad_collections_fail_precisely(
    tmp_path: Path, corpus_line: str, qrels: str, message: str
) -> None:
    """Each malformed file is named with its line and what is wrong."""
    root = _write(tmp_path / "c", [], [{"_id": "q", "text": "query"}], qrels)
    (root / "corpus.jsonl").write_text(corpus_line)
    with pytest.raises(CollectionError, match=message):
        load_collection(root)


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A directory without qrels says which file is missing."""
    root = _write(tmp_path / "c", [{"_id": "1", "text": "x"}], [{"_id": "q", "text": "y"}], "")
    (root / "qrels" / "test.tsv").unlink()
    with pytest.raises(CollectionError, match=r"qrels/test.tsv is missing"):
        load_collection(root)


def test_score_mode_averages_over_judged_queries(tmp_path: Path) -> None:
    """Means are over every judged query (an unanswered one scores 0); latency skips errors."""
    root = _write(
        tmp_path / "c",
        [{"_id": d, "text": d} for d in ("a", "b", "c")],
        [{"_id": "q1", "text": "x"}, {"_id": "q2", "text": "y"}],
        "q1\ta\t1\nq2\tb\t1\n",
    )
    coll = load_collection(root)
    answers = {
        "q1": _Answer(["c", "a"], 10.0, "ok", {"total": 4.0, "keyword": 1.0}),
        "q2": _Answer([], 99.0, "error", {}),
    }
    report = score_mode("keyword", coll, answers)
    assert report.mrr_at_10 == pytest.approx((1 / 2 + 0) / 2)
    assert report.recall_at_100 == pytest.approx(0.5)
    assert report.ndcg_at_10 == pytest.approx((1 / math.log2(3)) / 2)
    assert (report.p50_ms, report.statuses) == (10.0, {"ok": 1, "error": 1})
    assert report.timings_ms == {"keyword": 1.0, "total": 4.0}
