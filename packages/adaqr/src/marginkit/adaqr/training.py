"""The training stages: SFT, sampling from the rewriter, DPO and greedy rewriting.

All TRL calls live here (TRL >= 1.0, < 2). SFT trains on prompt/completion records with
completion-only loss,

.. math:: L = -\\frac{\\sum_i \\sum_j \\log \\pi_\\theta(y_{ij} \\mid x_i, y_{i,<j})}
          {\\sum_i |y_i|},

and DPO on prompt/chosen/rejected records with TRL's DPOTrainer, the reference being the
SFT policy (LoRA adapters disabled, or a frozen copy when training all weights). Each
stage skips work already saved in ``run_dir`` (a finished model folder is reused).
"""

from __future__ import annotations

import copy
import logging
import os
import random
from pathlib import Path
from typing import Any

from marginkit.adaqr.config import AdaQRConfig
from marginkit.adaqr.data import read_jsonl
from marginkit.adaqr.embedded import load_split
from marginkit.adaqr.manifest import write_manifest
from marginkit.adaqr.prompts import completion_text, fit_prompt, render_prompt
from marginkit.adaqr.reward import deduplicate
from marginkit.adaqr.rewriter import (
    check_special_tokens,
    generate,
    tiny_gpt2,
    train_tokenizer,
)
from marginkit.adaqr.stages import Inputs, ResumableJsonl, rewritable

logger = logging.getLogger(__name__)


def _split_turns(config: AdaQRConfig, inputs: Inputs, split: str) -> list[Any]:
    if (Path(config.data_dir) / "splits.json").exists() and split:
        conversations = load_split(config.data_dir, split)
        return [t for t in inputs.turns if t.conversation_id in conversations]
    return list(inputs.turns)


def seed_turns(config: AdaQRConfig, inputs: Inputs) -> list[Any]:
    """Follow-up turns with a gold rewrite used for SFT.

    With a ``splits.json`` holding a ``seed`` split, its turns; otherwise a random
    fraction ``seed_fraction`` of every eligible turn.
    """
    if (Path(config.data_dir) / "splits.json").exists():
        eligible = [t for t in rewritable(_split_turns(config, inputs, "seed")) if t.rewrite]
    else:
        eligible = [t for t in rewritable(inputs.turns) if t.rewrite]
        count = max(1, round(config.seed_fraction * len(eligible)))
        eligible = random.Random(config.seed).sample(eligible, min(count, len(eligible)))
    if not eligible:
        raise ValueError("no follow-up turn with a gold rewrite to fine-tune on")
    return eligible


def lora_config(model: Any, config: AdaQRConfig) -> Any:
    """LoRA settings with the attention projections of the model's architecture."""
    from peft import LoraConfig

    model_type = getattr(model.config, "model_type", "")
    if model_type == "gpt2":
        targets, fan_in_fan_out = ["c_attn"], True
    else:
        targets, fan_in_fan_out = ["q_proj", "v_proj"], False
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=fan_in_fan_out,
        task_type="CAUSAL_LM",
    )


def initial_rewriter(config: AdaQRConfig, inputs: Inputs) -> tuple[Any, Any]:
    """``config.model`` (hub id or path), or the tiny GPT-2 with a tokenizer trained here."""
    if config.model:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(config.model)
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            tokenizer.add_special_tokens({"pad_token": "[PAD]"})
        model = AutoModelForCausalLM.from_pretrained(config.model)
        model.resize_token_embeddings(len(tokenizer))
        return model, tokenizer
    texts = []
    for turn in inputs.turns:
        texts.append(render_prompt(turn.history, turn.question))
        texts.append(turn.rewrite or "")
    tokenizer = train_tokenizer(texts)
    return tiny_gpt2(tokenizer, width=config.tiny_width), tokenizer


def mixed_precision(precision: str) -> dict[str, bool]:
    """TRL's ``bf16``/``fp16`` flags for ``precision`` ('auto', 'bf16', 'fp16', 'fp32').

    TRL's configs default to ``bf16=True``, which on a CPU runs every forward under bf16
    autocast (slower there, and log-probs off by ~1e-3); 'auto' is bf16 on a CUDA device
    that supports it and fp32 otherwise.
    """
    import torch

    from marginkit.shared import resolve_dtype

    if precision == "auto":
        cuda = torch.cuda.is_available()
        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    else:
        dtype = resolve_dtype(precision)
    return {"bf16": dtype == torch.bfloat16, "fp16": dtype == torch.float16}


def _training_arguments(config: AdaQRConfig, stage: str) -> dict[str, Any]:
    import torch

    return {
        **mixed_precision(config.precision),
        "gradient_checkpointing": config.gradient_checkpointing,
        "output_dir": str(Path(config.run_dir) / f"{stage}-trainer"),
        "seed": config.seed,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "use_cpu": not torch.cuda.is_available(),
        "dataloader_num_workers": 0,
    }


