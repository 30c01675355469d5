"""The trainer on tiny pipelines: loss goes down, DPO starts at ln 2, resume, round trips."""

import json
import math
import subprocess
import sys

import pytest
import torch

from marginkit.mapo.config import TrainConfig
from marginkit.mapo.data import JsonlPairs, collate_pairs
from marginkit.mapo.train import Trainer
from marginkit.mapo.weights import LORA_WEIGHT_NAME, trained_pipeline


def _config(tmp_path, jsonl_data, **overrides):
    settings = {
        "data_format": "jsonl",
        "data_path": str(jsonl_data),
        "resolution": 16,
        "train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "max_train_steps": 2,
        "learning_rate": 1e-3,
        "checkpointing_steps": 0,
        "output_dir": str(tmp_path / "run"),
        "resume": False,
    }
    settings.update(overrides)
    return TrainConfig(**settings)


def _fixed_batch(jsonl_data):
    dataset = JsonlPairs(jsonl_data, resolution=16, random_flip=False)
    return collate_pairs([dataset[index] for index in range(len(dataset))])


def _evaluate(trainer, batch):
    """Objective on all pairs, averaged over four fixed noise draws."""
    with torch.no_grad():
        losses = [
            trainer.compute_loss(batch, torch.Generator().manual_seed(seed)).loss.loss.item()
            for seed in range(4)
        ]
    return sum(losses) / len(losses)


@pytest.mark.parametrize(("objective", "mode"), [("mapo", "full"), ("sft", "full")])
def test_training_steps_lower_the_loss_on_fixed_noise(
    tmp_path, jsonl_data, tiny_sdxl, objective, mode
):
    config = _config(
        tmp_path,
        jsonl_data,
        objective=objective,
        mode=mode,
        max_train_steps=16,
        random_flip=False,
    )
    trainer = Trainer(config, parts=tiny_sdxl)
    batch = _fixed_batch(jsonl_data)
    before = _evaluate(trainer, batch)
    result = trainer.train()
    after = _evaluate(trainer, batch)
    assert result.global_step == 16 and len(result.history) == 16
    assert after < before
    assert all(math.isfinite(record["loss"]) for record in result.history)


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_dpo_starts_at_ln2_with_half_accuracy(tmp_path, jsonl_data, tiny_sdxl, mode):
    config = _config(tmp_path, jsonl_data, objective="dpo", mode=mode, max_train_steps=2)
    trainer = Trainer(config, parts=tiny_sdxl)
    reference_before = None
    if mode == "full":
        reference_before = {k: v.clone() for k, v in trainer.reference_unet.state_dict().items()}
    history = trainer.train().history
    # LoRA's gaussian init has B = 0 and the full-mode copy is fresh: the model is its reference.
    assert history[0]["loss"] == pytest.approx(math.log(2.0), abs=1e-5)
    assert history[0]["accuracy/implicit"] == 0.5
    assert history[0]["mse/chosen"] == pytest.approx(history[0]["mse/reference_chosen"], rel=1e-5)
    if mode == "full":
        after = trainer.reference_unet.state_dict()
        assert all(torch.equal(reference_before[k], after[k]) for k in after)
        assert history[1]["mse/chosen"] != pytest.approx(history[1]["mse/reference_chosen"])


def test_sd15_shaped_pipeline_trains_without_added_conditioning(tmp_path, jsonl_data, tiny_sd15):
    result = Trainer(_config(tmp_path, jsonl_data, objective="mapo"), parts=tiny_sd15).train()
    assert result.global_step == 2
    assert {"mse/chosen", "mse/rejected", "margin/mean", "margin/saturated_fraction"} <= set(
        result.history[0]
    )


def test_warmup_schedule_is_counted_in_optimizer_steps(tmp_path, jsonl_data, tiny_sd15):
    config = _config(
        tmp_path,
        jsonl_data,
        lr_scheduler="constant_with_warmup",
        lr_warmup_steps=2,
        max_train_steps=3,
        gradient_accumulation_steps=2,
    )
    history = Trainer(config, parts=tiny_sd15).train().history
    # two micro-batches per optimizer step; warm-up is linear over 2 optimizer steps
    assert [record["lr"] for record in history] == pytest.approx([5e-4, 1e-3, 1e-3])


def test_resume_continues_at_the_same_step_and_data_position(tmp_path, jsonl_data, tiny_sdxl):
    import copy

    parts_a, parts_b = copy.deepcopy(tiny_sdxl), copy.deepcopy(tiny_sdxl)
    # 8 pairs / batch 2 = 4 batches per epoch: stopping at 3 and going to 6 crosses an epoch.
    straight = Trainer(
        _config(tmp_path / "a", jsonl_data, max_train_steps=6, mode="lora"), parts=parts_a
    )
    straight.train()
    first = Trainer(
        _config(tmp_path / "b", jsonl_data, max_train_steps=3, mode="lora", checkpointing_steps=3),
        parts=copy.deepcopy(tiny_sdxl),
    )
    first.train()
    resumed = Trainer(
        _config(tmp_path / "b", jsonl_data, max_train_steps=6, mode="lora", resume=True),
        parts=parts_b,
    )
    result = resumed.train()
    assert result.history and len(result.history) == 3  # steps 4, 5, 6 only
    assert result.global_step == 6
    expected, actual = straight.trainable_state(), resumed.trainable_state()
    assert set(expected) == set(actual) and len(expected) > 0
    for name in expected:
        assert torch.allclose(expected[name], actual[name], atol=1e-6), name


