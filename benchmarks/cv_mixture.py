"""Mixing model families, measured by cross-validation: a dense run's density with a SalTR's.

Two ``salience cv`` folders made with the same folds (``--folds 3``, the same training images):
for each fold run by both, the last-epoch weights of each score the run's held-out images
(with the center bias the run validated against), mixed with SalTR weighted by each of
``--weights`` (``salience.models.mixture.MixtureDensity``; weight 0 is the dense run alone,
1 the SalTR alone). Each component's density is computed once per image and reused for every
weight; ``--flip-average`` mirror-averages the dense runs (as ``accurate`` ships),
``--saltr-flip-average`` the SalTR runs. Writes, per
source and weight, a results file pooled over the folds (``<out>/<source>-w<weight>.json``)
for ``salience eval-diff``, and prints the IG of each.

    python benchmarks/cv_mixture.py runs/cv1-r5 runs/cvs-dhw100-480 --fold 0 --fold 1 \\
        --weights 0 0.2 0.35 0.5 --out benchmarks/RESULTS_mixture_cv
    salience eval-diff benchmarks/RESULTS_mixture_cv/osie-w0.json \\
        benchmarks/RESULTS_mixture_cv/osie-w0.35.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from salience.evaluation.evaluate import EvaluationResult, evaluate, write_results
from salience.models.base import DensityModel
from salience.models.mixture import MixtureDensity
from salience.models.registry import load_checkpoint
from salience.training.config import load_config
from salience.training.loop import validations


class Remembered(DensityModel):
    """A density model whose densities are kept per image (every weight reuses them)."""

    def __init__(self, model: DensityModel) -> None:
        self.model, self.name, self.kept = model, model.name, {}

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        assert image is not None
        key = (tuple(size), image.shape, hash(image.tobytes()))
        if key not in self.kept:
            self.kept[key] = self.model.log_density(image, size)
        return self.kept[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dense", type=Path, help="salience cv folder of the dense runs")
    parser.add_argument("saltr", type=Path, help="salience cv folder of the SalTR runs")
    parser.add_argument("--fold", type=int, action="append", required=True)
    parser.add_argument("--weights", type=float, nargs="+", required=True, help="SalTR's")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--flip-average", action="store_true", help="the dense runs mirror-averaged, as shipped"
    )
    parser.add_argument(
        "--saltr-flip-average", action="store_true", help="the SalTR runs mirror-averaged"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    pooled: dict[tuple[str, float], dict[str, dict[str, float]]] = {}
    for fold in args.fold:
        dense_run, saltr_run = args.dense / f"fold-{fold}", args.saltr / f"fold-{fold}"
        dense_model = load_checkpoint(dense_run / "last.safetensors")
        dense_model.flip_average = args.flip_average
        dense = Remembered(dense_model)
        saltr_model = load_checkpoint(saltr_run / "last.safetensors")
        saltr_model.flip_average = args.saltr_flip_average
        saltr = Remembered(saltr_model)
        held_out = {v.label: v for v in validations(load_config(saltr_run / "config.yaml"))}
        for v in validations(load_config(dense_run / "config.yaml")):
            if sorted(s.id for s in v.images) != sorted(s.id for s in held_out[v.label].images):
                raise SystemExit(f"fold {fold}: the folders hold out different {v.label} images")
            for weight in args.weights:
                if weight in (0, 1):
                    model = saltr if weight else dense
                else:
                    model = MixtureDensity([dense, saltr], [1 - weight, weight])
                result = evaluate(model, v.images, center_bias=v.center_bias)
                pooled.setdefault((v.label, weight), {}).update(result.per_image)
                print(f"fold {fold} {v.label} saltr weight {weight:g}: IG {result.means['IG']:.4f}")
        dense.kept.clear()
        saltr.kept.clear()
    for (label, weight), per_image in pooled.items():
        result = EvaluationResult(f"saltr weight {weight:g}", label, "probabilistic", per_image)
        write_results([result], args.out / f"{label}-w{weight:g}.json")
        print(f"{label}, folds {args.fold}, saltr weight {weight:g}: IG {result.means['IG']:.4f}")


if __name__ == "__main__":
    main()
