"""The page in a real browser: Debian's chromium driven by Playwright against the service on
127.0.0.1, checked against the library's own numbers and pictures."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from salience.analysis.aoi import analyze
from salience.analysis.regions import parse_regions_json
from salience.analysis.render import overlay
from salience.io.images import load_image
from tests.service.conftest import EXAMPLE, VARIANT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FACE = (150, 60, 150, 130)  # x, y, w, h in the example's pixels: the astronaut's face


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium for the page's tests (.ci/run installs it)")
        pytest.skip("chromium not found: apt-get install chromium to run the page's tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # as root Chromium refuses to start without --no-sandbox
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.goto(live_server)
    opened.wait_for_selector("body[data-ready=true]")
    yield opened
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def canvas(page) -> np.ndarray:
    """What the page's picture shows now, at the image's own size."""
    url = page.evaluate("() => document.querySelector('#view').toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def wait_drawn(page, view: str = "overlay") -> None:
    page.wait_for_selector(f"#view[data-ready=true][data-view={view}]", timeout=60_000)


def upload(page, *paths: Path) -> None:
    page.set_input_files("#file-input", [str(p) for p in paths])
    wait_drawn(page)


def drag(page, rect: tuple[float, float, float, float], size: int = 512) -> None:
    """Draw a rectangle given in image pixels on the picture."""
    box = page.locator("#regions-layer").bounding_box()
    scale = box["width"] / size
    x, y, w, h = rect
    page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
    page.mouse.down()
    page.mouse.move(box["x"] + (x + w) * scale, box["y"] + (y + h) * scale, steps=6)
    page.mouse.up()


def download(page, kind: str) -> bytes:
    with page.expect_download() as info:
        page.click(f"[data-download={kind}]")
    return Path(info.value.path()).read_bytes()


def test_upload_shows_the_overlay_and_the_slider_and_colours_redraw_it(page, predictor) -> None:
    upload(page, EXAMPLE)
    photo = load_image(EXAMPLE)
    density = predictor.predict(photo).density
    shown = canvas(page)
    assert shown.shape == (512, 512, 3)
    # the page draws the overlay itself: it must be the library's (JPEG decoders differ a little)
    expected = overlay(photo, density, "jet", 0.5).astype(np.int16)
    assert np.abs(shown - expected).mean() < 2.0

    page.fill("#opacity", "0")
    assert page.inner_text("#opacity-value") == "0.00"
    clear = canvas(page)
    page.fill("#opacity", "1")
    strong = canvas(page)
    page.click("#views button[data-view=image]")
    wait_drawn(page, "image")
    picture = canvas(page)
    np.testing.assert_array_equal(clear, picture)  # no heat at opacity 0
    assert np.abs(strong - picture).mean() > np.abs(shown - picture).mean() > 1.0

    page.click("#views button[data-view=overlay]")
    wait_drawn(page)
    page.select_option("#colormap", "inferno")
    assert np.abs(canvas(page) - strong).mean() > 1.0  # another colormap, other colours
    page.click("#views button[data-view=heatmap]")
    wait_drawn(page, "heatmap")
    page.click("#views button[data-view=gaze]")
    wait_drawn(page, "gaze")
    assert np.abs(canvas(page) - picture).max() > 100  # numbered circles drawn over the photo

    page.click("#views button[data-view=overlay]")
    page.check("#windows")
    page.click("#window-choice button[data-window='0']", timeout=60_000)
    wait_drawn(page)
    first_second = canvas(page)
    page.click("#window-choice button[data-window='2']")
    wait_drawn(page)
    assert np.abs(canvas(page) - first_second).mean() > 0.5  # windows differ
    overlay_png = Image.open(io.BytesIO(download(page, "overlay")))
    assert overlay_png.size == (512, 512)
    fixations = json.loads(download(page, "fixations"))
    assert fixations["fixations"][0]["order"] == 1 and fixations["width"] == 512


def test_drawn_region_shows_its_share_as_the_library_computes_it(page, predictor) -> None:
    upload(page, EXAMPLE)
    drag(page, FACE)
    row = page.locator("#regions-table tbody tr").first
    page.wait_for_selector("#regions-table tbody tr:not(.updating)", timeout=60_000)
    share_text = row.locator(".share").inner_text()
    # what the page asked about, from its own download, against the library
    report = json.loads(download(page, "aoi-json"))
    regions = parse_regions_json(json.dumps(report["regions_input"]))
    photo = load_image(EXAMPLE)
    prediction = predictor.predict(photo)
    expected = analyze(
        prediction.density, regions, predictor.sampler, prediction.pixels_per_degree, 3, 1000, 0
    )
    (face,) = expected.rows
    assert report["regions"][0]["share"] == pytest.approx(face.share, rel=1e-9)
    assert share_text == f"{100 * face.share:.1f} %"
    assert row.locator(".lift").inner_text() == f"{face.lift:.2f}"
    low, high = (100 * face.p_first_k_low, 100 * face.p_first_k_high)
    assert row.locator(".interval").inner_text() == f"{low:.1f} % – {high:.1f} %"
    assert face.lift > 3  # drawn where it was meant to be: on the face
    x0, y0 = regions[0].points[0]
    assert abs(x0 * 512 - FACE[0]) <= 2 and abs(y0 * 512 - FACE[1]) <= 2
    assert f"{100 * face.share:.0f} %" in page.text_content("#regions-layer")
    csv_text = download(page, "aoi-csv").decode()
    assert csv_text.startswith("region,area_fraction,share,lift,p_first_k")

    # renaming asks again; a second region adds a row; removing takes it away
    row.locator("input").fill("face")
    page.wait_for_function(
        "() => document.querySelector('#regions-layer').textContent.includes('face')"
    )
    drag(page, (350, 0, 130, 280))
    page.wait_for_function(
        "() => document.querySelectorAll('#regions-table tbody tr:not(.updating)').length == 2",
        timeout=60_000,
    )
    page.locator("#regions-table tbody tr").nth(1).locator("button.remove").click()
    assert page.locator("#regions-table tbody tr").count() == 1


def test_comparison_shows_the_difference_and_the_api_deltas(page, live_server) -> None:
    page.set_input_files("#file-input", [str(EXAMPLE), str(VARIANT)])
    page.wait_for_selector("#compare-run:not([disabled])", timeout=60_000)
    assert page.input_value("#compare-a") != page.input_value("#compare-b")
    page.click("#compare-run")
    page.wait_for_selector("#compare-result:not([hidden])", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#compare-img-diff').naturalWidth === 512")
    with httpx.Client(base_url=live_server, timeout=60) as client:
        files = {"a": ("a.jpg", EXAMPLE.read_bytes()), "b": ("b.jpg", VARIANT.read_bytes())}
        api = client.post("/v1/compare", files=files).json()
    rows = page.locator("#compare-table tbody tr")
    assert rows.count() == len(api["regions"]) == 9
    for i, delta in enumerate(api["regions"]):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert cells[0] == delta["region"]
        value = 100 * delta["share_delta"]
        assert cells[3] == f"{'+' if value >= 0 else '−'}{abs(value):.1f}"
    assert "A: example.jpg" in page.inner_text("#compare-result")
    assert download(page, "compare-csv").decode().startswith("region,")


def test_a_corrupt_file_shows_a_readable_error_and_the_page_goes_on(page) -> None:
    broken = {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff\xe0 no"}
    page.set_input_files("#file-input", files=[broken])
    page.wait_for_selector("#error:not([hidden])", timeout=60_000)
    message = page.inner_text("#error")
    assert "broken.jpg" in message and "not a readable image" in message
    assert "Could not predict" in page.inner_text("#placeholder")
    assert page.inner_text("#images .status.failed") == "failed"
    too_big = {"name": "big.png", "mimeType": "image/png", "buffer": b"\x00" * 6_000_000}
    page.set_input_files("#file-input", files=[too_big])
    page.wait_for_function("() => document.querySelector('#error').textContent.includes('5 MB')")
    upload(page, EXAMPLE)  # and a good image still works
    assert page.locator("#canvas-wrap").is_visible()


def test_the_image_kind_selector_predicts_again_for_web_pages(page) -> None:
    from salience.predictor import Predictor

    assert page.is_visible("#condition")
    kinds = page.eval_on_selector_all("#condition option", "options => options.map(o => o.value)")
    assert kinds == ["eye", "ui"]
    upload(page, EXAMPLE)
    photo = load_image(EXAMPLE)
    as_photo = canvas(page)
    with page.expect_response("**/v1/predict") as answer:
        page.select_option("#condition", "ui")
    assert answer.value.ok
    page.wait_for_function("() => document.querySelector('#view').dataset.ready === 'true'")
    wait_drawn(page)
    page.wait_for_timeout(200)
    density = Predictor.from_pretrained(condition="ui").predict(photo).density
    expected = overlay(photo, density, "jet", 0.5).astype(np.int16)
    shown = canvas(page)
    assert np.abs(shown - expected).mean() < 2.0  # the page-trained readouts' map
    assert np.abs(shown - as_photo).mean() > 2.0  # not the photo one
