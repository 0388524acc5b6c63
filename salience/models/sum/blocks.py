"""The building blocks of SUM: VMamba's 2D selective scan and the conditional C-VSS block.

VMamba (Liu et al., "VMamba: Visual State Space Model", 2024) runs Mamba's 1D selective scan
over an image along four paths (:func:`cross_scan`): rows left to right, columns top to bottom,
and both reversed, and sums the four outputs back onto the pixels (:func:`cross_merge`), so each
pixel sees context from every direction. :class:`SS2D` is that token mixer, :class:`VSSBlock` the
residual block around it. Parameter names follow the official VMamba code (``in_proj``,
``conv2d``, ``x_proj_weight``, ``dt_projs_weight``, ``dt_projs_bias``, ``A_logs``, ``Ds``,
``out_norm``, ``out_proj``; blocks ``norm``, ``op``, ``norm2``, ``mlp``) so its ImageNet
checkpoints load by renaming only (see :func:`salience.models.sum.model.vmamba_to_salience`).

SUM (Hosseini et al., "SUM: Saliency Unification through Mamba for Visual Attention Modeling",
2024) conditions its decoder on the kind of data (:class:`salience.data.conditions.Condition`): a
:class:`VSSBlock` with ``num_conditions`` holds a learned token per condition and maps it by a small
MLP to per-channel shifts and scales that modulate the normalized activations. All blocks are
channels-last, (B, H, W, C), like VMamba.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import Tensor, nn

from salience.models.sum.scan import selective_scan

DIRECTIONS = 4  # scan paths of cross_scan


def cross_scan(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 4, C, H * W): the pixels in row-major order, column-major order, and
    both reversed."""
    rows = x.flatten(2)  # (B, C, H * W)
    cols = x.transpose(2, 3).flatten(2)  # (B, C, W * H)
    return torch.stack([rows, cols, rows.flip(-1), cols.flip(-1)], dim=1)  # (B, 4, C, L)


def cross_merge(ys: Tensor, height: int, width: int) -> Tensor:
    """(B, 4, C, H * W) in :func:`cross_scan`'s four orders -> (B, C, H * W) row-major: the sum
    of the four, each put back on its pixel (the adjoint of cross_scan)."""
    batch, _, channels, length = ys.shape
    ys = ys[:, :2] + ys[:, 2:].flip(-1)  # (B, 2, C, L): reversed paths un-reversed
    cols = ys[:, 1].reshape(batch, channels, width, height).transpose(2, 3)  # (B, C, H, W)
    return ys[:, 0] + cols.reshape(batch, channels, length)  # (B, C, L)


class SS2D(nn.Module):
    """VMamba's 2D selective scan: (B, H, W, C) -> (B, H, W, C).

    In-projection to the scanned branch x and the gate z; a depthwise 3x3 convolution and SiLU on
    x; per scan direction, x is projected to the step sizes (through a rank-``dt_rank``
    bottleneck), B and C; the four scans run as one grouped selective scan, are merged, normalized,
    gated by silu(z) and projected out. Initialization as Mamba: step sizes log-uniform in
    [dt_min, dt_max], A = -(1, ..., N) per channel (S4D-real), D = 1.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        ssm_ratio: float = 2.0,
        dt_rank: int | None = None,
        d_conv: int = 3,
        scan_impl: str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
    ) -> None:
        super().__init__()
        d_inner = int(ssm_ratio * d_model)
        self.d_state = d_state
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.scan_impl = scan_impl
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv2d = nn.Conv2d(
            d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=True
        )
        self.act = nn.SiLU()
        bound = d_inner**-0.5  # nn.Linear's default range for the per-direction projections
        x_proj = torch.empty(DIRECTIONS, self.dt_rank + 2 * d_state, d_inner).uniform_(
            -bound, bound
        )
        self.x_proj_weight = nn.Parameter(x_proj)  # (K, R + 2N, d_inner)
        bound = self.dt_rank**-0.5
        dt_proj = torch.empty(DIRECTIONS, d_inner, self.dt_rank).uniform_(-bound, bound)
        self.dt_projs_weight = nn.Parameter(dt_proj)  # (K, d_inner, R)
        log_dt = torch.rand(DIRECTIONS, d_inner) * math.log(dt_max / dt_min) + math.log(dt_min)
        dt = log_dt.exp().clamp(min=dt_init_floor)  # (K, d_inner)
        self.dt_projs_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(DIRECTIONS * d_inner, 1)
        self.A_logs = nn.Parameter(a.log())  # (K * d_inner, N); A = -exp(A_logs)
        self.Ds = nn.Parameter(torch.ones(DIRECTIONS * d_inner))  # (K * d_inner,)
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, _ = x.shape
        length = height * width
        x, z = self.in_proj(x).chunk(2, dim=-1)  # (B, H, W, d_inner) each
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2)))  # (B, d_inner, H, W)
        xs = cross_scan(x)  # (B, K, d_inner, L)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)  # (B, K, R + 2N, L)
        dts, Bs, Cs = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)  # (B, K, d_inner, L)
        ys = selective_scan(
            xs.flatten(1, 2),  # (B, K * d_inner, L)
            dts.flatten(1, 2),  # (B, K * d_inner, L)
            -torch.exp(self.A_logs.float()),  # (K * d_inner, N)
            Bs.contiguous(),  # (B, K, N, L): one group per direction
            Cs.contiguous(),  # (B, K, N, L)
            self.Ds.float(),
            delta_bias=self.dt_projs_bias.flatten().float(),
            delta_softplus=True,
            impl=self.scan_impl,
        )  # (B, K * d_inner, L)
        y = cross_merge(ys.view(batch, DIRECTIONS, -1, length), height, width)  # (B, d_inner, L)
        y = self.out_norm(y.transpose(1, 2).reshape(batch, height, width, -1))  # (B, H, W, d_inner)
        return self.out_proj(y * F.silu(z))  # (B, H, W, C)


class Mlp(nn.Module):
    """Two linear layers with GELU: the channel mixer of a VSS block with ``mlp_ratio`` > 0."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x * (1 + scale) + shift; x (B, H, W, C), shift and scale (B, 1, 1, C)."""
    return x * (1 + scale) + shift


