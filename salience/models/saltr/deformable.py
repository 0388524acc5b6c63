"""Multi-scale deformable attention (Deformable DETR) and the deformable encoder-decoder.

Each query attends to a few points per head and feature level: a reference point plus learned
offsets, sampled bilinearly and mixed with learned weights. :func:`ms_deform_attn` is the pure
PyTorch implementation (``F.grid_sample``); it is the default and the reference the tests check.
A compiled kernel (mmcv's) is used only when asked for with ``use_cuda_kernel=True``, and then
only on CUDA tensors; asking for it without mmcv's ops installed raises ImportError at build time.

Coordinates are normalized to [0, 1] over the image, x right and y down; a cell (i, j) of an
(H, W) level has its center at ((j + 0.5) / W, (i + 0.5) / H).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salience.models.saltr.config import SaltrConfig
from salience.models.saltr.position import sine_position_encoding_2d
from salience.models.saltr.transformer import FeedForward

Shapes = Sequence[tuple[int, int]]  # (height, width) of each level

_KERNEL_HINT = (
    "use_cuda_kernel=True needs mmcv's compiled multi-scale deformable attention: install mmcv "
    "built with its CUDA ops (pip install mmcv, see "
    "https://mmcv.readthedocs.io/en/latest/get_started/installation.html), or leave "
    "use_cuda_kernel=False for the pure PyTorch implementation"
)


def ms_deform_attn(
    value: Tensor, spatial_shapes: Shapes, sampling_locations: Tensor, attention_weights: Tensor
) -> Tensor:
    """Pure PyTorch multi-scale deformable attention.

    value: (B, S, nH, Dh), the levels' cells flattened row-major and concatenated, S = sum H_l W_l
    sampling_locations: (B, Q, nH, L, P, 2), normalized (x, y); outside [0, 1] samples zeros
    attention_weights: (B, Q, nH, L, P)
    returns (B, Q, nH * Dh)
    """
    b, _, nh, dh = value.shape
    _, q, _, n_levels, n_points, _ = sampling_locations.shape
    grids = 2 * sampling_locations - 1  # (B, Q, nH, L, P, 2), grid_sample's [-1, 1]
    per_level = value.split([h * w for h, w in spatial_shapes], dim=1)
    sampled = []
    for level, (h, w) in enumerate(spatial_shapes):
        v = per_level[level].permute(0, 2, 3, 1).reshape(b * nh, dh, h, w)  # (B*nH, Dh, H, W)
        g = grids[:, :, :, level].transpose(1, 2).reshape(b * nh, q, n_points, 2)  # (B*nH, Q, P, 2)
        sampled.append(
            F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)
        )  # (B*nH, Dh, Q, P)
    stacked = torch.stack(sampled, dim=-2)  # (B*nH, Dh, Q, L, P)
    weights = attention_weights.transpose(1, 2).reshape(b * nh, 1, q, n_levels, n_points)
    out = (stacked * weights).sum(dim=(-2, -1))  # (B*nH, Dh, Q)
    return out.view(b, nh * dh, q).transpose(1, 2)  # (B, Q, nH*Dh)


def _load_cuda_kernel() -> Callable[..., Tensor]:
    """mmcv's autograd function for the compiled kernel; ImportError with a hint if absent."""
    try:
        from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
    except ImportError as exc:
        raise ImportError(_KERNEL_HINT) from exc
    return MultiScaleDeformableAttnFunction.apply


