"""Reading images the way a viewer saw them: EXIF rotation applied, any mode to 8-bit RGB.

Decoding can be capped (``max_pixels``): a caller that needs only a few hundred thousand pixels
(a network's input) then pays memory for about that many, not for what the file declares.
JPEGs are decoded at 1/2, 1/4 or 1/8 scale by the decoder itself (Pillow's ``draft``), and PNG,
TIFF, WebP and GIF stream through libvips, which shrinks them row by row, so a 13000 x 13000
PNG of a few hundred kilobytes never becomes 700 MB of pixels. Other formats are decoded whole
and then reduced. The header-declared size is checked against :data:`MAX_PIXELS` before any
pixel is decoded, capped or not, and images far longer than wide (or the reverse) are refused
unless the caller opts in (``max_aspect=None``).
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Refuse images declaring more pixels than this, before decoding. Pillow itself refuses twice its
# MAX_IMAGE_PIXELS (about 13 400 x 13 400) when it opens a file; our limit is the same, so the
# message is ours whichever check fires first.
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
# Images with more pixels are predicted at a reduced resolution, decoded reduced: memory is set
# by this, not by what a file claims (the network itself sees about 0.2 MP).
WORKING_PIXELS = 2048 * 2048
# Refuse images whose longer side is more than this many times the shorter (e.g. 100000 x 1):
# the network would see a sliver. Callers that handle such images pass ``max_aspect=None``.
MAX_ASPECT = 20.0
# Formats libvips decodes sequentially (row by row), so a capped decode stays small.
_STREAMED_FORMATS = frozenset({"PNG", "TIFF", "WEBP", "GIF"})
# EXIF orientations that swap width and height (rotations by 90 degrees, transpositions).
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# What a damaged file can make Pillow's or libvips's readers raise.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error)


class ImageReadError(ValueError):
    """An image that cannot be read; the message names the file and the reason."""


class NotAnImageError(ImageReadError):
    """Content in no image format Pillow knows (decided by the bytes, not the name)."""


class ImageTooLargeError(ImageReadError):
    """An image with more pixels than :data:`MAX_PIXELS`: refused before it is decoded."""


@dataclass(frozen=True)
class DecodedImage:
    """An image as decoded: its pixels (possibly reduced) and the full image's size.

    ``pixels`` is uint8 RGB (h, w, 3), upright; ``original_size`` is the (height, width) the
    file declares, upright too. With no cap the two sizes are equal.
    """

    pixels: np.ndarray
    original_size: tuple[int, int]

    @property
    def scale(self) -> float:
        """How many decoded pixels per original pixel along each side (1.0 when not reduced)."""
        return self.pixels.shape[1] / self.original_size[1]


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any PIL image or array (gray, RGB, RGBA, 16-bit, float in [0, 1]) to uint8 (H, W, 3).

    Alpha is composited over white (a transparent design is seen on a white page), 16-bit and
    float images are scaled to 8 bits, gray is repeated over three channels.
    """
    if isinstance(image, Image.Image):
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(image, dtype=np.float64)
            top = 65535.0 if arr.max() > 255 else 255.0
            return to_rgb_array(arr / top)
        if image.mode == "F":  # 32-bit float (e.g. scientific TIFFs): values in 0..1 or 0..255
            return to_rgb_array(np.asarray(image, dtype=np.float32))
        if image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        ):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
        if image.mode == "RGB":
            return np.asarray(image)  # no converted copy
        try:
            return np.asarray(image.convert("RGB"))
        except ValueError as exc:
            raise ImageReadError(f"colour mode {image.mode} is not supported ({exc})") from exc
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ImageReadError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got {arr.shape}")
    if arr.size == 0:
        raise ImageReadError(f"empty image array of shape {arr.shape}")
    if arr.dtype == np.uint8:
        rgb = arr
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageReadError("image array contains NaN or infinity")
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        rgb = np.clip(np.round(arr * scale), 0, 255).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        scale = 257.0 if arr.max() > 255 else 1.0
        rgb = np.clip(np.round(arr / scale), 0, 255).astype(np.uint8)
    else:
        raise ImageReadError(f"unsupported image dtype {arr.dtype}")
    if rgb.ndim == 2:
        rgb = rgb[:, :, None]
    if rgb.shape[2] == 1:
        return np.repeat(rgb, 3, axis=2)
    if rgb.shape[2] == 4:
        alpha = rgb[:, :, 3:4].astype(np.float64) / 255.0
        over_white = rgb[:, :, :3] * alpha + 255.0 * (1 - alpha)
        return np.round(over_white).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def pixel_limit() -> int:
    """The most pixels an image may have to be read (:data:`MAX_PIXELS`, or Pillow's own
    decompression-bomb limit where a program lowered it)."""
    if Image.MAX_IMAGE_PIXELS is None:
        return MAX_PIXELS
    return min(MAX_PIXELS, 2 * int(Image.MAX_IMAGE_PIXELS))


