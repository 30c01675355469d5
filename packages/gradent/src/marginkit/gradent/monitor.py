"""Watch gradient entanglement during training: a transformers callback and a plain hook.

:class:`EntanglementMonitor` fixes a probe set of pairs, and every ``every`` steps measures
on it (with :func:`~marginkit.gradent.measure.measure_pairs`) the chosen and rejected
log-probs, gradient cosines, norms, condition ratios and the predicted case fractions for
the chosen loss. It is a ``transformers.TrainerCallback`` (add it to any Trainer, TRL's
``DPOTrainer`` included: it reads only the ``model`` the trainer passes), and a plain hook
for a hand-written loop (``monitor.step(step, model)``). It never touches ``.grad``,
optimiser state, the train/eval mode (restored) or the global RNG.

Alerts: ``margin_up_chosen_down`` (mean margin above its first record while the mean chosen
log-prob is below it) and ``both_down`` (both mean log-probs below their first record);
``stop_on_alert=True`` sets ``control.should_training_stop``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from transformers import TrainerCallback

from marginkit.gradent.logprobs import PairBatch, pair_logps
from marginkit.gradent.measure import attach_prediction, measure_pairs, summarize

logger = logging.getLogger(__name__)


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


class EntanglementMonitor(TrainerCallback):
    """Record entanglement statistics of a fixed probe set during training.

    Parameters
    ----------
    probe:
        The probe pairs (a :class:`~marginkit.gradent.logprobs.PairBatch`), fixed for the run.
    loss:
        Loss name of :data:`~marginkit.gradent.losses.LOSS_NAMES` whose weights give the
        predicted changes; ``loss_kwargs`` are its hyperparameters (``beta``...).
    params:
        Parameter set of the gradients (``"trainable"``: the adapters under peft).
    every:
        Record every ``every`` optimiser steps (and at step 0).
    reference:
        Reference log-probs ``(r_w, r_l)`` of the probe, or a reference model; when None,
        a peft model's adapter is disabled to compute them, else the model's own log-probs at
        train begin are used (a snapshot, logged as such).
    learning_rate:
        Step size of the first-order predictions (per unit when 1).
    output_dir:
        Where :meth:`save` and :meth:`plot` write by default.
    """

    def __init__(
        self,
        probe: PairBatch,
        loss: str = "dpo",
        params: Any = "trainable",
        every: int = 50,
        reference: tuple[Tensor, Tensor] | torch.nn.Module | None = None,
        learning_rate: float = 1.0,
        loss_kwargs: dict[str, Any] | None = None,
        strategy: str = "auto",
        chunk_size: int | None = None,
        model: torch.nn.Module | None = None,
        output_dir: str | Path = "outputs/gradent/monitor",
        stop_on_alert: bool = False,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        if len(probe) == 0:
            raise ValueError("the probe set holds no pairs")
        self.probe = probe
        self.loss = loss
        self.loss_kwargs = dict(loss_kwargs or {})
        self.params = params
        self.every = every
        self.learning_rate = learning_rate
        self.strategy = strategy
        self.chunk_size = chunk_size
        self.model = model
        self.output_dir = Path(output_dir)
        self.stop_on_alert = stop_on_alert
        self.history: list[dict[str, float]] = []
        self.alerts: list[dict[str, Any]] = []
        self.chosen_trajectory: list[np.ndarray] = []
        self.rejected_trajectory: list[np.ndarray] = []
        self.steps: list[int] = []
        self.reference_source = "given"
        self._reference_model = reference if isinstance(reference, torch.nn.Module) else None
        self.reference: tuple[Tensor, Tensor] | None = (
            None if isinstance(reference, torch.nn.Module) else reference
        )
        self._trainer: Any = None

    # -- reference ---------------------------------------------------------------------
    @torch.no_grad()
    def _probe_logps(self, model: torch.nn.Module) -> tuple[Tensor, Tensor]:
        was_training = model.training
        model.eval()
        try:
            chosen, rejected = pair_logps(model, self.probe.to(_device_of(model)))
        finally:
            model.train(was_training)
        return chosen.double().cpu(), rejected.double().cpu()

    def _ensure_reference(self, model: torch.nn.Module) -> None:
        if self.reference is not None:
            return
        if self._reference_model is not None:
            self.reference = self._probe_logps(self._reference_model)
            self.reference_source = "reference model"
        elif hasattr(model, "disable_adapter") and hasattr(model, "peft_config"):
            with model.disable_adapter():
                self.reference = self._probe_logps(model)
            self.reference_source = "peft adapter disabled"
        else:
            self.reference = self._probe_logps(model)
            self.reference_source = "snapshot at first record"
        logger.info("entanglement monitor reference: %s", self.reference_source)

    # -- recording ---------------------------------------------------------------------
    def step(self, step: int, model: torch.nn.Module | None = None) -> dict[str, float] | None:
        """Plain hook: record when ``step`` is a multiple of ``every``; returns the record."""
        if step % self.every != 0:
            return None
        return self.record(step, model)

    def record(self, step: int, model: torch.nn.Module | None = None) -> dict[str, float]:
        """Measure the probe now and append one record to :attr:`history`."""
        model = model if model is not None else self.model
        if model is None:
            raise ValueError("no model: pass one to record/step or to the constructor")
        if any(hasattr(p, "ds_id") for p in model.parameters()):
            raise ValueError("sharded parameters (DeepSpeed ZeRO-3) cannot be measured per pair")
        self._ensure_reference(model)
        probe = self.probe.to(_device_of(model))
        stats = measure_pairs(
            model, probe, params=self.params, strategy=self.strategy, chunk_size=self.chunk_size
        )
        if self.strategy == "auto" and stats.strategy_used == "loop":
            # vmap failed once (logged by measure_pairs): do not retry it at every record.
            self.strategy = "loop"
        reference = tuple(r.to(stats.chosen_logps.device) for r in self.reference)
        attach_prediction(stats, self.loss, reference, self.learning_rate, **self.loss_kwargs)
        metrics = summarize(stats)
        chosen, rejected = stats.chosen_logps.cpu(), stats.rejected_logps.cpu()
        beta = float(self.loss_kwargs.get("beta", 0.1))
        ratio_w, ratio_l = chosen - reference[0].cpu(), rejected - reference[1].cpu()
        metrics["gradent/rewards/chosen"] = (beta * ratio_w).mean().item()
        metrics["gradent/rewards/rejected"] = (beta * ratio_l).mean().item()
        metrics["gradent/rewards/accuracy"] = (ratio_w > ratio_l).double().mean().item()
        margin = (chosen - rejected).mean().item()
        metrics["gradent/logp/margin"] = margin
        if self.chosen_trajectory:
            first_w = torch.from_numpy(self.chosen_trajectory[0])
            first_l = torch.from_numpy(self.rejected_trajectory[0])
            metrics["gradent/drift/chosen_below_start"] = (chosen < first_w).double().mean().item()
            metrics["gradent/drift/rejected_above_start"] = (
                (rejected > first_l).double().mean().item()
            )
        metrics["gradent/config/beta"] = beta
        metrics["gradent/config/learning_rate"] = float(self.learning_rate)
        metrics["step"] = float(step)
        self.history.append(metrics)
        self.chosen_trajectory.append(chosen.numpy())
        self.rejected_trajectory.append(rejected.numpy())
        self.steps.append(int(step))
        self._check_alerts(step)
        return metrics

    def _check_alerts(self, step: int) -> None:
        if len(self.history) < 2:
            return
        first, last = self.history[0], self.history[-1]
        chosen_down = last["gradent/logp/chosen"] < first["gradent/logp/chosen"]
        rejected_down = last["gradent/logp/rejected"] < first["gradent/logp/rejected"]
        margin_up = last["gradent/logp/margin"] > first["gradent/logp/margin"]
        for name, fired in (
            ("margin_up_chosen_down", margin_up and chosen_down),
            ("both_down", chosen_down and rejected_down),
        ):
            if fired:
                self.alerts.append({"step": step, "alert": name})
                logger.warning("entanglement alert at step %d: %s", step, name)

    # -- transformers callback ---------------------------------------------------------
    def attach(self, trainer: Any) -> EntanglementMonitor:
        """Add to a Trainer; takes its ``ref_model`` (TRL) and logs through ``trainer.log``."""
        self._trainer = trainer
        if self.reference is None and getattr(trainer, "ref_model", None) is not None:
            self._reference_model = trainer.ref_model
        trainer.add_callback(self)
        return self

    def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        if model is not None:
            self.record(int(state.global_step), model)

    def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        if model is None or state.global_step % self.every != 0:
            return control
        before = len(self.alerts)
        metrics = self.record(int(state.global_step), model)
        if self._trainer is not None:
            self._trainer.log({k: v for k, v in metrics.items() if k != "step"})
        if self.stop_on_alert and len(self.alerts) > before:
            control.should_training_stop = True
        return control

    # -- output ------------------------------------------------------------------------
    def save(self, output_dir: str | Path | None = None) -> Path:
        """Write ``history.jsonl``, ``trajectories.npz`` and ``alerts.json``; returns the folder."""
        folder = Path(output_dir) if output_dir is not None else self.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "history.jsonl", "w", encoding="utf-8") as handle:
            for record in self.history:
                handle.write(json.dumps(record) + "\n")
        np.savez(
            folder / "trajectories.npz",
            steps=np.asarray(self.steps),
            chosen=np.stack(self.chosen_trajectory) if self.steps else np.zeros((0, 0)),
            rejected=np.stack(self.rejected_trajectory) if self.steps else np.zeros((0, 0)),
        )
        config = {"loss": self.loss, **self.loss_kwargs, "reference": self.reference_source}
        (folder / "alerts.json").write_text(json.dumps({"config": config, "alerts": self.alerts}))
        return folder

    def plot(self, path: str | Path | None = None) -> Path:
        """PNG of the mean chosen/rejected log-prob and mean cosine over the records."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path) if path is not None else self.output_dir / "trajectories.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        steps = self.steps
        figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
        for name, color in (("chosen", "tab:green"), ("rejected", "tab:red")):
            left.plot(
                steps, [r[f"gradent/logp/{name}"] for r in self.history], color=color, label=name
            )
        left.set_xlabel("step")
        left.set_ylabel("mean log-prob")
        left.legend()
        right.plot(steps, [r["gradent/grad/cosine"] for r in self.history], color="tab:blue")
        right.axhline(0.0, color="grey", linewidth=0.5)
        right.set_xlabel("step")
        right.set_ylabel("mean cos(g_w, g_l)")
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path


# A transformers-style name for the same class.
EntanglementCallback = EntanglementMonitor
