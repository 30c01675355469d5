import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


def _repo_root() -> Path:
    for parent in Path(__file__).resolve().parents:
        if (parent / "noxfile.py").is_file():
            return parent
    return Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shipped snapshot files, or a skip naming where they were looked for."""
    candidates = []
    if os.environ.get("MARGINKIT_DATA_DIR"):
        candidates.append(Path(os.environ["MARGINKIT_DATA_DIR"]) / "mmsb")
    candidates.append(_repo_root().parent / "shared" / "data" / "mmsb")
    for path in candidates:
        if (path / "LV_data.npz").is_file():
            return path
    pytest.skip(f"mmsb data folder absent (looked in {[str(p) for p in candidates]})")
