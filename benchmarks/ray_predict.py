"""Images per second of ``salience predict``: the local path against ``--engine ray`` with 1 and
2 workers (a local Ray instance started by each job), and the Ray path's overhead per image.

Each engine predicts the first N and then the first 2.5 N OSIE images (the shipped default model,
full 800 x 600 images, every output file written) into fresh folders; the engines take turns
within each repeat, so a change in the machine's load falls on all of them. Per job:

- wall seconds, and end-to-end images/s = images / wall;
- start-up seconds: from the call to the first image's finished files (model load; for Ray also
  starting the instance and its actors);
- steady images/s: the images after the first over the time from the first image's finished
  files to the last one's (the files' modification times);
- CPU seconds of this process and every process it started (Ray's too), polled from /proc.

On a machine shared with other jobs wall times measure the share of the CPU a job wins as much
as its cost, so the overhead is taken from CPU time: CPU seconds per image is the slope between
the two job sizes, fixed CPU seconds the rest (medians over the repeats), and the Ray path's
overhead per image is its CPU seconds per image minus the local path's. Ray runs its workers at
nice 15 by default, which alone would slow them against the local path here, so this script
sets ``RAY_worker_niceness=0`` (as Ray's own job submission does). Linux only (/proc).

    python benchmarks/ray_predict.py --images 16 --repeats 2 \\
        --json benchmarks/RESULTS_ray_predict.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from salience.batch import PredictJob, run_predict
from salience.predictor import Predictor
from salience.ray_engine import PredictorSource, run_ray_predict

REPO = Path(__file__).resolve().parents[1]
ENGINES = ("local", "ray-1", "ray-2")
TICK = os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of this process and all its descendants while the block runs: /proc is
    polled every ``every`` seconds and each process counts with its last reading (a process
    that lives less than that may be missed: Ray's start-up helpers at most)."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.seen: dict[tuple[int, int], float] = {}  # (pid, start tick) -> CPU seconds
        self._stop = threading.Event()

    def _poll(self) -> None:
        stats = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    text = Path(entry.path, "stat").read_text()
                except OSError:
                    continue
                fields = text[text.rindex(")") + 2 :].split()
                # after the name: state ppid ... utime(12) stime(13) ... starttime(20)
                stats[int(entry.name)] = (
                    int(fields[1]),
                    int(fields[19]),
                    int(fields[11]) + int(fields[12]),
                )
        family, grew = {os.getpid()}, True
        while grew:
            kin = {pid for pid, (ppid, _, _) in stats.items() if ppid in family} - family
            family |= kin
            grew = bool(kin)
        for pid in family & stats.keys():
            _, started, ticks = stats[pid]
            self.seen[pid, started] = ticks / TICK

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._poll()

    def __enter__(self) -> CpuMeter:
        self._poll()
        self.baseline = dict(self.seen)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()

    @property
    def seconds(self) -> float:
        return sum(v - self.baseline.get(k, 0.0) for k, v in self.seen.items())


def run_job(engine: str, paths: list[Path], out: Path, batch_size: int) -> dict[str, float]:
    """One job's wall, start-up and steady figures (see the module docstring)."""
    start = time.time()
    with CpuMeter() as meter:
        if engine == "local":
            results = run_predict(Predictor.from_pretrained(), paths, PredictJob(out, batch_size))
        else:
            workers = int(engine.split("-")[1])
            source = PredictorSource()
            results = run_ray_predict(
                source.load, paths, PredictJob(out, batch_size), num_workers=workers
            )
    wall = time.time() - start
    if sum(r.status == "written" for r in results) != len(paths):
        raise RuntimeError(f"{engine}: not every image was written")
    done = sorted(p.stat().st_mtime for p in out.glob("*_fixations.json"))  # written last
    return {
        "wall_s": wall,
        "images_per_s": len(paths) / wall,
        "startup_s": done[0] - start,
        "steady_images_per_s": (len(done) - 1) / (done[-1] - done[0]),
        "cpu_s": meter.seconds,
    }


def main() -> None:
    os.environ.setdefault("RAY_worker_niceness", "0")  # read by the raylet each job starts
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16, help="N: jobs of N and 2.5 N images")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "osie")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    sizes = (args.images, round(2.5 * args.images))
    stimuli = sorted((args.data / "stimuli").iterdir())[: sizes[1]]
    runs: dict[str, dict[int, list[dict[str, float]]]] = {
        e: {n: [] for n in sizes} for e in ENGINES
    }
    scratch = Path(tempfile.mkdtemp(prefix="ray-predict-bench-"))
    try:
        for repeat in range(args.repeats):
            for n in sizes:
                for engine in ENGINES:
                    out = scratch / f"{engine}-{n}-{repeat}"
                    figures = run_job(engine, stimuli[:n], out, args.batch_size)
                    shutil.rmtree(out)
                    runs[engine][n].append(figures)
                    print(
                        f"repeat {repeat}  {engine:6s}  {n:3d} images  "
                        + "  ".join(f"{k} {v:.2f}" for k, v in figures.items()),
                        flush=True,
                    )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    small, large = sizes
    summary = {}
    for engine, by_size in runs.items():
        row = {key: statistics.median(r[key] for r in by_size[large]) for key in by_size[large][0]}
        slopes = [
            (b["cpu_s"] - a["cpu_s"]) / (large - small)
            for a, b in zip(by_size[small], by_size[large], strict=True)
        ]
        row["cpu_s_per_image"] = statistics.median(slopes)
        row["fixed_cpu_s"] = statistics.median(
            r["cpu_s"] - small * row["cpu_s_per_image"] for r in by_size[small]
        )
        summary[engine] = row
    for engine in ENGINES[1:]:
        summary[engine]["overhead_cpu_s_per_image"] = (
            summary[engine]["cpu_s_per_image"] - summary["local"]["cpu_s_per_image"]
        )

    print(
        f"\n| engine | images/s end to end ({large} images) | start-up s | steady images/s "
        "| CPU s per image | fixed CPU s | overhead CPU s per image |"
    )
    print("|---|---|---|---|---|---|---|")
    for engine, row in summary.items():
        overhead = row.get("overhead_cpu_s_per_image")
        print(
            f"| {engine} | {row['images_per_s']:.2f} | {row['startup_s']:.1f} | "
            f"{row['steady_images_per_s']:.2f} | {row['cpu_s_per_image']:.3f} | "
            f"{row['fixed_cpu_s']:.1f} | {'' if overhead is None else f'{overhead:+.3f}'} |"
        )
    if args.json is not None:
        import ray

        record = {
            "command": "python benchmarks/ray_predict.py "
            + f"--images {args.images} --repeats {args.repeats} --batch-size {args.batch_size}",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs)",
            "ray": ray.__version__,
            "torch": torch.__version__,
            "runs": {e: {str(n): r for n, r in by.items()} for e, by in runs.items()},
            "summary": summary,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
