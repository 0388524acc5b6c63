"""Reading images as a viewer saw them, and refusing broken ones clearly."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from salience.io.images import (
    ImageReadError,
    ImageTooLargeError,
    NotAnImageError,
    decode_image,
    load_image,
    read_image,
    to_rgb_array,
)


def test_modes_become_rgb(tmp_path: Path) -> None:
    gray = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    gray.save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], np.asarray(gray))

    deep = Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))
    deep.save(tmp_path / "d.png")
    assert load_image(tmp_path / "d.png").max() == 255

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, fully transparent except one pixel
    rgba[0, 0, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[1, 1], [255, 255, 255])  # transparent shows white


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((10, 20, 3), dtype=np.uint8)
    arr[:, :5] = 255  # a bright left band
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (20, 10, 3)
    assert out[:5].mean() > 200 > out[-5:].mean()  # the left band is now on top


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a readable image"),
        (b"not an image at all", "not a readable image"),
    ],
)
def test_corrupt_files(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=match):
        load_image(path)


def test_truncated_and_missing(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buf, format="JPEG"
    )
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match=r"t\.jpg"):
        load_image(tmp_path / "t.jpg")
    with pytest.raises(ImageReadError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_huge_image_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("salience.io.images.MAX_PIXELS", 100)
    Image.new("RGB", (20, 20)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="larger than"):
        load_image(tmp_path / "big.png")


def test_arrays() -> None:
    assert to_rgb_array(np.ones((2, 3))).max() == 255  # float in [0, 1]
    assert to_rgb_array(np.full((2, 3, 4), 255, np.uint8)).shape == (2, 3, 3)
    with pytest.raises(ImageReadError, match="NaN"):
        to_rgb_array(np.full((2, 2), np.nan))
    with pytest.raises(ImageReadError, match="array"):
        to_rgb_array(np.zeros((2, 2, 2)))


def _gradient(height: int, width: int) -> np.ndarray:
    """A smooth RGB image: reducing it any sensible way gives nearly the same pixels."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [255 * x / width, 255 * y / height, 128 + 100 * np.sin(x / 40.0)], axis=2
    ).astype(np.uint8)


def _reduced_reference(full: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(Image.fromarray(full).resize((shape[1], shape[0]), Image.BILINEAR))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".webp", ".bmp"])
def test_capped_decode_is_the_image_reduced(tmp_path: Path, suffix: str) -> None:
    full = _gradient(600, 900)
    path = tmp_path / f"g{suffix}"
    Image.fromarray(full).save(path, **({"quality": 95} if suffix == ".jpg" else {}))
    decoded = read_image(path, max_pixels=20_000)
    assert decoded.original_size == (600, 900)
    height, width = decoded.pixels.shape[:2]
    assert height * width <= 20_000 and height * width > 0.9 * 20_000
    assert abs(width / height - 1.5) < 0.02 and decoded.scale == pytest.approx(width / 900)
    reference = _reduced_reference(load_image(path), decoded.pixels.shape)
    assert np.abs(decoded.pixels.astype(int) - reference).mean() < 3
    same = read_image(path, max_pixels=600 * 900)  # fits: decoded as it is
    np.testing.assert_array_equal(same.pixels, load_image(path))


