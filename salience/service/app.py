"""The FastAPI application: the page at ``/``, the JSON API under ``/v1``, health at ``/healthz``.

Requests are multipart forms: the image(s) as files, options as form fields (the query string
takes none, so a misspelt option is an error rather than silently ignored). The endpoints do
no work on the event loop: they check the request and hand it to the
:class:`~salience.service.engine.InferencePool`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile, params
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from salience import __version__
from salience.analysis.regions import (
    Region,
    RegionError,
    check_regions,
    grid_regions,
    parse_region,
    parse_regions_json,
)
from salience.analysis.render import COMMON_COLORMAPS, check_colormap, colormap_table
from salience.io.images import pixel_limit
from salience.predictor import Predictor
from salience.service import schemas
from salience.service.engine import Engine, InferencePool, MapOptions, RegionQuery, Upload
from salience.service.errors import ApiError, BodyLimit, install_error_handlers

STATIC = Path(__file__).resolve().parent / "static"

MAX_SCANPATHS = 100  # per prediction
MAX_SAMPLES = 10_000  # scanpaths sampled for P(in first k)
MAX_K = 20
MAX_REGIONS = 100


@dataclass(frozen=True)
class ServiceSettings:
    """Limits of one service: upload size, worker threads, waiting requests, cache size."""

    max_upload_mb: float = 20.0
    workers: int = 1
    queue: int = 64
    cache_mb: float = 256.0
    model_name: str = "default"

    def __post_init__(self) -> None:
        if not self.max_upload_mb > 0:
            raise ValueError(f"max_upload_mb must be positive, got {self.max_upload_mb}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.queue < 0:
            raise ValueError(f"queue must be >= 0, got {self.queue}")
        if self.cache_mb < 0:
            raise ValueError(f"cache_mb must be >= 0, got {self.cache_mb}")

    @property
    def max_upload_bytes(self) -> int:
        return round(self.max_upload_mb * 1e6)


class Service:
    """The state every request shares: the settings, the engine (model loaded once) and the
    worker pool (started and stopped with the application)."""

    def __init__(self, engine: Engine, settings: ServiceSettings) -> None:
        self.settings = settings
        self.engine = engine
        self._pool: InferencePool | None = None

    @property
    def pool(self) -> InferencePool:
        if self._pool is None:
            raise RuntimeError("the service is not started (run the app under its lifespan)")
        return self._pool

    def start(self) -> None:
        self._pool = InferencePool(self.settings.workers, self.settings.queue)

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


async def get_service(request: Request) -> Service:
    """The application's :class:`Service` (a FastAPI dependency; async, so that FastAPI does
    not hand it to a thread)."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def form_fields(*names: str, repeatable: tuple[str, ...] = ()) -> Callable[..., Awaitable[None]]:
    """A dependency that allows only a multipart form with the fields ``names`` (each once,
    except ``repeatable``) and an empty query string: 415 for another body, 400 otherwise."""
    allowed = frozenset(names)

    async def check(request: Request) -> None:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "multipart/form-data":
            raise ApiError(
                415,
                "not_multipart",
                f"send a multipart/form-data body (got {content_type or 'none'}), files and "
                "options as form fields, e.g. curl -F image=@photo.jpg -F colormap=inferno",
            )
        if request.query_params:
            raise ApiError(
                400,
                "unknown_option",
                f"options go in the form body, not the query string: got "
                f"{', '.join(sorted(request.query_params))}",
            )
        form = await request.form()
        keys = [key for key, _ in form.multi_items()]
        unknown = sorted(set(keys) - allowed)
        if unknown:
            raise ApiError(
                400,
                "unknown_option",
                f"unknown field(s) {', '.join(repr(u) for u in unknown)}; this endpoint takes "
                f"{', '.join(sorted(allowed))}",
            )
        repeated = sorted({k for k in keys if keys.count(k) > 1} - set(repeatable))
        if repeated:
            raise ApiError(
                400, "repeated_field", f"field(s) {', '.join(repeated)} given more than once"
            )

    return check


async def read_upload(file: UploadFile, field: str) -> Upload:
    """An uploaded file's bytes (at most the upload limit: the body was limited already)."""
    data = await file.read()
    name = file.filename or field
    return Upload(data, name)


def map_options(colormap: str, opacity: float, density: bool = False) -> MapOptions:
    try:
        check_colormap(colormap)
    except ValueError as exc:
        raise ApiError(422, "unknown_colormap", str(exc)) from None
    return MapOptions(colormap, opacity, density)


