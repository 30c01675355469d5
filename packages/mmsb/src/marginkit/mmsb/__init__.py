"""Multi-marginal Schrödinger bridges with iterative reference refinement (SBIRR).

Fit an SDE drift family to unpaired snapshots: alternate a bridge step (entropic OT with exact
or linear-noise Gaussian bridges, or GP-IPF) and a maximum-likelihood refit of the drift on
the bridge paths. See :class:`SBIRR`. Names are imported on first use, so that the command
line starts without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SBIRR": "model",
    "SBIRRConfig": "config",
    "Snapshots": "data",
    "Brownian": "references",
    "Linear": "references",
    "LotkaVolterra": "references",
    "Parametric": "references",
    "Reference": "references",
    "Repressilator": "references",
    "Rotation": "references",
    "make_reference": "references",
    "Coupling": "sinkhorn",
    "SinkhornConvergenceWarning": "sinkhorn",
    "log_sinkhorn": "sinkhorn",
    "TransitionError": "transitions",
    "van_loan": "transitions",
    "plot_fit": "plot",
}
_MODULES = ("metrics", "simulate")

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
