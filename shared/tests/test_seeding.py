import random

import numpy as np
import pytest
import torch

from marginkit.shared import seed_everything


def _draw(generator):
    return (
        random.random(),
        float(np.random.rand()),
        float(torch.rand(1)),
        float(torch.rand(1, generator=generator)),
    )


def test_seed_everything_reproduces_every_generator():
    first = _draw(seed_everything(123))
    second = _draw(seed_everything(123))
    assert first == second
    assert _draw(seed_everything(124)) != first


def test_returned_generator_matches_a_manually_seeded_one():
    expected = torch.rand(3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.rand(3, generator=seed_everything(7)), expected)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_seed_everything_rejects_bad_seed(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        seed_everything(bad)
