"""The training loop every model shares: data, AdamW, schedule, precision, DDP, checkpoints,
validation.

``Trainer(config).fit()`` trains the model ``config.model.name`` through its :class:`Task`. Under
``torchrun`` (``WORLD_SIZE`` > 1 in the environment) it runs DistributedDataParallel, one process
per device, rank 0 writing checkpoints and logs; otherwise the same code runs in one process.
``train.batch_size`` is the global batch: each of N processes takes its slice of N of every
step's batch (:class:`~salience.training.data.EpochSampler`), and the losses divide by counts
over the whole batch (:attr:`Task.global_denominators`), so N processes take the steps one
process would (up to float rounding and dropout's random draws, which differ per process).
After every ``eval.every`` epochs rank 0 scores the model on each validation source with
:func:`salience.evaluation.evaluate.evaluate` (center bias fitted on the validation dataset's
``train`` split, less the validated images), keeps ``best.safetensors`` by ``eval.metric`` (the mean
over the sources) and rewrites ``log.jsonl``; per-image scores go to ``val/``.

Resuming restores weights, optimizer, scheduler, scaler, RNGs and the position inside the epoch,
so an interrupted run continues exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from salience.data import load_dataset
from salience.data.dataset import Dataset
from salience.evaluation.evaluate import evaluate, explainable_information_gain, write_results
from salience.io.atomic import atomic_write
from salience.models.baselines import CenterBiasKDE, fit_references
from salience.training.checkpoint import (
    has_checkpoint,
    load_checkpoint,
    load_weights,
    rng_state,
    save_checkpoint,
    save_weights,
    set_rng_state,
    weights_path,
)
from salience.training.config import Config, SourceConfig, save_config
from salience.training.data import EpochSampler, FixationDataset, collate
from salience.training.features import FeatureBank
from salience.training.task import Task, create_task

LOWER_IS_BETTER = frozenset({"KL"})
VAL_LINE_METRICS = ("IG", "NSS", "AUC-Judd", "CC")


def resolve_device(name: str) -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly one-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the process group torchrun describes in the environment; a no-op without one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed(), device
    info = Distributed(int(os.environ["RANK"]), world_size, int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        device = torch.device(device.type, info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info, device


def lr_lambda(config: Config, steps_per_epoch: int) -> Any:
    """Multiplier of the peak LR at a step: linear warmup, then cosine or epoch-milestone steps."""
    schedule = config.schedule
    total = max(config.train.epochs * steps_per_epoch, 1)
    milestones = [m * steps_per_epoch for m in schedule.milestones]

    def factor(step: int) -> float:
        if step < schedule.warmup_steps:
            return (step + 1) / schedule.warmup_steps
        if schedule.kind == "step":
            return schedule.gamma ** sum(step >= m for m in milestones)
        span = max(total - schedule.warmup_steps, 1)
        progress = min((step - schedule.warmup_steps) / span, 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return schedule.min_lr_ratio + (1.0 - schedule.min_lr_ratio) * cosine

    return factor


def _to_device(batch: dict, device: torch.device) -> dict:
    """Move the image tensor and every list of target tensors to ``device``."""
    moved = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            moved[key] = value.to(device, non_blocking=True)
        elif isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            moved[key] = [v.to(device, non_blocking=True) for v in value]
        else:
            moved[key] = value
    return moved


def _load_init(model: nn.Module, path: str) -> None:
    """Start from the weights in ``path`` (``model.init``); each tensor must fit the model."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"model.init: {path} not found")
    tensors, _ = load_weights(path)
    try:
        model.load_state_dict(tensors, strict=True)  # casts e.g. float16 files to the model's dtype
    except RuntimeError as exc:
        raise ValueError(f"model.init: {path} does not fit the model: {exc}") from exc


@dataclass
class Validation:
    """One validation source, ready to score: its images and the two ends of the IG scale."""

    label: str
    source: SourceConfig
    images: Dataset
    center_bias: CenterBiasKDE
    gold_ig: float | None


class Sources:
    """The datasets a config's sources name, each loaded once, and the images a source selects
    (its split, ``limit`` and cross-validation ``fold``)."""

    def __init__(self) -> None:
        self._datasets: dict[tuple[str, str], Dataset] = {}

    def dataset(self, source: SourceConfig) -> Dataset:
        """The whole dataset ``source`` names."""
        key = (source.name, source.root)
        if key not in self._datasets:
            self._datasets[key] = load_dataset(
                source.name, source.root, source.pixels_per_degree, **source.options
            )
        return self._datasets[key]

    def split(self, source: SourceConfig) -> Dataset:
        """The images ``source`` selects."""
        split = self.dataset(source).split(source.split)
        if source.limit:
            split = split.subset(split.ids[: source.limit])
        if source.fold is not None:
            split = split.fold(*source.fold, complement=source.fold_complement)
        return split


