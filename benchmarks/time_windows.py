"""Where people look during 0-1 s, 1-2 s and 2-3 s: the window model against its references.

Per viewing-time window (:mod:`salience.evaluation.windows`), on OSIE val and NUS Scene test:

- the window model (``salience/weights/windows.safetensors``: one readout per window on the
  default model's backbone), each window scored with its own readout's density alone and
  mixed with the default model's density (the base weighted 0.5, as shipped; the weight was
  chosen between these two on OSIE val);
- the time-agnostic default model: the same map for every window;
- the window's center bias, fitted on the training split's fixations with onsets in the window
  (IG is relative to it, so it scores 0);
- the window's gold standard: each observer's fixations in the window scored on the
  leave-one-observer-out density of the others' (tuned on the val split's fixations in the
  window), the 100 % of ``% expl. IG``.

``% expl. IG`` is left out (``-``) where the window holds fewer than 5 fixations per image: there
the gold standard's IG is too small and noisy to divide by. Fixation metrics count the
fixations whose onset falls in the window; CC, KL and SIM compare
with the window's empirical density, fixations weighted by their dwell time in it. OSIE records
no onsets: they are derived from durations (see salience/time_windows.py for what that assumes).

    python benchmarks/time_windows.py   # writes benchmarks/RESULTS_windows.md and .json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from salience.data import load_dataset
from salience.data.windows import window_dataset
from salience.evaluation.evaluate import METRICS, explainable_information_gain
from salience.evaluation.windows import evaluate_window, fit_window_references
from salience.io.atomic import atomic_write
from salience.models.base import DensityModel
from salience.models.dense.windows import DEFAULT_WEIGHT, WindowedDensity
from salience.models.registry import shipped_weights
from salience.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
MIN_FIXATIONS_PER_IMAGE = 5  # below this a window's gold standard is too thin for % expl. IG


class WindowReadout(DensityModel):
    """One window's readout of a :class:`WindowedDensity`, as a density model."""

    needs_image = True

    def __init__(self, windowed: WindowedDensity, index: int) -> None:
        self.windowed = windowed
        self.index = index
        self.name = f"windows {windowed.windows[index].label} (base {windowed.default_weight:g})"

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        if image is None or image.shape[:2] != tuple(size):
            raise ValueError("the window model needs the image at its own size")
        _, windows = self.windowed.window_log_densities([image])[0]
        return windows[self.index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--osie", default=str(ROOT / "../shared/data/osie"))
    parser.add_argument("--nus-scene", default=str(ROOT / "../shared/data/nus-scene"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/RESULTS_windows.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    predictor = Predictor.from_pretrained()
    windowed = WindowedDensity.from_file(shipped_weights("windows"), predictor.model)
    alone = WindowedDensity(predictor.model, windowed.window_readouts, windowed.windows, 0.0)
    sources = [
        ("OSIE val", load_dataset("osie", args.osie), "val"),
        ("Scene test", load_dataset("nus-scene", args.nus_scene), "test"),
    ]
    header = "| data | window | images | fixations | model | " + " | ".join(METRICS)
    lines = [
        "# Viewing-time windows: per-window density metrics",
        "",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/time_windows.py`; machine: "
        f"{platform.machine()} CPU ({os.cpu_count()} cores), {torch.get_num_threads()} torch "
        f"thread(s), torch {torch.__version__}.",
        "",
        "Probabilistic mode. Per window: fixation metrics (AUCs, NSS, IG, LL) on the fixations "
        "whose onset falls in the window; CC, KL and SIM against the window's empirical density "
        "(every fixation weighted by its dwell time in the window, blurred by 1 degree); IG "
        "against the window's own center bias (fitted on the train split's fixations of the "
        "window); % expl. IG against the window's leave-one-observer-out gold standard (tuned on "
        "the val split's fixations of the window; its CC, KL and SIM are optimistic, as in "
        "BENCHMARKS.md). OSIE has no recorded onsets: they are the cumulative durations of the "
        "earlier fixations (no saccade time), which places fixations early, so OSIE's 2-3 s "
        "window is thin. `fixations`: fixations with onsets in the window, all images. "
        f"`windows`: each window's readout mixed with the default's density (base weight "
        f"{DEFAULT_WEIGHT:g}, as shipped); `window readout alone`: base weight 0. `% expl. IG`: "
        f"`-` where the window has fewer than {MIN_FIXATIONS_PER_IMAGE} fixations per image.",
        "",
        header + " | % expl. IG |",
        "|---" * (len(METRICS) + 6) + "|",
    ]
    records: list[dict] = []
    for label, data, split in sources:
        evaluated = data.split(split)
        for k, window in enumerate(windowed.windows):
            center_bias, gold = fit_window_references(
                data.split("train"), data.split("val"), evaluated, window
            )
            n_fixations = sum(s.n_fixations for s in window_dataset(evaluated, window))
            models: list[tuple[str, DensityModel]] = [
                ("**windows**", WindowReadout(windowed, k)),
                ("window readout alone", WindowReadout(alone, k)),
                ("default (time-agnostic)", predictor.model),
                ("center bias of the window", center_bias),
                ("gold standard of the window", gold),
            ]
            results = [
                (name, evaluate_window(model, evaluated, window, center_bias=center_bias))
                for name, model in models
            ]
            gold_ig = results[-1][1].means["IG"]
            thin = n_fixations < MIN_FIXATIONS_PER_IMAGE * len(evaluated)
            for name, result in results:
                means = result.means
                explained = explainable_information_gain(means["IG"], 0.0, gold_ig)
                row = (
                    f"| {label} | {window.label} | {len(result.per_image)} | {n_fixations} | "
                    f"{name} | " + " | ".join(f"{means[m]:.4f}" for m in METRICS)
                )
                row += " | - |" if thin else f" | {explained:.1f} |"
                lines.append(row)
                print(row, flush=True)
                records.append(
                    {
                        "data": label,
                        "window": window.label,
                        "images": len(result.per_image),
                        "fixations": n_fixations,
                        "model": name.strip("*"),
                        "means": means,
                        "explained_ig_percent": None if thin else explained,
                    }
                )
    lines += ["", f"Wall time: {(time.perf_counter() - start) / 60:.0f} min.", ""]
    atomic_write(args.out, "\n".join(lines))
    atomic_write(Path(args.out).with_suffix(".json"), json.dumps(records, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
