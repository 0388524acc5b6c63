"""Reading images as a viewer saw them, and refusing broken ones clearly."""

from __future__ import annotations

import io
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
