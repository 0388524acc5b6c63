"""Scanpath prediction on OSIE val: the default model's sampled scanpaths against baselines.

On each OSIE val image, every predictor's scanpaths are scored against every human scanpath of
the image (:func:`salience.evaluation.scanpath_metrics.score_against_humans`) with MultiMatch (five
dimensions), ScanMatch and SequenceScore; the human baseline scores every observer against
every other (:func:`~salience.evaluation.scanpath_metrics.human_baseline`). Rows:

- human baseline: inter-observer agreement, the reference;
- default model, sampled: ``Predictor.from_pretrained()``; ``--samples`` scanpaths drawn from
  its density by its fitted :class:`~salience.models.sampler.ScanpathSampler`
  (``Predictor.sample_scanpaths`` with seed ``--seed`` + image index, i.e. the scanpaths
  ``predict(image, scanpaths=K, seed=...)`` keeps, at this benchmark's length);
- SalTR (with ``--saltr-checkpoint``, a ``saltr-lite0-scanpath`` checkpoint): its one ordered
  scanpath per image (:class:`~salience.models.saltr.scanpath.SaltrScanpathModel`); positions
  and length predicted, durations sampled from the same sampler's log-normals;
- center-bias sampler: the same sampler on the center bias (``CenterBiasKDE`` fitted on OSIE
  train, bandwidth and uniform weight by 5-fold cross-validation) instead of the model's
  density: where people look on any image, with human-like saccades;
- uniform random: fixations uniform over the image, durations from the sampler's log-normals
  (the first fixation with its own): the floor.

Scanpath length: per image, the median length of its human scanpaths (rounded half up), or
``--length``; SalTR predicts its own. Each image's score is the mean over the pairs where the
metric is defined (MultiMatch needs 3 fixations in both scanpaths); the table gives the mean
over images and how many images had a score. ScanMatch uses one threshold per image, from its
human scanpaths, and SequenceScore the clusters of its human fixations, for every row. Time per
image is the predictor's work on the decoded image (network, density, sampling), not scoring,
after one untimed warm-up. Everything is seeded: reruns give the same scores.

    python benchmarks/scanpaths.py --saltr-checkpoint runs/saltr-lite0-scanpath/best.safetensors

writes ``benchmarks/RESULTS_scanpaths.md`` and, beside it, ``RESULTS_scanpaths.json`` with every
image's scores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from salience.data import load_dataset
from salience.data.dataset import Stimulus
from salience.evaluation.scanpath_metrics import (
    MULTIMATCH_DIMENSIONS,
    cluster_fixations,
    human_baseline,
    scanmatch_threshold,
    score_against_humans,
)
from salience.io.atomic import atomic_write
from salience.io.images import load_image
from salience.models.baselines import CenterBiasKDE
from salience.models.saltr.scanpath import SaltrScanpathModel
from salience.models.sampler import Scanpaths, ScanpathSampler
from salience.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = (*MULTIMATCH_DIMENSIONS, "scanmatch", "sequence_score")
HEADERS = (*(f"MM {d}" for d in MULTIMATCH_DIMENSIONS), "ScanMatch", "SequenceScore")
HUMAN = "human baseline"
MODEL = "default model, sampled"
SALTR = "SalTR (ordered)"
CENTER = "center-bias sampler"
RANDOM = "uniform random"

#: (image, stimulus, length, image index) -> scanpaths, each (L, 3) x, y, duration
Predict = Callable[[np.ndarray, Stimulus, int, int], list[np.ndarray]]


def as_arrays(paths: Scanpaths) -> list[np.ndarray]:
    """Sampled scanpaths as a list of (length, 3) arrays of x, y, duration."""
    return [
        np.stack([x, y, d], axis=1)
        for x, y, d in zip(paths.x, paths.y, paths.duration, strict=True)
    ]


def uniform_scanpaths(
    size: tuple[int, int], n: int, length: int, sampler: ScanpathSampler, rng: np.random.Generator
) -> Scanpaths:
    """``n`` scanpaths of uniform fixations on a (height, width) image, log-normal durations."""
    height, width = size
    duration = np.empty((n, length))  # (n, length) seconds
    duration[:, 0] = rng.lognormal(*sampler.first_duration, size=n)
    duration[:, 1:] = rng.lognormal(*sampler.duration, size=(n, length - 1))
    return Scanpaths(rng.random((n, length)) * width, rng.random((n, length)) * height, duration)


def human_length(stimulus: Stimulus) -> int:
    """The median length of the image's human scanpaths, rounded half up."""
    return math.floor(np.median([len(sp) for sp in stimulus.scanpaths]) + 0.5)


