"""Device selection, dtype names and device-agnostic autocast."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

DEVICE_ENV_VAR = "MARGINKIT_DEVICE"

_DTYPE_NAMES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "no": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp64": torch.float64,
    "float64": torch.float64,
}


def select_device(preferred: str | torch.device | None = None) -> torch.device:
    """Return the device to compute on.

    Order of precedence: the ``preferred`` argument, then the ``MARGINKIT_DEVICE``
    environment variable, then the first available of cuda, mps and cpu.

    Parameters
    ----------
    preferred:
        ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``, a ``torch.device``, or ``None``
        (also ``"auto"``) for automatic selection.

    Examples
    --------
    >>> select_device("cpu")
    device(type='cpu')
    """
    choice = preferred if preferred is not None else os.environ.get(DEVICE_ENV_VAR)
    if choice is None or str(choice) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")

    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {str(choice)!r} was requested but CUDA is not available; "
            f"use 'cpu' or unset {DEVICE_ENV_VAR}"
        )
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise RuntimeError(f"device {str(choice)!r} was requested but MPS is not available")
    return device


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    """Turn ``"bf16"``, ``"fp16"``, ``"fp32"`` (and their long spellings) into a dtype.

    Examples
    --------
    >>> resolve_dtype("bf16")
    torch.bfloat16
    """
    if isinstance(name, torch.dtype):
        return name
    key = str(name).lower().strip()
    if key not in _DTYPE_NAMES:
        known = ", ".join(sorted(_DTYPE_NAMES))
        raise ValueError(f"unknown precision {name!r}; expected one of: {known}")
    return _DTYPE_NAMES[key]


@contextlib.contextmanager
def autocast(device: str | torch.device, dtype: str | torch.dtype = "bf16") -> Iterator[None]:
    """Mixed-precision autocast that works the same on cuda, mps and cpu.

    ``fp32`` disables autocast. On CPU only bf16 is supported by PyTorch's autocast for
    most operators, so a request for fp16 on CPU falls back to bf16.

    Examples
    --------
    >>> import torch
    >>> with autocast("cpu", "bf16"):
    ...     y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    >>> y.dtype
    torch.bfloat16
    """
    device_type = torch.device(device).type
    target = resolve_dtype(dtype)
    if target in (torch.float32, torch.float64):
        with torch.autocast(device_type=device_type, enabled=False):
            yield
        return
    if device_type == "cpu" and target == torch.float16:
        target = torch.bfloat16
    with torch.autocast(device_type=device_type, dtype=target):
        yield
