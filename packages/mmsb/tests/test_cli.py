"""The command line: fit, predict and a fast --help."""

import json
import subprocess
import sys

import numpy as np

from marginkit.mmsb import Snapshots, simulate
from marginkit.mmsb.cli import main


def test_fit_then_predict_write_parameters_plot_and_clouds(tmp_path):
    data = tmp_path / "linear.npz"
    simulate.linear(n=60, seed=0).to_npz(data)  # times 0, 0.5, ..., 4
    out = tmp_path / "fit"
    main(
        [
            "fit",
            "--data",
            str(data),
            "--reference",
            "linear",
            "--output-dir",
            str(out),
            "--sbirr.n-outer",
            "3",
        ]
    )
    fitted = json.loads((out / "fit.json").read_text())
    A = np.array(
        [
            [fitted["parameters"]["A11"], fitted["parameters"]["A12"]],
            [fitted["parameters"]["A21"], fitted["parameters"]["A22"]],
        ]
    )
    assert np.linalg.norm(A - simulate.DEFAULT_A) < 0.3
    assert set(fitted["heldout_w2"]) == {"0.5", "1.5", "2.5", "3.5"}
    assert (out / "fit.png").stat().st_size > 1000
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(fitted["history"]["iteration"]) and "theta/A11" in lines[-1]
    with np.load(out / "trajectories.npz") as paths:
        assert paths["paths"].shape[0] == 60 and paths["times"][-1] == 4.0
    target = tmp_path / "pred.npz"
    main(
        [
            "predict",
            "--data",
            str(data),
            "--fit-json",
            str(out / "fit.json"),
            "--times",
            "0.5",
            "2.5",
            "--n",
            "15",
            "--output",
            str(target),
        ]
    )
    predicted = Snapshots.from_npz(target)
    assert predicted.times.tolist() == [0.5, 2.5] and predicted.counts == (15, 15)


def test_help_lists_the_three_commands_without_loading_pot():
    code = (
        "import sys; from marginkit.mmsb.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('ot', 'scipy.linalg') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for command in ("fit", "predict", "demo"):
        assert command in result.stdout
