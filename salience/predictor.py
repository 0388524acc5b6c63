"""The Python API practitioners use: an image in, where people will look out.

    from salience import Predictor
    predictor = Predictor.from_pretrained()          # the shipped default model, offline
    result = predictor.predict("design.png")         # path, PIL image or numpy array
    result.density                                   # (H, W), sums to 1, at the input's size
    result.fixations, result.fixation_probs          # likely first fixations, in order
    result = predictor.predict("design.png", scanpaths=3, seed=0)
    result.scanpaths[0].x, .y, .duration             # one sampled scanpath, in viewing order
    result = predictor.predict("design.png", windows=True)
    result.windows[1].window, .density               # where people look during 1-2 s

The density is the model's probabilistic output (a distribution over the pixels a free-viewing
observer fixates during the first seconds). Predicted fixations are its peaks taken in order
with inhibition of return (:func:`salience.models.sampler.greedy_fixations`); each one's probability
is the density's mass within one degree of visual angle of it. Scanpaths sampled from the
density (:meth:`Predictor.sample_scanpaths`) carry the model's uncertainty about order;
``predict(image, scanpaths=k, seed=s)`` keeps ``k`` of them with the prediction (sampling one
costs about 15 ms of CPU on an 800x600 image, a fifth of the model's time, so ``predict``
samples none unless asked).

Degrees need a viewing geometry: an image is assumed to be seen as the training images were
(the longer side spans what an OSIE image's width did, about 33 degrees), unless
``image_degrees`` says otherwise.

The network runs on PyTorch, or with ``backend="onnxruntime"`` as an ONNX graph on ONNX Runtime
(:mod:`salience.models.onnx`; the same densities to about 1e-6 in total variation, no torch
needed once the graph is built); everything after the network is this module's, whichever
runs it.

Viewing-time windows (0-1 s, 1-2 s, 2-3 s; ``predict(image, windows=True)``) come from the
shipped window readouts (``salience/weights/windows.md``), which run on the default model's
backbone in the same forward pass; other models' backbones are refused.

Images much taller than wide (over 2:1, e.g. full-page screenshots) or much wider than tall
(over 2.5:1) are predicted viewport by viewport and joined into one density
(:mod:`salience.models.tiling`); ``Prediction.tiled`` says how, and degrees are then those of
one viewport. ``Predictor(model, tiling=False)`` predicts every image whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from salience.data.windows import Window
from salience.io.images import (
    MAX_PIXELS,
    WORKING_PIXELS,
    DecodedImage,
    ImageReadError,
    fit_size,
    read_image,
    to_rgb_array,
)
from salience.models.base import DensityModel, ImageDensityModel
from salience.models.sampler import (
    DEFAULT_IMAGE_SPAN_DEGREES,
    Scanpaths,
    ScanpathSampler,
    greedy_fixations,
)
from salience.models.tiling import Tiler, Tiling

if TYPE_CHECKING:
    from salience.data.conditions import Condition
    from salience.models.dense.windows import WindowedDensity
    from salience.models.onnx import OnnxDensity

# How the network runs: PyTorch, or ONNX Runtime (salience.models.onnx)
BACKENDS = ("torch", "onnxruntime")

ImageLike = str | Path | Image.Image | np.ndarray | DecodedImage


@dataclass(frozen=True, eq=False)
class Scanpath:
    """One predicted scanpath: fixations in viewing order, (x, y) in 0-based pixels (pixel
    ``(i, j)`` covers ``j <= x < j + 1``), durations in seconds."""

    x: np.ndarray  # (k,) float64
    y: np.ndarray  # (k,)
    duration: np.ndarray  # (k,) seconds

    def __len__(self) -> int:
        return len(self.x)

    @property
    def points(self) -> np.ndarray:
        """(k, 2) (x, y) positions, as :func:`salience.analysis.render.gaze_plot` takes them."""
        return np.stack([self.x, self.y], axis=1)

    def to_dict(self) -> dict:
        """JSON-ready: ``{"fixations": [{"order", "x", "y", "duration"}, ...]}``."""
        return {
            "fixations": [
                {"order": i + 1, "x": float(x), "y": float(y), "duration": float(d)}
                for i, (x, y, d) in enumerate(zip(self.x, self.y, self.duration, strict=True))
            ]
        }

    @classmethod
    def from_dict(cls, data: dict) -> Scanpath:
        """The inverse of :meth:`to_dict` (fixations sorted by their ``order``)."""
        fixations = sorted(data["fixations"], key=lambda f: f["order"])
        return cls(
            *(
                np.array([f[key] for f in fixations], dtype=np.float64)
                for key in ("x", "y", "duration")
            )
        )


@dataclass(frozen=True, eq=False)
class WindowMap:
    """Where people look during one window of viewing time, at the image's resolution."""

    window: Window
    log_density: np.ndarray  # (H, W) float64, natural log, logsumexp = 0

    @property
    def density(self) -> np.ndarray:
        """(H, W) float64, sums to 1: the share of the window's viewing time on each pixel."""
        density = np.exp(self.log_density)
        return density / density.sum()


