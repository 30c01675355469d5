import pytest

from marginkit.adaqr.pairs import build_pairs
from marginkit.adaqr.reward import ScoredCandidate


def _cands(losses):
    return [ScoredCandidate(f"c{i}", loss, []) for i, loss in enumerate(losses)]


def _names(pairs):
    return [(p.chosen, p.rejected) for p in pairs]


def test_pairs_below_epsilon_are_dropped_and_chosen_has_lower_loss():
    pairs = build_pairs("t", "prompt", _cands([0.5000, 0.5004, 0.9]), epsilon=0.001)
    assert _names(pairs) == [("c0?", "c2?"), ("c1?", "c2?")]
    assert all(p.chosen_loss < p.rejected_loss for p in pairs)


def test_well_separated_losses_give_every_pair_in_loss_order():
    pairs = build_pairs("t", "prompt", _cands([0.9, 0.1, 0.5]), epsilon=0.001)
    assert _names(pairs) == [("c1?", "c2?"), ("c1?", "c0?"), ("c2?", "c0?")]


def test_ties_give_no_pair_and_epsilon_is_compared_in_float64():
    assert build_pairs("t", "p", _cands([0.3, 0.3]), epsilon=1e-12) == []
    # 1.001 - 1.0 is slightly below 0.001 in float64: dropped, as in the official code
    assert 1.001 - 1.0 < 0.001
    assert build_pairs("t", "p", _cands([1.0, 1.001]), epsilon=0.001) == []


def test_unscored_candidates_are_dropped_or_ranked_worst():
    candidates = _cands([0.4, None, 0.2, None])
    assert _names(build_pairs("t", "p", candidates, no_hit="drop")) == [("c2?", "c0?")]
    worst = _names(build_pairs("t", "p", candidates, no_hit="worst"))
    assert worst == [("c2?", "c0?"), ("c2?", "c1?"), ("c2?", "c3?"), ("c0?", "c1?"), ("c0?", "c3?")]


def test_question_mark_is_kept_single():
    pairs = build_pairs("t", "p", [ScoredCandidate("a?", 0.1, []), ScoredCandidate("b", 0.9, [])])
    assert _names(pairs) == [("a?", "b?")]


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="no_hit"):
        build_pairs("t", "p", _cands([0.1]), no_hit="keep")
