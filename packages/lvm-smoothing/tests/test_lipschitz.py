"""Lipschitz bounds: exact norms, known layer constants, and the lower bound below the upper."""

import math

import pytest
import torch
from torch import nn

from marginkit.lvm_smoothing.lipschitz import conv2d_bound, lower_bound, upper_bound
from marginkit.lvm_smoothing.models import Normalize, Residual, digits_cnn, lipschitz_mlp


def test_linear_bound_is_the_largest_singular_value():
    layer = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, -5.0]]))
    assert upper_bound(nn.Sequential(layer, nn.ReLU())) == pytest.approx(5.0)


def test_known_layer_constants_multiply():
    bn = nn.BatchNorm1d(2).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, -3.0]))
        bn.running_var.copy_(torch.tensor([4.0, 9.0]))
    model = nn.Sequential(Normalize([0.0, 0.0], [0.5, 2.0]), nn.Sigmoid(), bn, nn.Tanh())
    expected = (1 / 0.5) * 0.25 * max(2 / math.sqrt(4 + bn.eps), 3 / math.sqrt(9 + bn.eps))
    assert upper_bound(model) == pytest.approx(expected)
    assert upper_bound(Residual(nn.Sequential(nn.Sigmoid()))) == pytest.approx(1.25)


def test_one_by_one_convolution_bound_equals_its_channel_matrix_norm():
    conv = nn.Conv2d(3, 2, 1, bias=False)
    matrix = conv.weight.detach().reshape(2, 3).double()
    assert conv2d_bound(conv) == pytest.approx(float(torch.linalg.matrix_norm(matrix, 2)))


def test_convolution_bound_holds_against_the_exact_operator_norm():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=1, padding=1, bias=False)
    # Exact norm of the linear map on 5x5 inputs from its full Jacobian.
    jac = torch.autograd.functional.jacobian(
        lambda v: conv(v.view(1, 2, 5, 5)).flatten(), torch.zeros(50)
    )
    exact = float(torch.linalg.matrix_norm(jac.double(), 2))
    assert exact <= conv2d_bound(conv) + 1e-9


def test_orthogonal_mlp_logits_are_scale_lipschitz():
    model = lipschitz_mlp(hidden=32, depth=3, scale=4.0)
    assert upper_bound(model) == pytest.approx(4.0, abs=1e-4)


def test_spectrally_normalized_mlp_bound_is_the_product_of_exact_layer_norms():
    torch.manual_seed(0)
    model = lipschitz_mlp(hidden=16, depth=2, scale=2.0, layer="spectral").eval()
    exact = [
        float(torch.linalg.matrix_norm(m.weight.detach().double(), 2))
        for m in model
        if isinstance(m, nn.Linear)
    ]
    assert upper_bound(model) == pytest.approx(2.0 * exact[0] * exact[1])


def test_lower_bound_stays_below_the_upper_bound_and_finds_a_linear_norm():
    torch.manual_seed(0)
    model = digits_cnn().eval()
    xs = [torch.rand(64) for _ in range(3)]
    assert 0 < lower_bound(model, xs) <= upper_bound(model)
    layer = nn.Linear(4, 3)
    exact = float(torch.linalg.matrix_norm(layer.weight.detach().double(), 2))
    assert lower_bound(layer, [torch.zeros(4)]) == pytest.approx(exact, rel=1e-4)


def test_unknown_layers_and_overlapping_pools_raise():
    with pytest.raises(TypeError, match="no Lipschitz bound is known for layer GELU"):
        upper_bound(nn.Sequential(nn.Linear(2, 2), nn.GELU()))
    with pytest.raises(ValueError, match="non-overlapping"):
        upper_bound(nn.MaxPool2d(3, stride=1))
