"""Fit a dense model's center-bias prior for another kind of data, every other weight shared.

The shipped default learned where people look in photos. On web pages the content that draws
the eye is much the same (faces, text, contrast), but people start at the top left and read
down. This fits, per readout, the 12 x 16 log-prior grid that ends each readout
(:class:`~salience.models.dense.model.Readout`) to the fixations of a dataset of that kind,
predicted as :class:`~salience.predictor.Predictor` predicts it: decoded within
:data:`~salience.io.images.WORKING_PIXELS`, a tall page cut into viewports
(:class:`~salience.models.tiling.Tiler`), each fixation counted in the viewport whose blending
weight is largest at it. The network runs once per viewport; the fit then needs only each
readout's log-density without its prior (a log-softmax, to which a prior adds before the next).

The objective is the mean log-likelihood of the fixations under the readouts' mixture, with an
L2 pull of the grid towards the model's own prior (``strength`` per cell). The strength is
chosen by cross-validation over groups of the training images (web sites: pages of one site
share a layout, so they must not be split), never on the data reported; the chosen strength is
then fitted on all of it. Write the result beside the checkpoint with
:func:`~salience.models.dense.conditions.write_condition_priors`:

    python -m salience.training.condition_prior --dataset eyevido --root ../shared/data/eyevido \
        --condition ui --out salience/weights/default-ui.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from salience.data import load_dataset
from salience.data.conditions import Condition
from salience.data.dataset import Dataset
from salience.data.eyevido import site_of
from salience.models.dense.conditions import write_condition_priors
from salience.models.dense.density import DenseDensity
from salience.models.registry import load_checkpoint
from salience.models.tiling import Tiler
from salience.training.viewports import Viewports

STRENGTHS = (0.0, 0.1, 1.0, 10.0)  # L2 pull towards the model's own prior, per cell


@dataclass(frozen=True)
class Viewport:
    """One viewport's readouts without their prior and the cells of its fixations."""

    members: Tensor  # (K, h, w) each readout's log-density with a zero prior
    cells: Tensor  # (n,) flat indices of the fixations' cells
    group: str  # what it may not be split from in cross-validation (its page's site)


@torch.no_grad()  # not inference mode: the fit differentiates through the members
def viewports(
    density: DenseDensity, dataset: Dataset, tiler: Tiler | None = None
) -> list[Viewport]:
    """Every viewport of the dataset's images that holds fixations, as the Predictor cuts them."""
    tiler = tiler or Tiler()
    readouts = density.model.readouts
    saved = [r.log_prior.detach().clone() for r in readouts]
    found: list[Viewport] = []
    try:
        for r in readouts:
            r.log_prior.zero_()
        for stimulus in dataset:
            cut = Viewports.of(stimulus, tiler)
            owner, xs, ys = cut.locate(*stimulus.fixations())
            for k, crop in enumerate(cut.crops):
                mine = owner == k
                if not mine.any():
                    continue
                members = _members(density, crop)  # (K, h, w)
                cells = _cells(xs[mine], ys[mine], crop.shape[:2], members.shape[-2:])
                found.append(Viewport(members, cells, site_of(stimulus.id)))
    finally:
        for r, prior in zip(readouts, saved, strict=True):
            r.log_prior.copy_(prior)
    return found


def _members(density: DenseDensity, crop: np.ndarray) -> Tensor:
    """Each readout's log-density over the cells of one viewport: (K, h, w) float32 on the CPU."""
    x = density._batch([crop], density.input_size(crop.shape[:2]))  # (1, 3, h_in, w_in)
    return density.model(x)["member_log_densities"][0].float().cpu()


def _cells(xs: np.ndarray, ys: np.ndarray, size: tuple[int, int], cells: tuple[int, int]) -> Tensor:
    rows = np.clip((ys / size[0] * cells[0]).astype(int), 0, cells[0] - 1)
    cols = np.clip((xs / size[1] * cells[1]).astype(int), 0, cells[1] - 1)
    return torch.from_numpy(rows * cells[1] + cols)


@dataclass(frozen=True)
class _Stack:
    """Viewports of one cell grid, stacked: members (N, K, h, w); per fixation its viewport
    ``which`` (n,) and flat cell ``cells`` (n,)."""

    members: Tensor
    which: Tensor
    cells: Tensor


