"""A corpus of bad input below the Predictor: images, datasets, regions, checkpoints, full disks.

Every file is made by the test itself. Each kind must raise the library's own error type with a
one-line message that names the file (or the option) and says what is wrong, never a bare
exception from Pillow, numpy, safetensors or torch. Odd but valid images must decode right.
"""

from __future__ import annotations

import errno
import io
import json
import resource
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from salience.analysis.regions import Region, RegionError, read_regions
from salience.data import DataFormatError, load_dataset
from salience.data.csv import load_csv
from salience.io.atomic import DiskFullError, atomic_path
from salience.io.images import ImageReadError, load_image
from salience.models.metadata import CheckpointError, load_into, read_metadata, read_tensors
from salience.training.checkpoint import load_checkpoint, save_checkpoint

# -- builders: each writes one bad input under a folder and returns the path to name ---------


def _png_bytes(size=(40, 30), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 90).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes(size=(64, 48)) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        buf, format="JPEG"
    )
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds no pixel data at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


IMAGE_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated png": (lambda d: _write(d, "t.png", _png_bytes()[:60]), "not a readable image"),
    "truncated jpeg": (
        lambda d: _write(d, "t.jpg", _jpeg_bytes()[: len(_jpeg_bytes()) // 2]),
        "not a readable image",
    ),
    "random bytes": (
        lambda d: _write(d, "r.jpg", np.random.default_rng(1).bytes(4000)),
        "not a readable image",
    ),
    "zero bytes": (lambda d: _write(d, "z.png", b""), "not a readable image"),
    "text named png": (lambda d: _write(d, "notes.png", b"hello\n" * 50), "not a readable image"),
    "folder named png": (lambda d: _mkdir(d / "dir.png"), "is a folder"),
    "missing file": (lambda d: d / "gone.png", "not found"),
    "huge declared header": (
        lambda d: _write(d, "bomb.png", _png_header_only(100_000, 100_000)),
        "larger than",
    ),
    "declared just over the limit": (
        lambda d: _write(d, "bomb2.png", _png_header_only(20_000, 20_000)),
        "larger than",
    ),
    "zero width header": (lambda d: _write(d, "empty.png", _png_header_only(0, 10)), "png"),
    "extreme aspect": (lambda d: _save(d, "wide.png", Image.new("L", (100_000, 1))), "aspect"),
    "tall sliver": (lambda d: _save(d, "tall.png", Image.new("L", (3, 4000))), "aspect"),
    "float tiff with nan": (
        lambda d: _save(d, "nan.tif", Image.fromarray(np.full((4, 4), np.nan, np.float32), "F")),
        "NaN",
    ),
    "gif cut short": (lambda d: _write(d, "a.gif", _gif_bytes()[:40]), "not a readable image"),
}


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _save(folder: Path, name: str, image: Image.Image) -> Path:
    image.save(folder / name)
    return folder / name


def _gif_bytes() -> bytes:
    colours = [(220, 0, 0), (0, 220, 0), (0, 0, 220)]  # the first frame is red
    frames = [Image.new("RGB", (20, 10), c).convert("P") for c in colours]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


@pytest.mark.parametrize("cap", [None, 5_000])
@pytest.mark.parametrize("kind", sorted(IMAGE_CASES))
def test_bad_images(tmp_path: Path, kind: str, cap: int | None) -> None:
    build, problem = IMAGE_CASES[kind]
    path = build(tmp_path)
    with pytest.raises(ImageReadError) as info:
        load_image(path, max_pixels=cap)
    _names_file_and_problem(str(info.value), path, problem)


def _names_file_and_problem(message: str, path: Path | str, problem: str) -> None:
    assert str(path) in message, message
    assert problem.lower() in message.lower(), message
    assert "\n" not in message and "Traceback" not in message, message


# -- odd but valid images: decoded as a viewer sees them, capped or not ----------------------


def _exif_rotated(folder: Path) -> Path:
    arr = np.zeros((10, 20, 3), dtype=np.uint8)
    arr[:, :5] = 255
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(folder / "rot.jpg", exif=exif, quality=95)
    return folder / "rot.jpg"


def _palette_transparent(folder: Path) -> Path:
    im = Image.new("P", (20, 10), 0)
    im.putpalette([0, 0, 0, 200, 10, 10])
    im.paste(1, (0, 0, 10, 10))
    im.save(folder / "pal.png", transparency=0)
    return folder / "pal.png"


VALID_CASES: dict[str, tuple[Callable[[Path], Path], Callable[[np.ndarray], bool]]] = {
    "cmyk jpeg": (
        lambda d: _save(d, "c.jpg", Image.new("CMYK", (20, 10), (0, 255, 255, 0))),
        lambda rgb: rgb[..., 0].mean() > 200 and rgb[..., 1:].mean() < 60,  # red
    ),
    "16-bit png": (
        lambda d: _save(d, "d.png", Image.fromarray(np.full((10, 20), 30000, np.uint16))),
        lambda rgb: abs(int(rgb.mean()) - 117) <= 1,
    ),
    "float tiff in 0..1": (
        lambda d: _save(d, "f.tif", Image.fromarray(np.full((10, 20), 0.25, np.float32), "F")),
        lambda rgb: abs(int(rgb.mean()) - 64) <= 1,  # not black
    ),
    "palette with transparency": (
        _palette_transparent,
        lambda rgb: rgb[:, -3:].min() == 255 and rgb[:, :3, 0].mean() > 150,  # white, red
    ),
    "animated gif": (
        lambda d: _write(d, "a.gif", _gif_bytes()),
        lambda rgb: rgb[..., 0].min() > 180 and rgb[..., 1:].max() < 40,  # its first frame
    ),
    "exif rotation": (_exif_rotated, lambda rgb: rgb.shape[0] > rgb.shape[1]),
}


@pytest.mark.parametrize("cap", [None, 100])
@pytest.mark.parametrize("kind", sorted(VALID_CASES))
def test_odd_but_valid_images(tmp_path: Path, kind: str, cap: int | None) -> None:
    build, check = VALID_CASES[kind]
    rgb = load_image(build(tmp_path), max_pixels=cap)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert check(rgb), (kind, rgb.shape, rgb.mean(axis=(0, 1)))


# -- datasets ---------------------------------------------------------------------------------


@pytest.fixture
def csv_folder(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "images" / "a.png")
    return tmp_path


CSV_CASES: dict[str, tuple[bytes, str]] = {
    "header only": (b"image,observer,x,y\n", "only a header"),
    "empty file": (b"", "empty file"),
    "missing column": (b"image,observer,x\na.png,s1,3\n", "header"),
    "unknown column": (b"image,observer,x,y,durations\na.png,s1,3,4,1\n", "header"),
    "nan coordinate": (b"image,observer,x,y\na.png,s1,nan,4\n", "NaN"),
    "text coordinate": (b"image,observer,x,y\na.png,s1,3,four\n", "not a number"),
    "infinite coordinate": (b"image,observer,x,y\na.png,s1,inf,4\n", "infinite"),
    "short row": (b"image,observer,x,y\na.png,s1,3\n", "fields"),
    "empty observer": (b"image,observer,x,y\na.png,,3,4\n", "empty image or observer"),
    "missing image": (b"image,observer,x,y\nnope.png,s1,3,4\n", "not found"),
    "negative duration": (b"image,observer,x,y,duration\na.png,s1,3,4,-1\n", "negative"),
    "not utf-8": (b"image,observer,x,y\n\xff\xfe\xfa,s1,3,4\n", "UTF-8"),
}


@pytest.mark.parametrize("kind", sorted(CSV_CASES))
def test_bad_csv(csv_folder: Path, kind: str) -> None:
    text, problem = CSV_CASES[kind]
    path = _write(csv_folder, "fixations.csv", text)
    with pytest.raises(DataFormatError) as info:
        load_csv(path, pixels_per_degree=30.0)
    _names_file_and_problem(str(info.value), path, problem)


@pytest.mark.parametrize(
    ("kind", "content", "problem"),
    [
        ("text as image", b"not an image", "not a readable image"),
        ("declared bomb", _png_header_only(40_000, 40_000), "too large"),
        ("truncated header", _png_bytes()[:20], "not a readable image"),
    ],
)
def test_bad_image_in_a_dataset(csv_folder: Path, kind: str, content: bytes, problem: str) -> None:
    image = _write(csv_folder / "images", "b.png", content)
    _write(csv_folder, "fixations.csv", b"image,observer,x,y\nb.png,s1,3,4\n")
    with pytest.raises(DataFormatError) as info:
        load_csv(csv_folder, pixels_per_degree=30.0)
    _names_file_and_problem(str(info.value), image, problem)


def test_bad_split_file(csv_folder: Path) -> None:
    _write(csv_folder, "fixations.csv", b"image,observer,x,y\na.png,s1,3,4\n")
    split = _write(csv_folder, "split.json", b"{not json")
    with pytest.raises(DataFormatError) as info:
        load_csv(csv_folder, pixels_per_degree=30.0)
    _names_file_and_problem(str(info.value), split, "not valid JSON")


@pytest.mark.parametrize(
    ("name", "kwargs", "problem"),
    [
        ("csv", {}, "--pixels-per-degree"),
        ("csv", {"pixels_per_degree": -3.0}, "positive"),
        ("csv", {"pixels_per_degree": float("inf")}, "positive"),
        ("nus-scene", {"pixels_per_degree": 30.0}, "cannot be set"),
        ("osie", {"images": "x"}, "takes no option images"),
    ],
)
def test_bad_dataset_options(csv_folder: Path, name: str, kwargs: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        load_dataset(name, csv_folder, **kwargs)


def test_cat2000_without_its_fixation_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError) as info:
        load_dataset("cat2000", tmp_path)
    _names_file_and_problem(str(info.value), tmp_path / "allFixData.mat", "not found")


# -- regions ------------------------------------------------------------------------------------

REGION_CASES: dict[str, tuple[object, str]] = {
    "self-intersecting": (
        [{"name": "bow", "polygon": [[0, 0], [10, 10], [10, 0], [0, 10]]}],
        "crosses itself",
    ),
    "empty name": ([{"name": " ", "rect": [0, 0, 5, 5]}], "name"),
    "nan coordinate": ([{"name": "a", "rect": [0, float("nan"), 5, 5]}], "finite"),
    "two vertices": ([{"name": "a", "polygon": [[0, 0], [5, 5]]}], "3 vertices"),
    "zero area": ([{"name": "a", "polygon": [[0, 0], [5, 5], [10, 10]]}], "zero area"),
    "negative size": ([{"name": "a", "rect": [0, 0, -5, 5]}], "positive"),
    "duplicate names": (
        [{"name": "a", "rect": [0, 0, 5, 5]}, {"name": "a", "rect": [5, 5, 5, 5]}],
        "duplicate",
    ),
    "unknown units": ({"regions": [{"name": "a", "rect": [0, 0, 5, 5]}], "units": "cm"}, "units"),
    "empty list": ([], "non-empty"),
}


@pytest.mark.parametrize("kind", sorted(REGION_CASES))
def test_bad_region_files(tmp_path: Path, kind: str) -> None:
    data, problem = REGION_CASES[kind]
    path = _write(tmp_path, "regions.json", json.dumps(data).encode())
    with pytest.raises(RegionError) as info:
        read_regions(path)
    _names_file_and_problem(str(info.value), path, problem)


def test_region_file_that_is_not_json(tmp_path: Path) -> None:
    path = _write(tmp_path, "regions.json", b"\x00\x01 not json")
    with pytest.raises(RegionError) as info:
        read_regions(path)
    _names_file_and_problem(str(info.value), path, "not valid JSON")


def test_region_outside_the_image() -> None:
    region = Region.rect("logo", 500, 500, 20, 20)
    with pytest.raises(RegionError, match=r"'logo'.*covers no pixel of the 100x80 image"):
        region.mask((80, 100))


# -- checkpoints --------------------------------------------------------------------------------


def _weights(folder: Path) -> Path:
    path = folder / "w.safetensors"
    save_file(nn.Linear(3, 2).state_dict(), str(path), metadata={"step": "1"})
    return path


CHECKPOINT_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "random bytes": (
        lambda d: _write(d, "r.safetensors", np.random.default_rng(2).bytes(3000)),
        "not a readable safetensors",
    ),
    "truncated": (
        lambda d: _write(d, "t.safetensors", _weights(d).read_bytes()[:70]),
        "not a readable safetensors",
    ),
    "zero bytes": (lambda d: _write(d, "z.safetensors", b""), "not a readable safetensors"),
    "folder": (lambda d: _mkdir(d / "dir.safetensors"), "is a folder"),
    "missing": (lambda d: d / "gone.safetensors", "not found"),
}


