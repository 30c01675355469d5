import math

import numpy as np
import pytest

from marginkit.adaqr.data import Passage
from marginkit.adaqr.retrieval import (
    BM25Retriever,
    DenseRetriever,
    HashingEncoder,
    canonical_order,
)

TOY = {
    "d0": Passage("d0", "cat sat mat"),
    "d1": Passage("d1", "dog sat log log"),
    "d2": Passage("d2", "cat cat dog bird"),
}


@pytest.fixture(scope="module")
def toy_bm25():
    return BM25Retriever(TOY, k1=1.2, b=0.75)


def _scores(retriever, query):
    return {hit.passage_id: hit.score for hit in retriever.search([query], 10)[0]}


def test_bm25_matches_lucene_formula_by_hand(toy_bm25):
    scores = _scores(toy_bm25, "cat")
    assert scores["d2"] == pytest.approx(0.286429, abs=1e-6)
    assert scores["d0"] == pytest.approx(0.230805, abs=1e-6)
    assert "d1" not in scores  # score 0: not a hit
    # idf of a df-2 term is ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln 1.6; tf 2, |d| 4:
    by_hand = math.log(1.6) * 2 / (2 + 1.2 * (1 - 0.75 + 0.75 * 4 / (11 / 3)))
    assert scores["d2"] == pytest.approx(by_hand, abs=1e-6)


def test_bm25_two_term_query_and_repeated_term(toy_bm25):
    scores = _scores(toy_bm25, "log dog")
    assert scores["d1"] == pytest.approx(0.803713, abs=1e-6)
    assert scores["d2"] == pytest.approx(0.205978, abs=1e-6)
    doubled = _scores(toy_bm25, "cat cat")
    assert doubled["d2"] == pytest.approx(2 * 0.286429, abs=1e-6)
    assert doubled["d0"] == pytest.approx(2 * 0.230805, abs=1e-6)


def test_bm25_k_larger_than_corpus_returns_every_matching_passage(toy_bm25):
    hits = toy_bm25.search(["cat dog"], 1000)[0]
    # d2 = 0.286429 + 0.205978; d0 = 0.230805 (cat); d1 = 0.205978 (dog: tf 1, |d| 4)
    assert [hit.passage_id for hit in hits] == ["d2", "d0", "d1"]
    assert hits[0].score == pytest.approx(0.286429 + 0.205978, abs=1e-6)


def test_bm25_unknown_and_empty_queries_get_no_hits(toy_bm25):
    assert toy_bm25.search(["zebra unicorn", "", "   ?!"], 5) == [[], [], []]


def test_canonical_order_breaks_ties_by_descending_id_code_points():
    assert [p for p, _ in canonical_order([("d0", 1.0), ("d1", 1.0), ("d2", 1.0)])] == [
        "d2",
        "d1",
        "d0",
    ]
    # code points: "9" > "100" > "10"
    assert [p for p, _ in canonical_order([("9", 1.0), ("10", 1.0), ("100", 1.0)])] == [
        "9",
        "100",
        "10",
    ]
    assert [p for p, _ in canonical_order([("a", 1.0), ("b", 3.0)])] == ["b", "a"]


def test_dense_retriever_finds_identical_text_with_cosine_one():
    passages = {
        "p1": Passage("p1", "lists are mutable sequences"),
        "p2": Passage("p2", "tuples are immutable sequences of objects"),
        "p3": Passage("p3", "the for statement iterates"),
    }
    retriever = DenseRetriever(passages, HashingEncoder(64))
    hits = retriever.search(["the for statement iterates"], 10)[0]
    assert hits[0].passage_id == "p3"
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert len(hits) == 3  # k clamped to the collection
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    assert retriever.search(["??"], 3) == [[]]  # nothing encodable: no hits


def test_hashing_encoder_counts_tokens():
    matrix = HashingEncoder(16)(["aa aa bb"])
    assert matrix.sum() == 3 and np.sort(matrix[0])[-1] >= 2


class CountingEncoder(HashingEncoder):
    def __init__(self):
        super().__init__(dim=64)
        self.calls = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return super().__call__(texts)


def test_dense_passage_embeddings_are_cached_on_disk_and_queries_in_memory(tmp_path):
    first = CountingEncoder()
    DenseRetriever(TOY, first, cache_dir=tmp_path)
    assert len(first.calls) == 1 and len(list(tmp_path.glob("*.npy"))) == 1
    second = CountingEncoder()
    retriever = DenseRetriever(TOY, second, cache_dir=tmp_path)
    assert second.calls == []  # same corpus and encoder name: read from the cache
    retriever.search(["cat", "dog", "cat"], 2)
    retriever.search(["cat"], 2)
    assert second.calls == [["cat", "dog"]]  # each distinct query encoded once
    changed = {**TOY, "d3": Passage("d3", "bird")}
    DenseRetriever(changed, second, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2  # another corpus gets its own file
