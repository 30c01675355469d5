"""The digits demo: base losses with and without TCM over seeds, plus raw pixels."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from marginkit.tcm.config import DemoConfig
from marginkit.tcm.pareto import markdown_table, plot_pareto, summarize_runs, write_report


def run_demo(config: DemoConfig) -> list[dict[str, Any]]:
    """Train every (base loss, TCM on/off, seed), evaluate, print the table, plot the front."""
    from marginkit.tcm.data import digits_open_world
    from marginkit.tcm.evaluate import evaluate_embeddings
    from marginkit.tcm.train import TrainConfig, train

    out = Path(config.out_dir)
    _, _, x_test, y_test = digits_open_world()
    runs: list[dict[str, Any]] = []
    raw = evaluate_embeddings(x_test + 1e-6, y_test)  # raw pixels; offset keeps rows nonzero
    runs.append({"config": "raw pixels", "seed": 0, **raw})
    for base in config.base_losses:
        for use_tcm in (False, True):
            for seed in config.seeds:
                train_config = TrainConfig(
                    base_loss=base,  # type: ignore[arg-type]
                    use_tcm=use_tcm,
                    epochs=config.epochs,
                    hidden=tuple(config.hidden),
                    seed=seed,
                    out_dir=str(out / "runs" / f"{base}-tcm{int(use_tcm)}-seed{seed}"),
                    resume=False,
                )
                runs.append(train(train_config))
    rows = summarize_runs(
        runs,
        metrics=(
            "R@1",
            "MAP@R",
            "opis",
            "eps_opis",
            "share_neg_above_m_neg",
            "share_pos_below_m_pos",
            "train_share_hard_neg/first_epoch",
            "train_share_hard_neg/last_epoch",
        ),
    )
    write_report(rows, out)
    _print_table(rows, runs[0])
    _print_deltas(rows, config)
    try:
        path = plot_pareto(rows, out / "pareto.png")
        print(f"\nPareto plot: {path}")
    except ImportError:
        print("\n(matplotlib not installed: no Pareto plot; pip install marginkit-tcm[plot])")
    return rows


def _print_table(rows: list[dict[str, Any]], first_run: dict[str, Any]) -> None:
    keys = [
        "config",
        "n",
        "R@1",
        "MAP@R",
        "opis x1e3",
        "eps_opis x1e3",
        "test neg>=m-",
        "test pos<=m+",
        "train hard neg ep1->last",
        "pareto",
    ]
    table = []
    for row in rows:

        def pm(metric: str, scale: float = 1.0, row: dict[str, Any] = row) -> str:
            return f"{row[metric + '/mean'] * scale:.3f} ± {row[metric + '/sd'] * scale:.3f}"

        first = row.get("train_share_hard_neg/first_epoch/mean")
        last = row.get("train_share_hard_neg/last_epoch/mean")
        table.append(
            {
                "config": row["config"],
                "n": row["n"],
                "R@1": pm("R@1"),
                "MAP@R": pm("MAP@R"),
                "opis x1e3": pm("opis", 1e3),
                "eps_opis x1e3": pm("eps_opis", 1e3),
                "test neg>=m-": f"{row['share_neg_above_m_neg/mean']:.3f}",
                "test pos<=m+": f"{row['share_pos_below_m_pos/mean']:.3f}",
                "train hard neg ep1->last": "-" if first is None else f"{first:.3f} -> {last:.3f}",
                "pareto": "yes" if row["pareto"] else "no",
            }
        )
    print(markdown_table(table, keys))
    settings = {k: v for k, v in first_run.items() if k.startswith("config/")}
    print(
        f"\nOPIS settings: T={first_run['num_classes']} test classes, min class size "
        f"{first_run['min_class_size']}, {settings}"
    )


def _print_deltas(rows: list[dict[str, Any]], config: DemoConfig) -> None:
    from marginkit.tcm.train import TrainConfig, run_name

    by_name = {row["config"]: row for row in rows}
    print("\nOPIS(TCM) - OPIS(base) over its standard error (|delta|/SE < ~2: within noise):")
    for base in config.base_losses:
        settings: dict[str, Any] = {"base_loss": base, "hidden": tuple(config.hidden)}
        names = [run_name(TrainConfig(use_tcm=flag, **settings)) for flag in (False, True)]
        off, on = by_name.get(names[0]), by_name.get(names[1])
        if off is None or on is None:
            continue
        delta = on["opis/mean"] - off["opis/mean"]
        se = math.sqrt(on["opis/sd"] ** 2 / on["n"] + off["opis/sd"] ** 2 / off["n"])
        ratio = delta / se if se > 0 else float("nan")
        print(
            f"  {base}: delta = {delta * 1e3:+.3f}e-3, SE = {se * 1e3:.3f}e-3, "
            f"delta/SE = {ratio:+.2f}"
        )
