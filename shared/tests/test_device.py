import pytest
import torch

from marginkit.shared import autocast, resolve_dtype, select_device


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("bf16", torch.bfloat16),
        ("fp16", torch.float16),
        ("fp32", torch.float32),
        ("BF16", torch.bfloat16),
        ("float32", torch.float32),
    ],
)
def test_resolve_dtype_maps_short_names(name, dtype):
    assert resolve_dtype(name) is dtype


def test_resolve_dtype_rejects_unknown_name_and_lists_choices():
    with pytest.raises(ValueError, match="unknown precision 'fp13'.*bf16"):
        resolve_dtype("fp13")


def test_select_device_prefers_argument_over_environment(monkeypatch):
    monkeypatch.setenv("MARGINKIT_DEVICE", "cuda:3")
    assert select_device("cpu") == torch.device("cpu")


def test_select_device_reads_environment(monkeypatch):
    monkeypatch.setenv("MARGINKIT_DEVICE", "cpu")
    assert select_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_select_device_names_missing_cuda():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        select_device("cuda")


def test_autocast_on_cpu_runs_linear_in_bf16():
    layer = torch.nn.Linear(8, 8)
    with autocast("cpu", "bf16"):
        out = layer(torch.ones(2, 8))
    assert out.dtype == torch.bfloat16
    expected = layer(torch.ones(2, 8))
    assert torch.allclose(out.float(), expected, atol=5e-2)


def test_autocast_fp32_leaves_float32():
    with autocast("cpu", "fp32"):
        out = torch.nn.Linear(8, 8)(torch.ones(2, 8))
    assert out.dtype == torch.float32


def test_autocast_fp16_on_cpu_falls_back_to_bf16():
    with autocast("cpu", "fp16"):
        out = torch.nn.Linear(8, 8)(torch.ones(2, 8))
    assert out.dtype == torch.bfloat16
