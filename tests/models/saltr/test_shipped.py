"""The SalTR shipped in the package: loads offline, is a real saliency model, runs from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from salience.cli import app
from salience.evaluation.evaluate import evaluate
from salience.models.baselines import CenterBiasKDE
from salience.models.registry import create_model, load_pretrained, shipped_weights
from salience.models.saltr import SalTR, SaltrDensity
from salience.models.sampler import ScanpathSampler

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "example.jpg"


def test_shipped_file_is_small_fp16_and_self_describing():
    path = shipped_weights("saltr")
    assert path.stat().st_size < 15e6
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        dtypes = {str(f.get_tensor(k).dtype) for k in f.keys()}
    config = json.loads(metadata["saltr_config"])
    assert config["density_head"] and config["attention"] == "deformable"
    assert dtypes <= {"torch.float16", "torch.int64"}
    postprocess = json.loads(metadata["postprocess"])
    assert postprocess["sigma_px"] > 0
    assert postprocess["flip_average"]  # cross-validated: +0.06 bits on OSIE (saltr.md)
    ScanpathSampler.from_dict(json.loads(metadata["sampler"]))


def test_shipped_saltr_beats_the_center_bias_on_held_out_osie(osie):
    model = load_pretrained("saltr")
    assert isinstance(model, SaltrDensity) and model.flip_average
    assert isinstance(create_model("saltr", pretrained=True), SalTR)  # the network
    val = osie.split("val")
    center_bias = CenterBiasKDE()
    center_bias.fit(osie.split("train"))
    result = evaluate(model, val.subset(val.ids[:8]), center_bias=center_bias)
    # the center bias scores IG 0, NSS about 0.9 and AUC-Judd about 0.74 on OSIE val
    assert result.means["IG"] > 1.0
    assert result.means["NSS"] > 2.5
    assert result.means["AUC-Judd"] > 0.85


def test_shipped_saltr_takes_no_overrides_and_rebuilds_untrained():
    with pytest.raises(ValueError, match="no overrides"):
        create_model("saltr", pretrained=True, num_queries=3)
    fresh = create_model("saltr", backbone_pretrained=False)
    assert fresh.config.density_head and not fresh.config.backbone_pretrained


def test_predict_command_runs_the_shipped_saltr(osie, tmp_path):
    image = osie.split("val")[0].path
    result = CliRunner().invoke(
        app, ["predict", str(image), "--model", "saltr", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    density = np.load(next(tmp_path.glob("*.npy")))
    assert density.shape == (600, 800) and density.sum() == pytest.approx(1.0, abs=1e-6)
    fixations = json.loads(next(tmp_path.glob("*fixations*.json")).read_text())
    assert len(fixations["fixations"]) == 10


def test_onnx_runtime_backend_refuses_it_with_the_way_out(tmp_path):
    pytest.importorskip("onnxruntime")
    command = ["predict", str(EXAMPLE), "--model", "saltr", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*command, "--backend", "onnxruntime"])
    assert result.exit_code != 0
    assert "dense models only" in result.output and "torch backend" in result.output
    assert "Traceback" not in result.output
