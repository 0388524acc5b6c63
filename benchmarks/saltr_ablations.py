"""The SalTR paper's ablations, run here on a small budget: matching, queries, sigma, attention.

Every run is the CPU recipe (``configs/saltr-lite0-cpu.yaml``) with one thing changed and a
shorter schedule (``--epochs``, validation on OSIE val every ``--eval-every`` epochs):

- ``hungarian``: the recipe, N = 100 queries (the reference of every comparison);
- ``no-matching``: query i is paired with the i-th fixation of the target set (sequential
  matching; the paper reports collapse to a center bias without Hungarian matching);
- ``queries-50/150/200``: N = 50, 150, 200 queries;
- ``standard``: standard (full) attention on the stride-32 features instead of deformable.

The sigma ablation needs no training: the reference run's best checkpoint is scored on OSIE
val with the Gaussian's sigma set to 5 ... 30 px at 640 x 480 (the paper's unit), the floor
weight kept at its calibrated value. Deformable against standard is also compared as the
training time to a given validation score, from each run's validation curve.

Runs write to ``runs/ablations/NAME`` (finished runs are reused, interrupted ones resume) and
the tables to ``benchmarks/RESULTS_saltr_ablations.md``::

    python benchmarks/saltr_ablations.py                   # everything, about 1 h on 2 cores
    python benchmarks/saltr_ablations.py --only hungarian  # one run
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch

from salience.data import load_dataset
from salience.evaluation.evaluate import evaluate, explainable_information_gain
from salience.io.atomic import atomic_write
from salience.models.baselines import fit_references
from salience.models.saltr.density import SaltrDensity
from salience.training.config import load_config
from salience.training.loop import Trainer

ROOT = Path(__file__).resolve().parents[1]
RUNS: dict[str, list[str]] = {
    "hungarian": [],
    "no-matching": ["model.overrides.matching=sequential"],
    "queries-50": ["model.overrides.num_queries=50"],
    "queries-150": ["model.overrides.num_queries=150"],
    "queries-200": ["model.overrides.num_queries=200"],
    "standard": ["model.name=saltr-lite0", "model.overrides.dim_feedforward=512"],
}
SIGMAS_640 = (5.0, 10.0, 15.0, 19.0, 25.0, 30.0)  # px at 640 x 480, the paper's grid
METRICS = ("AUC-Judd", "sAUC", "NSS", "CC", "KL", "SIM", "IG")


def run(name: str, args: argparse.Namespace) -> dict:
    """Train (or resume, or reuse) one ablation run; its summary and validation curve."""
    out = Path(args.runs) / name
    overrides = [
        f"train.epochs={args.epochs}",
        f"eval.every={args.eval_every}",
        f"train.out={out}",
        *RUNS[name],
    ]
    if name == "standard":  # standard attention takes only the last level
        overrides.append("model.overrides.n_levels=1")
    log = out / "log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if not records or records[-1]["epoch"] < args.epochs:
        config = load_config(ROOT / "configs/saltr-lite0-cpu.yaml", overrides)
        Trainer(config, out_dir=out, resume=True).fit()
        records = [json.loads(line) for line in log.read_text().splitlines()]
    elapsed = 0.0
    curve = []
    for record in records:
        elapsed += record["seconds"]
        if "val/IG" in record:
            curve.append((record["epoch"], elapsed, record["val/IG"], record))
    best = max(curve, key=lambda c: c[2])
    return {
        "name": name,
        "overrides": RUNS[name],
        "train_seconds": elapsed,
        "images_per_second": sum(r["images_per_second"] for r in records) / len(records),
        "best_epoch": best[0],
        "best": {m: best[3][f"val/{m}"] for m in METRICS},
        "explained": best[3].get("val/explained_IG_percent"),
        "curve": [(e, s, ig) for e, s, ig, _ in curve],
    }


def sigma_sweep(args: argparse.Namespace, val, center_bias, gold_ig: float) -> list[dict]:
    """The reference run's best checkpoint scored with each sigma of :data:`SIGMAS_640`."""
    density = SaltrDensity.from_checkpoint(Path(args.runs) / "hungarian" / "best.safetensors")
    height, width = density.model.config.image_size
    to_input = math.hypot(height, width) / math.hypot(480, 640)
    rows = []
    for sigma in SIGMAS_640:
        density.sigma_px = sigma * to_input
        result = evaluate(density, val, center_bias=center_bias, mode="probabilistic")
        rows.append(
            {
                "sigma_640": sigma,
                **{m: result.means[m] for m in METRICS},
                "explained": explainable_information_gain(result.means["IG"], 0.0, gold_ig),
            }
        )
    return rows