class VSSBlock(nn.Module):
    """x + SS2D(LayerNorm(x)), then, if ``mlp_ratio`` > 0, x + MLP(LayerNorm(x)); (B, H, W, C).

    ``drop_path`` is the stochastic-depth rate of both residual branches while training. With
    ``num_conditions`` > 0 it is SUM's C-VSS block, conditioned on the kind of data by
    ``forward(x, condition)``: ``tokens`` holds one learned vector per condition and
    ``modulation`` (an MLP) maps the selected token to a per-channel shift and scale of the
    normalized input of the SS2D branch (and of the MLP branch, if any):
    norm(x) * (1 + scale) + shift. One set of tokens per block, as in SUM, so every block
    adapts on its own.
    """

    def __init__(
        self,
        dim: int,
        d_state: int = 16,
        ssm_ratio: float = 2.0,
        mlp_ratio: float = 0.0,
        drop_path: float = 0.0,
        scan_impl: str = "auto",
        num_conditions: int = 0,
        token_dim: int = 128,
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.op = SS2D(dim, d_state=d_state, ssm_ratio=ssm_ratio, scan_impl=scan_impl)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.has_mlp = mlp_ratio > 0
        if self.has_mlp:
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.conditioned = num_conditions > 0
        if self.conditioned:
            self.tokens = nn.Embedding(num_conditions, token_dim)
            branches = 2 if self.has_mlp else 1
            self.modulation = nn.Sequential(
                nn.Linear(token_dim, token_dim), nn.GELU(), nn.Linear(token_dim, 2 * branches * dim)
            )

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """x (B, H, W, C) and, for a conditioned block, condition (B,): token slots
        (:class:`salience.data.conditions.Condition`) -> (B, H, W, C)."""
        if self.conditioned != (condition is not None):
            raise ValueError("a conditioned block takes a condition, a plain one none")
        if condition is None:
            x = x + self.drop_path(self.op(self.norm(x)))  # (B, H, W, C)
            if self.has_mlp:
                x = x + self.drop_path(self.mlp(self.norm2(x)))
            return x
        params = self.modulation(self.tokens(condition))[:, None, None, :]  # (B, 1, 1, 2 * br * C)
        shift, scale, *mlp_params = params.split(x.shape[-1], dim=-1)  # (B, 1, 1, C) each
        x = x + self.drop_path(self.op(modulate(self.norm(x), shift, scale)))  # (B, H, W, C)
        if self.has_mlp:
            shift2, scale2 = mlp_params
            x = x + self.drop_path(self.mlp(modulate(self.norm2(x), shift2, scale2)))
        return x


class PatchEmbed(nn.Module):
    """Images (B, 3, H, W) -> (B, H / p, W / p, C): a p x p convolution of stride p, LayerNorm."""

    def __init__(self, dim: int, patch_size: int = 4, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))  # (B, H / p, W / p, C)


class PatchMerging(nn.Module):
    """2x downsampling (B, H, W, C) -> (B, ceil(H / 2), ceil(W / 2), out_dim): each 2 x 2 patch's
    four pixels concatenated, LayerNorm, a linear map (Swin's and VMamba v0's patch merging)."""

    def __init__(self, dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim or 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))  # (B, H', W', C), even sides
        parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
        return self.reduction(self.norm(torch.cat(parts, dim=-1)))  # (B, H' / 2, W' / 2, out)


class PatchExpanding(nn.Module):
    """``scale`` x upsampling (B, H, W, C) -> (B, sH, sW, out_dim): a linear map to s * s * out_dim
    channels, each pixel's channels spread over an s x s patch, LayerNorm (VM-UNet's expansion)."""

    def __init__(self, dim: int, out_dim: int, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.expand = nn.Linear(dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, _ = x.shape
        s = self.scale
        x = self.expand(x).view(batch, height, width, s, s, -1)  # (B, H, W, s, s, out)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(
            batch, height * s, width * s, -1
        )  # (B, sH, sW, out)
        return self.norm(x)
