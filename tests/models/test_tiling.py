"""Tall and wide images predicted viewport by viewport: which images, how cut, how joined."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from salience.models.base import ImageDensityModel
from salience.models.baselines import CenterBiasGaussian, Uniform
from salience.models.tiling import REACH, SCREEN_ASPECT, TiledDensity, Tiler


class Brightness(ImageDensityModel):
    """A toy content model: density proportional to brightness (plus a floor), batched."""

    name = "brightness"

    def __init__(self) -> None:
        self.calls: list[int] = []  # images per log_densities call

    def log_densities(self, images):
        self.calls.append(len(images))
        return [self.log_density(im, im.shape[:2]) for im in images]

    def log_density(self, image, size):
        value = np.log(image.astype(np.float64).mean(axis=2) + 1.0)
        return value - logsumexp(value)


def _page(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A synthetic page: white with dark text-like bars on every line band."""
    rng = np.random.default_rng(seed)
    page = np.full((height, width, 3), 255, np.uint8)
    for top in range(10, height - 12, 24):
        left = int(rng.integers(5, width // 3))
        page[top : top + 8, left : left + int(rng.integers(20, width // 2))] = 30
    return page


@pytest.mark.parametrize(
    "size", [(600, 800), (800, 600), (1600, 900), (2000, 1000), (400, 1000), (100, 20)]
)
def test_photos_and_near_square_images_are_not_cut(size):
    # 4:3 both ways, a 9:16 phone photo, exactly 2:1 and 2.5:1, and one too thin for a viewport
    assert Tiler().plan(size) is None


@pytest.mark.parametrize("size,axis", [((5000, 959), 0), ((300, 1200), 1), ((2001, 1000), 0)])
def test_viewports_cover_the_image_overlapping_by_half(size, axis):
    plan = Tiler().plan(size)
    assert plan is not None and plan.axis == axis
    extent = size[axis]
    expected = round(SCREEN_ASPECT * size[1]) if axis == 0 else round(size[0] / SCREEN_ASPECT)
    assert plan.length == expected
    assert plan.starts[0] == 0 and plan.starts[-1] + plan.length == extent
    assert max(np.diff(plan.starts)) <= plan.length / 2 + 1
    total = np.zeros(extent)
    for start, weight in zip(plan.starts, plan.blend, strict=True):
        assert (weight > 0).all()
        total[start : start + plan.length] += weight
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)  # a partition of unity
    assert plan.shares.sum() == pytest.approx(1.0) and (plan.shares > 0).all()


def test_joined_density_sums_to_one_and_keeps_the_content():
    page = _page(3000, 600)
    model = TiledDensity(Brightness())
    (log_density,) = model.log_densities([page])
    assert log_density.shape == page.shape[:2] and np.isfinite(log_density).all()
    assert np.exp(logsumexp(log_density)) == pytest.approx(1.0, abs=1e-12)
    # the white background is more probable than the dark bars within each screen
    bar, background = page[:, :, 0] == 30, page[:, :, 0] == 255
    screen = np.zeros(page.shape[:2], bool)
    screen[:375] = True
    assert log_density[screen & background].mean() > log_density[screen & bar].mean()


def test_a_tall_page_gets_more_mass_near_the_top_than_squeezed():
    size = (6000, 800)
    screen = round(SCREEN_ASPECT * size[1])
    base = CenterBiasGaussian(cov=np.diag([0.04, 0.04]))
    squeezed = np.exp(base.log_density(None, size))
    tiled = np.exp(TiledDensity(base).log_density(None, size))
    assert tiled.sum() == pytest.approx(1.0)
    first_tiled, first_squeezed = tiled[:screen].sum(), squeezed[:screen].sum()
    assert first_tiled > 0.25 and first_tiled > 10 * first_squeezed
    # and it falls off down the page as the reach curve does
    rows = tiled.sum(axis=1)
    depth = [rows[k * screen : (k + 1) * screen].sum() for k in range(9)]
    assert all(a > b for a, b in itertools.pairwise(depth))


def test_a_uniform_page_follows_the_reach_curve_screen_by_screen():
    size = (4000, 640)
    plan = Tiler().plan(size)
    assert plan.prior == "reach" and plan.shares[0] > plan.shares[1] > plan.shares[-2]
    rows = np.exp(TiledDensity(Uniform()).log_density(None, size)).sum(axis=1)
    screens = size[0] / plan.length
    for k in range(int(screens)):
        observed = rows[k * plan.length : (k + 1) * plan.length].sum()
        # the tents smooth the fold's step a little; elsewhere the curve is matched closely
        assert observed == pytest.approx(REACH.window_share(k, k + 1, screens), rel=0.1)


@pytest.mark.parametrize("base", [Uniform(), Brightness()], ids=["uniform", "brightness"])
def test_no_seams_where_viewports_meet(base):
    # a page whose brightness changes smoothly: the joined rows must change smoothly too
    height, width = 3200, 480
    ramp = np.linspace(60, 250, height)[:, None, None] * np.ones((1, width, 3))
    page = ramp.astype(np.uint8)
    plan = Tiler().plan((height, width))
    log_density = TiledDensity(base).log_densities([page])[0]
    rows = np.exp(log_density).sum(axis=1)
    steps = np.abs(np.diff(np.log(rows)))
    # a hard cut at viewport edges would jump by the ratio of neighbouring shares (> 10 %)
    edges = sorted({s for s in plan.starts[1:]} | {s + plan.length for s in plan.starts[:-1]})
    assert steps[np.array(edges) - 1].max() < 0.01
    assert steps.max() < 0.02


def test_wide_images_weigh_every_column_alike():
    size = (300, 1500)
    joined = np.exp(TiledDensity(Uniform()).log_density(None, size))
    plan = Tiler().plan(size)
    assert plan.prior == "equal" and plan.describe()["direction"] == "across"
    columns = joined.sum(axis=0)
    np.testing.assert_allclose(columns, 1 / size[1], rtol=1e-9)


def test_short_images_are_untouched_bit_for_bit():
    images = [_page(480, 640, 1), _page(900, 600, 2), _page(3000, 600, 3), _page(200, 300, 4)]
    base = Brightness()
    tiled = TiledDensity(base).log_densities(images)
    for k in (0, 1, 3):
        assert np.array_equal(tiled[k], base.log_density(images[k], images[k].shape[:2]))
    # the short ones go to the base model in one call, the tall one's viewports in another
    assert base.calls == [3, len(Tiler().plan((3000, 600)))]
    assert TiledDensity(base).log_density(images[0], (480, 640)) is not None


def test_the_reach_constants_are_the_fit_on_eyevido_train(eyevido):
    from salience.data.reach import fit_reach

    fitted = fit_reach(eyevido.split("train"), "fold")
    assert fitted.kind == REACH.kind and fitted.screen_aspect == REACH.screen_aspect
    for key, value in REACH.params.items():
        assert fitted.params[key] == pytest.approx(value, abs=6e-5)
    assert fitted.n_fixations == REACH.n_fixations


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        Tiler(overlap=1.0)
    with pytest.raises(ValueError, match="tall_aspect"):
        Tiler(tall_aspect=1.0)
