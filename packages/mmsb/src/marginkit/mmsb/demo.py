"""The demo: fit on even-indexed snapshots, score the odd ones, vanilla bridge vs refined.

Systems: a linear SDE with known ``A`` (parameter error per iteration), Lotka-Volterra from
the package's simulator (parameters vs truth) and, when the data folder holds it, the Gulf of
Mexico drifters with the rotation reference. Prints tables; writes metrics.json and PNGs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import simulate
from .config import SBIRRConfig
from .data import Snapshots
from .metrics import heldout_w2, noise_floor, relative_errors, w2
from .model import SBIRR
from .references import (
    Brownian,
    Linear,
    LotkaVolterra,
    Reference,
    Repressilator,
    Rotation,
    make_reference,
)

if TYPE_CHECKING:
    from .cli import DemoConfig

logger = logging.getLogger(__name__)


def find_data_dir(explicit: str = "") -> Path | None:
    """``explicit``, else ``$MARGINKIT_DATA_DIR/mmsb``, else ``../shared/data/mmsb`` beside the
    repository root (the folder holding noxfile.py), when it exists."""
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("MARGINKIT_DATA_DIR"):
        candidates.append(Path(os.environ["MARGINKIT_DATA_DIR"]) / "mmsb")
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if (parent / "noxfile.py").is_file():
            candidates.append(parent.parent / "shared" / "data" / "mmsb")
            break
    return next((path for path in candidates if path.is_dir()), None)


def _scores(model: SBIRR, held, seeds: int) -> tuple[np.ndarray, float]:
    """Held-out W2 per time (mean over seeds) and the sd over seeds of the mean over times."""
    runs = np.array([list(heldout_w2(model, held, seed=100 * s).values()) for s in range(seeds)])
    return runs.mean(0), float(runs.mean(1).std())


def compare(
    name: str,
    snaps: Snapshots,
    reference: Reference,
    config: SBIRRConfig,
    seeds: int,
    floor: np.ndarray,
    out: Path,
    oracle: Reference | None = None,
) -> tuple[SBIRR, dict]:
    """Fit vanilla and refined bridges on even snapshots, print the held-out table.

    Baselines: exact OT with straight lines (the sigma -> 0 limit) and, when the true drift
    is known, the oracle bridge with the true drift as fixed reference.
    """
    train, held = snaps.split_alternate()
    if held is None:
        raise ValueError(f"{name}: need at least one held-out snapshot")
    vanilla = SBIRR(Brownian(snaps.dim), config.replace(n_outer=0)).fit(train)
    exact = SBIRR(Brownian(snaps.dim), config.replace(n_outer=0, bridge="exact_ot")).fit(train)
    exact_w2, _ = _scores(exact, held, seeds)
    oracle_w2 = np.full(len(held), np.nan)
    if oracle is not None:
        fixed = config.replace(n_outer=0, init_bridge="reference")
        oracle_w2, _ = _scores(SBIRR(oracle, fixed).fit(train), held, seeds)
    started = time.perf_counter()
    refined = SBIRR(reference, config).fit(train)
    seconds = time.perf_counter() - started
    iterations = max(len(refined.history["iteration"]) - 1, 1)
    van_w2, van_sd = _scores(vanilla, held, seeds)
    ref_w2, ref_sd = _scores(refined, held, seeds)
    print(f"\n[{name}] held-out W2 (fit on t = {train.times.tolist()})")
    print(f"{'t':>6} {'vanilla':>9} {'refined':>9} {'exact OT':>9} {'oracle':>9} {'floor':>7}")
    columns = (van_w2, ref_w2, exact_w2, oracle_w2, floor)
    for t, *values in zip(held.times, *columns, strict=True):
        print(f"{t:>6.2f} " + " ".join(f"{v:>9.4f}" for v in values[:4]) + f" {values[4]:>7.4f}")
    means = [float(np.mean(column)) for column in columns]
    print(
        f"{'mean':>6} " + " ".join(f"{v:>9.4f}" for v in means[:4]) + f" {means[4]:>7.4f}"
        f"   (sd of the mean over {seeds} seeds: vanilla {van_sd:.4f}, refined {ref_sd:.4f})"
    )
    print(
        f"refined/vanilla = {ref_w2.mean() / van_w2.mean():.3f}; {seconds / iterations:.2f} s "
        f"per outer iteration; fitted {refined.reference.describe()}"
    )
    try:
        from .plot import plot_fit

        plot_fit(refined, held, out / f"{name}.png")
    except ImportError as error:
        logger.warning("no plot: %s", error)
    record = {
        "heldout_times": held.times.tolist(),
        "w2/vanilla": van_w2.tolist(),
        "w2/refined": ref_w2.tolist(),
        "w2/floor": list(map(float, floor)),
        "w2/exact_ot": exact_w2.tolist(),
        "w2/oracle": oracle_w2.tolist(),
        "w2/ratio": float(ref_w2.mean() / van_w2.mean()),
        "seconds_per_iteration": seconds / iterations,
        "parameters": refined.reference.parameters(),
        "history": refined.history,
    }
    return refined, record


def _floor(snaps: Snapshots, replicate: Snapshots) -> np.ndarray:
    """W2 between each held-out snapshot and an independent replicate of it."""
    return np.array(
        [w2(a, b) for a, b in zip(snaps.particles[1::2], replicate.particles[1::2], strict=True)]
    )


def run_demo(config: DemoConfig) -> dict:
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    settings = SBIRRConfig(n_outer=config.n_outer)

    snaps = simulate.linear(seed=0)
    model, record = compare(
        "linear",
        snaps,
        Linear(2),
        settings,
        config.seeds,
        _floor(snaps, simulate.linear(seed=1)),
        out,
        oracle=Linear(2, A=simulate.DEFAULT_A),
    )
    truth = simulate.DEFAULT_A
    errors = []
    for i in range(len(model.history["iteration"])):
        A = np.array([[model.history[f"theta/A{r}{c}"][i] for c in (1, 2)] for r in (1, 2)])
        errors.append(float(np.linalg.norm(A - truth)))
    print("||A_hat - A*||_F per iteration: " + ", ".join(f"{e:.4f}" for e in errors))
    record["A_error_per_iteration"] = errors
    results["linear"] = record

    snaps = simulate.lotka_volterra(seed=0)
    model, record = compare(
        "lotka_volterra",
        snaps,
        LotkaVolterra(),
        settings,
        config.seeds,
        _floor(snaps, simulate.lotka_volterra(seed=1)),
        out,
        oracle=LotkaVolterra(**simulate.LV_TRUTH),
    )
    rel = relative_errors(model.reference.parameters(), simulate.LV_TRUTH)
    print(f"{'param':>7} {'truth':>7} {'fitted':>8} {'rel.err':>8}")
    for key, value in simulate.LV_TRUTH.items():
        print(f"{key:>7} {value:>7.3f} {model.reference.parameters()[key]:>8.4f} {rel[key]:>8.4f}")
    record["relative_error"] = rel
    results["lotka_volterra"] = record

    data_dir = find_data_dir(config.data_dir)
    gom = data_dir / "GoM_data.npz" if data_dir else None
    if gom is not None and gom.is_file():
        snaps = Snapshots.from_npz(gom)
        rng = np.random.default_rng(0)
        floor = np.array([noise_floor(c, rng) for c in snaps.particles[1::2]])
        _, record = compare(
            "gulf_of_mexico",
            snaps,
            Rotation(centre=(0.0, -0.3)),
            settings,
            config.seeds,
            floor,
            out,
        )
        print("(floor here: W2 between two halves of each snapshot, at n/2)")
        results["gulf_of_mexico"] = record
    else:
        print("\n[gulf_of_mexico] skipped: GoM_data.npz not found (set MARGINKIT_DATA_DIR)")

    if config.benchmark:
        snaps = simulate.repressilator(seed=0)
        _, record = compare(
            "repressilator",
            snaps,
            Repressilator(),
            settings,
            config.seeds,
            _floor(snaps, simulate.repressilator(seed=1)),
            out,
            oracle=make_reference("repressilator", 3, simulate.REPRESSILATOR_TRUTH),
        )
        results["repressilator"] = record

    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out / 'metrics.json'} and PNGs")
    return results


if __name__ == "__main__":
    from .cli import main

    main(["demo"])
