"""From predicted fixations to pixels: fixation lists, scanpaths, saliency maps, log-densities.

Pure tensor functions on the model's ``pred_points`` (B, N, 2), normalized (x, y), and fixation
probabilities ``probs`` (B, N) (``pred_logits.sigmoid()``). Pixel coordinates follow the
project's convention: 0-based float pixels, x right, y down, pixel (i, j) covering
``j <= x < j + 1`` and ``i <= y < i + 1``, so a normalized x maps to ``x * width``. Maps are
evaluated at pixel centers.

The map is a Gaussian per predicted fixation weighted by its probability (the paper's sigma is
19 px at 640x480; other sizes scale it with the image diagonal). A model with the density head
predicts each Gaussian's width and weight instead, and its map is their mixture, each Gaussian
normalized over the pixels. The log-density mixes the normalized map with a small prior so that
it is finite everywhere.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

REFERENCE_SIZE = (480, 640)  # (height, width) at which the paper's sigma is given
REFERENCE_SIGMA_PX = 19.0


def scaled_sigma(
    size: tuple[int, int],
    sigma_px: float = REFERENCE_SIGMA_PX,
    reference_size: tuple[int, int] = REFERENCE_SIZE,
) -> float:
    """``sigma_px`` (given at ``reference_size``) for an image of ``size``, by the diagonal."""
    return sigma_px * math.hypot(*size) / math.hypot(*reference_size)


def fixation_points(
    pred_points: Tensor, probs: Tensor, size: tuple[int, int]
) -> list[tuple[Tensor, Tensor]]:
    """Per image: (points (N, 2) as (x, y) pixels, probabilities (N,)), most probable first."""
    height, width = size
    scale = pred_points.new_tensor([width, height])  # (2,)
    result = []
    for points, p in zip(pred_points, probs, strict=True):
        order = p.argsort(descending=True)  # (N,)
        result.append((points[order] * scale, p[order]))
    return result


def scanpath_from_outputs(
    pred_points: Tensor, probs: Tensor, size: tuple[int, int], threshold: float = 0.5
) -> list[tuple[Tensor, Tensor]]:
    """Per image: the ordered fixations of a sequentially trained SalTR, in pixels of ``size``.

    Queries are read in order (query i is the i-th fixation) up to, not including, the first
    whose fixation probability is below ``threshold``; the first query is always kept, so a
    scanpath has at least one fixation. Returns (points (L, 2) as (x, y) pixels, probabilities
    (L,)) per image; points are kept inside the image. Only meaningful for a model trained with
    ``matching="sequential"`` on ordered targets: Hungarian-trained queries have no order.
    """
    height, width = size
    scale = pred_points.new_tensor([width, height])  # (2,)
    # a saturated sigmoid gives exactly 1, which would be the pixel just outside the image
    inside = pred_points.clamp(0.0, 1.0 - 1e-6)  # (B, N, 2)
    below = probs < threshold  # (B, N)
    # index of the first query below the threshold, N if none; at least 1
    lengths = torch.where(below.any(dim=1), below.int().argmax(dim=1), below.shape[1])  # (B,)
    lengths = lengths.clamp_min(1)
    return [
        (points[:n] * scale, p[:n])
        for points, p, n in zip(inside, probs, lengths.tolist(), strict=True)
    ]


def saliency_map(
    pred_points: Tensor,
    probs: Tensor,
    size: tuple[int, int],
    sigma: float | Tensor,
    normalize_each: bool = False,
) -> Tensor:
    """Sum of isotropic Gaussians weighted by probability: (B, H, W).

    ``sigma`` in pixels, one for all or per query (B, N). Each Gaussian has peak 1, or, with
    ``normalize_each``, sums to 1 over the pixel grid (a mixture density when the weights sum
    to 1: the density head's). Separable: each Gaussian is the outer product of a row profile
    and a column profile (:func:`gaussian_profiles`).
    """
    height, width = size
    gx = gaussian_profiles(pred_points[..., 0] * width, sigma, width, normalize_each)  # (B, N, W)
    gy = gaussian_profiles(pred_points[..., 1] * height, sigma, height, normalize_each)  # (B, N, H)
    return torch.einsum("bn,bnh,bnw->bhw", probs.to(gx), gy, gx)  # (B, H, W)


def gaussian_profiles(
    centers: Tensor, sigma: float | Tensor, length: int, normalize: bool = False
) -> Tensor:
    """Gaussians of ``centers`` (..., N) in pixels along one axis at its pixel centers:
    (..., N, length), peak 1 or, with ``normalize``, each summing to 1 over the axis's pixels
    (so a product of two is normalized over the pixel grid, the image's edges included)."""
    grid = torch.arange(length, device=centers.device, dtype=centers.dtype) + 0.5  # (length,)
    width = sigma[..., None] if isinstance(sigma, Tensor) else sigma
    profiles = torch.exp(-0.5 * ((grid - centers[..., None]) / width) ** 2)  # (..., N, length)
    return profiles / profiles.sum(-1, keepdim=True) if normalize else profiles


def center_bias_prior(
    size: tuple[int, int],
    spread: float = 0.25,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """A broad Gaussian at the image center, std ``spread`` times width / height: (H, W), sum 1.

    Positive everywhere, so it can serve as the floor of a density.
    """
    height, width = size
    xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width - 0.5  # (W,)
    ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height - 0.5  # (H,)
    gx = torch.exp(-0.5 * (xs / spread) ** 2)  # (W,)
    gy = torch.exp(-0.5 * (ys / spread) ** 2)  # (H,)
    prior = gy[:, None] * gx[None, :]  # (H, W)
    return prior / prior.sum()


def log_density(
    pred_points: Tensor,
    probs: Tensor,
    size: tuple[int, int],
    sigma: float | Tensor | None = None,
    floor_weight: float = 1e-2,
    prior: Tensor | None = None,
    normalize_each: bool = False,
) -> Tensor:
    """Natural-log density over the (H, W) pixel grid: (B, H, W), ``exp`` sums to 1 per image.

    ``(1 - floor_weight) * normalized saliency_map + floor_weight * prior``. ``sigma`` (one, or
    per query (B, N)) defaults to the paper's, scaled to ``size``; ``normalize_each`` as in
    :func:`saliency_map`; ``prior`` ((H, W) or (B, H, W), summing to 1) defaults to
    :func:`center_bias_prior`. An image whose map has no mass (all probabilities 0) gets the prior.
    """
    if not 0.0 < floor_weight <= 1.0:
        raise ValueError(f"floor_weight must be in (0, 1], got {floor_weight}")
    if sigma is None:
        sigma = scaled_sigma(size)
    if prior is None:
        prior = center_bias_prior(size, device=pred_points.device, dtype=pred_points.dtype)
    prior = prior.to(pred_points).expand(pred_points.shape[0], *size)  # (B, H, W)
    sal = saliency_map(pred_points, probs, size, sigma, normalize_each)  # (B, H, W)
    mass = sal.sum(dim=(-2, -1), keepdim=True)  # (B, 1, 1)
    normalized = torch.where(mass > 0, sal / mass.clamp_min(torch.finfo(sal.dtype).tiny), prior)
    return ((1.0 - floor_weight) * normalized + floor_weight * prior).log()  # (B, H, W)
