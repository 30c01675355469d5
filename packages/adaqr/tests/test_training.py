import dataclasses
import math

import pytest
import torch

from marginkit.adaqr import stages, training
from marginkit.adaqr.config import AdaQRConfig, apply_preset
from marginkit.adaqr.data import Turn, read_jsonl, write_turns
from marginkit.adaqr.prompts import completion_text, render_prompt
from marginkit.adaqr.rewriter import check_special_tokens, log_prob, tiny_gpt2, train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    texts = [render_prompt([("What is x?", "X is a thing")], "And y?"), "what does x say about y?"]
    return train_tokenizer(texts)


def test_prompt_tokens_are_a_prefix_of_prompt_plus_completion(tokenizer):
    prompt = render_prompt([("What is x", "X is a thing")], "And y")
    assert not prompt.endswith((" ", "\n")) and prompt.endswith("### Rewrite:")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full = tokenizer(prompt + completion_text("what does x say about y?"), add_special_tokens=False)
    assert full["input_ids"][: len(prompt_ids)] == prompt_ids
    assert tokenizer.bos_token_id not in full["input_ids"]


def test_pad_equal_to_eos_is_refused(tokenizer):
    check_special_tokens(tokenizer)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    broken = dataclasses.make_dataclass("T", [("eos_token_id", int), ("pad_token_id", int)])(3, 3)
    with pytest.raises(ValueError, match="pad token equals its EOS"):
        check_special_tokens(broken)


def test_completion_log_prob_of_an_untrained_uniform_model_counts_eos(tokenizer):
    torch.manual_seed(0)
    model = tiny_gpt2(tokenizer, width=32)
    with torch.no_grad():  # zero output weights: every next token has probability 1/V
        model.lm_head.weight.zero_()
    prompt = render_prompt([], "And y")
    tokens = len(tokenizer(completion_text("x y"), add_special_tokens=False)["input_ids"]) + 1
    expected = -tokens * math.log(len(tokenizer))
    assert log_prob(model, tokenizer, prompt, "x y") == pytest.approx(expected, rel=1e-5)


def test_sft_then_dpo_run_one_step_each_and_resume_by_skipping(embedded_data, tmp_path):
    folder, _ = embedded_data
    config = apply_preset(
        AdaQRConfig(data_dir=str(folder), run_dir=str(tmp_path / "run"), preset="cpu-tiny")
    )
    inputs = stages.load_inputs(config)
    few = [t for t in inputs.turns if t.history][:6]
    write_turns(tmp_path / "few.jsonl", few)
    config = dataclasses.replace(
        config,
        turns_file=str(tmp_path / "few.jsonl"),
        passages_file=str(folder / "passages.jsonl"),
        data_dir=str(tmp_path),  # no splits.json: SFT takes seed_fraction of the turns
        seed_fraction=1.0,
        sft_epochs=1,
        sft_batch_size=8,
        dpo_epochs=1,
        dpo_batch_size=8,
        tiny_width=32,
        monitor_every=1,
        max_new_tokens=4,
        num_candidates=2,
        split="",
    )
    inputs = stages.load_inputs(config)
    sft_dir = training.sft(config, inputs)
    assert (sft_dir / "config.json").exists()
    stages.sample_rules(config, inputs.turns)
    stages.score(config, inputs)
    stages.pairs(config, inputs)
    pairs = read_jsonl(tmp_path / "run" / "pairs.jsonl")
    assert pairs
    dpo_dir = training.dpo(config, inputs)
    log = read_jsonl(dpo_dir / "train_log.jsonl")
    summary = [r for r in log if "train_loss" in r][-1]
    # one step starting at the reference policy: h = 0 for every pair, so the loss is ln 2
    assert summary["train_loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert any("gradent/grad/cosine" in r for r in log)
    assert [r["rewards/margins"] for r in log if "rewards/margins" in r][0] == 0.0
    assert (tmp_path / "run" / "dpo-monitor" / "history.jsonl").exists()
    before = (dpo_dir / "config.json").stat().st_mtime_ns
    assert training.dpo(config, inputs) == dpo_dir  # resume: finished stage is skipped
    assert (dpo_dir / "config.json").stat().st_mtime_ns == before
    rewrites = read_jsonl(training.rewrite(config, inputs, "dpo"))
    assert {r["turn_id"] for r in rewrites} == {t.id for t in few}


def test_sft_without_any_rewrite_is_a_clear_error(tmp_path):
    write_turns(tmp_path / "t.jsonl", [Turn("c", 2, [("q?", "a.")], "q2", answer="a")])
    (tmp_path / "p.jsonl").write_text('{"id": "p", "text": "a"}\n')
    config = AdaQRConfig(
        data_dir=str(tmp_path),
        turns_file=str(tmp_path / "t.jsonl"),
        passages_file=str(tmp_path / "p.jsonl"),
        run_dir=str(tmp_path / "run"),
    )
    with pytest.raises(ValueError, match="no follow-up turn with a gold rewrite"):
        training.seed_turns(config, stages.load_inputs(config))
