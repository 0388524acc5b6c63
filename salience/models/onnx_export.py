"""Writing a grid model as an ONNX graph for the ONNX Runtime backend (:mod:`salience.models.onnx`).

The graph is the network of the PyTorch inference path, batch norms folded as
:meth:`DenseDensity.from_checkpoint` folds them, with the input conversion and the mirror
averaging inside: input ``image``, uint8 RGB ``(batch, height, width, 3)`` already resized to
the network's input (:func:`~salience.models.density.input_size_for`: the image's aspect, about
``input_pixels`` pixels, sides multiples of 32); output ``log_density``, float32
``(batch, height / s, width / s)`` natural-log cell probabilities (s the output stride, 4), and
with window readouts also ``window_log_densities`` ``(batch, windows, height / s, width / s)``.
Height and width are dynamic. Resizing in and upsampling out stay outside the graph, as in the
PyTorch path, so both backends share them.

The graph's ``metadata_props`` carry the checkpoint's metadata (model config, trained
conditions, scanpath sampler) and, under :data:`FORMAT_KEY`, what the runtime needs to feed
it (see :func:`graph_info`). Only the dense family exports. SUM's selective scan is a Python loop
over a token sequence whose length follows the input size, which a trace would fix to one size;
SalTR is no grid model (its density is a mixture of predicted fixations drawn at the image's
size after the network) and would need its own runner: neither was attempted.

int8 (:func:`quantize_int8`): static QDQ quantization, per output channel, of the backbone's
convolutions only (the readouts, blur, prior and softmax stay float32), with activation ranges
calibrated on images given by the caller.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from salience.io.atomic import atomic_path
from salience.io.images import load_image
from salience.models.dense.density import DenseDensity
from salience.models.dense.windows import WindowedDensity
from salience.models.density import GridDensity
from salience.models.onnx import FORMAT_KEY, FORMAT_VERSION, OnnxDensity, sha256_of

OPSET = 17


def _logaddexp(g: Any, a: Any, b: Any) -> Any:
    """ONNX for ``torch.logaddexp`` (no ONNX operator): max(a, b) + log(1 + exp(-|a - b|))."""
    one = g.op("Constant", value_t=torch.tensor(1.0))
    spread = g.op("Exp", g.op("Neg", g.op("Abs", g.op("Sub", a, b))))
    return g.op("Add", g.op("Max", a, b), g.op("Log", g.op("Add", one, spread)))


class _Graph(nn.Module):
    """uint8 (B, h, w, 3) RGB -> the density model's cell log-densities (and the windows')."""

    def __init__(self, density: GridDensity) -> None:
        super().__init__()
        self.density = density
        self.network = density.model  # registered, so export sees the parameters
        self.windows = isinstance(density, WindowedDensity)
        if self.windows:
            self.window_readouts = density.window_readouts

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, h, w) in [0, 1], as GridDensity
        if not self.windows:
            return self.density.flip_averaged_cells(x)  # (B, h', w')
        cells = self.density.window_cells(x)  # (B, 1 + K, h', w')
        return cells[:, 0], cells[:, 1:]


def min_input_side(density: GridDensity) -> int:
    """The shortest network input side the graph computes correctly: the blur's reflection
    padding is traced for output grids of at least ``blur_radius + 1`` cells per side."""
    config = density.model.config
    cells = config.output_stride * (config.blur_radius + 1)
    return -(-cells // 32) * 32


def graph_info(density: GridDensity, sources: list[Path], precision: str) -> dict[str, object]:
    """The :data:`FORMAT_KEY` record: how to feed the graph and what it was made from."""
    info: dict[str, object] = {
        "version": FORMAT_VERSION,
        "input": "image: uint8 RGB (batch, height, width, 3), resized bilinearly (PIL) to "
        "input_size_for((H, W), input_pixels, multiple)",
        "input_pixels": density.input_pixels,
        "multiple": 32,
        "min_side": min_input_side(density),
        "output_stride": density.model.config.output_stride,
        "flip_average": density.flip_average,
        "outputs": ["log_density"],
        "precision": precision,
        "sources": [{"file": p.name, "sha256": sha256_of(p)} for p in sources],
    }
    if isinstance(density, WindowedDensity):
        info["outputs"] = ["log_density", "window_log_densities"]
        info["windows"] = [[w.start, w.end] for w in density.windows]
        info["window_default_weight"] = density.default_weight
    return info


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    windows: str | Path | None = None,
) -> Path:
    """Write the dense model of ``checkpoint`` (with the window readouts of ``windows`` on its
    backbone, if given) as an fp32 ONNX graph at ``out``, atomically; see the module docstring."""
    import onnx

    checkpoint = Path(checkpoint)
    density = DenseDensity.from_checkpoint(checkpoint)
    sources = [checkpoint]
    if windows is not None:
        density = WindowedDensity.from_file(windows, density)
        sources.append(Path(windows))
    if not isinstance(density, DenseDensity):  # pragma: no cover - guarded by the loader
        raise TypeError(f"{checkpoint}: only dense models export to ONNX")
    graph = _Graph(density).eval()
    height, width = density.input_size((600, 800))
    if min(height, width) < min_input_side(density):
        raise ValueError(
            f"{checkpoint}: its network input ({width}x{height} for an 800x600 image) is below "
            f"the {min_input_side(density)}-pixel side the ONNX graph is traced for"
        )
    example = torch.zeros(1, height, width, 3, dtype=torch.uint8)
    outputs = ["log_density"] + (["window_log_densities"] if graph.windows else [])
    axes = {
        "image": {0: "batch", 1: "height", 2: "width"},
        "log_density": {0: "batch", 1: "rows", 2: "cols"},
        "window_log_densities": {0: "batch", 2: "rows", 3: "cols"},
    }
    torch.onnx.register_custom_op_symbolic("aten::logaddexp", _logaddexp, OPSET)
    out = Path(out)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        # the tracer's notes on shape arithmetic: the graph is checked against PyTorch in tests
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            str(tmp),
            dynamo=False,
            opset_version=OPSET,
            input_names=["image"],
            output_names=outputs,
            dynamic_axes={k: v for k, v in axes.items() if k in ["image", *outputs]},
        )
        model = onnx.load(str(tmp))
        props = {**density.metadata, FORMAT_KEY: json.dumps(graph_info(density, sources, "fp32"))}
        onnx.helper.set_model_props(model, props)
        onnx.save(model, str(tmp))
    return out


def calibration_inputs(graph: OnnxDensity, paths: Iterable[Path]) -> Iterator[np.ndarray]:
    """The images at ``paths`` as ``graph`` takes them: uint8 (h, w, 3) at its input size."""
    for path in paths:
        image = load_image(path)
        height, width = graph.input_size(image.shape[:2])
        yield np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def quantize_int8(fp32: str | Path, out: str | Path, images: Iterable[np.ndarray]) -> Path:
    """Write an int8 copy of the fp32 graph ``fp32``: static QDQ quantization, per output
    channel, of the backbone's convolutions, activation ranges calibrated on ``images`` (uint8
    (h, w, 3), already at network input sizes). The metadata is kept, ``precision`` int8."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.images = iter(images)

        def get_next(self) -> dict[str, np.ndarray] | None:
            image = next(self.images, None)
            return None if image is None else {"image": image[None]}

    model = onnx.load(str(fp32))
    backbone = [n.name for n in model.graph.node if n.op_type == "Conv" and "/backbone/" in n.name]
    props = {p.key: p.value for p in model.metadata_props}
    info = json.loads(props[FORMAT_KEY])
    info["precision"] = "int8"
    props[FORMAT_KEY] = json.dumps(info)
    out = Path(out)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(
            str(fp32),
            str(tmp),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=backbone,
        )
        quantized = onnx.load(str(tmp))
        del quantized.metadata_props[:]
        onnx.helper.set_model_props(quantized, props)
        onnx.save(quantized, str(tmp))
    return out
