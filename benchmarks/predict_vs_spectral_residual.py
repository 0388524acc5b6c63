"""The shipped default model against OpenCV's spectral-residual saliency, side by side.

On the same OSIE val images (800 x 600), on this machine's CPU:

- latency per image at batch 1: our model (network + density at full resolution), our full
  ``Predictor.predict`` (plus the ordered fixations), and ``cv2.saliency`` spectral residual;
- throughput on a folder: ``salience predict`` writing all four files per image (batch 8),
  against spectral residual computing its maps;
- accuracy on OSIE val: all metrics in map mode for both (each map as it is), and in
  probabilistic mode (spectral residual's map read as a density, as ``salience eval`` does
  for map-only predictions).

    python benchmarks/predict_vs_spectral_residual.py   # writes benchmarks/RESULTS_predict.md

Needs ``pip install opencv-contrib-python-headless`` (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from salience.batch import PredictJob, run_predict
from salience.data import load_dataset
from salience.evaluation.evaluate import (
    METRICS,
    evaluate,
    explainable_information_gain,
    map_to_log_density,
)
from salience.io.atomic import atomic_write
from salience.io.images import load_image
from salience.models.base import DensityModel
from salience.models.baselines import fit_references
from salience.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]


def spectral_residual():
    try:
        import cv2
    except ModuleNotFoundError as exc:
        raise SystemExit("pip install opencv-contrib-python-headless (the bench extra)") from exc
    if not hasattr(cv2, "saliency"):
        raise SystemExit(
            "cv2.saliency is in opencv-contrib: pip install opencv-contrib-python-headless"
        )
    return cv2, cv2.saliency.StaticSaliencySpectralResidual_create()


class SpectralResidual(DensityModel):
    """OpenCV's spectral residual (Hou & Zhang 2007) as a map model; density by normalizing."""

    name = "opencv-spectral-residual"
    needs_image = True

    def __init__(self) -> None:
        self.cv2, self.saliency = spectral_residual()

    def saliency_map(self, image: np.ndarray) -> np.ndarray:
        ok, result = self.saliency.computeSaliency(self.cv2.cvtColor(image, self.cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError("spectral residual failed")
        return np.asarray(result, dtype=np.float64)

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        return map_to_log_density(self.saliency_map(image))


def timed(fn, images: list[np.ndarray], repeats: int = 1) -> list[float]:
    """Milliseconds per call of ``fn`` on each image (after one warm-up call)."""
    fn(images[0])
    times = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            fn(image)
            times.append(1000 * (time.perf_counter() - start))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--osie", default=str(ROOT / "../shared/data/osie"))
    parser.add_argument("--latency-images", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/RESULTS_predict.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    osie = load_dataset("osie", args.osie)
    val = osie.split("val")
    predictor = Predictor.from_pretrained()
    sr = SpectralResidual()
    images = [load_image(s.path) for s in list(val)[: args.latency_images]]
    assert all(im.shape == (600, 800, 3) for im in images)

    latency = {
        "default model (network + full-resolution density)": timed(
            lambda im: predictor.model.log_densities([im]), images
        ),
        "default model, Predictor.predict (+ ordered fixations)": timed(predictor.predict, images),
        "OpenCV spectral residual": timed(sr.saliency_map, images),
    }

    paths = [Path(s.path) for s in val]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = run_predict(predictor, paths, PredictJob(Path(tmp), batch_size=8))
        ours_folder = len(paths) / (time.perf_counter() - start)
        assert all(r.status == "written" for r in results)
    start = time.perf_counter()
    for path in paths:
        sr.saliency_map(load_image(path))
    sr_folder = len(paths) / (time.perf_counter() - start)

    center_bias, _, gold_ig = fit_references(osie.split("train"), val, val)
    rows = []
    for mode in ("map", "probabilistic"):
        for name, model in (("default", predictor.model), (sr.name, sr)):
            result = evaluate(model, val, center_bias=center_bias, mode=mode, name=name)
            rows.append((mode, name, result.means))

    lines = [
        "# Default model against OpenCV spectral residual",
        "",
        "Command: `python benchmarks/predict_vs_spectral_residual.py`; machine: "
        f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch "
        f"{torch.__version__}, OpenCV {sr.cv2.__version__}.",
        "",
        f"## Latency per 800 x 600 image, batch 1 ({len(images)} OSIE val images)",
        "",
        "| method | median ms | mean ms |",
        "|---|---|---|",
        *(
            f"| {name} | {statistics.median(t):.1f} | {statistics.mean(t):.1f} |"
            for name, t in latency.items()
        ),
        "",
        f"## Throughput on a folder ({len(paths)} OSIE val images, decoding included)",
        "",
        "| method | images / s |",
        "|---|---|",
        "| `salience predict` (batch 8, writes density, heatmap, overlay, fixations) "
        f"| {ours_folder:.1f} |",
        f"| OpenCV spectral residual (maps only, nothing written) | {sr_folder:.1f} |",
        "",
        "## Accuracy on OSIE val (IG against the center bias; % of explainable IG)",
        "",
        "| mode | method | " + " | ".join(METRICS) + " | % expl. IG |",
        "|---" * (len(METRICS) + 3) + "|",
        *(
            f"| {mode} | {name} | "
            + " | ".join(f"{means[m]:.4f}" for m in METRICS)
            + f" | {explainable_information_gain(means['IG'], 0.0, gold_ig):.1f} |"
            for mode, name, means in rows
        ),
        "",
        f"Gold standard IG: {gold_ig:.4f} bits per fixation.",
        "",
    ]
    atomic_write(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
