"""Readouts for viewing-time windows that run on another model's backbone, in its forward pass.

A window model (:class:`DenseConfig` ``windows``) trained with its backbone frozen at the
shipped default model's weights differs from the default only in its readouts, so only those
ship (``salience/weights/windows.safetensors``, written by ``salience export --readouts-only``,
see ``windows.md``), with the digest of the backbone they were trained on. :class:`WindowedDensity`
puts them on a :class:`DenseDensity`'s backbone after checking that digest (features of another
backbone would make the readouts meaningless) and predicts, from one pass of the backbone, the
model's own log-density and one per window.

A window's map is its readout's density mixed with the base model's (time-agnostic) density,
the base weighted :data:`DEFAULT_WEIGHT`: a single readout alone misses the base's ensemble of
three readouts, which is worth more than the window's own signal in the early windows (see
``BENCHMARKS.md``, "Viewing-time windows", where the weight was chosen on OSIE val).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from salience.data.windows import Window
from salience.models.dense.density import DenseDensity, config_from_metadata
from salience.models.dense.model import Readout
from salience.models.metadata import CheckpointError, load_into, read_metadata, read_tensors

# share of the base model's density in each window's map (0: the window's readout alone)
DEFAULT_WEIGHT = 0.5

# the config fields that decide which features a readout sees and the grid it predicts on
_MUST_MATCH = ("backbone", "out_indices", "output_stride", "input_pixels")


class WindowedDensity(DenseDensity):
    """A :class:`DenseDensity` plus window readouts on its backbone. As a density model it is
    the base model; :meth:`window_log_densities` adds the windows' maps at no backbone cost."""

    def __init__(
        self,
        base: DenseDensity,
        readouts: nn.ModuleList,
        windows: Sequence[Window],
        default_weight: float = DEFAULT_WEIGHT,
    ):
        super().__init__(base.model, base.metadata, base.condition)
        if len(readouts) != len(windows):
            raise ValueError(f"{len(readouts)} readouts for {len(windows)} windows")
        if not 0.0 <= default_weight < 1.0:
            raise ValueError(f"default_weight must be in [0, 1), got {default_weight}")
        self.default_weight = default_weight
        self.window_readouts = readouts.to(base.device).eval()
        self.windows = tuple(windows)

    @classmethod
    def from_file(
        cls, path: str | Path, base: DenseDensity, default_weight: float = DEFAULT_WEIGHT
    ) -> WindowedDensity:
        """Window readouts from ``path`` on ``base``'s backbone; an error unless that backbone
        is the one they were trained on."""
        metadata = read_metadata(path)
        config = config_from_metadata(metadata, str(path))
        if not config.windows or "backbone_sha256" not in metadata:
            raise CheckpointError(
                f"{path}: not window readouts (needs windows in its config and the "
                "backbone_sha256 that 'salience export --readouts-only' records)"
            )
        found = base.model.backbone.weights_sha256()
        differs = [f for f in _MUST_MATCH if getattr(config, f) != getattr(base.model.config, f)]
        if differs or found != metadata["backbone_sha256"]:
            raise ValueError(
                f"{path}: these window readouts were trained on another backbone "
                f"(sha256 {metadata['backbone_sha256'][:12]}, {config.backbone}) than this "
                f"model's (sha256 {found[:12]}, {base.model.config.backbone})"
                + (f", and its {', '.join(differs)} differ" if differs else "")
                + "; use them with the model they were trained with (the shipped default)"
            )
        channels = base.model.backbone.channels
        readouts = nn.ModuleList(Readout(config, channels) for _ in config.windows)
        tensors = {k.removeprefix("readouts."): v for k, v in read_tensors(path).items()}
        load_into(readouts, tensors, path)
        return cls(base, readouts, [Window(*w) for w in config.windows], default_weight)

    def window_cells(self, x: Tensor) -> Tensor:
        """Log-densities over the output cells, (B, 1 + K, h', w'): the model's own, then each
        window's, for a batch (B, 3, h, w)."""
        return self.flip_averaged(self._window_cells, x)

    def _window_cells(self, x: Tensor) -> Tensor:
        input_size = tuple(x.shape[-2:])
        features = self.model.backbone(x)  # [(B, C_l, h_l, w_l)]
        own = self.model(features=features, input_size=input_size)["log_density"]  # (B, h', w')
        out_size = self.model.output_size(input_size)
        windows = torch.stack([r(features, out_size) for r in self.window_readouts], 1)
        if self.default_weight > 0:  # (B, K, h', w'): log((1 - w) p_k + w p_own)
            windows = torch.logaddexp(
                windows + math.log1p(-self.default_weight),
                own[:, None] + math.log(self.default_weight),
            )
        return torch.cat([own[:, None], windows], dim=1)  # (B, 1 + K, h', w')

    @torch.inference_mode()
    def window_log_densities(
        self, images: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """uint8 (H_i, W_i, 3) images -> per image the model's log-density (H_i, W_i) and the
        windows' (K, H_i, W_i), float64, each map summing to 1. Images sharing a network input
        size run as one batch."""
        results = []
        for cells, image in zip(
            self.cells_per_image(images, self.window_cells), images, strict=True
        ):
            own, *windows = (self.upsample(m, image.shape[:2]) for m in cells)  # (1 + K) x (H, W)
            results.append((own, np.stack(windows)))  # (H, W), (K, H, W)
        return results
