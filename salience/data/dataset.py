"""The one in-memory form every dataset loader produces, and the file readers they share.

A :class:`Dataset` is a list of :class:`Stimulus`; each stimulus holds its image path, its
(height, width) and one ordered :class:`Scanpath` per observer. Coordinates are 0-based float
pixels (x to the right, y down; pixel ``(i, j)`` covers ``j <= x < j + 1``), durations and onsets
are seconds. Loaders convert their source's conventions (1-based MATLAB pixels, (row, column)
columns, milliseconds) into this form, so everything downstream sees one convention.
"""

from __future__ import annotations

import csv
import json
import struct
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image
from scipy.io.matlab import MatReadError


class DataFormatError(ValueError):
    """Input data that cannot be read as the format it claims to be; the message names the file."""


@dataclass(frozen=True)
class Scanpath:
    """One observer's fixations on one image, in viewing order.

    ``onset`` is ``None`` when the source does not record it; ``duration`` holds NaN where a
    fixation's duration is unknown (e.g. mouse tracking).
    """

    observer: str
    x: np.ndarray  # (n,) float64, 0-based pixels
    y: np.ndarray  # (n,) float64, 0-based pixels
    duration: np.ndarray  # (n,) float64 seconds, NaN if unknown
    onset: np.ndarray | None = None  # (n,) float64 seconds since stimulus onset

    def __post_init__(self) -> None:
        n = len(self.x)
        arrays = {"y": self.y, "duration": self.duration}
        if self.onset is not None:
            arrays["onset"] = self.onset
        for name, arr in arrays.items():
            if len(arr) != n:
                raise ValueError(
                    f"scanpath of observer {self.observer!r}: {name} has {len(arr)} entries, "
                    f"x has {n}"
                )

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Stimulus:
    """An image and everyone's scanpaths on it."""

    id: str
    path: Path
    size: tuple[int, int]  # (height, width) in pixels
    scanpaths: tuple[Scanpath, ...]

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]

    @property
    def n_fixations(self) -> int:
        return sum(len(s) for s in self.scanpaths)

    def fixations(self) -> tuple[np.ndarray, np.ndarray]:
        """All observers' fixations pooled: (x, y), each (n,) float64."""
        if not self.scanpaths:
            return np.zeros(0), np.zeros(0)
        return (
            np.concatenate([s.x for s in self.scanpaths]),
            np.concatenate([s.y for s in self.scanpaths]),
        )

    def observer_index(self) -> np.ndarray:
        """For each pooled fixation (order of :meth:`fixations`), the index of its scanpath."""
        return np.concatenate(
            [np.full(len(s), i) for i, s in enumerate(self.scanpaths)] or [np.zeros(0, int)]
        ).astype(int)


@dataclass(frozen=True)
class Fixations:
    """Every fixation of a dataset in flat arrays, pysaliency style (``n`` indexes the stimulus)."""

    x: np.ndarray
    y: np.ndarray
    n: np.ndarray  # stimulus index
    observer: np.ndarray  # observer name per fixation
    order: np.ndarray  # position in its scanpath, 0-based
    duration: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def check_fold(k: int, n: int) -> None:
    """A ValueError unless fold ``k`` (from 0) of ``n`` folds exists and ``n`` >= 2."""
    if n < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {n}")
    if not 0 <= k < n:
        raise ValueError(f"fold {k} is not one of 0..{n - 1}")


