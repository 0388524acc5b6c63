"""Shared fixtures: where the real eye-tracking data lives, and small subsets of it."""

from __future__ import annotations

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
def osie(osie_root: Path):
    from salience.data.osie import load_osie

    return load_osie(osie_root)


@pytest.fixture(scope="session")
def nus_scene(nus_scene_root: Path):
    from salience.data.nus_scene import load_nus_scene

    return load_nus_scene(nus_scene_root)
