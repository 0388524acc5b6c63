"""Seed spread of SUM's unification runs: more seeds of chosen runs, scored as eye models.

Each run folder's best checkpoint is scored under condition 1 on OSIE val and NUS Scene test
(the center bias and gold standard of ``benchmarks/sum_unification.py``), and each setting's
seeds are listed with their mean, next to its seed-0 run.

    salience train configs/sum-lite0.yaml --out runs/sum-cond-s1 train.seed=1
    salience train configs/sum-lite0.yaml --out runs/sum-eye-steps-s1 train.seed=1 \\
        train.epochs=7 "data.train=[{name: osie, root: ../shared/data/osie, split: train,
        condition: 1}, {name: nus-scene, root: ../shared/data/nus-scene, split: train,
        condition: 1}]"
    python benchmarks/sum_seeds.py "conditioned=sum-cond,sum-cond-s1" \\
        "eye tracking alone, as many steps=sum-eye-steps,sum-eye-steps-s1"

writes ``benchmarks/RESULTS_sum_seeds.md``.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
from pathlib import Path

import torch
from sum_unification import references, score

from salience.data import load_dataset
from salience.io.atomic import atomic_write
from salience.models.sum import SumDensity

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("settings", nargs="+", help="NAME=RUN,RUN,...: one setting's seed runs")
    parser.add_argument("--runs", default=str(ROOT / "runs"))
    parser.add_argument("--osie", default=str(ROOT / "../shared/data/osie"))
    parser.add_argument("--nus", default=str(ROOT / "../shared/data/nus-scene"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/RESULTS_sum_seeds.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = {}
    for item in args.settings:
        name, _, runs = item.partition("=")
        if not runs:
            parser.error(f"{item!r}: expected NAME=RUN,RUN,...")
        settings[name] = runs.split(",")

    osie, nus = load_dataset("osie", args.osie), load_dataset("nus-scene", args.nus)
    evaluations = {
        "OSIE val": (
            osie.split("val"),
            references(*(osie.split(s) for s in ("train", "val", "val"))),
        ),
        "Scene test": (
            nus.split("test"),
            references(*(nus.split(s) for s in ("train", "val", "test"))),
        ),
    }
    command = "python " + shlex.join(["benchmarks/sum_seeds.py", *sys.argv[1:]])
    lines = [
        "# SUM: seed spread of the unification runs",
        "",
        f"Command: `{command}`; machine: {platform.machine()} CPU, {torch.get_num_threads()} torch "
        "threads. Each run's `best.safetensors` as an eye-tracking model (condition 1); "
        "% of explainable IG (IG in bits per fixation).",
        "",
        "| setting | run | OSIE val | Scene test |",
        "|---|---|---|---|",
    ]
    for name, runs in settings.items():
        explained: dict[str, list[float]] = {data: [] for data in evaluations}
        for run in runs:
            model = SumDensity.from_checkpoint(Path(args.runs) / run / "best.safetensors")
            cells = []
            for data_name, (data, refs) in evaluations.items():
                means = score(model, data, refs, run)
                explained[data_name].append(means["% expl. IG"])
                cells.append(f"{means['% expl. IG']:.1f} ({means['IG']:.3f})")
            lines.append(f"| {name} | {run} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
        means = [f"{statistics.mean(v):.1f}" for v in explained.values()]
        lines.append(f"| {name} | mean of {len(runs)} | " + " | ".join(means) + " |")
    atomic_write(args.out, "\n".join([*lines, ""]))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
