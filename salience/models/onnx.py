"""The ONNX Runtime backend: the shipped and trained dense models as ONNX graphs, run without
PyTorch.

:class:`OnnxDensity` is the grid runner of :class:`~salience.models.density.GridDensity` with
the network replaced by an ONNX Runtime session: each image resized with its aspect kept to the
network's input (PIL bilinear, as the PyTorch path), run on its own, and the cells' density
upsampled bilinearly to the image and renormalized (in numpy, float64, the arithmetic of
``torch.nn.functional.interpolate``). Its densities match the PyTorch backend's to about 1e-6 in
total variation (``tests/models/test_onnx.py`` holds them to 1e-5).

Where the graphs come from (:func:`load_onnx`):

* a shipped model name or a ``.safetensors`` checkpoint: its fp32 graph is built at first use
  by :func:`salience.models.onnx_export.export_onnx` (which needs PyTorch, once) and cached in the
  user cache folder (:func:`cache_dir`; ``SALIENCE_CACHE`` overrides it), named by the sha256 of
  the weights it was made of, written atomically, so a changed weight file gets a new graph and
  concurrent processes never see half of one;
* an ``.onnx`` file written by ``salience export --format onnx``: used as it is (no PyTorch
  needed at all);
* an int8 copy (``salience export --format onnx --int8``) runs as any ``.onnx`` file; none
  ships: it lost too much accuracy for too little speed (``BENCHMARKS.md``, "Fast inference").

The graph's metadata carries what the Predictor needs besides the network: the checkpoint's
metadata (trained conditions, scanpath sampler) and the input rule (``salience_onnx``).
onnxruntime is the optional extra ``salience[onnx]``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from salience.data.conditions import Condition, choose, extra_conditions, trained_conditions
from salience.data.windows import Window
from salience.models.base import ImageDensityModel
from salience.models.input_size import input_size_for

FORMAT_KEY = "salience_onnx"  # the graph's interface record (salience.models.onnx_export)
FORMAT_VERSION = 1  # bump when the graph's interface changes: older graphs are refused
# bump when only what the graph computes with changes (2: TF padding in the kernels, faster):
# cached graphs of an earlier revision are rebuilt, exported files keep working
GRAPH_REVISION = 2
INSTALL_HINT = 'pip install "salience[onnx]"'
_TINY = np.finfo(np.float64).tiny


class MissingExtraError(ImportError):
    """An optional dependency of the ONNX backend is not installed; the message names the extra."""


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ModuleNotFoundError as exc:
        raise MissingExtraError(
            f"the onnxruntime backend needs the onnxruntime package: {INSTALL_HINT}"
        ) from exc
    return onnxruntime


def cache_dir() -> Path:
    """Where built graphs are kept: ``$SALIENCE_CACHE`` if set, else the user cache folder
    (``~/.cache/salience`` on Linux, per platformdirs elsewhere)."""
    if os.environ.get("SALIENCE_CACHE"):
        return Path(os.environ["SALIENCE_CACHE"])
    try:
        from platformdirs import user_cache_dir
    except ModuleNotFoundError as exc:
        raise MissingExtraError(
            f"the onnxruntime backend needs the platformdirs package: {INSTALL_HINT}"
        ) from exc
    return Path(user_cache_dir("salience", appauthor=False))


def _interpolation(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (lower, upper) and upper weights of bilinear resampling from ``size_in``
    to ``size_out`` samples, half-pixel centers (``align_corners=False``), as PyTorch computes
    them in float64."""
    scale = size_in / size_out
    source = np.maximum((np.arange(size_out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    lower = np.minimum(source.astype(np.int64), size_in - 1)
    upper = np.minimum(lower + 1, size_in - 1)
    return lower, upper, source - lower


_interpolation_cached = lru_cache(maxsize=64)(_interpolation)


def upsample(log_cells: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Log-density over cells (h, w) -> log-density (float64) over the pixels of ``size``:
    the cells' density resampled bilinearly, floored at the smallest float64, renormalized."""
    density = np.exp(log_cells.astype(np.float64))  # (h, w)
    top, bottom, wy = _interpolation_cached(density.shape[0], size[0])
    left, right, wx = _interpolation_cached(density.shape[1], size[1])
    rows = density[top] * (1.0 - wy)[:, None]
    rows += density[bottom] * wy[:, None]  # (H, w)
    out = rows[:, left] * (1.0 - wx)
    out += rows[:, right] * wx  # (H, W)
    np.maximum(out, _TINY, out=out)
    out /= out.sum()
    return np.log(out, out=out)


class OnnxDensity(ImageDensityModel):
    """A dense model's ONNX graph run by ONNX Runtime; log-densities at each image's own size.

    ``path``: the graph (see :mod:`salience.models.onnx_export` for its interface);
    ``condition``: the kind of data predicted for (one the model was trained on); ``threads``:
    ONNX Runtime's intra-op threads (default: its own choice, the physical cores);
    ``windowed``: gives the graph with the viewing-time window readouts, for
    :meth:`with_windows` (called on first use: building it costs an export)."""

    name = "onnx"

    def __init__(
        self,
        path: str | Path,
        condition: Condition | int | str | None = None,
        threads: int | None = None,
        windowed: Callable[[], Path] | None = None,
    ) -> None:
        ort = _onnxruntime()
        self.path = Path(path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        # idle threads wait instead of spinning: they share the cores with the decoding and
        # writing threads of salience.batch (and, on a loaded machine, with other processes)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own unexported error types
            raise ValueError(f"{self.path}: not a usable ONNX graph ({exc})") from exc
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if FORMAT_KEY not in self.metadata:
            raise ValueError(
                f"{self.path}: not a salience ONNX graph (no {FORMAT_KEY} in its metadata; "
                "write one with 'salience export --format onnx')"
            )
        self.info = json.loads(self.metadata[FORMAT_KEY])
        if self.info.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{self.path}: graph format {self.info.get('version')}, this salience reads "
                f"{FORMAT_VERSION}; export it again"
            )
        self.name = self.metadata.get("model", self.name)
        self.input_pixels = int(self.info["input_pixels"])
        self.precision = str(self.info["precision"])
        self.trained = trained_conditions(self.metadata, str(self.path))
        self.condition = choose(condition, self.trained, str(self.path))
        self.windows = tuple(Window(*w) for w in self.info.get("windows", []))
        self._threads = threads
        self._windowed = windowed

    def input_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The network's input (height, width) for an image of ``size``; an error where the
        graph is not valid (aspect ratios beyond about 20:1)."""
        input_size = input_size_for(size, self.input_pixels, int(self.info["multiple"]))
        if min(input_size) < int(self.info["min_side"]):
            raise ValueError(
                f"a {size[1]}x{size[0]} image is too elongated for the ONNX graph (network "
                f"input {input_size[1]}x{input_size[0]}, shorter side under "
                f"{self.info['min_side']}); use the torch backend"
            )
        return input_size

    def with_windows(self) -> OnnxDensity:
        """This model with the shipped viewing-time window readouts, as one graph (an error
        for models other than the shipped default)."""
        if self.windows:
            return self
        if self._windowed is None:
            raise ValueError(
                "viewing-time windows run on the default model's backbone; this ONNX graph "
                f"({self.path.name}) has no window readouts"
            )
        return OnnxDensity(self._windowed(), self.condition, self._threads)

    def _cells(self, images: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """Per image the graph's outputs for it (each (..., h', w') float32). Images run one at
        a time: on a CPU a batch is no faster, and its activations take several times the
        memory (hundreds of MB for 8 images)."""
        results = []
        for image in images:
            height, width = self.input_size(image.shape[:2])
            resized = Image.fromarray(image).resize((width, height), Image.BILINEAR)
            outputs = self.session.run(None, {"image": np.asarray(resized)[None]})
            results.append([output[0] for output in outputs])
        return results

    def log_densities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 (H_i, W_i, 3) images -> float64 log-densities (H_i, W_i), each summing to 1."""
        return [
            upsample(cells[0], image.shape[:2])
            for cells, image in zip(self._cells(images), images, strict=True)
        ]

    def window_log_densities(
        self, images: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image the model's log-density (H, W) and the windows' (K, H, W), from one run
        (a graph with window readouts only, see :meth:`with_windows`)."""
        if not self.windows:
            raise ValueError(f"{self.path.name} has no viewing-time window readouts")
        results = []
        for (own, windows), image in zip(self._cells(images), images, strict=True):
            size = image.shape[:2]
            results.append((upsample(own, size), np.stack([upsample(w, size) for w in windows])))
        return results


def sha256_of(*paths: Path) -> str:
    """sha256 over the bytes of the files, in order: identifies the weights a graph was made of."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def built_graph(checkpoint: Path, windows: Path | None = None) -> Path:
    """The fp32 graph of a dense checkpoint (with window readouts, if given): from the cache,
    or exported there first (which needs PyTorch)."""
    digest = sha256_of(checkpoint, *([windows] if windows else []))
    stem = checkpoint.stem + ("+windows" if windows else "")
    path = cache_dir() / f"{stem}-v{FORMAT_VERSION}.{GRAPH_REVISION}-{digest[:16]}.onnx"
    if path.is_file():
        return path
    try:
        from salience.models.onnx_export import export_onnx
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith("salience"):
            raise
        raise MissingExtraError(
            f"building the ONNX graph of {checkpoint.name} needs {exc.name} once: "
            'pip install "salience[torch,onnx]" (or pass an .onnx file written by '
            "'salience export --format onnx')"
        ) from exc
    return export_onnx(checkpoint, path, windows)


def load_onnx(
    source: str | Path,
    condition: Condition | int | str | None = None,
    threads: int | None = None,
) -> OnnxDensity:
    """The model ``source`` (a shipped model's name, a ``.safetensors`` checkpoint or an
    ``.onnx`` graph) run by ONNX Runtime on ``threads`` threads; see the module docstring for
    where graphs come from."""
    _onnxruntime()  # the extra's error before any export work
    path = Path(source)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ONNX graph not found")
        return OnnxDensity(path, condition, threads)
    from salience.models.metadata import read_metadata  # torch: only to build a graph
    from salience.models.registry import family_of, list_models, shipped_weights

    shipped = not path.is_file()
    # a registered model with no weights file of its own (a baseline, a mixture) is no dense one
    in_code = shipped and str(source) in list_models() and family_of(str(source)).config_key is None
    if shipped and not in_code:  # a shipped model's name
        path = shipped_weights(str(source))
    if in_code or "dense_config" not in read_metadata(path):
        raise ValueError(
            f"{path}: the ONNX Runtime backend runs the dense models only (such as default and "
            "accurate), not this one: use the torch backend for it"
        )
    if condition is not None:
        if Condition.parse(condition) in extra_conditions(path):
            raise ValueError(
                f"condition {Condition.parse(condition).kind!r} of {path.name} comes from a file "
                "beside it that the ONNX graph does not hold: use the torch backend for it"
            )
    windows = None
    if shipped and path.stem == "default":  # the window readouts run on its backbone

        def windows() -> Path:
            return built_graph(path, shipped_weights("windows"))

    return OnnxDensity(built_graph(path), condition, threads, windows)
