"""Dense saliency models: frozen ImageNet features, a 1x1 readout, blur, a learned center bias.

Importing this package registers ``dense-lite0``, ``dense-lite1``, ``dense-lite2`` and
``default``. Each factory takes ``(pretrained=False, checkpoint=None, **overrides)``: the
overrides replace fields of the variant's :class:`DenseConfig`; ``checkpoint=PATH`` returns the
trained :class:`DenseDensity` a ``salience train`` run wrote. ``default`` is the model shipped
inside the package (``salience/weights/default.safetensors``, see its model card):
``create_model("default", pretrained=True)`` loads it with no network access.
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from salience.models.dense.density import (
    DenseDensity,
    checkpoint_metadata,
    config_from_metadata,
)
from salience.models.dense.model import (
    DenseConfig,
    DenseSaliency,
    Readout,
    fixation_nll_bits,
    gaussian_blur,
    input_size_for,
)
from salience.models.metadata import read_metadata
from salience.models.registry import register_model

__all__ = [
    "VARIANTS",
    "DenseConfig",
    "DenseDensity",
    "DenseSaliency",
    "Readout",
    "checkpoint_metadata",
    "config_from_metadata",
    "fixation_nll_bits",
    "gaussian_blur",
    "input_size_for",
    "shipped_weights",
]

VARIANTS: dict[str, DenseConfig] = {
    f"dense-lite{k}": DenseConfig(backbone=f"tf_efficientnet_lite{k}") for k in range(3)
}


def shipped_weights(name: str) -> Path:
    """Path of weights shipped inside the package (``salience/weights/NAME.safetensors``)."""
    path = Path(str(resources.files("salience") / "weights" / f"{name}.safetensors"))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the shipped {name!r} weights are missing from this installation "
            "(reinstall salience; a source checkout has them under salience/weights/)"
        )
    return path


def _create(name: str, pretrained: bool, overrides: dict[str, Any]) -> DenseSaliency | DenseDensity:
    checkpoint = overrides.pop("checkpoint", None)
    if checkpoint is not None:
        if overrides:
            raise ValueError(f"{name}: a checkpoint fixes the config; got overrides {overrides}")
        return DenseDensity.from_checkpoint(checkpoint, backbone=VARIANTS[name].backbone)
    if pretrained:
        raise RuntimeError(
            f"no trained weights ship for {name!r}; the shipped model is 'default' (the "
            "backbone's ImageNet weights are the separate backbone_pretrained config flag)"
        )
    return DenseSaliency(replace(VARIANTS[name], **overrides))


@register_model("dense-lite0")
def dense_lite0(pretrained: bool = False, **overrides: Any) -> DenseSaliency | DenseDensity:
    """Dense readout on frozen EfficientNet-Lite0 features (DeepGaze-style)."""
    return _create("dense-lite0", pretrained, overrides)


@register_model("dense-lite1")
def dense_lite1(pretrained: bool = False, **overrides: Any) -> DenseSaliency | DenseDensity:
    """Dense readout on frozen EfficientNet-Lite1 features (DeepGaze-style)."""
    return _create("dense-lite1", pretrained, overrides)


@register_model("dense-lite2")
def dense_lite2(pretrained: bool = False, **overrides: Any) -> DenseSaliency | DenseDensity:
    """Dense readout on frozen EfficientNet-Lite2 features (DeepGaze-style)."""
    return _create("dense-lite2", pretrained, overrides)


@register_model("default")
def default(pretrained: bool = False, **overrides: Any) -> DenseSaliency | DenseDensity:
    """The shipped default model (see salience/weights/default.md); pretrained=True loads it."""
    path = shipped_weights("default")
    if pretrained:
        if overrides:
            raise ValueError(f"the shipped default model takes no overrides, got {overrides}")
        return DenseDensity.from_checkpoint(path)
    config = config_from_metadata(read_metadata(path), str(path))
    return DenseSaliency(replace(config, backbone_pretrained=True, **overrides))
