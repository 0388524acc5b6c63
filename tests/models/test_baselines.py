"""Baselines on the real OSIE data: normalization, fitting, and the gold standard's bound."""

from __future__ import annotations

import numpy as np
import pytest

from salience.models.baselines import (
    CenterBiasGaussian,
    CenterBiasKDE,
    GoldStandard,
    Uniform,
    kde_density,
)


def _mean_log_likelihood(model, dataset) -> float:
    values = []
    for stim in dataset:
        x, y = stim.fixations()
        values.append(model.log_density(None, stim.size)[y.astype(int), x.astype(int)])
    return float(np.concatenate(values).mean())


@pytest.fixture(scope="module")
def osie_small(osie):
    train = osie.subset(osie.splits["train"][:150], name="osie/train150")
    val = osie.subset(osie.splits["val"][:25], name="osie/val25")
    return train, val


def test_kde_density_matches_a_direct_sum_on_the_pixel_grid() -> None:
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(10, 50, 30), rng.uniform(5, 35, 30)
    sigma = 4.0
    ours = kde_density(xs, ys, (40, 60), sigma)
    gx, gy = np.meshgrid(np.arange(60) + 0.5, np.arange(40) + 0.5)
    d2 = (gx[..., None] - xs) ** 2 + (gy[..., None] - ys) ** 2
    direct = np.exp(-0.5 * d2 / sigma**2).sum(-1)
    np.testing.assert_allclose(ours, direct / direct.sum(), rtol=1e-10)
    assert ours.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("model_cls", [Uniform, CenterBiasGaussian, CenterBiasKDE])
def test_densities_are_normalized(model_cls, osie_small) -> None:
    model = model_cls()
    if model.needs_fit:
        model.fit(osie_small[0])
    for size in [(600, 800), (256, 256), (37, 91)]:
        log_density = model.log_density(None, size)
        assert log_density.shape == size
        assert np.isfinite(log_density).all()
        assert np.exp(log_density).sum() == pytest.approx(1.0, rel=1e-9)


def test_center_bias_beats_uniform_and_gaussian_on_held_out_images(osie_small) -> None:
    train, val = osie_small
    kde, gauss = CenterBiasKDE(), CenterBiasGaussian()
    kde.fit(train)
    gauss.fit(train)
    ll_uniform = _mean_log_likelihood(Uniform(), val)
    ll_gauss, ll_kde = _mean_log_likelihood(gauss, val), _mean_log_likelihood(kde, val)
    assert ll_gauss > ll_uniform + 0.2  # fixations are far from uniform
    assert ll_kde > ll_gauss  # and the KDE captures more than one Gaussian
    assert kde.params.bandwidth in CenterBiasKDE.bandwidths
    # the fitted center lies below the image's middle row, where people look (y grows down)
    assert 0.4 < gauss.mean[0] < 0.6 and 0.4 < gauss.mean[1] < 0.55


def test_gold_standard_leave_one_out_values_match_maps(osie_small) -> None:
    train, val = osie_small
    gold = GoldStandard()
    gold.fit(train, val)
    stim = val[0]
    x, y = stim.fixations()
    obs = stim.observer_index()
    at_fixations = gold._mixed_at_fixations(stim)
    for s in (0, 7):
        log_map = gold.log_density_without(stim, s)
        assert np.exp(log_map).sum() == pytest.approx(1.0, rel=1e-9)
        sel = obs == s
        np.testing.assert_allclose(
            log_map[y[sel].astype(int), x[sel].astype(int)], at_fixations[sel], rtol=1e-9
        )
        # leaving observer s out really removes its fixations: the map differs from observer t's
        assert not np.allclose(log_map, gold.log_density_without(stim, (s + 1) % 15))


def test_gold_standard_is_far_above_the_center_bias(osie_small) -> None:
    train, val = osie_small
    gold = GoldStandard()
    gold.fit(train, val)
    ig = np.mean([gold.information_gain(s, gold.center_bias) for s in val])
    assert ig > 1.0  # bits per fixation over the center bias
    assert gold.params.bandwidth_deg in GoldStandard.bandwidths_deg
    assert 0 <= gold.params.center_bias_weight < 1


def test_fit_errors() -> None:
    from salience.data.dataset import Dataset

    empty = Dataset("empty", None, [], 24.0)
    with pytest.raises(ValueError, match="empty"):
        CenterBiasKDE().fit(empty)
    with pytest.raises(ValueError, match="empty"):
        GoldStandard().fit_tuning(empty)
