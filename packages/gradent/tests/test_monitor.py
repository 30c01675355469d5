"""The entanglement monitor as a plain hook and as a transformers TrainerCallback."""

import json

import numpy as np
import pytest
import torch
from transformers import TrainerCallback, TrainerControl, TrainerState

from marginkit.gradent.data import SentimentPairs, tiny_gpt2
from marginkit.gradent.logprobs import pair_logps
from marginkit.gradent.losses import preference_loss
from marginkit.gradent.monitor import EntanglementMonitor


def _train(steps, monitor=None, lr=0.05):
    model = tiny_gpt2(seed=2)
    batch = SentimentPairs(suffix_length=2, n=4, seed=5).batch()
    with torch.no_grad():
        ref = pair_logps(model, batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(steps):
        if monitor is not None:
            monitor.step(step, model)
        u_w, u_l = pair_logps(model, batch)
        loss = preference_loss(
            "dpo", u_w, u_l, reference_chosen_logps=ref[0], reference_rejected_logps=ref[1]
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def test_training_with_monitor_gives_bit_identical_parameters():
    probe = SentimentPairs(suffix_length=8, n=3, seed=9).batch()
    plain = _train(5)
    watched = _train(5, EntanglementMonitor(probe, every=2, strategy="loop"))
    for a, b in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(a, b)


def test_hook_records_every_interval_and_saves_trajectories(tmp_path):
    probe = SentimentPairs(suffix_length=2, n=3, seed=9).batch()
    monitor = EntanglementMonitor(probe, every=2, output_dir=tmp_path)
    _train(5, monitor)
    assert monitor.steps == [0, 2, 4]
    first = monitor.history[0]
    # Reference = snapshot at the first record: zero reward and all ratios 0 at step 0.
    assert first["gradent/rewards/chosen"] == 0.0
    shares = [v for k, v in first.items() if k.startswith("gradent/case/")]
    assert sum(shares) == pytest.approx(1.0)
    folder = monitor.save()
    data = np.load(folder / "trajectories.npz")
    assert data["chosen"].shape == (3, 3)
    lines = (folder / "history.jsonl").read_text().splitlines()
    assert json.loads(lines[1])["step"] == 2.0
    assert monitor.plot().stat().st_size > 0


def test_callback_records_on_step_end_with_the_model_it_is_passed():
    probe = SentimentPairs(suffix_length=0, n=2, seed=1).batch()
    monitor = EntanglementMonitor(probe, every=3)
    assert isinstance(monitor, TrainerCallback)
    model, state, control = tiny_gpt2(seed=0), TrainerState(), TrainerControl()
    monitor.on_train_begin(None, state, control, model=model)
    for step in (1, 2, 3):
        state.global_step = step
        monitor.on_step_end(None, state, control, model=model)
    assert monitor.steps == [0, 3]


def test_zero_interval_is_rejected():
    probe = SentimentPairs(suffix_length=0, n=2, seed=1).batch()
    with pytest.raises(ValueError, match="every"):
        EntanglementMonitor(probe, every=0)