def test_capped_decode_keeps_modes_and_orientation(tmp_path: Path) -> None:
    # 16-bit gray, float in 0..1, gray with alpha, palette with a transparent index: the capped
    # path (libvips) and the full path (Pillow) read them the same way
    ramp = np.linspace(0, 1, 300 * 400).reshape(300, 400)
    Image.fromarray((ramp * 65535).astype(np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(ramp.astype(np.float32), "F").save(tmp_path / "float.tif")
    Image.fromarray((ramp * 255).astype(np.uint8)).convert("LA").save(tmp_path / "la.png")
    palette = Image.fromarray((np.arange(400)[None, :].repeat(300, 0) // 100).astype(np.uint8))
    palette = palette.convert("P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    palette.save(tmp_path / "pal.png", transparency=3)
    for name in ("deep.png", "float.tif", "la.png", "pal.png"):
        capped = read_image(tmp_path / name, max_pixels=3_000).pixels
        reference = _reduced_reference(load_image(tmp_path / name), capped.shape)
        assert np.abs(capped.astype(int) - reference).mean() < 4, name
    # EXIF orientation 6 (rotate 90 degrees clockwise): upright size and pixels, both paths
    arr = np.zeros((200, 400, 3), dtype=np.uint8)
    arr[:, :100] = 255  # a bright left band, on top once upright
    for suffix in (".jpg", ".png"):
        im = Image.fromarray(arr)
        exif = im.getexif()
        exif[0x0112] = 6
        im.save(tmp_path / f"r{suffix}", exif=exif)
        decoded = read_image(tmp_path / f"r{suffix}", max_pixels=5_000)
        assert decoded.original_size == (400, 200), suffix
        out = decoded.pixels
        assert out.shape[0] > out.shape[1], suffix
        assert out[: out.shape[0] // 5].mean() > 200 > out[-out.shape[0] // 5 :].mean(), suffix


def test_float_tiff_in_unit_range_is_not_black(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 5), 0.5, np.float32), "F").save(tmp_path / "half.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "half.tif"), np.full((4, 5, 3), 128))


def test_extreme_aspect_is_refused_unless_asked(tmp_path: Path) -> None:
    Image.new("RGB", (2100, 100)).save(tmp_path / "strip.png")
    with pytest.raises(ImageReadError, match=r"strip\.png: 2100x100 .* aspect ratio of 21:1"):
        load_image(tmp_path / "strip.png")
    assert load_image(tmp_path / "strip.png", max_aspect=None).shape == (100, 2100, 3)
    assert load_image(tmp_path / "strip.png", max_aspect=25).shape == (100, 2100, 3)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads Linux's /proc")
def test_capped_decode_of_a_large_png_stays_small(tmp_path: Path) -> None:
    """Peak memory, in a fresh process: a 6000 x 6000 gray PNG would take over 100 MB decoded
    whole (Pillow holds gray as 1 byte, RGB as 4 per pixel); capped it must not."""
    Image.new("L", (6000, 6000), 77).save(tmp_path / "big.png")
    script = (  # VmHWM: this process's peak (ru_maxrss would start from the parent's)
        "import re, sys\n"
        "from pathlib import Path\n"
        "from salience.io.images import read_image, _vips\n"
        "def peak():\n"
        "    status = Path('/proc/self/status').read_text()\n"
        "    return int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
        "_vips()\n"
        "before = peak()\n"
        "decoded = read_image(sys.argv[1], max_pixels=int(sys.argv[2]))\n"
        "print(peak() - before)\n"
    )
    growth = {}
    for cap in (200_000, 36_000_000):
        run = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "big.png"), str(cap)],
            capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1],
        )  # fmt: skip
        growth[cap] = int(run.stdout) / 1024  # MB
    assert growth[36_000_000] > 100, growth  # the whole image: the measurement can tell
    assert growth[200_000] < 40, growth


def test_decode_image_reads_bytes_as_load_image_reads_the_file(tmp_path: Path) -> None:
    arr = np.random.default_rng(2).integers(0, 255, (9, 13, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "x.png")
    data = (tmp_path / "x.png").read_bytes()
    np.testing.assert_array_equal(decode_image(data), load_image(tmp_path / "x.png"))
    np.testing.assert_array_equal(decode_image(data), arr)


def test_decode_image_tells_the_failures_apart() -> None:
    with pytest.raises(NotAnImageError, match=r"upload\.txt: .*no known image format"):
        decode_image(b"plain text that says it is a PNG", "upload.txt")
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buf, format="PNG")
    with pytest.raises(ImageReadError, match=r"cut\.png: not a readable image") as cut:
        decode_image(buf.getvalue()[:60], "cut.png")
    assert not isinstance(cut.value, (NotAnImageError, ImageTooLargeError))


def test_decode_image_refuses_too_many_pixels_before_decoding(monkeypatch) -> None:
    buf = io.BytesIO()
    Image.new("L", (20, 20)).save(buf, format="PNG")
    monkeypatch.setattr("salience.io.images.MAX_PIXELS", 100)
    with pytest.raises(ImageTooLargeError, match="20x20 pixels is larger than the 100 allowed"):
        decode_image(buf.getvalue(), "big.png")
