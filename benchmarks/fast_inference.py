"""Latency and folder throughput of the default model on PyTorch and ONNX Runtime (fp32, int8).

Four measurements, each comparing the variants inside one run:

* ``latency``: per 800 x 600 OSIE val image, 2 threads for every backend, the network alone
  (the resized input through the network), the network with the full-resolution density, and
  ``Predictor.predict`` on the decoded image (density, ordered fixations). The variants run
  interleaved image by image, so load from other processes falls on all of them alike. A
  PyTorch peer pads TensorFlow-style by a padded copy of each input, as timm does (before
  :func:`~salience.models.backbone.pad_in_kernels`), in this part and the next but one.
* ``png``: encoding the default's heatmap and overlay PNGs of the same images, Pillow at level
  1 (the encoder before session 11) against libvips at level 2 (``salience predict``'s now).
* ``folder``: ``salience predict``'s pipeline (:func:`salience.batch.run_predict`) on 100 OSIE
  val images, all files written, per backend, and on PyTorch with one image per forward pass,
  with Pillow's PNGs and with ``--maps density`` (no pictures; one and eight images per pass,
  and on ONNX Runtime) as peers; the variants alternate over ``--rounds`` rounds and the best
  round counts.
* ``memory``: peak resident memory of ``python -m salience predict`` (a fresh process) on 100
  and on 1,000 images (the val images under 1,000 distinct names), onnxruntime backend.

    python benchmarks/fast_inference.py --data ../shared/data/osie \\
        --out benchmarks/RESULTS_fast_inference.json

``--int8`` names an int8 graph (``salience export default default.onnx --format onnx --int8
...``) to add as a third backend. ``--peers`` adds two PyTorch peers of the shipped default:
its readouts computed one by one (as before :class:`~salience.models.dense.model.FusedReadouts`)
and its mirror-averaged copy (``salience export ... --flip-average``); the shipped
``accurate`` model on both backends; and the shipped ``saltr`` and ``ensemble`` on PyTorch
(``Predictor.predict`` only: they have no grid network stage). ``--baseline`` names a dense
checkpoint (e.g. the previous default, ``git show REV:salience/weights/default.safetensors >
old.safetensors``) to run on PyTorch beside the shipped one, in the latency and folder parts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import unittest.mock
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from salience.analysis import render
from salience.analysis.render import display_map, heatmap, overlay, png_bytes
from salience.batch import PredictJob, run_predict
from salience.data import load_dataset
from salience.io.images import load_image
from salience.models import backbone
from salience.models.onnx import OnnxDensity, load_onnx
from salience.models.registry import load_checkpoint, load_pretrained
from salience.predictor import Predictor

THREADS = 2
PILLOW_PEER = "torch, PNGs by Pillow (before session 11)"
DENSITY_ONLY = "torch, --maps density --batch-size 1 (no PNGs)"
DENSITY_ONLY_BATCHED = "torch, --maps density, 8 per pass"
DENSITY_ONLY_ONNX = "onnxruntime, --maps density (no PNGs)"
BATCH_PEER = "torch, --batch-size 1"
PADDING_PEER = "torch, TF padding by padded copies (before session 11)"


def backends(
    int8: Path | None, peers: bool = False, baseline: Path | None = None
) -> dict[str, object]:
    """Density models by backend name, every one on THREADS threads."""
    torch.set_num_threads(THREADS)
    with unittest.mock.patch.object(backbone, "pad_in_kernels", lambda module: 0):
        padded_copies = load_pretrained("default")  # timm's Conv2dSame: a padded copy per input
    models: dict[str, object] = {
        "torch": load_pretrained("default"),
        "onnxruntime": load_onnx("default", threads=THREADS),
        PADDING_PEER: padded_copies,
    }
    if int8 is not None:
        models["onnxruntime-int8"] = OnnxDensity(int8, threads=THREADS)
    if baseline is not None:
        models[f"torch, {baseline.name}"] = load_checkpoint(baseline)
    if peers:
        unfused = load_pretrained("default")
        unfused.model.fused = None
        models["torch, readouts one by one"] = unfused
        mirrored = load_pretrained("default")
        mirrored.flip_average = True
        models["torch, mirror-averaged"] = mirrored
        models["accurate, torch"] = load_pretrained("accurate")
        models["accurate, onnxruntime"] = load_onnx("accurate", threads=THREADS)
        models["saltr, torch"] = load_pretrained("saltr")  # no grid: Predictor.predict only
        models["ensemble, torch"] = load_pretrained("ensemble")  # accurate and saltr, mixed
    return models


def network(model: object, image: np.ndarray):
    """A function running the model's network alone on the image's resized input."""
    height, width = model.input_size(image.shape[:2])
    resized = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    if isinstance(model, OnnxDensity):
        feed = {"image": resized[None]}
        return lambda: model.session.run(None, feed)
    x = torch.from_numpy(resized[None]).permute(0, 3, 1, 2).float().div(255.0)
    x = x.contiguous(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode():
            model.flip_averaged_cells(x)

    return run


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - start)


def latency(models: dict[str, object], paths: list[Path]) -> dict[str, dict[str, float]]:
    """Median and mean milliseconds per image for each backend and stage, interleaved."""
    predictors = {name: Predictor(model) for name, model in models.items()}
    times: dict[str, list[float]] = {}
    for i, path in enumerate(paths):
        image = load_image(path)
        for name, model in models.items():
            stages = {"Predictor.predict": lambda p=predictors[name], im=image: p.predict(im)}
            if hasattr(model, "log_densities"):  # a grid model: its network on its own too
                stages = {
                    "network": network(model, image),
                    "network + density": lambda m=model, im=image: m.log_densities([im]),
                    **stages,
                }
            for stage, fn in stages.items():
                if i == 0:
                    fn()  # warm-up: first runs allocate
                times.setdefault(f"{name} | {stage}", []).append(timed(fn))
    return {
        key: {"median_ms": float(np.median(v)), "mean_ms": float(np.mean(v)), "n": len(v)}
        for key, v in times.items()
    }


def pillow_png(array: np.ndarray, compress_level: int = 6) -> bytes:
    """The PNG encoder before session 11: Pillow, its adaptive row filters, level 1."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@contextlib.contextmanager
