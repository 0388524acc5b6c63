"""Dense saliency models: frozen ImageNet features, a 1x1 readout, blur, a learned center bias.

Importing this package registers ``dense-lite0``, ``dense-lite1``, ``dense-lite2``,
``dense-mix`` (one readout on each of the three, mixed: DeepGaze IIE's recipe), ``default``
and ``accurate``. Each factory takes ``(pretrained=False, **overrides)`` and returns the
network, a :class:`DenseSaliency`; the overrides replace fields of the variant's
:class:`DenseConfig`. ``default`` and ``accurate`` are the models shipped inside the package
(``salience/weights/<name>.safetensors``, see their model cards):
``create_model("default", pretrained=True)`` is the network with its weights (no network
access); ``salience.models.registry.load_checkpoint`` of that file, or
``Predictor.from_pretrained()``, runs it on images.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from salience.models.dense.criterion import dense_loss
from salience.models.dense.density import (
    FORMAT,
    DenseDensity,
    checkpoint_metadata,
    config_from_metadata,
)
from salience.models.dense.model import DenseConfig, DenseSaliency, Readout
from salience.models.metadata import read_metadata
from salience.models.registry import register_model, shipped_weights

__all__ = [
    "VARIANTS",
    "DenseConfig",
    "DenseDensity",
    "DenseSaliency",
    "Readout",
    "checkpoint_metadata",
    "config_from_metadata",
    "dense_loss",
]

VARIANTS: dict[str, DenseConfig] = {
    **{f"dense-lite{k}": DenseConfig(backbone=f"tf_efficientnet_lite{k}") for k in range(3)},
    "dense-mix": DenseConfig(
        backbone=tuple(f"tf_efficientnet_lite{k}" for k in range(3)), readouts=3
    ),
}


def _create(name: str, pretrained: bool, overrides: dict[str, Any]) -> DenseSaliency:
    if pretrained:
        raise RuntimeError(
            f"no trained weights ship for {name!r}; the shipped model is 'default' (the "
            "backbone's ImageNet weights are the separate backbone_pretrained config flag)"
        )
    return DenseSaliency(replace(VARIANTS[name], **overrides))


@register_model("dense-lite0")
def dense_lite0(pretrained: bool = False, **overrides: Any) -> DenseSaliency:
    """Dense readout on frozen EfficientNet-Lite0 features (DeepGaze-style)."""
    return _create("dense-lite0", pretrained, overrides)


@register_model("dense-lite1")
def dense_lite1(pretrained: bool = False, **overrides: Any) -> DenseSaliency:
    """Dense readout on frozen EfficientNet-Lite1 features (DeepGaze-style)."""
    return _create("dense-lite1", pretrained, overrides)


@register_model("dense-lite2")
def dense_lite2(pretrained: bool = False, **overrides: Any) -> DenseSaliency:
    """Dense readout on frozen EfficientNet-Lite2 features (DeepGaze-style)."""
    return _create("dense-lite2", pretrained, overrides)


@register_model("dense-mix")
def dense_mix(pretrained: bool = False, **overrides: Any) -> DenseSaliency:
    """Readouts on frozen EfficientNet-Lite0, -Lite1 and -Lite2 features, one per backbone in
    turn, their densities mixed (DeepGaze IIE's mix of different ImageNet networks)."""
    return _create("dense-mix", pretrained, overrides)


def _shipped(name: str, pretrained: bool, overrides: dict[str, Any]) -> DenseSaliency:
    """A model shipped in the package: with its weights, or its architecture with ImageNet
    backbones (e.g. to train it again)."""
    path = shipped_weights(name)
    if pretrained:
        if overrides:
            raise ValueError(f"the shipped {name!r} model takes no overrides, got {overrides}")
        return FORMAT.load(path)[0]
    config = config_from_metadata(read_metadata(path), str(path))
    return DenseSaliency(replace(config, **{"backbone_pretrained": True, **overrides}))


@register_model("default")
def default(pretrained: bool = False, **overrides: Any) -> DenseSaliency:
    """The shipped default model (see salience/weights/default.md); pretrained=True loads it."""
    return _shipped("default", pretrained, overrides)


@register_model("accurate")
def accurate(pretrained: bool = False, **overrides: Any) -> DenseSaliency:
    """The shipped accurate model: three backbones, about 4 times the default's time (see
    salience/weights/accurate.md); pretrained=True loads it."""
    return _shipped("accurate", pretrained, overrides)
