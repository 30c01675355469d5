"""Logging setup for command lines, a JSON-lines metrics writer and progress bars."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

LOG_LEVEL_ENV_VAR = "MARGINKIT_LOG_LEVEL"


def setup_logging(level: str | int | None = None) -> None:
    """Configure the root logger once for a command-line run.

    The level comes from ``level``, else ``MARGINKIT_LOG_LEVEL``, else ``INFO``.
    Libraries never call this; their modules log through ``logging.getLogger(__name__)``.
    """
    chosen = level if level is not None else os.environ.get(LOG_LEVEL_ENV_VAR, "INFO")
    if isinstance(chosen, str):
        numeric = logging.getLevelName(chosen.upper())
        if not isinstance(numeric, int):
            raise ValueError(f"unknown log level {chosen!r}")
        chosen = numeric
    logging.basicConfig(
        level=chosen,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


class MetricsWriter:
    """Append flat metric dicts (``{"loss/margin": 0.3}``) to a JSON-lines file.

    With ``tensorboard=True`` the same scalars also go to a TensorBoard event folder next
    to the file (needs the ``tensorboard`` package). Non-finite values are written as
    ``null`` in JSON so that the file stays valid, and a warning is logged.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.jsonl"
    >>> with MetricsWriter(path) as writer:
    ...     writer.write({"loss": 0.5}, step=1)
    >>> path.read_text().strip()
    '{"loss": 0.5, "step": 1}'
    """

    def __init__(self, path: str | Path, tensorboard: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")
        self._tensorboard = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(self.path.with_suffix("")) + "_tb")

    def write(self, metrics: Mapping[str, Any], step: int) -> None:
        """Write one record; values must be numbers (tensors of one element are accepted)."""
        record: dict[str, Any] = {}
        for name, value in metrics.items():
            if hasattr(value, "item"):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                logging.getLogger(__name__).warning("metric %s is %s at step %d", name, value, step)
                value = None
            record[name] = value
        record["step"] = int(step)
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        if self._tensorboard is not None:
            for name, value in record.items():
                if name != "step" and isinstance(value, (int, float)):
                    self._tensorboard.add_scalar(name, value, global_step=step)

    def close(self) -> None:
        self._handle.close()
        if self._tensorboard is not None:
            self._tensorboard.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read back every record a :class:`MetricsWriter` wrote."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def progress(
    iterable: Iterable[T], description: str = "", total: int | None = None, **kwargs: Any
) -> Iterable[T]:
    """A tqdm progress bar on stderr, silenced when ``MARGINKIT_NO_PROGRESS`` is set.

    Under ``accelerate`` only the main process should show one: pass
    ``disable=not accelerator.is_local_main_process``.
    """
    from tqdm.auto import tqdm

    disable = kwargs.pop("disable", False) or bool(os.environ.get("MARGINKIT_NO_PROGRESS"))
    return tqdm(iterable, desc=description, total=total, disable=disable, **kwargs)
