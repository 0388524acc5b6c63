"""Two processes (gloo on the CPU, launched by torchrun) train as one process does with the same
global batch, even when one of them is killed midway and the run resumed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from salience.training.checkpoint import load_weights
from salience.training.config import config_from_dict, save_config
from salience.training.loop import Trainer
from salience.training.task import create_task
from tests.training.conftest import tiny_tree

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TIMEOUT_S = 300  # a hung process group fails the test instead of hanging CI
EPOCHS, STEPS_PER_EPOCH = 3, 2  # 8 images, global batch 4 (2 per process)


def _tree(root: Path, out: Path) -> dict:
    """The tiny SalTR on all 8 training images of the small OSIE folder, one CPU thread per
    process. One observer's fixations per image make the matched points' count differ between
    images (the set loss divides by it); no dropout, whose draws differ per process; and a frozen
    backbone: its trainable float32 twin turns rounding differences (about 1e-6 of a gradient)
    into weights 1e-5 apart within 2 steps, as ReLUs flip and Adam scales tiny gradients up."""
    tree = tiny_tree(root, out, n_train=8)
    tree["model"]["overrides"]["dropout"] = 0.0
    tree["model"]["targets"] = "observer"
    tree["optim"]["backbone_lr"] = 0.0
    tree["train"].update(epochs=EPOCHS, batch_size=4, threads=1, log_every=0)
    return tree


def _torchrun(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2 ARGS`` on 127.0.0.1 and a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, **(env or {}), "PYTHONPATH": path}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    command += ["--master_addr=127.0.0.1", f"--master_port={port}", *args]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )


@pytest.fixture(scope="module")
def one_process(small_osie, tmp_path_factory) -> Path:
    """The run folder of the reference: the same config in this one process."""
    out = tmp_path_factory.mktemp("one-process")
    threads = torch.get_num_threads()
    try:
        summary = Trainer(config_from_dict(_tree(small_osie, out))).fit()
    finally:
        torch.set_num_threads(threads)
    assert summary["steps"] == EPOCHS * STEPS_PER_EPOCH
    return out


def test_killed_two_process_run_resumes_equal_to_one_process(small_osie, one_process, tmp_path):
    out = tmp_path / "two"
    tree = _tree(small_osie, out)
    config_path = tmp_path / "config.yaml"
    save_config(config_from_dict(tree), config_path)

    # rank 1 dies inside the last epoch, after the checkpoint of the second
    kill_at = {"KILL_AT_STEP": str(2 * STEPS_PER_EPOCH + 1)}
    killed = _torchrun(str(HERE / "torchrun_killed.py"), str(config_path), env=kill_at)
    assert killed.returncode != 0 and "SIGKILL" in killed.stderr, killed.stderr[-3000:]
    assert "2 steps of 4 per epoch (2 in each of 2 processes)" in killed.stderr
    _, metadata = load_weights(out / "last.safetensors")
    assert metadata["step"] == str(2 * STEPS_PER_EPOCH)
    # rank 0 wrote every process's RNG states, for a resume that draws what they would have
    state = torch.load(out / metadata["train_state"], weights_only=False)
    torch_states = [ranks["torch"] for ranks in state["rank_rng"]]
    assert len(torch_states) == 2 and not torch.equal(*torch_states)

    resumed = _torchrun("-m", "salience", "train", str(config_path), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed {out} at epoch 2, step 4" in resumed.stderr

    a, _ = load_weights(one_process / "last.safetensors")
    b, metadata = load_weights(out / "last.safetensors")
    assert metadata["step"] == str(EPOCHS * STEPS_PER_EPOCH)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    # the logged losses (each process's mean, averaged over them) are the whole batch's
    one_log = [json.loads(line) for line in (one_process / "log.jsonl").read_text().splitlines()]
    two_log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in one_log] == [r["step"] for r in two_log] == [2, 4, 6]
    for record_a, record_b in zip(one_log, two_log, strict=True):
        assert record_b["loss"] == pytest.approx(record_a["loss"], rel=1e-5)

    # and the run trained: the weights moved away from the initial ones
    torch.manual_seed(0)
    config = config_from_dict(tree)
    initial = create_task(config.model, config.data.input_size, [None]).build_model().state_dict()
    assert (b["class_head.weight"] - initial["class_head.weight"]).abs().max() > 1e-3
