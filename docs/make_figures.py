"""The README's figures, made with the shipped default model: python docs/make_figures.py"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from salience.analysis.aoi import compare, resample_density
from salience.analysis.regions import parse_region
from salience.analysis.render import (
    difference_map,
    draw_regions,
    gaze_plot,
    heatmap,
    overlay,
    side_by_side,
)
from salience.io.images import load_image
from salience.predictor import Predictor

DOCS = Path(__file__).resolve().parent


def save_jpeg(path: Path, array) -> None:
    """README figures as JPEG (a fifth of the PNG's size; they are for looking at)."""
    Image.fromarray(array).save(path, quality=85)


def main() -> None:
    predictor = Predictor.from_pretrained()
    image = load_image(DOCS / "example.jpg")
    result = predictor.predict(image)
    first = result.fixations[:5]
    save_jpeg(
        DOCS / "example_predict.jpg",
        side_by_side(
            [
                image,
                heatmap(result.density),
                overlay(image, result.density),
                gaze_plot(image, first),
            ],
            labels=["image", "heatmap", "overlay", "likely first 5 fixations"],
        ),
    )

    timed = predictor.predict(image, windows=True)
    save_jpeg(
        DOCS / "example_windows.jpg",
        side_by_side(
            [overlay(image, w.density) for w in timed.windows],
            labels=[f"{w.window.start:g}-{w.window.end:g} s" for w in timed.windows],
        ),
    )

    variant = load_image(DOCS / "example-variant.jpg")
    other = predictor.predict(variant)
    regions = [parse_region("banner:12,410,238,80"), parse_region("face:150,60,150,130")]
    report = compare(result.density, other.density, regions, predictor.sampler)
    panels = []
    for img, pred, rows in ((image, result, report.a.rows), (variant, other, report.b.rows)):
        labels = [f"{r.region} {100 * r.share:.0f}%" for r in rows]
        outlines = [region.vertices(pred.size) for region in regions]
        panels.append(draw_regions(overlay(img, pred.density), outlines, labels))
    common = report.difference.shape
    difference = difference_map(
        resample_density(result.density, common), resample_density(other.density, common)
    )
    save_jpeg(
        DOCS / "example_compare.jpg",
        side_by_side([*panels, difference], labels=["A", "B (banner added)", "B - A"]),
    )


if __name__ == "__main__":
    main()
