"""The ONNX Runtime backend against the PyTorch one: the same densities (to 1e-5 in total
variation), the same metadata, graphs built once and cached, clear errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from salience.models.onnx import MissingExtraError, load_onnx, upsample


def total_variation(log_a: np.ndarray, log_b: np.ndarray) -> float:
    return 0.5 * float(np.abs(np.exp(log_a) - np.exp(log_b)).sum())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private graph cache for this module (the default model exported once into it)."""
    path = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SALIENCE_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def onnx_default(cache):
    return load_onnx("default")


@pytest.fixture(scope="module")
def torch_default():
    from salience.models.registry import load_pretrained

    return load_pretrained("default")


@pytest.fixture(scope="module")
def images(osie):
    from salience.io.images import load_image

    rng = np.random.default_rng(0)
    photo = load_image(osie[0].path)  # 800 x 600
    portrait = np.ascontiguousarray(photo[:, 100:500])  # 600 x 400, another input size
    return [photo, portrait, rng.integers(0, 256, (300, 1100, 3), dtype=np.uint8)]


def test_fp32_densities_match_pytorch(onnx_default, torch_default, images):
    for ours, theirs in zip(
        onnx_default.log_densities(images), torch_default.log_densities(images), strict=True
    ):
        assert ours.shape == theirs.shape
        assert np.isclose(np.exp(ours).sum(), 1.0)
        assert total_variation(ours, theirs) < 1e-5


def test_window_densities_match_pytorch(onnx_default, torch_default, images):
    from salience.models.dense.windows import WindowedDensity
    from salience.models.registry import shipped_weights

    windowed = WindowedDensity.from_file(shipped_weights("windows"), torch_default)
    graph = onnx_default.with_windows()
    assert [w.label for w in graph.windows] == [w.label for w in windowed.windows]
    pairs = zip(
        graph.window_log_densities(images[:1]),
        windowed.window_log_densities(images[:1]),
        strict=True,
    )
    for (own, windows), (own_ref, windows_ref) in pairs:
        assert total_variation(own, own_ref) < 1e-5
        assert windows.shape == windows_ref.shape == (3, *own.shape)
        for ours, theirs in zip(windows, windows_ref, strict=True):
            assert total_variation(ours, theirs) < 1e-5


def test_numpy_upsampling_is_pytorchs():
    import torch

    from salience.models.density import GridDensity

    rng = np.random.default_rng(1)
    for cells, size in (
        ((24, 32), (600, 800)),
        ((20, 15), (37, 1000)),
        ((8, 8), (8, 8)),
        ((24, 32), (10, 7)),
    ):
        log_cells = rng.normal(size=cells).astype(np.float32)
        theirs = GridDensity.upsample(torch.from_numpy(log_cells), size)
        np.testing.assert_allclose(upsample(log_cells, size), theirs, rtol=0, atol=1e-12)


def test_graph_carries_what_the_predictor_needs(onnx_default, torch_default, cache):
    import onnx

    from salience.predictor import Predictor

    model = onnx.load(str(onnx_default.path), load_external_data=False)
    assert model.opset_import[0].version >= 17
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["log_density"]
    info = json.loads(onnx_default.metadata["salience_onnx"])
    assert info["input_pixels"] == torch_default.input_pixels
    assert info["precision"] == "fp32"
    assert onnx_default.path.parent == cache
    ours, theirs = Predictor(onnx_default), Predictor(torch_default)
    assert ours.sampler.to_dict() == theirs.sampler.to_dict()
    assert ours.condition == theirs.condition


def test_graphs_are_built_once(onnx_default, monkeypatch):
    from salience.models import onnx_export

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "export_onnx", no_export)
    assert load_onnx("default").path == onnx_default.path


def test_an_onnx_file_loads_as_it_is(onnx_default):
    from salience.predictor import Predictor

    predictor = Predictor.from_checkpoint(onnx_default.path, backend="onnxruntime")
    assert predictor.model.path == onnx_default.path


def test_too_elongated_images_are_refused(onnx_default):
    with pytest.raises(ValueError, match="torch backend"):
        onnx_default.log_densities([np.zeros((20, 3000, 3), dtype=np.uint8)])


def test_missing_onnxruntime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r"salience\[onnx\]"):
        load_onnx("default")


def test_backend_names_and_devices_are_checked():
    from salience.predictor import Predictor

    with pytest.raises(ValueError, match="unknown backend"):
        Predictor.from_pretrained(backend="tensorflow")
    with pytest.raises(ValueError, match="CPU"):
        Predictor.from_pretrained(backend="onnxruntime", device="cuda")


def test_predict_cli_runs_on_onnxruntime(onnx_default, osie, tmp_path):
    from typer.testing import CliRunner

    from salience.cli import app

    result = CliRunner().invoke(
        app, ["predict", str(osie[0].path), "--out", str(tmp_path), "--backend", "onnxruntime"]
    )
    assert result.exit_code == 0, result.output
    density = np.load(tmp_path / f"{osie[0].path.stem}_density.npy")
    assert density.shape == (600, 800)
    assert np.isclose(density.sum(), 1.0, atol=1e-4)


def test_export_command_refuses_clearly(tiny_weights, tmp_path):
    from typer.testing import CliRunner

    from salience.cli import app

    out, runner = tmp_path / "tiny.onnx", CliRunner()
    small = runner.invoke(app, ["export", str(tiny_weights), str(out), "--format", "onnx"])
    assert small.exit_code == 2
    assert "96-pixel side" in small.output  # the tiny model's 64 x 96 input is too small
    refused = runner.invoke(app, ["export", "default", str(out), "--format", "onnx", "--int8"])
    assert refused.exit_code == 2
    assert "--calibration-root" in refused.output
    assert not out.exists()
