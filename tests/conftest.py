"""Shared fixtures: where the real eye-tracking data lives, and small subsets of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The data folder sits beside the checkout (../shared/data); SALIENCE_DATA overrides it.
DATA = Path(os.environ.get("SALIENCE_DATA", REPO.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"CI needs the shared data at {path}")
        pytest.skip(f"real data not found at {path} (set SALIENCE_DATA)")
    return path


@pytest.fixture(scope="session")
def osie_root() -> Path:
    return _require(DATA / "osie")


@pytest.fixture(scope="session")
def nus_scene_root() -> Path:
    return _require(DATA / "nus-scene")


@pytest.fixture(scope="session")
def eyevido_root() -> Path:
    return _require(DATA / "eyevido")


@pytest.fixture(scope="session")
def osie(osie_root: Path):
    from salience.data.osie import load_osie

    return load_osie(osie_root)


@pytest.fixture(scope="session")
def nus_scene(nus_scene_root: Path):
    from salience.data.nus_scene import load_nus_scene

    return load_nus_scene(nus_scene_root)


@pytest.fixture(scope="session")
def eyevido(eyevido_root: Path):
    from salience.data.eyevido import load_eyevido

    return load_eyevido(eyevido_root)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A small random dense model saved as a checkpoint: the CLI's plumbing, quickly."""
    import torch
    from safetensors.torch import save_file

    from salience.models.dense import DenseConfig, DenseSaliency, checkpoint_metadata

    torch.manual_seed(0)
    model = DenseSaliency(
        DenseConfig(backbone_pretrained=False, image_size=(64, 96), input_pixels=64 * 96)
    )
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_file(model.state_dict(), str(path), metadata=checkpoint_metadata(model, "dense-lite0"))
    return path


@pytest.fixture(scope="session")
def small_osie(osie_root: Path, tmp_path_factory) -> Path:
    """The OSIE folder with a split.json of 60 training and 6 evaluation images."""
    root = tmp_path_factory.mktemp("osie-small")
    (root / "stimuli").symlink_to(osie_root / "stimuli")
    (root / "eye").symlink_to(osie_root / "eye")
    split = json.loads((osie_root / "split.json").read_text())
    small = {"train": split["train"][:60], "val": split["val"][:6], "test": split["val"][6:9]}
    (root / "split.json").write_text(json.dumps(small))
    return root
