"""Training configuration: nested dataclasses read from YAML, overridable by dotted ``key=value``.

A run is described by one :class:`Config` (data, model, optimizer, schedule, loop, validation).
``load_config("configs/x.yaml", ["optim.lr=3e-4", "train.epochs=5"])`` reads the file, applies the
overrides (values parsed as YAML, then coerced to the field's type) and checks every key, so a
typo is an error instead of a silently ignored setting. ``model.overrides`` is a free-form mapping
handed to the model factory, so keys under it are not checked here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from salience.data.dataset import check_fold
from salience.io.atomic import atomic_write
from salience.training.targets import TARGET_KINDS


class ConfigError(ValueError):
    """A configuration file or override that does not fit the schema; the message names the key."""


@dataclass
class SourceConfig:
    """One dataset split: loader name (``salience.data.load_dataset``), folder and split;
    ``limit`` keeps only its first images (quick runs, tests). ``condition`` is the kind of data,
    for models conditioned on it (SUM, :class:`salience.data.conditions.Condition`: 0 mouse
    tracking, 1 eye tracking on natural images, 3 user interfaces); other models ignore it.
    ``pixels_per_degree`` and ``options`` are the reader's (:func:`salience.data.load_dataset`;
    the ``csv`` reader needs the former). ``hflip`` replaces ``data.augment.hflip`` for this
    source: 0 for web pages, which are not mirror images of themselves."""

    name: str = "osie"
    root: str = ""
    split: str = "train"
    limit: int | None = None
    condition: int | None = None
    pixels_per_degree: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    hflip: float | None = None  # this source's mirror probability; None: data.augment.hflip
    # cross-validation (salience.training.crossval): [k, n] keeps fold k (from 0) of n of the
    # split's images (Dataset.fold); with fold_complement the images outside fold k
    fold: tuple[int, int] | None = None
    fold_complement: bool = False


@dataclass
class AugmentConfig:
    """Geometric augmentations; fixations move with the pixels.

    The image is resized to ``input_size`` times a zoom drawn from ``scale`` (>= 1), a random
    ``input_size`` window is cropped (fixations outside it are dropped) and the result is
    mirrored with probability ``hflip``.
    """

    hflip: float = 0.5
    scale: tuple[float, float] = (1.0, 1.0)


@dataclass
class DataConfig:
    """What to train and validate on, and how images reach the model."""

    train: list[SourceConfig] = field(default_factory=list)
    # validated every eval.every epochs; several sources are scored each on its own (and the
    # best epoch is chosen by their mean)
    val: SourceConfig | list[SourceConfig] | None = None
    input_size: tuple[int, int] = (288, 384)  # (height, width)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    num_workers: int = 0
    cache_images: bool = False  # keep decoded images in memory (per process)
    # frozen backbone only: compute its features once per image and mirror image (see
    # salience.training.features); needs augment.scale == (1, 1)
    cache_features: bool = False
    feature_cache_dir: str | None = None  # also keep them on disk here, for later runs
    # images of the first training source held out of training to calibrate post-processing
    calibration_images: int = 0

    @property
    def val_sources(self) -> list[SourceConfig]:
        """The validation sources as a list (none, one or several)."""
        if self.val is None:
            return []
        return list(self.val) if isinstance(self.val, list) else [self.val]


@dataclass
class ModelConfig:
    """The registered model, its config overrides and how fixations become its targets."""

    name: str = "saltr-lite0"
    overrides: dict[str, Any] = field(default_factory=dict)
    targets: str = "subsample"  # subsample | observer | scanpath | kmeans (training/targets.py)
    max_targets: int | None = None  # default: the model's number of queries
    # weights (.safetensors) to start from, e.g. salience/weights/default.safetensors; every
    # tensor must fit the model (a frozen backbone stays exactly as loaded)
    init: str | None = None


@dataclass
class OptimConfig:
    """AdamW; the backbone gets its own learning rate (0 freezes it)."""

    lr: float = 1e-4
    backbone_lr: float = 1e-5
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float = 0.1  # max gradient norm; 0 disables clipping


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: linear warmup, then cosine decay or steps at epoch milestones."""

    kind: str = "cosine"  # cosine | step
    warmup_steps: int = 0
    min_lr_ratio: float = 0.01  # cosine: final LR as a fraction of the peak
    milestones: list[int] = field(default_factory=list)  # step: epochs where LR is multiplied
    gamma: float = 0.1


