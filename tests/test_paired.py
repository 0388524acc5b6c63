"""Paired differences between two models on the same images: mean, standard error, interval."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from salience.cli import app
from salience.evaluation.paired import paired_differences, read_per_image


def _per_image(values: np.ndarray, metric: str = "IG") -> dict[str, dict[str, float]]:
    return {f"img{i:03d}": {metric: float(v), "NSS": 1.0} for i, v in enumerate(values)}


def test_a_clear_gain_and_noise_are_told_apart():
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.3, 200)
    a = _per_image(base)
    better = _per_image(base + 0.1 + rng.normal(0, 0.05, 200))  # a gain far above its noise
    noisy = _per_image(base + rng.normal(0, 0.3, 200))  # no gain, much noise
    (gain,) = paired_differences(a, better, ["IG"])
    assert gain.clear and gain.low > 0 and gain.mean == pytest.approx(0.1, abs=0.01)
    assert gain.se == pytest.approx(0.05 / math.sqrt(200), rel=0.15)
    assert gain.low < gain.mean < gain.high
    (none,) = paired_differences(a, noisy, ["IG"])
    assert not none.clear and none.low < 0 < none.high
    # a wider level, a wider interval
    (wide,) = paired_differences(a, noisy, ["IG"], level=0.99)
    assert wide.low < none.low and wide.high > none.high


def test_undefined_values_are_left_out_and_other_images_refused():
    a = _per_image(np.array([0.1, 0.2, 0.3, 0.4]))
    b = _per_image(np.array([0.2, np.nan, 0.5, 0.6]))
    (d,) = paired_differences(a, b, ["IG"])
    assert d.n == 3 and d.mean == pytest.approx((0.1 + 0.2 + 0.2) / 3)
    with pytest.raises(ValueError, match="different images"):
        paired_differences(a, {**b, "another": {"IG": 0.0}}, ["IG"])
    # asked to, the images both score: e.g. one fold of a cross-validation against all
    part = {k: v for k, v in a.items() if k != "img003"}
    (shared,) = paired_differences(part, {**b, "another": {"IG": 0.0}}, ["IG"], common=True)
    assert shared.n == 2 and shared.mean == pytest.approx((0.1 + 0.2) / 2)
    with pytest.raises(ValueError, match="share no image"):
        paired_differences(a, {"another": {"IG": 0.0}}, ["IG"], common=True)


def test_the_command_reads_two_results_files(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.normal(0.5, 0.3, 50)
    names = {"a.json": ("default", base), "b.json": ("other", base + 0.2)}
    for name, (model, values) in names.items():
        rows = [{"model": model, "per_image": _per_image(values)}]
        if name == "a.json":
            rows.append({"model": "center-bias", "per_image": _per_image(values * 0)})
        (tmp_path / name).write_text(json.dumps({"results": rows}))
    runner = CliRunner()
    args = ["eval-diff", str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "say which model" in refused.output
    result = runner.invoke(app, [*args, "--model-a", "default"])
    assert result.exit_code == 0, result.output
    assert "+0.2000 *" in result.output and "Traceback" not in result.output
    assert read_per_image(tmp_path / "b.json")[0] == "other"
    missing = runner.invoke(app, [*args, "--model-a", "gold"])
    assert missing.exit_code == 2 and "no model 'gold'" in missing.output
