import numpy as np
import pytest
import torch

from marginkit.mam.cli import main
from marginkit.mam.data import load_digits_binary
from marginkit.mam.model import MarginalizationModel, NetworkConfig


@pytest.mark.parametrize(
    "backbone, layout",
    [("mlp", "separate"), ("mlp", "head"), ("transformer", "head"), ("unet", "separate")],
)
def test_every_backbone_gives_normalised_log_marginals_and_conditionals(backbone, layout):
    torch.manual_seed(0)
    config = NetworkConfig(
        num_variables=16,
        num_categories=2,
        backbone=backbone,
        width=16,
        depth=1,
        layout=layout,
        image_shape=(4, 4),
    )
    model = MarginalizationModel(config)
    values = torch.randint(0, 2, (3, 16))
    observed = torch.rand(3, 16) < 0.5
    with torch.no_grad():
        log_probs = model.conditional_log_probs(values, observed)
        empty = model.log_marginal(values, torch.zeros_like(observed))
        joint = model.log_marginal(values, observed)
        given = observed & (torch.arange(16) < 8)
        conditional = model.log_conditional(values, observed & ~given, given)
    assert log_probs.shape == (3, 16, 2)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 16), atol=1e-5)
    assert empty.tolist() == [0.0, 0.0, 0.0]
    expected = joint - model.log_marginal(values, given)
    assert torch.allclose(conditional, expected, atol=1e-5)


def test_a_row_does_not_depend_on_the_rest_of_its_batch():
    model = MarginalizationModel(NetworkConfig(num_variables=8, num_categories=3, width=16))
    values = torch.randint(0, 3, (5, 8))
    observed = torch.rand(5, 8) < 0.5
    with torch.no_grad():
        alone = model.score(values[:1], observed[:1])
        batched = model.score(values, observed)[:1]
    assert torch.allclose(alone, batched, atol=1e-5)


def test_model_refuses_queries_of_the_wrong_width_or_range():
    model = MarginalizationModel(NetworkConfig(num_variables=4, num_categories=2, width=8))
    with pytest.raises(ValueError, match="D=5"):
        model.log_marginal(torch.zeros(1, 5, dtype=torch.long), torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="outside"):
        model.log_marginal(torch.full((1, 4), 2), torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="image_shape"):
        MarginalizationModel(NetworkConfig(num_variables=4, backbone="unet"))


def test_binarized_digits_have_the_documented_statistics():
    data = load_digits_binary()
    everything = torch.cat([data.train, data.test])
    assert data.train.shape == (1500, 64) and data.test.shape == (297, 64)
    assert everything.float().mean().item() == pytest.approx(0.323, abs=0.001)
    assert int((everything.sum(0) == 0).sum()) == 10
    assert len(torch.unique(everything, dim=0)) == 1750


def test_cli_trains_from_a_file_then_answers_marginal_queries(tmp_path, capsys):
    x = np.random.default_rng(0).integers(0, 2, size=(200, 4))
    x[:, 1] = x[:, 0]  # x_1 copies x_0: p(x_0=1, x_1=0) is ~0
    np.save(tmp_path / "codes.npy", x)
    out = tmp_path / "run"
    main(
        [
            "train-mle",
            "--data",
            str(tmp_path / "codes.npy"),
            "--stage1-steps",
            "150",
            "--stage2-steps",
            "150",
            "--batch-size",
            "64",
            "--lr-stage1",
            "3e-3",
            "--lr-stage2",
            "3e-3",
            "--model.width",
            "32",
            "--device",
            "cpu",
            "--output-dir",
            str(out),
        ]
    )
    capsys.readouterr()
    main(["marginal", "--checkpoint", str(out), "--queries", "1,-1,-1,-1"])
    main(["marginal", "--checkpoint", str(out), "--queries", "1,0,-1,-1", "--num-orders", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    single = float(lines[0].split("=")[1])
    contradiction, contradiction_aoarm = (
        float(part.split("=")[1].split()[0]) for part in lines[1].split("AO-ARM")
    )
    assert single == pytest.approx(np.log(x[:, 0].mean()), abs=0.2)
    # p_phi (stage 1) has learnt the copy; the short stage 2 moves f_theta the same way.
    assert contradiction_aoarm < np.log(0.05)
    assert contradiction < single - 0.5
    main(
        [
            "sample",
            "--checkpoint",
            str(out),
            "--num-samples",
            "50",
            "--output",
            str(tmp_path / "s.npy"),
        ]
    )
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (50, 4) and (samples[:, 0] == samples[:, 1]).mean() > 0.9
