"""A PNG of the snapshots, inferred trajectories and held-out predictions (first two axes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import SBIRR


def plot_fit(model: SBIRR, heldout=None, path: str | Path = "fit.png", n_paths: int = 60) -> Path:
    """Draw training snapshots (dots), ``n_paths`` trajectories (lines) and, when given, the
    held-out snapshots (crosses) with the model's predictions there (circles).

    Needs matplotlib (``pip install "marginkit-mmsb[demo]"``). Returns the written path.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError('plots need matplotlib: pip install "marginkit-mmsb[demo]"') from error
    snaps = model._check_fitted()
    figure, axis = plt.subplots(figsize=(6, 5))
    colours = plt.get_cmap("viridis")
    span = float(snaps.times[-1] - snaps.times[0])

    def colour(t: float):
        return colours((t - snaps.times[0]) / span)

    if model.config.bridge != "gp_ipf":
        _, paths = model.sample_trajectories(n_paths=n_paths, seed=0)
        for path_states in paths:
            axis.plot(path_states[:, 0], path_states[:, 1], color="grey", lw=0.4, alpha=0.5)
    for t, cloud in zip(snaps.times, snaps.particles, strict=True):
        axis.scatter(cloud[:, 0], cloud[:, 1], s=4, color=colour(t), label=f"train t={t:g}")
    if heldout is not None:
        for t, cloud in zip(heldout.times, heldout.particles, strict=True):
            predicted = model.predict_marginal(float(t), len(cloud), seed=1)
            axis.scatter(cloud[:, 0], cloud[:, 1], s=8, marker="x", color=colour(t))
            axis.scatter(
                predicted[:, 0], predicted[:, 1], s=10, facecolors="none", edgecolors=colour(t)
            )
    axis.set_xlabel("x1")
    axis.set_ylabel("x2")
    axis.set_title(f"{model.reference.name}: dots train, x held out, o predicted")
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target
