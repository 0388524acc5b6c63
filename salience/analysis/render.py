"""Pictures of saliency for people: heatmaps, overlays, differences, gaze plots, PNG output.

Every function takes a model's density (float (H, W), non-negative, summing to 1, at the image's
resolution) and/or a uint8 RGB image (H, W, 3), and returns a uint8 RGB array, so the results can
be saved with ``save_png``, shown in a notebook or compared in tests.

Colormaps are matplotlib's (``matplotlib.colormaps[name]``); only that registry is imported, never
pyplot, and only when a colormap is first needed, so importing this module stays cheap.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyvips
from PIL import Image, ImageDraw, ImageFont

from salience.io.atomic import atomic_write
from salience.io.images import to_rgb_array

if TYPE_CHECKING:
    from matplotlib.colors import Colormap

# Named in the error for an unknown colormap, besides the closest matches.
COMMON_COLORMAPS = ("inferno", "magma", "viridis", "jet", "turbo", "RdBu_r", "coolwarm")

# Gaze plots are drawn supersampled for smooth circles; the drawing layer is capped at this
# many pixels so that large photos do not need gigabytes for it.
_SUPERSAMPLED_PIXELS = 16_000_000


# display_map's precision: its binned ranks are within this of the exact ones (a 256-colour map's
# steps are 16 times wider)
DISPLAY_TOLERANCE = 2.0**-12
_BUCKET_SHIFT = 10  # float32 bits dropped from the bucket key: 13 mantissa bits kept
_BAND_PIXELS = 1 << 13  # pixels per band of the overlay's blend


def display_map(density: np.ndarray, exact: bool = False) -> np.ndarray:
    """The density as float (H, W) in [0, 1] for people to look at: the share of attention.

    A pixel's value is the share of the density's mass on pixels less dense than it (pixels of
    equal density count half, as mid-ranks do). So the pixels above ``1 - x`` are the densest
    pixels that together hold the share ``x`` of predicted fixations: the "top x % of attention"
    contours that attention tools and the saliency literature draw. Zero-density pixels get 0,
    the peak gets 1 less half its own mass (about 1 for any blurred map), and a uniform density,
    all ties, gets 0.5 everywhere.

    Why not ``density / density.max()``: that scale hangs on the height of a single peak pixel,
    so the same colour means different things across images, models and blur widths, and a sharp
    peak paints everything else black. Here a colour has one meaning on every map (0.8 = "in
    the densest 20 %"), and it is monotone in the density, so the ranking of regions is intact.
    Only proportions matter: any non-negative map gives the display of its normalised density.

    The shares are computed from a histogram of the densities (linear time), within
    :data:`DISPLAY_TOLERANCE` of the exact mid-ranks; ``exact`` sorts all pixels instead.
    """
    d = _density(density)
    if exact:
        return _mid_ranks(d.ravel()).reshape(d.shape)
    return _binned_mid_ranks(d.ravel()).reshape(d.shape)


def _mid_ranks(values: np.ndarray, total: float | None = None) -> np.ndarray:
    """Per value the share of ``total`` (default: the values' sum) held by smaller values plus
    half that of its equals (a full sort)."""
    levels, inverse = np.unique(values, return_inverse=True)
    level_mass = np.bincount(inverse, weights=values, minlength=len(levels))
    level_mass /= level_mass.sum() if total is None else total
    below = np.cumsum(level_mass) - level_mass
    return np.clip(below + 0.5 * level_mass, 0.0, 1.0)[inverse]


def _binned_mid_ranks(values: np.ndarray) -> np.ndarray:
    """:func:`_mid_ranks` to within :data:`DISPLAY_TOLERANCE`, without a full sort.

    Non-negative float32 values order as their bit patterns; the top bits (13 of the mantissa)
    bin the values into buckets 1/8192 of their size wide. A pixel gets the mass of all lower
    buckets plus half its own bucket's: off by at most half the bucket's mass. Buckets holding
    more than twice the tolerance (rare: broad plateaus) are resolved exactly by sorting their
    pixels only."""
    keys = values.astype(np.float32).view(np.uint32) >> np.uint32(_BUCKET_SHIFT)
    keys -= keys.min()
    mass = np.bincount(keys, weights=values)  # (buckets,)
    total = mass.sum()
    mass /= total
    below = np.cumsum(mass) - mass
    shown = (below + 0.5 * mass)[keys]
    heavy = mass > 2 * DISPLAY_TOLERANCE
    if heavy.any():
        inside = np.flatnonzero(heavy[keys])
        members = values[inside]
        # exact mid-ranks among the heavy buckets' pixels, less what lighter buckets between
        # them hold: the same as ranking them among all pixels
        ranks = _mid_ranks(members, total)
        lighter_below = np.cumsum(np.where(heavy, 0.0, mass))  # up to and including each
        shown[inside] = ranks + lighter_below[keys[inside]]
    return np.clip(shown, 0.0, 1.0, out=shown)


def heatmap(
    density: np.ndarray, colormap: str = "inferno", display: np.ndarray | None = None
) -> np.ndarray:
    """The display map (see ``display_map``) in a colormap: uint8 (H, W, 3).

    The default, inferno, is perceptually uniform and readable in grayscale and by colour-blind
    readers, so equal steps in attention share look like equal steps. ``display``: the
    density's display map if already computed (it costs a sort of the pixels).
    """
    return _apply(_colormap(colormap), display_map(density) if display is None else display)


def overlay(
    image: np.ndarray,
    density: np.ndarray,
    colormap: str = "jet",
    opacity: float = 0.5,
    display: np.ndarray | None = None,
) -> np.ndarray:
    """The heatmap blended over the image: uint8 (H, W, 3).

    Each pixel's opacity is ``opacity`` times its display value, so the heat covers the image
    where attention concentrates and fades out where there is little: the photo stays readable
    in low-attention areas (zero-density pixels are left exactly as they were). ``display`` as
    in :func:`heatmap`.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    rgb = to_rgb_array(image)
    value = display_map(density) if display is None else display
    if value.shape != rgb.shape[:2]:
        raise ValueError(
            f"image is {rgb.shape[0]}x{rgb.shape[1]} (H x W) but the density is "
            f"{value.shape[0]}x{value.shape[1]}; compute or resize the density at the image's size"
        )
    heat = _apply(_colormap(colormap), value)
    alpha = opacity * value
    out = np.empty_like(rgb)
    band = max(1, _BAND_PIXELS // rgb.shape[1])  # rows at a time: small float64 temporaries
    for top in range(0, rgb.shape[0], band):
        rows = slice(top, top + band)
        blended = rgb[rows] * (1.0 - alpha[rows])[:, :, None]
        blended += heat[rows] * alpha[rows][:, :, None]
        out[rows] = np.round(blended, out=blended)
    return out


def difference_map(
    density_a: np.ndarray,
    density_b: np.ndarray,
    colormap: str = "RdBu_r",
    limit: float | None = None,
) -> np.ndarray:
    """A diverging map of ``b - a``: uint8 (H, W, 3), the colormap's centre where they agree.

    Zero difference sits at the centre of the colormap (near white for RdBu_r; red where b is
    denser, blue where a is), and the scale is symmetric: ``limit`` (default ``max |b - a|``)
    maps to both ends, so a given shade means the same amount either way. Pass one ``limit`` to
    compare several difference maps on one scale. Each density is normalised to sum to 1 first.
    """
    a, b = _density(density_a), _density(density_b)
    if a.shape != b.shape:
        raise ValueError(f"densities differ in shape: {a.shape} and {b.shape}")
    diff = b / b.sum() - a / a.sum()
    if limit is None:
        limit = float(np.abs(diff).max())
    elif not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"limit must be a positive number, got {limit}")
    scaled = diff / limit if limit > 0 else np.zeros_like(diff)
    return _apply(_colormap(colormap), 0.5 + 0.5 * np.clip(scaled, -1.0, 1.0))


def side_by_side(
    images: Sequence[np.ndarray], gap: int = 8, labels: Sequence[str] | None = None
) -> np.ndarray:
    """Panels in a row on white, top-aligned, ``gap`` pixels apart: uint8 RGB.

    Panels may differ in height and width. With ``labels``, each panel gets its label centred
    above it in Pillow's default font, sized to the tallest panel; a label wider than its panel
    widens that panel's slot rather than being cut.
    """
    panels = [to_rgb_array(image) for image in images]
    if not panels:
        raise ValueError("side_by_side needs at least one image")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    if labels is not None and len(labels) != len(panels):
        raise ValueError(f"{len(labels)} labels for {len(panels)} images")
    top = max(p.shape[0] for p in panels)
    widths = [p.shape[1] for p in panels]
    strip = 0
    font = None
    if labels is not None:
        font = ImageFont.load_default(size=max(12, round(top / 24)))
        ascent, descent = font.getmetrics()
        pad = max(2, (ascent + descent) // 3)
        strip = ascent + descent + 2 * pad
        widths = [
            max(w, math.ceil(font.getlength(label)) + 2 * pad)
            for w, label in zip(widths, labels, strict=True)
        ]
    canvas = Image.new("RGB", (sum(widths) + gap * (len(panels) - 1), strip + top), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for i, (panel, width) in enumerate(zip(panels, widths, strict=True)):
        canvas.paste(Image.fromarray(panel), (x + (width - panel.shape[1]) // 2, strip))
        if labels is not None:
            draw.text((x + width / 2, strip / 2), labels[i], fill="black", font=font, anchor="mm")
        x += width + gap
    return np.asarray(canvas)


def gaze_plot(
    image: np.ndarray, points: np.ndarray, durations: np.ndarray | None = None
) -> np.ndarray:
    """A numbered gaze plot of one scanpath over the image: uint8 (H, W, 3).

    ``points`` is (k, 2) fixation positions (x, y) in 0-based pixels, as in
    ``salience.data`` (pixel ``(i, j)`` covers ``j <= x < j + 1``). Fixations are circles numbered
    1..k in order, joined by lines from each to the next. With ``durations`` (k,), circle *area*
    grows in proportion to duration (the way readers compare circles), with a minimum radius that
    keeps the number legible; unknown durations (NaN, as the datasets record them) get that
    minimum. Numbers of nearby fixations (refixations) are nudged apart so each stays legible.
    """
    rgb = to_rgb_array(image)
    height, width = rgb.shape[:2]
    xy = np.asarray(points, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"points must be (k, 2) (x, y) positions, got shape {xy.shape}")
    if not np.isfinite(xy).all():
        raise ValueError("points contain NaN or infinity")
    base = max(4.0, min(height, width) / 40)
    radii = _fixation_radii(durations, len(xy), base)
    # draw at `scale` times the size, then average down: anti-aliased circles and lines
    scale = max(1, min(4, math.isqrt(_SUPERSAMPLED_PIXELS // (height * width))))
    layer = Image.new("RGBA", (width * scale, height * scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    centres = [(float(x) * scale, float(y) * scale) for x, y in xy]
    line = max(1, round(base * scale / 5))
    if len(centres) > 1:
        draw.line(centres, fill=(0, 0, 0, 200), width=3 * line, joint="curve")
        draw.line(centres, fill=(255, 255, 255, 230), width=line, joint="curve")
    for (cx, cy), r in zip(centres, radii * scale, strict=True):
        draw.ellipse(
            (cx - r, cy - r, cx + r, cy + r),
            fill=(255, 200, 0, 120),
            outline=(0, 0, 0, 230),
            width=line,
        )
    font = ImageFont.load_default(size=round(1.1 * base * scale))
    labels = [str(number) for number in range(1, len(centres) + 1)]
    boxes = [draw.textbbox((0, 0), label, font=font, anchor="mm") for label in labels]
    sizes = [
        (right - left + 2 * line, bottom - top + 2 * line) for left, top, right, bottom in boxes
    ]
    spots = _label_spots(centres, sizes, (width * scale, height * scale))
    for label, centre in zip(labels, spots, strict=True):
        draw.text(
            centre,
            label,
            fill="white",
            font=font,
            anchor="mm",
            stroke_width=line,
            stroke_fill="black",
        )
    layer = layer.resize((width, height), Image.Resampling.BOX)
    photo = Image.fromarray(rgb).convert("RGBA")
    return np.asarray(Image.alpha_composite(photo, layer).convert("RGB"))


def draw_regions(
    image: np.ndarray, outlines: Sequence[np.ndarray], labels: Sequence[str]
) -> np.ndarray:
    """Region outlines ((m, 2) (x, y) pixel vertices each) drawn over the image with a label at
    each region's top-left vertex: uint8 (H, W, 3)."""
    if len(outlines) != len(labels):
        raise ValueError(f"{len(labels)} labels for {len(outlines)} regions")
    canvas = Image.fromarray(to_rgb_array(image))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(11, round(max(canvas.size) / 60)))
    line = max(2, round(max(canvas.size) / 300))
    for outline, label in zip(outlines, labels, strict=True):
        points = [(float(x), float(y)) for x, y in outline]
        draw.polygon(points, outline=(255, 255, 0), width=line)
        x, y = min(points, key=lambda p: (p[1], p[0]))
        box = draw.textbbox((x + line, y + line), label, font=font)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((x + line, y + line), label, fill=(255, 255, 0), font=font)
    return np.asarray(canvas)


def colormap_table(name: str, n: int = 256) -> np.ndarray:
    """The colormap's ``n`` colours from its low end to its high end: uint8 (n, 3), e.g. for a
    browser that draws heatmaps itself from a display map."""
    if n < 2:
        raise ValueError(f"a colormap table needs at least 2 entries, got {n}")
    return _apply(_colormap(name), np.linspace(0.0, 1.0, n))


def check_colormap(name: str) -> None:
    """Raise the ValueError an unknown colormap name would, before a long job starts."""
    _colormap(name)


def png_bytes(array: np.ndarray, compress_level: int = 6) -> bytes:
    """A uint8 gray (H, W), RGB (H, W, 3) or RGBA (H, W, 4) array encoded as PNG.

    Encoded by libvips (pyvips, already the decoder of large images) with the Sub row filter:
    about twice as fast as Pillow's adaptive filters at the same size on heatmaps and overlays,
    which matters where a folder job writes two PNGs per image. ``compress_level`` 1 (fast) to
    9 (small); 2 gives about the sizes of Pillow's level 1.
    """
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"a PNG needs a uint8 array, got {arr.dtype}")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or arr.size == 0:
        raise ValueError(f"a PNG needs an (H, W), (H, W, 3) or (H, W, 4) array, got {arr.shape}")
    if not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level must be 0 to 9, got {compress_level}")
    arr = np.ascontiguousarray(arr)
    bands = 1 if arr.ndim == 2 else arr.shape[2]
    image = pyvips.Image.new_from_memory(arr.data, arr.shape[1], arr.shape[0], bands, "uchar")
    return image.pngsave_buffer(compression=compress_level, filter="sub")


def save_png(path: str | Path, array: np.ndarray, compress_level: int = 6) -> None:
    """Write a uint8 gray (H, W), RGB (H, W, 3) or RGBA (H, W, 4) array as a PNG, atomically.

    The file is written to a temporary name beside ``path`` and renamed into place, so an
    interrupted run leaves the old file or none, never half of one; parent folders are created.
    The format is PNG whatever ``path``'s suffix; ``compress_level`` as :func:`png_bytes`.
    """
    atomic_write(path, png_bytes(array, compress_level))


def _density(density: np.ndarray) -> np.ndarray:
    """Check a density (2-D, finite, non-negative, some mass) and return it as float64."""
    d = np.asarray(density)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"a density must be a non-empty (H, W) array, got shape {d.shape}")
    if not (np.issubdtype(d.dtype, np.floating) or np.issubdtype(d.dtype, np.integer)):
        raise ValueError(f"a density must be a real-valued array, got {d.dtype}")
    d = d.astype(np.float64, copy=False)
    if not np.isfinite(d).all():
        raise ValueError("the density contains NaN or infinity")
    if (d < 0).any():
        raise ValueError(f"the density has negative values (min {d.min():.3g})")
    if not d.any():
        raise ValueError("the density is all zero: it has no mass to display")
    return d


def _fixation_radii(durations: np.ndarray | None, k: int, base: float) -> np.ndarray:
    """Circle radii for k fixations: ``1.5 * base`` without durations, else area ~ duration."""
    if durations is None:
        return np.full(k, 1.5 * base)
    dur = np.asarray(durations, dtype=np.float64)
    if dur.shape != (k,):
        raise ValueError(f"durations must be ({k},), one per point, got shape {dur.shape}")
    if np.isinf(dur).any() or (dur < 0).any():
        raise ValueError("durations must be finite and >= 0 (NaN for unknown)")
    known = ~np.isnan(dur)
    longest = dur[known].max() if known.any() else 0.0
    if longest == 0:
        return np.full(k, 1.5 * base)
    return np.where(known, np.maximum(base, 3 * base * np.sqrt(np.nan_to_num(dur) / longest)), base)


def _label_spots(
    centres: Sequence[tuple[float, float]],
    sizes: Sequence[tuple[float, float]],
    bounds: tuple[float, float],
) -> list[tuple[float, float]]:
    """Where to centre each label (in order) so that no two overlap: at its point if free, else
    the nearest free spot on rings of 8 around it (up to 3 label heights away, inside
    ``bounds`` = (width, height)); its point if none is free. ``sizes``: (width, height) each."""
    placed: list[tuple[float, float, float, float]] = []  # x, y, width, height
    spots = []
    for (cx, cy), (w, h) in zip(centres, sizes, strict=True):
        candidates = [(cx, cy)] + [
            (cx + ring * h * math.cos(a), cy + ring * h * math.sin(a))
            for ring in (1, 2, 3)
            for a in np.linspace(0, 2 * math.pi, 8, endpoint=False) - math.pi / 2
        ]
        spot = next(
            (
                (x, y)
                for x, y in candidates
                if w / 2 <= x <= bounds[0] - w / 2
                and h / 2 <= y <= bounds[1] - h / 2
                and all(
                    abs(x - px) >= (w + pw) / 2 or abs(y - py) >= (h + ph) / 2
                    for px, py, pw, ph in placed
                )
            ),
            (cx, cy),
        )
        placed.append((*spot, w, h))
        spots.append(spot)
    return spots


def _colormap(name: str) -> Colormap:
    """matplotlib's colormap of that name; an unknown name is a ValueError listing valid ones."""
    import matplotlib  # deferred: only rendering pays for the import

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        names = list(matplotlib.colormaps)
        close = difflib.get_close_matches(str(name), names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(
            f"unknown colormap {name!r}; {hint}valid names include "
            f"{', '.join(COMMON_COLORMAPS)} (all {len(names)}: matplotlib.colormaps)"
        ) from None


def _apply(cmap: Colormap, values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] through a colormap, as uint8 RGB: matplotlib's lookup (entry
    ``floor(value * N)``, 1 the last), on the colormap's table of N colours."""
    table = cmap(np.arange(cmap.N), bytes=True)[:, :3]  # (N, 3) uint8
    index = np.minimum(np.multiply(values, cmap.N), cmap.N - 1).astype(np.intp)
    return table.take(index, axis=0)
