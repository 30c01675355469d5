"""The command line: real types for flags, and train -> sample through a saved pipeline."""

import json
import subprocess
import sys

import pytest

from marginkit.mapo import cli
from marginkit.mapo.config import TrainConfig
from marginkit.shared.cli import parse_config


def test_flags_parse_to_real_types():
    config = parse_config(TrainConfig, ["--no-keep-ties", "--beta-dpo", "2500.5"], prog="t")
    assert config.keep_ties is False and config.beta_dpo == 2500.5
    assert parse_config(TrainConfig, ["--keep-ties"], prog="t").keep_ties is True
    with pytest.raises(SystemExit):
        parse_config(TrainConfig, ["--keep-ties", "False"], prog="t")  # no type=bool trap


def test_help_does_not_import_torch_or_diffusers():
    # A fresh interpreter: this test process has imported torch long ago.
    code = (
        "import sys\n"
        "from marginkit.mapo.cli import main\n"
        "try:\n"
        "    main(['train', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr[-2000:]
    assert "--objective" in child.stdout
    assert child.stdout.strip().splitlines()[-1] == "[]"


def test_paper_v2_preset_takes_beta_from_the_task():
    config = TrainConfig(preset="paper_v2", task="safety")
    assert config.loss_kwargs() == {
        "score_scale": 1.0,
        "margin_scale": 64.0,
        "margin_weight": 1 / 64,
    }
    assert TrainConfig(objective="dpo", beta_dpo=2000.5).loss_kwargs() == {"beta": 2000.5}


def test_train_then_sample_from_a_saved_local_pipeline(tmp_path, jsonl_data, tiny_sdxl):
    base = tiny_sdxl.save(tmp_path / "base")
    run_dir = tmp_path / "run"
    result = cli.run(
        [
            "train",
            "--pretrained-model",
            str(base),
            "--data-format",
            "jsonl",
            "--data-path",
            str(jsonl_data),
            "--resolution",
            "16",
            "--train-batch-size",
            "2",
            "--gradient-accumulation-steps",
            "1",
            "--max-train-steps",
            "2",
            "--mode",
            "lora",
            "--output-dir",
            str(run_dir),
            "--checkpointing-steps",
            "1",
            "--checkpoints-total-limit",
            "1",
        ]
    )
    assert result.global_step == 2
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [1, 2]
    assert len(list((run_dir / "checkpoints").glob("checkpoint-*"))) == 1
    # main() is what the console script passes to sys.exit: None means exit status 0.
    returned = cli.main(
        [
            "sample",
            "--pretrained-model",
            str(base),
            "--weights",
            str(run_dir),
            "--prompts",
            "a",
            "b",
            "--steps",
            "2",
            "--resolution",
            "16",
            "--output-dir",
            str(tmp_path / "samples"),
        ]
    )
    assert returned is None
    paths = sorted((tmp_path / "samples").glob("*.png"))
    assert [path.name for path in paths] == ["prompt000-00.png", "prompt001-00.png"]
