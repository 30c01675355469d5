"""The command line: help, certify from a trained checkpoint, curve from its TSV."""

import pytest

from marginkit.lvm_smoothing.cli import main
from marginkit.lvm_smoothing.results import read_certify_tsv


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    for command in ("certify", "predict", "curve", "demo"):
        assert f"  {command}" in listed


def test_train_certify_predict_and_curve_end_to_end(tmp_path, capsys):
    ckpt = tmp_path / "model"
    main(["train", "--arch", "digits_mlp", "--epochs", "2", "--out", str(ckpt)])
    out = tmp_path / "run" / "cert.tsv"
    common = [
        "--checkpoint",
        str(ckpt),
        "--max",
        "4",
        "--n",
        "200",
        "--n0",
        "20",
        "--num-temperatures",
        "3",
        "--device",
        "cpu",
    ]
    main(["certify", *common, "--out", str(out)])
    table = read_certify_tsv(out)
    assert len(table["idx"]) == 4
    assert all((table["predict"] == -1) | (table["radius"] > 0))
    for suffix in (".details.tsv", ".meta.json", ".stats.npz"):
        assert out.with_suffix(suffix).exists()
    main(["predict", *common, "--out", str(tmp_path / "pred.tsv")])
    assert len(read_certify_tsv(tmp_path / "pred.tsv")["idx"]) == 4
    main(["curve", "--tsv", str(out), "--out", str(tmp_path / "c.png")])
    assert "CA@0.25" in capsys.readouterr().out
    assert (tmp_path / "c.png").exists()


def test_certify_without_a_model_names_the_fix():
    with pytest.raises(ValueError, match="--checkpoint"):
        main(["certify", "--n", "100"])
