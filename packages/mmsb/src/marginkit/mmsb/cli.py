"""Command line ``marginkit-mmsb fit | predict | demo`` built from config dataclasses."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .config import SBIRRConfig

logger = logging.getLogger(__name__)


@dataclass
class FitConfig:
    """Fit a reference drift to snapshots; write parameters, scores, trajectories and a plot."""

    data: str = ""
    """Snapshots file: .npz, .csv (long format with a time column) or .h5ad."""
    reference: str = "linear"
    """Drift family: brownian, linear, rotation, lotka_volterra or repressilator."""
    heldout: str = "alternate"
    """'alternate' (fit even indices, score odd ones), 'none', or comma-separated times."""
    output_dir: str = "outputs/mmsb/fit"
    """Folder for fit.json, trajectories.npz and fit.png."""
    times_are: str = "absolute"
    """For benchmark-layout npz: 'absolute' times or 'gaps' in dts."""
    time_column: str = "time"
    """CSV time column / AnnData obs key."""
    embedding_key: str = "X_pca"
    """AnnData obsm key of the coordinates."""
    plot: bool = True
    """Write fit.png (needs matplotlib)."""
    sbirr: SBIRRConfig = field(default_factory=SBIRRConfig)
    """Method settings."""


@dataclass
class PredictConfig:
    """Clouds at chosen times from a fit (reloads the data and the fitted parameters)."""

    data: str = ""
    """The snapshots file the fit used."""
    fit_json: str = "outputs/mmsb/fit/fit.json"
    """fit.json written by `fit`."""
    times: tuple[float, ...] = (0.5,)
    """Times to predict (inside the data's time range)."""
    n: int = 200
    """Draws per time."""
    seed: int = 0
    """Sampling seed."""
    output: str = "outputs/mmsb/predict.npz"
    """Output npz with 'times' and 'X_0'... (one cloud per time, in the order given)."""
    times_are: str = "absolute"
    """As for `fit`: benchmark-layout npz 'absolute' times or 'gaps' in dts."""
    time_column: str = "time"
    """As for `fit`: CSV time column / AnnData obs key."""
    embedding_key: str = "X_pca"
    """As for `fit`: AnnData obsm key of the coordinates."""


@dataclass
class DemoConfig:
    """Linear SDE, Lotka-Volterra and (when present) Gulf of Mexico drifters: vanilla vs refined."""

    output_dir: str = "outputs/mmsb/demo"
    """Folder for metrics.json and the PNGs."""
    data_dir: str = ""
    """Folder with GoM_data.npz (default: ../shared/data/mmsb or $MARGINKIT_DATA_DIR/mmsb)."""
    n_outer: int = 10
    """Refinement iterations for each system."""
    seeds: int = 3
    """Held-out scoring seeds."""
    benchmark: bool = False
    """Also fit the repressilator (slower)."""


def load_snapshots(
    path: str, times_are: str = "absolute", time_column: str = "time", embedding_key: str = "X_pca"
):
    """Read ``path`` by its suffix."""
    from .data import Snapshots

    suffix = Path(path).suffix.lower()
    if not path or not Path(path).is_file():
        raise SystemExit(f"data file {path!r} not found; pass --data PATH")
    if suffix == ".npz":
        return Snapshots.from_npz(path, times_are=times_are)
    if suffix == ".csv":
        return Snapshots.from_csv(path, time_column=time_column)
    if suffix == ".h5ad":
        return Snapshots.from_h5ad(path, time_key=time_column, embedding_key=embedding_key)
    raise SystemExit(f"unknown data format {suffix!r}; use .npz, .csv or .h5ad")


def _split(snaps, heldout: str):
    if heldout == "alternate":
        return snaps.split_alternate()
    if heldout == "none":
        return snaps, None
    try:
        times = [float(value) for value in heldout.split(",")]
    except ValueError:
        raise ValueError(
            f"--heldout must be 'alternate', 'none' or comma-separated times, got {heldout!r}"
        ) from None
    return snaps.split(times)


def fit_command(config: FitConfig) -> dict:
    import numpy as np

    from .metrics import heldout_w2
    from .model import SBIRR
    from .references import make_reference

    snaps = load_snapshots(config.data, config.times_are, config.time_column, config.embedding_key)
    train, held = _split(snaps, config.heldout)
    model = SBIRR(make_reference(config.reference, snaps.dim), config.sbirr).fit(train)
    result = {
        "reference": config.reference,
        "parameters": model.reference.parameters(),
        "train_times": train.times.tolist(),
        "config": dataclasses.asdict(config.sbirr),
        "history": model.history,
    }
    if held is not None:
        result["heldout_w2"] = {str(t): v for t, v in heldout_w2(model, held).items()}
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fit.json").write_text(json.dumps(result, indent=2))
    from marginkit.shared.logging import MetricsWriter

    with MetricsWriter(out / "metrics.jsonl") as writer:
        for step in range(len(model.history["iteration"])):
            record = {k: v[step] for k, v in model.history.items() if len(v) > step}
            writer.write(record, step=step)
    if config.sbirr.bridge != "gp_ipf":
        times, paths = model.sample_trajectories()
        np.savez(out / "trajectories.npz", times=times, paths=paths)
    if config.plot:
        from .plot import plot_fit

        plot_fit(model, held, out / "fit.png")
    print(f"parameters: {model.reference.describe()}")
    for t, score in result.get("heldout_w2", {}).items():
        print(f"held-out t={t}: W2 {score:.4f}")
    print(f"wrote {out}")
    return result


def predict_command(config: PredictConfig) -> Path:
    import numpy as np

    from .model import SBIRR
    from .references import make_reference

    if config.n < 1 or not config.times:
        raise ValueError(f"need --n >= 1 and at least one --times value, got {config.n}")
    if not Path(config.fit_json).is_file():
        raise SystemExit(f"fit file {config.fit_json!r} not found; run `marginkit-mmsb fit` first")
    fitted = json.loads(Path(config.fit_json).read_text())
    snaps = load_snapshots(config.data, config.times_are, config.time_column, config.embedding_key)
    train = snaps.subset([int(np.argmin(np.abs(snaps.times - t))) for t in fitted["train_times"]])
    reference = make_reference(fitted["reference"], snaps.dim, fitted["parameters"])
    settings = SBIRRConfig(**{**fitted["config"], "n_outer": 0, "init_bridge": "reference"})
    model = SBIRR(reference, settings).fit(train)
    clouds = [
        model.predict_marginal(t, config.n, seed=config.seed + i)
        for i, t in enumerate(config.times)
    ]
    out = Path(config.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Not through Snapshots: one time, or times in any order, are valid requests here.
    arrays = {"times": np.asarray(config.times, dtype=np.float64)}
    for k, cloud in enumerate(clouds):
        arrays[f"X_{k}"] = cloud
        arrays[f"w_{k}"] = np.full(len(cloud), 1.0 / len(cloud))
    np.savez(out, **arrays)  # type: ignore[arg-type]
    print(f"wrote {len(clouds)} clouds of {config.n} to {out}")
    return out


def demo_command(config: DemoConfig) -> dict:
    from .demo import run_demo

    return run_demo(config)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``marginkit-mmsb``."""
    from marginkit.shared.cli import run_commands
    from marginkit.shared.logging import setup_logging

    setup_logging()
    run_commands(
        "marginkit-mmsb",
        {
            "fit": (FitConfig, fit_command),
            "predict": (PredictConfig, predict_command),
            "demo": (DemoConfig, demo_command),
        },
        argv,
    )


if __name__ == "__main__":
    main()
