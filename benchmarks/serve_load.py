"""Load on ``salience serve``: requests per second and latency at 1, 10 and 50 concurrent clients,
and the server's memory.

Starts ``salience serve`` (the shipped default model) on 127.0.0.1 with a free port, then for
each level of concurrency sends a fixed number of ``POST /v1/predict`` requests from that many
async clients (httpx) and reports throughput, p50 and p95 latency, non-200 answers, and the
server's resident memory after the level (VmRSS) and at its peak (VmHWM, from /proc). Every
request carries a different image (the example photo with a few pixels changed), so none is
answered from the service's cache of model outputs. Bounded: a fixed count of requests per
level and a time limit on each; the server is stopped at the end.

    python benchmarks/serve_load.py --out benchmarks/RESULTS_serve_load.md
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "example.jpg"


def variants(n: int, seed: int = 0) -> list[bytes]:
    """``n`` JPEGs of the example photo, each with 16 pixels of its own: distinct bytes."""
    rng = np.random.default_rng(seed)
    with Image.open(EXAMPLE) as im:
        base = np.asarray(im.convert("RGB"))
    out = []
    for _ in range(n):
        arr = base.copy()
        rows = rng.integers(0, arr.shape[0], 16)
        cols = rng.integers(0, arr.shape[1], 16)
        arr[rows, cols] = rng.integers(0, 256, (16, 3))
        buffer = io.BytesIO()
        Image.fromarray(arr).save(buffer, format="JPEG", quality=92)
        out.append(buffer.getvalue())
    return out


def start_server(workers: int, cache_mb: float) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "salience", "serve", "--port", "0"]
    command += ["--workers", str(workers), "--cache-mb", str(cache_mb)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("salience serve: http://127.0.0.1:"):
            return process, line.split()[2]
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("salience serve did not print its address")


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in kB, from /proc."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


async def level(url: str, clients: int, images: list[bytes], timeout: float) -> dict:
    """``len(images)`` requests from ``clients`` concurrent clients; latency of each."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for image in images:
        queue.put_nowait(image)
    latencies: list[float] = []
    statuses: list[int] = []

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            image = queue.get_nowait()
            start = time.perf_counter()
            response = await client.post("/v1/predict", files={"image": ("x.jpg", image)})
            latencies.append(time.perf_counter() - start)
            statuses.append(response.status_code)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(client_loop(client) for _ in range(clients))), timeout
        )
        elapsed = time.perf_counter() - start
    lat = np.array(latencies)
    return {
        "clients": clients,
        "requests": len(lat),
        "non_200": sum(s != 200 for s in statuses),
        "seconds": elapsed,
        "requests_per_s": len(lat) / elapsed,
        "p50_s": float(np.percentile(lat, 50)),
        "p95_s": float(np.percentile(lat, 95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,10,50", help="Concurrent clients per level.")
    parser.add_argument("--requests", default="30,100,150", help="Requests per level.")
    parser.add_argument("--workers", type=int, default=1, help="The server's --workers.")
    parser.add_argument(
        "--cache-mb", type=float, default=256, help="The server's --cache-mb (default its own)."
    )
    parser.add_argument("--timeout", type=float, default=600, help="Seconds per level at most.")
    parser.add_argument("--out", type=Path, help="Write the table (Markdown) and JSON beside it.")
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    counts = [int(v) for v in args.requests.split(",")]
    images = variants(sum(counts) + 1)
    process, url = start_server(args.workers, args.cache_mb)
    rows = []
    try:
        with httpx.Client(base_url=url, timeout=120) as warm:  # first request pays for warm-up
            assert warm.post("/v1/predict", files={"image": ("w.jpg", images[-1])}).is_success
        idle = memory_kb(process.pid)
        used = 0
        for clients, count in zip(levels, counts, strict=True):
            batch = images[used : used + count]
            used += count
            row = asyncio.run(level(url, clients, batch, args.timeout))
            row.update({f"{k}_after_kb": v for k, v in memory_kb(process.pid).items()})
            rows.append(row)
            print(json.dumps(row), flush=True)
        peak = memory_kb(process.pid)["VmHWM"]
    finally:
        process.terminate()
        process.wait(timeout=60)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    lines = [
        f"`{shlex.join(['python', 'benchmarks/serve_load.py', *sys.argv[1:]])}` "
        f"({args.workers} worker{'s' if args.workers > 1 else ''}, cache {args.cache_mb:g} MB, "
        "default model, POST /v1/predict of "
        f"the 512x512 example photo, each request a different image; {machine})",
        "",
        "| clients | requests | non-200 | requests/s | p50 latency | p95 latency "
        "| server RSS after |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['clients']} | {r['requests']} | {r['non_200']} | {r['requests_per_s']:.2f} | "
            f"{1000 * r['p50_s']:.0f} ms | {1000 * r['p95_s']:.0f} ms | "
            f"{r['VmRSS_after_kb'] / 1024:.0f} MiB |"
        )
    lines += [
        "",
        f"Server RSS after loading and one request: {idle['VmRSS'] / 1024:.0f} MiB; "
        f"peak over the run (VmHWM): {peak / 1024:.0f} MiB.",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out is not None:
        args.out.write_text(table)
        args.out.with_suffix(".json").write_text(
            json.dumps(
                {"workers": args.workers, "idle": idle, "peak_kb": peak, "levels": rows}, indent=1
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
