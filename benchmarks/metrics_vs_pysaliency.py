"""Time and cross-check salience.evaluation.metrics against pysaliency 0.2.22 on the OSIE validation
split.

For every validation image, two maps are scored with both libraries on the same fixations:

* ``center_bias``: :func:`salience.evaluation.metrics.center_bias_density` (sigma 0.2 of each side);
* ``loo``: a leave-one-observer-out empirical density (every observer but one, blurred with
  ``--sigma-deg``), mixed with 1% uniform so that its log-likelihood is finite.

Both maps are densities, so the log-likelihood and information gain (over uniform) use their
logarithm. CC, KL and SIM compare with the image's empirical density (all fixations), which each
library builds itself (row ``reference maps``): ours with :func:`empirical_density`, pysaliency
with ``FixationMap(kernel_size=sigma)``. Shuffled-AUC negatives are the fixations of the other 99
images. pysaliency's AUC-Judd counts a pixel once per fixation on it, ours (like MIT) once, so it
is given de-duplicated fixations; the difference on the raw fixations is reported separately.
pysaliency has no AUC-Borji: that row is ours alone and left out of the speed-up.

Each timing is the best of ``--repeats`` runs (other processes share the machine), after one
warm-up run (numba compilation, cached blur matrices). Writes ``metrics_vs_pysaliency.json`` and
``.md`` to ``--out``.

    python benchmarks/metrics_vs_pysaliency.py --data /work/shared/data/osie --out results/bench
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy
import scipy.io

from salience.evaluation import metrics

if not hasattr(np, "trapz"):  # pysaliency 0.2.22 still calls np.trapz, removed in numpy 2.4
    np.trapz = np.trapezoid  # noqa: NPY201  (restores the alias pysaliency needs)
import pysaliency
from pysaliency.metrics import MIT_KLDiv

SIZE = (600, 800)
PIXELS_PER_DEGREE = 24.0
MAP_KINDS = ("center_bias", "loo")
FIXATION_METRICS = ("auc_judd", "auc_shuffled", "auc_uniform", "nss")
REFERENCE_METRICS = ("cc", "kl_div", "sim")
DENSITY_METRICS = ("log_likelihood", "information_gain")


@dataclass
class Images:
    """Fixations of the benchmark images, per image and flat (pysaliency style)."""

    ids: list[str]
    xs: list[np.ndarray]
    ys: list[np.ndarray]
    observers: list[np.ndarray]

    @property
    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ns = [np.full(len(x), n) for n, x in enumerate(self.xs)]
        return np.concatenate(self.xs), np.concatenate(self.ys), np.concatenate(ns)


def load_osie(root: Path, split: str) -> Images:
    """The split's images and their fixations, converted from 1-based to 0-based pixels."""
    ids = json.loads((root / "split.json").read_text())[split]
    cells = scipy.io.loadmat(
        root / "eye" / "fixations.mat", squeeze_me=True, struct_as_record=False
    )["fixations"]
    by_id = {Path(str(c.img)).stem: c for c in cells}
    xs, ys, observers = [], [], []
    for image_id in ids:
        subjects = by_id[image_id].subjects
        x = [np.atleast_1d(s.fix_x).astype(np.float64) - 1.0 for s in subjects]
        y = [np.atleast_1d(s.fix_y).astype(np.float64) - 1.0 for s in subjects]
        xs.append(np.concatenate(x))
        ys.append(np.concatenate(y))
        observers.append(np.concatenate([np.full(len(v), k) for k, v in enumerate(x)]))
    return Images(ids, xs, ys, observers)


