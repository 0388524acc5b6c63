"""The JSON the service answers with: typed so that FastAPI checks and documents it (``/docs``).

Images travel as base64-encoded PNG, densities as base64-encoded ``.npy`` (float32, sums to 1),
so one response holds everything a page or a batch job needs without a second request.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """What every 4xx and 5xx carries: a stable code for programs and a message for people."""

    error: str = Field(description="A short code, e.g. not_an_image, too_many_pixels, bad_regions.")
    message: str = Field(description="What was wrong with the request, in words.")


class Health(BaseModel):
    """The service is up and its model loaded; its limits, so a client can check before sending."""

    status: Literal["ok"] = "ok"
    model: str
    windows: bool = Field(description="Whether viewing-time windows can be predicted.")
    max_upload_mb: float
    max_pixels: int
    workers: int
    queue: int = Field(description="Requests that may wait for a worker; more get 503.")
    fixations: int = Field(description="Likely fixations per prediction.")
    scanpath_length: int
    conditions: list[str] = Field(
        default_factory=list,
        description="The kinds of data a request's 'condition' may name, the default first "
        "(e.g. eye: photos, ui: web pages and apps); empty for a model without conditions.",
    )


class Colormaps(BaseModel):
    """Colormap tables for drawing heatmaps in the browser: 256 RGB entries per name."""

    default: str
    tables: dict[str, list[tuple[int, int, int]]]


class Fixation(BaseModel):
    """One likely fixation, in predicted order, as in ``<name>_fixations.json``."""

    order: int
    x: float = Field(description="Pixels from the left edge (pixel j covers j <= x < j + 1).")
    y: float
    probability: float = Field(description="Probability a fixation lands within 1 degree.")


class ScanpathFixation(BaseModel):
    order: int
    x: float
    y: float
    duration: float = Field(description="Seconds.")


class Scanpath(BaseModel):
    fixations: list[ScanpathFixation]


class Maps(BaseModel):
    """A density drawn for people: PNGs (base64) and, on request, the density itself."""

    heatmap_png: str = Field(description="The display map in the colormap, base64 PNG.")
    overlay_png: str = Field(description="The heatmap over the image, base64 PNG.")
    display_png: str = Field(
        description="The display map (share of attention on less attended pixels) as 8-bit "
        "gray, base64 PNG: with a colormap table, the page redraws heatmap and overlay itself."
    )
    density_npy: str | None = Field(
        None, description="float32 (H, W) density summing to 1, base64 .npy (if density=true)."
    )


class WindowMaps(Maps):
    """Where people look during one window of viewing time."""

    label: str = Field(description='e.g. "0-1s"')
    start: float = Field(description="Seconds after the image appeared.")
    end: float


class Prediction(Maps):
    """``POST /v1/predict``: the fields of ``<name>_fixations.json`` plus the maps."""

    image: str | None = Field(description="The uploaded file's name.")
    width: int
    height: int
    pixels_per_degree: float
    fixations: list[Fixation]
    scanpath_seed: int | None
    scanpaths: list[Scanpath]
    settings: dict[str, object] = Field(description="The options the result was made with.")
    gaze_plot_png: str = Field(description="Numbered likely fixations over the image, base64 PNG.")
    windows: list[WindowMaps] = Field(description="One entry per viewing-time window if asked.")


class AoiRow(BaseModel):
    """One region's numbers (see :mod:`salience.analysis.aoi`)."""

    region: str
    area_fraction: float
    share: float = Field(description="Share of all predicted fixations inside the region.")
    lift: float = Field(description="share / area_fraction: above 1 draws more than its size.")
    p_first_k: float = Field(description="P(one of the first k fixations lands in it).")
    p_first_k_low: float = Field(description="95 % Wilson interval of p_first_k (sampling).")
    p_first_k_high: float
    mean_first_index: float | None


class AoiReport(BaseModel):
    """``POST /v1/aoi``: attention per region on one image."""

    image: str | None
    width: int
    height: int
    pixels_per_degree: float
    k: int
    n: int = Field(description="Scanpaths sampled.")
    seed: int
    sampler: str
    regions: list[AoiRow]
    csv: str = Field(description="The same rows as CSV text.")


class RegionDelta(BaseModel):
    """One region in design A and B, and B - A."""

    region: str
    area_fraction_a: float
    area_fraction_b: float
    area_fraction_delta: float
    share_a: float
    share_b: float
    share_delta: float
    lift_a: float
    lift_b: float
    lift_delta: float
    p_first_k_a: float
    p_first_k_b: float
    p_first_k_delta: float
    mean_first_index_a: float | None
    mean_first_index_b: float | None
    mean_first_index_delta: float | None


class Comparison(BaseModel):
    """``POST /v1/compare``: two designs, per-region deltas (B - A) and the difference map."""

    a: AoiReport
    b: AoiReport
    regions: list[RegionDelta]
    difference_size: tuple[int, int] = Field(description="(height, width) of the difference.")
    difference_png: str = Field(
        description="B - A on a symmetric diverging scale (red: more attention in B), base64 PNG."
    )
    a_overlay_png: str
    b_overlay_png: str
    csv: str = Field(description="The deltas as CSV text.")
