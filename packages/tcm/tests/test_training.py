"""A few training steps on digits: metrics logged, checkpoint written, resume continues."""

import json

import numpy as np
import pytest
import torch

from marginkit.shared import latest_checkpoint, load_checkpoint
from marginkit.shared.logging import read_metrics
from marginkit.tcm.config import TrainConfig
from marginkit.tcm.data import digits_open_world
from marginkit.tcm.sampler import MPerClassBatchSampler
from marginkit.tcm.train import train, train_embedder


def test_digits_split_is_open_world_with_known_sizes():
    x_train, y_train, x_test, y_test = digits_open_world()
    assert (len(y_train), len(y_test)) == (901, 896)
    assert set(y_train) == {0, 1, 2, 3, 4} and set(y_test) == {5, 6, 7, 8, 9}
    assert x_train.shape[1] == 64 and 0.0 <= x_train.min() and x_train.max() <= 1.0


def test_sampler_gives_m_samples_of_each_chosen_class():
    labels = np.repeat(np.arange(6), [10, 10, 10, 10, 10, 3])
    sampler = MPerClassBatchSampler(labels, m=4, batch_size=12, seed=0)
    for batch in sampler:
        counts = np.bincount(labels[batch], minlength=6)
        assert sorted(counts[counts > 0].tolist()) == [4, 4, 4]
    sampler.set_epoch(1)
    again = MPerClassBatchSampler(labels, m=4, batch_size=12, seed=0)
    again.set_epoch(1)
    assert list(sampler) == list(again)


@pytest.mark.parametrize(
    "base", ["contrastive", "multi_similarity", "proxy_anchor", "normalized_softmax"]
)
def test_training_logs_tcm_counts_and_saves_a_checkpoint(tmp_path, base):
    config = TrainConfig(
        base_loss=base, epochs=1, hidden=(), batch_size=40, m_per_class=8, out_dir=str(tmp_path)
    )
    x, y, _, _ = digits_open_world()
    result = train_embedder(config, x, y)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert len(records) == result.steps == 901 // 40
    for record in records:
        assert record["loss/total"] == pytest.approx(record["loss/base"] + record["loss/tcm"])
        assert 0 <= record["tcm/n_hard_neg"] <= 40 * 39 // 2
    state = load_checkpoint(tmp_path)
    assert state.step == result.steps and state.config["base_loss"] == base


def test_resume_continues_from_the_checkpoint_step(tmp_path):
    x, y, _, _ = digits_open_world()
    first = TrainConfig(epochs=1, hidden=(), batch_size=40, m_per_class=8, out_dir=str(tmp_path))
    train_embedder(first, x, y)
    second = TrainConfig(epochs=2, hidden=(), batch_size=40, m_per_class=8, out_dir=str(tmp_path))
    result = train_embedder(second, x, y)
    steps = [record["step"] for record in read_metrics(tmp_path / "metrics.jsonl")]
    assert steps == list(range(1, 2 * (901 // 40) + 1))
    assert load_checkpoint(latest_checkpoint(tmp_path)).step == result.steps == 2 * (901 // 40)


def test_training_with_tcm_off_still_logs_batch_hard_pairs(tmp_path):
    config = TrainConfig(
        use_tcm=False, epochs=1, hidden=(), batch_size=40, m_per_class=8, out_dir=str(tmp_path)
    )
    x, y, _, _ = digits_open_world()
    train_embedder(config, x, y)
    record = read_metrics(tmp_path / "metrics.jsonl")[0]
    assert "loss/tcm" not in record and "tcm/share_hard_neg" in record


def test_train_evaluates_on_unseen_classes_and_writes_results(tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, hidden=(), batch_size=40, m_per_class=8, out_dir=str(tmp_path))
    summary = train(config)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["num_classes"] == 5 == summary["num_classes"]
    assert 0.0 <= saved["R@1"] <= 1.0 and saved["num_queries"] == 896


def test_resume_mid_epoch_reproduces_the_uninterrupted_run(tmp_path):
    x, y, _, _ = digits_open_world()
    settings = dict(epochs=1, hidden=(), batch_size=40, m_per_class=8, checkpoint_every=5)
    whole = train_embedder(TrainConfig(out_dir=str(tmp_path / "whole"), **settings), x, y)
    interrupted = tmp_path / "cut"
    train_embedder(TrainConfig(out_dir=str(interrupted), **settings), x, y)
    # Remove the final checkpoint: the run looks as if it stopped after step 20.
    import shutil

    shutil.rmtree(latest_checkpoint(interrupted))
    assert load_checkpoint(interrupted).step == 20
    resumed = train_embedder(TrainConfig(out_dir=str(interrupted), **settings), x, y)
    assert resumed.steps == whole.steps == 22
    for name, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
