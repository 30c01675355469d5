import dataclasses
import json

import pytest

from marginkit.adaqr import stages
from marginkit.adaqr.config import AdaQRConfig, apply_preset
from marginkit.adaqr.data import read_jsonl


@pytest.fixture()
def config(embedded_data, tmp_path):
    folder, _ = embedded_data
    return apply_preset(
        AdaQRConfig(data_dir=str(folder), run_dir=str(tmp_path / "run"), preset="cpu-tiny")
    )


def test_rules_score_pairs_pipeline_resumes_without_redoing_turns(config):
    inputs = stages.load_inputs(config)
    pool = inputs.split(config.data_dir, "seed")
    path = stages.sample_rules(config, pool)
    records = read_jsonl(path)
    assert records and all(r["candidates"][0] for r in records)
    assert len(records) == sum(1 for t in pool if t.history)  # first turns never rewritten

    # Keep only half the scored turns, as if the stage had been interrupted.
    scored_path = stages.score(config, inputs)
    manifest = json.loads((scored_path.parent / "manifests" / "score.json").read_text())
    # the cpu-tiny preset's BM25 settings, recorded with the output they produced
    assert manifest["retriever"]["method"] == "lucene"
    assert (manifest["retriever"]["k1"], manifest["retriever"]["b"]) == (0.9, 0.4)
    assert manifest["config"]["k"] == 5 and manifest["output"] == str(scored_path)
    full = read_jsonl(scored_path)
    kept = full[: len(full) // 2]
    scored_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    calls = []

    class CountingScorer:
        def score_turn(self, turn, candidates):
            calls.append(turn.id)
            return real.score_turn(turn, candidates)

    real = stages.RewardScorer(
        stages.make_retriever(config, inputs.passages), stages.make_reader(config, inputs.passages)
    )
    stages.score(config, inputs, CountingScorer())
    assert sorted(calls) == sorted(r["turn_id"] for r in full[len(full) // 2 :])
    assert [r["turn_id"] for r in read_jsonl(scored_path)] == [r["turn_id"] for r in full]

    pairs_path, stats = stages.pairs(config, inputs)
    pairs = read_jsonl(pairs_path)
    assert stats["pairs"] == len(pairs) > 0
    assert all(p["chosen_loss"] < p["rejected_loss"] for p in pairs)
    assert all(p["prompt"].endswith("### Rewrite:") for p in pairs)


def test_missing_input_files_are_reported_with_the_fix(tmp_path):
    config = AdaQRConfig(data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="make-data"):
        stages.load_inputs(config)


def test_score_without_candidates_says_which_stage_to_run(config):
    with pytest.raises(FileNotFoundError, match="run `sample` first"):
        stages.score(config, stages.load_inputs(config))


def test_gold_rewrite_beats_original_question_under_bm25(config):
    inputs = stages.load_inputs(config)
    follow_ups = [t for t in inputs.turns if t.history]
    rows = stages.evaluate_strategies(
        stages.make_retriever(config, inputs.passages),
        follow_ups,
        stages.baseline_queries(follow_ups),
    )
    mrr = {row["query"]: row["mrr"] for row in rows}
    assert mrr["gold-rewrite"] > mrr["first+q"] > mrr["original"]


def test_presets_apply_only_to_fields_left_at_default():
    config = apply_preset(AdaQRConfig(preset="cpu-tiny", bm25_k1=1.5))
    assert config.bm25_k1 == 1.5 and config.bm25_b == 0.4
    assert apply_preset(AdaQRConfig(preset="marginal")).aggregation == "log_marginal"
    with pytest.raises(ValueError, match="preset"):
        apply_preset(dataclasses.replace(AdaQRConfig(), preset="nope"))
