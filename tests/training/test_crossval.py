"""Cross-validation: folds by image, every training image held out once, pooled scores."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from salience.data import load_dataset
from salience.training.config import ConfigError, config_from_dict
from salience.training.crossval import cross_validate, fold_config
from tests.training.conftest import tiny_config, tiny_tree


def _config(small_osie, nus_scene_root, out):
    return tiny_config(
        small_osie,
        out,
        data={
            "train": [
                {"name": "osie", "root": str(small_osie), "split": "train", "limit": 6},
                {"name": "nus-scene", "root": str(nus_scene_root), "split": "train", "limit": 4},
            ],
            "augment": {"hflip": 0.5, "scale": [1.0, 1.0]},
            "cache_features": True,
            "feature_cache_dir": str(out / "cache"),
        },
        model={"name": "dense-lite0", "overrides": {"backbone_pretrained": False}},
        optim={"backbone_lr": 0.0, "lr": 1e-2},
        train={"epochs": 1, "batch_size": 4},
    )


def test_folds_partition_every_source(small_osie, nus_scene_root, tmp_path):
    config = _config(small_osie, nus_scene_root, tmp_path)
    config = replace(config, data=replace(config.data, calibration_images=1))
    held: list[list[str]] = [[], []]
    for k in range(3):
        cfg = fold_config(config, k, 3, tmp_path)
        assert cfg.train.out == str(tmp_path / f"fold-{k}")
        # calibration images come out of the run's training folds (Trainer._splits)
        assert cfg.data.calibration_images == 1
        for i, (train, val) in enumerate(zip(cfg.data.train, cfg.data.val, strict=True)):
            full = load_dataset(train.name, train.root).split("train")
            full = full.subset(full.ids[: train.limit])
            fit = full.fold(*train.fold, complement=train.fold_complement)
            out = full.fold(*val.fold, complement=val.fold_complement)
            assert not set(fit.ids) & set(out.ids) and len(fit) + len(out) == len(full)
            held[i] += out.ids
    assert sorted(held[0]) == sorted(set(held[0])) and len(held[0]) == 6  # each image once
    assert sorted(held[1]) == sorted(set(held[1])) and len(held[1]) == 4
    with pytest.raises(ValueError, match="cannot make 5 folds"):
        full.fold(0, 5)
    with pytest.raises(ValueError, match=r"fold 3 is not one of 0\.\.2"):
        full.fold(3, 3)
    tree = tiny_tree(small_osie, tmp_path)
    tree["data"]["train"][0]["fold"] = [0, 1]
    with pytest.raises(ConfigError, match=r"data.train\[0\].fold: .*at least 2 folds"):
        config_from_dict(tree)


def test_cross_validation_pools_every_held_out_image(small_osie, nus_scene_root, tmp_path):
    config = _config(small_osie, nus_scene_root, tmp_path)
    out = tmp_path / "cv"
    first = cross_validate(config, 2, out, folds=[0])
    assert first["finished_folds"] == [0] and first["pooled_folds"] == [0]
    assert first["epochs"][1]["osie"]["n_images"] == 3  # one fold: its held-out images only
    assert "held out by fold 1 only" in (out / "crossval.md").read_text()
    table = cross_validate(config, 2, out)
    assert table["finished_folds"] == [0, 1] and table["best_epoch"] == 1
    row = table["epochs"][1]
    assert row["osie"]["n_images"] == 6 and row["nus-scene"]["n_images"] == 4
    ig, gold = [], []
    for k in range(2):
        payload = json.loads((out / f"fold-{k}" / "val" / "epoch-001.json").read_text())
        result, source = payload["results"][0], payload["sources"][0]
        assert source["label"] == "osie"
        ig += [v["IG"] for v in result["per_image"].values()]
        gold += [source["gold_IG"]] * len(result["per_image"])
    assert row["osie"]["IG"] == pytest.approx(np.mean(ig))
    assert row["osie"]["IG_se"] == pytest.approx(np.std(ig, ddof=1) / np.sqrt(6))
    assert row["osie"]["explained_IG_percent"] == pytest.approx(100 * np.mean(ig) / np.mean(gold))
    assert "| 1 |" in (out / "crossval.md").read_text()
    pooled = json.loads((out / "pooled" / "osie-epoch-001.json").read_text())["results"][0]
    assert sorted(v["IG"] for v in pooled["per_image"].values()) == sorted(ig)  # for eval-diff
    assert pooled["n_images"] == 6 and pooled["dataset"] == "osie"
    weights = out / "fold-0" / "last.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = cross_validate(config, 2, out)  # finished folds are kept, not retrained
    assert weights.stat().st_mtime_ns == stamp and again["epochs"].keys() == table["epochs"].keys()


def test_the_command_names_a_fold_out_of_range(tmp_path):
    from typer.testing import CliRunner

    from salience.cli import app

    result = CliRunner().invoke(
        app, ["cv", "configs/default.yaml", "--folds", "3", "--fold", "7", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "fold 7 is not one of 0..2" in result.output
    assert "Traceback" not in result.output
