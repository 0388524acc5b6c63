"""The README's picture of ``salience serve``: the page with a result, drawn regions and an A/B
comparison, taken by Debian's chromium through Playwright.

    python docs/make_serve_screenshot.py          # writes docs/serve.png

Starts ``salience serve`` on a free port of 127.0.0.1 (the shipped default model), uploads the
example photo and its variant, draws three regions, runs the comparison, and saves the page
as a 192-colour PNG (small enough for the repository).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
REGIONS = {"face": (150, 60, 150, 130), "patch": (130, 345, 80, 80), "shuttle": (350, 0, 130, 280)}


def start_server() -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "salience", "serve", "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("salience serve: http://127.0.0.1:"):
            return process, line.split()[2]
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("salience serve did not print its address")


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium)")
    process, url = start_server()
    try:
        with sync_playwright() as playwright:
            args = ["--no-sandbox"] if os.geteuid() == 0 else []
            browser = playwright.chromium.launch(executable_path=chromium, args=args)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            files = [str(DOCS / "example.jpg"), str(DOCS / "example-variant.jpg")]
            page.set_input_files("#file-input", files)
            page.wait_for_selector("#view[data-ready=true]", timeout=120_000)
            box = page.locator("#regions-layer").bounding_box()
            scale = box["width"] / 512
            for i, (name, (x, y, w, h)) in enumerate(REGIONS.items()):
                page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
                page.mouse.down()
                page.mouse.move(box["x"] + (x + w) * scale, box["y"] + (y + h) * scale, steps=5)
                page.mouse.up()
                page.locator("#regions-table tbody tr").nth(i).locator("input").fill(name)
            page.wait_for_function(
                "() => document.querySelectorAll('#regions-table tbody tr:not(.updating)').length"
                f" === {len(REGIONS)}",
                timeout=120_000,
            )
            page.wait_for_selector("#compare-run:not([disabled])", timeout=120_000)
            page.click("#compare-run")
            page.wait_for_selector("#compare-result:not([hidden])", timeout=120_000)
            page.wait_for_timeout(300)
            shot = page.screenshot(full_page=True)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=60)
    picture = Image.open(io.BytesIO(shot)).convert("RGB")
    small = picture.quantize(colors=192, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(DOCS / "serve.png", optimize=True)
    print(f"wrote {DOCS / 'serve.png'} ({(DOCS / 'serve.png').stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
