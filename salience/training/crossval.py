"""K-fold cross-validation of a training config on its own training images.

Model choices (recipe, epochs, ensembles) are made on the training images, so that a validation
or test split scores the final model once. ``cross_validate`` splits every training source's
images into ``n`` folds (by image, :meth:`salience.data.Dataset.fold`) and runs the config ``n``
times: run k trains on all folds but k and validates on fold k of every source, each source
scored on its own (IG against a center bias fitted on the training folds, % of the explainable
IG against the gold standard of the held-out images). Every image is held out exactly once, so
pooling the runs' per-image scores gives, per validated epoch and source, the mean information
gain over all training images with its standard error over images. Some folds alone (``folds``)
give the same over their held-out images: a cheaper first comparison of two recipes.

The runs live in ``out/fold-<k>/`` (a finished run is kept, an interrupted one resumes), the
pooled table in ``out/crossval.json`` and ``out/crossval.md``, and every held-out image's scores
per source and epoch in ``out/pooled/<source>-epoch-<e>.json``: two recipes cross-validated with
the same folds compare image by image with ``salience eval-diff`` on those files.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from salience.data.dataset import check_fold
from salience.evaluation.evaluate import EvaluationResult, write_results
from salience.io.atomic import atomic_write
from salience.training.config import Config, save_config
from salience.training.loop import Trainer


def fold_config(config: Config, k: int, n: int, out: Path) -> Config:
    """The config of run k: every training source less its fold k, validated on those folds.
    Calibration images (``data.calibration_images``) come out of the run's own training folds,
    as they come out of the training images of a full run."""
    train = [replace(s, fold=(k, n), fold_complement=True) for s in config.data.train]
    held = [replace(s, fold=(k, n), fold_complement=False) for s in config.data.train]
    data = replace(config.data, train=train, val=held)
    return replace(config, data=data, train=replace(config.train, out=str(out / f"fold-{k}")))


def _finished(run: Path, epochs: int) -> bool:
    """Whether the run in ``run`` logged its last epoch."""
    log = run / "log.jsonl"
    if not log.is_file():
        return False
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return bool(records) and records[-1].get("epoch") == epochs


def pool(
    out: Path, n: int, folds: list[int] | None = None
) -> tuple[dict[str, Any], dict[int, dict[str, EvaluationResult]]]:
    """Pool the runs' held-out per-image scores (of ``folds``, default all ``n``): per epoch
    validated in every one of them and per source, the mean IG over images, its standard error
    and % of the explainable IG (the gold standard's IG of each run's held-out images, weighted
    by their number); and per epoch and source every held-out image's scores as one result, for
    paired comparisons of recipes. Fewer folds than ``n`` cover only their images."""
    folds = list(range(n)) if folds is None else folds
    pooled: dict[int, dict[str, dict[str, Any]]] = {}
    runs: dict[int, int] = {}  # epoch -> runs that validated it
    for k in folds:
        for file in sorted((out / f"fold-{k}" / "val").glob("epoch-*.json")):
            epoch = int(file.stem.removeprefix("epoch-"))
            runs[epoch] = runs.get(epoch, 0) + 1
            payload = json.loads(file.read_text())
            for result, source in zip(payload["results"], payload["sources"], strict=True):
                entry = pooled.setdefault(epoch, {}).setdefault(
                    source["label"], {"gold": [], "per_image": {}, "result": result}
                )
                entry["per_image"].update(result["per_image"])
                gold = math.nan if source["gold_IG"] is None else source["gold_IG"]
                entry["gold"] += [gold] * len(result["per_image"])  # the run's, per image
    table: dict[str, Any] = {"folds": n, "pooled_folds": folds, "epochs": {}}
    results: dict[int, dict[str, EvaluationResult]] = {}
    for epoch in sorted(e for e, count in runs.items() if count == len(folds)):
        row: dict[str, Any] = {}
        for label, entry in pooled[epoch].items():
            first = entry["result"]
            results.setdefault(epoch, {})[label] = EvaluationResult(
                first["model"], label, first["mode"], entry["per_image"], first["convention"]
            )
            ig = np.asarray([v["IG"] for v in entry["per_image"].values()])
            se = float(ig.std(ddof=1) / math.sqrt(ig.size))
            gold = float(np.mean(entry["gold"]))
            row[label] = {
                "n_images": int(ig.size),
                "IG": float(ig.mean()),
                "IG_se": se,
                "gold_IG": gold,
                "explained_IG_percent": 100.0 * float(ig.mean()) / gold,
                "explained_IG_percent_se": 100.0 * se / gold,
            }
        row["mean_explained_IG_percent"] = float(
            np.mean([r["explained_IG_percent"] for r in row.values()])
        )
        table["epochs"][epoch] = row
    if table["epochs"]:
        epochs = table["epochs"]
        table["best_epoch"] = max(epochs, key=lambda e: epochs[e]["mean_explained_IG_percent"])
    return table, results


def render(table: dict[str, Any], name: str) -> str:
    """The pooled table as Markdown: per validated epoch, each source's % expl. IG +- SE."""
    epochs = table["epochs"]
    if not epochs:
        return f"# Cross-validation of {name}\n\nNo fold has finished yet.\n"
    sources = [s for s in next(iter(epochs.values())) if s != "mean_explained_IG_percent"]
    pooled = table.get("pooled_folds", list(range(table["folds"])))
    held = (
        "every training image held out once"
        if len(pooled) == table["folds"]
        else f"the images held out by fold {', '.join(str(k + 1) for k in pooled)} only"
    )
    lines = [
        f"# Cross-validation of {name}: {table['folds']} folds by image",
        "",
        f"Per validated epoch, on {held}: % of the explainable "
        "information gain (IG in bits per fixation), +- one standard error over images.",
        "",
        "| epoch | " + " | ".join(sources) + " | mean |",
        "|---|" + "---|" * (len(sources) + 1),
    ]
    for epoch, row in epochs.items():
        cells = [
            f"{row[s]['explained_IG_percent']:.1f} +- {row[s]['explained_IG_percent_se']:.1f} "
            f"({row[s]['IG']:.3f})"
            for s in sources
        ]
        mean = f"{row['mean_explained_IG_percent']:.1f}"
        if epoch == table.get("best_epoch"):
            mean = f"**{mean}**"
        lines.append(f"| {epoch} | " + " | ".join(cells) + f" | {mean} |")
    counts = ", ".join(f"{s} {epochs[table['best_epoch']][s]['n_images']}" for s in sources)
    lines += ["", f"Held-out images: {counts}. Best epoch by the mean: {table['best_epoch']}.", ""]
    return "\n".join(lines)


