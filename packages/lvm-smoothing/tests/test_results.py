"""Result files: Cohen's TSV format round-trips and readers accept published variants."""

import json

import numpy as np
import pytest

from marginkit.lvm_smoothing.certificates import Certificate
from marginkit.lvm_smoothing.maps import HARDMAX, Candidate
from marginkit.lvm_smoothing.results import (
    format_radius,
    format_time,
    load_statistics,
    parse_time,
    read_certify_tsv,
    save_statistics,
    write_certify_tsv,
    write_meta,
)
from marginkit.lvm_smoothing.sampling import SampleStatistics


def _cert(prediction, radius):
    radii = {"multi": radius, "mono": 0.0, "lipschitz": 0.0}
    return Certificate(prediction, radius, 0.9, 0.1, "hardmax", "multi", radii, "lvm", "n0")


def test_spec_row_round_trips(tmp_path):
    path = write_certify_tsv(
        tmp_path / "c.tsv", [3], [_cert(3, 0.378)], [15.4], radius_format="cohen"
    )
    lines = path.read_text().splitlines()
    assert lines[0] == "idx\tlabel\tpredict\tradius\tcorrect\ttime"
    assert lines[1] == "0\t3\t3\t0.378\t1\t0:00:15.400000"
    table = read_certify_tsv(path)
    assert table["radius"].tolist() == [0.378]
    assert table["time"].tolist() == [pytest.approx(15.4)]
    assert table["correct"].tolist() == [1]


def test_cohen_radius_format_rounds_down_to_three_significant_digits():
    assert format_radius(0.2496, "cohen") == "0.249"  # "{:.3}" would print 0.25
    assert format_radius(1.23999, "cohen") == "1.23"
    assert format_radius(0.0, "cohen") == "0.0"
    assert float(format_radius(0.123456789, "full")) == 0.123456789


def test_float_seconds_and_timedelta_strings_parse():
    assert parse_time("15.4") == pytest.approx(15.4)
    assert parse_time("0:00:15.400000") == pytest.approx(15.4)
    assert parse_time("1:02:03") == 3723
    assert parse_time(format_time(93784.5)) == pytest.approx(93784.5)  # over a day


def test_running_total_correct_column_is_recomputed_from_predictions(tmp_path):
    path = tmp_path / "dds.tsv"
    rows = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
    for idx, (label, predict, total) in enumerate([(1, 1, 1), (2, 0, 1), (3, 3, 2), (4, 4, 3)]):
        rows.append(f"{idx}\t{label}\t{predict}\t0.5\t{total}\t1.0")
    path.write_text("\n".join(rows) + "\n")
    assert read_certify_tsv(path)["correct"].tolist() == [1, 0, 1, 1]


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("idx\tlabel\n0\t1\n")
    with pytest.raises(ValueError, match="lacks the columns"):
        read_certify_tsv(path)


def test_statistics_round_trip_exactly(tmp_path):
    candidates = [HARDMAX, Candidate("softmax", 0.5)]
    rng = np.random.default_rng(0)
    draws = [
        SampleStatistics(
            candidates, 7, rng.uniform(size=(2, 3)), rng.uniform(size=(2, 3)), np.array([3, 4, 0])
        )
        for _ in range(4)
    ]
    path = save_statistics(tmp_path / "s.npz", [0, 1], [2, 1], draws[:2], draws[2:])
    labels, selection, estimation = load_statistics(path)
    assert labels.tolist() == [2, 1]
    assert selection[1].candidates == candidates
    assert np.array_equal(estimation[0].m2, draws[2].m2)
    assert np.array_equal(selection[0].votes, draws[0].votes)


def test_meta_is_json(tmp_path):
    path = write_meta(tmp_path / "m.json", {"sigma": 0.25, "classes": [0, 1]})
    assert json.loads(path.read_text()) == {"sigma": 0.25, "classes": [0, 1]}