def validations(config: Config, sources: Sources | None = None) -> list[Validation]:
    """Per validation source of ``config``: its images, the center bias fitted on its dataset's
    train split (less any validated image: a fold of the train split), the gold standard's IG.
    Also what scores a finished run's held-out images again (e.g. a cross-validation fold's)."""
    sources = sources or Sources()
    val_sources = config.data.val_sources
    names = [s.name for s in val_sources]
    found = []
    for source in val_sources:
        val = sources.split(source)
        held = set(val.ids)
        train = sources.dataset(source).split("train")
        train = train.subset([i for i in train.ids if i not in held])
        center_bias, _, gold_ig = fit_references(train, val, val)
        label = source.name if names.count(source.name) == 1 else f"{source.name}[{len(found)}]"
        found.append(Validation(label, source, val, center_bias, gold_ig))
    return found


@dataclass
class _Run:
    """What one training run holds while it trains."""

    task: Task
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    train_set: FixationDataset
    sampler: EpochSampler
    loader: DataLoader
    steps_per_epoch: int
    calibration: Dataset | None
    amp_dtype: torch.dtype | None  # autocast's dtype, None without mixed precision
    bank: FeatureBank | None = None
    validation: list[Validation] = field(default_factory=list)  # rank 0's; none elsewhere
    ddp: nn.Module | None = None  # the model, wrapped by DDP in a distributed run

    @property
    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]


