import numpy as np
import pytest
import torch

from marginkit.mam.encoding import (
    binarize_images,
    check_values,
    join_partial,
    one_hot_inputs,
    split_partial,
)
from marginkit.mam.ising import IsingLattice


def test_partial_assignment_round_trips_through_values_and_observed():
    partial = torch.tensor([[2, -1, 0], [-1, -1, 1]])
    values, observed = split_partial(partial, num_categories=3)
    assert observed.tolist() == [[True, False, True], [False, False, True]]
    assert torch.equal(join_partial(values, observed), partial)


def test_unknown_is_the_extra_class_k_and_values_are_not_shifted():
    values, observed = split_partial([[0, -1, 1]], num_categories=2)
    encoded = one_hot_inputs(values, observed, 2)
    assert encoded.argmax(-1).tolist() == [[0, 2, 1]]
    assert encoded.shape == (1, 3, 3)


@pytest.mark.parametrize(
    "data, message",
    [
        ([[0, 2, 1]], "outside"),
        ([[0, -1, 1]], "training data must be complete"),
        (np.array([[0.0, np.nan, 1.0]]), "NaN"),
        (np.array([[0.0, 0.5, 1.0]]), "non-integer"),
        (np.zeros((0, 3)), "empty"),
    ],
)
def test_bad_training_data_raises_naming_the_problem(data, message):
    with pytest.raises(ValueError, match=message):
        check_values(data, num_categories=2, num_variables=3)


def test_wrong_number_of_variables_is_rejected():
    with pytest.raises(ValueError, match="D=4"):
        check_values([[0, 1, 0, 1]], num_categories=2, num_variables=3)
    with pytest.raises(ValueError, match="D=9"):
        IsingLattice(4).log_f(torch.zeros(2, 9, dtype=torch.long))


def test_query_value_outside_range_is_rejected_only_where_observed():
    split_partial([[1, -1]], num_categories=2)
    with pytest.raises(ValueError, match="outside"):
        split_partial([[5, -1]], num_categories=2)


def test_images_are_thresholded_at_half_and_flattened():
    images = np.array([[[0.2, 0.5], [0.7, 0.49]]])
    assert binarize_images(images).tolist() == [[0, 1, 1, 0]]
    assert binarize_images(np.array([[[[127, 128]]]], dtype=np.uint8)).tolist() == [[0, 1]]


def test_loading_a_data_file_with_nan_names_the_nan_and_its_position(tmp_path):
    from marginkit.mam.data import load_codes

    x = np.zeros((5, 3))
    x[2, 1] = np.nan
    np.save(tmp_path / "codes.npy", x)
    with pytest.raises(ValueError, match=r"NaN \(first at row 2, column 1\)"):
        load_codes(str(tmp_path / "codes.npy"))


@pytest.mark.parametrize("num_samples", [0, -3])
def test_sample_config_refuses_a_non_positive_number_of_samples(num_samples):
    from marginkit.mam.config import SampleConfig

    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        SampleConfig(num_samples=num_samples)


def test_sample_config_refuses_an_unknown_sampler():
    from marginkit.mam.config import SampleConfig

    with pytest.raises(ValueError, match="sampler must be 'ancestral' or 'ratio'"):
        SampleConfig(sampler="gibbs")
