"""`salience predict --engine ray` on a local Ray instance of 2 CPUs: the local job's outputs,
bad images failing their rows, reruns skipping finished images, an actor killed mid-job."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from salience.batch import PredictJob
from salience.cli import app
from salience.predictor import Predictor

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from salience.ray_engine import list_inputs, run_ray_predict  # noqa: E402

runner = CliRunner()
N_IMAGES = 18


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (the engine joins it rather than starting one)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def images(osie_root, tmp_path_factory) -> Path:
    """18 OSIE images at 160 x 120 and 120 x 160 (images of several sizes travel between the
    stages together), and one file that is no image."""
    folder = tmp_path_factory.mktemp("ray-in")
    for k, path in enumerate(sorted((osie_root / "stimuli").iterdir())[:N_IMAGES]):
        with Image.open(path) as im:
            im.convert("RGB").resize((160, 120) if k % 3 else (120, 160)).save(
                folder / f"{path.stem}.png"
            )
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not an image")
    return folder


@pytest.fixture(scope="module")
def local_out(images, tiny_weights, tmp_path_factory) -> Path:
    """The local engine's outputs: the reference."""
    out = tmp_path_factory.mktemp("local-out")
    result = _predict(images, out, tiny_weights)
    assert result.exit_code == 1, result.output  # the broken file
    return out


def _predict(images: Path, out: Path, weights: Path, *options: str):
    args = ["predict", str(images), "--out", str(out), "--checkpoint", str(weights)]
    return runner.invoke(app, [*args, "--batch-size", "4", "--scanpaths", "2", *options])


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


def _assert_same_outputs(local: Path, other: Path, summary: bool = True) -> None:
    """Densities to 1e-6, fixations and scanpaths to float rounding, the same summary rows
    (unless ``summary`` is False: a rerun's rows say "exists")."""
    names = sorted(p.name.removesuffix("_density.npy") for p in local.glob("*_density.npy"))
    assert len(names) == N_IMAGES
    not_outputs = {"predictions.parquet", ".salience-predict.lock"}  # (the job's folder lock)
    assert sorted(p.name for p in other.iterdir() if p.name not in not_outputs) == sorted(
        p.name for p in local.iterdir() if p.name not in not_outputs
    )
    for name in names:
        a, b = np.load(local / f"{name}_density.npy"), np.load(other / f"{name}_density.npy")
        assert a.shape == b.shape and a.shape in ((120, 160), (160, 120))
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6, err_msg=name)
        fa = json.loads((local / f"{name}_fixations.json").read_text())
        fb = json.loads((other / f"{name}_fixations.json").read_text())
        assert fb["image"] == fa["image"] and fb["settings"] == fa["settings"]
        assert _close(fa, fb), name
    rows_a, rows_b = _summary(local), _summary(other)
    assert list(rows_a) == list(rows_b)  # input order
    if not summary:
        return
    for name in rows_a:
        a, b = dict(rows_a[name]), dict(rows_b[name])
        del a["seconds"], b["seconds"]  # timings
        assert b == a


def _close(a, b) -> bool:
    """Nested JSON equal, numbers to 1e-5 relative."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return b == pytest.approx(a, rel=1e-5, abs=1e-9)
    return a == b


def test_unreachable_address_is_a_clear_error(images, tiny_weights, tmp_path):
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _predict(
        images, tmp_path / "out", tiny_weights, "--engine", "ray", "--address", f"127.0.0.1:{port}"
    )
    assert result.exit_code == 2 and f"cannot reach 127.0.0.1:{port}" in result.output
    assert not ray.is_initialized()


def test_local_engine_writes_the_parquet_table_too(images, tiny_weights, tmp_path):
    out = tmp_path / "out"
    first = sorted(images.glob("*.png"))[0]
    args = ["predict", str(first), str(images / "broken.jpg"), "--out", str(out)]
    result = runner.invoke(app, [*args, "--checkpoint", str(tiny_weights), "--format", "parquet"])
    assert result.exit_code == 1, result.output
    written, failed = pq.read_table(out / "predictions.parquet").to_pylist()
    record = json.loads((out / f"{first.stem}_fixations.json").read_text())
    assert written["status"] == "written" and written["fixations"] == record["fixations"]
    assert (written["first_x"], written["first_y"]) == (
        record["fixations"][0]["x"],
        record["fixations"][0]["y"],
    )
    assert json.loads(written["settings"]) == record["settings"]
    assert written["density"] == f"{first.stem}_density.npy"
    density = np.load(out / written["density"])
    assert (written["height"], written["width"]) == density.shape
    assert failed["status"] == "failed" and failed["fixations"] is None and failed["error"]

    pictures = tmp_path / "pictures"  # no density file: the table says so
    args = ["predict", str(first), "--out", str(pictures), "--maps", "heatmap"]
    result = runner.invoke(app, [*args, "--checkpoint", str(tiny_weights), "--format", "parquet"])
    assert result.exit_code == 0, result.output
    (row,) = pq.read_table(pictures / "predictions.parquet").to_pylist()
    assert row["density"] is None and (pictures / f"{first.stem}_heatmap.png").is_file()


def test_list_inputs_reads_text_and_parquet_lists(images, tmp_path):
    pa = pytest.importorskip("pyarrow")
    wanted = sorted(images.glob("*.png"))[:3]
    text = tmp_path / "paths.txt"
    text.write_text("\n".join(map(str, wanted)) + "\n\n" + str(tmp_path / "gone.png") + "\n")
    table = tmp_path / "paths.parquet"
    pq.write_table(pa.table({"path": [str(p) for p in wanted[::-1]], "n": [1, 2, 3]}), table)
    missing = str(tmp_path / "gone.png")
    assert list_inputs([text]) == (wanted, [(missing, f"{missing}: file not found")])
    assert list_inputs([table, images / "broken.jpg"]) == (
        [*wanted[::-1], images / "broken.jpg"],
        [],
    )
    pq.write_table(pa.table({"a": ["x"], "b": ["y"]}), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"bad\.parquet: no 'path' column"):
        list_inputs([tmp_path / "bad.parquet"])


def test_ray_engine_equals_local_and_reruns_skip_finished(
    local_ray, images, tiny_weights, local_out, tmp_path
):
    out = tmp_path / "ray"
    options = ("--engine", "ray", "--num-workers", "2", "--format", "parquet")
    result = _predict(images, out, tiny_weights, *options)
    assert result.exit_code == 1, result.output
    assert f"{N_IMAGES} predicted, 0 already done, 1 failed" in result.output
    _assert_same_outputs(local_out, out)
    broken = _summary(out)["broken"]
    assert broken["status"] == "failed" and "broken.jpg: not a readable image" in broken["error"]

    table = {row["name"]: row for row in pq.read_table(out / "predictions.parquet").to_pylist()}
    assert len(table) == N_IMAGES + 1 and table["broken"]["fixations"] is None
    name = sorted(table)[0]
    record = json.loads((out / f"{name}_fixations.json").read_text())
    assert table[name]["fixations"] == record["fixations"]
    assert [{"fixations": p} for p in table[name]["scanpaths"]] == record["scanpaths"]
    assert table[name]["density"] == f"{name}_density.npy"

    # a rerun predicts only what is missing: one image's overlay is gone
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*_density.npy")}
    (out / f"{name}_overlay.png").unlink()
    result = _predict(images, out, tiny_weights, *options)
    assert f"1 predicted, {N_IMAGES - 1} already done, 1 failed" in result.output
    statuses = {k: row["status"] for k, row in _summary(out).items()}
    assert statuses.pop(name) == "written" and statuses.pop("broken") == "failed"
    assert set(statuses.values()) == {"exists"}
    assert all(
        (out / f).stat().st_mtime_ns == stamp
        for f, stamp in stamps.items()
        if f[: -len("_density.npy")] != name
    )
    _assert_same_outputs(local_out, out, summary=False)


def test_killed_actor_loses_nothing_and_the_job_completes(
    local_ray, images, tiny_weights, local_out, tmp_path
):
    marker = tmp_path / "killed"

    def make_dying_predictor() -> Predictor:
        """A predictor whose actor process kills itself (once, whichever actor gets there
        first) in the middle of its second batch, after writing that batch's first image."""
        predictor = Predictor.from_checkpoint(tiny_weights)
        predict_many = predictor.predict_many
        calls = []

        def dying(images, *args, **kwargs):
            calls.append(1)
            for k, item in enumerate(predict_many(images, *args, **kwargs)):
                if len(calls) == 2 and k == 1 and not marker.exists():
                    marker.write_text(str(os.getpid()))
                    os.kill(os.getpid(), signal.SIGKILL)
                yield item

        predictor.predict_many = dying
        return predictor

    out = tmp_path / "ray"
    paths = sorted(images.iterdir())
    results = run_ray_predict(
        make_dying_predictor,
        paths,
        PredictJob(out, batch_size=4, scanpaths=2),
        num_workers=2,
        predictor=Predictor.from_checkpoint(tiny_weights),
    )
    assert marker.exists()  # an actor died mid-job; Ray restarted it and ran its batch again
    assert [r.status for r in results].count("written") == N_IMAGES
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    _assert_same_outputs(local_out, out)
