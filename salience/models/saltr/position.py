"""Fixed sine positional encodings for 2D feature maps (pure functions, no parameters).

A coordinate ``c`` is encoded at ``num_feats / 2`` geometric frequencies
``omega_k = temperature ** (-2k / num_feats)`` as interleaved
``sin(c * omega_k), cos(c * omega_k)``. Feature-map positions are pixel centers normalized to
(0, scale), so the encoding of a location does not depend on the map's resolution, which
multi-scale (deformable) attention relies on.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sine_encoding_1d(coords: Tensor, num_feats: int, temperature: float = 10000.0) -> Tensor:
    """Encode scalar coordinates: (...,) -> (..., num_feats), channels (sin, cos) interleaved."""
    if num_feats % 2:
        raise ValueError(f"num_feats must be even, got {num_feats}")
    k = torch.arange(num_feats // 2, device=coords.device, dtype=coords.dtype)  # (F/2,)
    omega = temperature ** (-2.0 * k / num_feats)  # (F/2,)
    angles = coords[..., None] * omega  # (..., F/2)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # (..., F)


def sine_position_encoding_2d(
    height: int,
    width: int,
    dim: int,
    temperature: float = 10000.0,
    scale: float = 2 * math.pi,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Encoding of every cell of a (height, width) map: (dim, height, width).

    The first ``dim / 2`` channels encode the row (y), the last ``dim / 2`` the column (x); each
    cell is encoded at its center, ``(i + 0.5) / height * scale``.
    """
    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4, got {dim}")
    ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height * scale  # (H,)
    xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width * scale  # (W,)
    enc_y = sine_encoding_1d(ys, dim // 2, temperature)  # (H, dim/2)
    enc_x = sine_encoding_1d(xs, dim // 2, temperature)  # (W, dim/2)
    grid_y = enc_y[:, None, :].expand(height, width, dim // 2)  # (H, W, dim/2)
    grid_x = enc_x[None, :, :].expand(height, width, dim // 2)  # (H, W, dim/2)
    return torch.cat((grid_y, grid_x), dim=-1).permute(2, 0, 1)  # (dim, H, W)
