"""YAML configs, dotted overrides and their checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from salience.training.config import ConfigError, apply_override, load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["saltr-lite0-cpu.yaml", "saltr-r50-gpu.yaml"])
def test_shipped_configs_load(name):
    config = load_config(REPO / "configs" / name)
    assert config.model.name.startswith("saltr-")
    assert config.data.train and config.data.val is not None


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: x\n"
        "data:\n  train: [{name: osie, root: /d}]\n  input_size: [240, 320]\n"
        "optim: {lr: 1e-4}\n"
    )
    config = load_config(
        path,
        [
            "optim.lr=3e-4",  # YAML reads this as a string: coerced to float
            "train.epochs=5",
            "data.augment.scale=[1, 1.5]",
            "model.overrides.d_model=128",
            "model.max_targets=null",
            "data.val={name: osie, root: /d, split: val}",
        ],
    )
    assert config.optim.lr == pytest.approx(3e-4) and isinstance(config.optim.lr, float)
    assert config.train.epochs == 5
    assert config.data.input_size == (240, 320)
    assert config.data.augment.scale == (1.0, 1.5)
    assert config.model.overrides == {"d_model": 128}
    assert config.data.val.split == "val"
    assert config.data.train[0].split == "train"  # default filled in


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "unknown key"),
        ("nosuch.x=1", "unknown key"),
        ("train.epochs=1.5", "integer"),
        ("train.epochs=many", "number"),
        ("data.cache_images=maybe", "true or false"),
        ("model.targets=everything", "model.targets"),
        ("data.input_size=[1, 2, 3]", "2 values"),
        ("optim", "key=value"),
    ],
)
def test_bad_overrides_are_errors(tmp_path, override, message):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train: [{name: osie, root: /d}]\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path, [override])


def test_unknown_key_in_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train: [{name: osie, root: /d, splitt: val}]\n")
    with pytest.raises(ConfigError, match=r"data\.train\.0: unknown key"):
        load_config(path)


def test_feature_cache_needs_frozen_backbone(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train: [{name: osie, root: /d}]\n  cache_features: true\n")
    with pytest.raises(ConfigError, match="frozen backbone"):
        load_config(path)
    load_config(path, ["optim.backbone_lr=0"])


def test_override_into_scalar_is_error():
    tree = {"train": 3}
    with pytest.raises(ConfigError, match="not a section"):
        apply_override(tree, "train.epochs=1")