def _stacks(data: Sequence[Viewport]) -> list[_Stack]:
    by_shape: dict[tuple[int, int], list[Viewport]] = {}
    for view in data:
        by_shape.setdefault(tuple(view.members.shape[-2:]), []).append(view)
    return [
        _Stack(
            torch.stack([v.members for v in views]),
            torch.cat([torch.full((len(v.cells),), i) for i, v in enumerate(views)]),
            torch.cat([v.cells for v in views]),
        )
        for views in by_shape.values()
    ]


def log_likelihood(priors: Tensor, data: Sequence[Viewport] | Sequence[_Stack]) -> Tensor:
    """Mean log-likelihood (nats per fixation) of the fixations under the readouts' mixture with
    the log-prior grids ``priors`` (K, rows, cols)."""
    stacks = data if data and isinstance(data[0], _Stack) else _stacks(data)
    total, count = priors.new_zeros(()), 0
    for stack in stacks:
        size = stack.members.shape[-2:]
        up = F.interpolate(priors[:, None], size=size, mode="bilinear", align_corners=False)
        logits = (stack.members + up[:, 0]).flatten(2)  # (N, K, h * w)
        logp = F.log_softmax(logits, dim=2)
        at = logp[stack.which, :, stack.cells]  # (n, K)
        mixture = torch.logsumexp(at, dim=1) - math.log(len(priors))  # (n,)
        total = total + mixture.sum()
        count += len(stack.cells)
    return total / max(count, 1)


def fit(data: Sequence[Viewport], start: Tensor, strength: float, steps: int = 50) -> Tensor:
    """The log-prior grids maximizing :func:`log_likelihood` minus ``strength`` times the mean
    squared distance from ``start`` (L-BFGS from ``start``)."""
    stacks = _stacks(data)
    priors = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([priors], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = -log_likelihood(priors, stacks) + strength * (priors - start).square().mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    return priors.detach()


def cross_validate(
    data: Sequence[Viewport], start: Tensor, strengths: Sequence[float] = STRENGTHS
) -> dict[float, float]:
    """Per strength the held-out log-likelihood (nats per fixation) over leave-one-group-out
    folds, pooled over every held-out fixation; ``inf``: the model's own prior, unchanged."""
    groups = sorted({v.group for v in data})
    scores = {}
    for strength in [*strengths, math.inf]:
        total, count = 0.0, 0
        for group in groups:
            train = [v for v in data if v.group != group]
            held = [v for v in data if v.group == group]
            priors = start if math.isinf(strength) else fit(train, start, strength)
            n = sum(len(v.cells) for v in held)
            with torch.no_grad():
                total += float(log_likelihood(priors, held)) * n
            count += n
        scores[strength] = total / count
    return scores


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="eyevido")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--condition", default="ui")
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="default: the shipped default"
    )
    parser.add_argument("--out", type=Path, required=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    from salience.models.registry import shipped_weights

    torch.manual_seed(0)
    checkpoint = args.checkpoint or shipped_weights("default")
    density = load_checkpoint(checkpoint)
    if not isinstance(density, DenseDensity):
        raise SystemExit(f"{checkpoint}: condition priors are for dense models")
    data = load_dataset(args.dataset, args.root).split(args.split)
    started = time.monotonic()
    views = viewports(density, data)
    features_s = time.monotonic() - started
    start = torch.cat([r.log_prior.detach()[0] for r in density.model.readouts]).float()
    with torch.no_grad():
        own = float(log_likelihood(start, views))
    scores = cross_validate(views, start)
    best = max(scores, key=scores.get)
    if math.isinf(best):
        raise SystemExit(f"cross-validation prefers the model's own prior: {scores}")
    priors = fit(views, start, best)
    with torch.no_grad():
        fitted = float(log_likelihood(priors, views))
    provenance = {
        "dataset": f"{args.dataset}/{args.split}",
        "viewports": len(views),
        "fixations": sum(len(v.cells) for v in views),
        "groups": sorted({v.group for v in views}),
        "cv_log_likelihood_nats": {str(k): v for k, v in scores.items()},
        "strength": best,
        "train_log_likelihood_nats": {"own_prior": own, "fitted": fitted},
        "seconds": {
            "viewports": round(features_s, 1),
            "total": round(time.monotonic() - started, 1),
        },
        "command": "python -m salience.training.condition_prior " + " ".join(argv),
    }
    write_condition_priors(
        args.out, density.model, priors, Condition.parse(args.condition), provenance
    )
    print(json.dumps(provenance, indent=2))


if __name__ == "__main__":
    main()