def encoder_reference_points(
    spatial_shapes: Shapes, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Centers of all cells of all levels, flattened like the encoder input: (S, 2) as (x, y)."""
    centers = []
    for h, w in spatial_shapes:
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h  # (H,)
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w  # (W,)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
        centers.append(torch.stack((grid_x, grid_y), dim=-1).reshape(h * w, 2))  # (H*W, 2)
    return torch.cat(centers)  # (S, 2)


class MultiScaleDeformableAttention(nn.Module):
    """Deformable attention over ``n_levels`` feature maps, ``n_points`` samples per head/level.

    Offsets are predicted in units of each level's cells, so a point's reach is the same number
    of cells at every scale.
    """

    def __init__(
        self,
        d_model: int,
        nheads: int,
        n_levels: int,
        n_points: int,
        use_cuda_kernel: bool = False,
    ) -> None:
        super().__init__()
        self.nheads, self.n_levels, self.n_points = nheads, n_levels, n_points
        self.sampling_offsets = nn.Linear(d_model, nheads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, nheads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.kernel = _load_cuda_kernel() if use_cuda_kernel else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initial offsets, uniform attention weights and Xavier projections."""
        # Start with each head looking in its own direction, point k at k cells from the
        # reference, with uniform attention weights: a sensible, symmetric initial receptive field.
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.nheads) * (2 * math.pi / self.nheads)  # (nH,)
        directions = torch.stack((angles.cos(), angles.sin()), dim=-1)  # (nH, 2)
        directions = directions / directions.abs().max(dim=-1, keepdim=True).values
        steps = torch.arange(1, self.n_points + 1, dtype=directions.dtype)  # (P,)
        bias = directions[:, None, None, :] * steps[None, None, :, None]  # (nH, 1, P, 2)
        bias = bias.expand(self.nheads, self.n_levels, self.n_points, 2)  # (nH, L, P, 2)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(
        self, query: Tensor, reference_points: Tensor, value_input: Tensor, spatial_shapes: Shapes
    ) -> Tensor:
        """query: (B, Q, D); reference_points: (B, Q, L, 2) normalized (x, y);
        value_input: (B, S, D) flattened levels -> (B, Q, D)."""
        b, q, d = query.shape
        nh, nl, npt = self.nheads, self.n_levels, self.n_points
        if len(spatial_shapes) != nl:
            raise ValueError(f"expected {nl} feature levels, got {len(spatial_shapes)}")
        value = self.value_proj(value_input).view(b, -1, nh, d // nh)  # (B, S, nH, Dh)
        offsets = self.sampling_offsets(query).view(b, q, nh, nl, npt, 2)  # (B, Q, nH, L, P, 2)
        weights = self.attention_weights(query).view(b, q, nh, nl * npt).softmax(-1)
        weights = weights.view(b, q, nh, nl, npt)  # (B, Q, nH, L, P)
        cells = torch.tensor(
            [(w, h) for h, w in spatial_shapes], device=query.device, dtype=query.dtype
        )  # (L, 2) as (W, H)
        locations = (
            reference_points[:, :, None, :, None, :] + offsets / cells[None, None, None, :, None, :]
        )  # (B, Q, nH, L, P, 2)
        if self.kernel is not None and value.is_cuda:
            out = self._kernel_attn(value, spatial_shapes, locations, weights)  # (B, Q, D)
        else:
            out = ms_deform_attn(value, spatial_shapes, locations, weights)  # (B, Q, D)
        return self.output_proj(out)

    def _kernel_attn(
        self, value: Tensor, spatial_shapes: Shapes, locations: Tensor, weights: Tensor
    ) -> Tensor:
        shapes = torch.tensor(spatial_shapes, device=value.device, dtype=torch.long)  # (L, 2)
        starts = torch.cat((shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]))  # (L,)
        im2col_step = 64
        return self.kernel(value, shapes, starts, locations, weights, im2col_step)


class DeformableEncoderLayer(nn.Module):
    """Deformable self-attention of every cell (all levels) around its own center, then FFN."""

    def __init__(self, config: SaltrConfig) -> None:
        super().__init__()
        d = config.d_model
        self.self_attn = MultiScaleDeformableAttention(
            d, config.nheads, config.n_levels, config.n_points, config.use_cuda_kernel
        )
        self.dropout = nn.Dropout(config.dropout)
        self.norm = nn.LayerNorm(d)
        self.ffn = FeedForward(d, config.dim_feedforward, config.dropout)

    def forward(
        self, src: Tensor, pos: Tensor, reference_points: Tensor, spatial_shapes: Shapes
    ) -> Tensor:
        """src, pos: (B, S, D); reference_points: (B, S, L, 2) -> (B, S, D)."""
        attended = self.self_attn(src + pos, reference_points, src, spatial_shapes)  # (B, S, D)
        src = self.norm(src + self.dropout(attended))
        return self.ffn(src)


