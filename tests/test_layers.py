"""The package's folders are its layers: each module imports only from its own layer and those
below it, and the model families never import each other (they share ``salience.models``' core).
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "salience"
# lowest first; a module may import from its layer and any earlier one
LAYERS = (
    "salience.io",
    "salience.data",
    "salience.models",
    "salience.evaluation",
    "salience.training",
    "salience.analysis",
    "salience.predictor",
    "salience.batch",
    "salience.prediction_table",
    "salience.ray_engine",
    "salience.service",
    "salience.cli",
)
ON_TOP = {"salience.__main__", "salience.cli"}  # the command may import anything
FAMILIES = ("dense", "saltr", "sum")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int | None:
    for rank, prefix in enumerate(LAYERS):
        if name == prefix or name.startswith(prefix + "."):
            return rank
    return None


def imported(path: Path) -> list[str]:
    """Every salience module ``path`` imports, at any depth of the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "salience":  # a submodule, or a name the package re-exports
                exports = importlib.import_module("salience")._EXPORTS
                found += [
                    exports.get(alias.name, f"salience.{alias.name}")
                    for alias in node.names
                    if alias.name != "__version__"
                ]
            elif node.module.startswith("salience."):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "salience"]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(path):
    name = module_name(path)
    if name == "salience" or name in ON_TOP:
        return
    own = layer(name)
    assert own is not None, f"{name} is in no layer of tests/test_layers.py"
    for target in imported(path):
        rank = layer(target)
        assert rank is not None and rank <= own, f"{name} imports {target}, a layer above it"


@pytest.mark.parametrize("family", FAMILIES)
def test_families_never_import_each_other(family):
    for path in (PACKAGE / "models" / family).rglob("*.py"):
        for target in imported(path):
            others = [f for f in FAMILIES if f != family]
            assert not any(target.startswith(f"salience.models.{o}") for o in others), (
                f"{module_name(path)} imports {target}"
            )


def test_the_layer_list_names_real_folders():
    for prefix in LAYERS:
        relative = Path(*prefix.split(".")[1:])
        assert (PACKAGE / relative).is_dir() or (PACKAGE / relative).with_suffix(".py").is_file()


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_command_and_the_api_import_light():
    """``salience --help`` and ``import salience`` load no torch, and the Predictor module
    loads no evaluation code."""
    loaded = _modules_after(
        "from typer.testing import CliRunner\nfrom salience.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\nimport salience"
    )
    assert "torch" not in loaded
    loaded = _modules_after("from salience import Predictor")
    assert "torch" not in loaded
    assert not any(m.startswith("salience.evaluation") for m in loaded)


def test_scoring_a_folder_of_maps_loads_no_torch(small_osie, tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    for image_id in json.loads((small_osie / "split.json").read_text())["test"]:
        np.save(maps / f"{image_id}.npy", np.ones((6, 8)))
    args = ["eval", "--dataset", "osie", "--root", str(small_osie), "--split", "test"]
    args += ["--predictions", str(maps), "--mode", "map"]
    loaded = _modules_after(
        "from typer.testing import CliRunner\nfrom salience.cli import app\n"
        f"result = CliRunner().invoke(app, {args!r})\nassert result.exit_code == 0, result.output"
    )
    assert "torch" not in loaded
