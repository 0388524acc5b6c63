"""ONNX Runtime on the default's graph as exported now (TF padding in the kernels, see
:class:`salience.models.backbone.KernelPaddedConv2d`) against a graph exported before (timm's
padding: ``git stash`` or a checkout before session 11, then
``salience export default OLD.onnx --format onnx``), interleaved image by image.

    python benchmarks/onnx_kernel_padding.py OLD.onnx --data ../shared/data/osie
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from salience.data import load_dataset
from salience.io.images import load_image
from salience.models.onnx import OnnxDensity
from salience.models.onnx_export import export_onnx
from salience.models.registry import shipped_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path, help="the graph exported before")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/osie"))
    parser.add_argument("--images", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        new = export_onnx(shipped_weights("default"), Path(tmp) / "new.onnx")
        graphs = {"before": OnnxDensity(args.old, threads=2), "now": OnnxDensity(new, threads=2)}
        val = [s.path for s in load_dataset("osie", args.data).split("val")][: args.images]
        times: dict[str, list[float]] = {name: [] for name in graphs}
        for i, path in enumerate(val):
            image = load_image(path)
            if i == 0:
                maps = [np.exp(g.log_densities([image])[0]) for g in graphs.values()]
                print(
                    f"total variation between the two: {0.5 * np.abs(maps[0] - maps[1]).sum():.2e}"
                )
            order = list(graphs.items()) if i % 2 else list(graphs.items())[::-1]
            for name, graph in order:
                start = time.perf_counter()
                graph.log_densities([image])
                times[name].append(time.perf_counter() - start)
    before, now = np.array(times["before"]), np.array(times["now"])
    ratio = before / now
    print(
        f"network + density, median: before {1000 * np.median(before):.1f} ms, "
        f"now {1000 * np.median(now):.1f} ms; per-image ratio median {np.median(ratio):.3f} "
        f"(quartiles {np.percentile(ratio, 25):.3f} to {np.percentile(ratio, 75):.3f})"
    )


if __name__ == "__main__":
    main()
