import dataclasses
import json
import math

import pytest
import torch

from marginkit.shared import MetricsWriter, make_accelerator
from marginkit.shared.cli import run_commands


@dataclasses.dataclass
class TrainConfig:
    """Train a toy model."""

    steps: int = 10
    """Optimizer steps."""
    name: str = "run"


def test_run_commands_fills_config_from_flags_and_calls_handler():
    result = run_commands(
        "toy", {"train": (TrainConfig, lambda c: (c.steps, c.name))}, ["train", "--steps", "3"]
    )
    assert result == (3, "run")


def test_run_commands_rejects_unknown_command(capsys):
    with pytest.raises(SystemExit, match="unknown command 'trian'"):
        run_commands("toy", {"train": (TrainConfig, print)}, ["trian"])
    assert "Train a toy model." in capsys.readouterr().err


def test_metrics_writer_writes_json_lines_and_nulls_nan(tmp_path):
    path = tmp_path / "m.jsonl"
    with MetricsWriter(path) as writer:
        writer.write({"loss/total": torch.tensor(0.25), "acc": 1}, step=1)
        writer.write({"loss/total": math.nan}, step=2)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"loss/total": 0.25, "acc": 1, "step": 1}, {"loss/total": None, "step": 2}]


def test_accelerator_accumulates_gradients_over_micro_batches():
    accelerator = make_accelerator(gradient_accumulation_steps=2, cpu=True)
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    # Loss w*x per micro-batch; the mean of the two gradients (1 and 3) is 2.
    for x in (1.0, 3.0):
        with accelerator.accumulate(model):
            accelerator.backward(model(torch.tensor([[x]])).sum())
            optimizer.step()
            optimizer.zero_grad()
    assert model.weight.item() == pytest.approx(-2.0)


def test_accelerator_rejects_unknown_precision():
    with pytest.raises(ValueError, match="mixed_precision='fp12'"):
        make_accelerator(mixed_precision="fp12")


def test_importing_shared_and_its_cli_does_not_import_torch():
    import subprocess
    import sys

    probe = (
        "import sys, marginkit.shared, marginkit.shared.cli, marginkit.shared.logging\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_lazy_exports_resolve_to_the_defining_modules():
    import marginkit.shared as shared
    from marginkit.shared import checkpoint, seeding

    assert shared.save_checkpoint is checkpoint.save_checkpoint
    assert shared.seed_everything is seeding.seed_everything
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        shared.missing  # noqa: B018