class Trainer:
    """Trains one model per a :class:`Config`; see the module docstring for what it does."""

    def __init__(
        self,
        config: Config,
        *,
        out_dir: str | Path | None = None,
        device: str | None = None,
        resume: bool = False,
        console: Console | None = None,
    ) -> None:
        self.config = config
        self.out_dir = Path(out_dir or config.train.out)
        self.resume = resume
        self.console = console or Console(stderr=True)
        self.device = resolve_device(device or config.train.device)
        self.dist, self.device = init_distributed(self.device)
        self._sources = Sources()

    # -- setup ------------------------------------------------------------------------------

    def _splits(self) -> tuple[list[Dataset], Dataset | None]:
        """Training datasets, minus the calibration images held out of the first one."""
        train = [self._sources.split(s) for s in self.config.data.train]
        n_cal = self.config.data.calibration_images
        if n_cal <= 0:
            return train, None
        first = train[0]
        if n_cal >= len(first):
            raise ValueError(f"data.calibration_images={n_cal} leaves nothing of {first.name}")
        order = np.random.default_rng(self.config.train.seed).permutation(len(first))
        ids = first.ids
        held = [ids[i] for i in sorted(order[:n_cal])]
        kept = [ids[i] for i in sorted(order[n_cal:])]
        calibration = first.subset(held, name=f"{first.name}-calibration")
        return [first.subset(kept), *train[1:]], calibration

    def _optimizer(self, model: nn.Module, task: Task) -> torch.optim.Optimizer:
        optim = self.config.optim
        backbone, rest = [], []
        for name, param in model.named_parameters():
            if task.is_backbone(name):
                param.requires_grad_(optim.backbone_lr > 0)
                if optim.backbone_lr > 0:
                    backbone.append(param)
            elif param.requires_grad:
                rest.append(param)
        groups = [{"params": rest, "lr": optim.lr}]
        if backbone:
            groups.append({"params": backbone, "lr": optim.backbone_lr})
        return torch.optim.AdamW(
            groups, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay
        )

    # -- the loop ---------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Train (or resume) to the end; returns a summary of the run."""
        run = self._prepare()
        state = self._restore(run)
        self._say(
            f"{self.config.name}: {len(run.train_set)} training images, {run.steps_per_epoch} "
            f"steps of {self.config.train.batch_size} per epoch ({run.sampler.per_process} in "
            f"each of {self.dist.world_size} processes), device {self.device}, "
            f"{sum(p.numel() for p in run.trainable) / 1e6:.2f} M trainable parameters"
        )
        clock = {"train_seconds": 0.0, "images_seen": 0}
        while state["epoch"] < self.config.train.epochs:
            record, stopped = self._train_epoch(run, state, clock)
            if record is None:  # stopped by max_steps inside the epoch
                self._save_last(run, state)
                break
            self._end_epoch(run, state, record, final=stopped)
            if stopped:
                break
        if self.dist.enabled:
            dist.barrier()
            dist.destroy_process_group()
        seconds = clock["train_seconds"]
        return {
            "out_dir": str(self.out_dir),
            "main": self.dist.is_main,  # rank 0, which validates, keeps the best and reports
            "epochs": state["epoch"],
            "steps": state["step"],
            "best": state["best"],
            "best_epoch": state["best_epoch"],
            "train_seconds": seconds,
            "images_per_second": clock["images_seen"] / seconds if seconds else None,
        }

    def _prepare(self) -> _Run:
        """Seeds, the task and its model, the data, the optimizer and schedule, DDP."""
        cfg = self.config
        if cfg.train.threads and self.device.type == "cpu":
            torch.set_num_threads(cfg.train.threads)
        seed = cfg.train.seed + self.dist.rank
        random.seed(seed)
        torch.manual_seed(seed)

        conditions = [source.condition for source in cfg.data.train]
        task = create_task(cfg.model, cfg.data.input_size, conditions)
        if self.dist.enabled:
            task.global_denominators = self._denominators_over_ranks
        model = task.build_model()
        if cfg.model.init is not None:
            _load_init(model, cfg.model.init)
        model = model.to(self.device)
        optimizer = self._optimizer(model, task)
        train_sets, calibration = self._splits()
        train_set = FixationDataset(
            train_sets,
            cfg.data.input_size,
            task.make_targets,
            augment=[
                cfg.data.augment if s.hflip is None else replace(cfg.data.augment, hflip=s.hflip)
                for s in cfg.data.train
            ],
            seed=cfg.train.seed,
            cache_images=cfg.data.cache_images,
            with_images=not cfg.data.cache_features,
            conditions=conditions,
            with_times=task.needs_times,
        )
        sampler = EpochSampler(
            train_set, cfg.train.seed, cfg.train.batch_size, self.dist.rank, self.dist.world_size
        )
        steps_per_epoch = sampler.steps
        if steps_per_epoch == 0:
            raise ValueError(
                f"{len(train_set)} training images are less than one batch of "
                f"{cfg.train.batch_size}"
            )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps_per_epoch))
        use_amp = self.device.type == "cuda" and cfg.train.amp != "none"
        scaler = torch.amp.GradScaler(self.device.type, enabled=use_amp and cfg.train.amp == "fp16")
        loader = DataLoader(
            train_set,
            batch_size=sampler.per_process,
            sampler=sampler,
            num_workers=cfg.data.num_workers,
            collate_fn=collate,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            # a private generator: making an iterator must not draw from the global RNG
            generator=torch.Generator().manual_seed(cfg.train.seed),
        )
        return _Run(
            task=task,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            train_set=train_set,
            sampler=sampler,
            loader=loader,
            steps_per_epoch=steps_per_epoch,
            calibration=calibration,
            amp_dtype=(torch.float16 if cfg.train.amp == "fp16" else torch.bfloat16)
            if use_amp
            else None,
        )

    def _restore(self, run: _Run) -> dict[str, Any]:
        """The run's state: fresh, or the last checkpoint's with ``resume``; then the config
        saved, the feature cache filled, the validation references fitted and DDP wrapped."""
        state: dict[str, Any] = {"epoch": 0, "step": 0, "best": None, "best_epoch": None, "log": []}
        if self.resume and has_checkpoint(self.out_dir, "last"):
            saved = load_checkpoint(self.out_dir, "last", run.model)
            run.optimizer.load_state_dict(saved["optimizer"])
            run.scheduler.load_state_dict(saved["scheduler"])
            run.scaler.load_state_dict(saved["scaler"])
            ranks = saved.get("rank_rng")  # each process's RNGs (a distributed run)
            same_world = ranks is not None and len(ranks) == self.dist.world_size
            set_rng_state(ranks[self.dist.rank] if same_world else saved["rng"])
            state = {k: saved[k] for k in state}
            self._say(f"resumed {self.out_dir} at epoch {state['epoch']}, step {state['step']}")
        elif self.resume:
            self._say(f"[yellow]nothing to resume in {self.out_dir}: starting fresh[/yellow]")
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.out_dir / "config.yaml")
        if self.config.data.cache_features:
            run.bank = self._feature_bank(run.task, run.model, run.train_set)
        run.validation = validations(self.config, self._sources) if self.dist.is_main else []
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            run.ddp = DistributedDataParallel(run.model, device_ids=device_ids)
        else:
            run.ddp = run.model
        return state

    def _train_epoch(
        self, run: _Run, state: dict[str, Any], clock: dict[str, float]
    ) -> tuple[dict[str, Any] | None, bool]:
        """One epoch (or what is left of it after a resume): its record, or None when
        ``train.max_steps`` stopped it inside the epoch; and whether max_steps was reached."""
        cfg = self.config
        epoch = state["epoch"]
        skip = state["step"] - epoch * run.steps_per_epoch
        run.sampler.set_epoch(epoch, skip)
        run.ddp.train()
        start = time.perf_counter()
        sums: dict[str, float] = {}  # per named loss, summed over this epoch's steps
        n_steps = 0
        stopped = False
        with self._progress(epoch, run.steps_per_epoch - skip) as advance:
            for batch in run.loader:
                losses = self._step(run, _to_device(batch, self.device), state["step"])
                state["step"] += 1
                n_steps += 1
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + value.item()
                advance(state["step"], sums["loss"] / n_steps)
                if cfg.train.max_steps is not None and state["step"] >= cfg.train.max_steps:
                    stopped = True
                    break
        seconds = time.perf_counter() - start
        images = n_steps * cfg.train.batch_size
        clock["train_seconds"] += seconds
        clock["images_seen"] += images
        if state["step"] < (epoch + 1) * run.steps_per_epoch:
            return None, stopped
        state["epoch"] = epoch + 1
        record = {
            "epoch": epoch + 1,
            "step": state["step"],
            **{k: self._mean_over_ranks(v / n_steps) for k, v in sorted(sums.items())},
            "lr": run.scheduler.get_last_lr()[0],
            "seconds": seconds,
            "images_per_second": images / seconds,
        }
        return record, stopped

    def _step(self, run: _Run, batch: dict, step: int) -> dict[str, torch.Tensor]:
        """One optimization step on a batch; its named losses."""
        with torch.autocast(
            self.device.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None
        ):
            if run.bank is None:
                outputs = run.task.forward(run.ddp, batch)
            else:
                features = run.bank.lookup(batch["index"], batch["flip"], self.device)
                outputs = run.task.forward_features(run.ddp, features, batch)
        losses = run.task.loss(outputs, batch)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}")
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if self.config.optim.clip_grad > 0:
            run.scaler.unscale_(run.optimizer)
            torch.nn.utils.clip_grad_norm_(run.trainable, self.config.optim.clip_grad)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        return losses

    def _end_epoch(
        self, run: _Run, state: dict[str, Any], record: dict[str, Any], final: bool
    ) -> None:
        """Validate when due, keep the best weights, log, and checkpoint when due."""
        cfg = self.config
        epoch = record["epoch"]
        if run.validation and (epoch % cfg.eval.every == 0 or epoch == cfg.train.epochs):
            record.update(
                self._validate(run.model, run.task, run.calibration, run.validation, epoch)
            )
            self._keep_best(run.model, run.task, state, record)
        state["log"].append(record)
        self._report(record, state)
        if final or epoch == cfg.train.epochs or epoch % cfg.train.checkpoint_every == 0:
            self._save_last(run, state)

    # -- pieces of the loop -----------------------------------------------------------------

    def _feature_bank(self, task: Task, model: nn.Module, dataset: FixationDataset) -> FeatureBank:
        """Frozen-backbone features of the training images; rank 0 fills the disk cache first."""
        cache_dir = self.config.data.feature_cache_dir
        start = time.perf_counter()
        if self.dist.enabled and cache_dir is not None and not self.dist.is_main:
            dist.barrier()  # wait for rank 0 to write the cache, then read it
        bank = FeatureBank.build(
            task, model, dataset, self.device, self.config.train.batch_size, cache_dir
        )
        if self.dist.enabled and cache_dir is not None and self.dist.is_main:
            dist.barrier()
        self._say(
            f"backbone features of {len(dataset)} images x 2 ready in "
            f"{time.perf_counter() - start:.0f} s"
        )
        return bank

    def _denominators_over_ranks(self, local: torch.Tensor) -> torch.Tensor:
        """A loss's denominators over the whole batch, divided by the number of processes:
        DDP averages the processes' gradients, so each divides its sum by these."""
        total = local.detach().clone()
        dist.all_reduce(total)
        return total / self.dist.world_size

    def _mean_over_ranks(self, value: float) -> float:
        if not self.dist.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.item() / self.dist.world_size

    def _validate(
        self,
        model: nn.Module,
        task: Task,
        calibration: Dataset | None,
        validation: list[Validation],
        epoch: int,
    ) -> dict[str, Any]:
        """Calibrate on held-out training images, then score every validation source. With
        several, ``val/<metric>`` is their mean and ``val[<label>]/<metric>`` each one's. The
        per-image values go to ``val/epoch-<e>.json`` (cross-validation pools them)."""
        model.eval()
        start = time.perf_counter()
        chosen = task.calibrate(model, calibration) if calibration is not None else {}
        results, scores = [], []
        for v in validation:
            result = evaluate(
                task.density(model, v.source.condition),
                v.images,
                center_bias=v.center_bias,
                mode=self.config.eval.mode,
                sigma_deg=self.config.eval.sigma_deg,
            )
            results.append(result)
            score = dict(result.means)
            if v.gold_ig is not None:
                score["gold_IG"] = v.gold_ig
                score["explained_IG_percent"] = explainable_information_gain(
                    result.means["IG"], 0.0, v.gold_ig
                )
            scores.append(score)
        model.train()
        record: dict[str, Any] = {}
        if len(validation) > 1:
            for v, score in zip(validation, scores, strict=True):
                record.update({f"val[{v.label}]/{k}": value for k, value in score.items()})
        shared = set.intersection(*(set(score) for score in scores))
        record.update(
            {f"val/{k}": float(np.mean([score[k] for score in scores])) for k in sorted(shared)}
        )
        record.update({f"calibration/{k}": v for k, v in chosen.items()})
        record["val_seconds"] = time.perf_counter() - start
        (self.out_dir / "val").mkdir(parents=True, exist_ok=True)
        sources = [{"label": v.label, "gold_IG": v.gold_ig} for v in validation]
        write_results(
            results, self.out_dir / "val" / f"epoch-{epoch:03d}.json", {"sources": sources}
        )
        return record

    def _keep_best(self, model: nn.Module, task: Task, state: dict, record: dict) -> None:
        metric = self.config.eval.metric
        value = record.get(f"val/{metric}")
        if value is None:
            raise KeyError(f"eval.metric {metric!r} is not a validation metric")
        best = state["best"]
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        if best is None or sign * value > sign * best:
            state["best"], state["best_epoch"] = value, record["epoch"]
            record["best"] = True
            metadata = {
                **task.metadata(model),
                "epoch": str(record["epoch"]),
                "step": str(record["step"]),
                "val_metrics": json.dumps({k: v for k, v in record.items() if "/" in k}),
            }
            save_weights(weights_path(self.out_dir, "best"), model, metadata)

    def _save_last(self, run: _Run, state: dict[str, Any]) -> None:
        """The ``last`` checkpoint, written by rank 0 (every process must call this: rank 0
        collects their RNG states, so that a resumed run draws what this one would have)."""
        extra = {}
        if self.dist.enabled:
            ranks = [None] * self.dist.world_size if self.dist.is_main else None
            dist.gather_object(rng_state(), ranks, dst=0)
            extra["rank_rng"] = ranks
        if not self.dist.is_main:
            return
        full_state = {
            **state,
            **extra,
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "config": self.config.to_dict(),
        }
        save_checkpoint(self.out_dir, "last", run.model, run.task.metadata(run.model), full_state)

    def _report(self, record: dict, state: dict) -> None:
        if not self.dist.is_main:
            return
        atomic_write(
            self.out_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in state["log"])
        )
        line = (
            f"epoch {record['epoch']}/{self.config.train.epochs}  loss {record['loss']:.4f}  "
            f"lr {record['lr']:.2e}  {record['images_per_second']:.1f} img/s"
        )
        if "val/IG" in record:
            line += "  | val " + "  ".join(
                f"{m} {record[f'val/{m}']:.4f}" for m in VAL_LINE_METRICS
            )
            if "val/explained_IG_percent" in record:
                line += f"  ({record['val/explained_IG_percent']:.1f} % expl. IG)"
            if record.get("best"):
                line += "  [best]"
        self._say(line)

    def _say(self, message: str) -> None:
        if self.dist.is_main:
            self.console.print(message, soft_wrap=True)  # one line per message, also in log files

    @contextmanager
    def _progress(self, epoch: int, total: int) -> Iterator[Callable[[int, float], None]]:
        """Yield ``advance(step, mean_loss)``: a rich bar on a terminal, else a line per
        ``train.log_every`` steps; silent on ranks other than 0."""
        if not self.dist.is_main:
            yield lambda step, loss: None
            return
        if self.console.is_terminal:
            columns = (
                TextColumn(f"epoch {epoch + 1}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=self.console, transient=True) as bar:
                task_id = bar.add_task("train", total=total, loss=float("nan"))
                yield lambda step, loss: bar.update(task_id, advance=1, loss=loss)
            return
        every = self.config.train.log_every

        def line(step: int, loss: float) -> None:
            if every and step % every == 0:
                self.console.print(f"  step {step}  loss {loss:.4f}", soft_wrap=True)

        yield line
