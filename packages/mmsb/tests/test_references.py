"""Reference drifts and the closed-form theta-steps against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from marginkit.mmsb import Linear, LotkaVolterra, Parametric, Repressilator, Rotation
from marginkit.mmsb.refine import PathBatch, fit_affine


def test_affine_fit_is_exact_on_a_noiseless_euler_path():
    # X_{m+1} = X_m + (a X_m + c) h with a = -0.5, c = 0.3, h = 0.1: 1, 0.98, 0.961.
    path = PathBatch(np.array([[[1.0], [0.98], [0.961]]]), np.array([0.0, 0.1, 0.2]))
    A, c = fit_affine([path])
    assert abs(A[0, 0] + 0.5) < 1e-12 and abs(c[0] - 0.3) < 1e-12


def test_affine_fit_is_exact_with_mixed_step_sizes():
    # Steps 0.1 then 0.05: 0.98 + (-0.19)(0.05) = 0.9705.
    path = PathBatch(np.array([[[1.0], [0.98], [0.9705]]]), np.array([0.0, 0.1, 0.15]))
    A, c = fit_affine([path])
    assert abs(A[0, 0] + 0.5) < 1e-10 and abs(c[0] - 0.3) < 1e-10


def _noiseless_paths(drift, start, h=0.01, steps=200):
    states = [np.asarray(start, dtype=np.float64)]
    for _ in range(steps):
        states.append(states[-1] + drift(states[-1], 0.0) * h)
    return PathBatch(np.stack(states, axis=1), np.arange(steps + 1) * h)


def test_lotka_volterra_features_recover_parameters_from_noiseless_increments():
    truth = LotkaVolterra(1.0, 0.4, 0.4, 0.1)
    paths = _noiseless_paths(truth.drift, [[5.0, 4.0], [3.0, 2.0], [6.0, 1.0]])
    fitted = LotkaVolterra()
    fitted.fit([paths], sigma=0.1)
    np.testing.assert_allclose(fitted.theta, [1.0, 0.4, 0.4, 0.1], atol=1e-9)


def test_lotka_volterra_has_its_fixed_point_and_conserved_quantity():
    model = LotkaVolterra(1.0, 0.4, 0.4, 0.1)
    np.testing.assert_allclose(model.drift(np.array([[4.0, 2.5]]), 0.0), 0.0, atol=1e-9)

    def invariant(x):
        return 0.1 * x[0] - 0.4 * math.log(x[0]) + 0.4 * x[1] - math.log(x[1])

    state = np.array([[5.0, 4.0]])
    assert abs(invariant(state[0]) - 0.0699304739) < 1e-9
    h = 0.01
    for _ in range(1000):
        k1 = model.drift(state, 0.0)
        k2 = model.drift(state + h / 2 * k1, 0.0)
        k3 = model.drift(state + h / 2 * k2, 0.0)
        k4 = model.drift(state + h * k3, 0.0)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    assert abs(invariant(state[0]) - 0.0699304739) < 1e-6
    # Small oscillations: period 2 pi / sqrt(alpha gamma).
    assert abs(2 * math.pi / math.sqrt(0.4) - 9.9345882658) < 1e-9
    jac = model.jacobian(np.array([[4.0, 2.5]]), 0.0)[0]
    eigenvalues = np.linalg.eigvals(jac)
    np.testing.assert_allclose(np.abs(eigenvalues.imag), math.sqrt(0.4), atol=1e-9)


def test_repressilator_fixed_point_jacobian_and_instability():
    model = Repressilator(3, beta=10.0, hill=3.0, k=1.0, gamma=1.0)
    root = 1.6974718809  # x^4 + x - 10 = 0
    assert abs(root**4 + root - 10) < 1e-8
    point = np.full((1, 3), root)
    # The drift is evaluated at max(x, 0) + 1e-8, which shifts it by -gamma 1e-8.
    np.testing.assert_allclose(model.drift(point, 0.0), 0.0, atol=1e-7)
    jac = model.jacobian(point, 0.0)[0]
    np.testing.assert_allclose(np.diag(jac), -1.0, atol=1e-9)
    for i in range(3):
        assert abs(jac[i, i - 1] + 2.4907584357) < 1e-7  # root given to 10 digits
    assert abs(np.linalg.eigvals(jac).real.max() - 0.2453792179) < 1e-7


def test_repressilator_jacobian_matches_autograd():
    model = Repressilator(3, beta=4.0, hill=2.5, k=1.3, gamma=0.7)
    x = torch.tensor([[0.5, 1.2, 2.0], [1.5, 0.3, 0.9]], dtype=torch.float64)
    auto = torch.stack(
        [
            torch.autograd.functional.jacobian(
                lambda row: model.torch_drift(row[None], torch.zeros(1, 1), model.raw)[0], r
            )
            for r in x
        ]
    )
    np.testing.assert_allclose(model.jacobian(x.numpy(), 0.0), auto.numpy(), atol=1e-10)


def test_rotation_lbfgs_step_recovers_a_noiseless_rotation():
    truth = Rotation(scale=0.7, log_ratio=0.2, centre=(0.1, -0.3))
    paths = _noiseless_paths(truth.drift, [[0.0, -0.8], [0.5, 0.2], [-0.4, 0.1]], h=0.02)
    fitted = Rotation()
    fitted.fit([paths], sigma=0.1)
    expected = truth.parameters()
    for key, value in fitted.parameters().items():
        assert abs(value - expected[key]) < 1e-5, key


def test_parametric_module_step_recovers_linear_weights():
    truth = Linear(2, A=np.array([[-0.3, 0.5], [-0.5, -0.3]]), c=np.array([0.1, 0.0]))
    paths = _noiseless_paths(truth.drift, [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]])
    module = torch.nn.Linear(2, 2).double()
    reference = Parametric(module)
    reference.fit([paths], sigma=0.1)
    np.testing.assert_allclose(module.weight.detach().numpy(), truth.A, atol=1e-6)
    np.testing.assert_allclose(module.bias.detach().numpy(), truth.c, atol=1e-6)


def test_linear_mask_keeps_fixed_entries_at_zero():
    truth = Linear(2, A=np.array([[-0.5, 0.0], [0.0, -1.0]]), bias=False)
    paths = _noiseless_paths(truth.drift, [[1.0, 2.0], [-1.0, 0.5]])
    fitted = Linear(2, bias=False, mask=np.eye(2, dtype=bool))
    fitted.fit([paths], sigma=0.1)
    np.testing.assert_allclose(fitted.A, truth.A, atol=1e-10)
    assert fitted.A[0, 1] == 0.0 and fitted.A[1, 0] == 0.0


def test_rotation_rejects_non_positive_scale():
    with pytest.raises(ValueError, match="scale"):
        Rotation(scale=0.0)
