"""The monitor inside a real transformers.Trainer and TRL's DPOTrainer (tiny GPT-2, 3 steps).

A second callback snapshots the weights the trainer passes at each event; afterwards the
probe's log-probs and gradient cosines are recomputed from every snapshot the naive way
(one backward per response, flattened ``.grad``) and compared with what the monitor logged.
"""

import copy

import pytest
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from marginkit.gradent.data import EOS, SentimentPairs, tiny_gpt2
from marginkit.gradent.logprobs import side_logps
from marginkit.gradent.monitor import EntanglementMonitor


class Snapshots(TrainerCallback):
    """Copies of the model weights at train begin and at every step end."""

    def __init__(self):
        self.states = {}

    def _keep(self, state, model):
        self.states[int(state.global_step)] = copy.deepcopy(model.state_dict())

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._keep(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self._keep(state, model)


def _naive_probe(weights, probe):
    """Mean u_w, mean u_l and mean cosine from two plain backward passes per pair."""
    model = tiny_gpt2(seed=0)
    model.load_state_dict(weights)
    model.eval()
    u_w, u_l, cosines = [], [], []
    for row in range(len(probe)):
        flats, values = [], []
        for side in (probe.chosen, probe.rejected):
            model.zero_grad()
            u, _ = side_logps(model, side.select(slice(row, row + 1)))
            u.sum().backward()
            flats.append(torch.cat([p.grad.flatten() for p in model.parameters()]).double())
            values.append(u.item())
        u_w.append(values[0])
        u_l.append(values[1])
        cosines.append((flats[0] @ flats[1] / (flats[0].norm() * flats[1].norm())).item())
    n = len(probe)
    return sum(u_w) / n, sum(u_l) / n, sum(cosines) / n


def _check_against_snapshots(monitor, snapshots, probe, steps):
    assert monitor.steps == steps
    for record, step in zip(monitor.history, steps, strict=True):
        mean_w, mean_l, mean_cos = _naive_probe(snapshots.states[step], probe)
        assert record["gradent/logp/chosen"] == pytest.approx(mean_w, rel=1e-5)
        assert record["gradent/logp/rejected"] == pytest.approx(mean_l, rel=1e-5)
        assert record["gradent/grad/cosine"] == pytest.approx(mean_cos, abs=1e-5)
    # The weights moved, so the records differ between steps.
    assert monitor.history[0]["gradent/logp/chosen"] != monitor.history[-1]["gradent/logp/chosen"]


def _arguments(tmp_path, cls=TrainingArguments, **extra):
    return cls(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=5e-2,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        **extra,
    )


def test_monitor_in_a_transformers_trainer_logs_what_the_weights_give(tmp_path):
    train = SentimentPairs(suffix_length=2, n=12, seed=1).batch().chosen
    rows = [
        {
            "input_ids": train.input_ids[i],
            "attention_mask": train.attention_mask[i],
            "labels": torch.where(train.response_mask[i] > 0, train.input_ids[i], -100),
        }
        for i in range(train.input_ids.shape[0])
    ]
    probe = SentimentPairs(suffix_length=2, n=3, seed=7).batch()
    model = tiny_gpt2(seed=0)
    trainer = Trainer(model=model, args=_arguments(tmp_path), train_dataset=rows)
    snapshots = Snapshots()
    trainer.add_callback(snapshots)
    monitor = EntanglementMonitor(probe, loss="dpo", every=1).attach(trainer)
    trainer.train()
    _check_against_snapshots(monitor, snapshots, probe, [0, 1, 2, 3])
    logged = [entry for entry in trainer.state.log_history if "gradent/grad/cosine" in entry]
    assert [entry["gradent/grad/cosine"] for entry in logged] == [
        record["gradent/grad/cosine"] for record in monitor.history[1:]
    ]


def _word_tokenizer():
    """A word-level tokenizer over the 96 ids of the sentiment data ("w0" ... "w95")."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(96)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="w0", bos_token="w1", eos_token=f"w{EOS}", unk_token="w0"
    )


def test_monitor_in_trl_dpo_trainer_uses_its_reference_and_logs_what_the_weights_give(tmp_path):
    import datasets
    from trl import DPOConfig, DPOTrainer

    data = SentimentPairs(suffix_length=2, n=8, seed=2)

    def text(ids):
        return "".join(f" w{i}" for i in ids)

    table = datasets.Dataset.from_list(
        [
            {"prompt": text(p).strip(), "chosen": text(c + [EOS]), "rejected": text(r + [EOS])}
            for p, c, r in zip(data.prompts, data.chosen, data.rejected, strict=True)
        ]
    )
    probe = SentimentPairs(suffix_length=2, n=3, seed=7).batch()
    model = tiny_gpt2(seed=0)
    # bf16=False: TRL turns bf16 autocast on by default, and the monitor then measures (as it
    # should) the autocast forward the trainer runs, which the float32 recomputation is not.
    arguments = _arguments(tmp_path, DPOConfig, beta=0.1, bf16=False)
    trainer = DPOTrainer(
        model=model,
        ref_model=tiny_gpt2(seed=0),  # built from the config: nothing to download
        args=arguments,
        train_dataset=table,
        processing_class=_word_tokenizer(),
    )
    snapshots = Snapshots()
    trainer.add_callback(snapshots)
    monitor = EntanglementMonitor(probe, loss="dpo", every=1, loss_kwargs={"beta": 0.1})
    monitor.attach(trainer)
    trainer.train()
    assert monitor.reference_source == "reference model"
    # TRL turns gradient checkpointing on, whose input hook breaks vmap: one fallback, then loop.
    assert monitor.strategy == "loop"
    _check_against_snapshots(monitor, snapshots, probe, [0, 1, 2, 3])
    # The reference is the untrained copy: rewards are zero at step 0 and beta (u - r) later.
    start_w, _, _ = _naive_probe(snapshots.states[0], probe)
    last_w, _, _ = _naive_probe(snapshots.states[3], probe)
    assert monitor.history[0]["gradent/rewards/chosen"] == pytest.approx(0.0, abs=1e-6)
    assert monitor.history[-1]["gradent/rewards/chosen"] == pytest.approx(
        0.1 * (last_w - start_w), rel=1e-4, abs=1e-7
    )