def sft(config: AdaQRConfig, inputs: Inputs) -> Path:
    """``sft``: fine-tune the rewriter on the seed rewrites; saves run_dir/sft."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    out = Path(config.run_dir) / "sft"
    if (out / "config.json").exists():
        logger.info("sft: %s already holds a model; skipping", out)
        return out
    _quiet_datasets()
    model, tokenizer = initial_rewriter(config, inputs)
    check_special_tokens(tokenizer)
    records = []
    for turn in seed_turns(config, inputs):
        completion = completion_text(turn.rewrite)
        prompt = fit_prompt(tokenizer, turn.history, turn.question, completion, config.max_length)
        records.append({"prompt": prompt, "completion": completion})
    arguments = SFTConfig(
        **_training_arguments(config, "sft"),
        num_train_epochs=config.sft_epochs,
        learning_rate=config.sft_lr,
        per_device_train_batch_size=config.sft_batch_size,
        gradient_accumulation_steps=config.sft_grad_accum,
        max_length=config.max_length,
        completion_only_loss=True,
        packing=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=arguments,
        train_dataset=datasets.Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=lora_config(model, config) if config.lora else None,
    )
    _train_quietly(trainer)
    trained = trainer.model
    if config.lora:
        trained = trained.merge_and_unload()
    trained.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _write_log(out / "train_log.jsonl", trainer.state.log_history)
    write_manifest(config, "sft", out, examples=len(records))
    logger.info("sft: %d examples, saved %s", len(records), out)
    return out


def load_rewriter(path: str | Path) -> tuple[Any, Any]:
    """A rewriter saved by :func:`sft` or :func:`dpo`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no trained rewriter in {path}; run the stage that writes it")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    check_special_tokens(tokenizer)
    return model, tokenizer


def sample(config: AdaQRConfig, inputs: Inputs, split: str = "pool") -> Path:
    """``sample``: N candidates per follow-up turn from the SFT rewriter (candidates.jsonl)."""
    from marginkit.shared import seed_everything

    model, tokenizer = load_rewriter(Path(config.run_dir) / "sft")
    seed_everything(config.seed)
    out = ResumableJsonl(Path(config.run_dir) / "candidates.jsonl")
    pending = [t for t in rewritable(_split_turns(config, inputs, split)) if t.id not in out]
    for start in range(0, len(pending), 16):
        chunk = pending[start : start + 16]
        prompts = [
            fit_prompt(tokenizer, t.history, t.question, "", config.max_prompt_length)
            for t in chunk
        ]
        samples = generate(
            model,
            tokenizer,
            prompts,
            num_return_sequences=config.num_candidates,
            do_sample=True,
            temperature=config.temperature,
            top_k=config.top_k,
            top_p=config.top_p,
            min_new_tokens=config.min_new_tokens,
            max_new_tokens=config.max_new_tokens,
        )
        for turn, candidates in zip(chunk, samples, strict=True):
            out.add({"turn_id": turn.id, "candidates": deduplicate(candidates)})
    out.save()
    write_manifest(config, "sample", out.path, generator="model", turns=len(out.records))
    return out.path


def pair_records(
    config: AdaQRConfig, tokenizer: Any, pairs: list[dict[str, Any]], inputs: Inputs | None = None
) -> list[dict[str, str]]:
    """DPO records (prompt, chosen, rejected).

    A prompt too long for ``max_prompt_length`` / ``max_length`` is re-fitted by dropping
    the oldest turns when the turn is known; pairs that still do not fit are dropped and
    counted in the log (TRL would drop or truncate them silently).
    """
    turns = inputs.turns_by_id() if inputs is not None else {}
    records, dropped = [], 0
    for pair in pairs:
        chosen, rejected = completion_text(pair["chosen"]), completion_text(pair["rejected"])
        longer = max(chosen, rejected, key=lambda text: len(tokenizer(text)["input_ids"]))
        prompt = pair["prompt"]
        turn = turns.get(str(pair["turn_id"]))
        try:
            if turn is not None:
                limit = min(
                    config.max_length,
                    config.max_prompt_length
                    + len(tokenizer(longer, add_special_tokens=False)["input_ids"])
                    + 1,
                )
                prompt = fit_prompt(tokenizer, turn.history, turn.question, longer, limit)
        except ValueError:
            dropped += 1
            continue
        prompt_length = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        full_length = len(tokenizer(prompt + longer, add_special_tokens=False)["input_ids"]) + 1
        if prompt_length > config.max_prompt_length or full_length > config.max_length:
            dropped += 1
            continue
        records.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    if dropped:
        logger.warning("dpo: dropped %d of %d pairs that do not fit", dropped, len(pairs))
    if not records:
        raise ValueError("no preference pair fits max_length / max_prompt_length")
    return records


