"""The service's work, off the event loop: decoding uploads, the model, analyses, pictures.

:class:`InferencePool` runs it on a fixed number of worker threads with a bounded wait, so the
model's memory is that of ``workers`` forward passes however many clients call, and a burst
beyond ``workers + queue`` is told to come back (503) instead of piling up. :class:`Engine`
holds the one :class:`~salience.predictor.Predictor` and a small cache of its outputs by image
content (a page asks about the same image again each time a region changes), bounded in bytes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from salience.analysis.aoi import AoiReport, ComparisonReport, analyze, compare, resample_density
from salience.analysis.regions import Region, RegionError
from salience.analysis.render import (
    difference_map,
    display_map,
    gaze_plot,
    heatmap,
    overlay,
    png_bytes,
)
from salience.batch import predict_settings
from salience.io.images import ImageReadError, ImageTooLargeError, NotAnImageError, decode_image
from salience.predictor import ModelOutput, Prediction, Predictor
from salience.service.errors import ApiError

T = TypeVar("T")


@dataclass(frozen=True)
class Upload:
    """An uploaded file's bytes and the name to use in messages."""

    data: bytes
    name: str


class OutputCache:
    """The model's outputs for recently seen images, keyed by a hash of the file's bytes, least
    recently used first out, holding at most ``max_bytes`` of arrays. Thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, ModelOutput] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> ModelOutput | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: str, outputs: ModelOutput) -> None:
        if outputs.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = outputs
            self._bytes += outputs.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def __len__(self) -> int:
        return len(self._items)


class InferencePool:
    """``workers`` threads for the blocking work and room for ``queue`` requests to wait.

    :meth:`run` is called from the event loop only, so its count needs no lock. A request
    cancelled while it waits (its client went away) leaves the queue without running.
    """

    def __init__(self, workers: int, queue: int) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"need workers >= 1 and queue >= 0, got {workers} and {queue}")
        self.workers = workers
        self.queue = queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="salience-worker")
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Requests running or waiting now."""
        return self._admitted

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` on a worker thread; a 503 :class:`ApiError` if the queue is full."""
        if self._admitted >= self.workers + self.queue:
            raise ApiError(
                503,
                "busy",
                f"all {self.workers} workers are busy and {self.queue} requests are waiting; "
                "try again shortly",
                headers={"Retry-After": "1"},
            )
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self._admitted -= 1

    def shutdown(self) -> None:
        """Stop taking work; waiting requests are dropped, running ones finish."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def png_base64(array: np.ndarray) -> str:
    """A uint8 gray or RGB array as base64 PNG text (fast compression: maps compress well)."""
    return base64.b64encode(png_bytes(array, compress_level=2)).decode("ascii")


def npy_base64(density: np.ndarray) -> str:
    """A density as base64 ``.npy`` text, float32 like ``<name>_density.npy``."""
    buffer = io.BytesIO()
    np.save(buffer, density.astype(np.float32))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True)
class MapOptions:
    """How densities are drawn, and whether the density itself is sent."""

    colormap: str = "jet"
    opacity: float = 0.5
    density: bool = False


@dataclass(frozen=True)
class RegionQuery:
    """What a region analysis asks: the regions, the first ``k`` fixations that count as seen
    early, ``samples`` sampled scanpaths from ``seed``, for ``condition`` (None: the default)."""

    regions: Sequence[Region]
    k: int
    samples: int
    seed: int
    condition: str | None = None


class Engine:
    """The blocking half of every endpoint: each method runs on a worker thread and returns
    the response's JSON-ready dict, or raises :class:`ApiError`."""

    def __init__(
        self,
        predictor: Predictor,
        cache_bytes: int,
        others: Mapping[str, Predictor] | None = None,
    ) -> None:
        self.predictor = predictor
        self.cache = OutputCache(cache_bytes)
        self.windows_available = self._load_windows()
        # the same model for the other kinds of data it was trained on (e.g. web pages)
        own = None if predictor.condition is None else predictor.condition.kind
        self.predictors: dict[str | None, Predictor] = {own: predictor, **(others or {})}
        self.default_condition = own

    @property
    def conditions(self) -> list[str]:
        """The kinds of data this server predicts for (the default first)."""
        return [kind for kind in self.predictors if kind is not None]

    def predictor_for(self, condition: str | None) -> Predictor:
        """The predictor of a request's ``condition`` (None: the server's default); 422 for a
        kind this server was not started with."""
        if condition is None or condition == self.default_condition:
            return self.predictor
        if condition not in self.predictors:
            known = ", ".join(self.conditions) or "none (the model takes no condition)"
            raise ApiError(
                422,
                "unknown_condition",
                f"condition {condition!r}: this server predicts for {known}",
            )
        return self.predictors[condition]

    def _load_windows(self) -> bool:
        """Load the viewing-time readouts now (not racing on first use in two threads);
        False for a model they do not run on."""
        try:
            self.predictor.windows  # noqa: B018 (loads the readouts)
        except (ValueError, FileNotFoundError):
            return False
        return True

    # ------------------------------------------------------------------ the model

    def outputs(
        self, upload: Upload, windows: bool = False, condition: str | None = None
    ) -> ModelOutput:
        """The model's outputs for an upload (for ``condition``), from the cache when the same
        bytes came before."""
        predictor = self.predictor_for(condition)
        if windows and predictor is not self.predictor:
            raise ApiError(
                422,
                "windows_unavailable",
                "viewing-time windows were trained on eye tracking on natural images only",
            )
        if windows and not self.windows_available:
            raise ApiError(
                422,
                "windows_unavailable",
                "viewing-time windows run on the default model's backbone; this server's model "
                "has none",
            )
        key = f"{hashlib.sha256(upload.data).hexdigest()}/{condition or self.default_condition}"
        cached = self.cache.get(key)
        if cached is not None and (cached.windows is not None or not windows):
            return cached
        image = decode_upload(upload)
        (found,) = predictor.run_model([image], windows)
        self.cache.put(key, found)
        return found

    def prediction(
        self,
        upload: Upload,
        scanpaths: int = 0,
        seed: int = 0,
        windows: bool = False,
        condition: str | None = None,
    ) -> tuple[np.ndarray, Prediction]:
        """The image and its :class:`~salience.predictor.Prediction` (for ``condition``)."""
        out = self.outputs(upload, windows, condition)
        if not windows:
            out = replace(out, windows=None)
        predictor = self.predictor_for(condition)
        return out.image, predictor.prediction(out, upload.name, scanpaths, seed)

    # ------------------------------------------------------------------ endpoints

    def predict(
        self,
        upload: Upload,
        maps: MapOptions,
        scanpaths: int,
        seed: int,
        windows: bool,
        condition: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/predict``: the fixations JSON of ``salience predict`` and the maps."""
        image, prediction = self.prediction(upload, scanpaths, seed, windows, condition)
        record = prediction.fixations_dict()
        record["settings"] = predict_settings(
            self.predictor_for(condition), maps.colormap, maps.opacity, scanpaths, seed, windows
        )
        height, width = prediction.size
        return {
            **record,
            **_maps(image, prediction.density, maps),
            "width": width,
            "height": height,
            "gaze_plot_png": png_base64(gaze_plot(image, prediction.fixations)),
            "windows": [
                {
                    "label": w.window.label,
                    "start": w.window.start,
                    "end": w.window.end,
                    **_maps(image, w.density, maps),
                }
                for w in prediction.windows
            ],
        }

    def aoi(self, upload: Upload, query: RegionQuery) -> dict[str, Any]:
        """``POST /v1/aoi``: share, lift and P(in first k) with its interval, per region."""
        _, prediction = self.prediction(upload, condition=query.condition)
        report = self._analyzed(query, prediction)
        return _report(report, upload.name)

    def _analyzed(
        self, query: RegionQuery, *predictions: Prediction
    ) -> AoiReport | ComparisonReport:
        """``query`` on one prediction (:func:`analyze`) or two (:func:`compare`, B - A); 422
        for regions the images cannot hold."""
        sampler = self.predictor_for(query.condition).sampler
        densities = [p.density for p in predictions]
        ppds = [p.pixels_per_degree for p in predictions]
        sampling = (query.k, query.samples, query.seed)
        try:
            if len(predictions) == 1:
                return analyze(densities[0], query.regions, sampler, ppds[0], *sampling)
            return compare(*densities, query.regions, sampler, *ppds, *sampling)
        except RegionError as exc:
            raise ApiError(422, "bad_regions", str(exc)) from None

    def compare(self, a: Upload, b: Upload, query: RegionQuery, maps: MapOptions) -> dict[str, Any]:
        """``POST /v1/compare``: both reports, per-region deltas B - A, the difference map."""
        image_a, pred_a = self.prediction(a, condition=query.condition)
        image_b, pred_b = self.prediction(b, condition=query.condition)
        report = self._analyzed(query, pred_a, pred_b)
        common = report.difference.shape
        dens_a, dens_b = pred_a.density, pred_b.density
        if dens_a.shape != common:
            dens_a = resample_density(dens_a, common)
        if dens_b.shape != common:
            dens_b = resample_density(dens_b, common)
        return {
            "a": _report(report.a, a.name),
            "b": _report(report.b, b.name),
            "regions": report.deltas(),
            "difference_size": list(common),
            "difference_png": png_base64(difference_map(dens_a, dens_b)),
            "a_overlay_png": png_base64(
                overlay(image_a, pred_a.density, maps.colormap, maps.opacity)
            ),
            "b_overlay_png": png_base64(
                overlay(image_b, pred_b.density, maps.colormap, maps.opacity)
            ),
            "csv": report.to_csv(),
        }


def decode_upload(upload: Upload) -> np.ndarray:
    """An upload as uint8 RGB; 415 for bytes in no image format, 422 for a corrupt image or
    one with too many pixels, each message naming the upload."""
    if not upload.data:
        raise ApiError(415, "not_an_image", f"{upload.name}: the file is empty")
    try:
        return decode_image(upload.data, upload.name)
    except NotAnImageError as exc:
        raise ApiError(415, "not_an_image", str(exc)) from None
    except ImageTooLargeError as exc:
        raise ApiError(422, "too_many_pixels", str(exc)) from None
    except ImageReadError as exc:
        raise ApiError(422, "unreadable_image", str(exc)) from None


def _maps(image: np.ndarray, density: np.ndarray, options: MapOptions) -> dict[str, Any]:
    """Heatmap, overlay and display map PNGs of one density (and the density if asked)."""
    shown = display_map(density)
    return {
        "heatmap_png": png_base64(heatmap(density, options.colormap, display=shown)),
        "overlay_png": png_base64(
            overlay(image, density, options.colormap, options.opacity, display=shown)
        ),
        "display_png": png_base64(np.round(shown * 255).astype(np.uint8)),
        "density_npy": npy_base64(density) if options.density else None,
    }


def _report(report: AoiReport, name: str) -> dict[str, Any]:
    """An :class:`~salience.analysis.aoi.AoiReport` as the API's AOI JSON, with its CSV."""
    data = report.to_dict()
    height, width = report.image_size
    return {
        "image": name,
        "width": width,
        "height": height,
        "pixels_per_degree": report.ppd,
        "k": report.k,
        "n": report.n,
        "seed": report.seed,
        "sampler": report.sampler,
        "regions": data["regions"],
        "csv": report.to_csv(),
    }
