"""Configs stored in checkpoint metadata: round trip and clear errors on malformed files."""

import pytest
import torch
from safetensors.torch import save_file

from salience.models.dense import DenseConfig, DenseDensity, DenseSaliency, checkpoint_metadata
from salience.models.metadata import config_fields, read_metadata

SMALL = DenseConfig(backbone_pretrained=False, out_indices=(3, 4), readout=(8,))


def test_a_dense_config_survives_the_metadata_round_trip(tmp_path):
    model = DenseSaliency(SMALL)
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path), metadata=checkpoint_metadata(model, "tiny"))
    fields = config_fields(read_metadata(path), "dense_config", str(path), "a dense-model")
    assert fields["out_indices"] == (3, 4)  # JSON lists come back as the config's tuples
    assert DenseConfig(**fields) == SMALL
    loaded = DenseDensity.from_checkpoint(path)
    assert loaded.model.config.readout == (8,)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({}, "not a SUM checkpoint"),
        ({"sum_config": "{not json"}, "not valid JSON"),
        ({"sum_config": "[1, 2]"}, "not a JSON object"),
    ],
)
def test_malformed_metadata_is_a_clear_error(metadata, message):
    with pytest.raises(ValueError, match=message):
        config_fields(metadata, "sum_config", "x.safetensors", "a SUM")


def test_a_file_without_metadata_reads_as_empty(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    assert read_metadata(path) == {}
    with pytest.raises(ValueError, match="not a dense-model checkpoint"):
        DenseDensity.from_checkpoint(path)
