"""Reference SDE families ``dX = b_theta(X, t) dt + sigma dW`` and their theta-steps.

Linear in the state (exact Gaussian transitions): :class:`Brownian` (``b = 0``),
:class:`Linear` (``b = A x + c``, closed-form refit) and :class:`Rotation`
(``b = s((x_2 - c_2) e^{-l}, -(x_1 - c_1))``, clockwise for ``s > 0``). Nonlinear (LNA
transitions): :class:`LotkaVolterra`, :class:`Repressilator` and :class:`Parametric` (any
row-wise float64 torch module). Positive parameters are kept positive by softplus (or by
NNLS for the Lotka-Volterra closed form), never by ``abs``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as functional

from .refine import PathBatch, fit_affine, fit_linear_in_parameters, fit_torch, stack_increments


def _inverse_softplus(value: float) -> float:
    return float(value + math.log(-math.expm1(-value))) if value < 30 else float(value)


class Reference:
    """Base class. Subclasses give ``drift``, ``jacobian``, ``parameters`` and ``fit``."""

    name = "reference"
    is_linear = False

    def drift(self, x: np.ndarray, t: float) -> np.ndarray:
        """``b(x, t)`` for ``x`` ``(n, d)``; returns ``(n, d)``."""
        A, c = self.linear_coefficients()
        return x @ A.T + c

    def jacobian(self, x: np.ndarray, t: float) -> np.ndarray:
        """``db/dx`` at each row of ``x`` ``(n, d)``; returns ``(n, d, d)``."""
        A, _ = self.linear_coefficients()
        return np.broadcast_to(A, (x.shape[0], *A.shape)).copy()

    def linear_coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """``(A, c)`` of a state-linear drift (only when ``is_linear``)."""
        raise NotImplementedError(f"{self.name} is not linear in the state")

    def parameters(self) -> dict[str, float]:
        """Current parameters by name (natural, constrained values)."""
        return {}

    def vector(self) -> np.ndarray:
        """Parameters as one vector (for tolerances and damping)."""
        return np.asarray(list(self.parameters().values()), dtype=np.float64)

    def set_vector(self, values: np.ndarray) -> None:
        """Inverse of :meth:`vector`."""
        if len(values):
            raise NotImplementedError

    def fit(self, paths: Sequence[PathBatch], sigma: float) -> None:
        """Theta-step: refit the parameters in place on ``paths``."""

    def describe(self) -> str:
        return ", ".join(f"{k}={v:.4g}" for k, v in self.parameters().items()) or "no parameters"

    def copy(self) -> Reference:
        return copy.deepcopy(self)


class Brownian(Reference):
    """Zero drift: the reference of the vanilla Schrödinger bridge."""

    name = "brownian"
    is_linear = True

    def __init__(self, dim: int = 2) -> None:
        self.dim = int(dim)

    def linear_coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((self.dim, self.dim)), np.zeros(self.dim)


class Linear(Reference):
    """``b(x) = A x + c``, refit in closed form; ``mask`` ``(d, d)`` marks free entries of A."""

    name = "linear"
    is_linear = True

    def __init__(
        self,
        dim: int = 2,
        A: np.ndarray | None = None,
        c: np.ndarray | None = None,
        bias: bool = True,
        mask: np.ndarray | None = None,
    ) -> None:
        self.dim = int(dim)
        self.A = np.zeros((dim, dim)) if A is None else np.array(A, dtype=np.float64)
        self.c = np.zeros(dim) if c is None or not bias else np.array(c, dtype=np.float64)
        self.bias = bool(bias)
        self.mask = None if mask is None else np.asarray(mask, dtype=bool)
        if self.A.shape != (dim, dim) or self.c.shape != (dim,):
            raise ValueError(f"A must be ({dim}, {dim}) and c ({dim},); got {self.A.shape}")

    def linear_coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        return self.A, self.c

    def parameters(self) -> dict[str, float]:
        names = {f"A{i + 1}{j + 1}": self.A[i, j] for i in range(self.dim) for j in range(self.dim)}
        if self.bias:
            names.update({f"c{i + 1}": self.c[i] for i in range(self.dim)})
        return {k: float(v) for k, v in names.items()}

    def set_vector(self, values: np.ndarray) -> None:
        d = self.dim
        self.A = np.asarray(values[: d * d], dtype=np.float64).reshape(d, d)
        if self.bias:
            self.c = np.asarray(values[d * d :], dtype=np.float64)

    def fit(self, paths: Sequence[PathBatch], sigma: float) -> None:
        self.A, self.c = fit_affine(paths, mask=self.mask, bias=self.bias)


class _TorchFitted(Reference):
    """A reference whose theta-step is full-batch L-BFGS on raw (unconstrained) parameters."""

    raw: torch.Tensor

    def torch_drift(self, x: torch.Tensor, t: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, paths: Sequence[PathBatch], sigma: float) -> None:
        raw = self.raw.detach().clone().requires_grad_(True)
        fit_torch([raw], lambda x, t: self.torch_drift(x, t, raw), paths, sigma)
        self.raw = raw.detach()


class Rotation(_TorchFitted):
    """``b(x) = s((x_2 - c_2) e^{-l}, -(x_1 - c_1))``: elliptic rotation about ``(c_1, c_2)``.

    Linear in the state (exact transitions); ``s > 0`` (softplus) turns clockwise and
    ``e^{-l}`` sets the aspect ratio. The theta-step is L-BFGS.
    """

    name = "rotation"
    is_linear = True

    def __init__(
        self, scale: float = 0.5, log_ratio: float = 0.0, centre: Sequence[float] = (0.0, 0.0)
    ) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.raw = torch.tensor([_inverse_softplus(scale), log_ratio, *centre], dtype=torch.float64)

    def parameters(self) -> dict[str, float]:
        s = float(functional.softplus(self.raw[0]))
        return {
            "scale": s,
            "log_ratio": float(self.raw[1]),
            "c1": float(self.raw[2]),
            "c2": float(self.raw[3]),
        }

    def set_vector(self, values: np.ndarray) -> None:
        self.raw = torch.tensor(
            [_inverse_softplus(max(float(values[0]), 1e-12)), *values[1:]], dtype=torch.float64
        )

    def linear_coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.parameters()
        ratio = math.exp(-p["log_ratio"])
        A = p["scale"] * np.array([[0.0, ratio], [-1.0, 0.0]])
        c = p["scale"] * np.array([-p["c2"] * ratio, p["c1"]])
        return A, c

    def torch_drift(self, x: torch.Tensor, t: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        scale = functional.softplus(raw[0])
        first = scale * torch.exp(-raw[1]) * (x[:, 1] - raw[3])
        second = -scale * (x[:, 0] - raw[2])
        return torch.stack([first, second], dim=1)


class LotkaVolterra(Reference):
    """``b = (alpha x1 - beta x1 x2, delta x1 x2 - gamma x2)`` at ``max(x, 0) + 1e-10``.

    Linear in the parameters: the theta-step is closed form, with NNLS for positivity.
    """

    name = "lotka_volterra"

    def __init__(
        self, alpha: float = 0.5, beta: float = 0.5, gamma: float = 0.5, delta: float = 0.5
    ) -> None:
        self.theta = np.array([alpha, beta, gamma, delta], dtype=np.float64)

    def parameters(self) -> dict[str, float]:
        return dict(zip(("alpha", "beta", "gamma", "delta"), map(float, self.theta), strict=True))

    def set_vector(self, values: np.ndarray) -> None:
        self.theta = np.asarray(values, dtype=np.float64).copy()

    @staticmethod
    def features(x: np.ndarray) -> np.ndarray:
        """``Phi(x)`` ``(n, 2, 4)`` with ``b = Phi(x) (alpha, beta, gamma, delta)``."""
        y = np.maximum(x, 0.0) + 1e-10
        phi = np.zeros((x.shape[0], 2, 4))
        phi[:, 0, 0], phi[:, 0, 1] = y[:, 0], -y[:, 0] * y[:, 1]
        phi[:, 1, 2], phi[:, 1, 3] = -y[:, 1], y[:, 0] * y[:, 1]
        return phi

    def drift(self, x: np.ndarray, t: float) -> np.ndarray:
        return self.features(x) @ self.theta

    def jacobian(self, x: np.ndarray, t: float) -> np.ndarray:
        alpha, beta, gamma, delta = self.theta
        y = np.maximum(x, 0.0) + 1e-10
        active = (x > 0).astype(np.float64)
        jac = np.empty((x.shape[0], 2, 2))
        jac[:, 0, 0] = (alpha - beta * y[:, 1]) * active[:, 0]
        jac[:, 0, 1] = -beta * y[:, 0] * active[:, 1]
        jac[:, 1, 0] = delta * y[:, 1] * active[:, 0]
        jac[:, 1, 1] = (delta * y[:, 0] - gamma) * active[:, 1]
        return jac

    def fit(self, paths: Sequence[PathBatch], sigma: float) -> None:
        x, _, dx, h = stack_increments(paths)
        self.theta = fit_linear_in_parameters(self.features(x), dx, h, nonnegative=True)


class Repressilator(_TorchFitted):
    """``b_i = beta / (1 + (x_{i-1} / k)^n) - gamma x_i``, cyclic, at ``max(x, 0) + 1e-8``.

    Gene 1 is repressed by the last gene. All four parameters are positive (softplus);
    the theta-step is L-BFGS.
    """

    name = "repressilator"

    def __init__(
        self,
        n_genes: int = 3,
        beta: float = 0.5,
        hill: float = 0.5,
        k: float = 0.5,
        gamma: float = 0.5,
    ) -> None:
        self.n_genes = int(n_genes)
        self.raw = torch.tensor(
            [_inverse_softplus(v) for v in (beta, hill, k, gamma)], dtype=torch.float64
        )

    def parameters(self) -> dict[str, float]:
        values = functional.softplus(self.raw).tolist()
        return dict(zip(("beta", "hill", "k", "gamma"), values, strict=True))

    def set_vector(self, values: np.ndarray) -> None:
        self.raw = torch.tensor(
            [_inverse_softplus(max(float(v), 1e-12)) for v in values], dtype=torch.float64
        )

    def torch_drift(self, x: torch.Tensor, t: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        beta, hill, k, gamma = functional.softplus(raw)
        y = torch.clamp(x, min=0.0) + 1e-8
        repressor = torch.roll(y, shifts=1, dims=1)
        return beta / (1 + (repressor / k) ** hill) - gamma * y

    def drift(self, x: np.ndarray, t: float) -> np.ndarray:
        with torch.no_grad():
            out = self.torch_drift(torch.as_tensor(x), torch.zeros(len(x), 1), self.raw)
        return out.numpy()

    def jacobian(self, x: np.ndarray, t: float) -> np.ndarray:
        p = self.parameters()
        y = np.maximum(x, 0.0) + 1e-8
        active = (x > 0).astype(np.float64)
        repressor = np.roll(y, 1, axis=1)
        ratio = (repressor / p["k"]) ** p["hill"]
        slope = -p["beta"] * p["hill"] * ratio / (repressor * (1 + ratio) ** 2)
        slope = slope * np.roll(active, 1, axis=1)
        d = x.shape[1]
        jac = np.zeros((x.shape[0], d, d))
        rows = np.arange(d)
        jac[:, rows, rows] = -p["gamma"] * active
        jac[:, rows, (rows - 1) % d] += slope
        return jac


class Parametric(_TorchFitted):
    """Any float64 torch module as the drift: ``(n, d) [+ (n, 1) time] -> (n, d)``, row-wise.

    The module must not mix rows (no BatchNorm). The theta-step is L-BFGS on its
    parameters; the Jacobian for the LNA comes from autograd.
    """

    name = "parametric"

    def __init__(self, module: torch.nn.Module, time_dependent: bool = False) -> None:
        self.module = module.to(torch.float64)
        self.time_dependent = bool(time_dependent)
        self.raw = torch.nn.utils.parameters_to_vector(self.module.parameters()).detach()

    def _call(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.module(x, t) if self.time_dependent else self.module(x)

    def parameters(self) -> dict[str, float]:
        vector = torch.nn.utils.parameters_to_vector(self.module.parameters()).detach()
        return {f"theta{i}": float(v) for i, v in enumerate(vector)}

    def set_vector(self, values: np.ndarray) -> None:
        vector = torch.as_tensor(np.asarray(values), dtype=torch.float64)
        torch.nn.utils.vector_to_parameters(vector, self.module.parameters())

    def drift(self, x: np.ndarray, t: float) -> np.ndarray:
        with torch.no_grad():
            xt = torch.as_tensor(x, dtype=torch.float64)
            out = self._call(xt, torch.full((len(x), 1), float(t), dtype=torch.float64))
        return out.numpy()

    def jacobian(self, x: np.ndarray, t: float) -> np.ndarray:
        xt = torch.as_tensor(x, dtype=torch.float64).clone().requires_grad_(True)
        tt = torch.full((len(x), 1), float(t), dtype=torch.float64)
        out = self._call(xt, tt)
        rows = []
        for a in range(out.shape[1]):
            (grad,) = torch.autograd.grad(out[:, a].sum(), xt, retain_graph=True)
            rows.append(grad)
        return torch.stack(rows, dim=1).detach().numpy()

    def fit(self, paths: Sequence[PathBatch], sigma: float) -> None:
        fit_torch(list(self.module.parameters()), self._call, paths, sigma)


REFERENCE_NAMES = ("brownian", "linear", "rotation", "lotka_volterra", "repressilator")


def make_reference(name: str, dim: int, parameters: dict[str, float] | None = None) -> Reference:
    """A reference by name (as in the CLI), optionally with its parameters set by name."""
    builders = {
        "brownian": lambda: Brownian(dim),
        "linear": lambda: Linear(dim),
        "rotation": lambda: Rotation(),
        "lotka_volterra": lambda: LotkaVolterra(),
        "repressilator": lambda: Repressilator(n_genes=dim),
    }
    if name not in builders:
        raise ValueError(f"unknown reference {name!r}; choose one of {REFERENCE_NAMES}")
    if name in ("rotation", "lotka_volterra") and dim != 2:
        raise ValueError(f"the {name} reference is 2-D but the data have d = {dim}")
    reference = builders[name]()
    if parameters:
        expected = list(reference.parameters())
        missing = [key for key in expected if key not in parameters]
        if missing:
            raise ValueError(f"parameters {missing} missing for {name}; expected {expected}")
        reference.set_vector(np.array([parameters[key] for key in expected]))
    return reference