def parse_regions(
    regions: str | None, region: list[str] | None, default_grid: bool = False
) -> tuple[Region, ...]:
    """Regions from the ``regions`` JSON field (a region file's form) and ``region`` fields
    (``NAME:x,y,w,h`` as on the command line); the 3 x 3 grid if allowed and none given."""
    try:
        found = list(parse_regions_json(regions, "regions")) if regions is not None else []
        found += [parse_region(text) for text in region or []]
        if not found and default_grid:
            return grid_regions()
        if not found:
            raise RegionError(
                "no regions given: send them as 'regions' (JSON, as in a region file) or as "
                "'region' fields (NAME:x,y,w,h)"
            )
        if len(found) > MAX_REGIONS:
            raise RegionError(f"{len(found)} regions; at most {MAX_REGIONS} per request")
        return check_regions(found)
    except RegionError as exc:
        raise ApiError(422, "bad_regions", str(exc)) from None


ERRORS = {
    status: {"model": schemas.ErrorBody, "description": description}
    for status, description in {
        400: "Unknown or repeated field, malformed form",
        413: "Body over the upload limit",
        415: "Not multipart, or an upload that is no image",
        422: "Invalid value: corrupt image, too many pixels, bad regions, unknown colormap",
        503: "All workers busy and the wait queue full; retry",
    }.items()
}

router = APIRouter()

ColormapField = Annotated[
    str, Form(description=f"matplotlib colormap, e.g. {', '.join(COMMON_COLORMAPS)}")
]
OpacityField = Annotated[
    float, Form(ge=0.0, le=1.0, description="Overlay opacity at the most attended pixels.")
]
SeedField = Annotated[int, Form(ge=0, description="Seed of sampled scanpaths.")]
KField = Annotated[
    int, Form(ge=1, le=MAX_K, description="The first k fixations count as 'seen early'.")
]
SamplesField = Annotated[
    int, Form(ge=10, le=MAX_SAMPLES, description="Scanpaths sampled for P(in first k).")
]
RegionsField = Annotated[
    str | None,
    Form(
        description='Regions as JSON, as in a region file: {"units": "px" | "fraction", '
        '"regions": [{"name": "logo", "rect": [x, y, w, h]}, {"name": "cta", "polygon": '
        "[[x, y], ...]}]} or a bare list (pixels)."
    ),
]
ConditionField = Annotated[
    str | None,
    Form(
        description="The kind of data to predict for, one the server lists in /healthz "
        "(e.g. eye: photos, ui: web pages and apps); default: the server's."
    ),
]
RegionField = Annotated[
    list[str] | None,
    Form(description="NAME:x,y,w,h rectangles as on the command line (px, fractions or %)."),
]


@router.get("/healthz", response_model=schemas.Health, tags=["service"])
async def healthz(service: ServiceDep) -> schemas.Health:
    """200 once the model is loaded (it is loaded before the server starts), with the limits."""
    predictor = service.engine.predictor
    return schemas.Health(
        model=service.settings.model_name,
        windows=service.engine.windows_available,
        max_upload_mb=service.settings.max_upload_mb,
        max_pixels=pixel_limit(),
        workers=service.settings.workers,
        queue=service.settings.queue,
        fixations=predictor.n_fixations,
        scanpath_length=predictor.scanpath_length,
        conditions=service.engine.conditions,
    )


def analysis_endpoint(
    path: str, response_model: type, repeatable: tuple[str, ...] = ()
) -> Callable[[Callable[..., Awaitable[dict]]], Callable[..., Awaitable[dict]]]:
    """Register an analysis endpoint that takes a multipart form at ``path``: its form fields
    are the function's own parameters (all but ``service``) and those of the dependencies it
    takes (e.g. :func:`region_form`), so the check of unknown fields (:func:`form_fields`)
    cannot drift from what the endpoint reads."""

    def register(endpoint: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict]]:
        check = Depends(form_fields(*_form_fields(endpoint), repeatable=repeatable))
        route = router.post(
            path,
            response_model=response_model,
            responses=ERRORS,
            tags=["analysis"],
            dependencies=[check],
        )
        return route(endpoint)

    return register


def _form_fields(function: Callable[..., object]) -> list[str]:
    """The form fields ``function`` reads: its parameters but ``service``, a dependency's own."""
    fields = []
    for name, parameter in inspect.signature(function, eval_str=True).parameters.items():
        if name == "service":
            continue
        metadata = getattr(parameter.annotation, "__metadata__", ())
        depends = [m for m in metadata if isinstance(m, params.Depends)]
        fields += _form_fields(depends[0].dependency) if depends else [name]
    return fields


