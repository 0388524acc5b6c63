"""Reading images the way a viewer saw them: EXIF rotation applied, any mode to 8-bit RGB."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Refuse images whose decoded size would exhaust memory (Pillow's own bomb check stops at 2x this).
MAX_PIXELS = 20_000 * 20_000


class ImageReadError(ValueError):
    """An image that cannot be read; the message names the file and the reason."""


class NotAnImageError(ImageReadError):
    """Content in no image format Pillow knows (decided by the bytes, not the name)."""


class ImageTooLargeError(ImageReadError):
    """An image with more pixels than :data:`MAX_PIXELS`: refused before it is decoded."""


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
        if image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        ):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
        return np.asarray(image.convert("RGB"))
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
    """The most pixels an image file may have to be read: :data:`MAX_PIXELS`, or Pillow's own
    decompression-bomb limit (twice ``PIL.Image.MAX_IMAGE_PIXELS``) where that is lower."""
    if Image.MAX_IMAGE_PIXELS is None:
        return MAX_PIXELS
    return min(MAX_PIXELS, 2 * int(Image.MAX_IMAGE_PIXELS))


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3), upright per its EXIF orientation."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    return _decode(path, str(path))


def decode_image(data: bytes, name: str = "upload") -> np.ndarray:
    """Image bytes (e.g. an upload) as uint8 RGB (H, W, 3), as :func:`load_image` reads a file.

    The format is decided by the content alone. Errors name ``name`` and are a
    :class:`NotAnImageError` for bytes in no known image format, an :class:`ImageTooLargeError`
    past :data:`MAX_PIXELS`, and an :class:`ImageReadError` for a corrupt or truncated image.
    """
    return _decode(io.BytesIO(data), name)


def _decode(source: Path | BinaryIO, name: str) -> np.ndarray:
    """Open, check the size before decoding, decode, apply EXIF rotation, convert to RGB."""
    try:
        im = Image.open(source)
    except UnidentifiedImageError as exc:
        raise NotAnImageError(f"{name}: not a readable image (no known image format)") from exc
    except Image.DecompressionBombError as exc:  # Pillow's own size check, at open
        raise ImageTooLargeError(
            f"{name}: more pixels than the {pixel_limit()} allowed ({exc})"
        ) from exc
    except (OSError, SyntaxError) as exc:
        raise ImageReadError(f"{name}: not a readable image ({exc})") from exc
    with im:
        width, height = im.size
        if width * height > MAX_PIXELS:
            raise ImageTooLargeError(
                f"{name}: {width}x{height} pixels is larger than the {MAX_PIXELS} allowed"
            )
        try:
            im.load()
            return to_rgb_array(ImageOps.exif_transpose(im))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageReadError(f"{name}: not a readable image ({exc})") from exc
