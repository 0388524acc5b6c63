"""The ``salience`` command: a thin layer over the library."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from salience.data import DataFormatError, dataset_names, load_dataset, parse_dataset_options
from salience.data.conditions import KINDS
from salience.evaluation.evaluate import (
    METRICS,
    MODES,
    EvaluationResult,
    evaluate,
    explainable_information_gain,
    write_results,
)
from salience.evaluation.metrics import CONVENTIONS
from salience.models.baselines import fit_references
from salience.models.registry import (
    describe_models,
    family_of,
    load_checkpoint,
    load_pretrained,
)
from salience.models.sampler import DEFAULT_IMAGE_SPAN_DEGREES

if TYPE_CHECKING:
    from salience.predictor import Predictor
    from salience.training.config import Config

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Predict where people look in images, and score saliency models.",
)
console = Console(stderr=True, soft_wrap=True)  # long paths stay whole
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


# -- options shared by the commands that run a model (declared once) ----------------------------

ModelOption = Annotated[
    str, typer.Option(help="Shipped model to run (see 'salience models'; default: default).")
]
CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        help="Run trained weights instead of --model: a .safetensors file written by "
        "'salience train' or 'salience export' (any model family)."
    ),
]
DeviceOption = Annotated[
    str | None, typer.Option(help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu).")
]
ImageDegreesOption = Annotated[
    float,
    typer.Option(
        help="Longer side of the image in degrees of visual angle (viewing geometry of the "
        "fixations' and scanpaths' distances; default: as the training images were seen)."
    ),
]
BackendOption = Annotated[
    str,
    typer.Option(
        help="What runs the network: torch, or onnxruntime (the model's ONNX graph, built and "
        "cached at first use; needs the onnx extra).",
    ),
]
ConditionOption = Annotated[
    str | None,
    typer.Option(
        help=f"The kind of data to predict for: {', '.join(KINDS)} (mouse tracking, eye "
        "tracking on natural images, user interfaces); the model must have been trained on "
        "it (default: eye)."
    ),
]


def _predictor(
    model: str,
    checkpoint: Path | None,
    device: str | None,
    condition: str | None = None,
    backend: str = "torch",
    **kwargs,
) -> Predictor:
    """The Predictor of a shipped model or of trained weights; a clear error otherwise."""
    from salience.predictor import Predictor

    if device is not None:
        import torch

        try:
            kind = torch.device(device).type
            torch.empty(1, device=device)
        except (RuntimeError, ValueError) as exc:
            _fail(f"--device {device}: not a usable torch device ({str(exc).splitlines()[0]})")
        if kind == "meta":
            _fail("--device meta holds no data: choose cpu, cuda, cuda:N or mps")
    try:
        if checkpoint is not None:
            return Predictor.from_checkpoint(checkpoint, device, condition, backend, **kwargs)
        return Predictor.from_pretrained(model, device, condition, backend, **kwargs)
    except (
        ImportError,
        KeyError,
        ValueError,
        FileNotFoundError,
        RuntimeError,
        TypeError,
        NotImplementedError,
    ) as exc:
        _fail(str(exc).strip("'\""))


_MODEL_OPTIONS = (
    inspect.Parameter(
        "model", inspect.Parameter.KEYWORD_ONLY, default="default", annotation=ModelOption
    ),
    inspect.Parameter(
        "checkpoint", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=CheckpointOption
    ),
    inspect.Parameter(
        "device", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=DeviceOption
    ),
    inspect.Parameter(
        "image_degrees",
        inspect.Parameter.KEYWORD_ONLY,
        default=DEFAULT_IMAGE_SPAN_DEGREES,
        annotation=ImageDegreesOption,
    ),
    inspect.Parameter(
        "condition", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConditionOption
    ),
    inspect.Parameter(
        "backend", inspect.Parameter.KEYWORD_ONLY, default="torch", annotation=BackendOption
    ),
)


@dataclass(frozen=True)
class ModelChoice:
    """The options that choose and run the model, as one value (see :func:`runs_model`)."""

    model: str
    checkpoint: Path | None
    device: str | None
    image_degrees: float
    condition: str | None
    backend: str

    def predictor(self, **options: object) -> Predictor:
        """The chosen model's Predictor (``options``: its keyword options); a clear error
        otherwise."""
        return _predictor(
            self.model,
            self.checkpoint,
            self.device,
            self.condition,
            self.backend,
            image_degrees=self.image_degrees,
            **options,
        )


def runs_model(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the options that choose and run the model (--model, --checkpoint,
    --device, --image-degrees, --condition, --backend), declared once so that every command
    offers them alike; the command takes them as one ``choice: ModelChoice``."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "choice"]

    @functools.wraps(command)
    def run(**options: object) -> None:
        chosen = {p.name: options.pop(p.name) for p in _MODEL_OPTIONS}
        command(**options, choice=ModelChoice(**chosen))

    run.__signature__ = signature.replace(parameters=[*own, *_MODEL_OPTIONS])
    run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}
    return run


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
    seed: Annotated[int, typer.Option(help="Seed of the random parts (AUC-Borji).")] = 0,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Also score trained weights: a .safetensors file from 'salience train' or "
            "'salience export' (one more row)."
        ),
    ] = None,
    condition: ConditionOption = None,
    pixels_per_degree: Annotated[
        float | None,
        typer.Option(
            help="Pixels per degree of visual angle in the experiment: needed for --dataset csv, "
            "overrides the known geometry of the others."
        ),
    ] = None,
    dataset_option: Annotated[
        list[str] | None,
        typer.Option(
            help="A reader's own option as KEY=VALUE; repeatable. csv: images (folder), kind "
            "(eye or mouse); salicon: annotations (JSON file), images; mit1003: "
            "include_initial_fixation (true/false)."
        ),
    ] = None,
    convention: Annotated[
        str,
        typer.Option(
            help="Metric definitions: pysaliency (Tübingen benchmark) or mit (the MIT "
            "benchmark's MATLAB code, for comparison with tables made with it)."
        ),
    ] = "pysaliency",
    backend: Annotated[
        str,
        typer.Option(
            help="What runs the neural models and --checkpoint: torch, or onnxruntime (an .onnx "
            "--checkpoint, e.g. an int8 copy from 'salience export --int8', runs as it is)."
        ),
    ] = "torch",
    min_observers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Score only the images that at least this many observers viewed (e.g. 5 for "
            "a gold standard worth the name on data with few viewers per image).",
        ),
    ] = 1,
    tiling: Annotated[
        bool,
        typer.Option(
            help="Predict tall and wide images viewport by viewport, as 'salience predict' "
            "does (--no-tiling: whole, squeezed into the network's input)."
        ),
    ] = True,
) -> None:
    """Score models or a folder of maps on a dataset split: one row per model."""
    if mode not in MODES:
        _fail(f"--mode must be one of {', '.join(MODES)}")
    if convention not in CONVENTIONS:
        _fail(f"--convention must be one of {', '.join(CONVENTIONS)}")
    if out is not None and out.is_dir():
        _fail(f"{out}: is a folder; --out names the results file to write (e.g. results.json)")
    if not model and predictions is None and checkpoint is None:
        model = ["center-bias", "gold-standard"]
    try:
        options = parse_dataset_options(dataset, dataset_option or [])
        data = load_dataset(dataset, root, pixels_per_degree, **options)
        evaluated = data.split(split)
        if min_observers > 1:
            kept = [s.id for s in evaluated if len(s.scanpaths) >= min_observers]
            evaluated = evaluated.subset(kept, f"{evaluated.name} (>= {min_observers} observers)")
            if not kept:
                raise ValueError(f"no image of split {split!r} has {min_observers} observers")
        fit_data = data.split(fit_split)
    except (DataFormatError, ValueError, KeyError, FileNotFoundError) as exc:
        _fail(str(exc).strip("'\""))
    console.print(
        f"{data.name}: {len(evaluated)} images in split {split!r}, "
        f"{sum(s.n_fixations for s in evaluated)} fixations"
        + (f" ({data.dropped} outside the image dropped)" if data.dropped else "")
    )

    def tuning_data():
        if tune_split in data.splits or tune_split == "all":
            return data.split(tune_split)
        console.print(f"[yellow]no split {tune_split!r}: gold standard tuned on {split!r}[/yellow]")
        return evaluated

    try:
        center_bias, gold, ig_gold = fit_references(fit_data, tuning_data(), evaluated)
    except ValueError as exc:
        _fail(f"split {fit_split!r}: {exc}")
    if not gold.tuned:
        console.print(
            "[yellow]no image with two observers to tune the gold standard on: it keeps its "
            "default bandwidth[/yellow]"
        )
    if ig_gold is None:  # no image with two observers: nothing is explainable
        ig_gold = float("nan")

    results: list[EvaluationResult] = []
    jobs: list[tuple[str, object]] = [(name, None) for name in (model or [])]
    if checkpoint is not None:
        jobs.append((str(checkpoint), checkpoint))
    if predictions is not None:
        jobs.append((str(predictions), predictions))
    for name, source in jobs:
        folder = source if source is predictions else None
        try:
            if folder is not None:
                instance = None
            elif source is not None:
                instance = _density_model(source, condition, backend, load_checkpoint)
                name = f"{instance.name} ({Path(source).name})"  # the variant, and which file
            elif name == "center-bias":
                instance = center_bias
            elif name == "gold-standard":
                instance = gold
            else:
                instance = _density_model(name, condition, backend, load_pretrained)
                if getattr(instance, "needs_fit", False):
                    instance.fit(fit_data)
            if tiling and instance is not None and instance.needs_image:
                # tall and wide images viewport by viewport, as 'salience predict' does them
                from salience.models.tiling import TiledDensity

                instance = TiledDensity(instance)
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
                convention=convention,
            )
        except (ImportError, KeyError, ValueError, FileNotFoundError, DataFormatError) as exc:
            _fail(f"{name}: {exc}")
        results.append(result)

    # The gold standard's IG is the pysaliency one: the % scale exists in that convention only.
    explained = {
        r.model: explainable_information_gain(r.means["IG"], 0.0, ig_gold)
        if convention == "pysaliency"
        else None
        for r in results
    }
    table = Table(title=f"{evaluated.name} ({mode} mode, {convention} metrics, IG vs center bias)")
    table.add_column("model")
    for m in METRICS:
        table.add_column(m, justify="right")
    table.add_column("% expl. IG", justify="right")
    for r in results:
        share = explained[r.model]
        table.add_row(
            r.model,
            *(f"{r.means[m]:.4f}" for m in METRICS),
            "n/a" if share is None else f"{share:.1f}",
        )
    # wide enough that no metric name is folded, even in a narrow terminal or a pipe
    Console(width=max(Console().width, 150)).print(table)
    if out is not None:
        extra = {
            "split": split,
            "convention": convention,
            "explainable_information_gain_percent": explained,
            "gold_standard_information_gain": ig_gold if convention == "pysaliency" else None,
            "gold_standard_params": vars(gold.params),
            "center_bias_params": vars(center_bias.params),
        }
        try:
            json_path, csv_path = write_results(results, out, extra=extra)
        except OSError as exc:
            _fail(f"{out}: cannot write the results there ({exc.strerror or exc})")
        console.print(f"wrote {json_path} and {csv_path}")


def _density_model(source, condition: str | None, backend: str, load_torch):
    """The density model of a registered name or a checkpoint, run by ``backend`` (ONNX Runtime
    for neural models only; baselines run as they are)."""
    from salience.predictor import uses_onnxruntime

    if not uses_onnxruntime(backend) or (isinstance(source, str) and family_of(source).baseline):
        return load_torch(source, condition)
    from salience.models.onnx import load_onnx

    return load_onnx(source, condition)


@app.command("eval-diff")
def eval_diff_command(
    a: Annotated[Path, typer.Argument(help="Results of model A (salience eval --out).")],
    b: Annotated[Path, typer.Argument(help="Results of model B, on the same images.")],
    model_a: Annotated[
        str | None, typer.Option(help="A's row in its file (when it holds several).")
    ] = None,
    model_b: Annotated[
        str | None, typer.Option(help="B's row in its file (when it holds several).")
    ] = None,
    level: Annotated[
        float, typer.Option(min=0.5, max=0.999, help="Confidence of the bootstrap interval.")
    ] = 0.95,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap draws.")] = 0,
    common: Annotated[
        bool,
        typer.Option(
            help="Compare on the images both score (e.g. one cross-validation fold against "
            "all); without it, different images are an error."
        ),
    ] = False,
) -> None:
    """Is B better than A on these images? Per metric the mean paired difference B - A, its
    standard error over images and a bootstrap interval; '*' marks an interval that leaves
    out 0."""
    from salience.evaluation.paired import paired_differences, read_per_image

    try:
        name_a, per_a = read_per_image(a, model_a)
        name_b, per_b = read_per_image(b, model_b)
        scored = [m for m in METRICS if all(m in v for v in [*per_a.values(), *per_b.values()])]
        found = paired_differences(per_a, per_b, scored, level, seed=seed, common=common)
    except ValueError as exc:
        _fail(str(exc))
    table = Table(
        "metric", "B - A", "s.e.", f"{level:.0%} interval", "images",
        title=f"B: {name_b} ({b.name})  minus  A: {name_a} ({a.name})",
    )  # fmt: skip
    for d in found:
        mark = " *" if d.clear else ""
        table.add_row(
            d.metric,
            f"{d.mean:+.4f}{mark}",
            f"{d.se:.4f}",
            f"[{d.low:+.4f}, {d.high:+.4f}]",
            str(d.n),
        )
    Console(width=max(Console().width, 100)).print(table)


ConfigArg = Annotated[Path, typer.Argument(help="YAML training config (see configs/).")]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(help="Dotted key=value overrides, e.g. optim.lr=3e-4 train.epochs=5."),
]
TrainDeviceOption = Annotated[
    str | None, typer.Option(help="auto, cpu, cuda or cuda:N (default: the config's).")
]


def _training_config(path: Path, overrides: list[str] | None) -> Config:
    """The config at ``path`` with ``overrides`` applied; a clear error if it does not fit."""
    from salience.training import ConfigError, load_config

    try:
        return load_config(path, overrides or [])
    except (ConfigError, FileNotFoundError) as exc:
        _fail(str(exc))


@app.command("train")
def train_command(
    config: ConfigArg,
    overrides: OverridesArg = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in the output folder from its last checkpoint.")
    ] = False,
    device: TrainDeviceOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default: the config's train.out).")
    ] = None,
) -> None:
    """Train a model from a config; checkpoints, config and log.jsonl go to the run folder."""
    from salience.training import Trainer

    cfg = _training_config(config, overrides)
    try:
        summary = Trainer(cfg, out_dir=out, device=device, resume=resume, console=console).fit()
    except (KeyError, ValueError, FileNotFoundError, DataFormatError) as exc:
        _fail(str(exc))
    if summary["best"] is not None and summary["main"]:
        console.print(
            f"best {cfg.eval.metric} {summary['best']:.4f} at epoch {summary['best_epoch']}: "
            f"{Path(summary['out_dir']) / 'best.safetensors'}"
        )


@app.command("cv")
def cv_command(
    config: ConfigArg,
    overrides: OverridesArg = None,
    folds: Annotated[int, typer.Option(min=2, help="Folds (by image) of the training images.")] = 5,
    fold: Annotated[
        list[int] | None,
        typer.Option(help="Run only this fold (from 0; repeat for several); default all."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder of the runs (default: the config's train.out + -cv)."),
    ] = None,
    device: TrainDeviceOption = None,
) -> None:
    """Cross-validate a config on its training images: one run per fold, held-out scores pooled
    (crossval.md and crossval.json); finished folds are kept, an interrupted one resumes."""
    from salience.training.crossval import cross_validate

    cfg = _training_config(config, overrides)
    out = out or Path(f"{cfg.train.out}-cv")
    try:
        table = cross_validate(cfg, folds, out, fold, device=device, console=console)
    except (KeyError, ValueError, FileNotFoundError, DataFormatError) as exc:
        _fail(str(exc))
    done = len(table["finished_folds"])
    if table["epochs"]:
        console.print((out / "crossval.md").read_text())
    if done < folds:
        console.print(f"{done} of {folds} folds finished: the pooled figures cover theirs ({out})")


@app.command("predict")
@runs_model
def predict_command(
    inputs: Annotated[
        list[str], typer.Argument(help="Image files, folders of images, or glob patterns.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("salience-out"),
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            help="Images per forward pass (on a CPU with --maps density or none, 1 is faster).",
        ),
    ] = 8,
    colormap: Annotated[str, typer.Option(help="Colormap of the overlay (matplotlib).")] = "jet",
    opacity: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Overlay opacity at the most attended areas.")
    ] = 0.5,
    fixations: Annotated[int, typer.Option(min=1, help="Predicted fixations per image.")] = 10,
    scanpaths: Annotated[
        int, typer.Option(min=0, help="Scanpaths sampled per image (0: none).")
    ] = 1,
    scanpath_length: Annotated[int, typer.Option(min=1, help="Fixations per scanpath.")] = 10,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the sampled scanpaths.")] = 0,
    overwrite: Annotated[
        bool, typer.Option(help="Predict again images whose outputs already exist.")
    ] = False,
    windows: Annotated[
        bool,
        typer.Option(
            help="Also one map per viewing-time window (0-1 s, 1-2 s, 2-3 s): "
            "<name>_window_0-1s_density.npy, _heatmap.png, _overlay.png, ..."
        ),
    ] = False,
    maps: Annotated[
        str,
        typer.Option(
            help="Which map files to write, comma-separated: density, heatmap, overlay (or "
            "none: only the fixations JSON and the summary, the fastest).",
        ),
    ] = "density,heatmap,overlay",
    engine: Annotated[
        str,
        typer.Option(
            help="local: this process; ray: a Ray cluster (needs the 'ray' extra; a text or "
            "Parquet file of paths may then stand among the inputs)."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="--engine ray: the cluster to join (default: start a local one)."),
    ] = None,
    num_workers: Annotated[
        int, typer.Option(min=1, help="--engine ray: model replicas (actors), one model each.")
    ] = 1,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="files: the files above; parquet: also predictions.parquet, a row per image "
            "(fixations, scanpaths, summary figures, the density's file name).",
        ),
    ] = "files",
    *,
    choice: ModelChoice,
) -> None:
    """Heatmap, overlay, density, likely first fixations and scanpaths of each image.

    Writes <name>_density.npy, <name>_heatmap.png, <name>_overlay.png (those --maps names),
    <name>_fixations.json and summary.csv (with --windows also the maps of each viewing-time
    window). Unreadable images are reported and skipped; re-running finishes an interrupted
    job, and redoes images made with other settings.
    """
    from salience.analysis.render import check_colormap
    from salience.batch import BatchError, PredictJob, collect_inputs, output_lock, run_predict

    if engine not in ("local", "ray"):
        _fail(f"--engine must be local or ray, got {engine!r}")
    if output_format not in ("files", "parquet"):
        _fail(f"--format must be files or parquet, got {output_format!r}")
    if engine == "local" and (address is not None or num_workers != 1):
        _fail("--address and --num-workers are options of --engine ray")
    try:
        if engine == "ray":
            import ray.exceptions

            from salience.ray_engine import list_inputs as collect_inputs
        if output_format == "parquet":
            import pyarrow  # noqa: F401
    except ImportError:
        _fail(f"--engine {engine} --format {output_format} needs: pip install 'salience[ray]'")
    try:
        paths, problems = collect_inputs(inputs, exclude=out)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    for _, reason in problems:
        console.print(f"[red]failed:[/red] {reason}")
    if not paths:
        _fail("no images to predict")
    try:
        check_colormap(colormap)
        chosen = () if maps.strip() == "none" else tuple(m.strip() for m in maps.split(","))
        PredictJob(out, maps=chosen)  # an unknown map name: an error before any work
    except ValueError as exc:
        _fail(str(exc))
    options = {"n_fixations": fixations, "scanpath_length": scanpath_length}
    predictor = choice.predictor(**options)
    if windows:
        try:
            predictor.windows  # noqa: B018 (loads the window readouts: an error before any work)
        except (ValueError, FileNotFoundError) as exc:
            _fail(str(exc))
    columns = (TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as bar:
        task = bar.add_task("predict", total=len(paths))

        def advance(item) -> None:
            bar.advance(task)
            if item.status == "failed":  # errors name the file; a writing error may not
                said = (
                    item.error if str(item.image) in item.error else f"{item.image}: {item.error}"
                )
                console.print(f"[red]failed:[/red] {said}")

        job = PredictJob(
            out, batch_size, colormap, opacity, overwrite, scanpaths, seed, windows, chosen
        )
        if engine == "ray":
            from salience.ray_engine import PredictorSource, run_ray_predict

            # what each Ray actor loads: the same model, weights found by absolute path
            source = PredictorSource(
                choice.model,
                None if choice.checkpoint is None else str(choice.checkpoint.resolve()),
                choice.device,
                choice.condition,
                choice.backend,
                options | {"image_degrees": choice.image_degrees},
            )
            gpus = 1.0 if choice.device is not None and choice.device.startswith("cuda") else 0.0
            try:
                with output_lock(out):  # one job per folder, as the local path
                    results = run_ray_predict(
                        source.load,
                        paths,
                        replace(job, out_dir=out.resolve()),  # as the actors see it
                        advance,
                        num_workers=num_workers,
                        address=address,
                        parquet=output_format == "parquet",
                        predictor=predictor,
                        gpus_per_worker=gpus,
                    )
            except ConnectionError as exc:
                _fail(f"--address {address}: {exc}")
            except BatchError as exc:
                _fail(str(exc))
            except ray.exceptions.RayError as exc:  # e.g. a worker that cannot load the model
                _fail(f"the Ray job failed: {str(exc).strip()[-2000:]}")
        else:
            try:
                results = run_predict(predictor, paths, job, advance, failed_inputs=problems)
            except BatchError as exc:
                _fail(str(exc))
            except OSError as exc:  # the output folder: a file, read-only, on a full disk
                _fail(f"{out}: cannot write the outputs there ({exc.strerror or exc})")
            problems = []  # they are rows of the summary now
            if output_format == "parquet":
                _parquet_from_files(results, out)
    counts = {s: sum(r.status == s for r in results) for s in ("written", "exists", "failed")}
    counts["failed"] += len(problems)
    console.print(
        f"{counts['written']} predicted, {counts['exists']} already done, "
        f"{counts['failed']} failed; outputs and summary.csv in {out}"
    )
    _note_tiled(results, predictor)
    if counts["failed"]:
        raise typer.Exit(code=1)


def _note_tiled(results, predictor) -> None:
    """Say which images were predicted viewport by viewport (tall pages, wide panoramas), and
    that web pages have their own condition where the model was trained on one (a screenshot
    is never guessed at)."""
    tiled = [r for r in results if r.values.get("viewports")]
    if not tiled:
        return
    names = ", ".join(r.name for r in tiled[:3]) + (", ..." if len(tiled) > 3 else "")
    console.print(
        f"{len(tiled)} tall or wide image(s) predicted viewport by viewport and joined ({names}; "
        "'tiled' in their _fixations.json, 'viewports' in summary.csv)"
    )
    trained = [c.kind for c in getattr(predictor.model, "trained", ())]
    if predictor.condition is not None and predictor.condition.kind == "eye" and "ui" in trained:
        console.print(
            "note: predicted as natural images (condition eye); for screenshots of web pages "
            "or apps use --condition ui"
        )


def _parquet_from_files(results, out: Path) -> None:
    """predictions.parquet of a local job, from its summary rows and fixations files."""
    import json

    from salience.prediction_table import PredictionTable, table_row

    rows = []
    for result in results:
        record = None
        if result.status != "failed":
            record = json.loads((out / f"{result.name}_fixations.json").read_text())
        rows.append(table_row(result.row(), record))
    with PredictionTable(out / "predictions.parquet") as table:
        table.add(rows)


def _regions(region: list[str] | None, regions: Path | None, default_grid: bool = False):
    """Regions from --region texts and a --regions file; a 3 x 3 grid if allowed and none."""
    from salience.analysis.regions import (
        Region,
        RegionError,
        check_regions,
        parse_region,
        read_regions,
    )

    try:
        found = [parse_region(text) for text in region or []]
        if regions is not None:
            found += list(read_regions(regions))
        if not found and default_grid:
            rows, cols = ("top", "middle", "bottom"), ("left", "center", "right")
            found = [
                Region.rect(f"{r}-{c}", j / 3, i / 3, 1 / 3, 1 / 3, normalized=True)
                for i, r in enumerate(rows)
                for j, c in enumerate(cols)
            ]
        return check_regions(found)
    except (RegionError, OSError) as exc:
        _fail(str(exc))


def _predict_one(predictor, image: Path, scanpaths: int = 0, seed: int = 0):
    """The image's Prediction (its ``image`` the uint8 RGB); an unreadable image is a clear
    error."""
    (item,) = predictor.predict_many([image], scanpaths=scanpaths, seed=seed)
    if item.prediction is None:
        _fail(item.error)
    return item.prediction


_REGION_OPTION = Annotated[
    list[str] | None,
    typer.Option(
        "--region",
        help="NAME:x,y,w,h rectangle (pixels, or fractions of width/height; suffix px or %); "
        "repeatable.",
    ),
]
_REGIONS_OPTION = Annotated[
    Path | None,
    typer.Option(
        "--regions", help="JSON file of rectangles and polygons (see salience.analysis.regions)."
    ),
]


@app.command("aoi")
@runs_model
def aoi_command(
    image: Annotated[Path, typer.Argument(help="The image (design, page, photo).")],
    region: _REGION_OPTION = None,
    regions: _REGIONS_OPTION = None,
    k: Annotated[int, typer.Option(min=1, help="The first k fixations count as 'seen early'.")] = 3,
    samples: Annotated[int, typer.Option(min=10, help="Scanpaths sampled from the model.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the sampled scanpaths.")] = 0,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("salience-out"),
    *,
    choice: ModelChoice,
) -> None:
    """Share of attention per region, and the chance each is fixated within the first k.

    Writes <name>_aoi.json, <name>_aoi.csv, <name>_aoi.png (the overlay with the regions) and
    the four files of salience predict.
    """
    from salience.analysis.aoi import analyze
    from salience.analysis.render import draw_regions, overlay, save_png
    from salience.batch import write_prediction

    chosen = _regions(region, regions)
    predictor = choice.predictor()
    prediction = _predict_one(predictor, image)
    array = prediction.image
    from salience.analysis.regions import RegionError

    try:
        report = analyze(
            prediction.density,
            chosen,
            predictor.sampler,
            prediction.pixels_per_degree,
            k,
            samples,
            seed,
        )
    except (RegionError, ValueError) as exc:
        _fail(str(exc))
    name = image.stem
    report.write(out / f"{name}_aoi.json", out / f"{name}_aoi.csv")
    write_prediction(prediction, out, name)
    labels = [f"{r.region} {100 * r.share:.0f}%" for r in report.rows]
    outlines = [reg.vertices(prediction.size) for reg in chosen]
    save_png(
        out / f"{name}_aoi.png", draw_regions(overlay(array, prediction.density), outlines, labels)
    )
    table = Table(title=f"{image.name}: attention per region ({samples} sampled scanpaths)")
    for column in (
        "region",
        "area",
        "share",
        "lift",
        f"P(in first {k})",
        "95 % interval",
        "mean first #",
    ):
        table.add_column(column, justify="left" if column == "region" else "right")
    for r in report.rows:
        table.add_row(
            r.region,
            f"{100 * r.area_fraction:.1f} %",
            f"{100 * r.share:.1f} %",
            f"{r.lift:.2f}",
            f"{100 * r.p_first_k:.1f} %",
            f"{100 * r.p_first_k_low:.1f}-{100 * r.p_first_k_high:.1f} %",
            "-" if r.mean_first_index is None else f"{r.mean_first_index:.2f}",
        )
    Console(width=max(Console().width, 120)).print(table)
    console.print(f"wrote {out / (name + '_aoi.json')}, .csv and .png")


@app.command("scanpath")
@runs_model
def scanpath_command(
    image: Annotated[Path, typer.Argument(help="The image (design, page, photo).")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="The gaze plot PNG to write (default: salience-out/<name>_scanpath.png)."
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Fixations in the scanpath.")] = 10,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the sampled scanpath.")] = 0,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the scanpath and likely fixations as JSON here."),
    ] = None,
    *,
    choice: ModelChoice,
) -> None:
    """A predicted scanpath as a numbered gaze plot over the image.

    One scanpath is sampled from the model's density (reproducible by --seed): circles sized
    by duration, numbered in viewing order, joined by lines. Prints its fixations.
    """
    from salience.analysis.render import gaze_plot, save_png
    from salience.io.atomic import atomic_write

    predictor = choice.predictor(scanpath_length=n)
    prediction = _predict_one(predictor, image, scanpaths=1, seed=seed)
    array = prediction.image
    (path,) = prediction.scanpaths
    out = Path("salience-out") / f"{image.stem}_scanpath.png" if out is None else out
    target = out
    try:
        save_png(out, gaze_plot(array, path.points, path.duration))
        if json_path is not None:
            target = json_path
            atomic_write(json_path, prediction.fixations_json() + "\n")
    except OSError as exc:
        _fail(f"cannot write {target}: {exc.strerror or exc}")
    table = Table(title=f"{image.name}: predicted scanpath (seed {seed})")
    for column in ("order", "x", "y", "duration (s)"):
        table.add_column(column, justify="right")
    for i, (x, y, duration) in enumerate(zip(path.x, path.y, path.duration, strict=True)):
        table.add_row(str(i + 1), f"{x:.1f}", f"{y:.1f}", f"{duration:.3f}")
    Console().print(table)
    console.print(f"wrote {out}" + (f" and {json_path}" if json_path is not None else ""))


@app.command("compare")
@runs_model
def compare_command(
    a: Annotated[Path, typer.Argument(help="Design A.")],
    b: Annotated[Path, typer.Argument(help="Design B.")],
    region: _REGION_OPTION = None,
    regions: _REGIONS_OPTION = None,
    k: Annotated[int, typer.Option(min=1, help="The first k fixations count as 'seen early'.")] = 3,
    samples: Annotated[int, typer.Option(min=10, help="Scanpaths sampled per design.")] = 1000,
    seed: Annotated[
        int, typer.Option(help="Seed of the sampled scanpaths (shared by A and B).")
    ] = 0,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("salience-out"),
    *,
    choice: ModelChoice,
) -> None:
    """Two designs side by side: per-region deltas (B - A) and a difference map.

    Without regions, a 3 x 3 grid of the image is compared. Writes compare.json, compare.csv,
    compare_side_by_side.png (A, B, difference) and compare_difference.png.
    """
    from salience.analysis.aoi import compare, resample_density
    from salience.analysis.regions import RegionError
    from salience.analysis.render import (
        difference_map,
        draw_regions,
        overlay,
        save_png,
        side_by_side,
    )

    chosen = _regions(region, regions, default_grid=True)
    predictor = choice.predictor()
    pred_a, pred_b = _predict_one(predictor, a), _predict_one(predictor, b)
    try:
        report = compare(
            pred_a.density,
            pred_b.density,
            chosen,
            predictor.sampler,
            pred_a.pixels_per_degree,
            pred_b.pixels_per_degree,
            k,
            samples,
            seed,
        )
    except (RegionError, ValueError) as exc:
        _fail(str(exc))
    report.write(out / "compare.json", out / "compare.csv")
    common = report.difference.shape
    difference = difference_map(
        resample_density(pred_a.density, common), resample_density(pred_b.density, common)
    )
    save_png(out / "compare_difference.png", difference)
    panels = []
    for pred, rows in ((pred_a, report.a.rows), (pred_b, report.b.rows)):
        labels = [f"{r.region} {100 * r.share:.0f}%" for r in rows]
        outlines = [reg.vertices(pred.size) for reg in chosen]
        panels.append(draw_regions(overlay(pred.image, pred.density), outlines, labels))
    save_png(
        out / "compare_side_by_side.png",
        side_by_side([*panels, difference], labels=[f"A: {a.name}", f"B: {b.name}", "B - A"]),
    )
    table = Table(title=f"B ({b.name}) - A ({a.name}), {samples} sampled scanpaths each")
    for column in (
        "region",
        "share A",
        "share B",
        "delta",
        f"P(first {k}) A",
        f"P(first {k}) B",
        "delta",
    ):
        table.add_column(column, justify="left" if column == "region" else "right")
    for d in report.deltas():
        table.add_row(
            d["region"],
            f"{100 * d['share_a']:.1f} %",
            f"{100 * d['share_b']:.1f} %",
            f"{100 * d['share_delta']:+.1f}",
            f"{100 * d['p_first_k_a']:.1f} %",
            f"{100 * d['p_first_k_b']:.1f} %",
            f"{100 * d['p_first_k_delta']:+.1f}",
        )
    Console(width=max(Console().width, 120)).print(table)
    console.print(f"wrote {out / 'compare.json'}, compare.csv and the images in {out}")


@app.command("export")
def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="Weights from 'salience train'.")],
    out: Annotated[Path, typer.Argument(help="The .safetensors file to write.")],
    fp16: Annotated[bool, typer.Option(help="Store floating-point weights as float16.")] = True,
    sampler_dataset: Annotated[
        str | None,
        typer.Option(help="Fit the scanpath sampler on this dataset (e.g. osie) and store it."),
    ] = None,
    sampler_root: Annotated[Path | None, typer.Option(help="That dataset's folder.")] = None,
    sampler_split: Annotated[str, typer.Option(help="That dataset's split.")] = "train",
    readouts_only: Annotated[
        bool,
        typer.Option(
            help="Only a dense model's readouts, with the digest of their backbone (window "
            "readouts that run on the shipped default model's backbone)."
        ),
    ] = False,
    flip_average: Annotated[
        bool | None,
        typer.Option(
            help="Set a dense model's or a SalTR's test-time mirror averaging (the mixture of "
            "the densities of the image and its mirror image; twice the network's work); "
            "default: as trained."
        ),
    ] = None,
    condition: Annotated[
        str | None,
        typer.Option(
            help="With --readouts-only: the kind of data the readouts were trained on, so that "
            "the file, put beside the base model as <stem>-<kind>.safetensors, adds that "
            f"condition to it ({', '.join(KINDS)})."
        ),
    ] = None,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="safetensors, or onnx: the dense model as an ONNX graph for the onnxruntime "
            "backend (CHECKPOINT may then be a shipped model's name, e.g. default).",
        ),
    ] = "safetensors",
    windows: Annotated[
        Path | None,
        typer.Option(
            help="With --format onnx: window readouts (e.g. salience/weights/windows."
            "safetensors) to run on the model's backbone in the same graph."
        ),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            help="With --format onnx: also write OUT's int8 copy (.int8.onnx), calibrated on "
            "--calibration-root's train images."
        ),
    ] = False,
    calibration_dataset: Annotated[
        str, typer.Option(help="Dataset format of the int8 calibration images.")
    ] = "osie",
    calibration_root: Annotated[
        Path | None, typer.Option(help="The int8 calibration dataset's folder.")
    ] = None,
    calibration_images: Annotated[
        int, typer.Option(min=1, help="Calibration images (the split's first, in order).")
    ] = 100,
) -> None:
    """Write trained weights as a file to ship (fp16, with the scanpath sampler's parameters),
    or as an ONNX graph (--format onnx)."""
    import json

    if format not in ("safetensors", "onnx"):
        _fail(f"--format must be safetensors or onnx, got {format!r}")
    if format == "onnx":
        _export_onnx(
            checkpoint,
            out,
            windows,
            int8,
            calibration_dataset,
            calibration_root,
            calibration_images,
        )
        return
    import torch

    from salience.models.sampler import ScanpathSampler
    from salience.training.export import export_weights

    metadata: dict[str, str] = {}
    if condition is not None:
        from salience.data.conditions import METADATA_KEY, Condition

        if not readouts_only:
            _fail("--condition goes with --readouts-only (a condition file of readouts)")
        try:
            metadata[METADATA_KEY] = json.dumps([Condition.parse(condition).kind])
        except ValueError as exc:
            _fail(str(exc))
    if sampler_dataset is not None:
        if sampler_root is None:
            _fail("--sampler-dataset needs --sampler-root")
        try:
            data = load_dataset(sampler_dataset, sampler_root).split(sampler_split)
        except (DataFormatError, KeyError, FileNotFoundError) as exc:
            _fail(str(exc))
        sampler = ScanpathSampler.fit(data)
        metadata["sampler"] = json.dumps(sampler.to_dict())
        metadata["sampler_data"] = f"{sampler_dataset} {sampler_split} ({len(data)} images)"
    try:
        path = export_weights(
            checkpoint,
            out,
            torch.float16 if fp16 else torch.float32,
            metadata,
            readouts_only,
            flip_average,
        )
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def _export_onnx(
    checkpoint: Path,
    out: Path,
    windows: Path | None,
    int8: bool,
    calibration_dataset: str,
    calibration_root: Path | None,
    calibration_images: int,
) -> None:
    """``salience export --format onnx``: the fp32 graph, and its int8 copy if asked."""
    from itertools import islice

    from salience.models.registry import shipped_weights

    if int8 and calibration_root is None:
        _fail("--int8 needs --calibration-root (e.g. ../shared/data/osie)")
    try:
        from salience.models.onnx import OnnxDensity
        from salience.models.onnx_export import calibration_inputs, export_onnx, quantize_int8

        source = checkpoint if checkpoint.is_file() else shipped_weights(str(checkpoint))
        if windows is not None and not windows.is_file():
            windows = shipped_weights(str(windows))
        path = export_onnx(source, out, windows)
        console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        if not int8:
            return
        data = load_dataset(calibration_dataset, calibration_root).split("train")
        stimuli = islice(data, calibration_images)
        inputs = calibration_inputs(OnnxDensity(path), (s.path for s in stimuli))
        quantized = quantize_int8(path, path.with_suffix(".int8.onnx"), inputs)
    except (ImportError, OSError, ValueError, KeyError, DataFormatError) as exc:
        _fail(str(exc).strip("'\""))
    console.print(f"wrote {quantized} ({quantized.stat().st_size / 1e6:.1f} MB)")


def main() -> None:
    """Entry point for ``python -m salience``."""
    app(sys.argv[1:])


@app.command("serve")
@runs_model
def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    max_upload_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest request body accepted (413 beyond).")
    ] = 20.0,
    workers: Annotated[
        int, typer.Option(min=1, help="Inference threads (each runs one image at a time).")
    ] = 1,
    queue: Annotated[
        int, typer.Option(min=0, help="Requests that may wait for a worker (503 beyond).")
    ] = 64,
    cache_mb: Annotated[
        float,
        typer.Option(
            min=0.0, help="Memory for model outputs of recent images (the page re-asks; 0: none)."
        ),
    ] = 256.0,
    *,
    choice: ModelChoice,
) -> None:
    """A web page and a JSON API: upload images, see heatmaps and gaze plots, draw regions,
    compare designs. The model is loaded once, then the address is printed; Ctrl+C stops.

    API docs at /docs (POST /v1/predict, /v1/aoi, /v1/compare; GET /healthz). Needs the
    'serve' extra: pip install 'salience[serve]'.
    """
    try:
        from salience.service.app import ServiceSettings
        from salience.service.server import bind, serve
    except ImportError as exc:
        _fail(f"salience serve needs the 'serve' extra (pip install 'salience[serve]'): {exc}")
    settings = ServiceSettings(
        max_upload_mb=max_upload_mb,
        workers=workers,
        queue=queue,
        cache_mb=cache_mb,
        model_name=str(choice.checkpoint) if choice.checkpoint is not None else choice.model,
    )
    predictor = choice.predictor()
    # the same model for the other kinds of data it was trained on: a request's condition
    others = {
        kind.kind: replace(choice, condition=kind.kind).predictor()
        for kind in getattr(predictor.model, "trained", ())
        if predictor.condition is not None and kind != predictor.condition
    }
    try:
        sock = bind(host, port)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    serve(
        predictor,
        settings,
        sock,
        announce=lambda url: typer.echo(f"salience serve: {url} (API docs: {url}docs)"),
        others=others,
    )
