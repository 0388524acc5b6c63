"""SalTR (Learning Saliency From Fixations): saliency as DETR-style set prediction of fixations.

Importing this package registers the variants with :mod:`salience.models.registry`:
``saltr-{r50,lite0,lite1,lite2}`` (standard attention, one stride-32 level) and the same with
``-deformable`` (multi-scale deformable attention), and ``saltr-lite0-scanpath``, the scanpath
variant: deformable, trained with sequential matching to decode one observer's fixations in
viewing order (see :mod:`salience.models.saltr.scanpath`). Each factory takes
``(pretrained=False, **overrides)``, the overrides replacing fields of the variant's
:class:`SaltrConfig`; for these variants ``pretrained=True`` is an error (the backbone's
ImageNet weights are the config's ``backbone_pretrained`` flag). ``saltr`` is the SalTR shipped
in the package (``salience/weights/saltr.safetensors``, the density head on; its model card
``saltr.md``): ``pretrained=True`` loads its weights. A checkpoint written by ``salience
train`` runs on images through ``salience.models.registry.load_checkpoint`` (a
:class:`SaltrDensity`, whose architecture is the checkpoint's).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from salience.models.backbone import Backbone, load_lite_weights, lukemelas_to_timm_lite
from salience.models.metadata import load_into, read_metadata, read_tensors
from salience.models.registry import register_model, shipped_weights
from salience.models.saltr.config import SaltrConfig
from salience.models.saltr.criterion import (
    SetCriterion,
    classification_loss,
    density_loss,
    point_loss,
    weighted_set_loss,
)
from salience.models.saltr.deformable import (
    DeformableTransformer,
    MultiScaleDeformableAttention,
    ms_deform_attn,
)
from salience.models.saltr.density import SaltrDensity, config_from_metadata
from salience.models.saltr.matcher import (
    HungarianMatcher,
    SequentialMatcher,
    build_matcher,
    matching_cost,
)
from salience.models.saltr.model import SalTR, build_saltr
from salience.models.saltr.position import sine_encoding_1d, sine_position_encoding_2d
from salience.models.saltr.postprocess import (
    center_bias_prior,
    fixation_points,
    gaussian_profiles,
    log_density,
    saliency_map,
    scaled_sigma,
    scanpath_from_outputs,
)
from salience.models.saltr.scanpath import SaltrScanpathModel
from salience.models.saltr.transformer import Transformer

__all__ = [
    "VARIANTS",
    "Backbone",
    "DeformableTransformer",
    "HungarianMatcher",
    "MultiScaleDeformableAttention",
    "SalTR",
    "SaltrConfig",
    "SaltrDensity",
    "SaltrScanpathModel",
    "SequentialMatcher",
    "SetCriterion",
    "Transformer",
    "build_matcher",
    "build_saltr",
    "center_bias_prior",
    "classification_loss",
    "density_loss",
    "fixation_points",
    "gaussian_profiles",
    "load_lite_weights",
    "log_density",
    "lukemelas_to_timm_lite",
    "matching_cost",
    "ms_deform_attn",
    "point_loss",
    "saliency_map",
    "scaled_sigma",
    "scanpath_from_outputs",
    "sine_encoding_1d",
    "sine_position_encoding_2d",
    "weighted_set_loss",
]

_DEFORMABLE = {"attention": "deformable", "dim_feedforward": 1024}  # Deformable DETR's FFN size
# ordered decoding: query i <-> fixation i. 30 queries bound the length (OSIE's longest scanpath
# has 22 fixations); a no-fixation weight of 1 makes query i's probability that of a scanpath
# longer than i, so the 0.5 threshold of scanpath_from_outputs stops near the median length
_SCANPATH = {"matching": "sequential", "num_queries": 30, "no_fixation_weight": 1.0}

VARIANTS: dict[str, SaltrConfig] = {
    "saltr-r50": SaltrConfig(backbone="resnet50"),
    "saltr-r50-deformable": SaltrConfig(backbone="resnet50", **_DEFORMABLE),
    "saltr-lite0": SaltrConfig(backbone="tf_efficientnet_lite0"),
    "saltr-lite0-deformable": SaltrConfig(backbone="tf_efficientnet_lite0", **_DEFORMABLE),
    "saltr-lite0-scanpath": SaltrConfig(
        backbone="tf_efficientnet_lite0", **_DEFORMABLE, **_SCANPATH
    ),
    "saltr-lite1": SaltrConfig(backbone="tf_efficientnet_lite1"),
    "saltr-lite1-deformable": SaltrConfig(backbone="tf_efficientnet_lite1", **_DEFORMABLE),
    "saltr-lite2": SaltrConfig(backbone="tf_efficientnet_lite2"),
    "saltr-lite2-deformable": SaltrConfig(backbone="tf_efficientnet_lite2", **_DEFORMABLE),
}


def _create(name: str, pretrained: bool, overrides: dict[str, Any]) -> SalTR:
    if pretrained:
        raise RuntimeError(
            f"no trained weights ship for {name!r} (the shipped SalTR is 'saltr'): use "
            "pretrained=False (the backbone's ImageNet weights are the separate "
            "backbone_pretrained config flag)"
        )
    return build_saltr(replace(VARIANTS[name], **overrides))


@register_model("saltr-r50")
def saltr_r50(pretrained: bool = False, **overrides: Any) -> SalTR:
    """SalTR, ResNet-50 backbone, standard attention (the paper's setup)."""
    return _create("saltr-r50", pretrained, overrides)


@register_model("saltr-r50-deformable")
def saltr_r50_deformable(pretrained: bool = False, **overrides: Any) -> SalTR:
    """SalTR, ResNet-50 backbone, multi-scale deformable attention (the paper's Deformable
    SalTR)."""
    return _create("saltr-r50-deformable", pretrained, overrides)


@register_model("saltr-lite0")
def saltr_lite0(pretrained: bool = False, **overrides: Any) -> SalTR:
    """SalTR, EfficientNet-Lite0 backbone, standard attention."""
    return _create("saltr-lite0", pretrained, overrides)


@register_model("saltr-lite0-deformable")
def saltr_lite0_deformable(pretrained: bool = False, **overrides: Any) -> SalTR:
    """SalTR, EfficientNet-Lite0 backbone, multi-scale deformable attention."""
    return _create("saltr-lite0-deformable", pretrained, overrides)


@register_model("saltr-lite0-scanpath")
def saltr_lite0_scanpath(pretrained: bool = False, **overrides: Any) -> SalTR:
    """SalTR's scanpath variant: Lite0, deformable attention, sequential matching (query i is
    the i-th fixation).

    With ``checkpoint=`` it returns a :class:`SaltrDensity` whose
    ``scanpath(image)`` gives the predicted fixations in order; :class:`SaltrScanpathModel`
    adds sampled durations."""
    return _create("saltr-lite0-scanpath", pretrained, overrides)


@register_model("saltr-lite1")
def saltr_lite1(pretrained: bool = False, **overrides: Any) -> SalTR:
    """SalTR, EfficientNet-Lite1 backbone, standard attention."""
    return _create("saltr-lite1", pretrained, overrides)


@register_model("saltr-lite1-deformable")
def saltr_lite1_deformable(pretrained: bool = False, **overrides: Any) -> SalTR:
    """SalTR, EfficientNet-Lite1 backbone, multi-scale deformable attention."""
    return _create("saltr-lite1-deformable", pretrained, overrides)


@register_model("saltr-lite2")
def saltr_lite2(pretrained: bool = False, **overrides: Any) -> SalTR:
    """SalTR, EfficientNet-Lite2 backbone, standard attention."""
    return _create("saltr-lite2", pretrained, overrides)


@register_model("saltr-lite2-deformable")
def saltr_lite2_deformable(pretrained: bool = False, **overrides: Any) -> SalTR:
    """SalTR, EfficientNet-Lite2 backbone, multi-scale deformable attention."""
    return _create("saltr-lite2-deformable", pretrained, overrides)


@register_model("saltr")
def saltr(pretrained: bool = False, **overrides: Any) -> SalTR:
    """The shipped SalTR (see salience/weights/saltr.md): Lite0, deformable attention, the
    density head; pretrained=True loads its weights, False its architecture with ImageNet
    backbone weights (e.g. to train it again)."""
    path = shipped_weights("saltr")
    config = config_from_metadata(read_metadata(path), str(path))
    if not pretrained:
        return build_saltr(replace(config, **{"backbone_pretrained": True, **overrides}))
    if overrides:
        raise ValueError(f"the shipped 'saltr' model takes no overrides, got {overrides}")
    model = build_saltr(config)
    load_into(model, read_tensors(path), path)
    return model
