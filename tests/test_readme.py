"""The README's examples, run as written: a broken example fails CI.

Every ```python block runs (in order, one namespace per block) and every command of every
```bash block runs in a shell, in order, from a scratch folder laid out like a checkout: ``docs/``
is the repository's, ``../shared`` the data beside it. Commands that set up the environment
(making the virtual environment, ``pip install``, running the test suite) are what CI itself
does, so they are recognized and not run again; any other command that is not a ``salience``
command fails the test, so the README cannot show one that nothing runs. The one input a user
brings that the repository has no copy of, a folder of their own model's maps, is made here from
the center bias (``my_maps/``).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
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


def commands() -> list[str]:
    """Each shell command of the bash blocks: continuation lines joined, comments dropped, and
    ``a && b`` split into ``a`` and ``b``."""
    found = []
    for block in code_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                end = words.index("&&") if "&&" in words else len(words)
                found.append(shlex.join(words[:end]))
                words = words[end + 1 :]
    return found


def salience_commands() -> list[str]:
    """The commands the test runs: ``salience ...`` (``.venv/bin/salience`` is the same)."""
    run = []
    for command in commands():
        if any(pattern.match(command) for pattern in SETUP):
            continue
        assert command.startswith(("salience ", ".venv/bin/salience ")), (
            f"the README shows a command the tests do not run: {command!r}"
        )
        run.append(command.removeprefix(".venv/bin/"))
    return run


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


def test_commands_run_as_written(checkout):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in salience_commands():
        start = time.perf_counter()
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        print(f"{time.perf_counter() - start:6.1f} s  {command}")
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, command
