"""Separable Gaussian blur of maps in PyTorch, reflecting at the borders (differentiable in sigma).

Used by the dense readouts (a learned blur) and by SUM's training targets (empirical densities
over the output cells).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel_1d(sigma: Tensor, radius: int) -> Tensor:
    """Normalized 1-D Gaussian of standard deviation ``sigma`` (a 0-d tensor): (2 radius + 1,)."""
    offsets = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(x: Tensor, sigma: Tensor, radius: int) -> Tensor:
    """Separable Gaussian blur of (B, 1, h, w) maps, reflecting at the borders."""
    kernel = gaussian_kernel_1d(sigma, radius)  # (K,)
    pad_h, pad_w = min(radius, x.shape[-2] - 1), min(radius, x.shape[-1] - 1)
    x = F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect" if pad_w else "replicate")
    x = F.conv2d(x, kernel[radius - pad_w : radius + pad_w + 1].view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, pad_h, pad_h), mode="reflect" if pad_h else "replicate")
    return F.conv2d(x, kernel[radius - pad_h : radius + pad_h + 1].view(1, 1, -1, 1))
