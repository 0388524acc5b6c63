"""The model shipped in the package: loads offline, is a real saliency model, carries its
sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from salience.cli import app
from salience.evaluation.evaluate import evaluate
from salience.models.baselines import CenterBiasKDE
from salience.models.dense import DenseDensity, DenseSaliency
from salience.models.metadata import read_metadata
from salience.models.registry import create_model, load_pretrained, shipped_weights
from salience.models.sampler import ScanpathSampler
from salience.predictor import Predictor

SHIPPED = {"default": 10e6, "accurate": 30e6}  # name: the most bytes its file may take


@pytest.mark.parametrize(("name", "size"), SHIPPED.items())
def test_shipped_file_is_small_fp16_and_self_describing(name, size):
    path = shipped_weights(name)
    assert path.stat().st_size < size
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert "dense_config" in metadata and metadata["model"].startswith("dense-")
    assert {str(d) for d in dtypes} <= {"torch.float16", "torch.int64"}
    ScanpathSampler.from_dict(json.loads(metadata["sampler"]))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_beats_the_center_bias_on_held_out_osie(osie, name):
    model = load_pretrained(name)
    assert isinstance(model, DenseDensity)
    assert model.flip_average == (name == "accurate")  # too slow for the default
    assert isinstance(create_model(name, pretrained=True), DenseSaliency)  # the network
    val = osie.split("val")
    subset = val.subset(val.ids[:8])
    center_bias = CenterBiasKDE()
    center_bias.fit(osie.split("train"))
    result = evaluate(model, subset, center_bias=center_bias)
    # the center bias scores IG 0, NSS about 0.9 and AUC-Judd about 0.74 on OSIE val
    assert result.means["IG"] > 1.0
    assert result.means["NSS"] > 2.5
    assert result.means["AUC-Judd"] > 0.85


@pytest.mark.parametrize("name", SHIPPED)
def test_predictor_from_pretrained_uses_the_shipped_sampler(name):
    predictor = Predictor.from_pretrained(name)
    with safe_open(str(shipped_weights(name)), framework="pt") as f:
        stored = json.loads(f.metadata()["sampler"])
    assert predictor.sampler.to_dict() == stored
    result = predictor.predict(np.full((120, 160, 3), 200, np.uint8))
    assert result.density.shape == (120, 160)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_take_no_overrides(name):
    with pytest.raises(ValueError, match="overrides"):
        create_model(name, pretrained=True, readout=(4,))
    # untrained, its architecture takes them, the backbone's ImageNet flag too
    assert not create_model(name, backbone_pretrained=False).config.backbone_pretrained


def test_export_writes_fp16_with_a_fitted_sampler(tiny_weights, osie_root, tmp_path):
    out = tmp_path / "shipped.safetensors"
    result = CliRunner().invoke(
        app,
        [
            "export",
            str(tiny_weights),
            str(out),
            "--sampler-dataset",
            "osie",
            "--sampler-root",
            str(osie_root),
            "--sampler-split",
            "val",
        ],
    )
    assert result.exit_code == 0, result.output
    with safe_open(str(out), framework="pt") as f:
        assert all(str(f.get_tensor(k).dtype) in ("torch.float16", "torch.int64") for k in f.keys())
        metadata = f.metadata()
    assert "osie val (100 images)" == metadata["sampler_data"]
    predictor = Predictor.from_checkpoint(out)
    assert predictor.sampler.to_dict() == json.loads(metadata["sampler"])
    assert out.stat().st_size < tiny_weights.stat().st_size


def test_export_switches_mirror_averaging_and_keeps_the_weights(tiny_weights, tmp_path):
    out = tmp_path / "flipped.safetensors"
    args = ["export", str(tiny_weights), str(out), "--no-fp16", "--flip-average"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    before, after = read_metadata(tiny_weights), read_metadata(out)
    assert not json.loads(before["dense_config"])["flip_average"]
    assert json.loads(after["dense_config"])["flip_average"]
    assert {k: v for k, v in after.items() if k != "dense_config"} == {
        k: v for k, v in before.items() if k != "dense_config"
    }
    assert Predictor.from_checkpoint(out).model.flip_average
    with (
        safe_open(str(out), framework="pt") as a,
        safe_open(str(tiny_weights), framework="pt") as b,
    ):
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in b.keys())
