"""The JSON API through the ASGI test client: every endpoint against the library it wraps,
every kind of bad request, the upload limit, and the worker pool's bounds."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from salience.analysis.aoi import analyze, compare
from salience.analysis.regions import Region, grid_regions
from salience.analysis.render import COMMON_COLORMAPS, colormap_table, display_map
from salience.io.images import decode_image
from salience.predictor import ModelOutput
from salience.service import ServiceSettings, create_app
from salience.service.engine import InferencePool, OutputCache
from salience.service.errors import ApiError, BodyLimit, BodyTooLarge
from tests.service.conftest import VARIANT, small_example

IMAGE = small_example(128)
IMAGE_B = small_example(128, VARIANT)
FACE = {"name": "face", "rect": [0.29, 0.12, 0.3, 0.25]}


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, ServiceSettings(max_upload_mb=1))) as test_client:
        yield test_client


def decode_png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def predict(client, data=None, image=IMAGE, **kwargs):
    return client.post("/v1/predict", files={"image": ("photo.png", image)}, data=data, **kwargs)


# ---------------------------------------------------------------------- endpoints


def test_healthz_reports_model_and_limits(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["model"] == "default" and body["windows"] is True
    assert body["max_upload_mb"] == 1 and body["workers"] == 1 and body["queue"] == 64


def test_page_and_its_files_are_served_and_self_contained(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/static/app.js" in page.text and "/static/app.css" in page.text
    for name in ("app.js", "app.css"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and len(asset.text) > 1000
        # nothing is fetched from elsewhere: the page works offline
        assert "http://" not in asset.text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in asset.text
    assert "https://" not in page.text and "http://" not in page.text.replace(
        "http://www.w3.org/2000/svg", ""
    )
    schema = client.get("/openapi.json").json()
    assert {"/healthz", "/v1/predict", "/v1/aoi", "/v1/compare"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_predict_matches_the_library(client, predictor) -> None:
    response = predict(client, {"density": "true", "colormap": "inferno", "opacity": "0.7"})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = predictor.predict(decode_image(IMAGE))
    assert (body["width"], body["height"]) == (128, 128) and body["image"] == "photo.png"
    assert [f["order"] for f in body["fixations"]] == list(range(1, predictor.n_fixations + 1))
    np.testing.assert_allclose(
        [[f["x"], f["y"]] for f in body["fixations"]], expected.fixations, atol=1e-9
    )
    np.testing.assert_allclose(
        [f["probability"] for f in body["fixations"]], expected.fixation_probs, rtol=1e-9
    )
    density = np.load(io.BytesIO(base64.b64decode(body["density_npy"])))
    assert density.dtype == np.float32 and density.shape == (128, 128)
    np.testing.assert_allclose(density, expected.density, rtol=1e-5, atol=1e-12)
    assert body["settings"]["colormap"] == "inferno" and body["settings"]["opacity"] == 0.7
    for key in ("heatmap_png", "overlay_png", "gaze_plot_png"):
        assert decode_png(body[key]).shape == (128, 128, 3)
    shown = decode_png(body["display_png"])
    np.testing.assert_array_equal(shown, np.round(display_map(expected.density) * 255))
    assert body["scanpaths"] == [] and body["windows"] == []


def test_predict_scanpaths_and_windows(client, predictor) -> None:
    body = predict(client, {"scanpaths": "2", "seed": "5", "windows": "true"}).json()
    assert len(body["scanpaths"]) == 2 and body["scanpath_seed"] == 5
    assert all(len(p["fixations"]) == predictor.scanpath_length for p in body["scanpaths"])
    assert [w["label"] for w in body["windows"]] == ["0-1s", "1-2s", "2-3s"]
    assert [(w["start"], w["end"]) for w in body["windows"]] == [(0, 1), (1, 2), (2, 3)]
    expected = predictor.predict(decode_image(IMAGE), windows=True)
    for window, mine in zip(expected.windows, body["windows"], strict=True):
        np.testing.assert_array_equal(
            decode_png(mine["display_png"]), np.round(display_map(window.density) * 255)
        )
    assert body["density_npy"] is None  # only on request


def test_aoi_matches_the_library_in_both_region_forms(client, predictor) -> None:
    regions = {"units": "fraction", "regions": [FACE]}
    by_json = client.post(
        "/v1/aoi",
        files={"image": ("photo.png", IMAGE)},
        data={"regions": json.dumps(regions), "k": "2", "samples": "500", "seed": "3"},
    )
    assert by_json.status_code == 200, by_json.text
    body = by_json.json()
    prediction = predictor.predict(decode_image(IMAGE))
    face = Region.rect("face", *FACE["rect"], normalized=True)
    report = analyze(
        prediction.density, [face], predictor.sampler, prediction.pixels_per_degree, 2, 500, 3
    )
    (row,) = body["regions"]
    expected = report.rows[0]
    assert row["region"] == "face"
    for key in ("share", "lift", "area_fraction", "p_first_k", "p_first_k_low"):
        assert row[key] == pytest.approx(getattr(expected, key), rel=1e-9)
    assert row["p_first_k_low"] <= row["p_first_k"] <= row["p_first_k_high"]
    assert (body["k"], body["n"], body["seed"]) == (2, 500, 3)
    assert body["csv"] == report.to_csv()
    by_text = client.post(
        "/v1/aoi",
        files={"image": ("photo.png", IMAGE)},
        data={"region": "face:0.29,0.12,0.3,0.25", "k": "2", "samples": "500", "seed": "3"},
    ).json()
    assert by_text["regions"] == body["regions"]


def test_compare_gives_deltas_b_minus_a_and_the_difference_map(client, predictor) -> None:
    files = {"a": ("a.png", IMAGE), "b": ("b.png", IMAGE_B)}
    response = client.post("/v1/compare", files=files, data={"samples": "400"})
    assert response.status_code == 200, response.text
    body = response.json()
    names = [r.name for r in grid_regions()]
    assert [d["region"] for d in body["regions"]] == names  # no regions: the 3 x 3 grid
    pred_a = predictor.predict(decode_image(IMAGE))
    pred_b = predictor.predict(decode_image(IMAGE_B))
    report = compare(pred_a.density, pred_b.density, grid_regions(), predictor.sampler, n=400)
    for mine, theirs in zip(body["regions"], report.deltas(), strict=True):
        assert mine["share_delta"] == pytest.approx(theirs["share_delta"], abs=1e-12)
        assert mine["share_delta"] == pytest.approx(mine["share_b"] - mine["share_a"])
    assert body["difference_size"] == [128, 128]
    assert decode_png(body["difference_png"]).shape == (128, 128, 3)
    assert decode_png(body["a_overlay_png"]).shape == (128, 128, 3)
    assert body["a"]["image"] == "a.png" and body["b"]["image"] == "b.png"
    swapped = client.post(
        "/v1/compare",
        files={"a": ("b.png", IMAGE_B), "b": ("a.png", IMAGE)},
        data={"samples": "400", "regions": json.dumps({"units": "fraction", "regions": [FACE]})},
    ).json()
    straight = client.post(
        "/v1/compare",
        files=files,
        data={"samples": "400", "regions": json.dumps({"units": "fraction", "regions": [FACE]})},
    ).json()
    assert swapped["regions"][0]["share_delta"] == -straight["regions"][0]["share_delta"]


def test_colormap_tables_are_the_library_colormaps(client) -> None:
    body = client.get("/v1/colormaps").json()
    assert body["default"] == "jet" and set(body["tables"]) == set(COMMON_COLORMAPS)
    np.testing.assert_array_equal(np.array(body["tables"]["inferno"]), colormap_table("inferno"))


# ---------------------------------------------------------------------- bad requests


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` pixels but holds none: a decompression bomb's
    announcement, a few dozen bytes long."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


REGIONS_OK = json.dumps([{"name": "a", "rect": [0, 0, 10, 10]}])
BAD_REQUESTS = {
    # kind: (path, files, data, status, error code)
    "image under another name": (
        "/v1/predict",
        {"picture": ("x.png", IMAGE)},
        None,
        400,
        "unknown_option",
    ),
    "no image": ("/v1/predict", {"colormap": (None, "jet")}, None, 422, "invalid_request"),
    "a urlencoded form": ("/v1/predict", None, {"colormap": "jet"}, 415, "not_multipart"),
    "empty file": ("/v1/predict", {"image": ("e.png", b"")}, None, 415, "not_an_image"),
    "text named .png": (
        "/v1/predict",
        {"image": ("notes.png", b"just some text, not pixels", "image/png")},
        None,
        415,
        "not_an_image",
    ),
    "truncated image": (
        "/v1/predict",
        {"image": ("cut.png", IMAGE[: len(IMAGE) // 2])},
        None,
        422,
        "unreadable_image",
    ),
    "too many pixels": (
        "/v1/predict",
        {"image": ("huge.png", _png_header(20_001, 20_001))},
        None,
        422,
        "too_many_pixels",
    ),
    "unknown option": (
        "/v1/predict",
        {"image": ("p.png", IMAGE)},
        {"colour": "red"},
        400,
        "unknown_option",
    ),
    "repeated image": (
        "/v1/predict",
        [("image", ("p.png", IMAGE)), ("image", ("q.png", IMAGE))],
        None,
        400,
        "repeated_field",
    ),
    "unknown colormap": (
        "/v1/predict",
        {"image": ("p.png", IMAGE)},
        {"colormap": "rainbowish"},
        422,
        "unknown_colormap",
    ),
    "opacity above 1": (
        "/v1/predict",
        {"image": ("p.png", IMAGE)},
        {"opacity": "1.5"},
        422,
        "invalid_request",
    ),
    "negative scanpaths": (
        "/v1/predict",
        {"image": ("p.png", IMAGE)},
        {"scanpaths": "-1"},
        422,
        "invalid_request",
    ),
    "windows not a yes/no": (
        "/v1/predict",
        {"image": ("p.png", IMAGE)},
        {"windows": "perhaps"},
        422,
        "invalid_request",
    ),
    "aoi without regions": ("/v1/aoi", {"image": ("p.png", IMAGE)}, None, 422, "bad_regions"),
    "regions not JSON": (
        "/v1/aoi",
        {"image": ("p.png", IMAGE)},
        {"regions": "{name: logo"},
        422,
        "bad_regions",
    ),
    "rect of three numbers": (
        "/v1/aoi",
        {"image": ("p.png", IMAGE)},
        {"regions": json.dumps([{"name": "a", "rect": [0, 0, 10]}])},
        422,
        "bad_regions",
    ),
    "region outside the image": (
        "/v1/aoi",
        {"image": ("p.png", IMAGE)},
        {"regions": json.dumps([{"name": "far", "rect": [500, 500, 10, 10]}])},
        422,
        "bad_regions",
    ),
    "duplicate region names": (
        "/v1/aoi",
        {"image": ("p.png", IMAGE)},
        {"region": ["a:1,1,5,5", "a:2,2,5,5"]},
        422,
        "bad_regions",
    ),
    "malformed region text": (
        "/v1/aoi",
        {"image": ("p.png", IMAGE)},
        {"region": "logo=1,2,3,4"},
        422,
        "bad_regions",
    ),
    "regions nested too deep": (
        "/v1/aoi",
        {"image": ("p.png", IMAGE)},
        {"regions": "[" * 100_000},
        422,
        "bad_regions",
    ),
    "k of zero": (
        "/v1/aoi",
        {"image": ("p.png", IMAGE)},
        {"regions": REGIONS_OK, "k": "0"},
        422,
        "invalid_request",
    ),
    "compare without b": ("/v1/compare", {"a": ("a.png", IMAGE)}, None, 422, "invalid_request"),
    "pixel regions on two sizes": (
        "/v1/compare",
        {"a": ("a.png", IMAGE), "b": ("b.png", small_example(96))},
        {"regions": REGIONS_OK},
        422,
        "bad_regions",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_that_says_what_was_wrong(client, kind: str) -> None:
    path, files, data, status, code = BAD_REQUESTS[kind]
    response = client.post(path, files=files, data=data)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and len(body["message"]) > 10
    if code in ("not_an_image", "unreadable_image", "too_many_pixels"):
        assert files["image"][0] in body["message"]  # names the upload


def test_other_malformed_requests(client) -> None:
    query = client.post("/v1/predict?colormap=jet", files={"image": ("p.png", IMAGE)})
    assert (query.status_code, query.json()["error"]) == (400, "unknown_option")
    json_body = client.post("/v1/predict", json={"image": "p.png"})
    assert (json_body.status_code, json_body.json()["error"]) == (415, "not_multipart")
    broken = client.post(
        "/v1/predict",
        content=b"--zz\r\nnot a part",
        headers={"content-type": "multipart/form-data; boundary=zz"},
    )
    assert broken.status_code == 400 and broken.json()["error"] == "bad_request"
    missing = client.get("/v1/nothing-here")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong_method = client.get("/v1/predict")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")
    assert client.get("/healthz").status_code == 200  # and the service still answers


def test_windows_refused_for_a_model_without_them(tiny_weights) -> None:
    from salience.predictor import Predictor

    tiny = Predictor.from_checkpoint(tiny_weights)
    with TestClient(create_app(tiny, ServiceSettings(model_name="tiny"))) as tiny_client:
        assert tiny_client.get("/healthz").json()["windows"] is False
        response = predict(tiny_client, {"windows": "true"})
        assert response.status_code == 422 and response.json()["error"] == "windows_unavailable"
        assert predict(tiny_client).status_code == 200


def test_a_request_picks_any_condition_the_model_was_trained_on(tiny_weights, tmp_path) -> None:
    import shutil

    import torch

    from salience.data.conditions import Condition, condition_path
    from salience.models.dense.conditions import write_condition_priors
    from salience.predictor import Predictor

    weights = tmp_path / "tiny.safetensors"
    shutil.copy(tiny_weights, weights)
    eye = Predictor.from_checkpoint(weights)
    shape = (len(eye.model.model.readouts), *eye.model.model.config.prior_grid)
    priors = torch.linspace(-3, 3, int(np.prod(shape))).reshape(shape)
    ui_file = condition_path(weights, Condition.USER_INTERFACE)
    write_condition_priors(ui_file, eye.model.model, priors, Condition.USER_INTERFACE, {})
    eye = Predictor.from_checkpoint(weights)
    ui = Predictor.from_checkpoint(weights, condition="ui")
    app = create_app(eye, ServiceSettings(model_name="tiny"), {"ui": ui})
    with TestClient(app) as tiny_client:
        assert tiny_client.get("/healthz").json()["conditions"] == ["eye", "ui"]
        as_photo = predict(tiny_client).json()
        as_page = predict(tiny_client, {"condition": "ui"}).json()
        assert (
            predict(tiny_client, {"condition": "eye"}).json()["fixations"] == as_photo["fixations"]
        )
        assert as_page["fixations"] != as_photo["fixations"]  # not the cached photo outputs
        assert as_page["settings"]["condition"] == "ui"
        refused = predict(tiny_client, {"condition": "mouse"})
        assert refused.status_code == 422 and refused.json()["error"] == "unknown_condition"
        assert "eye, ui" in refused.json()["message"]
        windows = predict(tiny_client, {"condition": "ui", "windows": "true"})
        assert windows.status_code == 422 and windows.json()["error"] == "windows_unavailable"
        files = {"image": ("a.png", small_example(), "image/png")}
        shares = {}
        for kind in ("eye", "ui"):
            data = {"region": "top:0,0,1,0.5", "condition": kind}
            answer = tiny_client.post("/v1/aoi", files=files, data=data)
            assert answer.status_code == 200, answer.text
            shares[kind] = answer.json()["regions"][0]["share"]
        assert shares["eye"] != shares["ui"]


# ---------------------------------------------------------------------- upload limit


def test_declared_body_over_the_limit_is_413(client) -> None:
    big = b"\x00" * 1_100_000  # the client's limit is 1 MB
    response = predict(client, image=big)
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert "1 MB" in response.json()["message"]


def test_streamed_body_over_the_limit_is_413(client) -> None:
    boundary = "limit"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def chunks():  # no Content-Length: sent chunked, 2 MB in all
        yield head
        for _ in range(32):
            yield b"\x00" * 65536

    response = client.post(
        "/v1/predict",
        content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413 and response.json()["error"] == "too_large"


def _run_limit(headers: list, chunks: list[bytes], limit: int) -> tuple[list[dict], int]:
    """Drive :class:`BodyLimit` around an app that reads the whole body; what was sent back
    and how many bytes the middleware took from the client."""
    taken = 0
    pending = list(chunks)

    async def receive():
        nonlocal taken
        body = pending.pop(0)
        taken += len(body)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def reader(scope, receive, send):
        while (await receive())["more_body"]:
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "headers": headers}
    try:
        asyncio.run(BodyLimit(reader, limit)(scope, receive, send))
    except BodyTooLarge as exc:  # the streamed case raises, for FastAPI's handler to answer
        sent.append({"type": "raised", "status": exc.status_code})
    return sent, taken


def test_body_limit_reads_no_more_than_it_must() -> None:
    chunks = [b"x" * 1000] * 50  # 50 kB on its way
    # declared far too large: answered before a single byte is read
    sent, taken = _run_limit([(b"content-length", b"50000")], chunks, 10_000)
    assert taken == 0 and sent[0]["status"] == 413
    # declared a little too large: read to its end and dropped, so the client hears the 413
    sent, taken = _run_limit([(b"content-length", b"25000")], chunks[:25], 10_000)
    assert taken == 25_000 and sent[0]["status"] == 413
    # not declared: counted, and past the limit dropped up to three times the limit
    sent, taken = _run_limit([], chunks, 10_000)
    assert sent == [{"type": "raised", "status": 413}] and taken == 31_000
    sent, taken = _run_limit([], chunks[:12], 10_000)
    assert sent == [{"type": "raised", "status": 413}] and taken == 12_000
    # within the limit: passed through untouched
    sent, taken = _run_limit([(b"content-length", b"50000")], chunks, 60_000)
    assert sent[0]["status"] == 200 and taken == 50_000


# ---------------------------------------------------------------------- bounded work


def test_pool_runs_at_most_workers_at_once_and_refuses_past_the_queue() -> None:
    release = threading.Event()
    running = 0
    most = 0
    lock = threading.Lock()

    def work(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(10)
        time.sleep(0.01)
        with lock:
            running -= 1
        return i

    async def main():
        pool = InferencePool(workers=2, queue=3)
        try:
            tasks = [asyncio.create_task(pool.run(work, i)) for i in range(5)]
            await asyncio.sleep(0.05)
            assert pool.admitted == 5
            with pytest.raises(ApiError) as refused:
                await pool.run(work, 99)
            release.set()
            results = await asyncio.gather(*tasks)
            assert pool.admitted == 0
            return results, refused.value
        finally:
            release.set()
            pool.shutdown()

    results, refused = asyncio.run(main())
    assert results == [0, 1, 2, 3, 4] and most == 2
    assert refused.status == 503 and refused.headers == {"Retry-After": "1"}


def test_output_cache_stays_within_its_bytes() -> None:
    def outputs(side: int) -> ModelOutput:
        return ModelOutput(np.zeros((side, side, 3), np.uint8), np.zeros((side, side)), None)

    one = outputs(10).nbytes  # 300 + 800 bytes
    cache = OutputCache(max_bytes=3 * one)
    for key in "abcd":
        cache.put(key, outputs(10))
    assert len(cache) == 3 and cache.get("a") is None  # the least recently used went first
    assert cache.get("b") is not None
    cache.put("e", outputs(10))
    assert cache.get("c") is None and cache.get("b") is not None  # b was used, c was not
    cache.put("huge", outputs(100))  # larger than the whole cache: not kept
    assert cache.get("huge") is None and len(cache) == 3
