"""The margin-based preference losses, each written as its (m, h_w, h_l) decomposition.

Every loss of the family is a function of the policy's summed sequence log-probs
``u_w = log pi(y_w | x)`` and ``u_l = log pi(y_l | x)`` (plus θ-free inputs: reference
log-probs ``r``, response lengths ``|y|``, hyperparameters). A *coupled* loss reads

.. math::  \\ell = m(z), \\qquad z = h_w(u_w) - h_l(u_l),

with ``m`` decreasing and ``h`` increasing; every θ-free shift (reference, length term)
lives inside ``h``. The per-pair gradient weights

.. math::  w_w = -\\partial \\ell / \\partial u_w = -m'(z) h_w'(u_w), \\qquad
           w_l = +\\partial \\ell / \\partial u_l = -m'(z) h_l'(u_l)

decide the first-order change of both log-probs after a step (see
:mod:`marginkit.gradent.predict`). Paired KTO is *separable*,
``ell = m_D(h_w) + m_U(h_l)``, and reports its slopes per side.

All functions take ``(batch,)`` tensors and are pure torch (no transformers import).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclasses.dataclass
class PairInputs:
    """θ-dependent and θ-free inputs of a loss, all ``(batch,)`` tensors.

    ``chosen``/``rejected`` are summed response log-probs ``u``; ``reference_*`` the frozen
    reference's ``r`` (None when not given); ``*_lengths`` the response token counts.
    """

    chosen: Tensor
    rejected: Tensor
    reference_chosen: Tensor | None = None
    reference_rejected: Tensor | None = None
    chosen_lengths: Tensor | None = None
    rejected_lengths: Tensor | None = None


@dataclasses.dataclass
class Decomposition:
    """A loss evaluated on a batch, split into the parts that decide entanglement.

    Attributes
    ----------
    h_chosen, h_rejected:
        ``h_w(u_w)`` and ``h_l(u_l)``, ``(batch,)``.
    h_chosen_prime, h_rejected_prime:
        ``h_w'(u_w)`` and ``h_l'(u_l)``, ``(batch,)`` (detached closed forms).
    slope_chosen, slope_rejected:
        ``-dl/dh_w`` and ``+dl/dh_l``, ``(batch,)``; both equal ``-m'(z)`` for a coupled loss.
    per_pair_loss:
        ``l`` per pair, ``(batch,)``, differentiable.
    margin:
        ``z = h_w - h_l``, ``(batch,)``.
    """

    h_chosen: Tensor
    h_rejected: Tensor
    h_chosen_prime: Tensor
    h_rejected_prime: Tensor
    slope_chosen: Tensor
    slope_rejected: Tensor
    per_pair_loss: Tensor
    margin: Tensor

    @property
    def chosen_weight(self) -> Tensor:
        """``w_w = slope_w * h_w'`` (without any NLL term)."""
        return self.slope_chosen * self.h_chosen_prime

    @property
    def rejected_weight(self) -> Tensor:
        """``w_l = slope_l * h_l'``."""
        return self.slope_rejected * self.h_rejected_prime


def _required(value: Tensor | None, what: str, loss: str) -> Tensor:
    if value is None:
        raise ValueError(f"loss {loss!r} needs {what}; pass it to preference_loss")
    return value