@dataclass
class Prediction:
    """What the model predicts for one image, at the image's own resolution.

    ``fixations`` (K, 2) are (x, y) pixel coordinates in predicted order, ``fixation_probs``
    (K,) the probability that a fixation lands within one degree of each. ``scanpaths``: the
    scanpaths sampled with the prediction (none unless asked for), from ``scanpath_seed``.
    ``windows``: one map per viewing-time window (none unless asked for). ``image``: the RGB
    image it was made from (for overlays). An image of more than :data:`WORKING_PIXELS` pixels
    is predicted at a reduced resolution (aspect kept): every array and coordinate is then in
    that resolution's pixels, and ``original_size`` is the full image's (height, width).
    ``tiled``: for an image predicted viewport by viewport, how it was cut
    (:meth:`salience.models.tiling.Tiling.describe`), else None.
    """

    log_density: np.ndarray  # (H, W) float64, natural log, logsumexp = 0
    fixations: np.ndarray  # (K, 2) float64 (x, y) pixels
    fixation_probs: np.ndarray  # (K,) float64
    pixels_per_degree: float
    source: str | None = None
    _density: np.ndarray | None = field(default=None, repr=False)
    scanpaths: list[Scanpath] = field(default_factory=list)
    scanpath_seed: int | None = None
    windows: list[WindowMap] = field(default_factory=list)
    image: np.ndarray | None = field(default=None, repr=False)  # (H, W, 3) uint8, the input
    original_size: tuple[int, int] | None = None  # the file's (height, width) when reduced
    tiled: dict | None = None  # how a tall or wide image was cut into viewports (else None)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return self.log_density.shape

    @property
    def density(self) -> np.ndarray:
        """(H, W) float64 probabilities of each pixel being fixated; sums to 1."""
        if self._density is None:
            density = np.exp(self.log_density)
            self._density = density / density.sum()
        return self._density

    @property
    def display_map(self) -> np.ndarray:
        """(H, W) in [0, 1] for people to look at (see
        :func:`salience.analysis.render.display_map`)."""
        from salience.analysis.render import display_map

        return display_map(self.density)

    def fixations_dict(self) -> dict:
        """The predicted fixations and scanpaths as JSON-ready data (``scanpaths`` may be
        empty; :meth:`Scanpath.from_dict` reads each one back)."""
        reduced = {}
        if self.original_size is not None:
            height, width = self.original_size
            reduced = {"original_size": {"height": height, "width": width}}
        return {
            "image": self.source,
            "size": {"height": self.size[0], "width": self.size[1]},
            **reduced,
            "pixels_per_degree": self.pixels_per_degree,
            "fixations": [
                {"order": i + 1, "x": float(x), "y": float(y), "probability": float(p)}
                for i, ((x, y), p) in enumerate(
                    zip(self.fixations, self.fixation_probs, strict=True)
                )
            ],
            "scanpath_seed": self.scanpath_seed,
            "scanpaths": [path.to_dict() for path in self.scanpaths],
            "tiled": self.tiled,
        }

    def fixations_json(self) -> str:
        """:meth:`fixations_dict` as indented JSON text."""
        return json.dumps(self.fixations_dict(), indent=1)


def as_rgb(image: ImageLike, max_pixels: int | None = None) -> DecodedImage:
    """A path, PIL image or array as uint8 RGB (H, W, 3), upright per its EXIF orientation,
    reduced (aspect kept) to at most ``max_pixels`` pixels, with the full image's size; a file
    is reduced while it is decoded, so memory follows ``max_pixels``, not the file's claims."""
    if isinstance(image, (str, Path)):
        return read_image(image, max_pixels)
    if isinstance(image, DecodedImage):  # decoded already (e.g. ahead, by another thread)
        if max_pixels is None or image.pixels.shape[0] * image.pixels.shape[1] <= max_pixels:
            return image
        return DecodedImage(as_rgb(image.pixels, max_pixels).pixels, image.original_size)
    if isinstance(image, Image.Image):
        if image.width * image.height > MAX_PIXELS:
            raise ImageReadError(f"{image.width}x{image.height} pixels is larger than allowed")
        rgb = to_rgb_array(ImageOps.exif_transpose(image))
    elif isinstance(image, np.ndarray):
        if image.ndim >= 2 and image.shape[0] * image.shape[1] > MAX_PIXELS:
            raise ImageReadError(f"{image.shape[1]}x{image.shape[0]} pixels is larger than allowed")
        rgb = to_rgb_array(image)
    else:
        raise TypeError(f"expected a path, PIL image or numpy array, got {type(image).__name__}")
    size = rgb.shape[:2]
    target = size if max_pixels is None else fit_size(size, max_pixels)
    if target != size:
        rgb = np.asarray(Image.fromarray(rgb).resize(target[::-1], Image.Resampling.BILINEAR))
    return DecodedImage(rgb, size)


