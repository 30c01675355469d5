"""AdaQRDPOTrainer: marginkit-gradent losses inside TRL's DPOTrainer, monitor logging.

Expected values come from an independent computation: sequence log-probs of the policy
and of the reference by ``marginkit.adaqr.rewriter.log_probs`` (its own forward pass and
tokenisation), put into the loss formulas written out here.
"""

import copy
import math

import datasets
import pytest
import torch
from trl import DPOConfig, DPOTrainer

from marginkit.adaqr.dpo_trainer import AdaQRDPOTrainer, resolve_loss
from marginkit.adaqr.prompts import completion_text, render_prompt
from marginkit.adaqr.rewriter import log_probs, tiny_gpt2, train_tokenizer
from marginkit.adaqr.training import mixed_precision

BETA = 0.1
TRIPLES = [
    ([("What is the for statement?", "It loops.")], "And else?", "what about else in for?"),
    ([("What is the with statement?", "It manages.")], "How is it handled?", "with handled?"),
    ([("What is import?", "It loads modules.")], "And packages?", "import packages?"),
]


@pytest.fixture(scope="module")
def setup():
    prompts = [render_prompt(history, question) for history, question, _ in TRIPLES]
    texts = prompts + [gold for _, _, gold in TRIPLES] + ["the question itself"]
    tokenizer = train_tokenizer(texts)
    records = [
        {"prompt": prompt, "chosen": completion_text(gold), "rejected": completion_text(question)}
        for prompt, (_, question, gold) in zip(prompts, TRIPLES, strict=True)
    ]
    torch.manual_seed(0)
    policy = tiny_gpt2(tokenizer, width=32)
    torch.manual_seed(1)
    reference = tiny_gpt2(tokenizer, width=32).eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return tokenizer, records, policy, reference


def _expected_log_ratios(setup):
    """``(u_w - r_w, u_l - r_l, |y_w|, |y_l|)`` per pair, from rewriter.log_probs."""
    tokenizer, records, policy, reference = setup
    chosen = [(r["prompt"], r["chosen"].strip()) for r in records]
    rejected = [(r["prompt"], r["rejected"].strip()) for r in records]
    ratio_w = torch.tensor(log_probs(policy, tokenizer, chosen)) - torch.tensor(
        log_probs(reference, tokenizer, chosen)
    )
    ratio_l = torch.tensor(log_probs(policy, tokenizer, rejected)) - torch.tensor(
        log_probs(reference, tokenizer, rejected)
    )
    return ratio_w.double(), ratio_l.double()


def _trainer(setup, tmp_path, cls=AdaQRDPOTrainer, loss_type="sigmoid", steps=1, **kwargs):
    tokenizer, records, policy, reference = setup
    arguments = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        use_cpu=True,
        per_device_train_batch_size=len(records),
        max_steps=steps,
        learning_rate=1e-3,
        beta=BETA,
        loss_type=[loss_type],
        seed=0,
        bf16=False,  # TRL's default bf16 autocast would move log-probs by ~1e-3 on a CPU
    )
    return cls(
        model=copy.deepcopy(policy),
        ref_model=copy.deepcopy(reference),
        args=arguments,
        train_dataset=datasets.Dataset.from_list(records),
        processing_class=tokenizer,
        **kwargs,
    )


def test_gradent_dpo_loss_equals_trls_sigmoid_loss_on_the_same_batch(setup, tmp_path):
    trl_trainer = _trainer(setup, tmp_path, cls=DPOTrainer)
    ours = _trainer(setup, tmp_path, gradent_loss="dpo")
    batch = next(iter(trl_trainer.get_train_dataloader()))
    with torch.no_grad():
        trl_loss = float(trl_trainer.compute_loss(trl_trainer.model, batch))
        gradent_loss = float(ours.compute_loss(ours.model, batch))
    ratio_w, ratio_l = _expected_log_ratios(setup)
    by_hand = float(torch.nn.functional.softplus(-BETA * (ratio_w - ratio_l)).mean())
    assert abs(by_hand - math.log(2)) > 1e-3  # policy and reference differ: not the ln 2 case
    assert gradent_loss == pytest.approx(trl_loss, abs=1e-5)
    assert gradent_loss == pytest.approx(by_hand, abs=1e-4)


def test_one_ipo_step_logs_the_hand_computed_ipo_loss_with_the_monitor_record(setup, tmp_path):
    from marginkit.gradent.logprobs import tokenize_pairs
    from marginkit.gradent.monitor import EntanglementMonitor

    tokenizer, records, _, _ = setup
    monitor = EntanglementMonitor(
        tokenize_pairs(tokenizer, records, append_eos=True),
        loss="ipo",
        every=1,
        reference=setup[3],
        loss_kwargs={"beta": BETA},
        output_dir=tmp_path / "monitor",
    )
    trainer = _trainer(setup, tmp_path, gradent_loss="ipo", steps=2, monitor=monitor)
    trainer.train()
    ratio_w, ratio_l = _expected_log_ratios(setup)
    # IPO on summed log-ratios: l = (z - 1/(2 beta))^2, z = (u_w - r_w) - (u_l - r_l)
    by_hand = float(((ratio_w - ratio_l - 1 / (2 * BETA)) ** 2).mean())
    steps = [record for record in trainer.state.log_history if "loss" in record]
    assert [record["step"] for record in steps] == [1, 2]  # every step keeps its own loss
    assert steps[0]["loss"] == pytest.approx(by_hand, rel=1e-4)
    assert all("gradent/grad/cosine" in record for record in steps)
    assert steps[0]["rewards/margin"] == pytest.approx(BETA * float((ratio_w - ratio_l).mean()))


def test_loss_names_resolve_to_gradent_or_trl():
    assert resolve_loss("sigmoid") == (None, "sigmoid")
    assert resolve_loss("simpo") == ("simpo", "sigmoid")
    assert resolve_loss("trl:ipo") == (None, "ipo")
    with pytest.raises(ValueError, match="neither a marginkit-gradent loss"):
        resolve_loss("sigmod")


def test_auto_precision_trains_in_fp32_without_a_cuda_gpu():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: 'auto' may pick bf16")
    assert mixed_precision("auto") == {"bf16": False, "fp16": False}  # TRL's default is bf16
    assert mixed_precision("bf16") == {"bf16": True, "fp16": False}
