"""Session-wide tiny pipelines and pair data, built once (importing diffusers is slow)."""

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_sdxl_master():
    from marginkit.mapo.tiny import tiny_parts

    return tiny_parts(sdxl=True, seed=0)


@pytest.fixture(scope="session")
def tiny_sd15_master():
    from marginkit.mapo.tiny import tiny_parts

    return tiny_parts(sdxl=False, seed=0)


@pytest.fixture
def tiny_sdxl(tiny_sdxl_master):
    """A fresh copy per test, so training in one test never leaks into another."""
    return copy.deepcopy(tiny_sdxl_master)


@pytest.fixture
def tiny_sd15(tiny_sd15_master):
    return copy.deepcopy(tiny_sd15_master)


def write_image(path, seed, size=(24, 20)):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="session")
def jsonl_data(tmp_path_factory):
    """Eight pairs of 24x20 random images with two captions, as a JSONL file."""
    root = tmp_path_factory.mktemp("pairs")
    lines = []
    for index in range(8):
        write_image(root / f"w{index}.png", 2 * index)
        write_image(root / f"l{index}.png", 2 * index + 1)
        caption = "a red cat" if index % 2 else "pixel art"
        lines.append({"caption": caption, "chosen": f"w{index}.png", "rejected": f"l{index}.png"})
    path = root / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path
