"""Window readouts on the default model's backbone: export, the backbone check, one forward pass."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from salience.models.backbone import weights_digest
from salience.models.dense import (
    DenseConfig,
    DenseDensity,
    DenseSaliency,
    checkpoint_metadata,
    shipped_weights,
)
from salience.models.dense.windows import WindowedDensity
from salience.models.registry import load_pretrained
from salience.predictor import Predictor
from salience.training.export import export_weights

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "example.jpg"
SMALL = DenseConfig(backbone_pretrained=False, image_size=(64, 96), input_pixels=64 * 96)


@pytest.fixture(scope="module")
def tiny_windows(tmp_path_factory):
    """A random two-window model on a tiny input, and its readouts exported on their own."""
    torch.manual_seed(0)
    model = DenseSaliency(replace(SMALL, readouts=2, windows=((0, 1), (1, 3)))).eval()
    folder = tmp_path_factory.mktemp("windows")
    full = folder / "full.safetensors"
    save_file(model.state_dict(), str(full), metadata=checkpoint_metadata(model, "dense-lite0"))
    readouts = export_weights(full, folder / "readouts.safetensors", torch.float32, None, True)
    return model, readouts


def _base_with_backbone_of(model: DenseSaliency) -> DenseDensity:
    """A one-readout model of its own whose backbone is ``model``'s."""
    torch.manual_seed(1)
    base = DenseSaliency(SMALL)
    base.backbone.load_state_dict(model.backbone.state_dict())
    return DenseDensity(base)


def test_exported_readouts_are_the_windows_of_the_trained_model(tiny_windows):
    model, readouts = tiny_windows
    with safe_open(str(readouts), framework="pt") as f:
        assert all(k.startswith("readouts.") for k in f.keys())
        assert f.metadata()["backbone_sha256"] == weights_digest(model.backbone.state_dict())
    base = _base_with_backbone_of(model)
    windowed = WindowedDensity.from_file(readouts, base, default_weight=0.0)
    assert [w.label for w in windowed.windows] == ["0-1s", "1-3s"]
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    own, windows = windowed.window_log_densities([image])[0]
    assert windows.shape == (2, 50, 70)
    np.testing.assert_allclose(np.exp(windows).sum(axis=(1, 2)), 1.0, atol=1e-9)
    np.testing.assert_allclose(own, base.log_density(image, (50, 70)), atol=1e-6)
    # independently: the trained model's own readouts on the resized image
    height, width = windowed.input_size((50, 70))
    resized = np.array(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    x = torch.from_numpy(resized).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        members = model(x)["member_log_densities"][0]  # (2, h, w)
    want = np.stack([DenseDensity.upsample(m, (50, 70)) for m in members])
    np.testing.assert_allclose(windows, want, atol=1e-5)


def test_window_maps_mix_in_the_base_density_as_weighted(tiny_windows):
    model, readouts = tiny_windows
    base = _base_with_backbone_of(model)
    x = torch.rand(2, 3, 64, 96)
    alone = WindowedDensity.from_file(readouts, base, default_weight=0.0).window_cells(x)
    mixed = WindowedDensity.from_file(readouts, base, default_weight=0.25).window_cells(x)
    torch.testing.assert_close(mixed[:, 0], alone[:, 0])  # the base's own map is untouched
    want = torch.log(0.75 * alone[:, 1:].exp() + 0.25 * alone[:, :1].exp())  # (2, K, h, w)
    torch.testing.assert_close(mixed[:, 1:], want, rtol=1e-5, atol=1e-5)
    assert torch.logsumexp(mixed[:, 1:].flatten(2), -1).abs().max() < 1e-5  # still densities
    with pytest.raises(ValueError, match="default_weight"):
        WindowedDensity.from_file(readouts, base, default_weight=1.0)


def test_readouts_refuse_another_backbone(tiny_windows):
    _, readouts = tiny_windows
    torch.manual_seed(2)
    other = DenseDensity(DenseSaliency(SMALL))  # the same architecture, other weights
    with pytest.raises(ValueError, match="another backbone"):
        WindowedDensity.from_file(readouts, other)
    with pytest.raises(ValueError, match="not window readouts"):
        WindowedDensity.from_file(shipped_weights("default"), other)


def test_shipped_window_readouts_are_small_and_made_for_the_default_backbone():
    path = shipped_weights("windows")
    assert path.stat().st_size < 1e6
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        assert all(k.startswith("readouts.") for k in f.keys())
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} <= {"torch.float16", "torch.int64"}
    default = load_pretrained("default")
    assert metadata["backbone_sha256"] == default.model.backbone.weights_sha256()


def test_predict_gives_one_normalized_map_per_window_in_the_same_pass():
    predictor = Predictor.from_pretrained()
    image = np.asarray(Image.open(EXAMPLE).convert("RGB").resize((160, 120)))
    result = predictor.predict(image, windows=True)
    assert [m.window.label for m in result.windows] == ["0-1s", "1-2s", "2-3s"]
    for window_map in result.windows:
        assert window_map.log_density.shape == (120, 160)
        assert window_map.density.sum() == pytest.approx(1.0)
    plain = predictor.predict(image)
    assert plain.windows == []
    np.testing.assert_allclose(result.log_density, plain.log_density, atol=1e-6)
    first, last = result.windows[0].density, result.windows[-1].density
    assert 0.5 * np.abs(first - last).sum() > 0.05  # the windows are different maps