@dataclass
class LoopConfig:
    """The loop itself: length, batch, precision, device and output."""

    epochs: int = 10
    batch_size: int = 8  # the global batch, shared among the processes of a distributed run
    seed: int = 0
    amp: str = "bf16"  # bf16 | fp16 | none; used only on CUDA
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out: str = "runs/train"
    max_steps: int | None = None  # stop (with a checkpoint) after this many optimizer steps
    checkpoint_every: int = 1  # epochs between "last" checkpoints (the final one is always kept)
    log_every: int = 20  # steps between progress lines when no terminal shows a bar
    threads: int | None = None  # torch intra-op threads on CPU; None keeps torch's default


@dataclass
class EvalConfig:
    """Validation after each ``every`` epochs and the metric that picks the best checkpoint."""

    every: int = 1
    metric: str = "IG"
    mode: str = "probabilistic"
    sigma_deg: float = 1.0


@dataclass
class Config:
    """A whole training run."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), for YAML and checkpoints."""
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` (parsed YAML) as the type ``hint``; dataclasses are built from mappings."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError("; ".join(errors))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(hint, value, key)
    if hint is Any:
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        if origin is tuple:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {value!r}")
            return tuple(
                _coerce(v, a, f"{key}.{i}")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        return [_coerce(v, args[0], f"{key}.{i}") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        # YAML reads "1e-4" as a string; accept any number spelling, but never a bool
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from exc
        if hint is int:
            if not number.is_integer():
                raise ConfigError(f"{key}: expected an integer, got {value!r}")
            return int(number)
        return number
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported field type {hint!r}")


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """An instance of dataclass ``cls`` from a mapping; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        where = prefix or "config"
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in values.items()}
    return cls(**kwargs)


def apply_override(tree: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (``[1, 2]``, ``null``)."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r} is not of the form key=value")
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or start from defaults when ``path`` is None) and apply overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    for override in overrides or []:
        apply_override(tree, override)
    return config_from_dict(tree)


def config_from_dict(tree: dict[str, Any]) -> Config:
    """Build and check a :class:`Config` from a nested mapping (e.g. a checkpoint's copy)."""
    config = _build(Config, tree)
    if config.model.targets not in TARGET_KINDS:
        raise ConfigError(f"model.targets: {config.model.targets!r} is not one of {TARGET_KINDS}")
    if config.schedule.kind not in ("cosine", "step"):
        raise ConfigError(f"schedule.kind: {config.schedule.kind!r} is not cosine or step")
    if config.train.amp not in ("bf16", "fp16", "none"):
        raise ConfigError(f"train.amp: {config.train.amp!r} is not bf16, fp16 or none")
    if not config.data.train:
        raise ConfigError("data.train: at least one training source is needed")
    if config.data.cache_features and (
        config.optim.backbone_lr > 0 or tuple(config.data.augment.scale) != (1.0, 1.0)
    ):
        raise ConfigError(
            "data.cache_features needs a frozen backbone (optim.backbone_lr=0) and no zoom "
            "(data.augment.scale=[1, 1])"
        )
    sources = [(f"data.train[{i}]", s) for i, s in enumerate(config.data.train)]
    sources += [(f"data.val[{i}]", s) for i, s in enumerate(config.data.val_sources)]
    for key, source in sources:
        if source.hflip is not None and not 0.0 <= source.hflip <= 1.0:
            raise ConfigError(f"{key}.hflip: a probability is needed, got {source.hflip}")
        if source.fold is not None:
            try:
                check_fold(*source.fold)
            except ValueError as exc:
                raise ConfigError(f"{key}.fold: {exc}") from exc
    if min(config.data.augment.scale) < 1.0:
        raise ConfigError(f"data.augment.scale: zoom must be >= 1, got {config.data.augment.scale}")
    return config


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically), next to the run's checkpoints."""
    atomic_write(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
