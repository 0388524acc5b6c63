"""Scoring models (or folders of saliency maps) against a dataset's fixations.

Per image, every metric of :mod:`salience.evaluation.metrics` is computed; dataset figures are means
over images (the MIT benchmark's convention). Two modes:

- ``"map"``: the saliency map is scored as given (for a model, its density).
- ``"probabilistic"``: the model's log-density is turned into the map that is optimal for each
  metric (Kümmerer, Wallis and Bethge, ECCV 2018) before scoring.

Information gain is relative to a center bias fitted on the dataset's ``train`` split (or given),
so the center bias scores 0 and ``% of explainable information gain`` is
``(IG_model - IG_center) / (IG_gold - IG_center)``.

Reference maps for CC, KL and SIM are the image's empirical density: all its fixations blurred
with a Gaussian of ``sigma_deg`` degrees of visual angle. Shuffled-AUC negatives are the fixations
of all other images of the evaluated split, placed at the same relative position in this image.
For the gold standard, fixation metrics (AUCs, NSS, IG, LL) score each observer on the density of
the others; its CC, KL and SIM compare the leave-one-out density with the all-observer reference,
which contains that observer too, so they are slightly optimistic.

``convention`` picks the metric definitions (:data:`salience.evaluation.metrics.CONVENTIONS`):
``"pysaliency"`` (default) as above; ``"mit"``, the MIT benchmark's MATLAB code
(:mod:`salience.evaluation.mit`): its metrics, its reference maps (the binary fixation map
blurred by its frequency-domain Gaussian with the same ``sigma_deg``), sAUC negatives at the
fixated pixels of 10 other images drawn at random (as its scoring code and Borji do), saliency
maps of another size resized by bicubic ``imresize`` inside each metric, and IG as its
``InfoGain.m`` against the center bias map. The result records its convention.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from salience.data.dataset import Dataset, Stimulus
from salience.evaluation import metrics, mit
from salience.evaluation.metrics import CONVENTIONS
from salience.io.atomic import atomic_write
from salience.io.images import load_image
from salience.models.base import DensityModel, ObserverConditionalModel

METRICS = ("AUC-Judd", "AUC-Borji", "sAUC", "NSS", "CC", "KL", "SIM", "IG", "LL")
MODES = ("map", "probabilistic")


def _mean_of_defined(values: list[float]) -> float:
    """Mean over the values that are not NaN; NaN (quietly) when none is."""
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


@dataclass
class EvaluationResult:
    """Per-image metrics of one model on one dataset split, and their means."""

    model: str
    dataset: str
    mode: str
    per_image: dict[str, dict[str, float]]
    convention: str = "pysaliency"
    means: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.means = {m: _mean_of_defined([v[m] for v in self.per_image.values()]) for m in METRICS}

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "mode": self.mode,
            "convention": self.convention,
            "n_images": len(self.per_image),
            "means": self.means,
            "per_image": self.per_image,
        }


def map_to_log_density(saliency_map: np.ndarray, uniform_weight: float = 1e-6) -> np.ndarray:
    """Read a classic saliency map as a density, for IG and LL of map-only predictions.

    The map is shifted to be non-negative, normalized to sum 1 and mixed with ``uniform_weight``
    of the uniform density so no pixel has zero probability. Maps that were not made as densities
    score poorly on IG and LL this way, which is the point of reporting them.
    """
    shifted = saliency_map - min(float(saliency_map.min()), 0.0)
    total = shifted.sum()
    n = shifted.size
    density = shifted / total if total > 0 else np.full(shifted.shape, 1.0 / n)
    return np.log((1 - uniform_weight) * density + uniform_weight / n)


def explainable_information_gain(ig_model: float, ig_center: float, ig_gold: float) -> float:
    """Share of the information gain the gold standard has over the center bias, in percent."""
    return 100.0 * (ig_model - ig_center) / (ig_gold - ig_center)


def _shuffled_negatives(dataset: Dataset) -> tuple[np.ndarray, ...]:
    """All fixations of the dataset in pixels, with their image's index, height and width."""
    xs, ys, ns, heights, widths = [], [], [], [], []
    for i, stim in enumerate(dataset):
        x, y = stim.fixations()
        xs.append(x)
        ys.append(y)
        ns.append(np.full(len(x), i))
        heights.append(np.full(len(x), stim.height))
        widths.append(np.full(len(x), stim.width))
    return tuple(np.concatenate(v) for v in (xs, ys, ns, heights, widths))


# metrics.evaluate_map keys -> the names in tables and files
_NAMES = {
    "auc_judd": "AUC-Judd",
    "auc_borji": "AUC-Borji",
    "auc_shuffled": "sAUC",
    "nss": "NSS",
    "cc": "CC",
    "kl_div": "KL",
    "sim": "SIM",
    "information_gain": "IG",
    "log_likelihood": "LL",
}


