"""``salience predict`` as a library: many images in, per-image files out, failures per item.

For an image ``<name>`` the job writes ``<name>_density.npy`` (float32, the image's resolution,
sums to 1), ``<name>_heatmap.png``, ``<name>_overlay.png`` (or those of the three the job's
``maps`` name) and ``<name>_fixations.json`` (the likely fixations, the sampled scanpaths and
the settings they were made with), each atomically; ``summary.csv`` lists every input with its
status. An image whose files all exist and whose recorded settings are the job's is not
predicted again (unless ``overwrite``), so an interrupted job is finished by running it again,
and running it with other settings (e.g. more scanpaths, another seed) redoes the images. An
unreadable image is reported and skipped; the rest are written. With ``windows`` each viewing-time
window also gets ``<name>_window_<label>_density.npy``, ``_heatmap.png`` and ``_overlay.png`` (label
e.g. ``0-1s``), written before the fixations JSON, so a job interrupted among them is redone.
"""

from __future__ import annotations

import csv
import fcntl
import glob
import hashlib
import io
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from salience.analysis.render import display_map, heatmap, overlay, save_png
from salience.io.atomic import atomic_path, atomic_write, remove_stale_temporaries
from salience.io.images import DecodedImage, ImageReadError
from salience.predictor import WORKING_PIXELS, Prediction, Predictor, as_rgb

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
# the map files a job may choose among (``PredictJob.maps``; each viewing-time window gets them
# too), each named by its suffix
MAPS = {"density": "_density.npy", "heatmap": "_heatmap.png", "overlay": "_overlay.png"}
OUTPUTS = (*MAPS.values(), "_fixations.json")  # the files of an image, all maps chosen
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
    "viewports",
    "seconds",
)


# image formats people use that the decoder cannot read: reported, not passed over in silence
UNSUPPORTED_SUFFIXES = frozenset(
    {".heic", ".heif", ".avif", ".svg", ".psd", ".dng", ".cr2", ".nef"}
)


class BatchError(RuntimeError):
    """A job that cannot run at all (not one bad input: those are rows of the summary)."""


def collect_inputs(
    inputs: Iterable[str | Path], exclude: Path | None = None
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named by files, folders (their images, not recursive) and glob patterns, in
    order, duplicates dropped; and the inputs that gave none, each with the reason (a missing
    file, a broken link, a folder without images, a format the decoder cannot read). Files
    inside ``exclude`` (the output folder) are never inputs."""
    found: dict[Path, None] = {}
    problems: list[tuple[str, str]] = []
    skip = exclude.resolve() if exclude is not None else None

    def outside(path: Path) -> bool:
        return skip is None or not path.resolve().is_relative_to(skip)

    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and outside(p))
            matches = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            problems += [
                (str(p), f"{p}: {p.suffix} images are not supported (convert to PNG or JPEG)")
                for p in files
                if p.suffix.lower() in UNSUPPORTED_SUFFIXES
            ]
            reason = f"{text}: a folder with no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        elif path.is_file():
            matches = [path] if outside(path) else []
            reason = f"{text}: inside the output folder, which holds outputs, not inputs"
        elif glob.has_magic(text):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True))
            matches = [p for p in matched if p.is_file() and outside(p)]
            reason = f"{text}: no image file matches this pattern"
        else:
            matches = []
            reason = (
                f"{text}: a broken symbolic link or a link loop"
                if path.is_symlink()
                else f"{text}: file not found"
            )
        if not matches:
            problems.append((text, reason))
        for match in matches:
            found.setdefault(match, None)
    return list(found), problems


def input_record(path: Path) -> dict[str, object]:
    """What identifies an input's content: its size and BLAKE2b digest. Recorded with the
    outputs, so a rerun redoes an image whose file changed under the same name."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "blake2b": digest.hexdigest()}


@contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold the output folder for one job: a second job into the same folder is refused (it
    would race on the same files), and temporary files a killed job left are removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / ".salience-predict.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(
                f"{out_dir}: another salience predict is writing to this folder; wait for it "
                "or choose another --out"
            ) from None
        remove_stale_temporaries(out_dir)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
            # how many viewports a tall or wide image was predicted in (blank: predicted whole)
            "viewports": prediction.tiled["viewports"] if prediction.tiled else "",
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


