"""``salience predict`` as a library: many images in, per-image files out, failures per item.

For an image ``<name>`` the job writes ``<name>_density.npy`` (float32, the image's resolution,
sums to 1), ``<name>_heatmap.png``, ``<name>_overlay.png`` and ``<name>_fixations.json`` (the
likely fixations, the sampled scanpaths and the settings they were made with), each
atomically; ``summary.csv`` lists every input with its status. An image whose four files all
exist and whose recorded settings are the job's is not predicted again (unless ``overwrite``),
so an interrupted job is finished by running it again, and running it with other settings
(e.g. more scanpaths, another seed) redoes the images. An unreadable image is reported and
skipped; the rest are written. With ``windows`` each viewing-time window also gets
``<name>_window_<label>_density.npy``, ``_heatmap.png`` and ``_overlay.png`` (label e.g.
``0-1s``), written before the fixations JSON, so a job interrupted among them is redone.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from salience.analysis.render import display_map, heatmap, overlay, save_png
from salience.io.atomic import atomic_path, atomic_write
from salience.io.images import ImageReadError
from salience.predictor import Prediction, Predictor, as_rgb

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
OUTPUTS = ("_density.npy", "_heatmap.png", "_overlay.png", "_fixations.json")
MAP_OUTPUTS = OUTPUTS[:3]  # what each viewing-time window gets too
SUMMARY_FIELDS = (
    "image",
    "name",
    "status",
    "error",
    "height",
    "width",
    "first_x",
    "first_y",
    "first_probability",
    "top10_area_share",
    "seconds",
)


def collect_inputs(inputs: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """Image files named by files, folders (their images, not recursive) and glob patterns;
    also the inputs that matched nothing. Order is kept, duplicates dropped."""
    found: dict[Path, None] = {}
    missing: list[str] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        else:
            matches = []
        if not matches:
            missing.append(text)
        for match in matches:
            found.setdefault(match, None)
    return list(found), missing


def output_names(paths: list[Path]) -> dict[Path, str]:
    """File-name stems for the outputs: the image's stem, or ``stem_ext`` (and then the parent
    folder) where two inputs would share one."""
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    names = {
        p: p.stem if counts[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}" for p in paths
    }
    seen: dict[str, int] = {}
    for p in paths:
        seen[names[p]] = seen.get(names[p], 0) + 1
    return {p: names[p] if seen[names[p]] == 1 else f"{p.parent.name}_{names[p]}" for p in paths}


def top_area_share(density: np.ndarray, area: float = 0.1) -> float:
    """Share of the attention falling on the most-attended ``area`` fraction of the image: how
    concentrated the attention is (``area`` for a flat map, near 1 for a single focus)."""
    flat = density.ravel()
    top = max(1, round(area * flat.size))
    return float(np.sort(np.partition(flat, flat.size - top)[flat.size - top :])[::-1].sum())


@dataclass
class ItemResult:
    """One input's row of ``summary.csv`` (predictions are not kept: folders can be large)."""

    image: Path
    name: str
    status: str  # written | exists | failed
    error: str = ""
    values: dict[str, object] = field(default_factory=dict)

    @classmethod
    def written(cls, image: Path, name: str, prediction: Prediction, seconds: float) -> ItemResult:
        values = {
            "height": prediction.size[0],
            "width": prediction.size[1],
            "first_x": f"{prediction.fixations[0, 0]:.1f}",
            "first_y": f"{prediction.fixations[0, 1]:.1f}",
            "first_probability": f"{prediction.fixation_probs[0]:.4f}",
            "top10_area_share": f"{top_area_share(prediction.density):.4f}",
            "seconds": f"{seconds:.3f}",
        }
        return cls(image, name, "written", "", values)

    def row(self) -> dict[str, object]:
        row: dict[str, object] = {k: "" for k in SUMMARY_FIELDS}
        row.update(image=str(self.image), name=self.name, status=self.status, error=self.error)
        row.update(self.values)
        return row