def _image_metrics(
    log_density: np.ndarray,
    baseline: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    *,
    mode: str,
    reference: np.ndarray,
    sigma_px: float,
    negatives: tuple[np.ndarray, np.ndarray] | np.ndarray,
    rng: np.random.Generator,
    given_map: np.ndarray | None = None,
    convention: str = "pysaliency",
) -> dict[str, float]:
    """All metrics of one image, named as in :data:`METRICS`.

    In map mode the map (the density, or ``given_map``) is scored as given and IG and LL come
    from ``log_density``; in probabilistic mode each metric scores its optimal map. The center
    bias ``baseline`` is the reference of IG and the negatives' distribution of sAUC. With no
    negatives (no other image of the dataset has fixations) sAUC is undefined: NaN.
    ``negatives`` are sAUC's: the other fixations ``(xs, ys)`` in this image's pixels, or under
    the MIT convention the map of their locations (:func:`salience.evaluation.mit.shuffled_map`).
    """
    if convention == "mit":  # a given map may have any size: the MIT metrics resize it
        scorer, has_negatives = mit, True
        common = {"size": log_density.shape, "other_map": negatives}
    else:
        other_xs, other_ys = negatives
        scorer, has_negatives = metrics, len(other_xs) > 0
        common = {
            "other_xs": other_xs if has_negatives else None,
            "other_ys": other_ys if has_negatives else None,
        }
    common |= {"ref_map": reference, "sigma_px": sigma_px, "rng": rng}
    if mode == "map":
        saliency = np.exp(log_density) if given_map is None else given_map
        values = scorer.evaluate_map(saliency, xs, ys, mode="map", **common)
        values["log_likelihood"] = metrics.log_likelihood(log_density, xs, ys)
        if convention == "mit":
            values["information_gain"] = mit.information_gain(
                saliency, np.exp(baseline), xs, ys, size=log_density.shape
            )
        else:
            values["information_gain"] = metrics.information_gain(log_density, baseline, xs, ys)
    else:
        values = scorer.evaluate_map(
            log_density,
            xs,
            ys,
            mode="probabilistic",
            baseline_log_density=baseline,
            shuffled_log_density=baseline,
            **common,
        )
    if not has_negatives:
        values["auc_shuffled"] = math.nan
    return {_NAMES[k]: float(v) for k, v in values.items() if k in _NAMES}


def _mit_negatives(dataset: Dataset, index: int, rng: np.random.Generator) -> np.ndarray:
    """sAUC's negative locations for image ``index`` as the MIT scoring code picks them.

    The fixated pixels of :data:`salience.evaluation.mit.SHUFFLED_IMAGES` other images with
    fixations, drawn at random without replacement, their binary maps resized to this image.
    """
    stimuli = dataset.stimuli
    candidates = [j for j, s in enumerate(stimuli) if j != index and s.n_fixations > 0]
    if not candidates:
        raise ValueError("sAUC needs fixations on at least one other image of the split")
    count = min(mit.SHUFFLED_IMAGES, len(candidates))
    chosen = rng.choice(candidates, size=count, replace=False)
    others = [(*stimuli[j].fixations(), stimuli[j].size) for j in chosen]
    return mit.shuffled_map(others, stimuli[index].size)