@dataclass
class Dataset:
    """A named list of stimuli with splits and the viewing geometry needed to blur fixations.

    ``kind`` says what the fixations are (``"eye"`` or ``"mouse"``); ``dropped`` counts the
    fixations the loader discarded because they fell outside the image (or were no fixations,
    e.g. placeholder rows); ``dropped_by_reason`` splits that count where a loader tells reasons
    apart. Datasets whose images
    were shown rescaled to one display size set ``image_span_degrees`` (visual angle of the
    image's longer side), so pixels per degree differ per stimulus; see :meth:`ppd`.
    """

    name: str
    root: Path
    stimuli: list[Stimulus]
    pixels_per_degree: float
    splits: dict[str, list[str]] = field(default_factory=dict)
    kind: str = "eye"
    dropped: int = 0
    image_span_degrees: float | None = None
    dropped_by_reason: dict[str, int] = field(default_factory=dict)

    @classmethod
    def gather(
        cls,
        name: str,
        root: Path,
        entries: Iterable[tuple[str, Path, tuple[int, int], Iterable[Scanpath]]],
        pixels_per_degree: float,
        *,
        kind: str = "eye",
        default_splits: dict[str, list[str]] | None = None,
        dropped_by_reason: dict[str, int] | None = None,
        image_span_degrees: float | None = None,
    ) -> Dataset:
        """A dataset from each stimulus's ``(id, image path, size, scanpaths)`` as read.

        Every reader ends here, so all treat fixations alike: those outside the image (or not
        finite) are dropped and counted, scanpaths left empty are omitted, and the splits come
        from ``root/split.json`` when there is one (else ``default_splits``). A reader that
        drops fixations for other reasons passes their counts in ``dropped_by_reason``; the
        ones outside the image are then counted under ``"outside"`` beside them.
        """
        stimuli, outside = [], 0
        for stimulus_id, image_path, size, scanpaths in entries:
            kept = []
            for scanpath in scanpaths:
                inside, n_out = drop_outside(scanpath, size)
                outside += n_out
                if inside is not None and len(inside):
                    kept.append(inside)
            stimuli.append(Stimulus(stimulus_id, image_path, size, tuple(kept)))
        split_path = root / "split.json"
        splits = read_splits(split_path) if split_path.is_file() else dict(default_splits or {})
        reasons = {**dropped_by_reason, "outside": outside} if dropped_by_reason else {}
        return cls(
            name,
            root,
            stimuli,
            pixels_per_degree,
            splits,
            kind=kind,
            dropped=sum(reasons.values()) if reasons else outside,
            image_span_degrees=image_span_degrees,
            dropped_by_reason=reasons,
        )

    def ppd(self, stimulus: Stimulus) -> float:
        """Pixels per degree of visual angle for this stimulus, in its own pixels."""
        if self.image_span_degrees is None:
            return self.pixels_per_degree
        return max(stimulus.size) / self.image_span_degrees

    def __len__(self) -> int:
        return len(self.stimuli)

    def __iter__(self) -> Iterator[Stimulus]:
        return iter(self.stimuli)

    def __getitem__(self, index: int) -> Stimulus:
        return self.stimuli[index]

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.stimuli]

    def by_id(self, stimulus_id: str) -> Stimulus:
        for s in self.stimuli:
            if s.id == stimulus_id:
                return s
        raise KeyError(f"{self.name}: no stimulus {stimulus_id!r}")

    def subset(self, ids: Sequence[str], name: str | None = None) -> Dataset:
        """The stimuli with these ids, in this order; unknown ids are an error."""
        index = {s.id: s for s in self.stimuli}
        missing = [i for i in ids if i not in index]
        if missing:
            raise KeyError(
                f"{self.name}: {len(missing)} ids not in the dataset, e.g. {missing[:3]}"
            )
        return replace(self, stimuli=[index[i] for i in ids], name=name or self.name)

    def fold(self, k: int, n: int, complement: bool = False) -> Dataset:
        """Fold ``k`` of ``n`` of these stimuli (folds by image, from a fixed permutation of the
        sorted ids, so every fold is the same on every machine), or with ``complement`` all the
        stimuli outside it: the training and held-out parts of a cross-validation."""
        check_fold(k, n)
        if n > len(self.stimuli):
            raise ValueError(f"{self.name}: {len(self.stimuli)} images cannot make {n} folds")
        order = np.random.default_rng(0).permutation(sorted(self.ids))
        held = set(order[k::n])
        ids = [i for i in self.ids if (i in held) != complement]
        part = "without fold" if complement else "fold"
        return self.subset(ids, name=f"{self.name} ({part} {k + 1}/{n})")

    def split(self, name: str) -> Dataset:
        """The named split (``"all"`` is the whole dataset)."""
        if name == "all":
            return self
        if name not in self.splits:
            known = ", ".join(sorted(self.splits)) or "none"
            raise KeyError(f"{self.name}: no split {name!r} (known: {known}, all)")
        return self.subset(self.splits[name], name=f"{self.name}/{name}")

    def fixations(self) -> Fixations:
        """All fixations of all stimuli, flattened."""
        xs, ys, ns, obs, order, dur = [], [], [], [], [], []
        for i, stim in enumerate(self.stimuli):
            for sp in stim.scanpaths:
                k = len(sp)
                xs.append(sp.x)
                ys.append(sp.y)
                ns.append(np.full(k, i))
                obs.append(np.full(k, sp.observer, dtype=object))
                order.append(np.arange(k))
                dur.append(sp.duration)
        if not xs:
            empty = np.zeros(0)
            return Fixations(
                empty, empty, empty.astype(int), empty.astype(object), empty.astype(int), empty
            )
        return Fixations(
            np.concatenate(xs),
            np.concatenate(ys),
            np.concatenate(ns).astype(int),
            np.concatenate(obs),
            np.concatenate(order).astype(int),
            np.concatenate(dur),
        )