def uses_onnxruntime(backend: str, device: Any = None) -> bool:
    """Whether ``backend`` (one of :data:`BACKENDS`) is ONNX Runtime; errors for unknown names
    and for a device other than the CPU with ONNX Runtime."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; the backends are {', '.join(BACKENDS)}")
    if backend == "onnxruntime" and device is not None and str(device) != "cpu":
        raise ValueError(f"the onnxruntime backend runs on the CPU, not on {device}")
    return backend == "onnxruntime"


def _source(image: ImageLike) -> str | None:
    return str(image) if isinstance(image, (str, Path)) else None


@dataclass(frozen=True, eq=False)
class ModelOutput:
    """The model's work on one image, the expensive half of a prediction (as segment-anything's
    image embedding is): a caller that predicts the same image again, with other scanpaths or
    regions, keeps it and calls :meth:`Predictor.prediction` (the web service's cache does)."""

    image: np.ndarray  # (H, W, 3) uint8, as the model saw it
    log_density: np.ndarray  # (H, W) float64
    windows: np.ndarray | None = None  # (K, H, W) the viewing-time windows', when asked for
    original_size: tuple[int, int] | None = None  # the file's (height, width) when reduced
    tiling: Tiling | None = None  # how a tall or wide image was cut into viewports

    @property
    def nbytes(self) -> int:
        extra = 0 if self.windows is None else self.windows.nbytes
        return self.image.nbytes + self.log_density.nbytes + extra


@dataclass(frozen=True, eq=False)
class PredictionItem:
    """One input of :meth:`Predictor.predict_many`: its prediction, or why it has none.

    ``error`` names the input and the problem (an unreadable, corrupt or oversized image);
    ``seconds`` is the model's time per image of the batch the input ran in."""

    input: ImageLike
    prediction: Prediction | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.prediction is not None


class Predictor:
    """Runs a density model on images and returns :class:`Prediction` objects: the one
    inference path of the library, the command line and the service.

    ``model`` is any :class:`~salience.models.base.DensityModel` that works from the image;
    one with ``log_densities(images)`` (the grid models) runs batches in one forward pass.
    ``sampler``: the scanpath sampler (default: the checkpoint's, else OSIE's);
    ``n_fixations``: likely fixations per prediction; ``scanpath_length``: fixations per
    sampled scanpath; ``image_degrees``: the viewing geometry (see the module docstring);
    ``tiling``: predict tall and wide images viewport by viewport (see the module docstring).
    """

    def __init__(
        self,
        model: DensityModel,
        sampler: ScanpathSampler | None = None,
        n_fixations: int = 10,
        image_degrees: float = DEFAULT_IMAGE_SPAN_DEGREES,
        scanpath_length: int = 10,
        tiling: bool = True,
    ) -> None:
        if n_fixations < 1:
            raise ValueError(f"n_fixations must be at least 1, got {n_fixations}")
        if scanpath_length < 1:
            raise ValueError(f"scanpath_length must be at least 1, got {scanpath_length}")
        if not (np.isfinite(image_degrees) and image_degrees > 0):
            raise ValueError(f"image_degrees must be a positive number, got {image_degrees}")
        self.model = model
        if sampler is None and "sampler" in getattr(model, "metadata", {}):
            sampler = ScanpathSampler.from_dict(json.loads(model.metadata["sampler"]))
        self.sampler = sampler or ScanpathSampler()
        self.n_fixations = n_fixations
        self.image_degrees = image_degrees
        self.scanpath_length = scanpath_length
        self._windowed: WindowedDensity | OnnxDensity | None = None
        self.tiler = Tiler() if tiling else None

    @classmethod
    def from_pretrained(
        cls,
        name: str = "default",
        device: Any = None,
        condition: Any = None,
        backend: str = "torch",
        **kwargs: Any,
    ) -> Predictor:
        """The model ``name`` shipped inside the package (no network access), on ``device``
        (default: the CPU), predicting for ``condition`` (a kind of data it was trained on),
        run by ``backend`` (one of :data:`BACKENDS`; see :mod:`salience.models.onnx`)."""
        if uses_onnxruntime(backend, device):
            from salience.models.onnx import load_onnx

            return cls(load_onnx(name, condition), **kwargs)
        from salience.models.registry import load_pretrained

        return cls(load_pretrained(name, condition, device), **kwargs)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: Any = None,
        condition: Any = None,
        backend: str = "torch",
        **kwargs: Any,
    ) -> Predictor:
        """Weights written by ``salience train`` or ``salience export`` (any family; for the
        onnxruntime backend a dense model, or an ``.onnx`` graph from ``salience export
        --format onnx``), predicting for ``condition`` (one the checkpoint was trained on;
        default eye tracking on natural images), run by ``backend``."""
        if uses_onnxruntime(backend, device):
            from salience.models.onnx import load_onnx

            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: checkpoint not found")
            return cls(load_onnx(path, condition), **kwargs)
        from salience.models.registry import load_checkpoint

        return cls(load_checkpoint(path, condition, device), **kwargs)

    @property
    def condition(self) -> Condition | None:
        """The kind of data the model predicts for (None for models without conditions)."""
        return getattr(self.model, "condition", None)

    @property
    def windows(self) -> tuple[Window, ...]:
        """The viewing-time windows ``predict(..., windows=True)`` maps (loads their readouts)."""
        return self._windowed_model().windows

    def _windowed_model(self) -> WindowedDensity | OnnxDensity:
        """The model with the shipped viewing-time window readouts on its backbone, loaded on
        first use; an error for a model whose backbone they were not trained on, or for another
        kind of data than the one they were trained on (eye tracking on natural images)."""
        if self.condition is not None and self.condition.kind != "eye":
            raise ValueError(
                "viewing-time windows were trained on eye tracking on natural images, not for "
                f"condition {self.condition.kind!r}"
            )
        if self._windowed is None and hasattr(self.model, "with_windows"):  # ONNX Runtime
            self._windowed = self.model.with_windows()
        if self._windowed is None:
            from salience.models.dense import DenseDensity
            from salience.models.dense.windows import WindowedDensity
            from salience.models.registry import shipped_weights

            if not isinstance(self.model, DenseDensity):
                raise ValueError(
                    "viewing-time windows run on the default model's backbone; "
                    f"a {type(self.model).__name__} has none"
                )
            self._windowed = WindowedDensity.from_file(shipped_weights("windows"), self.model)
        return self._windowed

    def run_model(
        self, images: list[np.ndarray | DecodedImage], windows: bool = False
    ) -> list[ModelOutput]:
        """The model on uint8 RGB images (or decoded ones, which keep their file's size), batched
        where it can: per image its log-density and, with ``windows``, the viewing-time
        windows' log-densities from the same forward pass."""
        decoded = [
            im if isinstance(im, DecodedImage) else DecodedImage(im, im.shape[:2]) for im in images
        ]
        arrays = [d.pixels for d in decoded]
        if self.tiler is None:
            results = [(maps, None) for maps in self._maps(arrays, windows)]
        else:
            results = self.tiler.run(arrays, lambda batch: self._maps(batch, windows))
        return [
            ModelOutput(
                d.pixels,
                maps[0],
                maps[1:] if windows else None,
                None if d.pixels.shape[:2] == tuple(d.original_size) else tuple(d.original_size),
                tiling,
            )
            for d, (maps, tiling) in zip(decoded, results, strict=True)
        ]

    def _maps(self, images: list[np.ndarray], windows: bool) -> list[np.ndarray]:
        """Per uint8 RGB image the model's log-density and, with ``windows``, the viewing-time
        windows' from the same forward pass, stacked: (1 or 1 + K, H, W)."""
        if windows:
            pairs = self._windowed_model().window_log_densities(images)
            return [np.concatenate([own[None], each]) for own, each in pairs]
        if isinstance(self.model, ImageDensityModel):
            return [log_density[None] for log_density in self.model.log_densities(images)]
        return [self.model.log_density(im, im.shape[:2])[None] for im in images]

    def pixels_per_degree(self, size: tuple[int, int]) -> float:
        """Pixels per degree of an image of ``size`` = (height, width) under the assumed
        viewing geometry."""
        return max(size) / self.image_degrees

    def prediction(
        self, output: ModelOutput, source: str | None = None, scanpaths: int = 0, seed: int = 0
    ) -> Prediction:
        """The :class:`Prediction` made from the model's output for an image: the likely
        fixations, ``scanpaths`` scanpaths sampled as :meth:`sample_scanpaths` does with
        ``seed``, and the windows' maps if the output has them. A tiled image's degrees are
        those of one of its viewports."""
        if scanpaths < 0:
            raise ValueError(f"scanpaths must be >= 0, got {scanpaths}")
        log_density = output.log_density
        tiling = output.tiling
        ppd = self.pixels_per_degree(log_density.shape if tiling is None else tiling.viewport)
        density = np.exp(log_density)
        density /= density.sum()
        points, probs = greedy_fixations(density, self.n_fixations, radius_px=ppd)
        prediction = Prediction(
            log_density,
            points,
            probs,
            ppd,
            source,
            density,
            image=output.image,
            original_size=output.original_size,
            tiled=None if tiling is None else tiling.describe(),
        )
        if scanpaths > 0:
            sampled = self.sample_scanpaths(prediction, scanpaths, self.scanpath_length, seed)
            prediction.scanpaths = [
                Scanpath(sampled.x[i], sampled.y[i], sampled.duration[i]) for i in range(scanpaths)
            ]
            prediction.scanpath_seed = seed
        if output.windows is not None:
            prediction.windows = [
                WindowMap(window, log_window)
                for window, log_window in zip(self.windows, output.windows, strict=True)
            ]
        return prediction

    def predict(
        self, image: ImageLike, scanpaths: int = 0, seed: int = 0, windows: bool = False
    ) -> Prediction:
        """The prediction for one image (see :func:`as_rgb` for what ``image`` may be), with
        ``scanpaths`` sampled scanpaths of ``scanpath_length`` fixations, reproducible by
        ``seed`` (on an 800x600 image one costs about 15 ms of CPU, 100 about 25 ms), and with
        ``windows`` one map per viewing-time window. An unreadable image raises
        :class:`~salience.io.images.ImageReadError`."""
        (prediction,) = self.predict_batch([image], 1, scanpaths, seed, windows)
        return prediction

    def predict_batch(
        self,
        images: Iterable[ImageLike],
        batch_size: int = 8,
        scanpaths: int = 0,
        seed: int = 0,
        windows: bool = False,
    ) -> list[Prediction]:
        """Predictions for many images, ``batch_size`` at a time (same-shaped inputs share a
        forward pass); the first unreadable image raises. Each image's scanpaths use ``seed``
        itself: they equal :meth:`predict`'s."""
        results = []
        for item in self.predict_many(images, batch_size, scanpaths, seed, windows):
            if item.prediction is None:
                raise ImageReadError(item.error)
            results.append(item.prediction)
        return results

    def predict_many(
        self,
        images: Iterable[ImageLike],
        batch_size: int = 8,
        scanpaths: int = 0,
        seed: int = 0,
        windows: bool = False,
    ) -> Iterator[PredictionItem]:
        """One :class:`PredictionItem` per input, in order, as each batch finishes: a
        prediction, or the error of an input that could not be read (the rest go on). Inputs
        are read lazily, ``batch_size`` at a time, so memory holds one batch whatever the
        number of inputs."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if scanpaths < 0:
            raise ValueError(f"scanpaths must be >= 0, got {scanpaths}")
        if windows:
            self._windowed_model()  # an error before any input is read
        inputs = iter(images)
        while chunk := list(islice(inputs, batch_size)):
            loaded: list[DecodedImage] = []
            items: dict[int, PredictionItem] = {}
            for k, image in enumerate(chunk):
                try:
                    loaded.append(as_rgb(image, WORKING_PIXELS))
                except ImageReadError as exc:
                    items[k] = PredictionItem(image, error=str(exc))
            start = time.perf_counter()
            outputs = iter(self.run_model(loaded, windows) if loaded else [])
            seconds = (time.perf_counter() - start) / max(len(loaded), 1)
            for k, image in enumerate(chunk):
                if k in items:
                    yield items[k]
                    continue
                prediction = self.prediction(next(outputs), _source(image), scanpaths, seed)
                yield PredictionItem(image, prediction, seconds=seconds)

    def sample_scanpaths(
        self, prediction: Prediction, n: int = 1000, length: int = 10, seed: int = 0
    ) -> Scanpaths:
        """``n`` scanpaths of ``length`` fixations drawn from the prediction's density with the
        sampler's inhibition of return, saccade amplitudes and durations; reproducible by seed."""
        rng = np.random.default_rng(seed)
        return self.sampler.sample(prediction.density, n, length, rng, prediction.pixels_per_degree)
