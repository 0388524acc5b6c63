"""Peak memory of ``salience predict`` on hostile image sizes, next to a normal photo's.

Each case runs ``salience predict IMAGE --out DIR --scanpaths 0`` with the shipped default model
in a child process of its own, and reads that child's peak resident set size
(``RUSAGE_CHILDREN``, taken in a fresh wrapper process per case so no earlier case's peak counts).
The cases: an 800 x 600 OSIE photo; a 13000 x 13000 PNG (0.5 MB on disk, 169 million pixels,
under every pixel limit); a 100000 x 1 PNG; a 6000 x 6000 PNG. The goal (issue 15): each within
1.5 times the normal photo's peak.

    python benchmarks/predict_memory.py    # writes benchmarks/RESULTS_predict_memory.md
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "osie" / "stimuli" / "1002.jpg"
WRAPPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "peak_mib": peak_kib / 1024,
                  "seconds": time.perf_counter() - start, "stderr": done.stderr[-2000:]}))
"""


def measure(image: Path, out: Path) -> dict:
    """Peak RSS (MiB), exit status and wall time of one ``salience predict`` run."""
    command = [sys.executable, "-m", "salience", "predict", str(image), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command, "--scanpaths", "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "RESULTS_predict_memory.md"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = {"800 x 600 photo (OSIE 1002.jpg)": PHOTO}
        for width, height in ((13000, 13000), (100000, 1), (6000, 6000)):
            path = folder / f"{width}x{height}.png"
            Image.new("RGB", (width, height), (90, 120, 200)).save(path)
            cases[f"{width} x {height} PNG ({path.stat().st_size / 1e6:.2f} MB)"] = path
        rows = {
            name: measure(path, folder / f"out{i}") for i, (name, path) in enumerate(cases.items())
        }
    normal = next(iter(rows.values()))["peak_mib"]
    lines = [
        "# Peak memory of `salience predict` (issue 15)",
        "",
        f"`python benchmarks/predict_memory.py` on {platform.node() or 'this machine'} "
        f"({platform.machine()}, 2 cores), Python {platform.python_version()}; shipped default "
        "model, `--scanpaths 0`, one image per run, peak RSS of the `salience predict` process.",
        "",
        "| input | exit status | peak RSS (MiB) | vs the photo | seconds | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in rows.items():
        said = row["stderr"].strip().splitlines()
        failed = [line for line in said if line.startswith(("failed:", "error:"))]
        note = (failed or said[-1:])[0].split(": ", 1)[-1] if row["rc"] else "predicted"
        lines.append(
            f"| {name} | {row['rc']} | {row['peak_mib']:.0f} | {row['peak_mib'] / normal:.2f} x "
            f"| {row['seconds']:.1f} | {note.replace('|', '/')} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