def fit_size(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """(height, width) of ``size`` scaled down, aspect kept, to at most ``max_pixels`` pixels
    (``size`` itself if it already fits); each side at least 1."""
    height, width = size
    if height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))


def load_image(
    path: str | Path, max_pixels: int | None = None, max_aspect: float | None = MAX_ASPECT
) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3), upright per its EXIF orientation.

    With ``max_pixels`` the result is reduced (aspect kept) to at most about that many pixels,
    decoding as little as the format allows; :func:`read_image` also returns the full size.
    """
    return read_image(path, max_pixels, max_aspect).pixels


def read_image(
    path: str | Path, max_pixels: int | None = None, max_aspect: float | None = MAX_ASPECT
) -> DecodedImage:
    """Read an image file, reduced to at most about ``max_pixels`` pixels if given.

    Raises :class:`ImageReadError` naming the file for a missing, unreadable, truncated or
    unsupported file, one declaring more than :data:`MAX_PIXELS` pixels, or one whose sides
    differ by more than ``max_aspect`` times (``None`` accepts any aspect).
    """
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels}")
    return _open_and_decode(path, str(path), max_pixels, max_aspect)


def decode_image(
    data: bytes, name: str = "upload", max_aspect: float | None = MAX_ASPECT
) -> np.ndarray:
    """Image bytes (e.g. an upload) as uint8 RGB (H, W, 3), as :func:`load_image` reads a file.

    The format is decided by the content alone. Errors name ``name``: a
    :class:`NotAnImageError` for bytes in no known image format, an :class:`ImageTooLargeError`
    past :data:`MAX_PIXELS`, an :class:`ImageReadError` for a corrupt or truncated image.
    """
    return _open_and_decode(io.BytesIO(data), name, None, max_aspect).pixels


def _open_and_decode(
    source: Path | io.BytesIO, name: str, max_pixels: int | None, max_aspect: float | None
) -> DecodedImage:
    """Open, check the declared size, decode (reduced to ``max_pixels``), turn upright, RGB;
    every failure an :class:`ImageReadError` naming ``name``."""
    try:
        with warnings.catch_warnings():
            # sizes between Pillow's warning and error thresholds are ours to judge
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                return _decode(im, source, name, max_pixels, max_aspect)
    except UnidentifiedImageError as exc:
        raise NotAnImageError(f"{name}: not a readable image (no known image format)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"{name}: larger than the {pixel_limit()} pixels allowed ({exc})"
        ) from exc
    except MemoryError as exc:
        raise ImageReadError(f"{name}: not enough memory to decode this image") from exc
    except ImageReadError as exc:
        message = str(exc)
        if message.startswith(name):
            raise
        raise type(exc)(f"{name}: {message}") from exc
    except _DECODE_ERRORS as exc:
        raise ImageReadError(f"{name}: not a readable image ({exc})") from exc


def _decode(
    im: Image.Image,
    source: Path | io.BytesIO,
    path: str,
    max_pixels: int | None,
    max_aspect: float | None,
) -> DecodedImage:
    width, height = im.size
    if width < 1 or height < 1:
        raise ImageReadError(f"{path}: declares an empty {width}x{height} image")
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{path}: {width}x{height} pixels is larger than the {MAX_PIXELS} allowed"
        )
    if max_aspect is not None and max(width, height) > max_aspect * min(width, height):
        raise ImageReadError(
            f"{path}: {width}x{height} pixels has an aspect ratio of "
            f"{max(width, height) / min(width, height):.0f}:1, more than the {max_aspect:g}:1 "
            "allowed (pass max_aspect=None to accept it)"
        )
    if max_pixels is None or width * height <= max_pixels:
        im.load()
        rgb = to_rgb_array(_upright(im))
        return DecodedImage(rgb, rgb.shape[:2])
    if im.format in ("JPEG", "MPO"):
        # the decoder scales by 1/2, 1/4 or 1/8 while decoding, to no less than asked
        im.draft(None, fit_size((height, width), max_pixels)[::-1])
        im.load()
        swapped = im.getexif().get(0x0112, 1) in _SWAPPING_ORIENTATIONS  # from the header
        rgb = to_rgb_array(_upright(im))
    elif im.format in _STREAMED_FORMATS and isinstance(source, Path):
        # Pillow finds a PNG's EXIF only by decoding every pixel: libvips reads the orientation
        rgb, orientation = _vips_reduced(source, math.sqrt(max_pixels / (width * height)))
        rgb = to_rgb_array(rgb)
        swapped = orientation in _SWAPPING_ORIENTATIONS
    else:  # no reduce-on-load for this format: decode whole, then reduce
        im.load()
        rgb = to_rgb_array(_upright(im))
        swapped = rgb.shape[:2] != (height, width)
    upright = (width, height) if swapped else (height, width)
    target = fit_size(upright, max_pixels)
    if rgb.shape[:2] != target:
        rgb = np.asarray(Image.fromarray(rgb).resize(target[::-1], Image.Resampling.BILINEAR))
    return DecodedImage(rgb, upright)


def _upright(im: Image.Image) -> Image.Image:
    """``im`` turned per its EXIF orientation, without a copy when it needs no turning."""
    ImageOps.exif_transpose(im, in_place=True)
    return im


@cache
def _vips() -> Any:
    """pyvips, set up for untrusted files: no loaders libvips marks unsafe, no result cache."""
    import pyvips

    pyvips.block_untrusted_set(True)
    pyvips.cache_set_max(0)
    return pyvips


def _vips_reduced(path: Path, scale: float) -> tuple[np.ndarray, int]:
    """The image scaled by ``scale`` (< 1), upright, decoded row by row, and the EXIF
    orientation it had: an array in the file's own sample type (uint8, uint16, float32), gray,
    RGB or RGBA, for :func:`to_rgb_array`."""
    pyvips = _vips()
    try:
        source = pyvips.Source.new_from_file(str(path))  # no filename option parsing
        image = pyvips.Image.new_from_source(source, "", access="sequential", fail_on="truncated")
        fields = image.get_fields()
        orientation = int(image.get("orientation")) if "orientation" in fields else 1
        if image.interpretation == "cmyk":
            image = image.colourspace("srgb")
        if image.hasalpha():  # average colours weighted by opacity: no dark fringes
            sample = image.format
            image = image.premultiply().resize(scale, kernel="linear").unpremultiply()
            image = image.cast(sample)
        else:
            image = image.resize(scale, kernel="linear")
        array = image.autorot().numpy()
    except pyvips.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "libvips error"
        raise ImageReadError(f"{path}: not a readable image ({reason})") from exc
    if array.ndim == 3 and array.shape[2] == 2:  # gray and alpha -> RGBA
        array = array[:, :, [0, 0, 0, 1]]
    return array, orientation