def make_maps(images: Images, sigma: float) -> dict[str, list[np.ndarray]]:
    """The two density maps per image (see the module docstring)."""
    center = metrics.center_bias_density(SIZE, 0.2, 0.2)
    uniform = 1.0 / (SIZE[0] * SIZE[1])
    loo = []
    for n in range(len(images.ids)):
        left_out = n % (images.observers[n].max() + 1)
        keep = images.observers[n] != left_out
        density = metrics.empirical_density(images.xs[n][keep], images.ys[n][keep], SIZE, sigma)
        loo.append(0.99 * density + 0.01 * uniform)
    return {"center_bias": [center] * len(images.ids), "loo": loo}


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Minimum wall time of ``repeats`` runs after one warm-up, and the last result."""
    result = fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


class Ours:
    """The metric suite with salience.evaluation.metrics, one function per benchmark row."""

    def __init__(self, images: Images, sigma: float) -> None:
        self.images = images
        self.sigma = sigma
        self.flat_x, self.flat_y, self.flat_n = images.flat
        self.uniform = np.full(SIZE, -math.log(SIZE[0] * SIZE[1]))

    def references(self) -> list[np.ndarray]:
        im = self.images
        pairs = zip(im.xs, im.ys, strict=True)
        return [metrics.empirical_density(x, y, SIZE, self.sigma) for x, y in pairs]

    def _negatives(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        other = self.flat_n != n
        sizes = (np.full(other.sum(), SIZE[0]), np.full(other.sum(), SIZE[1]))
        return metrics.rescale_fixations(self.flat_x[other], self.flat_y[other], sizes, SIZE)

    def fixation_metric(self, name: str, maps: list[np.ndarray]) -> np.ndarray:
        im = self.images
        if name == "auc_shuffled":
            return np.array(
                [
                    metrics.auc_shuffled(m, im.xs[n], im.ys[n], *self._negatives(n))
                    for n, m in enumerate(maps)
                ]
            )
        fn = getattr(metrics, name)
        return np.array([fn(m, im.xs[n], im.ys[n]) for n, m in enumerate(maps)])

    def reference_metric(
        self, name: str, maps: list[np.ndarray], refs: list[np.ndarray]
    ) -> np.ndarray:
        fn = getattr(metrics, name)
        return np.array([fn(m, r) for m, r in zip(maps, refs, strict=True)])

    def density_metric(self, name: str, log_maps: list[np.ndarray]) -> np.ndarray:
        im = self.images
        if name == "log_likelihood":
            return np.array(
                [metrics.log_likelihood(m, im.xs[n], im.ys[n]) for n, m in enumerate(log_maps)]
            )
        return np.array(
            [
                metrics.information_gain(m, self.uniform, im.xs[n], im.ys[n])
                for n, m in enumerate(log_maps)
            ]
        )

    def evaluate_all(
        self, maps: list[np.ndarray], log_maps: list[np.ndarray], refs: list[np.ndarray]
    ) -> None:
        """The whole suite the way salience.evaluation.evaluate runs it: evaluate_map + LL + IG per
        image."""
        im = self.images
        for n, (m, logm, ref) in enumerate(zip(maps, log_maps, refs, strict=True)):
            ox, oy = self._negatives(n)
            metrics.evaluate_map(m, im.xs[n], im.ys[n], ref_map=ref, other_xs=ox, other_ys=oy)
            metrics.log_likelihood(logm, im.xs[n], im.ys[n])
            metrics.information_gain(logm, self.uniform, im.xs[n], im.ys[n])


def _dedup(xs: np.ndarray, ys: np.ndarray, ns: np.ndarray) -> np.ndarray:
    """Mask keeping the first fixation on each pixel of each image."""
    key = (ns * SIZE[0] + np.floor(ys).astype(int)) * SIZE[1] + np.floor(xs).astype(int)
    keep = np.zeros(key.size, dtype=bool)
    keep[np.unique(key, return_index=True)[1]] = True
    return keep


class Theirs:
    """The same suite with pysaliency, through its model API where it has one."""

    def __init__(self, images: Images, sigma: float) -> None:
        x, y, n = images.flat
        self.n_images = len(images.ids)
        self.sigma = sigma
        self.fixations = pysaliency.Fixations.create_without_history(x, y, n)
        keep = _dedup(x, y, n)
        self.n_duplicates = int((~keep).sum())
        self.fixations_dedup = pysaliency.Fixations.create_without_history(
            x[keep], y[keep], n[keep]
        )
        # Stimulus n is a constant image of value n: the models below read n from it.
        if self.n_images > 256:
            raise ValueError("stimuli are numbered by a uint8 value: at most 256 images")
        self.stimuli = pysaliency.Stimuli(
            [np.broadcast_to(np.uint8(n), SIZE) for n in range(self.n_images)]
        )

    @staticmethod
    def saliency_model(maps: list[np.ndarray]) -> pysaliency.SaliencyMapModel:
        class Precomputed(pysaliency.SaliencyMapModel):
            def _saliency_map(self, stimulus: np.ndarray) -> np.ndarray:
                return maps[int(stimulus[0, 0])]

        return Precomputed(caching=False)

    @staticmethod
    def density_model(log_maps: list[np.ndarray]) -> pysaliency.Model:
        class Precomputed(pysaliency.Model):
            def _log_density(self, stimulus: np.ndarray) -> np.ndarray:
                return log_maps[int(stimulus[0, 0])]

        return Precomputed(caching=False)

    def references(self) -> list[np.ndarray]:
        gold = pysaliency.FixationMap(
            self.stimuli, self.fixations, kernel_size=self.sigma, caching=False
        )
        return [gold.saliency_map(s) for s in self.stimuli.stimulus_objects]

    def _per_image(self, per_fixation: np.ndarray, fixations: pysaliency.Fixations) -> np.ndarray:
        return np.bincount(fixations.n, weights=per_fixation) / np.bincount(fixations.n)

    def fixation_metric(self, name: str, maps: list[np.ndarray], dedup: bool = True) -> np.ndarray:
        model = self.saliency_model(maps)
        if name == "nss":
            return self._per_image(model.NSSs(self.stimuli, self.fixations), self.fixations)
        if name == "auc_judd":
            fixations = self.fixations_dedup if dedup else self.fixations
            return np.array(
                model.AUC_per_image(
                    self.stimuli, fixations, nonfixations="unfixated", thresholds="fixations"
                )
            )
        kind = {"auc_shuffled": "shuffled", "auc_uniform": "uniform"}[name]
        return np.array(model.AUC_per_image(self.stimuli, self.fixations, nonfixations=kind))

    def reference_metric(
        self, name: str, maps: list[np.ndarray], refs: list[np.ndarray]
    ) -> np.ndarray:
        model, gold = self.saliency_model(maps), self.saliency_model(refs)
        if name == "cc":
            return np.asarray(model.CCs(self.stimuli, gold))
        if name == "sim":
            return np.asarray(model.SIMs(self.stimuli, gold))
        with np.errstate(divide="ignore"):  # it takes log(0) of the reference's zero pixels
            return np.array([MIT_KLDiv(m, r) for m, r in zip(maps, refs, strict=True)])

    def density_metric(self, name: str, log_maps: list[np.ndarray]) -> np.ndarray:
        model = self.density_model(log_maps)
        if name == "log_likelihood":
            values = model.log_likelihoods(self.stimuli, self.fixations) / math.log(2)
        else:
            values = model.information_gains(
                self.stimuli, self.fixations, baseline_model=pysaliency.UniformModel()
            )
        return self._per_image(values, self.fixations)


def _differences(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    absolute = np.abs(ours - theirs)
    relative = absolute / np.maximum(np.abs(theirs), 1e-300)
    return float(absolute.max()), float(relative.max())


def run(images: Images, sigma: float, repeats: int) -> dict:
    """Every row of the benchmark: times in seconds over all images and maps, and differences."""
    ours, theirs = Ours(images, sigma), Theirs(images, sigma)
    maps = make_maps(images, sigma)
    log_maps = {k: [np.log(m) for m in v] for k, v in maps.items()}
    rows: dict[str, dict] = {}

    t_ours, refs = best_time(ours.references, repeats)
    t_theirs, refs_theirs = best_time(theirs.references, repeats)
    rel = max(
        float(np.abs(a - b / b.sum()).max() / a.max())
        for a, b in zip(refs, refs_theirs, strict=True)
    )
    rows["reference maps"] = {"ours": t_ours, "pysaliency": t_theirs, "abs": None, "rel": rel}

    def add_row(name: str, fn_ours: Callable, fn_theirs: Callable | None) -> None:
        t_o, t_t, values_o, values_t = 0.0, 0.0, [], []
        for kind in MAP_KINDS:
            t, v = best_time(lambda kind=kind: fn_ours(kind), repeats)
            t_o += t
            values_o.append(v)
            if fn_theirs is not None:
                t, v = best_time(lambda kind=kind: fn_theirs(kind), repeats)
                t_t += t
                values_t.append(v)
        row = {"ours": t_o, "pysaliency": t_t if fn_theirs else None, "abs": None, "rel": None}
        if fn_theirs is not None:
            row["abs"], row["rel"] = _differences(
                np.concatenate(values_o), np.concatenate(values_t)
            )
        rows[name] = row

    for name in FIXATION_METRICS:
        add_row(
            name,
            lambda k, name=name: ours.fixation_metric(name, maps[k]),
            lambda k, name=name: theirs.fixation_metric(name, maps[k]),
        )
    add_row("auc_borji", lambda k: ours.fixation_metric("auc_borji", maps[k]), None)
    for name in REFERENCE_METRICS:
        add_row(
            name,
            lambda k, name=name: ours.reference_metric(name, maps[k], refs),
            lambda k, name=name: theirs.reference_metric(name, maps[k], refs_theirs),
        )
    for name in DENSITY_METRICS:
        add_row(
            name,
            lambda k, name=name: ours.density_metric(name, log_maps[k]),
            lambda k, name=name: theirs.density_metric(name, log_maps[k]),
        )

    t_eval = 0.0
    for kind in MAP_KINDS:
        t, _ = best_time(
            lambda kind=kind: ours.evaluate_all(maps[kind], log_maps[kind], refs), repeats
        )
        t_eval += t

    interleaved = _interleaved_suites(ours, theirs, maps, log_maps, repeats)

    judd_raw = np.concatenate(
        [theirs.fixation_metric("auc_judd", maps[k], dedup=False) for k in MAP_KINDS]
    )
    judd_ours = np.concatenate([ours.fixation_metric("auc_judd", maps[k]) for k in MAP_KINDS])
    return {
        "rows": rows,
        "evaluate_map_suite_s": t_eval,
        "interleaved_suites": interleaved,
        "judd_vs_pysaliency_raw_fixations": _differences(judd_ours, judd_raw),
        "n_duplicate_fixations": theirs.n_duplicates,
        "n_images": len(images.ids),
        "n_fixations": int(sum(len(x) for x in images.xs)),
    }


def _interleaved_suites(
    ours: Ours, theirs: Theirs, maps: dict, log_maps: dict, repeats: int
) -> dict[str, object]:
    """The whole common suite (reference maps and every metric pysaliency also has, both map
    kinds) run by each library in turn, ``repeats`` rounds after a warm-up, alternating which
    goes first: the load of other processes falls on both alike, so the ratio is fair."""

    def suite(lib: Ours | Theirs) -> None:
        refs = lib.references()
        for kind in MAP_KINDS:
            for name in FIXATION_METRICS:
                lib.fixation_metric(name, maps[kind])
            for name in REFERENCE_METRICS:
                lib.reference_metric(name, maps[kind], refs)
            for name in DENSITY_METRICS:
                lib.density_metric(name, log_maps[kind])

    suite(ours)
    suite(theirs)
    rounds = []
    for r in range(repeats):
        order = (("ours", ours), ("pysaliency", theirs))
        times = {}
        for name, lib in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            suite(lib)
            times[name] = time.perf_counter() - start
        rounds.append(times)
    ratios = [t["pysaliency"] / t["ours"] for t in rounds]
    return {
        "rounds": rounds,
        "ours_best_s": min(t["ours"] for t in rounds),
        "pysaliency_best_s": min(t["pysaliency"] for t in rounds),
        "median_round_ratio": float(np.median(ratios)),
    }


def to_markdown(result: dict) -> str:
    """The result as a markdown table with totals and speed-ups."""

    def fmt(v: float | None, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    lines = [
        "| metric | ours (s) | pysaliency (s) | speed-up | max abs diff | max rel diff |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = result["rows"]
    for name, r in rows.items():
        ratio = None if r["pysaliency"] is None else r["pysaliency"] / r["ours"]
        speedup = "n/a" if ratio is None else f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2f}x"
        lines.append(
            f"| {name} | {r['ours']:.3f} | {fmt(r['pysaliency'], '.3f')} | {speedup} | "
            f"{fmt(r['abs'], '.1e')} | {fmt(r['rel'], '.1e')} |"
        )
    common = [r for name, r in rows.items() if r["pysaliency"] is not None]
    metric_rows = [r for name, r in rows.items() if r["pysaliency"] and name != "reference maps"]
    totals = {
        "all common rows (incl. reference maps)": common,
        "metrics only (references precomputed)": metric_rows,
    }
    for label, selected in totals.items():
        o = sum(r["ours"] for r in selected)
        t = sum(r["pysaliency"] for r in selected)
        lines.append(f"| **total, {label}** | {o:.3f} | {t:.3f} | **{t / o:.1f}x** | | |")
    theirs_total = sum(r["pysaliency"] for r in common)
    reference_ours = rows["reference maps"]["ours"]
    suite = result["evaluate_map_suite_s"] + reference_ours
    lines.append(
        f"| **evaluate_map + LL + IG (+ reference maps)** | {suite:.3f} | {theirs_total:.3f} | "
        f"**{theirs_total / suite:.1f}x** | | |"
    )
    inter = result["interleaved_suites"]
    best_ratio = inter["pysaliency_best_s"] / inter["ours_best_s"]
    lines.append(
        f"| **whole common suite, the libraries interleaved** | {inter['ours_best_s']:.3f} | "
        f"{inter['pysaliency_best_s']:.3f} | **{best_ratio:.1f}x** (median of rounds "
        f"{inter['median_round_ratio']:.1f}x) | | |"
    )
    judd_abs = result["judd_vs_pysaliency_raw_fixations"][0]
    lines += [
        "",
        f"{result['n_images']} images, {result['n_fixations']} fixations, 2 maps per image; "
        "the evaluate_map line also computes AUC-Borji, which pysaliency does not have. "
        f"AUC-Judd against pysaliency on the raw fixations ({result['n_duplicate_fixations']} "
        f"fall on an already fixated pixel): max abs diff {judd_abs:.1e}.",
    ]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, object]:
    """What the timings were measured on."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = models[0] if models else cpu
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pysaliency": "0.2.22",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/osie"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--sigma-deg", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--out", type=Path, default=Path("results/metrics_vs_pysaliency"))
    args = parser.parse_args()

    images = load_osie(args.data, args.split)
    if args.limit:
        images = Images(*(v[: args.limit] for v in vars(images).values()))
    sigma = metrics.sigma_px(args.sigma_deg, PIXELS_PER_DEGREE)
    result = run(images, sigma, args.repeats)
    result["machine"] = machine()
    table = to_markdown(result)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics_vs_pysaliency.md").write_text(table)
    (args.out / "metrics_vs_pysaliency.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
