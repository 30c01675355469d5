"""Test settings: one torch thread, float64 where a test compares against closed forms."""

import torch

torch.set_num_threads(1)
