"""Tall and wide images predicted viewport by viewport, joined into one density.

A full-page screenshot is not a photo: people see it one screen at a time, scrolling down.
Squeezed whole into a network's input of about 384 x 512 pixels, a page ten screens deep keeps
a strip about 135 pixels wide, and the prediction spreads over the whole page as if it were seen
at once. A :class:`Tiler` instead cuts such an image into overlapping **viewports**, runs the
model on each as an image of its own, and joins the viewports' densities into one for the image.

Which images (:data:`TALL_ASPECT`, :data:`WIDE_ASPECT`)
    An image taller than twice its width (height / width > 2, e.g. a page over 3.2 screens of a
    16:10 display deep) is cut top to bottom; one wider than 2.5 times its height (a panorama,
    a banner) left to right. Portrait photos (3:4, 9:16 phone photos at 1.78) and every image
    nearer square are left whole, bit-identical to the model's own prediction.

Viewports (:data:`SCREEN_ASPECT`, :data:`OVERLAP`)
    Down a tall image a viewport is the image's width by a 16:10 screen's height at that width
    (0.625 x width); across a wide one, the image's height by a 16:10 screen's width (1.6 x
    height). Viewports overlap by at least half: the fewest viewports whose steps are at most
    half a viewport, spread evenly from the first edge to the last.

Joining
    Along the cutting direction each viewport k gets a blending weight ``w_k``: a tent that is
    1 at its middle and falls to 0 at its edges (at the image's first and last edges it stays
    1), divided by the sum of all viewports' tents, so the weights of every row (or column) sum
    to 1 (a partition of unity) and the join has no seams. Each viewport also gets a prior
    share ``S_k`` of the image's fixations. The joined density is
    ``q = sum_k w_k * (S_k / a_k) * p_k`` with ``p_k`` the viewport's own density and ``a_k``
    the mass of ``w_k * p_k``: viewport k contributes exactly ``S_k`` of the mass, its content
    says where within it, and ``q`` sums to 1 (renormalized against rounding). On a page of
    uniform viewports the mass per screen is the reach curve's to within 10 % (the tents
    smooth the curve's step at the fold).

Prior shares (:data:`REACH`)
    Down a page, ``S_k`` is the reach curve's mass under the viewport's blending weight: how
    often viewers look that far down (:mod:`salience.data.reach`), the ``fold`` curve fitted on
    EYEVIDO train (192 pages, 16:10 screens, one weight per fixation; ``python
    benchmarks/eyevido_reach.py``, see ``benchmarks/RESULTS_eyevido_reach.md``). On EYEVIDO it
    puts 61 % of a long page's fixations in its first screen, as observed on train. Across a
    wide image nothing says which side is looked at more, so every column has the same prior
    (``S_k`` is the viewport's share of the columns' weight).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from salience.data.reach import SCREEN_ASPECT, ReachCurve
from salience.models.base import DensityModel, ImageDensityModel

TALL_ASPECT = 2.0  # height / width above which an image is cut top to bottom
WIDE_ASPECT = 2.5  # width / height above which an image is cut left to right
OVERLAP = 0.5  # viewports overlap by at least this share of a viewport
MIN_VIEWPORT = 32  # pixels; a thinner image is predicted whole (no screen is that small)
VIEWPORT_BATCH = 16  # viewports per call of the model (bounds memory on very long pages)

# The fold reach curve fitted on EYEVIDO train: salience.data.reach.fit_reach(
# load_eyevido("../shared/data/eyevido").split("train"), "fold") (benchmarks/eyevido_reach.py);
# tests/models/test_tiling.py refits it and checks these digits.
REACH = ReachCurve(
    kind="fold",
    params={"scale": 3.4512, "boost": 1.6043},
    screen_aspect=SCREEN_ASPECT,
    log_likelihood=-0.91305,
    flat_log_likelihood=-1.05838,
    n_fixations=20092,
)

# maps_of: uint8 (h, w, 3) images -> per image log-density maps (K, h, w), each summing to 1
MapsOf = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True, eq=False)
class Tiling:
    """How one image is cut into viewports and joined (module docstring)."""

    size: tuple[int, int]  # (height, width) of the image
    axis: int  # 0: viewports down a tall image, 1: across a wide one
    starts: tuple[int, ...]  # each viewport's first row (axis 0) or column (axis 1)
    length: int  # a viewport's extent along ``axis``, pixels
    blend: np.ndarray  # (n, length) each viewport's blending weight along ``axis``
    shares: np.ndarray  # (n,) each viewport's prior share of the fixations, sums to 1
    prior: str  # what the shares come from: "reach" or "equal"

    @property
    def viewport(self) -> tuple[int, int]:
        """(height, width) of one viewport."""
        return (self.length, self.size[1]) if self.axis == 0 else (self.size[0], self.length)

    def __len__(self) -> int:
        return len(self.starts)

    def crops(self, image: np.ndarray) -> list[np.ndarray]:
        """The viewports of ``image`` (H, W, 3), top to bottom or left to right."""
        if self.axis == 0:
            return [image[s : s + self.length] for s in self.starts]
        return [image[:, s : s + self.length] for s in self.starts]

    def join(self, log_maps: Sequence[np.ndarray]) -> np.ndarray:
        """Per viewport log-density maps (K, h, w) -> the image's (K, H, W), float64, each map
        summing to 1 (the rule of the module docstring, per map)."""
        first = np.asarray(log_maps[0])
        joined = np.zeros((first.shape[0], *self.size))  # (K, H, W)
        for start, weight, share, log_map in zip(
            self.starts, self.blend, self.shares, log_maps, strict=True
        ):
            density = np.exp(np.asarray(log_map, dtype=np.float64))  # (K, h, w)
            along = weight[:, None] if self.axis == 0 else weight[None, :]  # (h, 1) or (1, w)
            weighted = density * along
            mass = weighted.sum(axis=(1, 2))  # (K,)
            scale = share / np.maximum(mass, np.finfo(np.float64).tiny)
            part = weighted * scale[:, None, None]
            if self.axis == 0:
                joined[:, start : start + self.length] += part
            else:
                joined[:, :, start : start + self.length] += part
        joined = np.maximum(joined, np.finfo(np.float64).tiny)
        joined /= joined.sum(axis=(1, 2), keepdims=True)
        return np.log(joined)

    def owners(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Per point (pixels of the image) the viewport whose blending weight is largest at it:
        where a fixation counts when viewports are taken one by one (e.g. to train on them)."""
        along = ys if self.axis == 0 else xs
        position = np.clip(np.asarray(along).astype(int), 0, self.size[self.axis] - 1)
        weights = np.zeros((len(self), len(position)))
        for k, start in enumerate(self.starts):
            inside = (position >= start) & (position < start + self.length)
            weights[k, inside] = self.blend[k, position[inside] - start]
        return weights.argmax(axis=0)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: direction, viewports, their size, overlap and where the prior comes from."""
        height, width = self.viewport
        return {
            "direction": "down" if self.axis == 0 else "across",
            "viewports": len(self),
            "viewport": {"height": height, "width": width},
            "starts": list(self.starts),
            "prior": self.prior,
        }


class Tiler:
    """Decides which images to cut (:meth:`plan`) and runs a model viewport by viewport
    (:meth:`run`); thresholds, overlap and reach curve as in the module docstring."""

    def __init__(
        self,
        tall_aspect: float = TALL_ASPECT,
        wide_aspect: float = WIDE_ASPECT,
        screen_aspect: float = SCREEN_ASPECT,
        overlap: float = OVERLAP,
        reach: ReachCurve = REACH,
        batch: int = VIEWPORT_BATCH,
    ) -> None:
        if not (tall_aspect >= 1 / screen_aspect and wide_aspect >= 1 / screen_aspect):
            raise ValueError(
                "the aspect thresholds must leave room for a viewport: tall_aspect and "
                f"wide_aspect >= {1 / screen_aspect:.3g}, got {tall_aspect} and {wide_aspect}"
            )
        if not 0 < overlap < 1:
            raise ValueError(f"overlap must be in (0, 1), got {overlap}")
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.tall_aspect = tall_aspect
        self.wide_aspect = wide_aspect
        self.screen_aspect = screen_aspect
        self.overlap = overlap
        self.reach = reach
        self.batch = batch

    def settings(self) -> dict[str, Any]:
        """JSON-ready: what decides whether and how an image is cut."""
        return {
            "tall_aspect": self.tall_aspect,
            "wide_aspect": self.wide_aspect,
            "screen_aspect": self.screen_aspect,
            "overlap": self.overlap,
            "reach": {"kind": self.reach.kind, **self.reach.params},
        }

    def plan(self, size: tuple[int, int]) -> Tiling | None:
        """How an image of ``size`` = (height, width) is cut, or None to predict it whole."""
        height, width = size
        if height > self.tall_aspect * width:
            axis, extent, length = 0, height, max(1, round(self.screen_aspect * width))
        elif width > self.wide_aspect * height:
            axis, extent, length = 1, width, max(1, round(height / self.screen_aspect))
        else:
            return None
        if length < MIN_VIEWPORT:
            return None
        step = length * (1 - self.overlap)
        n = math.ceil((extent - length) / step) + 1
        starts = tuple(round(s) for s in np.linspace(0, extent - length, n))
        blend = _partition(starts, length, extent)  # (n, length)
        if axis == 0:  # reach: relative fixation density per row, depth in screens
            prior = self.reach((np.arange(extent) + 0.5) / length)
            name = "reach"
        else:
            prior, name = np.ones(extent), "equal"
        mass = np.array(
            [(w * prior[s : s + length]).sum() for s, w in zip(starts, blend, strict=False)]
        )
        return Tiling(size, axis, starts, length, blend, mass / mass.sum(), name)

    def run(
        self, images: Sequence[np.ndarray], maps_of: MapsOf
    ) -> list[tuple[np.ndarray, Tiling | None]]:
        """Per uint8 (H, W, 3) image its log-density maps (K, H, W) and its tiling (None if
        predicted whole). ``maps_of`` is the model: images -> per image maps (K, h, w). The
        images predicted whole go to it in one call, in their order, so their maps are exactly
        what it gives for them alone."""
        plans = [self.plan(image.shape[:2]) for image in images]
        results: list[tuple[np.ndarray, Tiling | None]] = [(np.empty(0), None)] * len(images)
        whole = [i for i, plan in enumerate(plans) if plan is None]
        if whole:
            for i, maps in zip(whole, maps_of([images[i] for i in whole]), strict=True):
                results[i] = (maps, None)
        for i, plan in enumerate(plans):
            if plan is None:
                continue
            crops = plan.crops(images[i])
            maps: list[np.ndarray] = []
            for start in range(0, len(crops), self.batch):
                maps.extend(maps_of(crops[start : start + self.batch]))
            results[i] = (plan.join(maps), plan)
        return results


def _partition(starts: Sequence[int], length: int, extent: int) -> np.ndarray:
    """(n, length) blending weights of viewports at ``starts``: tents (1 at the middle, near 0
    at the edges; 1 towards the image's own first and last edge) normalized to sum to 1 at every
    pixel of the ``extent``."""
    u = np.arange(length) + 0.5  # pixel centers within a viewport
    tent = 1.0 - np.abs(u - length / 2) / (length / 2)  # (length,), > 0 at every center
    raw = np.tile(tent, (len(starts), 1))
    raw[0, u < length / 2] = 1.0
    raw[-1, u > length / 2] = 1.0
    total = np.zeros(extent)
    for s, r in zip(starts, raw, strict=False):
        total[s : s + length] += r
    return np.stack([r / total[s : s + length] for s, r in zip(starts, raw, strict=False)])


class TiledDensity(ImageDensityModel):
    """``base`` as a density model that predicts tall and wide images viewport by viewport
    (:class:`Tiler`); every other image exactly as ``base`` does."""

    def __init__(self, base: DensityModel, tiler: Tiler | None = None) -> None:
        self.base = base
        self.tiler = tiler or Tiler()
        self.name = f"{base.name} (tiled)"
        self.needs_image = base.needs_image

    def base_maps(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The base model's log-densities of ``images`` as (1, h, w) maps, batched where it can."""
        if isinstance(self.base, ImageDensityModel):
            return [d[None] for d in self.base.log_densities(images)]
        return [self.base.log_density(im, im.shape[:2])[None] for im in images]

    def log_densities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 (H_i, W_i, 3) images -> float64 log-densities (H_i, W_i), each summing to 1."""
        return [maps[0] for maps, _ in self.tiler.run(images, self.base_maps)]

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        plan = self.tiler.plan(size)
        if plan is None:
            return self.base.log_density(image, size)
        if image is None:  # a content-free base (e.g. a center bias): every viewport alike
            viewport = self.base.log_density(None, plan.viewport)[None]
            return plan.join([viewport] * len(plan))[0]
        if tuple(image.shape[:2]) != tuple(size):
            image = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
        return self.log_densities([image])[0]