def time_to(curve: list[tuple[int, float, float]], target: float) -> float | None:
    """Training seconds until the validation IG first reached ``target`` (None: never)."""
    return next((seconds for _, seconds, ig in curve if ig >= target), None)


def table(rows: list[dict], first: str, key) -> list[str]:
    lines = [
        f"| {first} | " + " | ".join(METRICS) + " | % expl. IG |",
        "|---" * (len(METRICS) + 2) + "|",
    ]
    for row in rows:
        values = row["best"] if "best" in row else row
        lines.append(
            f"| {key(row)} | "
            + " | ".join(f"{values[m]:.4f}" for m in METRICS)
            + f" | {row['explained']:.1f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--runs", default=str(ROOT / "runs/ablations"))
    parser.add_argument("--only", nargs="*", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--out", default=str(ROOT / "benchmarks/RESULTS_saltr_ablations.md"))
    args = parser.parse_args()
    torch.set_num_threads(2)

    start = time.perf_counter()
    results = {name: run(name, args) for name in args.only}
    if set(results) != set(RUNS):
        print(json.dumps(results, indent=1))
        return
    osie = load_dataset("osie", str(ROOT / "../shared/data/osie"))
    val = osie.split("val")
    center_bias, _, gold_ig = fit_references(osie.split("train"), val, val)
    sigmas = sigma_sweep(args, val, center_bias, gold_ig)

    reference = results["hungarian"]["best"]["IG"]
    targets = [0.5 * reference, 0.8 * reference, 0.95 * reference]
    lines = [
        "# SalTR ablations on OSIE val",
        "",
        f"Command: `python benchmarks/saltr_ablations.py --epochs {args.epochs} "
        f"--eval-every {args.eval_every}`; machine: {platform.machine()}, "
        f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}; "
        f"{(time.perf_counter() - start) / 60:.0f} min for what was not already trained.",
        "",
        f"Each run is `configs/saltr-lite0-cpu.yaml` with one change and {args.epochs} epochs "
        f"instead of 45 (validation every {args.eval_every}); metrics of the best validation "
        "epoch, probabilistic mode, IG in bits against the center bias, "
        f"% of explainable IG against the gold standard ({gold_ig:.4f} bits).",
        "",
        *table(
            [results[n] for n in RUNS],
            "run",
            lambda r: f"{r['name']} (epoch {r['best_epoch']})",
        ),
        "",
        "Training time and throughput (cached backbone features, so images/s is the head's):",
        "",
        "| run | train s | images/s |",
        "|---|---|---|",
        *(
            f"| {r['name']} | {r['train_seconds']:.0f} | {r['images_per_second']:.1f} |"
            for r in results.values()
        ),
        "",
        "## Sigma (reference run's best checkpoint, px at 640 x 480)",
        "",
        *table(sigmas, "sigma", lambda r: f"{r['sigma_640']:g}"),
        "",
        "## Deformable against standard attention: training seconds to a validation IG",
        "",
        "| target IG | " + " | ".join(f"{t:.3f}" for t in targets) + " |",
        "|---" * (len(targets) + 1) + "|",
    ]
    for name in ("hungarian", "standard"):
        curve = results[name]["curve"]
        cells = [time_to(curve, t) for t in targets]
        lines.append(
            f"| {'deformable' if name == 'hungarian' else 'standard'} | "
            + " | ".join("never" if c is None else f"{c:.0f}" for c in cells)
            + " |"
        )
    lines += [
        "",
        "Validation curves (epoch: IG):",
        "",
        *(
            f"- {r['name']}: " + ", ".join(f"{e}: {ig:.3f}" for e, _, ig in r["curve"])
            for r in results.values()
        ),
        "",
    ]
    atomic_write(args.out, "\n".join(lines))
    atomic_write(
        Path(args.out).with_suffix(".json"),
        json.dumps({"runs": results, "sigma": sigmas, "gold_ig": gold_ig}, indent=1),
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
