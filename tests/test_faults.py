"""Faults: ``salience predict`` and ``salience train`` killed with SIGKILL at random moments,
then run again, end where an uninterrupted run ends, bit for bit, and leave nothing half-written.

Each kill lands at a time drawn (seeded) between the start of the process and the end of an
uninterrupted run of the same job, so some land during start-up, some among the writes. The
number of runs and every wait are bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from salience.training.checkpoint import load_weights
from salience.training.config import save_config
from tests.training.conftest import tiny_config

SEEDS = (0, 1)


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "salience", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the kill reaches the whole process group
    )


def _run(*args: str) -> float:
    """Run to the end; the seconds it took."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "salience", *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode in (0, 1), done.stderr
    return time.perf_counter() - start


def _kill_after(process: subprocess.Popen, seconds: float) -> None:
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def _outputs(folder: Path) -> dict[str, object]:
    """Every per-image file's content (densities as arrays, pictures as pixels)."""
    found: dict[str, object] = {}
    for path in sorted(folder.iterdir()):
        if path.name.endswith("_density.npy"):
            found[path.name] = np.load(path)
        elif path.suffix == ".png":
            with Image.open(path) as im:
                found[path.name] = np.asarray(im)
        elif path.name.endswith("_fixations.json"):
            found[path.name] = path.read_text()
    return found


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fault-images")
    rng = np.random.default_rng(0)
    for i in range(8):
        array = rng.integers(0, 256, (48 + 4 * i, 64, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / f"im{i}.png")
    return folder


def test_predict_killed_anywhere_finishes_as_if_never_killed(images, tiny_weights, tmp_path):
    job = [str(images), "--checkpoint", str(tiny_weights), "--batch-size", "2"]
    whole = _run("predict", *job, "--out", str(tmp_path / "whole"))
    want = _outputs(tmp_path / "whole")
    assert len(want) == 8 * 4
    for seed in SEEDS:
        out = tmp_path / f"killed{seed}"
        wait = np.random.default_rng(seed).uniform(0.3, whole)
        _kill_after(_start("predict", *job, "--out", str(out)), wait)
        _run("predict", *job, "--out", str(out))
        got = _outputs(out)
        assert got.keys() == want.keys(), seed
        for name, value in want.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(got[name], value, err_msg=f"{seed} {name}")
            else:
                assert got[name] == value, (seed, name)
        leftovers = [p.name for p in out.iterdir() if ".tmp" in p.name]
        assert not leftovers, (seed, leftovers)


def test_train_killed_anywhere_resumes_to_the_same_weights(small_osie, tmp_path):
    sections = {"train": {"epochs": 3, "checkpoint_every": 1}}
    config = tmp_path / "tiny.yaml"
    save_config(tiny_config(small_osie, tmp_path / "unused", **sections), config)
    whole = _run("train", str(config), "--out", str(tmp_path / "whole"))
    want, _ = load_weights(tmp_path / "whole" / "last.safetensors")
    for seed in SEEDS[:1]:
        out = tmp_path / f"killed{seed}"
        wait = np.random.default_rng(seed).uniform(0.3, whole)
        _kill_after(_start("train", str(config), "--out", str(out)), wait)
        _run("train", str(config), "--out", str(out), "--resume")
        got, _ = load_weights(out / "last.safetensors")
        assert got.keys() == want.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=f"{seed} {key}")