def evaluate(
    model: DensityModel | None,
    dataset: Dataset,
    *,
    center_bias: DensityModel,
    mode: str = "probabilistic",
    sigma_deg: float = 1.0,
    seed: int = 0,
    predictions: Path | None = None,
    name: str | None = None,
    progress: Callable[[Sequence[Stimulus]], Sequence[Stimulus]] | None = None,
    references: Callable[[Stimulus], np.ndarray] | None = None,
    convention: str = "pysaliency",
) -> EvaluationResult:
    """Score ``model`` (or the maps in ``predictions``) on every stimulus of ``dataset``.

    ``center_bias`` must already be fitted; it is the baseline of information gain and, in the
    probabilistic mode, the distribution of shuffled-AUC negatives. ``references`` gives the map
    CC, KL and SIM compare with per stimulus (default: its fixations' empirical density, or MIT's
    reference map under ``convention="mit"``). ``convention`` is ``"pysaliency"`` or ``"mit"``
    (see the module docstring).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if (model is None) == (predictions is None):
        raise ValueError("give exactly one of a model or a predictions folder")
    if predictions is not None:
        missing = [s.id for s in dataset if _prediction_path(predictions, s.id) is None]
        if missing:
            raise FileNotFoundError(
                f"{predictions}: no map (<id>.npy, <id>.png or <id>_density.npy) for "
                f"{len(missing)} of "
                f"{len(dataset)} images, e.g. {', '.join(missing[:5])}"
            )
    rng = np.random.default_rng(seed)
    is_mit = convention == "mit"
    if not is_mit:
        neg_x, neg_y, neg_n, neg_h, neg_w = _shuffled_negatives(dataset)
    stimuli = progress(dataset.stimuli) if progress else dataset.stimuli
    per_image: dict[str, dict[str, float]] = {}
    for i, stim in enumerate(stimuli):
        xs, ys = stim.fixations()
        if len(xs) == 0:
            continue
        sigma_px = sigma_deg * dataset.ppd(stim)
        if references is not None:
            reference = references(stim)
        elif is_mit:
            reference = mit.reference_map(xs, ys, stim.size, sigma_px)
        else:
            reference = metrics.empirical_density(xs, ys, stim.size, sigma_px)
        if is_mit:
            negatives = _mit_negatives(dataset, i, rng)
        else:
            others = neg_n != i
            other_xs, other_ys = metrics.rescale_fixations(
                neg_x[others], neg_y[others], (neg_h[others], neg_w[others]), stim.size
            )
            # rounding must not push a point from the last pixel onto the border
            other_xs = np.minimum(other_xs, np.nextafter(stim.width, 0))
            other_ys = np.minimum(other_ys, np.nextafter(stim.height, 0))
            negatives = (other_xs, other_ys)
        baseline = center_bias.log_density(None, stim.size)
        if isinstance(model, ObserverConditionalModel):
            per_image[stim.id] = _observer_conditional_metrics(
                model, stim, baseline, reference, negatives, mode, sigma_px, rng, convention
            )
            continue
        given_map = None
        if predictions is not None:
            path = _prediction_path(predictions, stim.id)
            if is_mit:  # each MIT metric resizes the map itself (bicubic)
                given_map = load_prediction(path)
                log_density = map_to_log_density(mit.imresize(given_map, stim.size))
            else:
                given_map = read_prediction(path, stim.size)
                log_density = map_to_log_density(given_map)
        else:
            image = load_image(stim.path) if model.needs_image else None
            log_density = model.log_density(image, stim.size)
        per_image[stim.id] = _image_metrics(
            log_density,
            baseline,
            xs,
            ys,
            mode=mode,
            reference=reference,
            sigma_px=sigma_px,
            negatives=negatives,
            rng=rng,
            given_map=given_map,
            convention=convention,
        )
    label = name or (model.name if model is not None else str(predictions))
    return EvaluationResult(label, dataset.name, mode, per_image, convention)


def _observer_conditional_metrics(
    model: ObserverConditionalModel,
    stim: Stimulus,
    baseline: np.ndarray,
    reference: np.ndarray,
    negatives: tuple[np.ndarray, np.ndarray] | np.ndarray,
    mode: str,
    sigma_px: float,
    rng: np.random.Generator,
    convention: str,
) -> dict[str, float]:
    """Each observer scored on the density of the others; fixation-weighted mean over observers."""
    xs, ys = stim.fixations()
    obs = stim.observer_index()
    rows, weights = [], []
    for s in range(len(stim.scanpaths)):
        sel = obs == s
        rows.append(
            _image_metrics(
                model.log_density_without(stim, s),
                baseline,
                xs[sel],
                ys[sel],
                mode=mode,
                reference=reference,
                sigma_px=sigma_px,
                negatives=negatives,
                rng=rng,
                convention=convention,
            )
        )
        weights.append(sel.sum())
    w = np.asarray(weights, dtype=np.float64)
    return {m: float(np.average([r[m] for r in rows], weights=w)) for m in METRICS}


# a map's file name: <id>.npy, <id>.png, or what ``salience predict`` writes
MAP_SUFFIXES = (".npy", ".png", "_density.npy")


def _prediction_path(folder: Path, stimulus_id: str) -> Path | None:
    for suffix in MAP_SUFFIXES:
        path = folder / f"{stimulus_id}{suffix}"
        if path.is_file():
            return path
    return None


def read_prediction(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A saliency map file (.npy 2-D array or grayscale .png) resized to (height, width).

    Resized bilinearly (PIL) when its size differs; the MIT convention resizes with
    :func:`salience.evaluation.mit.imresize` inside each metric instead.
    """
    arr = load_prediction(path)
    if arr.shape != size:
        resized = Image.fromarray(arr.astype(np.float32), mode="F").resize(
            (size[1], size[0]), Image.Resampling.BILINEAR
        )
        arr = np.asarray(resized, dtype=np.float64)
    return arr


def load_prediction(path: Path) -> np.ndarray:
    """A saliency map file (.npy 2-D array or grayscale .png) as a finite float64 2-D array."""
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc})") from exc
    else:
        arr = load_image(path).astype(np.float64).mean(axis=2)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[:, :, :3].mean(axis=2)
    if arr.ndim != 2:
        raise ValueError(f"{path}: a saliency map must be 2-D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{path}: saliency map contains NaN or infinity")
    return arr


def write_results(
    results: Sequence[EvaluationResult], path: Path, extra: dict | None = None
) -> tuple[Path, Path]:
    """Write means and per-image values as JSON, and a CSV of means beside it, atomically."""
    path = Path(path)
    payload = {"results": [r.to_dict() for r in results], **(extra or {})}
    atomic_write(path, json.dumps(payload, indent=1))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "dataset", "mode", "convention", "n_images", *METRICS])
    for r in results:
        writer.writerow(
            [r.model, r.dataset, r.mode, r.convention, len(r.per_image)]
            + [f"{r.means[m]:.6g}" for m in METRICS]
        )
    csv_path = path.with_suffix(".csv")
    atomic_write(csv_path, buf.getvalue())
    return path, csv_path