class DeformableDecoderLayer(nn.Module):
    """Query self-attention (standard), deformable cross-attention around the query's reference
    point, then FFN."""

    def __init__(self, config: SaltrConfig) -> None:
        super().__init__()
        d, p = config.d_model, config.dropout
        self.self_attn = nn.MultiheadAttention(d, config.nheads, dropout=p, batch_first=True)
        self.cross_attn = MultiScaleDeformableAttention(
            d, config.nheads, config.n_levels, config.n_points, config.use_cuda_kernel
        )
        self.dropout1 = nn.Dropout(p)
        self.dropout2 = nn.Dropout(p)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = FeedForward(d, config.dim_feedforward, p)

    def forward(
        self,
        tgt: Tensor,
        query_pos: Tensor,
        reference_points: Tensor,
        memory: Tensor,
        spatial_shapes: Shapes,
    ) -> Tensor:
        """tgt, query_pos: (B, N, D); reference_points: (B, N, L, 2); memory: (B, S, D)."""
        q = k = tgt + query_pos  # (B, N, D)
        attended = self.self_attn(q, k, value=tgt, need_weights=False)[0]  # (B, N, D)
        tgt = self.norm1(tgt + self.dropout1(attended))
        attended = self.cross_attn(tgt + query_pos, reference_points, memory, spatial_shapes)
        tgt = self.norm2(tgt + self.dropout2(attended))  # (B, N, D)
        return self.ffn(tgt)


class DeformableTransformer(nn.Module):
    """Deformable encoder-decoder over ``n_levels`` feature maps with learned fixation queries.

    Each query embedding is split into a positional part and an initial content part; a linear
    layer maps the positional part to the query's reference point. ``forward`` returns every
    decoder layer's output and the reference points (B, N, 2), around which the head predicts.
    """

    def __init__(self, config: SaltrConfig) -> None:
        super().__init__()
        d = config.d_model
        self.encoder = nn.ModuleList(
            DeformableEncoderLayer(config) for _ in range(config.enc_layers)
        )
        self.decoder = nn.ModuleList(
            DeformableDecoderLayer(config) for _ in range(config.dec_layers)
        )
        self.level_embed = nn.Parameter(torch.empty(config.n_levels, d))
        self.reference_points = nn.Linear(d, 2)
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        for module in self.modules():
            if isinstance(module, MultiScaleDeformableAttention):
                module.reset_parameters()  # undo the blanket Xavier init above
        nn.init.zeros_(self.reference_points.bias)
        nn.init.normal_(self.level_embed)
        self.query_embed = nn.Embedding(config.num_queries, 2 * d)  # N(0, 1)

    def forward(self, srcs: list[Tensor]) -> tuple[Tensor, Tensor]:
        """srcs: [(B, D, H_l, W_l)] per level -> ((L_dec, B, N, D), reference points (B, N, 2))."""
        b, d = srcs[0].shape[:2]
        spatial_shapes = [(src.shape[2], src.shape[3]) for src in srcs]
        n_levels = len(srcs)
        flat, pos = [], []
        for level, src in enumerate(srcs):
            h, w = src.shape[2:]
            enc = sine_position_encoding_2d(h, w, d, device=src.device, dtype=src.dtype)
            enc = enc.flatten(1).T + self.level_embed[level]  # (H*W, D)
            pos.append(enc)
            flat.append(src.flatten(2).transpose(1, 2))  # (B, H*W, D)
        memory = torch.cat(flat, dim=1)  # (B, S, D)
        pos_all = torch.cat(pos).unsqueeze(0).expand(b, -1, -1)  # (B, S, D)
        enc_ref = encoder_reference_points(spatial_shapes, memory.device, memory.dtype)  # (S, 2)
        enc_ref = enc_ref[None, :, None, :].expand(b, -1, n_levels, -1)  # (B, S, L, 2)
        for layer in self.encoder:
            memory = layer(memory, pos_all, enc_ref, spatial_shapes)  # (B, S, D)

        query_pos, tgt = self.query_embed.weight.split(d, dim=-1)  # (N, D) each
        query_pos = query_pos.unsqueeze(0).expand(b, -1, -1)  # (B, N, D)
        tgt = tgt.unsqueeze(0).expand(b, -1, -1)  # (B, N, D)
        reference = self.reference_points(query_pos).sigmoid()  # (B, N, 2)
        dec_ref = reference[:, :, None, :].expand(-1, -1, n_levels, -1)  # (B, N, L, 2)
        outputs = []
        for layer in self.decoder:
            tgt = layer(tgt, query_pos, dec_ref, memory, spatial_shapes)  # (B, N, D)
            outputs.append(tgt)
        return torch.stack(outputs), reference  # (L_dec, B, N, D), (B, N, 2)