@pytest.mark.parametrize("reader", [read_metadata, read_tensors])
@pytest.mark.parametrize("kind", sorted(CHECKPOINT_CASES))
def test_bad_weight_files(tmp_path: Path, kind: str, reader: Callable) -> None:
    build, problem = CHECKPOINT_CASES[kind]
    path = build(tmp_path)
    with pytest.raises(CheckpointError) as info:
        reader(path)
    _names_file_and_problem(str(info.value), path, problem)


def test_wrong_tensors_name_the_file_not_every_key(tmp_path: Path) -> None:
    big = nn.Sequential(*[nn.Linear(4, 4) for _ in range(30)])
    path = tmp_path / "other.safetensors"
    save_file(big.state_dict(), str(path))
    with pytest.raises(CheckpointError) as info:
        load_into(nn.Linear(3, 2), read_tensors(path), path)
    message = str(info.value)
    _names_file_and_problem(message, path, "do not fit")
    assert "60 unexpected" in message and message.count(".weight") <= 4  # a few examples


def test_damaged_training_state(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "last", nn.Linear(3, 2), {}, {"step": 3})
    (state,) = tmp_path.glob("last.state-*.pt")
    state.write_bytes(np.random.default_rng(3).bytes(500))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path, "last", nn.Linear(3, 2))
    _names_file_and_problem(str(info.value), state, "not a readable training state")
    torch.save(["not", "a", "state"], state)
    with pytest.raises(CheckpointError, match="no step recorded"):
        load_checkpoint(tmp_path, "last", nn.Linear(3, 2))


# -- a full disk ----------------------------------------------------------------------------------


def test_a_short_write_is_reported_as_a_full_disk(tmp_path: Path) -> None:
    """numpy's short write ("N requested and M written", no errno) is what a full disk looks like
    to it; made here with a file size limit. The caller must hear "disk full" and the file it
    was writing, and no temporary may stay behind."""
    target = tmp_path / "map.npy"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))  # Python ignores SIGXFSZ
    try:
        with pytest.raises(DiskFullError) as info, atomic_path(target) as tmp:
            np.save(tmp, np.zeros(100_000))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert "requested and" in str(info.value.__cause__)  # what numpy said
    _names_file_and_problem(str(info.value), target, "disk full")
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []
