"""Configuration of a SalTR model, its matching costs and its loss weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SaltrConfig:
    """Everything needed to build a :class:`~salience.models.saltr.model.SalTR` and its loss.

    Defaults follow the paper's base model (ResNet-50, 6+6 layers, 100 fixation queries) and
    DETR / Deformable DETR for what the paper leaves open.
    """

    # backbone (timm name); its ImageNet weights are loaded when backbone_pretrained is set
    backbone: str = "resnet50"
    backbone_pretrained: bool = True
    freeze_backbone_bn: bool = True  # DETR style: batch statistics from ImageNet, not re-estimated

    # transformer
    attention: Literal["standard", "deformable"] = "standard"
    d_model: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    num_queries: int = 100
    # deformable attention: feature levels (strides 8, 16, 32, then extra stride-2 convs) and
    # sampling points per head and level
    n_levels: int = 4
    n_points: int = 4
    use_cuda_kernel: bool = False  # compiled deformable attention (mmcv); pure PyTorch otherwise

    # outputs of every decoder layer are returned (and supervised) when set
    aux_loss: bool = True

    # input size (height, width) the model is trained at; sigma_px is given at this size and
    # scaled with the image diagonal for other output sizes
    image_size: tuple[int, int] = (480, 640)
    sigma_px: float = 19.0

    # matching costs and loss weights
    cost_point: float = 5.0
    cost_class: float = 1.0
    weight_point: float = 5.0
    weight_class: float = 1.0
    no_fixation_weight: float = 0.1  # relative weight of the no-fixation class (DETR's eos_coef)
    # how queries are paired with target fixations (see matcher.py): "hungarian" is the paper's
    # set prediction; "sequential" pairs query i with the i-th target point, in the target's
    # order, and trains the queries beyond the target's length as "no fixation". On one
    # observer's scanpath in viewing order (target kind "scanpath") that is scanpath decoding;
    # it is also the paper's ablation without matching (benchmarks/saltr_ablations.py)
    matching: Literal["hungarian", "sequential"] = "hungarian"
    # density head: each query also predicts its Gaussian's width and its weight in the
    # density, trained by the likelihood of all the image's fixations under that mixture
    # (weight_density times the loss). Off: the paper's density, fixed-width Gaussians weighted
    # by the fixation probabilities and fitted after training
    density_head: bool = False
    weight_density: float = 1.0

    def __post_init__(self) -> None:
        if self.attention not in ("standard", "deformable"):
            raise ValueError(
                f"attention must be 'standard' or 'deformable', got {self.attention!r}"
            )
        if self.matching not in ("hungarian", "sequential"):
            raise ValueError(f"matching must be 'hungarian' or 'sequential', got {self.matching!r}")
        if self.d_model % self.nheads:
            raise ValueError(f"d_model={self.d_model} is not divisible by nheads={self.nheads}")
        if self.attention == "deformable" and self.d_model % 32:
            raise ValueError(f"deformable attention uses GroupNorm(32): d_model={self.d_model}")
        if self.n_levels < 1 or self.n_points < 1:
            raise ValueError("n_levels and n_points must be positive")
        if self.weight_density < 0:
            raise ValueError(f"weight_density must be >= 0, got {self.weight_density}")
        if self.enc_layers < 0 or self.dec_layers < 1 or self.num_queries < 1:
            raise ValueError("need enc_layers >= 0, dec_layers >= 1 and num_queries >= 1")
