"""Per-run manifests: every setting that moves a stage's results, written beside its output.

A stage writes ``run_dir/manifests/<stage>.json`` with the full :class:`AdaQRConfig`, the
retriever's own settings (BM25 variant, k1, b, title indexing; or the dense encoder, its
path and weights sha256, the corpus hash), the reader fingerprint where one is used, the
output file, and the versions of the libraries that compute them. BM25 scores move with
k1, b and the analyser, and two dense checkpoints of one name can differ, so a number
without these is not reproducible.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import time
from pathlib import Path
from typing import Any

from marginkit.adaqr.config import AdaQRConfig
from marginkit.adaqr.data import write_json_atomic

LIBRARIES = ("marginkit-adaqr", "bm25s", "faiss-cpu", "torch", "transformers", "trl", "peft")


def library_versions() -> dict[str, str]:
    """Installed versions of :data:`LIBRARIES` ('absent' when not installed)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def write_manifest(
    config: AdaQRConfig,
    stage: str,
    output: str | Path,
    retriever: Any = None,
    reader: Any = None,
    **extra: Any,
) -> Path:
    """Write ``run_dir/manifests/<stage>.json``; returns its path.

    Parameters
    ----------
    config:
        The settings the stage ran with.
    stage:
        Stage name (``score``, ``pairs``, ``evaluate``...).
    output:
        The file or folder the stage wrote.
    retriever, reader:
        Recorded through ``retriever.settings`` and ``reader.fingerprint`` when given.
    **extra:
        Further JSON-serialisable facts (counts, statistics).
    """
    record: dict[str, Any] = {
        "stage": stage,
        "output": str(output),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "config": dataclasses.asdict(config),
    }
    if retriever is not None:
        record["retriever"] = {"name": retriever.name, "tau": retriever.tau, **retriever.settings}
    if reader is not None:
        record["reader"] = reader.fingerprint
    record.update(extra)
    path = Path(config.run_dir) / "manifests" / f"{stage}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)
    return path