def encoder(name: str) -> Iterator[None]:
    """``salience.analysis.render.png_bytes`` replaced by the peer ``name`` meanwhile."""
    if name != PILLOW_PEER:
        yield
        return
    with unittest.mock.patch.object(render, "png_bytes", pillow_png):
        yield


def pngs(paths: list[Path]) -> dict[str, dict[str, float]]:
    """Milliseconds and kilobytes per heatmap and overlay PNG of the default's maps: Pillow
    level 1 (before) against libvips level 2 (``salience predict``'s), interleaved."""
    predictor = Predictor.from_pretrained()
    encoders = {"Pillow, level 1": pillow_png, "libvips, level 2": lambda a: png_bytes(a, 2)}
    times: dict[str, list[float]] = {}
    sizes: dict[str, list[int]] = {}
    for path in paths:
        prediction = predictor.predict(path)
        shown = display_map(prediction.density)
        pictures = {
            "heatmap": heatmap(prediction.density, display=shown),
            "overlay": overlay(prediction.image, prediction.density, display=shown),
        }
        for kind, picture in pictures.items():
            for name, encode in encoders.items():
                key = f"{name} | {kind}"
                times.setdefault(key, []).append(timed(lambda e=encode, p=picture: e(p)))
                sizes.setdefault(key, []).append(len(encode(picture)))
    return {
        key: {"median_ms": float(np.median(v)), "mean_kb": float(np.mean(sizes[key])) / 1000}
        for key, v in times.items()
    }


