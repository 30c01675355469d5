"""TRL's DPOTrainer with marginkit-gradent's loss family and in-step monitor logging.

:class:`AdaQRDPOTrainer` keeps everything of TRL's trainer (tokenisation, collator,
reference handling, accelerate) and changes two things:

* with ``gradent_loss`` set to a name of ``marginkit.gradent.losses.LOSS_NAMES``, the loss
  of a batch is ``preference_loss(name, u_w, u_l, reference_chosen_logps=r_w,
  reference_rejected_logps=r_l, chosen_lengths=|y_w|, rejected_lengths=|y_l|, beta=beta)``
  on the summed completion log-probs

  .. math:: u = \\sum_{j \\in \\text{completion}} \\log \\pi_\\theta(y_j \\mid x, y_{<j}),

  computed here from TRL's collated batch (``input_ids``, ``attention_mask`` and
  ``completion_mask`` of shape ``(2 * batch, length)``, chosen rows first); with
  ``gradent_loss=None`` TRL's own ``loss_type`` is used unchanged;
* the entanglement monitor's record of a step is merged into the trainer's own log record
  of that step. A callback that calls ``trainer.log`` from ``on_step_end`` makes the
  callback handler clear ``control.should_log``, so that step's ``loss`` was never logged
  (and the next record averaged two steps); merging keeps one record per step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from trl import DPOTrainer

from marginkit.adaqr.config import AdaQRConfig

logger = logging.getLogger(__name__)


def completion_logps(model: Any, inputs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Summed completion-token log-probs and completion lengths of a collated DPO batch.

    Parameters
    ----------
    model:
        A causal LM.
    inputs:
        ``input_ids``, ``attention_mask``, ``completion_mask``, each ``(rows, length)``.

    Returns
    -------
    logps, lengths:
        ``(rows,)`` each: :math:`\\sum_j \\log \\pi(y_j \\mid x, y_{<j})` over the tokens
        with ``completion_mask`` 1 (EOS included), and their count.
    """
    input_ids, mask = inputs["input_ids"], inputs["completion_mask"]
    logits = model(input_ids=input_ids, attention_mask=inputs["attention_mask"]).logits
    # Limitation: the full (rows, length, vocab) logits are materialised; TRL's fused head
    # avoids that for large vocabularies.
    token_logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logps = token_logps.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    target_mask = mask[:, 1:].to(token_logps.dtype)
    return (token_logps * target_mask).sum(dim=1), target_mask.sum(dim=1)


