import math

import pytest

from marginkit.adaqr.metrics import crosscheck_pytrec_eval, evaluate_run, turn_metrics


def test_hand_built_run_metrics():
    values = turn_metrics(["a", "x", "b"], {"a": 1, "b": 1, "c": 1}, recall_ks=(1, 2, 5))
    assert values["mrr"] == 1.0
    assert values["map"] == pytest.approx((1 / 1 + 2 / 3) / 3)  # 5/9
    assert values["recall@1"] == pytest.approx(1 / 3)
    assert values["recall@2"] == pytest.approx(1 / 3)
    assert values["recall@5"] == pytest.approx(2 / 3)
    assert values["ndcg@3"] == pytest.approx(1.5 / (1.5 + 1 / math.log2(3)))
    assert values["ndcg@3"] == pytest.approx(0.703918, abs=1e-6)


def test_tied_scores_rank_by_descending_id():
    evaluation = evaluate_run({"q": {"d0": 1.0, "d1": 1.0, "d2": 1.0}}, {"q": {"d1": 1}})
    assert evaluation.per_turn["q"]["mrr"] == pytest.approx(0.5)
    assert evaluation.per_turn["q"]["ndcg@3"] == pytest.approx(1 / math.log2(3), abs=1e-6)
    numeric = evaluate_run({"q": {"9": 1.0, "10": 1.0, "100": 1.0}}, {"q": {"10": 1}})
    assert numeric.per_turn["q"]["mrr"] == pytest.approx(1 / 3)


def test_graded_ndcg_uses_linear_gain():
    evaluation = evaluate_run({"q": {"d4": 3, "d3": 2, "d5": 1}}, {"q": {"d3": 2, "d4": 1}})
    # DCG = 1 + 2/log2(3); IDCG = 2 + 1/log2(3)
    assert evaluation.per_turn["q"]["ndcg@3"] == pytest.approx(0.859719, abs=1e-6)


def test_empty_or_missing_runs_count_as_zero_and_unjudged_rows_are_counted():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}, "q4": {"z": 0}}
    run = {"q1": {"a": 2.0}, "q2": {}, "extra": {"a": 1.0}}
    evaluation = evaluate_run(run, qrels)
    assert evaluation.mean()["mrr"] == pytest.approx(1 / 3)  # q1 1, q2 0, q3 0; q4 not judged
    assert evaluation.num_judged == 3 and evaluation.num_empty == 2
    assert evaluation.num_unjudged_in_run == 1
    assert evaluate_run({"q1": {"a": 1.0}, "q2": {}}, {"q1": {"a": 1}, "q2": {"b": 1}}).mean()[
        "mrr"
    ] == pytest.approx(0.5)


def test_depth_cuts_the_ranking():
    run = {"q": {f"d{i:03d}": 200.0 - i for i in range(150)}}
    evaluation = evaluate_run(run, {"q": {"d120": 1}}, depth=100)
    assert evaluation.per_turn["q"]["mrr"] == 0.0 and evaluation.per_turn["q"]["recall@100"] == 0


def test_metrics_agree_with_pytrec_eval_on_random_runs():
    pytest.importorskip("pytrec_eval", reason="pytrec-eval-terrier (test extra) not installed")
    import random

    rng = random.Random(3)
    docs = [f"d{i}" for i in range(40)] + ["9", "10", "100"]
    qrels, run = {}, {}
    for q in range(30):
        qrels[f"q{q}"] = {d: rng.choice([1, 1, 2]) for d in rng.sample(docs, rng.randint(1, 4))}
        # coarse scores force many ties, which must be broken as trec_eval does
        run[f"q{q}"] = {d: float(rng.randint(0, 5)) for d in rng.sample(docs, 25)}
    qrels["q_empty_qrels"] = {"d1": 0}
    run["q_empty_qrels"] = {"d1": 1.0}
    result = crosscheck_pytrec_eval(run, qrels, depth=20)
    assert result["status"] == "passed", result["mismatches"][:3]
    assert result["turns"] == 30
