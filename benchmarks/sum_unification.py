"""SUM's unification experiment: does telling one network the kind of data help?

Four runs of ``configs/sum-lite0.yaml`` (frozen EfficientNet-Lite0, conditioned Mamba
decoder), three trained for the same epochs and a fourth for the first two's optimizer steps:

- **conditioned**: OSIE eye tracking and NUS Scene as condition 1 (eye tracking on natural
  images), OSIE mouse tracking as condition 0;
- **condition ignored**: the same three sources, all given condition 1, so the network cannot
  tell mouse data from eye data;
- **eye tracking alone**: OSIE and NUS Scene eye tracking only (fewer images, so fewer steps);
- **eye tracking alone, as many steps**: the same for 7 epochs, at least the others' steps.

Each run's best checkpoint (by OSIE val IG) is scored as an eye-tracking model (condition 1) on
OSIE val and NUS Scene test, with every metric and the % of explainable information gain (center
bias fitted on the dataset's train split, gold standard as in ``salience eval``), next to the
center bias, the gold standard and the shipped default model. The conditioned model then predicts
every OSIE val image under condition 0 (mouse) and 1 (eye): both maps are scored against OSIE
val's eye fixations and against its mouse-tracking points (with the mouse data's own center bias
and gold standard), and compared with each other (CC between the two maps, their entropies, and
the mean distance of their mass from the image center). Parameters, CPU latency per 800 x 600
image (batch 1) and the training time from each run's log complete the report.

    python benchmarks/sum_unification.py --runs runs   # runs/sum-cond, sum-nocond, sum-eye,
                                                       # sum-eye-steps

writes ``benchmarks/RESULTS_sum.md`` and ``RESULTS_sum.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from salience.data import load_dataset
from salience.data.dataset import Dataset
from salience.evaluation.evaluate import METRICS, evaluate, explainable_information_gain
from salience.io.atomic import atomic_write
from salience.io.images import load_image
from salience.models.base import DensityModel
from salience.models.baselines import fit_references
from salience.models.registry import create_model
from salience.models.sum import SumDensity
from salience.models.sum.blocks import Condition
from salience.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
RUNS = {
    "conditioned": "sum-cond",
    "condition ignored": "sum-nocond",
    "eye tracking alone": "sum-eye",
    "eye tracking alone, as many steps": "sum-eye-steps",
}


def references(train: Dataset, tune: Dataset, evaluated: Dataset) -> dict:
    center_bias, gold, gold_ig = fit_references(train, tune, evaluated)
    return {"center_bias": center_bias, "gold": gold, "gold_ig": gold_ig}


def score(model: DensityModel, data: Dataset, refs: dict, name: str) -> dict[str, float]:
    """All metrics' means of ``model`` on ``data`` and its % of explainable IG."""
    means = dict(evaluate(model, data, center_bias=refs["center_bias"], name=name).means)
    means["% expl. IG"] = explainable_information_gain(means["IG"], 0.0, refs["gold_ig"])
    return means


def map_statistics(conditioned: SumDensity, data: Dataset) -> dict[str, float]:
    """Condition 0 against condition 1 on the same images: CC between the maps, entropies (bits)
    and the mean distance of the density's mass from the image center (in image diagonals)."""
    stats: dict[str, list[float]] = {"CC(mouse, eye)": [], "H mouse": [], "H eye": []}
    stats |= {"center distance mouse": [], "center distance eye": []}
    for stimulus in data:
        image = load_image(stimulus.path)
        densities = {}
        for label, condition in (
            ("mouse", Condition.MOUSE_NATURAL),
            ("eye", Condition.EYE_NATURAL),
        ):
            conditioned.condition = condition
            densities[label] = np.exp(conditioned.log_density(image, image.shape[:2]))
        height, width = image.shape[:2]
        ys, xs = np.mgrid[0:height, 0:width]
        distance = np.hypot(ys + 0.5 - height / 2, xs + 0.5 - width / 2) / np.hypot(height, width)
        for label, d in densities.items():
            stats[f"H {label}"].append(float(-(d * np.log2(np.maximum(d, 1e-300))).sum()))
            stats[f"center distance {label}"].append(float((d * distance).sum()))
        stats["CC(mouse, eye)"].append(
            float(np.corrcoef(densities["mouse"].ravel(), densities["eye"].ravel())[0, 1])
        )
    conditioned.condition = Condition.EYE_NATURAL
    return {key: float(np.mean(values)) for key, values in stats.items()}


