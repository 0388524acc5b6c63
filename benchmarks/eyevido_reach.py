"""EYEVIDO statistics for the tall-page rule: how far down viewers look, and where on a page.

Reach curves (:mod:`salience.data.reach`) are fitted on the train split only and checked on val,
for two screen heights: a 16:10 display (viewport = 10/16 of the page width) and the study's
likely viewport (484 of 959 halved pixels, see :mod:`salience.data.eyevido`). Also the mean
fixation position (center bias) and the val pages with at least 5 viewers.

    python benchmarks/eyevido_reach.py   # writes benchmarks/RESULTS_eyevido_reach.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from salience.data import load_dataset
from salience.data.eyevido import EYEVIDO_VIEWPORT_HEIGHT
from salience.data.reach import (
    REACH_KINDS,
    SCREEN_ASPECT,
    center_bias,
    fit_reach,
    reach_log_likelihood,
    screen_table,
    viewer_reach,
)

COMMAND = "python benchmarks/eyevido_reach.py"


def _screens_section(data, aspect: float, label: str, weight: str) -> list[str]:
    train, val = data.split("train"), data.split("val")
    lines = [
        f"### {label}, weight = {weight}",
        "",
        "LL: mean log-likelihood of a fixation's depth (log per screen) given its page's depth; "
        "flat: uniform over the page.",
        "",
    ]
    curves = {kind: fit_reach(train, kind, aspect, weight) for kind in REACH_KINDS}
    lines += [
        "| curve | parameters (screens) | train LL / fixation | gain over flat | "
        "val LL / fixation | gain over flat |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kind, c in curves.items():
        params = ", ".join(f"{k} = {v:.3f}" for k, v in c.params.items())
        val_ll, val_flat = reach_log_likelihood(val, c, weight)
        lines.append(
            f"| {kind} | {params} | {c.log_likelihood:.4f} | "
            f"{c.log_likelihood - c.flat_log_likelihood:+.4f} | {val_ll:.4f} | "
            f"{val_ll - val_flat:+.4f} |"
        )
    lines.append("")
    for split_name, split in (("train", train), ("val", val)):
        tables = {kind: screen_table(split, c, 5, weight) for kind, c in curves.items()}
        lines += [
            f"{split_name} ({len(split)} pages): share per screen, observed and expected",
            "",
            "| screen | pages reaching it | observed | exponential | fold |",
            "| --- | --- | --- | --- | --- |",
        ]
        for k, row in enumerate(tables["exponential"]):
            screen = f"{row['screen']}+" if k == len(tables["exponential"]) - 1 else row["screen"]
            lines.append(
                f"| {screen} | {row['pages']} | {row['observed']:.3f} | {row['expected']:.3f} | "
                f"{tables['fold'][k]['expected']:.3f} |"
            )
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/eyevido")
    parser.add_argument("--out", default="benchmarks/RESULTS_eyevido_reach.md")
    args = parser.parse_args()
    data = load_dataset("eyevido", args.root)
    aspects = {
        "16:10 screen (viewport = 0.625 x width)": SCREEN_ASPECT,
        f"study viewport ({EYEVIDO_VIEWPORT_HEIGHT} / 959 x width)": EYEVIDO_VIEWPORT_HEIGHT / 959,
    }
    lines = [
        "# EYEVIDO: reach and center bias",
        "",
        f"`{COMMAND}` (deterministic, a few seconds on this machine, 2 cores). "
        f"{len(data)} pages, {sum(s.n_fixations for s in data)} fixations kept, "
        f"{data.dropped} dropped ({data.dropped_by_reason}).",
        "",
        "## Center bias (mean fixation position)",
        "",
        "| split | pages | x / width | y / screen | y / page height | in screen 1 | "
        "screen 1: x / width | screen 1: y / screen |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, aspect in aspects.items():
        lines.append(f"| *{label}* | | | | | | | |")
        for name in ("train", "val", "all"):
            split = data.split(name)
            cb = center_bias(split, aspect)
            lines.append(
                f"| {name} | {len(split)} | {cb['x_over_width']:.3f} | {cb['y_over_screen']:.3f} "
                f"| {cb['y_over_height']:.3f} | {cb['first_screen_share']:.3f} | "
                f"{cb['first_screen_x_over_width']:.3f} | {cb['first_screen_y_over_screen']:.3f} |"
            )
    lines += ["", "## Pages with at least 5 viewers", ""]
    for name in ("train", "val"):
        split = data.split(name)
        many = [s.id for s in split if len(s.scanpaths) >= 5]
        lines.append(f"- {name}: {len(many)} of {len(split)} ({', '.join(many)})")
    lines += ["", "## Reach (fitted on train)", ""]
    for label, aspect in aspects.items():
        for weight in ("fixations", "time"):
            lines += _screens_section(data, aspect, label, weight)
        lines += [
            f"Viewings that reach depth k (screens), of those on pages deeper than k ({label}):",
            "",
            "| split | depth | viewings | reached |",
            "| --- | --- | --- | --- |",
        ]
        for name in ("train", "val"):
            for row in viewer_reach(data.split(name), aspect, (1, 2, 3, 4)):
                lines.append(
                    f"| {name} | {row['depth']:g} | {row['viewings']} | {row['reached']:.3f} |"
                )
        lines.append("")
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