@dataclass(frozen=True)
class PredictJob:
    """What a batch job makes, whichever engine runs it: the files of each image in
    ``out_dir``, ``batch_size`` images per forward pass, overlays in ``colormap`` at
    ``opacity``, ``scanpaths`` sampled scanpaths per image (seeded by ``seed``), with
    ``windows`` one set of maps per viewing-time window; ``overwrite`` redoes finished images.
    ``maps``: which of the map files (:data:`MAPS`) to write, in any order (a catalog scored by
    its summary may need no pictures, and writing them costs about as much as the model); the
    fixations JSON and the summary are always written."""

    out_dir: Path
    batch_size: int = 8
    colormap: str = "jet"
    opacity: float = 0.5
    overwrite: bool = False
    scanpaths: int = 1
    seed: int = 0
    windows: bool = False
    maps: tuple[str, ...] = tuple(MAPS)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.scanpaths < 0:
            raise ValueError(
                f"batch_size must be >= 1 and scanpaths >= 0, got {self.batch_size}, "
                f"{self.scanpaths}"
            )
        unknown = sorted(set(self.maps) - set(MAPS))
        if unknown:
            raise ValueError(f"unknown map {', '.join(unknown)}: choose among {', '.join(MAPS)}")
        object.__setattr__(self, "maps", tuple(m for m in MAPS if m in self.maps))

    def settings(self, predictor: Predictor) -> dict[str, object]:
        """This job's :func:`predict_settings` for ``predictor``."""
        return predict_settings(
            predictor,
            self.colormap,
            self.opacity,
            self.scanpaths,
            self.seed,
            self.windows,
            self.maps,
        )


def predict_settings(
    predictor: Predictor,
    colormap: str,
    opacity: float,
    scanpaths: int,
    seed: int,
    windows: bool = False,
    maps: Iterable[str] = tuple(MAPS),
) -> dict[str, object]:
    """The settings that shape a job's files, as recorded in each ``<name>_fixations.json``
    (``windows``, the window labels, only when window maps are made; ``maps`` only when not all
    three are, so that files written before the choice existed still count as done)."""
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
    chosen = [m for m in MAPS if m in set(maps)]
    if chosen != list(MAPS):
        settings["maps"] = chosen
    if predictor.condition is not None:  # the kind of data predicted for
        settings["condition"] = predictor.condition.kind
    if predictor.tiler is not None:  # which images are predicted viewport by viewport, and how
        settings["tiling"] = predictor.tiler.settings()
    return settings


def is_done(
    out_dir: Path, name: str, settings: dict[str, object], source: dict[str, object] | None = None
) -> bool:
    """Whether the files of ``name`` (its maps and fixations JSON, and the windows' maps the
    settings ask for) exist, are whole, and were made with ``settings`` from the input
    ``source`` identifies (:func:`input_record`)."""
    stems = [name] + [window_stem(name, label) for label in settings.get("windows", [])]
    try:
        recorded = json.loads((out_dir / f"{name}_fixations.json").read_text())
        if not isinstance(recorded, dict) or recorded.get("settings") != settings:
            return False
        if source is not None and recorded.get("input") != source:
            return False
        size = (recorded["size"]["height"], recorded["size"]["width"])
        maps = settings_maps(settings)
        return all(_maps_whole(out_dir, stem, size, maps) for stem in stems)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return False


def settings_maps(settings: dict[str, object] | None) -> tuple[str, ...]:
    """The map files (names of :data:`MAPS`) a job of ``settings`` writes: all by default."""
    chosen = None if settings is None else settings.get("maps")
    return tuple(MAPS) if chosen is None else tuple(chosen)


def _maps_whole(out_dir: Path, stem: str, size: tuple[int, int], maps: Iterable[str]) -> bool:
    """Whether a stem's chosen maps are complete files of the image's size."""
    maps = set(maps)
    if "density" in maps:
        density = np.load(out_dir / f"{stem}_density.npy", mmap_mode="r", allow_pickle=False)
        if density.shape != size or density.dtype != np.float32:
            return False
    for suffix in (MAPS[m] for m in ("heatmap", "overlay") if m in maps):
        with Image.open(out_dir / f"{stem}{suffix}") as im:
            if im.size != size[::-1]:
                return False
            im.load()  # a truncated or garbage file fails here
    return True


def write_prediction(
    prediction: Prediction,
    out_dir: Path,
    name: str,
    colormap: str = "jet",
    opacity: float = 0.5,
    settings: dict[str, object] | None = None,
    source: dict[str, object] | None = None,
) -> None:
    """The files of one image and its windows' maps, each written atomically (PNGs
    fast-compressed): the maps ``settings`` choose (see :func:`predict_settings`; all three
    without settings) and the fixations JSON, written last, which records the settings."""
    image = prediction.image
    maps = settings_maps(settings)
    if image is None and "overlay" in maps:
        raise ValueError("the prediction holds no image to draw the overlay on")
    _write_maps(prediction.density, image, out_dir, name, colormap, opacity, maps)
    for window_map in prediction.windows:
        stem = window_stem(name, window_map.window.label)
        _write_maps(window_map.density, image, out_dir, stem, colormap, opacity, maps)
    record = prediction.fixations_dict()
    if settings is not None:
        record["settings"] = settings
    if source is not None:
        record["input"] = source
    atomic_write(out_dir / f"{name}_fixations.json", json.dumps(record, indent=1) + "\n")