def dpo(
    config: AdaQRConfig, inputs: Inputs | None = None, callbacks: list[Any] | None = None
) -> Path:
    """``dpo``: align the SFT rewriter on run_dir/pairs.jsonl; saves run_dir/dpo.

    TRL's DPOTrainer (:class:`~marginkit.adaqr.dpo_trainer.AdaQRDPOTrainer`) with
    ``loss_type``: ``"sigmoid"`` is DPO,
    :math:`L = -\\log\\sigma(\\beta[(\\log\\pi_\\theta(y_w|x) - \\log\\pi_{ref}(y_w|x))
    - (\\log\\pi_\\theta(y_l|x) - \\log\\pi_{ref}(y_l|x))])`, computed by TRL; a name of
    marginkit-gradent's ``LOSS_NAMES`` is computed by ``preference_loss`` (see
    :func:`resolve_loss`). marginkit-gradent's entanglement monitor records every
    ``monitor_every`` steps, in the same log record as the step's ``loss``.
    """
    import datasets
    from trl import DPOConfig

    from marginkit.adaqr.dpo_trainer import AdaQRDPOTrainer, entanglement_monitor, resolve_loss

    run_dir = Path(config.run_dir)
    out = run_dir / "dpo"
    if (out / "config.json").exists():
        logger.info("dpo: %s already holds a model; skipping", out)
        return out
    pairs_path = run_dir / "pairs.jsonl"
    if not pairs_path.exists():
        raise FileNotFoundError(f"{pairs_path} is missing; run `pairs` first")
    _quiet_datasets()
    model, tokenizer = load_rewriter(run_dir / "sft")
    pairs = read_jsonl(pairs_path)
    if 0 < config.max_pairs < len(pairs):
        # A seeded subsample, kept in file order, so a rerun trains on the same pairs.
        keep = sorted(random.Random(config.seed).sample(range(len(pairs)), config.max_pairs))
        logger.info("dpo: training on %d of %d pairs (max_pairs)", len(keep), len(pairs))
        pairs = [pairs[i] for i in keep]
    records = pair_records(config, tokenizer, pairs, inputs)
    reference = None if config.lora else _frozen_copy(model)
    gradent_loss, trl_loss = resolve_loss(config.loss_type)
    arguments = DPOConfig(
        **_training_arguments(config, "dpo"),
        num_train_epochs=config.dpo_epochs,
        learning_rate=config.dpo_lr,
        per_device_train_batch_size=config.dpo_batch_size,
        gradient_accumulation_steps=config.dpo_grad_accum,
        max_length=config.max_length,
        beta=config.beta,
        loss_type=[trl_loss],
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps
    )
    monitor = None
    if config.monitor_every > 0:
        monitor = entanglement_monitor(config, tokenizer, records, reference)
    trainer = AdaQRDPOTrainer(
        model=model,
        ref_model=reference,
        args=arguments,
        train_dataset=datasets.Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=lora_config(model, config) if config.lora else None,
        callbacks=callbacks,
        gradent_loss=gradent_loss,
        monitor=monitor,
    )
    _train_quietly(trainer)
    trained = trainer.model.merge_and_unload() if config.lora else trainer.model
    trained.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _write_log(out / "train_log.jsonl", trainer.state.log_history)
    if monitor is not None:
        monitor.save()
    write_manifest(
        config, "dpo", out, pairs=len(records), gradent_loss=gradent_loss, trl_loss=trl_loss
    )
    return out


def _frozen_copy(model: Any) -> Any:
    reference = copy.deepcopy(model)
    reference.eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference


def rewrite(config: AdaQRConfig, inputs: Inputs, stage: str = "dpo") -> Path:
    """``rewrite``: greedy rewrites of the ``config.split`` turns by the sft/dpo rewriter."""
    if stage not in ("sft", "dpo"):
        raise ValueError(f"stage must be 'sft' or 'dpo', got {stage!r}")
    model, tokenizer = load_rewriter(Path(config.run_dir) / stage)
    out = ResumableJsonl(Path(config.run_dir) / f"rewrites-{stage}.jsonl")
    pending = [t for t in rewritable(_split_turns(config, inputs, config.split)) if t.id not in out]
    prompts = [
        fit_prompt(tokenizer, t.history, t.question, "", config.max_prompt_length) for t in pending
    ]
    texts = generate(
        model,
        tokenizer,
        prompts,
        min_new_tokens=1,
        max_new_tokens=config.max_new_tokens,
    )
    for turn, (text,) in zip(pending, texts, strict=True):
        out.add({"turn_id": turn.id, "rewrite": text or turn.question})
    out.save()
    write_manifest(config, f"rewrite-{stage}", out.path, turns=len(out.records))
    return out.path


def _quiet_datasets() -> None:
    """Turn off the dataset map progress bars when MARGINKIT_NO_PROGRESS is set."""
    import datasets

    if os.environ.get("MARGINKIT_NO_PROGRESS"):
        datasets.disable_progress_bars()


def _train_quietly(trainer: Any) -> None:
    """``trainer.train()`` without printing every log record (they go to train_log.jsonl).

    With ``disable_tqdm`` transformers prints each record to stdout; the summary of the run
    is logged here instead.
    """
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.train()
    summary = [r for r in trainer.state.log_history if "train_runtime" in r]
    if summary:
        logger.info(
            "%d steps in %.1f s, mean loss %.4f",
            trainer.state.global_step,
            summary[-1]["train_runtime"],
            summary[-1].get("train_loss", float("nan")),
        )


def _write_log(path: Path, history: list[dict[str, Any]]) -> None:
    from marginkit.adaqr.data import write_jsonl_atomic

    write_jsonl_atomic(path, [dict(record) for record in history])
