"""A dense saliency model in the DeepGaze II/IIE tradition: frozen CNN features, a small readout.

ImageNet features of several depths (EfficientNet-Lite strides 8, 16 and 32) are brought to one
grid, normalized per channel and read out by a few 1x1 convolutions into one saliency channel.
A finalizer upsamples it to the output grid (stride 4), blurs it with a learned Gaussian, adds a
learned log center-bias prior and takes a softmax over all cells: the output is a proper
log-density, trained directly by the log-likelihood of human fixations.

With several backbones (``backbone`` a tuple of timm names) readout k reads the features of
backbone k mod their number: DeepGaze IIE's largest gain came from mixing different ImageNet
networks this way. With ``readouts`` > 1 the model holds several readouts on the one backbone
and predicts the mixture of their densities (each weighted 1 / K), as DeepGaze IIE mixes its
readouts: the backbone's work, nearly all of the cost, is shared. Trained with
``ensemble_loss="members"`` each readout learns on its own (an ensemble in one run, diverse
through its initialization and dropout masks); with ``"mixture"`` the mixture's likelihood is what
is trained. With ``windows`` readout k is the density of viewing-time window k (where the gaze
dwells during, say, 1-2 s), trained on the fixations weighted by their dwell in it; the mixture then
averages the windows.

The model is fully convolutional; the prior is a small learned grid over normalized image
coordinates, so any aspect ratio works. :func:`salience.models.density.input_size_for` picks
the network's input size for an image: its aspect kept, about ``config.input_pixels`` pixels,
sides multiples of 32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salience.models.backbone import Backbone, BackboneSet, norm_scale_shift
from salience.models.blur import gaussian_blur


@dataclass(frozen=True)
class DenseConfig:
    """Everything needed to build a :class:`DenseSaliency`."""

    # a timm name, or several: then readout k reads backbone k mod their number, and the
    # readouts must be a multiple of it (DeepGaze IIE's mix of ImageNet networks)
    backbone: str | tuple[str, ...] = "tf_efficientnet_lite0"
    backbone_pretrained: bool = True
    out_indices: tuple[int, ...] = (2, 3, 4)  # timm feature stages: strides 8, 16, 32
    readout: tuple[int, ...] = (16, 16)  # widths of the hidden 1x1 convolutions (softplus)
    dropout: float = 0.0  # on the normalized features, while training
    readouts: int = 1  # readouts whose densities are mixed with equal weights
    ensemble_loss: str = "members"  # train each readout on its own, or "mixture": train the mix
    output_stride: int = 4  # the log-density grid, relative to the input
    prior_grid: tuple[int, int] = (12, 16)  # learned log center bias, (rows, cols)
    blur_sigma: float = 2.0  # initial Gaussian blur, in output cells
    blur_radius: int = 16  # kernel half-width in output cells (sigma is clamped below radius / 3)
    image_size: tuple[int, int] = (384, 512)  # training input (height, width)
    input_pixels: int = 384 * 512  # inference: about this many input pixels, aspect kept
    # inference: the mixture of the densities of the image and its mirror image (the training
    # data is mirrored too); twice the network's work
    flip_average: bool = False
    # viewing-time windows (start, end) in seconds, one per readout: readout k learns where the
    # gaze dwells during window k (salience.data.windows); empty: every readout learns from all
    windows: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str):  # YAML and JSON give lists; one name stays a str
            names = tuple(self.backbone)
            object.__setattr__(self, "backbone", names[0] if len(names) == 1 else names)
        if self.readouts % len(self.backbones):
            raise ValueError(
                f"readouts ({self.readouts}) must be a multiple of the backbones "
                f"({len(self.backbones)})"
            )
        if self.windows and len(self.backbones) > 1:
            raise ValueError(f"viewing-time windows need one backbone, got {self.backbones}")
        if not self.out_indices or min(self.out_indices) < 1:
            raise ValueError(f"out_indices must name timm feature stages >= 1: {self.out_indices}")
        if self.output_stride not in (1, 2, 4, 8):
            raise ValueError(f"output_stride must be 1, 2, 4 or 8, got {self.output_stride}")
        if self.blur_sigma <= 0 or self.blur_radius < 1:
            raise ValueError("blur_sigma and blur_radius must be positive")
        if self.readouts < 1:
            raise ValueError(f"readouts must be >= 1, got {self.readouts}")
        if self.ensemble_loss not in ("members", "mixture"):
            raise ValueError(
                f"ensemble_loss must be 'members' or 'mixture': {self.ensemble_loss!r}"
            )
        # YAML and JSON give lists: store tuples of floats so configs compare and hash
        object.__setattr__(self, "windows", tuple((float(a), float(b)) for a, b in self.windows))
        if self.windows:
            if len(self.windows) != self.readouts or self.ensemble_loss != "members":
                raise ValueError(
                    f"{len(self.windows)} windows need readouts={len(self.windows)} and "
                    f"ensemble_loss='members', got {self.readouts} and {self.ensemble_loss!r}"
                )
            if not all(0 <= start < end for start, end in self.windows):
                raise ValueError(
                    f"windows must be (start, end) with 0 <= start < end: {self.windows}"
                )

    @property
    def backbones(self) -> tuple[str, ...]:
        """The timm names of the backbones, one or more."""
        return (self.backbone,) if isinstance(self.backbone, str) else self.backbone


class Readout(nn.Module):
    """Multi-scale features -> one saliency channel -> log-density over the output grid.

    Per level, the features are standardized per channel (batch norm) and projected by a 1x1
    convolution; the projections are upsampled to the finest level's grid and summed. Both
    steps are per-channel linear maps, which commute with bilinear upsampling, so this is the
    same function as projecting the upsampled, concatenated features, at a fraction of the cost.
    """

    def __init__(self, config: DenseConfig, channels: list[int]) -> None:
        super().__init__()
        self.config = config
        first = config.readout[0] if config.readout else 1
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in channels)
        self.dropout = nn.Dropout2d(config.dropout)
        self.projections = nn.ModuleList(
            nn.Conv2d(c, first, kernel_size=1, bias=False) for c in channels
        )
        self.bias = nn.Parameter(torch.zeros(1, first, 1, 1))
        layers: list[nn.Module] = []
        width = first
        for hidden in config.readout[1:]:
            layers += [nn.Softplus(), nn.Conv2d(width, hidden, kernel_size=1)]
            width = hidden
        if config.readout:
            layers += [nn.Softplus(), nn.Conv2d(width, 1, kernel_size=1)]
        self.convs = nn.Sequential(*layers)
        self.log_sigma = nn.Parameter(torch.tensor(math.log(config.blur_sigma)))
        self.log_prior = nn.Parameter(torch.zeros(1, 1, *config.prior_grid))

    def forward(self, features: list[Tensor], out_size: tuple[int, int]) -> Tensor:
        """Feature maps [(B, C_l, h_l, w_l)], finest first -> log-density (B, *out_size)."""
        grid = features[0].shape[-2:]
        x = self.bias  # (1, R, 1, 1)
        for f, norm, project in zip(features, self.norms, self.projections, strict=True):
            y = project(self.dropout(norm(f)))  # (B, R, h_l, w_l)
            if y.shape[-2:] != grid:
                y = F.interpolate(y, size=grid, mode="bilinear", align_corners=False)
            x = x + y  # (B, R, h_0, w_0)
        x = self.convs(x)  # (B, 1, h_0, w_0)
        x = F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)  # (B, 1, h, w)
        sigma = self.log_sigma.exp().clamp(0.25, self.config.blur_radius / 3)
        x = gaussian_blur(x.float(), sigma.float(), self.config.blur_radius)  # (B, 1, h, w)
        prior = F.interpolate(self.log_prior, size=out_size, mode="bilinear", align_corners=False)
        x = (x + prior.float()).flatten(1)  # (B, h * w)
        return F.log_softmax(x, dim=1).view(-1, *out_size)  # (B, h, w)


class FusedReadouts(nn.Module):
    """Readouts that read the same feature maps, computed together for inference.

    The same function as the readouts one by one (to float rounding), in one pass: each
    readout's batch norms (running statistics) are folded into its projections, the
    projections of all readouts become one 1x1 convolution per level, the hidden 1x1
    convolutions grouped ones, and the blur one depthwise convolution with a width per readout.
    Built from trained readouts by :meth:`DenseSaliency.fuse_readouts`; not trainable.
    """

    def __init__(self, readouts: Sequence[Readout]) -> None:
        super().__init__()
        first = readouts[0]
        self.config = first.config
        self.count = len(readouts)
        with torch.no_grad():
            weights: list[list[Tensor]] = [[] for _ in first.projections]  # per level, readout
            biases = []
            for r in readouts:
                bias = r.bias.reshape(-1).clone()  # (R,)
                for level, (norm, project) in enumerate(zip(r.norms, r.projections, strict=True)):
                    scale, shift = norm_scale_shift(norm)  # (C,), (C,): running statistics
                    w = project.weight[:, :, 0, 0]  # (R, C)
                    weights[level].append(w * scale)
                    bias += w @ shift
                biases.append(bias)
            self.projections = nn.ModuleList()
            for level in weights:
                stacked = torch.cat(level)  # (K R, C)
                conv = nn.Conv2d(stacked.shape[1], stacked.shape[0], 1, bias=False)
                conv.weight.copy_(stacked[:, :, None, None])
                self.projections.append(conv)
            self.bias = nn.Parameter(torch.cat(biases).view(1, -1, 1, 1))  # (1, K R, 1, 1)
            layers: list[nn.Module] = []
            for k, layer in enumerate(first.convs):
                if not isinstance(layer, nn.Conv2d):
                    layers.append(layer)  # softplus
                    continue
                grouped = nn.Conv2d(
                    layer.in_channels * self.count,
                    layer.out_channels * self.count,
                    1,
                    groups=self.count,
                )
                grouped.weight.copy_(torch.cat([r.convs[k].weight for r in readouts]))
                grouped.bias.copy_(torch.cat([r.convs[k].bias for r in readouts]))
                layers.append(grouped)
            self.convs = nn.Sequential(*layers)
            self.log_sigma = nn.Parameter(torch.stack([r.log_sigma for r in readouts]))  # (K,)
            prior = torch.cat([r.log_prior for r in readouts], dim=1)  # (1, K, rows, cols)
            self.log_prior = nn.Parameter(prior)
        self.requires_grad_(False)

    def forward(self, features: list[Tensor], out_size: tuple[int, int]) -> Tensor:
        """Feature maps [(B, C_l, h_l, w_l)], finest first -> log-densities (B, K, *out_size)."""
        grid = features[0].shape[-2:]
        x = self.bias  # (1, K R, 1, 1)
        for f, project in zip(features, self.projections, strict=True):
            y = project(f)  # (B, K R, h_l, w_l)
            if y.shape[-2:] != grid:
                y = F.interpolate(y, size=grid, mode="bilinear", align_corners=False)
            x = x + y  # (B, K R, h_0, w_0)
        x = self.convs(x)  # (B, K, h_0, w_0)
        if x.shape[-2:] != out_size:
            x = F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
        sigma = self.log_sigma.exp().clamp(0.25, self.config.blur_radius / 3)  # (K,)
        x = gaussian_blur(x.float(), sigma.float(), self.config.blur_radius)  # (B, K, h, w)
        prior = F.interpolate(self.log_prior, size=out_size, mode="bilinear", align_corners=False)
        x = (x + prior.float()).flatten(2)  # (B, K, h * w)
        return F.log_softmax(x, dim=2).view(x.shape[0], self.count, *out_size)  # (B, K, h, w)


class DenseSaliency(nn.Module):
    """Backbone (or a :class:`BackboneSet`) + ``config.readouts`` :class:`Readout` heads.
    ``forward`` takes (B, 3, H, W) RGB in [0, 1] and returns
    ``{"log_density": (B, H / s, W / s)}`` with s = ``config.output_stride``: natural-log
    probabilities of the output cells, each map summing to 1 (the equal-weight mixture of the
    heads' densities), and ``"member_log_densities"`` (B, K, H / s, W / s), each head's own."""

    def __init__(self, config: DenseConfig) -> None:
        super().__init__()
        self.config = config
        pretrained, levels = config.backbone_pretrained, config.out_indices
        if isinstance(config.backbone, str):
            self.backbone = Backbone(config.backbone, pretrained, levels)
        else:
            self.backbone = BackboneSet(config.backbone, pretrained, levels)
        groups = self.backbone.groups  # readout k reads the feature maps of groups[k mod len]
        self.readout_groups = [groups[k % len(groups)] for k in range(config.readouts)]
        self.readouts = nn.ModuleList(
            Readout(config, self.backbone.channels[group]) for group in self.readout_groups
        )
        self.fused: FusedReadouts | None = None  # set by fuse_readouts, for inference

    def fuse_readouts(self) -> None:
        """Compute the readouts together from now on (:class:`FusedReadouts`), for faster
        inference: when they all read the same feature maps (one backbone). The same densities
        to float rounding; irreversible and for inference only (raises in training mode)."""
        if self.training:
            raise ValueError("fuse_readouts is for inference: put the model in eval mode first")
        if len(self.backbone.groups) == 1:
            self.fused = FusedReadouts(list(self.readouts))

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        stride = self.config.output_stride
        return (input_size[0] // stride, input_size[1] // stride)

    def forward(
        self,
        images: Tensor | None = None,
        *,
        features: list[Tensor] | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> dict[str, Tensor]:
        """From images (B, 3, H, W), or from their backbone ``features`` (e.g. cached) and the
        ``input_size`` (H, W) they were computed at; going through ``forward`` either way keeps
        DistributedDataParallel's gradient hooks in play."""
        if features is None:
            if images is None:
                raise ValueError("give images, or features with their input_size")
            features = self.backbone(images)  # [(B, C_l, H / s_l, W / s_l)]
            input_size = tuple(images.shape[-2:])
        elif input_size is None:
            raise ValueError("features need the input_size they were computed at")
        out_size = self.output_size(input_size)
        if self.fused is not None:
            members = self.fused(features[self.readout_groups[0]], out_size)  # (B, K, h, w)
        else:
            members = torch.stack(
                [
                    r(features[g], out_size)
                    for r, g in zip(self.readouts, self.readout_groups, strict=True)
                ],
                dim=1,
            )  # (B, K, h, w)
        log_density = torch.logsumexp(members, dim=1) - math.log(len(self.readouts))  # (B, h, w)
        return {"log_density": log_density, "member_log_densities": members}