def _write_maps(
    density: np.ndarray,
    image: np.ndarray | None,
    out_dir: Path,
    stem: str,
    colormap: str,
    opacity: float,
    maps: tuple[str, ...],
) -> None:
    """Of ``<stem>_density.npy`` (float32), ``_heatmap.png`` and ``_overlay.png`` of a density
    those ``maps`` name."""
    if "density" in maps:
        with atomic_path(out_dir / f"{stem}_density.npy") as tmp:
            np.save(tmp, density.astype(np.float32))
    if "heatmap" not in maps and "overlay" not in maps:
        return
    shown = display_map(density)
    if "heatmap" in maps:
        picture = heatmap(density, display=shown)
        save_png(out_dir / f"{stem}_heatmap.png", picture, compress_level=2)
    if "overlay" in maps:
        picture = overlay(image, density, colormap=colormap, opacity=opacity, display=shown)
        save_png(out_dir / f"{stem}_overlay.png", picture, compress_level=2)


def _decoded(
    paths: Iterable[Path], lookahead: int
) -> Iterator[tuple[Path, DecodedImage | None, str]]:
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


def _read(path: Path) -> tuple[DecodedImage | None, str]:
    try:
        return as_rgb(path, WORKING_PIXELS), ""
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
    source: dict[str, object],
    seconds: float,
) -> ItemResult:
    """One image's files, as a writer thread makes them; its summary row."""
    try:
        write_prediction(prediction, out_dir, name, colormap, opacity, settings, source)
    except OSError as exc:
        return ItemResult(path, name, "failed", f"writing: {exc}")
    return ItemResult.written(path, name, prediction, seconds)


def run_predict(
    predictor: Predictor,
    paths: list[Path],
    job: PredictJob,
    advance: Callable[[ItemResult], None] | None = None,
    failed_inputs: Iterable[tuple[str, str]] = (),
    writers: int = 2,
) -> list[ItemResult]:
    """Run ``job`` on every image of ``paths``; one :class:`ItemResult` per input,
    in input order, after a row for each of ``failed_inputs`` ((input, reason) pairs, e.g.
    from :func:`collect_inputs`).

    Scanpaths are seeded as :meth:`Predictor.predict` seeds them. An image whose outputs are
    whole and were made from the same content with the same settings is not predicted again.
    Decoding (one thread, a batch ahead), the model and the files (``writers`` threads)
    overlap; at most a few batches of images and predictions are held at once, whatever the
    number of inputs. ``summary.csv`` is rewritten as results come in (at most once a second)
    and at the end, so it is nearly complete where an interrupted run stopped."""
    if writers < 1:
        raise ValueError(f"writers must be at least 1, got {writers}")
    out_dir = job.out_dir
    names = output_names(paths)
    settings = job.settings(predictor)
    failed = [ItemResult(Path(text), Path(text).stem, "failed", why) for text, why in failed_inputs]
    results: dict[Path, ItemResult] = {}
    sources: dict[Path, dict[str, object]] = {}
    last_summary = time.monotonic()

    def summary() -> list[ItemResult]:
        return failed + [results[p] for p in paths if p in results]

    def record(result: ItemResult) -> None:
        nonlocal last_summary
        results[result.image] = result
        if advance is not None:
            advance(result)
        if time.monotonic() - last_summary >= 1.0:
            write_summary(summary(), out_dir / "summary.csv")
            last_summary = time.monotonic()

    with output_lock(out_dir):
        todo = []
        for path in paths:
            try:
                sources[path] = input_record(path)
            except OSError as exc:
                record(ItemResult(path, names[path], "failed", f"{path}: {exc.strerror or exc}"))
                continue
            if not job.overwrite and is_done(out_dir, names[path], settings, sources[path]):
                record(ItemResult(path, names[path], "exists"))
            else:
                todo.append(path)
        predicted: deque[Path] = deque()  # the decoded inputs handed to the model, in order

        def images() -> Iterator[DecodedImage]:
            for path, image, error in _decoded(todo, lookahead=job.batch_size):
                if image is None:
                    record(ItemResult(path, names[path], "failed", error))
                else:
                    predicted.append(path)
                    yield image

        writing: deque[Future] = deque()
        with ThreadPoolExecutor(writers, thread_name_prefix="salience-write") as pool:
            predicting = predictor.predict_many(
                images(), job.batch_size, job.scanpaths, job.seed, job.windows
            )
            for item in predicting:
                path = predicted.popleft()
                if item.prediction is None:
                    record(ItemResult(path, names[path], "failed", item.error or "unreadable"))
                    continue
                item.prediction.source = str(path)
                files = (out_dir, names[path], job.colormap, job.opacity, settings, sources[path])
                writing.append(pool.submit(_write, item.prediction, path, *files, item.seconds))
                while len(writing) > 2 * writers:  # bounded: the model waits for the writers
                    record(writing.popleft().result())
            while writing:
                record(writing.popleft().result())
        write_summary(summary(), out_dir / "summary.csv")
    return summary()


def write_summary(results: list[ItemResult], path: Path) -> None:
    """``summary.csv``: one row per input, written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS)
    writer.writeheader()
    for item in results:
        writer.writerow(item.row())
    atomic_write(path, buffer.getvalue())