class AdaQRDPOTrainer(DPOTrainer):
    """DPOTrainer whose loss may come from marginkit-gradent (see the module docstring).

    Parameters
    ----------
    *args, **kwargs:
        Those of ``trl.DPOTrainer``; ``args.beta`` is the loss's ``beta``.
    gradent_loss:
        A name of marginkit-gradent's ``LOSS_NAMES`` (``"dpo"``, ``"ipo"``, ``"simpo"``...),
        or None for TRL's ``loss_type``.
    monitor:
        An ``EntanglementMonitor`` added as a callback; its records are logged with the
        trainer's record of the same step.
    """

    def __init__(
        self, *args: Any, gradent_loss: str | None = None, monitor: Any = None, **kwargs: Any
    ) -> None:
        from marginkit.gradent.losses import LOSS_NAMES

        if gradent_loss is not None and gradent_loss not in LOSS_NAMES:
            raise ValueError(
                f"unknown marginkit-gradent loss {gradent_loss!r}; choose one of "
                f"{', '.join(LOSS_NAMES)}"
            )
        super().__init__(*args, **kwargs)
        self.gradent_loss = gradent_loss
        self.monitor = monitor
        self._merged_monitor_records = 0
        if monitor is not None:
            self.add_callback(monitor)

    def _reference_logps(self, model: Any, inputs: dict[str, Tensor]) -> Tensor:
        if "ref_chosen_logps" in inputs:
            return torch.cat([inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]])
        with torch.no_grad():
            if self.ref_model is not None:
                return completion_logps(self.ref_model, inputs)[0]
            unwrapped = self.accelerator.unwrap_model(model)
            if not hasattr(unwrapped, "disable_adapter"):
                raise ValueError(
                    "no reference: pass ref_model, train a peft adapter, or precompute the "
                    "reference log-probs"
                )
            with unwrapped.disable_adapter():
                return completion_logps(model, inputs)[0]

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if self.gradent_loss is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if return_outputs:
            raise ValueError("the marginkit-gradent loss path does not return model outputs")
        from marginkit.gradent.losses import preference_loss

        logps, lengths = completion_logps(model, inputs)
        reference = self._reference_logps(model, inputs).to(logps.dtype)
        chosen, rejected = logps.chunk(2)
        chosen_lengths, rejected_lengths = lengths.chunk(2)
        reference_chosen, reference_rejected = reference.chunk(2)
        out = preference_loss(
            self.gradent_loss,
            chosen,
            rejected,
            reference_chosen_logps=reference_chosen,
            reference_rejected_logps=reference_rejected,
            chosen_lengths=chosen_lengths,
            rejected_lengths=rejected_lengths,
            beta=self.beta,
        )
        mode = "train" if self.model.training else "eval"
        for name, value in out.metrics.items():
            self._metrics[mode][name].append(value)
        return out.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the monitor's record of the current step (if any, once) to ``logs``."""
        monitor = self.monitor
        if monitor is not None and len(monitor.history) > self._merged_monitor_records:
            latest = monitor.history[-1]
            if int(latest.get("step", -1)) == self.state.global_step:
                logs.update({k: v for k, v in latest.items() if k != "step"})
            self._merged_monitor_records = len(monitor.history)
        super().log(logs, start_time)


def resolve_loss(loss_type: str) -> tuple[str | None, str]:
    """Split ``config.loss_type`` into (marginkit-gradent loss or None, TRL loss_type).

    A name of marginkit-gradent's ``LOSS_NAMES`` (``dpo``, ``ipo``, ``simpo``...) is
    computed by ``preference_loss``; ``"sigmoid"`` (the default, TRL's DPO loss) and
    ``"trl:<name>"`` (e.g. ``trl:ipo``, TRL's per-token IPO) are TRL's built-in losses.
    """
    from marginkit.gradent.losses import LOSS_NAMES

    if loss_type in LOSS_NAMES:
        return loss_type, "sigmoid"
    name = loss_type.removeprefix("trl:")
    if loss_type == "sigmoid" or (loss_type.startswith("trl:") and name):
        return None, name
    raise ValueError(
        f"loss_type {loss_type!r} is neither a marginkit-gradent loss ({', '.join(LOSS_NAMES)}) "
        "nor 'sigmoid' / 'trl:<TRL loss_type>'"
    )


def entanglement_monitor(
    config: AdaQRConfig, tokenizer: Any, records: list[dict[str, str]], reference: Any
) -> Any:
    """marginkit-gradent's monitor on a fixed probe of the first (up to) 8 pairs.

    Its first-order predictions use the training loss (TRL's ``sigmoid`` is gradent's
    ``dpo``; TRL losses gradent does not have are predicted as ``dpo``).
    """
    from marginkit.gradent.logprobs import tokenize_pairs
    from marginkit.gradent.losses import LOSS_NAMES
    from marginkit.gradent.monitor import EntanglementMonitor

    gradent_loss, trl_loss = resolve_loss(config.loss_type)
    kwargs: dict[str, Any] = {"beta": config.beta}
    if gradent_loss is None:
        gradent_loss = trl_loss if trl_loss in LOSS_NAMES else "dpo"
        if trl_loss == "ipo":
            kwargs["average"] = True  # TRL's IPO works on per-token log-ratios
    probe = tokenize_pairs(tokenizer, records[:8], append_eos=True)
    return EntanglementMonitor(
        probe,
        loss=gradent_loss,
        every=config.monitor_every,
        reference=reference,
        learning_rate=config.dpo_lr,
        loss_kwargs=kwargs,
        output_dir=Path(config.run_dir) / "dpo-monitor",
    )
