"""Settings of every command, with the standard defaults (n0 = 100, n = 100 000, alpha = 0.001)."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass
class SmoothingConfig:
    """Gaussian smoothing and the certificate (shared by certify, predict and the demo)."""

    sigma: float = 0.25
    """Noise standard deviation in the model's input scale (images in [0, 1])."""
    n0: int = 100
    """Selection samples: class (and for LVM the map and temperature) are chosen on these."""
    n: int = 100_000
    """Estimation samples: the confidence bounds are computed on these fresh samples."""
    alpha: float = 0.001
    """Total failure probability of each certificate."""
    batch_size: int = 1000
    """Noisy copies per forward pass."""
    method: str = "lvm"
    """'lvm', 'cohen' (runner-up 1 - pA) or 'cp_multi' (separate runner-up bound)."""
    selection: str = "n0"
    """For LVM: 'n0' (per input, on the n0 samples), 'fixed' (one candidate) or 'union'."""
    fixed_map: str = "softmax"
    """Map of the fixed candidate ('softmax', 'sparsemax' or 'hardmax')."""
    fixed_temperature: float = 1.0
    """Temperature of the fixed candidate (ignored for hardmax)."""
    maps: tuple[str, ...] = ("hardmax", "sparsemax", "softmax")
    """Simplex maps searched by LVM."""
    num_temperatures: int = 50
    """Log-spaced temperatures searched per soft map."""
    temperature_min: float = 0.01
    temperature_max: float = 50.0
    lipschitz: str = "none"
    """Lipschitz constant of the logits: 'none', 'bound' (computed from the layers) or a number."""
    seed: int = 0
    """Noise seed; each input gets a generator seeded from (seed, index)."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda', 'cuda:1', 'mps'."""


@dataclasses.dataclass
class CertifyConfig(SmoothingConfig):
    """Certify a data set: a Cohen-format TSV plus details, metadata and statistics."""

    checkpoint: Path | None = None
    """A folder written by `marginkit-lvm-smoothing train` (architecture + weights)."""
    model: str = ""
    """Or 'package.module:factory', a callable returning the trained model."""
    data: str = "digits"
    """'digits' (bundled test split), a .npz file (x, y) or a CSV (label, pixel0, ...)."""
    num_classes: int = 0
    """Number of classes K of the model's logits (0: the largest label + 1)."""
    scale: float = 1.0
    """Multiplies the inputs (1/255 for uint8 images)."""
    skip: int = 1
    """Keep every skip-th example."""
    max: int = -1
    """At most this many examples (-1: all)."""
    out: Path = Path("outputs/lvm-smoothing/certify.tsv")
    """The certify TSV; .details.tsv, .meta.json and .stats.npz are written beside it."""
    radius_format: str = "full"
    """'full' precision, or 'cohen' (3 significant digits, rounded down)."""


@dataclasses.dataclass
class PredictConfig(CertifyConfig):
    """Predict (class or abstain) for a data set: a TSV idx, label, predict, correct, time."""

    out: Path = Path("outputs/lvm-smoothing/predict.tsv")


@dataclasses.dataclass
class TrainConfig:
    """Train a digits base model with Gaussian noise augmentation."""

    arch: str = "digits_cnn"
    """'digits_cnn', 'digits_mlp' or 'lipschitz_mlp' (orthogonal layers)."""
    sigma: float = 0.25
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    out: Path = Path("outputs/lvm-smoothing/model")
    """Checkpoint folder (resumes when it already holds a checkpoint)."""


@dataclasses.dataclass
class CurveConfig:
    """Certified accuracy of certify TSVs at a row of radii, and their curves on one PNG."""

    tsv: tuple[Path, ...] = ()
    """Certify TSVs (this package's, Cohen's or DDS-style files)."""
    names: tuple[str, ...] = ()
    """Curve labels (default: the file stems)."""
    radii: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    out: Path = Path("outputs/lvm-smoothing/curves.png")


@dataclasses.dataclass
class DemoConfig:
    """Train digits models at two noise levels and compare certificates on the test set."""

    sigmas: tuple[float, ...] = (0.25, 0.5)
    n0: int = 100
    n: int = 1000
    """Estimation samples per test point (the paper's 100 000 takes hours on a CPU)."""
    alpha: float = 0.001
    epochs: int = 30
    max_test: int = 360
    """Test points certified (the split has 360)."""
    calibration_points: int = 100
    """Held-out training points used to calibrate the fixed LVM candidate."""
    num_temperatures: int = 20
    lipschitz_variant: bool = True
    """Also train and certify the orthogonal (Lipschitz-by-design) MLP at the first sigma."""
    radii: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    seed: int = 0
    out_dir: Path = Path("outputs/lvm-smoothing/demo")
