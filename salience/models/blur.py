"""Separable Gaussian blur of maps in PyTorch, reflecting at the borders (differentiable in sigma).

Used by the dense readouts (a learned blur) and by SUM's training targets (empirical densities
over the output cells).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel_1d(sigma: Tensor, radius: int) -> Tensor:
    """Normalized 1-D Gaussians of standard deviation ``sigma``: (2 radius + 1,) for a 0-d
    ``sigma``, (C, 2 radius + 1) for one per channel, (C,)."""
    offsets = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)
    kernel = torch.exp(-0.5 * (offsets / sigma[..., None]) ** 2)
    return kernel / kernel.sum(-1, keepdim=True)


def gaussian_blur(x: Tensor, sigma: Tensor, radius: int) -> Tensor:
    """Separable Gaussian blur of (B, C, h, w) maps, reflecting at the borders: ``sigma`` a 0-d
    tensor (every channel alike) or one per channel, (C,)."""
    channels = x.shape[1]
    kernel = gaussian_kernel_1d(sigma, radius)  # (K,) or (C, K)
    if kernel.dim() == 1:
        kernel = kernel[None].expand(channels, -1) if channels > 1 else kernel[None]  # (C, K)
    pad_h, pad_w = min(radius, x.shape[-2] - 1), min(radius, x.shape[-1] - 1)
    x = F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect" if pad_w else "replicate")
    rows = kernel[:, None, None, radius - pad_w : radius + pad_w + 1]  # (C, 1, 1, 2 pad_w + 1)
    x = F.conv2d(x, rows, groups=channels)
    x = F.pad(x, (0, 0, pad_h, pad_h), mode="reflect" if pad_h else "replicate")
    cols = kernel[:, None, radius - pad_h : radius + pad_h + 1, None]  # (C, 1, 2 pad_h + 1, 1)
    return F.conv2d(x, cols, groups=channels)