@dataclass(frozen=True)
class RegionForm:
    """The form fields of a region analysis, as sent (the endpoint parses the regions)."""

    regions: str | None
    region: list[str] | None
    k: int
    samples: int
    seed: int
    condition: str | None

    def query(self, default_grid: bool = False) -> RegionQuery:
        """The analysis asked for; 422 for malformed regions (or none, unless
        ``default_grid``: the 3 x 3 grid)."""
        chosen = parse_regions(self.regions, self.region, default_grid)
        return RegionQuery(chosen, self.k, self.samples, self.seed, self.condition)


def region_form(
    regions: RegionsField = None,
    region: RegionField = None,
    k: KField = 3,
    samples: SamplesField = 1000,
    seed: SeedField = 0,
    condition: ConditionField = None,
) -> RegionForm:
    """The fields ``/v1/aoi`` and ``/v1/compare`` share, declared once."""
    return RegionForm(regions, region, k, samples, seed, condition)


RegionFormDep = Annotated[RegionForm, Depends(region_form)]


@router.get("/v1/colormaps", response_model=schemas.Colormaps, tags=["service"])
async def colormaps() -> schemas.Colormaps:
    """256-entry RGB tables of the common colormaps, for drawing maps in the browser."""
    return schemas.Colormaps(
        default="jet",
        tables={name: colormap_table(name).tolist() for name in COMMON_COLORMAPS},
    )


@analysis_endpoint("/v1/predict", schemas.Prediction)
async def predict(
    service: ServiceDep,
    image: Annotated[UploadFile, File(description="The image (any format Pillow reads).")],
    colormap: ColormapField = "jet",
    opacity: OpacityField = 0.5,
    scanpaths: Annotated[
        int, Form(ge=0, le=MAX_SCANPATHS, description="Scanpaths to sample (0: none).")
    ] = 0,
    seed: SeedField = 0,
    windows: Annotated[
        bool, Form(description="Also maps of the viewing-time windows (0-1 s, 1-2 s, 2-3 s).")
    ] = False,
    density: Annotated[bool, Form(description="Include the density as base64 .npy.")] = False,
    condition: ConditionField = None,
) -> dict:
    """Heatmap, overlay, likely first fixations (and scanpaths, windows, density) of an image."""
    maps = map_options(colormap, opacity, density)
    upload = await read_upload(image, "image")
    return await service.pool.run(
        service.engine.predict, upload, maps, scanpaths, seed, windows, condition
    )


@analysis_endpoint("/v1/aoi", schemas.AoiReport, repeatable=("region",))
async def aoi(
    service: ServiceDep,
    image: Annotated[UploadFile, File(description="The image.")],
    form: RegionFormDep,
) -> dict:
    """Per region: share of attention, lift, and P(in the first k fixations) with its 95 %
    interval, as ``salience aoi`` reports them."""
    query = form.query()
    upload = await read_upload(image, "image")
    return await service.pool.run(service.engine.aoi, upload, query)


@analysis_endpoint("/v1/compare", schemas.Comparison, repeatable=("region",))
async def compare(
    service: ServiceDep,
    a: Annotated[UploadFile, File(description="Design A.")],
    b: Annotated[UploadFile, File(description="Design B.")],
    form: RegionFormDep,
    colormap: ColormapField = "jet",
    opacity: OpacityField = 0.5,
) -> dict:
    """Two designs: per-region deltas B - A (a 3 x 3 grid when no regions are given), the
    difference map, and both overlays, as ``salience compare`` reports them."""
    query = form.query(default_grid=True)
    maps = map_options(colormap, opacity)
    upload_a, upload_b = await read_upload(a, "a"), await read_upload(b, "b")
    return await service.pool.run(service.engine.compare, upload_a, upload_b, query, maps)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The single page (plain HTML, CSS and JavaScript; no build step, nothing fetched from
    elsewhere)."""
    return FileResponse(STATIC / "index.html")


def create_app(
    predictor: Predictor,
    settings: ServiceSettings | None = None,
    others: Mapping[str, Predictor] | None = None,
) -> FastAPI:
    """The service around a loaded ``predictor``: page, API, error handling, upload limit.
    ``others``: the same model for the other kinds of data it was trained on, by kind (a
    request's ``condition`` picks one)."""
    settings = settings or ServiceSettings()
    service = Service(Engine(predictor, round(settings.cache_mb * 1e6), others), settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="salience",
        version=__version__,
        summary="Where people will look in an image: heatmaps, likely fixations, attention per "
        "region, A/B comparisons.",
        lifespan=lifespan,
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
