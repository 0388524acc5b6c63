"""``salience predict --engine ray``: the batch job of :mod:`salience.batch` on a Ray cluster.

The driver lists the inputs' paths (image files, folders, glob patterns, a text file of paths or
a Parquet file with a ``path`` column) and names each one's outputs as the local job does
(:func:`salience.batch.output_names`: a name must be unique over the whole job, so the driver
holds the path strings; it never holds an image). Ray Data then streams the paths through two
stages:

1. read tasks, in parallel: an image whose files are already there with the job's settings
   (:func:`salience.batch.is_done`) is skipped, the others are read and decoded; an unreadable
   one fails its row with the local job's message;
2. a pool of actors, each holding one :class:`~salience.predictor.Predictor` (the model is loaded
   once per actor), predicts batches of images and writes each image's files itself with
   :func:`salience.batch.write_prediction` (every file atomic, the fixations JSON last).

The driver gathers one small row per image and writes ``summary.csv`` as the local job does
(rewritten every ``SUMMARY_EVERY_S`` seconds while the job runs) and, if asked,
``predictions.parquet`` (:mod:`salience.prediction_table`). An actor that dies is restarted by
Ray and its batch is run again; since each file is atomic and an image counts as done only once
its JSON (written last) records the job's settings, a kill leaves finished images whole, and a
job that dies entirely is finished by running it again.

On a cluster (``address``), every node needs this package, its model weights (a
``--checkpoint`` at a path all nodes see) and the input and output folders (shared storage).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from salience.batch import (
    SUMMARY_FIELDS,
    ItemResult,
    PredictJob,
    collect_inputs,
    input_record,
    is_done,
    output_names,
    write_prediction,
    write_summary,
)
from salience.io.images import DecodedImage, ImageReadError
from salience.predictor import WORKING_PIXELS, Predictor, as_rgb

LIST_SUFFIXES = frozenset({".txt", ".lst"})  # a text file of paths, one per line
SUMMARY_EVERY_S = 30.0
READ_CPUS = 0.5  # what a read task asks of a CPU: decoding is light beside the model
_NO_IMAGE = np.zeros((0, 0, 3), np.uint8)  # the image column's value where nothing was read


@dataclass(frozen=True)
class PredictorSource:
    """How each actor makes its Predictor: a trained ``checkpoint`` if given, else the shipped
    ``model``; ``options`` are the Predictor's keyword options (e.g. ``n_fixations``)."""

    model: str = "default"
    checkpoint: str | None = None
    device: str | None = None
    condition: str | None = None
    backend: str = "torch"
    options: dict[str, object] = field(default_factory=dict)

    def load(self) -> Predictor:
        chosen = (self.device, self.condition, self.backend)
        if self.checkpoint is not None:
            return Predictor.from_checkpoint(self.checkpoint, *chosen, **self.options)
        return Predictor.from_pretrained(self.model, *chosen, **self.options)


