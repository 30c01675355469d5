import math

import numpy as np
import pytest

from marginkit.adaqr.data import Passage, Turn
from marginkit.adaqr.readers import UnigramReader
from marginkit.adaqr.retrieval import Hit
from marginkit.adaqr.reward import (
    RewardScorer,
    aggregate_loss,
    deduplicate,
    posterior_log_weights,
)


def test_posterior_weights_match_hand_softmax():
    w = np.exp(posterior_log_weights([18.2, 16.9, 16.5, 15.0, 14.8], 1.0))
    np.testing.assert_allclose(w, [0.6539, 0.1782, 0.1195, 0.0267, 0.0218], atol=1e-4)
    cosines = [0.62, 0.58, 0.55, 0.51, 0.50]
    np.testing.assert_allclose(
        np.exp(posterior_log_weights(cosines, 1.0)),
        [0.2139, 0.2055, 0.1994, 0.1916, 0.1897],
        atol=1e-4,
    )
    np.testing.assert_allclose(
        np.exp(posterior_log_weights(cosines, 0.05)),
        [0.5270, 0.2368, 0.1300, 0.0584, 0.0478],
        atol=1e-4,
    )


def test_posterior_is_shift_invariant_and_has_one_hot_and_uniform_limits():
    scores = [3.0, 1.0, 2.0]
    np.testing.assert_allclose(
        posterior_log_weights(scores, 0.7), posterior_log_weights([s + 100 for s in scores], 0.7)
    )
    np.testing.assert_allclose(np.exp(posterior_log_weights(scores, 1e-4)), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(np.exp(posterior_log_weights(scores, 1e6)), [1 / 3] * 3, atol=1e-5)
    with pytest.raises(ValueError, match="tau"):
        posterior_log_weights(scores, 0.0)


def test_expected_nll_and_log_marginal_on_hand_case():
    log_w = np.log([0.5, 0.5])
    assert aggregate_loss(log_w, [1.0, 3.0], 2, "expected_nll") == pytest.approx(2.0)
    # -(1/2) ln(0.5 e^-2 + 0.5 e^-6)
    marginal = -0.5 * math.log(0.5 * math.exp(-2) + 0.5 * math.exp(-6))
    assert marginal == pytest.approx(1.337499, abs=1e-6)
    assert aggregate_loss(log_w, [1.0, 3.0], 2, "log_marginal") == pytest.approx(marginal)


def test_the_two_aggregations_can_order_candidates_differently():
    log_w = np.log([0.5, 0.5])
    a_expected = aggregate_loss(log_w, [0.2, 4.0], 4, "expected_nll")
    a_marginal = aggregate_loss(log_w, [0.2, 4.0], 4, "log_marginal")
    b_expected = aggregate_loss(log_w, [1.5, 1.5], 4, "expected_nll")
    b_marginal = aggregate_loss(log_w, [1.5, 1.5], 4, "log_marginal")
    assert (a_expected, a_marginal) == pytest.approx((2.1, 0.373287), abs=1e-6)
    assert (b_expected, b_marginal) == pytest.approx((1.5, 1.5))
    assert b_expected < a_expected  # expected_nll prefers B
    assert a_marginal < b_marginal  # log_marginal prefers A


def test_one_passage_gives_its_nll_and_marginal_never_exceeds_expected():
    assert aggregate_loss([0.0], [1.7], 3, "expected_nll") == pytest.approx(1.7)
    assert aggregate_loss([0.0], [1.7], 3, "log_marginal") == pytest.approx(1.7)
    rng = np.random.default_rng(0)
    for _ in range(50):
        log_w = posterior_log_weights(rng.normal(size=4) * 3, 1.0)
        nll = rng.uniform(0, 5, size=4)
        length = int(rng.integers(1, 8))
        expected = aggregate_loss(log_w, nll, length, "expected_nll")
        assert aggregate_loss(log_w, nll, length, "log_marginal") <= expected + 1e-12


def test_unigram_reader_mixture_probabilities_by_hand():
    passages = {"p": Passage("p", "a b a c")}
    background = {w: 0.2 for w in "abcde"}  # uniform over V = 5
    reader = UnigramReader(passages, mixture=0.5, background=background)
    turn = Turn("c", 2, [("q", "x")], "q", answer="a c")
    ((nll, length),) = reader.answer_nll(turn, ["p"])
    # P(a) = 0.5 * 2/4 + 0.5 * 0.2 = 0.35, P(c) = 0.5 * 1/4 + 0.1 = 0.225
    assert length == 2
    assert nll == pytest.approx(-(math.log(0.35) + math.log(0.225)) / 2)
    assert nll == pytest.approx(1.270739, abs=1e-6)


def test_unigram_reader_background_is_a_proper_distribution():
    passages = {"p": Passage("p", "x y y"), "q": Passage("q", "z")}
    reader = UnigramReader(passages)
    # add-one over {x, y, z} plus one unknown slot: (1+1 + 2+1 + 1+1 + 1) / (4 + 3 + 1) = 1
    total = sum(reader._background.values()) + reader._unknown
    assert total == pytest.approx(1.0)


class _FixedRetriever:
    name, tau = "fixed", 1.0
    settings: dict = {}

    def __init__(self, table):
        self.table = table

    def search(self, queries, k):
        return [self.table[q][:k] for q in queries]


class _FixedReader:
    fingerprint = "fixed"

    def __init__(self, nll):
        self.nll, self.calls = nll, 0

    def answer_nll(self, turn, passage_ids):
        self.calls += len(passage_ids)
        return [(self.nll[p], 2) for p in passage_ids]


def test_scorer_combines_retrieval_posterior_and_reader_on_two_passages():
    table = {
        "good": [Hit("p1", 2.0), Hit("p2", 1.0)],
        "bad": [Hit("p2", 2.0), Hit("p1", 1.0)],
        "none": [],
    }
    reader = _FixedReader({"p1": 0.5, "p2": 3.0})
    scorer = RewardScorer(_FixedRetriever(table), reader, k=2, tau=1.0)
    turn = Turn("c", 2, [("q", "a")], "q", answer="x y")
    good, bad, none = scorer.score_turn(turn, ["good", "bad", "none"])
    w = 1 / (1 + math.exp(-1))  # softmax weight of the higher score
    assert good.loss == pytest.approx(w * 0.5 + (1 - w) * 3.0)
    assert bad.loss == pytest.approx(w * 3.0 + (1 - w) * 0.5)
    assert good.reward == pytest.approx(-good.loss)
    assert none.loss is None
    assert reader.calls == 2  # each passage read once for the turn (cached)
    scorer.score_turn(turn, ["bad"])
    assert reader.calls == 2


def test_scorer_refuses_a_turn_without_answer():
    scorer = RewardScorer(_FixedRetriever({}), _FixedReader({}), k=2, tau=1.0)
    with pytest.raises(ValueError, match="no answer"):
        scorer.score_turn(Turn("c", 2, [("q", "a")], "q"), ["x"])


def test_deduplicate_drops_repeats_and_one_character_candidates():
    assert deduplicate(["a b", "a  b", "?", "", "c d"]) == ["a b", "c d"]
