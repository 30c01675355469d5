"""Result files: Cohen-format certify/predict TSVs, per-row details, run metadata, statistics.

Certify TSV (tab-separated, read by Cohen's ``analyze.py``)::

    idx  label  predict  radius  correct  time

``predict`` is -1 on abstention, ``correct`` is 0/1 for the row and ``time`` is
``str(timedelta)`` (``H:MM:SS.ffffff``). Readers also take float seconds in ``time`` and files
whose ``correct`` column is a running total (recomputed from ``predict == label``).
"""

from __future__ import annotations

import csv
import datetime
import decimal
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from marginkit.lvm_smoothing.certificates import Certificate
from marginkit.lvm_smoothing.sampling import SampleStatistics

logger = logging.getLogger(__name__)

CERTIFY_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time")
PREDICT_COLUMNS = ("idx", "label", "predict", "correct", "time")
DETAIL_COLUMNS = (
    "idx", "p_lower", "p_runner_up", "candidate", "formula", "r_multi", "r_mono", "r_lipschitz",
)  # fmt: skip


def format_time(seconds: float) -> str:
    """``str(timedelta(seconds=...))``, e.g. ``0:00:15.400000``."""
    return str(datetime.timedelta(seconds=float(seconds)))


def parse_time(text: str) -> float:
    """Seconds from ``H:MM:SS[.ffffff]`` or from a plain float (Cohen's published files)."""
    text = text.strip()
    if ":" not in text:
        return float(text)
    hours, minutes, seconds = text.split(":")
    days = 0
    if " day" in hours:  # "1 day, 2:03:04"
        day_part, hours = hours.split(",")
        days = int(day_part.split()[0])
    return days * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def format_radius(radius: float, radius_format: str = "full") -> str:
    """Full precision (``repr``), or ``"cohen"``: 3 significant digits rounded down.

    Rounding down keeps the written radius certified (``"{:.3}"`` rounds 0.2496 up to 0.25).
    """
    if radius_format == "full":
        return repr(float(radius))
    if radius_format != "cohen":
        raise ValueError(f"radius_format must be 'full' or 'cohen', got {radius_format!r}")
    if radius <= 0:
        return "0.0"
    value = decimal.Decimal(repr(float(radius)))
    exponent = math.floor(math.log10(radius)) - 2
    quantum = decimal.Decimal(1).scaleb(exponent)
    return str(value.quantize(quantum, rounding=decimal.ROUND_FLOOR).normalize())


def write_certify_tsv(
    path: str | Path,
    labels: Sequence[int],
    certificates: Sequence[Certificate],
    seconds: Sequence[float],
    indices: Sequence[int] | None = None,
    radius_format: str = "full",
) -> Path:
    """Write one row per input (see the module docstring) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    indices = list(range(len(labels))) if indices is None else list(indices)
    if not (len(indices) == len(labels) == len(certificates) == len(seconds)):
        raise ValueError("indices, labels, certificates and seconds must have the same length")
    with open(path, "w", newline="") as handle:
        handle.write("\t".join(CERTIFY_COLUMNS) + "\n")
        for idx, label, cert, elapsed in zip(indices, labels, certificates, seconds):
            correct = int(cert.prediction == int(label))
            radius = format_radius(cert.radius, radius_format)
            handle.write(
                f"{idx}\t{int(label)}\t{cert.prediction}\t{radius}\t{correct}\t"
                f"{format_time(elapsed)}\n"
            )
    return path


def write_details_tsv(
    path: str | Path, certificates: Sequence[Certificate], indices: Sequence[int] | None = None
) -> Path:
    """``pA``, ``pB'``, the candidate, the winning formula and the three radii per row."""
    path = Path(path)
    indices = list(range(len(certificates))) if indices is None else list(indices)
    with open(path, "w", newline="") as handle:
        handle.write("\t".join(DETAIL_COLUMNS) + "\n")
        for idx, cert in zip(indices, certificates):
            radii = [repr(cert.radii[name]) for name in ("multi", "mono", "lipschitz")]
            fields = [str(idx), repr(cert.p_lower), repr(cert.p_runner_up), cert.candidate]
            handle.write("\t".join([*fields, cert.formula, *radii]) + "\n")
    return path


def read_certify_tsv(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a certify (or predict) TSV as arrays; ``time`` in seconds.

    A ``correct`` column that is not 0/1 per row (a running total) is recomputed from
    ``predict == label``.
    """
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows:
        raise ValueError(f"{path} has no rows")
    missing = {"idx", "label", "predict", "correct", "time"} - set(rows[0])
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}; found {list(rows[0])}")
    table = {
        "idx": np.array([int(r["idx"]) for r in rows]),
        "label": np.array([int(r["label"]) for r in rows]),
        "predict": np.array([int(r["predict"]) for r in rows]),
        "correct": np.array([int(float(r["correct"])) for r in rows]),
        "time": np.array([parse_time(r["time"]) for r in rows]),
    }
    if "radius" in rows[0]:
        table["radius"] = np.array([float(r["radius"]) for r in rows])
    if not np.isin(table["correct"], (0, 1)).all():
        logger.warning("%s: 'correct' is not 0/1 per row; recomputed from predict == label", path)
        table["correct"] = (table["predict"] == table["label"]).astype(int)
    return table


def write_meta(path: str | Path, meta: Mapping[str, Any]) -> Path:
    """The run's settings (sigma, n0, n, alpha, method, selection, grid, classes...) as JSON."""
    path = Path(path)
    path.write_text(json.dumps(dict(meta), indent=2, sort_keys=True, default=str))
    return path


def save_statistics(
    path: str | Path,
    indices: Iterable[int],
    labels: Iterable[int],
    selection: Sequence[SampleStatistics],
    estimation: Sequence[SampleStatistics],
) -> Path:
    """Both draws' per-candidate statistics (float64) so that inputs can be re-certified."""
    if not selection:
        raise ValueError("no statistics to save")
    candidates = [f"{c.map}:{c.temperature!r}" for c in selection[0].candidates]
    arrays: dict[str, Any] = {"idx": np.asarray(list(indices)), "label": np.asarray(list(labels))}
    for name, draws in (("selection", selection), ("estimation", estimation)):
        arrays[f"{name}_count"] = np.array([s.num_samples for s in draws])
        arrays[f"{name}_mean"] = np.stack([s.mean for s in draws])
        arrays[f"{name}_m2"] = np.stack([s.m2 for s in draws])
        arrays[f"{name}_votes"] = np.stack([s.votes for s in draws])
    np.savez_compressed(path, candidates=np.array(candidates), **arrays)
    return Path(path)


def load_statistics(path: str | Path) -> tuple[np.ndarray, list[SampleStatistics], list]:
    """Labels and the two lists of statistics written by :func:`save_statistics`."""
    from marginkit.lvm_smoothing.maps import Candidate

    data = np.load(path)
    candidates = []
    for text in data["candidates"]:
        name, temperature = str(text).split(":")
        candidates.append(Candidate(name, float(temperature)))
    draws = []
    for name in ("selection", "estimation"):
        draws.append(
            [
                SampleStatistics(candidates, int(count), mean, m2, votes)
                for count, mean, m2, votes in zip(
                    data[f"{name}_count"], data[f"{name}_mean"], data[f"{name}_m2"],
                    data[f"{name}_votes"],
                )
            ]
        )  # fmt: skip
    return data["label"], draws[0], draws[1]
