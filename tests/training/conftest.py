"""Tiny training setups on a few real OSIE images, fast enough for the unit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from salience.training.config import Config, config_from_dict

# a randomly initialized Lite0 and a two-layer transformer at 96 x 128: milliseconds per step
TINY_MODEL = {
    "backbone_pretrained": False,
    "d_model": 32,
    "nheads": 2,
    "enc_layers": 1,
    "dec_layers": 2,
    "dim_feedforward": 64,
    "num_queries": 10,
}


@pytest.fixture(scope="session")
def small_osie(osie_root: Path, tmp_path_factory) -> Path:
    """The OSIE folder with a split.json of 8 training and 2 validation images."""
    root = tmp_path_factory.mktemp("osie-tiny")
    (root / "stimuli").symlink_to(osie_root / "stimuli")
    (root / "eye").symlink_to(osie_root / "eye")
    split = json.loads((osie_root / "split.json").read_text())
    (root / "split.json").write_text(
        json.dumps({"train": split["train"][:8], "val": split["val"][:2]})
    )
    return root


def tiny_tree(root: Path, out: Path, n_train: int = 4, val: bool = False) -> dict[str, Any]:
    """A config mapping for a tiny SalTR on ``n_train`` images of the small OSIE folder."""
    source = {"name": "osie", "root": str(root), "split": "train", "limit": n_train}
    return {
        "name": "tiny",
        "data": {
            "train": [source],
            "val": {"name": "osie", "root": str(root), "split": "val"} if val else None,
            "input_size": [96, 128],
            "augment": {"hflip": 0.5, "scale": [1.0, 1.3]},
        },
        "model": {"name": "saltr-lite0", "overrides": dict(TINY_MODEL), "targets": "subsample"},
        "optim": {"lr": 1e-3, "backbone_lr": 1e-4, "clip_grad": 0.1},
        "schedule": {"kind": "cosine", "warmup_steps": 2},
        "train": {"epochs": 2, "batch_size": 2, "seed": 0, "device": "cpu", "out": str(out)},
        "eval": {"every": 1, "metric": "IG"},
    }


def tiny_config(root: Path, out: Path, **sections: dict[str, Any]) -> Config:
    """:func:`tiny_tree` with sections updated key by key, as a checked Config."""
    tree = tiny_tree(root, out, val=sections.pop("val", False))
    for section, values in sections.items():
        tree[section].update(values)
    return config_from_dict(tree)
