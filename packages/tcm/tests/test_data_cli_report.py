"""Embedding files, the command line, and the Pareto report."""

import json

import numpy as np
import pytest

from marginkit.tcm.cli import main
from marginkit.tcm.data import load_embeddings
from marginkit.tcm.pareto import pareto_front, summarize_runs

ANGLES = np.radians([0.0, 10.0, 90.0, 150.0])
CIRCLE = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1).astype(np.float32)


def test_pareto_front_keeps_non_dominated_points():
    points = [(0.80, 0.020), (0.85, 0.030), (0.82, 0.025), (0.78, 0.015), (0.84, 0.035)]
    assert pareto_front(points) == [True, True, True, True, False]


def test_equal_points_both_stay_on_the_front():
    assert pareto_front([(0.5, 0.1), (0.5, 0.1), (0.4, 0.2)]) == [True, True, False]


def test_summary_reports_mean_and_sample_sd_per_config():
    runs = [
        {"config": "a", "R@1": 0.8, "opis": 0.01},
        {"config": "a", "R@1": 0.6, "opis": 0.03},
        {"config": "b", "R@1": 0.9, "opis": 0.01},
    ]
    rows = {row["config"]: row for row in summarize_runs(runs, metrics=("R@1", "opis"))}
    assert rows["a"]["R@1/mean"] == pytest.approx(0.7)
    assert rows["a"]["R@1/sd"] == pytest.approx(np.sqrt(0.02))
    assert rows["b"]["pareto"] and not rows["a"]["pareto"]


def test_npz_with_string_labels_maps_them_to_codes(tmp_path):
    path = tmp_path / "emb.npz"
    np.savez(path, embeddings=CIRCLE, labels=np.array(["cat", "cat", "dog", "dog"]))
    loaded = load_embeddings(path)
    assert loaded.labels.tolist() == [0, 0, 1, 1]
    assert loaded.label_names.tolist() == ["cat", "dog"]


def test_parquet_with_list_column_and_csv_with_emb_columns(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"embedding": CIRCLE.tolist(), "label": [3, 3, 7, 7]})
    pq.write_table(table, tmp_path / "emb.parquet")
    loaded = load_embeddings(tmp_path / "emb.parquet")
    np.testing.assert_allclose(loaded.embeddings, CIRCLE)
    lines = ["emb_0,emb_1,label"] + [f"{a},{b},{c}" for (a, b), c in zip(CIRCLE, "xxyy")]
    (tmp_path / "emb.csv").write_text("\n".join(lines) + "\n")
    np.testing.assert_allclose(load_embeddings(tmp_path / "emb.csv").embeddings, CIRCLE)


def test_label_count_mismatch_in_a_file_is_an_error(tmp_path):
    np.save(tmp_path / "e.npy", CIRCLE)
    np.save(tmp_path / "l.npy", np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="3 labels for 4 embeddings"):
        load_embeddings(tmp_path / "e.npy", tmp_path / "l.npy")


def test_npz_without_labels_names_the_missing_entry(tmp_path):
    np.savez(tmp_path / "e.npz", embeddings=CIRCLE)
    with pytest.raises(ValueError, match="no 'labels' entry"):
        load_embeddings(tmp_path / "e.npz")


def test_cli_opis_prints_the_hand_computed_value(tmp_path, capsys):
    np.savez(tmp_path / "emb.npz", embeddings=CIRCLE, labels=np.array([0, 0, 1, 1]))
    args = ["opis", "--embeddings", str(tmp_path / "emb.npz"), "--device", "cpu"]
    main(args + ["--opis.thresholds", "0.3", "0.4", "0.6", "0.7", "--opis.overall", "mean"])
    result = json.loads(capsys.readouterr().out)
    assert result["opis"] == pytest.approx(0.125) and result["config/overall"] == "mean"


def test_cli_evaluate_writes_retrieval_and_opis(tmp_path, capsys):
    np.savez(tmp_path / "emb.npz", embeddings=CIRCLE, labels=np.array([0, 0, 1, 1]))
    out = tmp_path / "metrics.json"
    main(
        [
            "evaluate",
            "--embeddings",
            str(tmp_path / "emb.npz"),
            "--output",
            str(out),
            "--opis.thresholds",
            "0.3",
            "0.4",
            "0.6",
            "0.7",
        ]
    )
    metrics = json.loads(out.read_text())
    # Nearest: 0 -> 10, 10 -> 0, 90 -> 150 (60 deg beats 80 deg), 150 -> 90: all hits.
    assert metrics["R@1"] == pytest.approx(1.0)
    assert metrics["opis"] == pytest.approx(5 / 36)


def test_cli_report_groups_runs_by_config_over_seeds(tmp_path, capsys):
    for index, (name, r1, opis) in enumerate(
        [("a", 0.8, 0.02), ("a", 0.6, 0.02), ("b", 0.9, 0.01)]
    ):
        run = tmp_path / "runs" / str(index)
        run.mkdir(parents=True)
        record = {
            "config": name,
            "seed": index,
            "R@1": r1,
            "MAP@R": 0.1,
            "opis": opis,
            "eps_opis": 0.1,
        }
        (run / "results.json").write_text(json.dumps(record))
    main(["report", "--runs", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "rep")])
    rows = {
        row["config"]: row for row in json.loads((tmp_path / "rep" / "report.json").read_text())
    }
    assert rows["a"]["n"] == 2 and rows["a"]["R@1/mean"] == pytest.approx(0.7)
    assert rows["b"]["pareto"] and not rows["a"]["pareto"]
    png = (tmp_path / "rep" / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
