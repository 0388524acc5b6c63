"""The ``salience`` command: a thin layer over the library."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from salience.data import DataFormatError, dataset_names, load_dataset
from salience.evaluate import (
    METRICS,
    MODES,
    EvaluationResult,
    evaluate,
    explainable_information_gain,
    write_results,
)
from salience.models.baselines import GoldStandard
from salience.registry import create_model, describe_models

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Predict where people look in images, and score saliency models.",
)
console = Console(stderr=True)
T = TypeVar("T")


def _progress(label: str) -> callable:
    """A wrapper that shows a progress bar while iterating a sequence (only on a terminal)."""

    def wrap(items: Sequence[T]) -> Sequence[T]:
        if not console.is_terminal:
            return items
        return _iterate_with_bar(items, label)

    return wrap


def _iterate_with_bar(items: Sequence[T], label: str):
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


@app.command("models")
def models_command() -> None:
    """List the registered models."""
    table = Table("name", "description")
    for name, description in describe_models().items():
        table.add_row(name, description)
    Console().print(table)


@app.command("eval")
def eval_command(
    dataset: Annotated[str, typer.Option(help=f"Dataset format: {', '.join(dataset_names())}.")],
    root: Annotated[Path, typer.Option(help="Dataset folder (or CSV file for --dataset csv).")],
    split: Annotated[str, typer.Option(help="Split name from split.json, or 'all'.")] = "val",
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Registered model; repeatable.")
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Folder of saliency maps <image id>.npy or .png to score instead."),
    ] = None,
    mode: Annotated[str, typer.Option(help=f"One of {', '.join(MODES)}.")] = "probabilistic",
    out: Annotated[Path | None, typer.Option(help="Write results JSON here (and a CSV).")] = None,
    fit_split: Annotated[
        str, typer.Option(help="Split the center bias and other fitted baselines learn from.")
    ] = "train",
    tune_split: Annotated[
        str, typer.Option(help="Split the gold standard's bandwidth is chosen on.")
    ] = "val",
    sigma_deg: Annotated[
        float, typer.Option(help="Blur of the reference maps, degrees of visual angle.")
    ] = 1.0,
    pretrained: Annotated[bool, typer.Option(help="Load the models' trained weights.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the random parts (AUC-Borji).")] = 0,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Trained weights (.safetensors from 'salience train') for the -m models."
        ),
    ] = None,
) -> None:
    """Score models or a folder of maps on a dataset split: one row per model."""
    if mode not in MODES:
        _fail(f"--mode must be one of {', '.join(MODES)}")
    if not model and predictions is None:
        model = ["center-bias", "gold-standard"]
    try:
        data = load_dataset(dataset, root)
        evaluated = data.split(split)
        fit_data = data.split(fit_split)
    except (DataFormatError, KeyError, FileNotFoundError) as exc:
        _fail(str(exc))
    console.print(
        f"{data.name}: {len(evaluated)} images in split {split!r}, "
        f"{sum(s.n_fixations for s in evaluated)} fixations"
        + (f" ({data.dropped} outside the image dropped)" if data.dropped else "")
    )
    center_bias = create_model("center-bias")
    center_bias.fit(fit_data)

    def tuning_data():
        if tune_split in data.splits or tune_split == "all":
            return data.split(tune_split)
        console.print(f"[yellow]no split {tune_split!r}: gold standard tuned on {split!r}[/yellow]")
        return evaluated

    gold = GoldStandard()
    gold.center_bias = center_bias
    gold.fit_tuning(tuning_data())
    gold.use_geometry_of(evaluated)

    results: list[EvaluationResult] = []
    jobs: list[tuple[str, object]] = [(name, None) for name in (model or [])]
    if predictions is not None:
        jobs.append((str(predictions), predictions))
    for name, folder in jobs:
        try:
            if folder is not None:
                instance = None
            elif name == "center-bias":
                instance = center_bias
            elif name == "gold-standard":
                instance = gold
            else:
                instance = (
                    create_model(name, checkpoint=checkpoint)
                    if checkpoint is not None
                    else create_model(name, pretrained=pretrained)
                )
                if getattr(instance, "needs_fit", False):
                    instance.fit(fit_data)
            result = evaluate(
                instance,
                evaluated,
                center_bias=center_bias,
                mode=mode,
                sigma_deg=sigma_deg,
                seed=seed,
                predictions=folder,
                name=name,
                progress=_progress(name),
            )
        except (KeyError, ValueError, FileNotFoundError, DataFormatError) as exc:
            _fail(f"{name}: {exc}")
        results.append(result)

    ig_gold = float(
        np.mean([gold.information_gain(s, center_bias) for s in evaluated if len(s.scanpaths) >= 2])
    )
    explained = {
        r.model: explainable_information_gain(r.means["IG"], 0.0, ig_gold) for r in results
    }
    table = Table(title=f"{evaluated.name} ({mode} mode, IG vs center bias)")
    table.add_column("model")
    for m in METRICS:
        table.add_column(m, justify="right")
    table.add_column("% expl. IG", justify="right")
    for r in results:
        table.add_row(r.model, *(f"{r.means[m]:.4f}" for m in METRICS), f"{explained[r.model]:.1f}")
    # wide enough that no metric name is folded, even in a narrow terminal or a pipe
    Console(width=max(Console().width, 150)).print(table)
    if out is not None:
        json_path, csv_path = write_results(
            results,
            out,
            extra={
                "split": split,
                "explainable_information_gain_percent": explained,
                "gold_standard_information_gain": ig_gold,
                "gold_standard_params": vars(gold.params),
                "center_bias_params": vars(center_bias.params),
            },
        )
        console.print(f"wrote {json_path} and {csv_path}")


@app.command("train")
def train_command(
    config: Annotated[Path, typer.Argument(help="YAML training config (see configs/).")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Dotted key=value overrides, e.g. optim.lr=3e-4 train.epochs=5."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in the output folder from its last checkpoint.")
    ] = False,
    device: Annotated[
        str | None, typer.Option(help="auto, cpu, cuda or cuda:N (default: the config's).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default: the config's train.out).")
    ] = None,
) -> None:
    """Train a model from a config; checkpoints, config and log.jsonl go to the run folder."""
    from salience.training import ConfigError, Trainer, load_config

    try:
        cfg = load_config(config, overrides or [])
    except (ConfigError, FileNotFoundError) as exc:
        _fail(str(exc))
    try:
        summary = Trainer(cfg, out_dir=out, device=device, resume=resume, console=console).fit()
    except (KeyError, ValueError, FileNotFoundError, DataFormatError) as exc:
        _fail(str(exc))
    if summary["best"] is not None:
        console.print(
            f"best {cfg.eval.metric} {summary['best']:.4f} at epoch {summary['best_epoch']}: "
            f"{Path(summary['out_dir']) / 'best.safetensors'}"
        )


def main() -> None:
    """Entry point for ``python -m salience``."""
    app(sys.argv[1:])
