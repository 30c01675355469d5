"""Snapshots: unpaired particle clouds observed at increasing times.

A snapshot ``k`` is a cloud ``x_k`` of shape ``(n_k, d)`` with positive weights ``a_k`` of
shape ``(n_k,)`` summing to one, observed at time ``t_k``. Clouds at different times are
independent cohorts: particles are never paired across times by their index.

Readers: NumPy arrays, ``.npz`` (benchmark layout ``Xs``/``dts``/``N_steps`` or the package
layout ``times``/``X_0``...), long-format CSV and AnnData ``.h5ad`` (optional extra).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

BENCHMARK_KEYS = ("Xs", "dts", "N_steps")


def _as_cloud(values: Any, index: int) -> np.ndarray:
    cloud = np.asarray(values, dtype=np.float64)
    if cloud.ndim == 1:
        cloud = cloud[:, None]
    if cloud.ndim != 2:
        raise ValueError(f"snapshot {index} must have shape (n, d); got shape {cloud.shape}")
    if cloud.shape[0] == 0:
        raise ValueError(f"snapshot {index} is empty (0 particles)")
    if not np.all(np.isfinite(cloud)):
        bad = int(np.argwhere(~np.isfinite(cloud))[0, 0])
        raise ValueError(f"snapshot {index} has a non-finite value (NaN or inf) in particle {bad}")
    return cloud


@dataclass(frozen=True, init=False)
class Snapshots:
    """Particle clouds ``x_k`` (each ``(n_k, d)``) with weights at strictly increasing times.

    Parameters
    ----------
    times:
        ``(K + 1,)`` observation times, strictly increasing, at least two.
    particles:
        ``K + 1`` arrays of shape ``(n_k, d)`` (one ``d`` for all); counts may differ.
    weights:
        Optional ``K + 1`` arrays of shape ``(n_k,)``, positive; normalised to sum to one.
        Uniform ``1 / n_k`` when omitted.

    Examples
    --------
    >>> snaps = Snapshots([0.0, 1.0], [np.zeros((3, 2)), np.ones((5, 2))])
    >>> snaps.counts, snaps.dim
    ((3, 5), 2)
    """

    times: np.ndarray
    particles: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]

    def __init__(
        self,
        times: Sequence[float] | np.ndarray,
        particles: Sequence[Any],
        weights: Sequence[Any] | None = None,
    ) -> None:
        time_array = np.asarray(times, dtype=np.float64).reshape(-1)
        if len(particles) != time_array.size:
            raise ValueError(
                f"{time_array.size} times but {len(particles)} particle arrays; give one per time"
            )
        if time_array.size < 2:
            raise ValueError(f"need at least 2 snapshots, got {time_array.size}")
        if not np.all(np.isfinite(time_array)):
            raise ValueError(f"times must be finite, got {time_array.tolist()}")
        gaps = np.diff(time_array)
        if np.any(gaps <= 0):
            where = int(np.argmax(gaps <= 0))
            raise ValueError(
                "times must be strictly increasing; "
                f"t[{where}] = {time_array[where]} is followed by t[{where + 1}] = "
                f"{time_array[where + 1]}"
            )
        clouds = tuple(_as_cloud(cloud, k) for k, cloud in enumerate(particles))
        dims = {cloud.shape[1] for cloud in clouds}
        if len(dims) != 1:
            shapes = [cloud.shape for cloud in clouds]
            raise ValueError(f"all snapshots must share one dimension d; got shapes {shapes}")
        if weights is None:
            normalised = tuple(np.full(len(cloud), 1.0 / len(cloud)) for cloud in clouds)
        else:
            if len(weights) != len(clouds):
                raise ValueError(f"{len(weights)} weight arrays for {len(clouds)} snapshots")
            normalised_list: list[np.ndarray] = []
            for k, (weight, cloud) in enumerate(zip(weights, clouds, strict=True)):
                weight = np.asarray(weight, dtype=np.float64).reshape(-1)
                if weight.shape[0] != cloud.shape[0]:
                    raise ValueError(
                        f"snapshot {k}: {weight.shape[0]} weights for {cloud.shape[0]} particles"
                    )
                if not np.all(np.isfinite(weight)) or np.any(weight <= 0):
                    raise ValueError(
                        f"snapshot {k}: weights must be finite and positive (zero weights are "
                        "rejected; drop those particles instead)"
                    )
                normalised_list.append(weight / weight.sum())
            normalised = tuple(normalised_list)
        object.__setattr__(self, "times", time_array)
        object.__setattr__(self, "particles", clouds)
        object.__setattr__(self, "weights", normalised)

    @property
    def dim(self) -> int:
        """State dimension ``d``."""
        return int(self.particles[0].shape[1])

    @property
    def counts(self) -> tuple[int, ...]:
        """Particle counts ``n_k`` per snapshot."""
        return tuple(int(cloud.shape[0]) for cloud in self.particles)

    def __len__(self) -> int:
        return len(self.particles)

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_array(cls, values: Any, times: Sequence[float] | np.ndarray) -> Snapshots:
        """Snapshots from one ``(K + 1, n, d)`` array and its ``(K + 1,)`` times."""
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 3:
            raise ValueError(f"expected an array of shape (snapshots, n, d); got {array.shape}")
        return cls(times, list(array))

    @classmethod
    def from_npz(cls, path: str | Path, times_are: str = "absolute") -> Snapshots:
        """Read an ``.npz`` file (no pickle).

        Benchmark layout: ``Xs`` ``(K + 1, n, d)``, ``dts`` ``(K + 1,)`` and ``N_steps``
        (``= K + 1``). In the shipped files ``dts`` holds absolute times; pass
        ``times_are="gaps"`` when it holds gaps (times are then its cumulative sum).
        Package layout: ``times``, ``X_0`` ... ``X_K`` and optional ``w_0`` ... ``w_K``.
        """
        if times_are not in ("absolute", "gaps"):
            raise ValueError(f"times_are must be 'absolute' or 'gaps', got {times_are!r}")
        with np.load(Path(path), allow_pickle=False) as archive:
            keys = set(archive.files)
            if set(BENCHMARK_KEYS) <= keys:
                clouds = archive["Xs"].astype(np.float64)
                stamps = _float64_times(archive["dts"])
                steps = int(archive["N_steps"])
                if steps != clouds.shape[0] or stamps.size != clouds.shape[0]:
                    raise ValueError(
                        f"{path}: N_steps = {steps} and dts of length {stamps.size} must both "
                        f"equal the number of snapshots in Xs ({clouds.shape[0]})"
                    )
                if times_are == "gaps":
                    logger.info("%s: reading dts as gaps; times are their cumulative sum", path)
                    stamps = np.cumsum(stamps)
                return cls.from_array(clouds, stamps)
            if "times" in keys:
                stamps = archive["times"].astype(np.float64).reshape(-1)
                missing = [f"X_{k}" for k in range(stamps.size) if f"X_{k}" not in keys]
                if missing:
                    raise ValueError(f"{path}: keys {missing} missing; found {sorted(keys)}")
                extra = sorted(k for k in keys if k.startswith("X_") and k not in
                               {f"X_{i}" for i in range(stamps.size)})  # fmt: skip
                if extra:
                    raise ValueError(
                        f"{path}: 'times' has {stamps.size} entries but the file also holds "
                        f"{extra}; give one time per cloud"
                    )
                clouds_list = [archive[f"X_{k}"] for k in range(stamps.size)]
                weights = None
                if "w_0" in keys:
                    weights = [archive[f"w_{k}"] for k in range(stamps.size)]
                return cls(stamps, clouds_list, weights)
        raise ValueError(
            f"{path}: expected keys {list(BENCHMARK_KEYS)} (benchmark layout) or 'times', "
            f"'X_0', ... (package layout); found {sorted(keys)}"
        )

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        time_column: str = "time",
        feature_columns: Sequence[str] | None = None,
        id_columns: Sequence[str] = (),
        weight_column: str | None = "weight",
    ) -> Snapshots:
        """Read a long-format CSV with a header: one row per particle.

        Features are ``feature_columns``, else every other numeric column except
        ``id_columns`` and the weight column. Rows are grouped by time rounded to 9 decimals.
        """
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            raise ValueError(f"{path}: no data rows")
        header = list(rows[0].keys())
        if time_column not in header:
            raise ValueError(f"{path}: no time column {time_column!r}; columns are {header}")
        skip = {time_column, *id_columns}
        has_weight = weight_column is not None and weight_column in header
        if has_weight and weight_column is not None:
            skip.add(weight_column)
        if feature_columns is None:
            feature_columns = [name for name in header if name not in skip]
            feature_columns = [name for name in feature_columns if _is_number(rows[0][name])]
        missing = [name for name in feature_columns if name not in header]
        if missing or not feature_columns:
            raise ValueError(f"{path}: feature columns {missing or '[]'} not usable; {header}")
        wanted = [time_column, *feature_columns] + ([weight_column] if has_weight else [])
        groups: dict[float, list[list[float]]] = {}
        for line, row in enumerate(rows, start=2):
            values = []
            for name in wanted:
                cell = (row.get(name) or "").strip()
                if not cell:
                    raise ValueError(f"{path}: empty cell in column {name!r} on line {line}")
                try:
                    values.append(float(cell))
                except ValueError as error:
                    raise ValueError(
                        f"{path}: column {name!r} on line {line} is not a number: {cell!r}"
                    ) from error
            groups.setdefault(round(values[0], 9), []).append(values[1:])
        times = sorted(groups)
        data = [np.asarray(groups[t]) for t in times]
        n_features = len(feature_columns)
        clouds = [block[:, :n_features] for block in data]
        weights = [block[:, n_features] for block in data] if has_weight else None
        return cls(times, clouds, weights)

    @classmethod
    def from_h5ad(
        cls,
        path: str | Path,
        time_key: str = "time",
        embedding_key: str = "X_pca",
        n_components: int | None = None,
        time_parser: Callable[[Any], float] | None = None,
    ) -> Snapshots:
        """Read AnnData: times from ``obs[time_key]``, coordinates from ``obsm[embedding_key]``.

        Needs the ``anndata`` extra (``pip install "marginkit-mmsb[anndata]"``). String
        labels such as ``"day3"`` are turned into numbers by ``time_parser``.
        """
        try:
            import anndata
        except ImportError as error:
            raise ImportError(
                'reading .h5ad needs anndata: pip install "marginkit-mmsb[anndata]"'
            ) from error
        adata = anndata.read_h5ad(path)
        if time_key not in adata.obs:
            raise KeyError(f"obs has no {time_key!r}; available: {list(adata.obs.columns)}")
        if embedding_key not in adata.obsm:
            raise KeyError(f"obsm has no {embedding_key!r}; available: {list(adata.obsm.keys())}")
        embedding = np.asarray(adata.obsm[embedding_key], dtype=np.float64)
        if n_components is not None:
            embedding = embedding[:, :n_components]
        labels = list(adata.obs[time_key])
        parse = time_parser or float
        stamps = np.asarray([round(float(parse(label)), 9) for label in labels])
        times = np.unique(stamps)
        return cls(times, [embedding[stamps == t] for t in times])

    # ---------------------------------------------------------------- output and splits

    def to_npz(self, path: str | Path) -> None:
        """Write the package layout ``times``, ``X_k``, ``w_k`` (readable by ``from_npz``)."""
        arrays: dict[str, np.ndarray] = {"times": self.times}
        for k, (cloud, weight) in enumerate(zip(self.particles, self.weights, strict=True)):
            arrays[f"X_{k}"] = cloud
            arrays[f"w_{k}"] = weight
        np.savez(Path(path), **arrays)  # type: ignore[arg-type]

    def subset(self, indices: Sequence[int]) -> Snapshots:
        """The snapshots at the given indices, in increasing order."""
        chosen = sorted(int(i) for i in indices)
        return Snapshots(
            self.times[chosen],
            [self.particles[i] for i in chosen],
            [self.weights[i] for i in chosen],
        )

    def split_alternate(self) -> tuple[Snapshots, Snapshots | None]:
        """Even indices for training, odd interior indices held out (the paper's protocol).

        The last snapshot always trains, also when its index is odd: a held-out time after
        the last training time would need extrapolation, which the bridge does not do.
        """
        if len(self) < 3:
            raise ValueError(f"split_alternate needs at least 3 snapshots, got {len(self)}")
        last = len(self) - 1
        train = sorted({*range(0, len(self), 2), last})
        odd = [k for k in range(1, last, 2)]
        return self.subset(train), self._subset_loose(odd)

    def split(self, heldout_times: Sequence[float]) -> tuple[Snapshots, Snapshots | None]:
        """Hold out the snapshots whose times equal ``heldout_times`` (matched to 1e-9)."""
        held_idx = []
        for t in heldout_times:
            match = np.flatnonzero(np.abs(self.times - float(t)) <= 1e-9)
            if match.size == 0:
                raise ValueError(f"held-out time {t} is not one of {self.times.tolist()}")
            if int(match[0]) in (0, len(self) - 1):
                raise ValueError(
                    f"held-out time {t} is the first or last snapshot; the bridge predicts "
                    f"only inside [{self.times[0]}, {self.times[-1]}], so hold out interior ones"
                )
            held_idx.append(int(match[0]))
        train_idx = [k for k in range(len(self)) if k not in held_idx]
        return self.subset(train_idx), self._subset_loose(held_idx)

    def _subset_loose(self, indices: Sequence[int]) -> Snapshots | None:
        """Like ``subset`` but allows a single snapshot (held-out sets may have one)."""
        if not indices:
            return None
        if len(indices) == 1:
            k = int(indices[0])
            padded = _HeldOut(self.times[[k]], (self.particles[k],), (self.weights[k],))
            return padded  # type: ignore[return-value]
        return self.subset(indices)


@dataclass(frozen=True)
class _HeldOut:
    """A held-out set with possibly one snapshot (only ``times``/``particles``/``weights``)."""

    times: np.ndarray
    particles: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.particles)


def _float64_times(values: np.ndarray) -> np.ndarray:
    """Times as float64; float32 input is read by its shortest decimal (1.6, not 1.60000002)."""
    values = np.asarray(values).reshape(-1)
    if values.dtype == np.float32:
        return np.array([float(np.format_float_positional(v)) for v in values])
    return values.astype(np.float64)


def _is_number(text: str | None) -> bool:
    try:
        return math.isfinite(float(text or ""))
    except ValueError:
        return False
