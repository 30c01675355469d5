"""Retrieval metrics computed as trec_eval does, with its conventions made explicit.

* A passage is relevant when its grade is >= 1; ``R`` is the relevant count in the qrels.
* A run is ranked by score descending, then passage id descending (code points), and cut
  at ``depth``.
* MRR: 1 / rank of the first relevant hit (0 if none). MAP:
  :math:`\\frac{1}{R}\\sum_{\\text{relevant at rank } i} P@i`.
* NDCG@k = DCG@k / IDCG@k with linear gain, :math:`DCG@k = \\sum_{i \\le k}
  g_i / \\log_2(i + 1)`, IDCG from the qrels grades sorted descending.
* Recall@k = |relevant in top k| / R.
* Means are over every turn with R >= 1; a turn missing from the run, or with an empty
  run, scores 0 (``trec_eval -c``). Run rows for unjudged turns are ignored and counted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from marginkit.adaqr.retrieval import canonical_order

DEFAULT_RECALL_KS = (5, 10, 100)


def turn_metrics(
    ranking: Sequence[str],
    grades: Mapping[str, int],
    ndcg_k: int = 3,
    recall_ks: Sequence[int] = DEFAULT_RECALL_KS,
) -> dict[str, float]:
    """Metrics of one ranked list of passage ids against ``{passage_id: grade}``."""
    relevant = {pid for pid, grade in grades.items() if grade >= 1}
    if not relevant:
        raise ValueError("turn_metrics needs at least one relevant passage (R >= 1)")
    reciprocal_rank, precision_sum, found = 0.0, 0.0, 0
    for rank, pid in enumerate(ranking, start=1):
        if pid in relevant:
            found += 1
            precision_sum += found / rank
            if reciprocal_rank == 0.0:
                reciprocal_rank = 1.0 / rank
    dcg = sum(
        max(grades.get(pid, 0), 0) / math.log2(rank + 1)
        for rank, pid in enumerate(ranking[:ndcg_k], start=1)
    )
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:ndcg_k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    values = {
        "mrr": reciprocal_rank,
        "map": precision_sum / len(relevant),
        f"ndcg@{ndcg_k}": dcg / idcg if idcg > 0 else 0.0,
    }
    for k in recall_ks:
        values[f"recall@{k}"] = len(relevant & set(ranking[:k])) / len(relevant)
    return values


@dataclasses.dataclass
class Evaluation:
    """Per-turn metrics and their means (x100 in :meth:`summary`)."""

    per_turn: dict[str, dict[str, float]]
    num_judged: int
    num_empty: int
    num_unjudged_in_run: int

    def mean(self, turn_ids: Sequence[str] | None = None) -> dict[str, float]:
        chosen = (
            list(self.per_turn) if turn_ids is None else [t for t in turn_ids if t in self.per_turn]
        )
        if not chosen:
            raise ValueError("no judged turns to average over")
        names = next(iter(self.per_turn.values())).keys()
        return {name: sum(self.per_turn[t][name] for t in chosen) / len(chosen) for name in names}

    def summary(self, turn_ids: Sequence[str] | None = None) -> dict[str, float]:
        means = {name: 100 * value for name, value in self.mean(turn_ids).items()}
        means["turns"] = float(
            len(self.per_turn if turn_ids is None else [t for t in turn_ids if t in self.per_turn])
        )
        means["empty_runs"] = float(self.num_empty)
        return means


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    depth: int = 100,
    ndcg_k: int = 3,
    recall_ks: Sequence[int] = DEFAULT_RECALL_KS,
) -> Evaluation:
    """Evaluate ``run`` (``{turn: {passage: score}}``) against ``qrels`` like trec_eval -c."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    per_turn, empty = {}, 0
    for turn_id in sorted(qrels):
        grades = qrels[turn_id]
        if not any(g >= 1 for g in grades.values()):
            continue
        ranked = [pid for pid, _ in canonical_order(run.get(turn_id, {}).items())][:depth]
        if not ranked:
            empty += 1
            zero = turn_metrics(["\0unretrieved"], grades, ndcg_k, recall_ks)
            per_turn[turn_id] = {name: 0.0 for name in zero}
            continue
        per_turn[turn_id] = turn_metrics(ranked, grades, ndcg_k, recall_ks)
    unjudged = sum(1 for turn_id in run if turn_id not in qrels)
    return Evaluation(per_turn, len(per_turn), empty, unjudged)


_PYTREC_NAMES = {"mrr": "recip_rank", "map": "map"}


def crosscheck_pytrec_eval(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    depth: int = 100,
    ndcg_k: int = 3,
    recall_ks: Sequence[int] = DEFAULT_RECALL_KS,
    tolerance: float = 1e-9,
) -> dict[str, object]:
    """Compare :func:`evaluate_run` with pytrec_eval per turn with a non-empty run.

    Returns ``{"status": "passed" | "failed" | "unavailable", "turns": n,
    "max_abs_diff": d, "mismatches": [...]}``; never "passed" when pytrec_eval is absent.
    """
    try:
        import pytrec_eval
    except ImportError:
        return {"status": "unavailable", "turns": 0, "max_abs_diff": None, "mismatches": []}
    judged = {t: dict(g) for t, g in qrels.items() if any(v >= 1 for v in g.values())}
    cut = {}
    for turn_id, scores in run.items():
        if turn_id in judged and scores:
            ranked = canonical_order(scores.items())[:depth]
            cut[turn_id] = {pid: float(score) for pid, score in ranked}
    ours = evaluate_run(cut, judged, depth, ndcg_k, recall_ks).per_turn
    names = {**_PYTREC_NAMES, f"ndcg@{ndcg_k}": f"ndcg_cut_{ndcg_k}"}
    names.update({f"recall@{k}": f"recall_{k}" for k in recall_ks})
    measures = {
        "recip_rank",
        "map",
        f"ndcg_cut.{ndcg_k}",
        "recall." + ",".join(map(str, recall_ks)),
    }
    evaluator = pytrec_eval.RelevanceEvaluator({t: judged[t] for t in cut}, measures)
    theirs = evaluator.evaluate(cut)
    worst, mismatches = 0.0, []
    for turn_id in cut:
        for name, their_name in names.items():
            diff = abs(ours[turn_id][name] - theirs[turn_id][their_name])
            worst = max(worst, diff)
            if diff > tolerance:
                mismatches.append((turn_id, name, ours[turn_id][name], theirs[turn_id][their_name]))
    status = "passed" if not mismatches else "failed"
    return {"status": status, "turns": len(cut), "max_abs_diff": worst, "mismatches": mismatches}
