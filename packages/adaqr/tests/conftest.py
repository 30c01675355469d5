import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def embedded_data(tmp_path_factory):
    """The embedded data set, generated once per test session."""
    from marginkit.adaqr.embedded import EmbeddedDataConfig, make_data

    folder = tmp_path_factory.mktemp("data")
    manifest = make_data(EmbeddedDataConfig(output_dir=str(folder)))
    return folder, manifest
