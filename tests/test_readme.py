"""The README's examples, run as written: a broken example fails CI.

Every ```python block runs (in order, one namespace per block) and every command of every
```bash block runs in a shell, in order, from a scratch folder laid out like a checkout: ``docs/``
is the repository's, ``../shared`` the data beside it. Commands that set up the environment
(making the virtual environment, ``pip install``, running the test suite) are what CI itself
does, so they are recognized and not run again. ``salience serve`` starts the server as written
(in the background, until the last command has run) and the ``curl`` commands are sent to it; any
other command that is not a ``salience`` command fails the test, so the README cannot show one
that nothing runs. The one input a user
brings that the repository has no copy of, a folder of their own model's maps, is made here from
the center bias (``my_maps/``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from salience.models.baselines import CenterBiasKDE

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SETUP = (
    re.compile(r"^python3 -m venv \.venv$"),
    re.compile(r"^\.venv/bin/pip install .*"),
    re.compile(r"^\.venv/bin/python -m pytest -q$"),
)


def code_blocks(language: str) -> list[str]:
    """The README's fenced blocks of ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.M | re.S)


def block_commands(block: str) -> list[str]:
    """Each shell command of a bash block: continuation lines joined, comments dropped, and
    ``a && b`` split into ``a`` and ``b``; set-up commands left out, the rest checked to be
    ``salience`` (``.venv/bin/salience`` is the same) or ``curl`` commands."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            end = words.index("&&") if "&&" in words else len(words)
            command = shlex.join(words[:end])
            words = words[end + 1 :]
            if any(pattern.match(command) for pattern in SETUP):
                continue
            assert command.startswith(("salience ", ".venv/bin/salience ", "curl ")), (
                f"the README shows a command the tests do not run: {command!r}"
            )
            found.append(command.removeprefix(".venv/bin/"))
    return found


def salience_commands() -> list[str]:
    """Every command the test runs, in README order."""
    return [c for block in code_blocks("bash") for c in block_commands(block)]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, nus_scene) -> Path:
    """A scratch folder where the README's relative paths resolve as in a checkout."""
    base = tmp_path_factory.mktemp("readme")
    (base / "shared").symlink_to(ROOT.parent / "shared")
    work = base / "checkout"
    work.mkdir()
    (work / "docs").symlink_to(ROOT / "docs")
    # a user's own maps for the NUS Scene test split (here: the center bias's)
    center = CenterBiasKDE()
    center.fit(nus_scene.split("train"))
    (work / "my_maps").mkdir()
    for stim in nus_scene.split("test"):
        np.save(work / "my_maps" / f"{stim.id}.npy", np.exp(center.log_density(None, stim.size)))
    return work


def test_the_readme_has_examples_of_every_kind():
    assert len(code_blocks("python")) >= 2
    kinds = {command.split()[1] for command in salience_commands()}
    assert {"predict", "scanpath", "aoi", "compare", "eval", "models"} <= kinds


@pytest.mark.parametrize("index", range(len(code_blocks("python"))))
def test_python_example_runs(index, checkout, monkeypatch):
    monkeypatch.chdir(checkout)
    exec(compile(code_blocks("python")[index], f"README.md python block {index + 1}", "exec"), {})


def _serve(command: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """``salience serve ...`` started as written; returns once it answers ``/healthz``."""
    server = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert server.poll() is None, f"{command} exited with {server.returncode}"
        try:
            with urllib.request.urlopen("http://127.0.0.1:8000/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise AssertionError(f"{command} did not answer /healthz in time")


def test_commands_run_as_written(checkout):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server = None
    try:
        for command in salience_commands():
            if command.startswith("salience serve"):
                server = _serve(command, checkout, env)
                continue
            assert not command.startswith("curl ") or server is not None, command
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=checkout,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            assert "Traceback" not in done.stderr, command
            if command.startswith("curl "):
                answer = json.loads(done.stdout)  # the API's JSON answer, not an error's
                assert "error" not in answer, f"{command}: {answer}"
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
