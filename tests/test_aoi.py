"""Attention per region: shares, first-fixation probabilities, reports, comparisons."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from salience.analysis.aoi import (
    analyze,
    attention_shares,
    compare,
    first_fixation_probability,
    resample_density,
    wilson_interval,
)
from salience.analysis.regions import Region, RegionError, parse_region
from salience.models.sampler import Scanpaths, ScanpathSampler

SAMPLER = ScanpathSampler(
    amplitude_edges=tuple(np.arange(11.0)),
    amplitude_probs=(0.1,) * 10,
    start_edges=(0.0, 2.0, 4.0, 6.0),
    start_probs=(0.2, 0.5, 0.3),
    first_duration=(math.log(0.15), 0.5),
    duration=(math.log(0.2), 0.5),
    ior_sigma_deg=2.0,
    ior_strength=0.5,
    fitted_on="hand-made",
)


def _density(shape=(300, 400), seed=0) -> np.ndarray:
    density = np.random.default_rng(seed).random(shape) ** 3
    return density / density.sum()


def test_wilson_interval_against_hand_computed_values() -> None:
    # 8 of 10, z = 1.96: center (0.8 + 0.19208) / 1.38416 = 0.716738,
    # half 1.96 / 1.38416 * sqrt(0.016 + 0.009604) = 0.226581; published: [0.4902, 0.9433]
    low, high = wilson_interval(8, 10, z=1.96)
    assert low == pytest.approx(0.716738 - 0.226581, abs=2e-6)
    assert high == pytest.approx(0.716738 + 0.226581, abs=2e-6)
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # default z
    # 0 of 20: [0, z^2 / (n + z^2)] = [0, 3.8416 / 23.8416]
    assert wilson_interval(0, 20, z=1.96) == pytest.approx((0.0, 3.8416 / 23.8416))
    assert wilson_interval(20, 20, z=1.96) == pytest.approx((20 / 23.8416, 1.0))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


def test_shares_of_a_partition_sum_to_one() -> None:
    density = _density()
    quarters = [
        parse_region(f"q{i}{j}:{i / 2},{j / 2},0.5,0.5") for i in range(2) for j in range(2)
    ]
    shares = attention_shares(density, quarters)
    assert sum(s.share for s in shares) == pytest.approx(1.0, abs=1e-12)
    assert sum(s.area_fraction for s in shares) == pytest.approx(1.0)
    for s, region in zip(shares, quarters, strict=True):
        mask = region.mask(density.shape)
        assert s.share == pytest.approx(density[mask].sum())
        assert s.area_fraction == 0.25
        assert s.lift == pytest.approx(s.share / 0.25)


def test_shares_rescale_an_unnormalized_density() -> None:
    density = np.ones((10, 20))
    (share,) = attention_shares(density * 7, [Region.rect("half", 0, 0, 10, 10)])
    assert (share.share, share.area_fraction, share.lift) == pytest.approx((0.5, 0.5, 1.0))


def test_first_fixation_probability_on_hand_made_scanpaths() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[0:5, 0:5] = True
    x = np.array([[1.5, 8.0, 8.0], [8.0, 2.0, 1.0], [8.0, 8.0, 4.99], [9.0, 9.0, 9.0]])
    y = np.array([[1.0, 8.0, 8.0], [8.0, 2.0, 8.0], [8.0, 8.0, 4.99], [9.0, 9.0, 9.0]])
    paths = Scanpaths(x, y, np.ones_like(x))
    (k3,) = first_fixation_probability(paths, [mask], 3)
    assert (k3.hits, k3.n, k3.probability) == (3, 4, 0.75)
    assert k3.mean_first_index == pytest.approx((1 + 2 + 3) / 3)
    assert (k3.low, k3.high) == pytest.approx(wilson_interval(3, 4))
    (k1,) = first_fixation_probability(paths, [mask], 1)
    assert (k1.hits, k1.mean_first_index) == (1, 1.0)
    (none,) = first_fixation_probability(paths, [np.zeros((10, 10), dtype=bool)], 3)
    assert (none.hits, none.mean_first_index, none.low) == (0, None, 0.0)
    with pytest.raises(ValueError, match="k must lie in"):
        first_fixation_probability(paths, [mask], 4)


def test_analyze_finds_the_region_that_holds_the_mass() -> None:
    density = np.full((300, 400), 1e-9)
    density[100:150, 100:200] = 1.0
    regions = [Region.rect("hot", 100, 100, 100, 50), Region.rect("cold", 300, 0, 100, 100)]
    report = analyze(density, regions, SAMPLER, ppd=12.0, k=3, n=500, seed=1)
    hot, cold = report.rows
    assert hot.share == pytest.approx(1.0, abs=1e-4) and hot.lift == pytest.approx(24.0, rel=1e-3)
    assert hot.p_first_k == 1.0 and hot.mean_first_index == 1.0
    assert cold.p_first_k == 0.0 and cold.mean_first_index is None
    assert (report.k, report.n, report.seed, report.image_size) == (3, 500, 1, (300, 400))
    again = analyze(density, regions, SAMPLER, ppd=12.0, k=3, n=500, seed=1)
    assert again == report


def test_analyze_rejects_bad_regions() -> None:
    density = _density()
    twice = [parse_region("a:1,1,5,5"), parse_region("a:10,10,5,5")]
    with pytest.raises(RegionError, match="'a': duplicate name"):
        analyze(density, twice, SAMPLER)
    with pytest.raises(RegionError, match=r"'out'.*covers no pixel"):
        analyze(density, [parse_region("out:1000,10,5,5")], SAMPLER)


def _regions() -> list[Region]:
    return [
        parse_region("logo:0.1,0.1,0.3,0.2"),
        Region("cta", "polygon", ((0.5, 0.6), (0.9, 0.6), (0.7, 0.95)), normalized=True),
        parse_region("nothing:0.0,0.9,0.05,0.1"),
    ]


def test_compare_with_swapped_inputs_negates_every_delta() -> None:
    a, b = _density(seed=1), _density(seed=2)
    b[:, :50] = 0.0  # B never looks at the left strip
    b /= b.sum()
    regions = _regions()
    ab = compare(a, b, regions, SAMPLER, k=3, n=400, seed=5)
    ba = compare(b, a, regions, SAMPLER, k=3, n=400, seed=5)
    np.testing.assert_array_equal(ab.difference, -ba.difference)
    np.testing.assert_allclose(ab.difference, b - a)
    for row_ab, row_ba in zip(ab.deltas(), ba.deltas(), strict=True):
        for key, value in row_ab.items():
            if key.endswith("_delta") and value is not None:
                assert value == -row_ba[key]
            elif key.endswith("_a"):
                assert value == row_ba[key[:-2] + "_b"]
    assert ab.a == analyze(a, regions, SAMPLER, k=3, n=400, seed=5)


def test_compare_images_of_different_sizes() -> None:
    a, b = _density((300, 400), seed=1), _density((150, 500), seed=2)
    with pytest.raises(RegionError, match=r"differ in size \(400x300 vs 500x150\).*\['px'\]"):
        compare(a, b, [Region.rect("px", 0, 0, 10, 10)], SAMPLER)
    report = compare(a, b, _regions(), SAMPLER, n=200)
    assert report.difference.shape == (300, 500)
    assert report.difference.sum() == pytest.approx(0.0, abs=1e-12)
    assert report.b.image_size == (150, 500)


def test_resample_density_preserves_mass() -> None:
    density = _density((60, 90))
    down = resample_density(density, (30, 45))
    np.testing.assert_allclose(down, density.reshape(30, 2, 45, 2).sum(axis=(1, 3)), atol=1e-15)
    up = resample_density(density, (120, 270))
    np.testing.assert_allclose(up.reshape(60, 2, 90, 3).sum(axis=(1, 3)), density, atol=1e-15)
    odd = resample_density(density, (37, 101))
    assert odd.sum() == pytest.approx(1.0) and (odd >= 0).all()
    # a third of the width holds a third of the mass of a column-uniform density
    assert resample_density(np.ones((5, 7)), (4, 3))[:, 0].sum() == pytest.approx(1 / 3)


def _read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _cell(value: str) -> float | None:
    return None if value == "" else float(value)


def test_report_json_and_csv_round_trip(tmp_path) -> None:
    density = _density()
    regions = [*_regions(), parse_region("far:0.95,0.0,0.05,0.05")]
    density[:, 370:] = 0.0  # no mass and no fixation in "far": None for its first index
    report = analyze(density, regions, SAMPLER, n=300)
    json_path, csv_path = tmp_path / "out" / "aoi.json", tmp_path / "out" / "aoi.csv"
    report.write(json_path, csv_path)
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["aoi.csv", "aoi.json"]
    data = json.loads(json_path.read_text())
    assert data == json.loads(report.to_json())
    assert data["image_size"] == [300, 400] and data["sampler"] == "hand-made"
    rows = _read_csv(csv_path.read_text())
    assert [r["region"] for r in rows] == [r.name for r in regions]
    for row, json_row, original in zip(rows, data["regions"], report.rows, strict=True):
        for key, value in json_row.items():
            assert value == getattr(original, key)
            if key != "region":
                assert _cell(row[key]) == value  # floats survive the text exactly
    assert report.rows[-1].mean_first_index is None and rows[-1]["mean_first_index"] == ""


def test_comparison_json_and_csv_round_trip(tmp_path) -> None:
    report = compare(_density(seed=1), _density(seed=2), _regions(), SAMPLER, n=200)
    report.write(tmp_path / "cmp.json", tmp_path / "cmp.csv")
    data = json.loads((tmp_path / "cmp.json").read_text())
    assert data["a"] == report.a.to_dict() and data["difference_size"] == [300, 400]
    rows = _read_csv((tmp_path / "cmp.csv").read_text())
    for row, expected in zip(rows, report.deltas(), strict=True):
        assert row["region"] == expected["region"]
        for key, value in expected.items():
            if key != "region":
                assert _cell(row[key]) == value
    assert data["regions"] == report.deltas()