def latency_ms(model: DensityModel, images: list[np.ndarray]) -> float:
    """Median milliseconds of ``model.log_density`` per image, after one warm-up."""
    model.log_density(images[0], images[0].shape[:2])
    times = []
    for image in images:
        start = time.perf_counter()
        model.log_density(image, image.shape[:2])
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


@torch.inference_mode()
def vmamba_latency_ms(model: torch.nn.Module, repeats: int = 3) -> float:
    """Median milliseconds of one 256 x 256 forward pass (the paper's input), batch 1."""
    image = torch.rand(1, 3, 256, 256)
    model(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(image)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def training_time(run: Path) -> dict[str, float]:
    """Epochs, summed epoch seconds (the feature cache not included) and the fastest epoch's
    images per second from a run's log.jsonl: on a shared CPU the sum measures the sharing too,
    the fastest epoch what the run needs alone."""
    epochs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line]
    epochs = [e for e in epochs if "epoch" in e and "seconds" in e]
    return {
        "epochs": len(epochs),
        "minutes": sum(e["seconds"] for e in epochs) / 60,
        "images/s": max(e["images_per_second"] for e in epochs),
    }


def metric_table(rows: list[tuple[str, str, dict]]) -> list[str]:
    columns = [*METRICS, "% expl. IG"]
    return [
        "| data | model | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 2) + "|",
        *(
            f"| {data} | {name} | "
            + " | ".join(
                f"{means[c]:.4f}" if c != "% expl. IG" else f"{means[c]:.1f}" for c in columns
            )
            + " |"
            for data, name, means in rows
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default=str(ROOT / "runs"), help="folder of the three runs")
    parser.add_argument("--osie", default=str(ROOT / "../shared/data/osie"))
    parser.add_argument("--nus", default=str(ROOT / "../shared/data/nus-scene"))
    parser.add_argument("--checkpoint", default="best.safetensors")
    parser.add_argument("--limit", type=int, default=None, help="first N images per split")
    parser.add_argument("--latency-images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/RESULTS_sum.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = Path(args.runs)

    osie, nus = load_dataset("osie", args.osie), load_dataset("nus-scene", args.nus)
    mouse = load_dataset("osie-mouse-lab", args.osie)

    def split(data: Dataset, name: str) -> Dataset:
        part = data.split(name)
        return part.subset(part.ids[: args.limit], part.name) if args.limit else part

    evaluations = {
        "OSIE val": (
            split(osie, "val"),
            references(split(osie, "train"), split(osie, "val"), split(osie, "val")),
        ),
        "Scene test": (
            split(nus, "test"),
            references(split(nus, "train"), split(nus, "val"), split(nus, "test")),
        ),
    }
    mouse_val = split(mouse, "val")
    mouse_refs = references(split(mouse, "train"), mouse_val, mouse_val)

    models = {
        name: SumDensity.from_checkpoint(runs / run / args.checkpoint) for name, run in RUNS.items()
    }
    default = Predictor.from_pretrained().model
    rows, report = [], {"eye": {}, "conditions": {}, "maps": {}, "cost": {}}
    for data_name, (data, refs) in evaluations.items():
        for name, model in (
            ("center bias", refs["center_bias"]),
            *((f"SUM-Lite0, {n}", m) for n, m in models.items()),
            ("default model (dense, shipped)", default),
        ):
            means = score(model, data, refs, name)
            rows.append((data_name, name, means))
            report["eye"][f"{data_name} / {name}"] = means
            print(
                data_name, name, f"IG {means['IG']:.4f}", f"{means['% expl. IG']:.1f} %", flush=True
            )
        gold = score(refs["gold"], data, refs, "gold standard")
        rows.append((data_name, "gold standard", gold))
        report["eye"][f"{data_name} / gold standard"] = gold

    conditioned = models["conditioned"]
    condition_rows = []
    for label, condition in (
        ("condition 0 (mouse)", Condition.MOUSE_NATURAL),
        ("condition 1 (eye)", Condition.EYE_NATURAL),
    ):
        conditioned.condition = condition
        for data_name, data, refs in (
            ("OSIE val eye", evaluations["OSIE val"][0], evaluations["OSIE val"][1]),
            ("OSIE val mouse", mouse_val, mouse_refs),
        ):
            means = score(conditioned, data, refs, label)
            condition_rows.append((data_name, label, means))
            report["conditions"][f"{data_name} / {label}"] = means
    conditioned.condition = Condition.EYE_NATURAL
    for name, model in (
        ("condition ignored (condition 1)", models["condition ignored"]),
        ("eye tracking alone (condition 1)", models["eye tracking alone"]),
        ("center bias of the mouse data", mouse_refs["center_bias"]),
        ("gold standard of the mouse data", mouse_refs["gold"]),
    ):
        means = score(model, mouse_val, mouse_refs, name)
        condition_rows.append(("OSIE val mouse", name, means))
        report["conditions"][f"OSIE val mouse / {name}"] = means
    report["maps"] = map_statistics(conditioned, evaluations["OSIE val"][0])

    images = [load_image(s.path) for s in list(evaluations["OSIE val"][0])[: args.latency_images]]
    paper = create_model("sum-vmamba")
    cost_rows = []
    for name, run in RUNS.items():
        model = models[name].model
        cost = {
            "parameters (M)": model.num_parameters() / 1e6,
            "trained (M)": sum(
                p.numel()
                for n, p in model.named_parameters()
                if not n.startswith("encoder.backbone.")
            )
            / 1e6,
            **training_time(runs / run),
        }
        report["cost"][name] = cost
        cost_rows.append((name, cost))
    report["cost"]["latency ms"] = latency_ms(conditioned, images)
    report["cost"]["default latency ms"] = latency_ms(default, images)
    report["cost"]["sum-vmamba parameters (M)"] = paper.num_parameters() / 1e6
    report["cost"]["sum-vmamba latency ms"] = vmamba_latency_ms(paper.eval())

    command = "python " + shlex.join(["benchmarks/sum_unification.py", *sys.argv[1:]])
    maps = report["maps"]
    lines = [
        "# SUM: one network, conditioned on the kind of data",
        "",
        f"Command: `{command}`; machine: {platform.machine()} CPU, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}. Checkpoints: `{args.checkpoint}` of each run.",
        "",
        "## Eye tracking (condition 1), all metrics",
        "",
        *metric_table(rows),
        "",
        "## The conditioned model under condition 0 and 1, against eye and mouse data (OSIE val)",
        "",
        *metric_table(condition_rows),
        "",
        f"The two maps of an image: CC {maps['CC(mouse, eye)']:.3f} between them; entropy "
        f"{maps['H mouse']:.2f} bits (mouse) and {maps['H eye']:.2f} bits (eye); mean distance of "
        f"the mass from the center {maps['center distance mouse']:.4f} (mouse) and "
        f"{maps['center distance eye']:.4f} (eye) image diagonals.",
        "",
        "## Cost",
        "",
        "| run | parameters (M) | trained (M) | epochs | training minutes (cached features) "
        "| images / s, fastest epoch |",
        "|---|---|---|---|---|---|",
        *(
            f"| {name} | {c['parameters (M)']:.2f} | {c['trained (M)']:.2f} | {c['epochs']} "
            f"| {c['minutes']:.1f} | {c['images/s']:.1f} |"
            for name, c in cost_rows
        ),
        "",
        f"CPU latency per 800 x 600 image, batch 1, median of {len(images)}: SUM-Lite0 "
        f"{report['cost']['latency ms']:.0f} ms, the shipped default model "
        f"{report['cost']['default latency ms']:.0f} ms. The paper-size `sum-vmamba` (VMamba-T "
        f"encoder, decoder depths 2-2-9-2) has {report['cost']['sum-vmamba parameters (M)']:.1f} M "
        f"parameters and takes {report['cost']['sum-vmamba latency ms']:.0f} ms per 256 x 256 "
        "image (random weights, chunked scan); it was not trained here: no VMamba ImageNet "
        "weights are reachable, and training it from scratch does not fit this CPU.",
        "",
    ]
    atomic_write(Path(args.out).with_suffix(".json"), json.dumps(report, indent=1))
    atomic_write(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