def cross_validate(
    config: Config,
    n: int,
    out: str | Path,
    folds: list[int] | None = None,
    device: str | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run (or resume) the ``folds`` (default all) of an ``n``-fold cross-validation of
    ``config`` in ``out`` and pool every finished fold (before all are, the table and pooled
    files cover the finished folds' images only); returns the pooled table."""
    runs = list(range(n)) if folds is None else folds
    for k in [0, *runs]:  # 0 checks n itself when no fold is named
        check_fold(k, n)
    console = console or Console(stderr=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for k in runs:
        cfg = fold_config(config, k, n, out)
        run = Path(cfg.train.out)
        if _finished(run, cfg.train.epochs):
            console.print(f"fold {k + 1}/{n}: finished before, kept ({run})")
            continue
        resume = (run / "last.safetensors").is_file()
        console.print(f"fold {k + 1}/{n}: {'resuming' if resume else 'training'} in {run}")
        run.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run / "config.yaml")
        Trainer(cfg, out_dir=run, device=device, resume=resume, console=console).fit()
    done = [k for k in range(n) if _finished(out / f"fold-{k}", config.train.epochs)]
    table, results = pool(out, n, done) if done else ({"folds": n, "epochs": {}}, {})
    for epoch, by_source in results.items():
        for label, result in by_source.items():
            write_results([result], out / "pooled" / f"{label}-epoch-{epoch:03d}.json")
    table["finished_folds"] = done
    atomic_write(out / "crossval.json", json.dumps(table, indent=1))
    atomic_write(out / "crossval.md", render(table, config.name))
    return table