def score(
    paths: list[np.ndarray] | None, stimulus: Stimulus, threshold: float, centers: np.ndarray
) -> dict[str, float]:
    """The metrics of ``paths`` against the image's humans, or the human baseline if None."""

    def compare(metric: str, **kw: object) -> float | dict[str, float]:
        if paths is None:
            return human_baseline(stimulus, metric, **kw)
        return score_against_humans(paths, stimulus, metric, **kw)

    return {
        **compare("multimatch"),
        "scanmatch": compare("scanmatch", threshold=threshold),
        "sequence_score": compare("sequence_score", centers=centers),
    }


def nan_mean(values: list[float]) -> tuple[float, int]:
    """Mean of the values that are not NaN, and how many there are (NaN, 0 if none)."""
    kept = [v for v in values if not math.isnan(v)]
    return (statistics.fmean(kept), len(kept)) if kept else (math.nan, 0)


def json_ready(value: object) -> object:
    """``value`` with NaN floats as None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    return value


def predictors(
    args: argparse.Namespace, predictor: Predictor, center_bias: CenterBiasKDE
) -> dict[str, Predict]:
    """Every row's scanpath predictor, in table order (the human baseline apart)."""
    sampler = predictor.sampler

    def model(image: np.ndarray, stim: Stimulus, length: int, index: int) -> list[np.ndarray]:
        prediction = predictor.predict(image)
        return as_arrays(
            predictor.sample_scanpaths(prediction, args.samples, length, args.seed + index)
        )

    def center(image: np.ndarray, stim: Stimulus, length: int, index: int) -> list[np.ndarray]:
        density = np.exp(center_bias.log_density(None, stim.size))
        rng = np.random.default_rng((args.seed, index, 1))
        ppd = predictor.pixels_per_degree(stim.size)
        return as_arrays(sampler.sample(density, args.samples, length, rng, ppd))

    def uniform(image: np.ndarray, stim: Stimulus, length: int, index: int) -> list[np.ndarray]:
        rng = np.random.default_rng((args.seed, index, 2))
        return as_arrays(uniform_scanpaths(stim.size, args.samples, length, sampler, rng))

    rows: dict[str, Predict] = {MODEL: model}
    if args.saltr_checkpoint:
        saltr = SaltrScanpathModel.from_checkpoint(args.saltr_checkpoint, sampler=sampler)

        def ordered(image: np.ndarray, stim: Stimulus, length: int, index: int) -> list[np.ndarray]:
            return [saltr.predict(image, np.random.default_rng((args.seed, index, 3)))]

        rows[SALTR] = ordered
    rows[CENTER] = center
    rows[RANDOM] = uniform
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--osie", default=str(ROOT / "../shared/data/osie"))
    parser.add_argument("--limit", type=int, default=None, help="first N val images (all: 100)")
    parser.add_argument("--samples", type=int, default=10, help="sampled scanpaths per image")
    parser.add_argument(
        "--length",
        type=int,
        default=None,
        help="fixations per scanpath (default: per-image median human length)",
    )
    parser.add_argument(
        "--saltr-checkpoint", default=None, help="a saltr-lite0-scanpath checkpoint"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks/RESULTS_scanpaths.md"))
    args = parser.parse_args()
    if any(v is not None and v < 1 for v in (args.limit, args.samples, args.length)):
        parser.error("--limit, --samples and --length must be at least 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()

    osie = load_dataset("osie", args.osie)
    val = list(osie.split("val"))[: args.limit]
    center_bias = CenterBiasKDE()
    center_bias.fit(osie.split("train"))
    predictor = Predictor.from_pretrained()
    rows = predictors(args, predictor, center_bias)

    first = load_image(val[0].path)
    for predict in rows.values():  # untimed warm-up; every call seeds its own generator
        predict(first, val[0], 2, 0)

    per_image = []
    for index, stim in enumerate(val):
        image = load_image(stim.path)
        length = args.length or human_length(stim)
        threshold = scanmatch_threshold(stim.scanpaths, stim.size)
        centers = cluster_fixations(stim)
        scores = {HUMAN: score(None, stim, threshold, centers)}
        fixations = {HUMAN: statistics.fmean(len(sp) for sp in stim.scanpaths)}
        ms = {}
        for name, predict in rows.items():
            tic = time.perf_counter()
            paths = predict(image, stim, length, index)
            ms[name] = 1000 * (time.perf_counter() - tic)
            fixations[name] = statistics.fmean(len(p) for p in paths)
            scores[name] = score(paths, stim, threshold, centers)
        per_image.append(
            {
                "id": stim.id,
                "length": length,
                "human_scanpaths": len(stim.scanpaths),
                "scores": scores,
                "fixations": fixations,
                "ms": ms,
            }
        )
        print(
            f"[{index + 1}/{len(val)}] {stim.id}: length {length}, "
            + ", ".join(f"{n} {s['vector']:.3f}" for n, s in scores.items()),
            flush=True,
        )

    names = [HUMAN, *rows]
    means = {
        name: {c: nan_mean([im["scores"][name][c] for im in per_image]) for c in COLUMNS}
        for name in names
    }
    timing = {
        name: {
            "median_ms": statistics.median(im["ms"][name] for im in per_image),
            "mean_ms": statistics.fmean(im["ms"][name] for im in per_image),
        }
        for name in rows
    }
    command = shlex.join(["python", "benchmarks/scanpaths.py", *sys.argv[1:]])
    machine = (
        f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}, "
        f"numpy {np.__version__}, torch {torch.__version__}"
    )
    lengths = [im["length"] for im in per_image]
    cb = center_bias.params

    def cell(name: str, column: str) -> str:
        mean, count = means[name][column]
        text = "n/a" if count == 0 else f"{mean:.4f}"
        return text if count == len(per_image) else f"{text} ({count})"

    lines = [
        "# Scanpath prediction on OSIE val",
        "",
        f"Command: `{command}`; machine: {machine}; "
        f"{time.perf_counter() - start:.0f} s from loading the data to the table.",
        "",
        f"{len(per_image)} OSIE val images; {args.samples} sampled scanpaths per image and "
        f"predictor{' (SalTR: its one ordered scanpath)' if SALTR in rows else ''}, each "
        "scored against every human scanpath of the image; scanpath length "
        + (
            f"{args.length} fixations"
            if args.length
            else f"the image's median human length ({min(lengths)} to {max(lengths)}, "
            f"median {statistics.median(lengths):g})"
        )
        + f"; seed {args.seed}. Sampler: the default model's (fitted on "
        f"{predictor.sampler.fitted_on}); center bias: KDE fitted on OSIE train (bandwidth "
        f"{cb.bandwidth:g}, uniform weight {cb.uniform_weight:g}). Means over images; a count "
        "in parentheses is the number of images where the metric was defined, when fewer "
        "than all (MultiMatch needs 3 fixations in both scanpaths).",
        "",
        "| scanpaths | images | "
        + " | ".join(HEADERS)
        + " | fixations / scanpath | ms / image (median) |",
        "|---" * (len(HEADERS) + 4) + "|",
        *(
            f"| {name} | {len(per_image)} | "
            + " | ".join(cell(name, c) for c in COLUMNS)
            + f" | {statistics.fmean(im['fixations'][name] for im in per_image):.1f}"
            + (f" | {timing[name]['median_ms']:.1f} |" if name in timing else " | — |")
            for name in names
        ),
        "",
        "Time per image: the predictor's work on the decoded image (network, density, "
        "sampling), not scoring; "
        + ", ".join(f"{n} mean {t['mean_ms']:.1f} ms" for n, t in timing.items())
        + ".",
        "",
    ]
    atomic_write(args.out, "\n".join(lines))
    result = {
        "command": command,
        "machine": machine,
        "settings": {
            "images": len(per_image),
            "samples": args.samples,
            "length": args.length,
            "seed": args.seed,
            "saltr_checkpoint": args.saltr_checkpoint,
            "sampler_fitted_on": predictor.sampler.fitted_on,
            "center_bias": {"bandwidth": cb.bandwidth, "uniform_weight": cb.uniform_weight},
        },
        "means": {
            name: {c: {"mean": m, "images": n} for c, (m, n) in cols.items()}
            for name, cols in means.items()
        },
        "time_per_image": timing,
        "per_image": per_image,
    }
    atomic_write(Path(args.out).with_suffix(".json"), json.dumps(json_ready(result), indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
