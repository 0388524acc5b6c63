"""Test-time mirror averaging, measured by cross-validation (issue 17's levers).

Each run of a ``salience cv`` folder is scored again on its held-out images at its last epoch,
now predicting the mixture of the image's and its mirror image's densities
(``flip_average``; twice the network's work), with the center bias the run validated against
(fitted on the training folds, :func:`salience.training.loop.validations`). The result, per source,
is written in the form of the folder's ``pooled/<source>-epoch-<e>.json`` so that
``salience eval-diff`` compares the two image by image; the latency of ``Predictor.predict`` on an
800 x 600 image is measured both ways.

    python benchmarks/cv_flip_average.py runs/cv-default --epoch 30
    salience eval-diff runs/cv-default/pooled/osie-epoch-030.json \\
        runs/cv-default/flip/osie-epoch-030.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from salience.evaluation.evaluate import EvaluationResult, evaluate, write_results
from salience.models.registry import load_checkpoint
from salience.predictor import Predictor
from salience.training.config import load_config
from salience.training.loop import validations


def latency(path: Path, flip: bool, image: np.ndarray, repeats: int = 10) -> float:
    """Median seconds of ``Predictor.predict`` on ``image`` with the weights at ``path``."""
    predictor = Predictor.from_checkpoint(path)
    predictor.model.flip_average = flip
    predictor.predict(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(image)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv", type=Path, help="a folder written by salience cv")
    parser.add_argument("--epoch", type=int, required=True, help="the runs' last epoch")
    args = parser.parse_args()
    torch.set_num_threads(2)
    runs = sorted(args.cv.glob("fold-*"))
    per_source: dict[str, dict[str, dict[str, float]]] = {}
    for run in runs:
        config = load_config(run / "config.yaml")
        density = load_checkpoint(run / "last.safetensors")
        density.flip_average = True
        for v in validations(config):  # the run's held-out images
            result = evaluate(density, v.images, center_bias=v.center_bias)
            per_source.setdefault(v.label, {}).update(result.per_image)
            print(f"{run.name} {v.label}: IG {result.means['IG']:.4f} ({len(v.images)} images)")
    for label, per_image in per_source.items():
        result = EvaluationResult("mirror-averaged", label, "probabilistic", per_image)
        write_results([result], args.cv / "flip" / f"{label}-epoch-{args.epoch:03d}.json")
    image = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    weights = runs[0] / "last.safetensors"
    for flip in (False, True, False, True):
        print(
            f"flip_average={flip}: Predictor.predict {latency(weights, flip, image) * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main()
