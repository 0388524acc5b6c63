"""Peak memory of decoding hostile and normal images, whole versus capped.

Each decode runs in a fresh Python process; the table gives that process's peak resident set
(``VmHWM`` of ``/proc/self/status``, so Linux only) and how much of it the decode added over the
imports. "whole" is
``read_image(path, max_aspect=None)``: Pillow decodes every pixel, as ``load_image`` always did;
"capped" is ``read_image(path, max_pixels=CAP)`` with the cap the Predictor is meant to pass
(4 x the default model's 384 x 512 network input, i.e. twice its resolution per side).

    PYTHONPATH=. python benchmarks/decode_memory.py [--out benchmarks/RESULTS_decode_memory.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CAP = 4 * 384 * 512

_CHILD = """
import json, re, sys, time
from pathlib import Path
from salience.io.images import ImageReadError, read_image, _vips

def high_water_mb():  # this process's peak resident set; unlike ru_maxrss, not the parent's
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024

_vips()  # import libvips before the baseline, as a long-running process would have
base = high_water_mb()
path, cap, aspect = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.perf_counter()
try:
    decoded = read_image(
        path, None if cap == "none" else int(cap), None if aspect == "none" else float(aspect)
    )
    shape = list(decoded.pixels.shape)
except ImageReadError as exc:
    shape = "refused: " + str(exc).split(": ", 1)[1][:48] + "..."
seconds = time.perf_counter() - start
peak = high_water_mb()
print(json.dumps({"peak_mb": peak, "growth_mb": peak - base, "seconds": seconds, "result": shape}))
"""


def _make_images(folder: Path) -> dict[str, Path]:
    """The test images: written with libvips (row by row), so making them takes little memory."""
    import pyvips

    images = {}
    big = pyvips.Image.black(13000, 13000, bands=3).linear(1, [120, 30, 200])
    images["13000 x 13000 PNG (uniform, 0.5 MB)"] = folder / "big.png"
    big.cast("uchar").pngsave(str(images["13000 x 13000 PNG (uniform, 0.5 MB)"]))
    images["100000 x 1 PNG"] = folder / "wide.png"
    Image.new("RGB", (100_000, 1), (120, 30, 200)).save(images["100000 x 1 PNG"])
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:3024, 0:4032]
    photo = np.stack([x * 255 // 4032, y * 255 // 3024, (x + y) % 256], axis=2)
    photo = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    images["4032 x 3024 JPEG (a phone photo)"] = folder / "photo.jpg"
    Image.fromarray(photo).save(images["4032 x 3024 JPEG (a phone photo)"], quality=92)
    osie = ROOT.parent / "shared" / "data" / "osie" / "stimuli"
    first = sorted(osie.glob("*.jpg"))[:1]
    if first:
        images["800 x 600 JPEG (an OSIE image)"] = first[0]
    return images


def _measure(path: Path, cap: str, aspect: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), cap, aspect],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(run.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args()
    lines = [
        "| image | decoder | peak RSS (MB) | added by the decode (MB) | seconds | result |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in _make_images(Path(tmp)).items():
            runs = [
                ("whole, any aspect", "none", "none"),
                (f"capped at {CAP} px", str(CAP), "20"),
            ]
            if "100000" in label:
                runs.append((f"capped at {CAP} px, any aspect", str(CAP), "none"))
            for decoder, cap, aspect in runs:
                r = _measure(path, cap, aspect)
                lines.append(
                    f"| {label} | {decoder} | {r['peak_mb']:.0f} | {r['growth_mb']:.0f} | "
                    f"{r['seconds']:.2f} | {r['result']} |"
                )
    table = "\n".join(lines)
    print(table)
    if args.out:
        command = "PYTHONPATH=. python benchmarks/decode_memory.py --out " + str(args.out)
        args.out.write_text(f"# Decoding memory\n\n`{command}`\n\n{table}\n")


if __name__ == "__main__":
    main()