def folder(models: dict[str, object], paths: list[Path], rounds: int) -> dict[str, object]:
    """Images per second of run_predict per backend (all files written, 8 images per forward
    pass: ``salience predict``'s default), best of the rounds; on PyTorch also one image per
    pass, with the PNG encoder of before, and with the density map alone (one and eight per
    pass); on ONNX Runtime also the density map alone."""
    jobs = {name: (name, PredictJob(Path(), batch_size=8)) for name in models}
    density = ("density",)
    jobs |= {
        BATCH_PEER: ("torch", PredictJob(Path(), batch_size=1)),
        PILLOW_PEER: ("torch", PredictJob(Path(), batch_size=8)),
        DENSITY_ONLY: ("torch", PredictJob(Path(), batch_size=1, maps=density)),
        DENSITY_ONLY_BATCHED: ("torch", PredictJob(Path(), batch_size=8, maps=density)),
        DENSITY_ONLY_ONNX: ("onnxruntime", PredictJob(Path(), batch_size=1, maps=density)),
    }
    results: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, (backend, job) in jobs.items():
            model = models[backend]
            with encoder(name), tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                done = run_predict(Predictor(model), paths, replace(job, out_dir=Path(out)))
                seconds = time.perf_counter() - start
                assert all(r.status == "written" for r in done)
                written = [p for p in Path(out).iterdir() if not p.name.startswith(".")]
                assert len(written) == (len(job.maps) + 1) * len(paths) + 1  # and the summary
            results[name].append(len(paths) / seconds)
    return {
        name: {"images_per_s": max(v), "rounds": [round(x, 2) for x in v]}
        for name, v in results.items()
    }


def peak_rss(paths: list[Path], count: int) -> dict[str, float]:
    """Peak RSS (MiB) and images per second of ``salience predict`` in a fresh process on
    ``count`` images (the given ones repeated under distinct names)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder_in = Path(tmp) / "in"
        folder_in.mkdir()
        for k in range(count):
            source = paths[k % len(paths)]
            os.symlink(source.resolve(), folder_in / f"{k:05d}_{source.name}")
        command = [sys.executable, "-m", "salience", "predict", str(folder_in)]
        command += ["--out", str(Path(tmp) / "out"), "--backend", "onnxruntime"]
        code = (
            "import resource, subprocess, sys, time; s = time.perf_counter(); "
            "subprocess.run(sys.argv[1:], check=True); t = time.perf_counter() - s; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, t)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, *command], check=True, capture_output=True, text=True
        ).stdout.split()
        rss_kib, seconds = int(out[-2]), float(out[-1])
    return {"images": count, "peak_rss_mib": rss_kib / 1024, "images_per_s": count / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/osie"))
    parser.add_argument("--int8", type=Path, default=None, help="an int8 graph to compare")
    parser.add_argument(
        "--peers", action="store_true", help="add the peers, `accurate`, `saltr` and `ensemble`"
    )
    parser.add_argument(
        "--baseline", type=Path, default=None, help="a dense checkpoint to compare on PyTorch"
    )
    parser.add_argument("--latency-images", type=int, default=30)
    parser.add_argument("--folder-images", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory", type=int, nargs="*", default=[100, 1000])
    parser.add_argument(
        "--parts", nargs="*", default=["latency", "png", "folder", "memory"], help="what to measure"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/RESULTS_fast_inference.json"))
    args = parser.parse_args()

    val = [s.path for s in load_dataset("osie", args.data).split("val")]
    models = (
        backends(args.int8, args.peers, args.baseline)
        if {"latency", "folder"} & set(args.parts)
        else {}
    )
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": next(
                (
                    line.split(":", 1)[1].strip()
                    for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")
                ),
                platform.machine(),
            ),
            "load_average_at_start": os.getloadavg(),
            "threads": THREADS,
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
        },
    }
    if "latency" in args.parts:
        result["latency"] = latency(models, val[: args.latency_images])
    if "png" in args.parts:
        result["png"] = pngs(val[: args.latency_images])
    if "folder" in args.parts:
        result["folder"] = folder(models, val[: args.folder_images], args.rounds)
    if "memory" in args.parts:
        result["memory"] = [peak_rss(val, n) for n in args.memory]
    result |= {
        "load_average_at_end": os.getloadavg(),
        "max_rss_of_this_process_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