@dataclasses.dataclass(frozen=True)
class CoupledLoss:
    """Base of ``l = m(h_w(u_w) - h_l(u_l))``; subclasses set ``m``, ``m_prime`` and ``h``."""

    name: ClassVar[str] = ""
    beta: float = 0.1

    def m(self, margin: Tensor) -> Tensor:
        raise NotImplementedError

    def m_prime(self, margin: Tensor) -> Tensor:
        raise NotImplementedError

    def h(self, inputs: PairInputs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Return ``h_w(u_w), h_l(u_l), h_w'(u_w), h_l'(u_l)``."""
        raise NotImplementedError

    def decompose(self, inputs: PairInputs) -> Decomposition:
        h_chosen, h_rejected, h_chosen_prime, h_rejected_prime = self.h(inputs)
        margin = h_chosen - h_rejected
        slope = -self.m_prime(margin.detach())
        return Decomposition(
            h_chosen=h_chosen,
            h_rejected=h_rejected,
            h_chosen_prime=h_chosen_prime.detach(),
            h_rejected_prime=h_rejected_prime.detach(),
            slope_chosen=slope,
            slope_rejected=slope,
            per_pair_loss=self.m(margin),
            margin=margin,
        )


def _ones(like: Tensor) -> Tensor:
    return torch.ones_like(like)


class _ReferenceRatio(CoupledLoss):
    """``h(u) = u - r``: the log-ratio against the reference (DPO, hinge, R-DPO)."""

    def h(self, inputs: PairInputs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        ref_w = _required(inputs.reference_chosen, "reference_chosen_logps", self.name)
        ref_l = _required(inputs.reference_rejected, "reference_rejected_logps", self.name)
        return (
            inputs.chosen - ref_w,
            inputs.rejected - ref_l,
            _ones(inputs.chosen),
            _ones(inputs.rejected),
        )


def _mean_logps(inputs: PairInputs, loss: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``u/|y|`` per side and the lengths (token-mean losses)."""
    len_w = _required(inputs.chosen_lengths, "chosen_lengths", loss).to(inputs.chosen.dtype)
    len_l = _required(inputs.rejected_lengths, "rejected_lengths", loss).to(inputs.chosen.dtype)
    return inputs.chosen / len_w, inputs.rejected / len_l, len_w, len_l


@dataclasses.dataclass(frozen=True)
class DPOLoss(_ReferenceRatio):
    """DPO: ``z = rho_w - rho_l``, ``l = (1-eps) softplus(-beta z) + eps softplus(beta z)``.

    ``label_smoothing`` ``eps`` > 0 (conservative DPO) gives ``w < 0`` past the optimum.
    """

    name: ClassVar[str] = "dpo"
    label_smoothing: float = 0.0

    def m(self, margin: Tensor) -> Tensor:
        eps = self.label_smoothing
        return (1 - eps) * F.softplus(-self.beta * margin) + eps * F.softplus(self.beta * margin)

    def m_prime(self, margin: Tensor) -> Tensor:
        eps = self.label_smoothing
        scaled = self.beta * margin
        return self.beta * (-(1 - eps) * torch.sigmoid(-scaled) + eps * torch.sigmoid(scaled))


@dataclasses.dataclass(frozen=True)
class IPOLoss(CoupledLoss):
    """IPO: ``l = (z - 1/(2 beta))^2`` on summed log-ratios, or token means (``average``).

    ``average=True`` (TRL's IPO and ``preset="official"``) uses ``(u - r)/|y|`` per side.
    Past the target ``z > 1/(2 beta)`` the weights turn negative (the step reverses).
    """

    name: ClassVar[str] = "ipo"
    average: bool = False

    def m(self, margin: Tensor) -> Tensor:
        return (margin - 1.0 / (2.0 * self.beta)) ** 2

    def m_prime(self, margin: Tensor) -> Tensor:
        return 2.0 * (margin - 1.0 / (2.0 * self.beta))

    def h(self, inputs: PairInputs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        ref_w = _required(inputs.reference_chosen, "reference_chosen_logps", self.name)
        ref_l = _required(inputs.reference_rejected, "reference_rejected_logps", self.name)
        ratio_w, ratio_l = inputs.chosen - ref_w, inputs.rejected - ref_l
        if not self.average:
            return ratio_w, ratio_l, _ones(ratio_w), _ones(ratio_l)
        len_w = _required(inputs.chosen_lengths, "chosen_lengths", self.name).to(ratio_w.dtype)
        len_l = _required(inputs.rejected_lengths, "rejected_lengths", self.name).to(ratio_w.dtype)
        return ratio_w / len_w, ratio_l / len_l, 1.0 / len_w, 1.0 / len_l


@dataclasses.dataclass(frozen=True)
class HingeLoss(CoupledLoss):
    """Hinge: ``l = max(0, delta - beta z)`` on reference log-ratios (TRL's form).

    ``slic=True`` gives SLiC-HF's calibration loss ``max(0, delta - (u_w - u_l))``: no
    reference and no ``beta``. Inactive pairs (``l = 0``) get ``w = 0``.
    """

    name: ClassVar[str] = "hinge"
    delta: float = 1.0
    slic: bool = False

    def _scale(self) -> float:
        return 1.0 if self.slic else self.beta

    def m(self, margin: Tensor) -> Tensor:
        return torch.clamp(self.delta - self._scale() * margin, min=0.0)

    def m_prime(self, margin: Tensor) -> Tensor:
        active = (self._scale() * margin < self.delta).to(margin.dtype)
        return -self._scale() * active

    def h(self, inputs: PairInputs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.slic:
            return inputs.chosen, inputs.rejected, _ones(inputs.chosen), _ones(inputs.rejected)
        return _ReferenceRatio.h(self, inputs)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class RDPOLoss(_ReferenceRatio):
    """R-DPO: ``l = softplus(alpha (|y_w| - |y_l|) - beta z)``, ``z = rho_w - rho_l``.

    The length term is folded into ``h``: ``h(u) = u - r - (alpha/beta)|y|``, so the
    reported margin includes it. ``length_sign=-1`` reproduces the opposite sign found in
    some public code (``preset="official"``).
    """

    name: ClassVar[str] = "rdpo"
    alpha: float = 0.2
    length_sign: float = 1.0

    def m(self, margin: Tensor) -> Tensor:
        return F.softplus(-self.beta * margin)

    def m_prime(self, margin: Tensor) -> Tensor:
        return -self.beta * torch.sigmoid(-self.beta * margin)

    def h(self, inputs: PairInputs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        ratio_w, ratio_l, prime_w, prime_l = super().h(inputs)
        len_w = _required(inputs.chosen_lengths, "chosen_lengths", self.name).to(ratio_w.dtype)
        len_l = _required(inputs.rejected_lengths, "rejected_lengths", self.name).to(ratio_w.dtype)
        shift = self.length_sign * self.alpha / self.beta
        return ratio_w - shift * len_w, ratio_l - shift * len_l, prime_w, prime_l


@dataclasses.dataclass(frozen=True)
class SimPOLoss(CoupledLoss):
    """SimPO: ``z = u_w/|y_w| - u_l/|y_l|``, ``l = softplus(gamma - beta z)``; no reference."""

    name: ClassVar[str] = "simpo"
    gamma: float = 0.5

    def m(self, margin: Tensor) -> Tensor:
        return F.softplus(self.gamma - self.beta * margin)

    def m_prime(self, margin: Tensor) -> Tensor:
        return -self.beta * torch.sigmoid(self.gamma - self.beta * margin)

    def h(self, inputs: PairInputs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mean_w, mean_l, len_w, len_l = _mean_logps(inputs, self.name)
        return mean_w, mean_l, 1.0 / len_w, 1.0 / len_l


@dataclasses.dataclass(frozen=True)
class DPOPLoss(DPOLoss):
    """DPO-Positive: ``z = rho_w - rho_l - lam max(0, r_w - u_w)``, ``l = softplus(-beta z)``.

    Below its reference the chosen side gets ``h_w' = 1 + lam``: ``w_w = w_l (1 + lam)``.
    """

    name: ClassVar[str] = "dpop"
    lam: float = 50.0

    def h(self, inputs: PairInputs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        ratio_w, ratio_l, prime_w, prime_l = super().h(inputs)
        below = torch.clamp(-ratio_w, min=0.0)
        prime_w = 1.0 + self.lam * (ratio_w < 0).to(ratio_w.dtype)
        return ratio_w - self.lam * below, ratio_l, prime_w, prime_l


@dataclasses.dataclass(frozen=True)
class CPOLoss(CoupledLoss):
    """CPO: ``l = softplus(-beta (u_w - u_l))`` plus its NLL term; no reference."""

    name: ClassVar[str] = "cpo"

    def m(self, margin: Tensor) -> Tensor:
        return F.softplus(-self.beta * margin)

    def m_prime(self, margin: Tensor) -> Tensor:
        return -self.beta * torch.sigmoid(-self.beta * margin)

    def h(self, inputs: PairInputs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return inputs.chosen, inputs.rejected, _ones(inputs.chosen), _ones(inputs.rejected)


def log_odds(mean_logps: Tensor) -> Tensor:
    """``log(P / (1 - P))`` of ``P = exp(mean_logps)``, stable: ``u - log(-expm1(u))``."""
    return mean_logps - torch.log(-torch.expm1(mean_logps))


@dataclasses.dataclass(frozen=True)
class ORPOLoss(CoupledLoss):
    """ORPO: ``h = log-odds(u/|y|)``, ``l = lam softplus(h_l - h_w)`` plus its NLL term.

    The mean token log-prob is derived as ``u/|y|`` from the summed log-probs and
    ``chosen_lengths``/``rejected_lengths``; ``h' = 1 / (|y| (1 - P))``. ``beta`` is unused.
    """

    name: ClassVar[str] = "orpo"
    lam: float = 0.1

    def m(self, margin: Tensor) -> Tensor:
        return self.lam * F.softplus(-margin)

    def m_prime(self, margin: Tensor) -> Tensor:
        return -self.lam * torch.sigmoid(-margin)

    def h(self, inputs: PairInputs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mean_w, mean_l, len_w, len_l = _mean_logps(inputs, self.name)
        for side, mean in (("chosen", mean_w), ("rejected", mean_l)):
            bad = torch.nonzero(mean.detach() >= 0).flatten()
            if len(bad):
                raise ValueError(
                    f"orpo: {side} mean log-prob is 0 (probability 1, infinite log-odds) "
                    f"at pair(s) {bad.tolist()}"
                )
        prime_w = 1.0 / (len_w * -torch.expm1(mean_w.detach()))
        prime_l = 1.0 / (len_l * -torch.expm1(mean_l.detach()))
        return log_odds(mean_w), log_odds(mean_l), prime_w, prime_l


@dataclasses.dataclass(frozen=True)
class RRHFLoss(CoupledLoss):
    """RRHF (two responses): ``z = u_w/|y_w| - u_l/|y_l|``, ``l = max(0, -z)`` plus NLL."""

    name: ClassVar[str] = "rrhf"

    def m(self, margin: Tensor) -> Tensor:
        return torch.clamp(-margin, min=0.0)

    def m_prime(self, margin: Tensor) -> Tensor:
        return -(margin < 0).to(margin.dtype)

    def h(self, inputs: PairInputs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mean_w, mean_l, len_w, len_l = _mean_logps(inputs, self.name)
        return mean_w, mean_l, 1.0 / len_w, 1.0 / len_l


@dataclasses.dataclass(frozen=True)
class KTOPairLoss:
    """Paired KTO (separable): ``l = lam_D (1 - s(beta(rho_w - k_l))) + lam_U (1 - s(beta(k_w
    - rho_l)))``, ``s`` the logistic function.

    ``k_w = max(0, mean rho_w)`` and ``k_l = max(0, mean rho_l)`` over the batch, detached
    (the cross-side pairing of TRL's ``kto_pair``), or the fixed ``z0`` when given. The per-pair
    loss is the sum of both terms (TRL averages over ``2B`` terms, which halves it).
    """

    name: ClassVar[str] = "kto_pair"
    beta: float = 0.1
    z0: float | None = None
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0

    def decompose(self, inputs: PairInputs) -> Decomposition:
        ref_w = _required(inputs.reference_chosen, "reference_chosen_logps", self.name)
        ref_l = _required(inputs.reference_rejected, "reference_rejected_logps", self.name)
        ratio_w, ratio_l = inputs.chosen - ref_w, inputs.rejected - ref_l
        if self.z0 is None:
            kl_w = torch.clamp(ratio_w.detach().mean(), min=0.0)
            kl_l = torch.clamp(ratio_l.detach().mean(), min=0.0)
        else:
            kl_w = kl_l = torch.as_tensor(self.z0, dtype=ratio_w.dtype, device=ratio_w.device)
        arg_w, arg_l = self.beta * (ratio_w - kl_l), self.beta * (kl_w - ratio_l)
        loss = self.desirable_weight * (1 - torch.sigmoid(arg_w)) + self.undesirable_weight * (
            1 - torch.sigmoid(arg_l)
        )
        sig_w, sig_l = torch.sigmoid(arg_w.detach()), torch.sigmoid(arg_l.detach())
        return Decomposition(
            h_chosen=ratio_w,
            h_rejected=ratio_l,
            h_chosen_prime=_ones(ratio_w),
            h_rejected_prime=_ones(ratio_l),
            slope_chosen=self.desirable_weight * self.beta * sig_w * (1 - sig_w),
            slope_rejected=self.undesirable_weight * self.beta * sig_l * (1 - sig_l),
            per_pair_loss=loss,
            margin=ratio_w - ratio_l,
        )


LOSS_CLASSES: dict[str, type] = {
    cls.name: cls
    for cls in (
        DPOLoss,
        IPOLoss,
        HingeLoss,
        RDPOLoss,
        SimPOLoss,
        DPOPLoss,
        CPOLoss,
        ORPOLoss,
        RRHFLoss,
        KTOPairLoss,
    )
}

# Losses whose own definition includes an NLL term on the chosen response (weight 1).
DEFAULT_NLL_WEIGHT: dict[str, float] = {"cpo": 1.0, "orpo": 1.0, "rrhf": 1.0}

# Settings that ``preset="official"`` changes (the public code of the entanglement paper).
OFFICIAL_PRESET: dict[str, dict[str, object]] = {
    "ipo": {"average": True},
    "rdpo": {"length_sign": -1.0},
}

__all__ = ["LOSS_CLASSES", "CoupledLoss", "Decomposition", "KTOPairLoss", "PairInputs", "log_odds"]
