"""Atomic checkpoints: safetensors weights plus a JSON record of config and step.

A checkpoint is a folder ``<root>/checkpoint-<step>/`` holding one ``<name>.safetensors``
file per tensor group (model weights, EMA weights, ...), optional ``<name>.pt`` files for
nested objects such as optimizer state, and ``state.json`` with the step, the run's
config and any extra JSON-able values.

The folder is written under a temporary name and renamed into place only when every file
is flushed to disk, so a run killed mid-write leaves the previous checkpoint as the
latest complete one and never a half-written folder that looks complete.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

STATE_FILE = "state.json"
FORMAT_VERSION = 1
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

T = TypeVar("T")


@dataclasses.dataclass
class CheckpointState:
    """What :func:`load_checkpoint` returns.

    ``tensors`` maps each group name to its flat state dict; ``objects`` maps names to
    the nested objects (optimizer state...) saved with ``torch.save``.
    """

    path: Path
    step: int
    config: dict[str, Any]
    extra: dict[str, Any]
    tensors: dict[str, dict[str, torch.Tensor]]
    objects: dict[str, Any]


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(
        f"value {value!r} of type {type(value).__name__} cannot be stored in {STATE_FILE}"
    )


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_name(name: str) -> None:
    if not _NAME.match(name) or name == Path(STATE_FILE).stem:
        raise ValueError(
            f"checkpoint group name {name!r} must be letters, digits, '_', '-' or '.', "
            f"and not {Path(STATE_FILE).stem!r}"
        )


def save_checkpoint(
    root: str | Path,
    step: int,
    tensors: Mapping[str, Mapping[str, torch.Tensor]],
    config: Any = None,
    extra: Mapping[str, Any] | None = None,
    objects: Mapping[str, Any] | None = None,
    keep_last: int | None = None,
) -> Path:
    """Write ``<root>/checkpoint-<step>/`` atomically and return its path.

    Parameters
    ----------
    root:
        Folder that holds all checkpoints of a run (created when missing).
    step:
        Number of optimizer steps (or batches) completed; resume starts after it.
    tensors:
        ``{"model": model.state_dict(), ...}``; each group becomes one safetensors file.
    config:
        A dataclass or mapping of the run's settings, stored as JSON.
    extra:
        Other JSON-able values (epoch, data position, best metric...).
    objects:
        Nested objects saved with ``torch.save``, e.g. ``{"optimizer": opt.state_dict()}``.
    keep_last:
        When given, delete all but the newest ``keep_last`` checkpoints afterwards.
    """
    from safetensors.torch import save_file

    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"checkpoint-{step:08d}"
    # Folders left by a run killed mid-write; only one process of a run saves.
    for leftover in root.glob(".checkpoint-*.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
    try:
        files = []
        for name, state in tensors.items():
            _check_name(name)
            # safetensors refuses shared or non-contiguous storage; copies are cheap here.
            flat = {key: value.detach().contiguous().cpu().clone() for key, value in state.items()}
            target = scratch / f"{name}.safetensors"
            save_file(flat, str(target))
            _fsync_file(target)
            files.append(target.name)
        for name, value in (objects or {}).items():
            _check_name(name)
            target = scratch / f"{name}.pt"
            torch.save(value, target)
            _fsync_file(target)
            files.append(target.name)
        record = {
            "format_version": FORMAT_VERSION,
            "step": int(step),
            "config": _jsonable(config) if config is not None else {},
            "extra": _jsonable(dict(extra or {})),
            "files": files,
        }
        state_path = scratch / STATE_FILE
        state_path.write_text(json.dumps(record, indent=2, sort_keys=True))
        _fsync_file(state_path)
        _fsync_dir(scratch)

        if final.exists():
            # Same step saved twice: swap the old folder out before the new one goes in.
            stale = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=root))
            os.replace(final, stale / final.name)
            os.replace(scratch, final)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.replace(scratch, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise

    if keep_last is not None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        for old in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a flushed temporary file and a rename.

    Readers see either the old file or the whole new one, never a partial write; the
    temporary file is removed when writing fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    return path


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temporary folders are ignored)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _CHECKPOINT_NAME.match(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or ``None`` when there is none."""
    checkpoints = list_checkpoints(root)
    return checkpoints[-1] if checkpoints else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> CheckpointState:
    """Read a checkpoint folder written by :func:`save_checkpoint`.

    ``path`` may also be a run's root folder, in which case its latest checkpoint is read.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / STATE_FILE).is_file():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"no complete checkpoint (with {STATE_FILE}) in {path}")
        path = latest
    record = json.loads((path / STATE_FILE).read_text())
    if record.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path / STATE_FILE} has format_version {record.get('format_version')!r}; "
            f"this marginkit-shared reads version {FORMAT_VERSION}"
        )
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    objects: dict[str, Any] = {}
    for filename in record["files"]:
        file_path = path / filename
        name, suffix = filename.rsplit(".", 1)
        if suffix == "safetensors":
            tensors[name] = load_file(str(file_path), device=str(map_location))
        else:
            objects[name] = torch.load(file_path, map_location=map_location, weights_only=True)
    return CheckpointState(
        path=path,
        step=int(record["step"]),
        config=record["config"],
        extra=record["extra"],
        tensors=tensors,
        objects=objects,
    )


def resume_position(step: int, batches_per_epoch: int) -> tuple[int, int]:
    """Split a count of completed batches into ``(epoch, batches already seen in it)``."""
    if batches_per_epoch < 1:
        raise ValueError(f"batches_per_epoch must be >= 1, got {batches_per_epoch}")
    return divmod(int(step), batches_per_epoch)


def skip_seen_batches(batches: Iterable[T], num_seen: int) -> Iterable[T]:
    """Skip the first ``num_seen`` batches of an epoch that a resumed run already used.

    A ``torch.utils.data.DataLoader`` goes through ``accelerate.skip_first_batches``, which
    skips at the sampler level without loading the skipped data; any other iterable is
    advanced with ``itertools.islice``. The epoch's shuffling must be seeded the same way
    as in the interrupted run (e.g. a generator seeded with ``seed + epoch``).
    """
    if num_seen < 0:
        raise ValueError(f"num_seen must be >= 0, got {num_seen}")
    if num_seen == 0:
        return batches
    if isinstance(batches, torch.utils.data.DataLoader):
        from accelerate import skip_first_batches

        return skip_first_batches(batches, num_seen)
    return itertools.islice(batches, num_seen, None)