def list_inputs(
    inputs: Iterable[str | Path], exclude: Path | None = None
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image paths of the inputs, in order, without duplicates, and the inputs that matched
    nothing: a ``.txt``/``.lst`` file lists paths one per line (blank lines skipped), a
    ``.parquet`` file in its ``path`` column (or its only column); each listed path, and every
    other input, is expanded as :func:`salience.batch.collect_inputs` does (``exclude``: the
    output folder, whose files are never inputs)."""
    expanded: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            with path.open() as lines:
                expanded.extend(line.strip() for line in lines if line.strip())
        elif path.is_file() and path.suffix.lower() == ".parquet":
            expanded.extend(_parquet_paths(path))
        else:
            expanded.append(str(item))
    return collect_inputs(expanded, exclude)


def _parquet_paths(path: Path) -> list[str]:
    """The ``path`` column of a Parquet file (or its only column), read a row group at a time."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    column = "path" if "path" in names else names[0] if len(names) == 1 else None
    if column is None:
        raise ValueError(f"{path}: no 'path' column (columns: {', '.join(names)})")
    found: list[str] = []
    for batch in parquet.iter_batches(columns=[column]):
        found.extend(str(p) for p in batch.column(0).to_pylist() if p)
    return found


def read_images(
    batch: dict[str, np.ndarray], job: PredictJob, settings: dict[str, object], records: bool
) -> dict[str, np.ndarray]:
    """Ray Data read stage: per row, ``status`` "exists" (done before; its fixations record
    in ``record`` when ``records``), "failed" (unreadable: ``error``) or "todo" with the
    ``image`` decoded as the local job decodes it (reduced to the Predictor's working size
    while decoding) and the file's ``original_size``."""
    n = len(batch["path"])
    status, error, record, sources = ["todo"] * n, [""] * n, [""] * n, [""] * n
    images = np.empty(n, dtype=object)
    sizes = np.zeros((n, 2), np.int64)
    for i, (path, name) in enumerate(zip(batch["path"], batch["name"], strict=True)):
        images[i] = _NO_IMAGE
        try:
            source = input_record(Path(str(path)))
        except OSError as exc:
            status[i], error[i] = "failed", f"{path}: {exc.strerror or exc}"
            continue
        sources[i] = json.dumps(source)
        if not job.overwrite and is_done(job.out_dir, str(name), settings, source):
            status[i] = "exists"
            if records:
                record[i] = (job.out_dir / f"{name}_fixations.json").read_text()
            continue
        try:
            decoded = as_rgb(Path(str(path)), WORKING_PIXELS)
            images[i], sizes[i] = decoded.pixels, decoded.original_size
        except ImageReadError as exc:
            status[i], error[i] = "failed", str(exc)
    return {
        "index": batch["index"],
        "path": batch["path"],
        "name": batch["name"],
        "status": np.array(status, dtype=object),
        "error": np.array(error, dtype=object),
        "record": np.array(record, dtype=object),
        "source": np.array(sources, dtype=object),
        "image": images,
        "original_size": sizes,
    }


class PredictWorker:
    """Ray Data actor: one Predictor for its life; predicts the "todo" rows of each batch
    and writes their files; returns every row's summary fields (and fixations record)."""

    def __init__(self, make_predictor: Callable[[], Predictor], threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
        self.predictor = make_predictor()

    def __call__(
        self,
        batch: dict[str, np.ndarray],
        job: PredictJob,
        settings: dict[str, object],
        records: bool,
    ) -> dict[str, np.ndarray]:
        rows: list[dict[str, object]] = []
        todo: list[int] = []
        for i in range(len(batch["path"])):
            path, name = Path(str(batch["path"][i])), str(batch["name"][i])
            status = str(batch["status"][i])
            rows.append(ItemResult(path, name, status, str(batch["error"][i])).row())
            rows[-1]["record"] = str(batch["record"][i])
            if status == "todo":
                todo.append(i)
        images = [
            DecodedImage(np.asarray(batch["image"][i]), tuple(map(int, batch["original_size"][i])))
            for i in todo
        ]
        items = self.predictor.predict_many(
            images, max(len(images), 1), job.scanpaths, job.seed, job.windows
        )
        for i, item in zip(todo, items, strict=True):
            path, name = Path(str(batch["path"][i])), str(batch["name"][i])
            prediction = item.prediction
            if prediction is None:  # an array the model could not take
                rows[i].update(status="failed", error=f"{path}: {item.error}")
                continue
            prediction.source = str(path)  # as when the model reads the file itself
            try:
                source = json.loads(str(batch["source"][i]))
                write_prediction(
                    prediction, job.out_dir, name, job.colormap, job.opacity, settings, source
                )
            except OSError as exc:
                rows[i].update(status="failed", error=f"writing: {exc}")
                continue
            rows[i] = ItemResult.written(path, name, prediction, item.seconds).row()
            record = prediction.fixations_dict()
            record["settings"] = settings
            record["input"] = source
            rows[i]["record"] = json.dumps(record) if records else ""
        columns = {key: [row[key] for row in rows] for key in (*SUMMARY_FIELDS, "record")}
        result = {
            key: np.array([str(v) for v in values], dtype=object) for key, values in columns.items()
        }
        result["index"] = batch["index"]
        return result


def _connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address``, or start a local instance (or use the one this
    process already joined); whether this call connected, and so should disconnect."""
    import ray

    if ray.is_initialized():
        return False
    if address is not None:
        _check_reachable(address)
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    return True


def _check_reachable(address: str) -> None:
    """A ConnectionError now for a ``host:port`` nobody listens on (Ray itself would keep
    retrying for minutes); other forms (``auto``) are left to Ray."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not (sep and host and port.isdigit()):
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach {target} ({exc})") from exc


def run_ray_predict(
    make_predictor: Callable[[], Predictor],
    paths: list[Path],
    job: PredictJob,
    advance: Callable[[ItemResult], None] | None = None,
    num_workers: int = 1,
    address: str | None = None,
    parquet: bool = False,
    predictor: Predictor | None = None,
    gpus_per_worker: float = 0.0,
) -> list[ItemResult]:
    """:func:`salience.batch.run_predict` on Ray: the same files and ``summary.csv``, one
    :class:`ItemResult` per input in input order; see the module docstring.

    ``make_predictor`` is called once in each of the ``num_workers`` actors (and here, for the
    job's settings, unless ``predictor`` is given); it travels to them by pickle, so e.g.
    :meth:`PredictorSource.load`. ``address``: the cluster to join (None: a local instance,
    unless this process has joined one). ``parquet``: also write ``predictions.parquet``.
    ``gpus_per_worker``: what each actor asks of a GPU (1 for a CUDA device).
    """
    import ray
    import ray.data

    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    predictor = predictor if predictor is not None else make_predictor()
    if job.windows:
        predictor.windows  # noqa: B018 (the window readouts load: an error before any work)
    settings = job.settings(predictor)
    out_dir = job.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    names = output_names(paths)
    started = _connect(address)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        cpus = ray.cluster_resources().get("CPU", 1.0)
        # the actors and a read task fit the cluster's CPUs together (else nothing is read)
        actor_cpus = min(1.0, max(cpus - READ_CPUS, READ_CPUS) / num_workers)
        dataset = ray.data.from_items(
            [{"index": i, "path": str(p), "name": names[p]} for i, p in enumerate(paths)],
            override_num_blocks=max(1, min(math.ceil(len(paths) / job.batch_size), 10_000)),
        )
        stage = {"job": job, "settings": settings, "records": parquet}
        dataset = dataset.map_batches(
            read_images, batch_format="numpy", fn_kwargs=stage, num_cpus=READ_CPUS
        ).map_batches(
            PredictWorker,
            batch_size=job.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=num_workers),
            fn_constructor_kwargs={
                "make_predictor": make_predictor,
                "threads": max(1, int(cpus // num_workers)),
            },
            fn_kwargs=stage,
            num_cpus=actor_cpus,
            num_gpus=gpus_per_worker,
        )
        return _collect(dataset, paths, out_dir, parquet, advance)
    finally:
        if started:
            ray.shutdown()


def _collect(
    dataset,
    paths: list[Path],
    out_dir: Path,
    parquet: bool,
    advance: Callable[[ItemResult], None] | None,
) -> list[ItemResult]:
    """Run the job: gather its rows, keep ``summary.csv`` current, fill the Parquet table."""
    from salience.prediction_table import PredictionTable, table_row

    results: dict[int, ItemResult] = {}
    table = PredictionTable(out_dir / "predictions.parquet") if parquet else None
    last_summary = time.monotonic()
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            rows = []
            for k, index in enumerate(batch["index"]):
                row = {key: str(batch[key][k]) for key in SUMMARY_FIELDS}
                result = ItemResult(
                    Path(row["image"]),
                    row["name"],
                    row["status"],
                    row["error"],
                    {key: row[key] for key in SUMMARY_FIELDS[4:]},
                )
                results[int(index)] = result
                if advance is not None:
                    advance(result)
                if table is not None:
                    text = str(batch["record"][k])
                    rows.append(table_row(result.row(), json.loads(text) if text else None))
            if table is not None:
                table.add(rows)
            if time.monotonic() - last_summary > SUMMARY_EVERY_S:
                write_summary([results[i] for i in sorted(results)], out_dir / "summary.csv")
                last_summary = time.monotonic()
    except BaseException as error:
        if table is not None:
            table.close(error)
        raise
    if table is not None:
        table.close()
    ordered = [results[i] for i in range(len(paths))]
    write_summary(ordered, out_dir / "summary.csv")
    return ordered