def test_lora_weights_load_with_diffusers_and_give_identical_outputs(
    tmp_path, jsonl_data, tiny_sdxl, tiny_sdxl_master
):
    import copy

    trainer = Trainer(
        _config(tmp_path, jsonl_data, mode="lora", max_train_steps=2), parts=tiny_sdxl
    )
    trainer.train()
    assert (tmp_path / "run" / LORA_WEIGHT_NAME).is_file()
    pipeline = trained_pipeline(copy.deepcopy(tiny_sdxl_master), tmp_path / "run")
    _assert_same_prediction(trainer.parts.unet, pipeline.unet, tiny_sdxl_master)


def test_full_unet_saves_under_unet_folder_and_reloads_identically(
    tmp_path, jsonl_data, tiny_sdxl, tiny_sdxl_master
):
    import copy

    trainer = Trainer(
        _config(tmp_path, jsonl_data, mode="full", max_train_steps=2), parts=tiny_sdxl
    )
    trainer.train()
    pipeline = trained_pipeline(copy.deepcopy(tiny_sdxl_master), tmp_path / "run")
    _assert_same_prediction(trainer.parts.unet, pipeline.unet, tiny_sdxl_master)


def _assert_same_prediction(trained, loaded, base):
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=generator)
    hidden = torch.randn(1, 16, 64, generator=generator)
    added = {
        "text_embeds": torch.randn(1, 32, generator=generator),
        "time_ids": torch.tensor([[16.0, 16.0, 0.0, 0.0, 16.0, 16.0]]),
    }
    with torch.no_grad():
        args = (sample, torch.tensor([400]), hidden)
        expected = trained(*args, added_cond_kwargs=added).sample
        got = loaded(*args, added_cond_kwargs=added).sample
        untrained = base.unet(*args, added_cond_kwargs=added).sample
    assert torch.allclose(expected, got, atol=1e-5)
    assert not torch.allclose(expected, untrained, atol=1e-5)  # training did change the UNet


def test_nonfinite_loss_raises_by_default(tmp_path, jsonl_data, tiny_sd15):
    trainer = Trainer(_config(tmp_path, jsonl_data), parts=tiny_sd15)
    with torch.no_grad():
        next(p for p in trainer.parts.unet.parameters() if p.requires_grad).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        trainer.train()


def test_bad_settings_are_named(tmp_path, jsonl_data, tiny_sd15):
    with pytest.raises(ValueError, match="train_batch_size"):
        Trainer(_config(tmp_path, jsonl_data, train_batch_size=0), parts=tiny_sd15)
    with pytest.raises(ValueError, match="full batch"):
        Trainer(_config(tmp_path, jsonl_data, train_batch_size=16), parts=tiny_sd15)
    with pytest.raises(ValueError, match="data_path"):
        Trainer(_config(tmp_path, jsonl_data, data_path=""), parts=tiny_sd15)


# accelerate keeps one precision per process (its AcceleratorState is a singleton set by
# the first Accelerator), and earlier tests here already made an fp32 one. The bf16 run
# therefore happens in a fresh Python process, which reports the dtypes it found as JSON.
_BF16_CHILD = """
import json, math, sys
import torch
torch.set_num_threads(1)
from marginkit.mapo.config import TrainConfig
from marginkit.mapo.tiny import tiny_parts
from marginkit.mapo.train import Trainer

data, out = sys.argv[1], sys.argv[2]
config = TrainConfig(
    data_format="jsonl", data_path=data, resolution=16, train_batch_size=2,
    gradient_accumulation_steps=1, max_train_steps=1, learning_rate=1e-3,
    checkpointing_steps=0, output_dir=out, resume=False, mode="lora", objective="dpo",
    mixed_precision="bf16", gradient_checkpointing=True, cpu=True,
)
trainer = Trainer(config, parts=tiny_parts(sdxl=True, seed=0))
history = trainer.train().history
unet = trainer.parts.unet
report = {
    "trainable": sorted({str(p.dtype) for p in unet.parameters() if p.requires_grad}),
    "frozen": sorted({str(p.dtype) for p in unet.parameters() if not p.requires_grad}),
    "vae": sorted({str(p.dtype) for p in trainer.parts.vae.parameters()}),
    "checkpointing": bool(unet.is_gradient_checkpointing),
    "finite_loss": math.isfinite(history[0]["loss"]),
}
print("REPORT " + json.dumps(report))
"""


def test_bf16_lora_keeps_adapters_and_vae_fp32_with_gradient_checkpointing(tmp_path, jsonl_data):
    child = subprocess.run(
        [sys.executable, "-c", _BF16_CHILD, str(jsonl_data), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    line = next(row for row in child.stdout.splitlines() if row.startswith("REPORT "))
    report = json.loads(line.removeprefix("REPORT "))
    assert report == {
        "trainable": ["torch.float32"],
        "frozen": ["torch.bfloat16"],
        "vae": ["torch.float32"],
        "checkpointing": True,
        "finite_loss": True,
    }
