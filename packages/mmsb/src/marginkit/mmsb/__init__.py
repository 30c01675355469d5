"""Multi-marginal Schrödinger bridges with iterative reference refinement (SBIRR).

Fit an SDE drift family to unpaired snapshots: alternate a bridge step (entropic OT with exact
or linear-noise Gaussian bridges, or GP-IPF) and a maximum-likelihood refit of the drift on
the bridge paths. See :class:`SBIRR`.
"""

from . import metrics, simulate
from .config import SBIRRConfig
from .data import Snapshots
from .model import SBIRR
from .references import (
    Brownian,
    Linear,
    LotkaVolterra,
    Parametric,
    Reference,
    Repressilator,
    Rotation,
)
from .sinkhorn import Coupling, SinkhornConvergenceWarning, log_sinkhorn
from .transitions import TransitionError, van_loan

__version__ = "0.1.0"

__all__ = [
    "SBIRR",
    "Brownian",
    "Coupling",
    "Linear",
    "LotkaVolterra",
    "Parametric",
    "Reference",
    "Repressilator",
    "Rotation",
    "SBIRRConfig",
    "SinkhornConvergenceWarning",
    "Snapshots",
    "TransitionError",
    "log_sinkhorn",
    "metrics",
    "simulate",
    "van_loan",
]