def drop_outside(scanpath: Scanpath, size: tuple[int, int]) -> tuple[Scanpath | None, int]:
    """Remove fixations outside ``[0, width) x [0, height)``; returns the rest and how many went.

    Returns ``None`` for the scanpath when nothing is left, so empty scanpaths never reach a model.
    """
    height, width = size
    keep = (
        np.isfinite(scanpath.x)
        & np.isfinite(scanpath.y)
        & (scanpath.x >= 0)
        & (scanpath.x < width)
        & (scanpath.y >= 0)
        & (scanpath.y < height)
    )
    n_dropped = int((~keep).sum())
    if keep.all():
        return scanpath, 0
    if not keep.any():
        return None, n_dropped
    return (
        Scanpath(
            scanpath.observer,
            scanpath.x[keep],
            scanpath.y[keep],
            scanpath.duration[keep],
            None if scanpath.onset is None else scanpath.onset[keep],
        ),
        n_dropped,
    )


def csv_rows(
    path: Path, header_problem: Callable[[list[str]], str | None]
) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (``"<file>, line n"``, the row as column -> text, stripped) for each line of a
    UTF-8 CSV file, blank lines skipped. ``header_problem`` says what is wrong with the header
    row (None: nothing); a missing or unreadable file, a bad header and a row whose length
    differs from the header's are :class:`DataFormatError` naming the file (and line)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [name.strip() for name in next(reader, [])]
            problem = header_problem(header) if header else "empty file, expected a header row"
            if problem:
                raise DataFormatError(f"{path}: {problem}")
            for row in reader:
                if not row:
                    continue
                where = f"{path}, line {reader.line_num}"
                if len(row) != len(header):
                    raise DataFormatError(
                        f"{where}: {len(row)} fields, the header has {len(header)}"
                    )
                yield where, dict(zip(header, (v.strip() for v in row), strict=True))
    except FileNotFoundError as exc:
        raise DataFormatError(f"{path}: file not found") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataFormatError(f"{path}: not a readable UTF-8 CSV file ({exc})") from exc


def read_splits(path: Path) -> dict[str, list[str]]:
    """Read a ``split.json``: an object mapping split names to lists of stimulus ids."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(i, (str, int)) for i in v) for v in data.values()
    ):
        raise DataFormatError(f"{path}: expected an object of split name -> list of image ids")
    return {k: [str(i) for i in v] for k, v in data.items()}


def image_size(path: Path, where: str | None = None) -> tuple[int, int]:
    """(height, width) of an image file from its header alone; ``where`` prefixes errors."""
    prefix = f"{where}: " if where else ""
    try:
        with warnings.catch_warnings():
            # the size alone is read here; whoever decodes the pixels judges it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except FileNotFoundError as exc:
        raise DataFormatError(f"{prefix}{path}: image file not found") from exc
    except IsADirectoryError as exc:
        raise DataFormatError(f"{prefix}{path}: is a folder, not an image file") from exc
    except Image.DecompressionBombError as exc:
        raise DataFormatError(f"{prefix}{path}: image too large ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise DataFormatError(f"{prefix}{path}: not a readable image ({exc})") from exc
    if width < 1 or height < 1:
        raise DataFormatError(f"{prefix}{path}: declares an empty {width}x{height} image")
    return height, width


def read_mat(path: Path, **kwargs: object) -> dict:
    """``scipy.io.loadmat`` with every way a file can be broken turned into DataFormatError."""
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    try:
        return scipy.io.loadmat(path, **kwargs)
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError, IndexError) as exc:
        raise DataFormatError(f"{path}: not a readable MATLAB file ({exc!r})") from exc