def window_stem(name: str, label: str) -> str:
    """The file-name stem of a viewing-time window's maps, e.g. ``photo_window_0-1s``."""
    return f"{name}_window_{label}"


def predict_settings(
    predictor: Predictor,
    colormap: str,
    opacity: float,
    scanpaths: int,
    seed: int,
    windows: bool = False,
) -> dict[str, object]:
    """The settings that shape a job's files, as recorded in each ``<name>_fixations.json``
    (``windows``, the window labels, only when window maps are made)."""
    settings: dict[str, object] = {
        "fixations": predictor.n_fixations,
        "image_degrees": predictor.image_degrees,
        "scanpaths": scanpaths,
        "scanpath_length": predictor.scanpath_length,
        "seed": seed,
        "colormap": colormap,
        "opacity": opacity,
    }
    if windows:
        settings["windows"] = [w.label for w in predictor.windows]
    if predictor.condition is not None:  # the kind of data predicted for
        settings["condition"] = predictor.condition.kind
    return settings


def is_done(out_dir: Path, name: str, settings: dict[str, object]) -> bool:
    """Whether the files of ``name`` (the four, and the windows' maps the settings ask for)
    exist and were made with ``settings``."""
    stems = [window_stem(name, label) for label in settings.get("windows", [])]
    wanted = [f"{name}{s}" for s in OUTPUTS] + [f"{t}{s}" for t in stems for s in MAP_OUTPUTS]
    if not all((out_dir / f).is_file() for f in wanted):
        return False
    try:
        recorded = json.loads((out_dir / f"{name}_fixations.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(recorded, dict) and recorded.get("settings") == settings


def write_prediction(
    prediction: Prediction,
    out_dir: Path,
    name: str,
    colormap: str = "jet",
    opacity: float = 0.5,
    settings: dict[str, object] | None = None,
) -> None:
    """The four files of one image and its windows' maps, each written atomically (PNGs
    fast-compressed); ``settings`` (see :func:`predict_settings`) are recorded in the fixations
    JSON, which is written last."""
    image = prediction.image
    if image is None:
        raise ValueError("the prediction holds no image to draw the overlay on")
    _write_maps(prediction.density, image, out_dir, name, colormap, opacity)
    for window_map in prediction.windows:
        stem = window_stem(name, window_map.window.label)
        _write_maps(window_map.density, image, out_dir, stem, colormap, opacity)
    record = prediction.fixations_dict()
    if settings is not None:
        record["settings"] = settings
    atomic_write(out_dir / f"{name}_fixations.json", json.dumps(record, indent=1) + "\n")


def _write_maps(
    density: np.ndarray, image: np.ndarray, out_dir: Path, stem: str, colormap: str, opacity: float
) -> None:
    """``<stem>_density.npy`` (float32), ``_heatmap.png`` and ``_overlay.png`` of a density."""
    with atomic_path(out_dir / f"{stem}_density.npy") as tmp:
        np.save(tmp, density.astype(np.float32))
    shown = display_map(density)
    save_png(out_dir / f"{stem}_heatmap.png", heatmap(density, display=shown), compress_level=1)
    save_png(
        out_dir / f"{stem}_overlay.png",
        overlay(image, density, colormap=colormap, opacity=opacity, display=shown),
        compress_level=1,
    )


def _decoded(
    paths: Iterable[Path], lookahead: int
) -> Iterator[tuple[Path, np.ndarray | None, str]]:
    """Per path its uint8 RGB image (or None and the error), in order, decoded by a worker
    thread up to ``lookahead`` images ahead of the consumer."""
    with ThreadPoolExecutor(1, thread_name_prefix="salience-decode") as pool:
        pending: deque[tuple[Path, Future]] = deque()
        for path in paths:
            pending.append((path, pool.submit(_read, path)))
            if len(pending) > lookahead:
                path, future = pending.popleft()
                yield path, *future.result()
        while pending:
            path, future = pending.popleft()
            yield path, *future.result()


def _read(path: Path) -> tuple[np.ndarray | None, str]:
    try:
        return as_rgb(path), ""
    except ImageReadError as exc:
        return None, str(exc)


def _write(
    prediction: Prediction,
    path: Path,
    out_dir: Path,
    name: str,
    colormap: str,
    opacity: float,
    settings: dict[str, object],
    seconds: float,
) -> ItemResult:
    """One image's files, as a writer thread makes them; its summary row."""
    try:
        write_prediction(prediction, out_dir, name, colormap, opacity, settings)
    except OSError as exc:
        return ItemResult(path, name, "failed", f"writing: {exc}")
    return ItemResult.written(path, name, prediction, seconds)


def run_predict(
    predictor: Predictor,
    paths: list[Path],
    out_dir: Path,
    batch_size: int = 8,
    colormap: str = "jet",
    opacity: float = 0.5,
    overwrite: bool = False,
    advance: Callable[[ItemResult], None] | None = None,
    scanpaths: int = 1,
    seed: int = 0,
    windows: bool = False,
    writers: int = 2,
) -> list[ItemResult]:
    """Predict every image of ``paths`` into ``out_dir``; one :class:`ItemResult` per input,
    in input order.

    Each image gets ``scanpaths`` sampled scanpaths (0: none), seeded by ``seed`` as
    :meth:`Predictor.predict` does, and with ``windows`` one set of maps per viewing-time
    window. Decoding (one thread, a batch ahead), the model and the files (``writers``
    threads) overlap; at most a few batches of images and predictions are held at once,
    whatever the number of inputs. ``summary.csv`` is rewritten as results come in (at most
    once a second) and at the end, so it is nearly complete where an interrupted run stopped."""
    if scanpaths < 0:
        raise ValueError(f"scanpaths must be >= 0, got {scanpaths}")
    if writers < 1:
        raise ValueError(f"writers must be at least 1, got {writers}")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = output_names(paths)
    settings = predict_settings(predictor, colormap, opacity, scanpaths, seed, windows)
    results: dict[Path, ItemResult] = {}
    last_summary = time.monotonic()

    def record(result: ItemResult) -> None:
        nonlocal last_summary
        results[result.image] = result
        if advance is not None:
            advance(result)
        if time.monotonic() - last_summary >= 1.0:
            write_summary([results[p] for p in paths if p in results], out_dir / "summary.csv")
            last_summary = time.monotonic()

    todo = []
    for path in paths:
        if not overwrite and is_done(out_dir, names[path], settings):
            record(ItemResult(path, names[path], "exists"))
        else:
            todo.append(path)
    predicted: deque[Path] = deque()  # the decoded inputs handed to the model, in order

    def images() -> Iterator[np.ndarray]:
        for path, image, error in _decoded(todo, lookahead=batch_size):
            if image is None:
                record(ItemResult(path, names[path], "failed", error))
            else:
                predicted.append(path)
                yield image

    writing: deque[Future] = deque()
    with ThreadPoolExecutor(writers, thread_name_prefix="salience-write") as pool:
        for item in predictor.predict_many(images(), batch_size, scanpaths, seed, windows):
            path = predicted.popleft()
            if item.prediction is None:
                record(ItemResult(path, names[path], "failed", item.error or "unreadable"))
                continue
            item.prediction.source = str(path)
            job = (out_dir, names[path], colormap, opacity, settings, item.seconds)
            writing.append(pool.submit(_write, item.prediction, path, *job))
            while len(writing) > 2 * writers:  # bounded: the model waits for the writers
                record(writing.popleft().result())
        while writing:
            record(writing.popleft().result())
    ordered = [results[p] for p in paths]
    write_summary(ordered, out_dir / "summary.csv")
    return ordered


def write_summary(results: list[ItemResult], path: Path) -> None:
    """``summary.csv``: one row per input, written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS)
    writer.writeheader()
    for item in results:
        writer.writerow(item.row())
    atomic_write(path, buffer.getvalue())
