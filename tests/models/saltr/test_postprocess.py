"""Predictions -> fixation lists, scanpaths, saliency maps and log-densities."""

import math

import pytest
import torch

from salience.models.saltr.postprocess import (
    center_bias_prior,
    fixation_points,
    log_density,
    saliency_map,
    scaled_sigma,
    scanpath_from_outputs,
)


def test_sigma_is_19_px_at_640x480_and_scales_with_the_diagonal():
    assert scaled_sigma((480, 640)) == pytest.approx(19.0)
    assert scaled_sigma((960, 1280)) == pytest.approx(38.0)
    assert scaled_sigma((240, 320), sigma_px=10.0) == pytest.approx(5.0)
    assert scaled_sigma((100, 100), reference_size=(60, 80)) == pytest.approx(
        19.0 * math.hypot(100, 100) / 100
    )


@pytest.mark.parametrize("size", [(48, 64), (31, 17), (1, 1)])
def test_density_sums_to_one_and_is_finite(size):
    g = torch.Generator().manual_seed(0)
    points = torch.rand(3, 10, 2, generator=g, dtype=torch.float64)
    probs = torch.rand(3, 10, generator=g, dtype=torch.float64)
    logd = log_density(points, probs, size, sigma=3.0)
    assert logd.shape == (3, *size)
    assert torch.isfinite(logd).all()
    torch.testing.assert_close(logd.exp().sum(dim=(-2, -1)), torch.ones(3, dtype=torch.float64))


def test_density_peaks_at_the_most_probable_point():
    # points on the centers of pixels (row 12, col 10) and (row 30, col 50)
    height, width = 48, 64
    points = torch.tensor([[[10.5 / width, 12.5 / height], [50.5 / width, 30.5 / height]]])
    probs = torch.tensor([[0.9, 0.4]])
    logd = log_density(points, probs, (height, width), sigma=2.0)[0]
    assert divmod(logd.argmax().item(), width) == (12, 10)
    # the second point is a local maximum
    patch = logd[29:32, 49:52]
    assert patch.argmax().item() == 4


def test_saliency_map_matches_the_formula():
    points = torch.tensor([[[0.25, 0.5], [0.75, 0.1]]], dtype=torch.float64)
    probs = torch.tensor([[0.8, 0.3]], dtype=torch.float64)
    height, width, sigma = 10, 20, 2.5
    sal = saliency_map(points, probs, (height, width), sigma)[0]
    for i, j in [(0, 0), (5, 5), (1, 15), (9, 19)]:
        expected = sum(
            p
            * math.exp(-((j + 0.5 - x * width) ** 2 + (i + 0.5 - y * height) ** 2) / (2 * sigma**2))
            for (x, y), p in zip(points[0].tolist(), probs[0].tolist(), strict=True)
        )
        assert sal[i, j].item() == pytest.approx(expected)


def test_zero_probabilities_give_the_prior():
    size = (12, 16)
    logd = log_density(torch.rand(2, 5, 2), torch.zeros(2, 5), size)
    torch.testing.assert_close(logd.exp(), center_bias_prior(size).expand(2, *size))


def test_floor_and_custom_prior():
    size = (8, 8)
    points = torch.tensor([[[0.5, 0.5]]])
    uniform = torch.full(size, 1 / 64)
    logd = log_density(points, torch.ones(1, 1), size, sigma=0.5, floor_weight=0.2, prior=uniform)[
        0
    ]
    # far from the point only the floor remains
    assert logd[0, 0].exp().item() == pytest.approx(0.2 / 64, rel=1e-3)
    with pytest.raises(ValueError, match="floor_weight"):
        log_density(points, torch.ones(1, 1), size, floor_weight=0.0)


def test_center_bias_prior_is_a_centered_density():
    prior = center_bias_prior((9, 11), dtype=torch.float64)
    assert prior.sum().item() == pytest.approx(1.0)
    assert (prior > 0).all()
    assert divmod(prior.argmax().item(), 11) == (4, 5)


def test_fixation_points_in_pixels_sorted_by_probability():
    points = torch.tensor(
        [[[0.5, 0.5], [0.1, 0.2], [1.0, 0.0]], [[0.0, 1.0], [0.5, 0.25], [0.2, 0.2]]]
    )
    probs = torch.tensor([[0.2, 0.9, 0.5], [0.1, 0.3, 0.2]])
    result = fixation_points(points, probs, (100, 200))
    pixels, p = result[0]
    torch.testing.assert_close(p, torch.tensor([0.9, 0.5, 0.2]))
    torch.testing.assert_close(pixels, torch.tensor([[20.0, 20.0], [200.0, 0.0], [100.0, 50.0]]))
    pixels, p = result[1]
    torch.testing.assert_close(p, torch.tensor([0.3, 0.2, 0.1]))
    torch.testing.assert_close(pixels[0], torch.tensor([100.0, 25.0]))


def test_scanpath_reads_queries_in_order_until_the_first_improbable_one():
    points = torch.tensor([[[0.5, 0.5], [0.25, 0.75], [0.9, 0.1], [0.1, 0.1]]])
    probs = torch.tensor([[0.9, 0.6, 0.3, 0.95]])  # query 3 is probable, but after a stop
    ((pixels, p),) = scanpath_from_outputs(points, probs, (100, 200))
    torch.testing.assert_close(pixels, torch.tensor([[100.0, 50.0], [50.0, 75.0]]))
    torch.testing.assert_close(p, torch.tensor([0.9, 0.6]))
    ((pixels, _),) = scanpath_from_outputs(points, probs, (100, 200), threshold=0.2)
    assert len(pixels) == 4  # none below 0.2: every query


def test_scanpath_has_at_least_one_fixation_and_stays_inside_the_image():
    points = torch.tensor([[[1.0, 1.0], [0.5, 0.5]], [[0.0, 0.3], [0.5, 0.5]]])
    probs = torch.tensor([[0.1, 0.9], [0.7, 0.5]])
    (first, p_first), (second, _) = scanpath_from_outputs(points, probs, (30, 40))
    assert first.shape == (1, 2) and p_first.tolist() == pytest.approx([0.1])
    assert (first[:, 0] < 40).all() and (first[:, 1] < 30).all()  # a saturated sigmoid
    assert len(second) == 2  # 0.5 is not below the threshold
