"""Tests of salience.evaluation.scanpath_metrics: MultiMatch against multimatch-gaze 0.1.3 on OSIE
scanpaths, mean shift against scikit-learn, and ScanMatch, SequenceScore and the human averages on
small cases worked out by hand (the expected values are derived in the comments).
"""

from __future__ import annotations

import importlib
import itertools
import math
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from salience.data.dataset import Dataset, Scanpath, Stimulus
from salience.evaluation import scanpath_metrics as sm

OSIE_SCREEN = (800, 600)  # OSIE images filled the screen: (width, height)


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def multimatch_gaze() -> ModuleType:
    return importlib.import_module("multimatch_gaze.multimatch_gaze")


@pytest.fixture(scope="module")
def osie_val(osie: Dataset) -> Dataset:
    return osie.split("val")


def _record(fixations: np.ndarray) -> np.recarray:
    """multimatch-gaze's input: a record array of start_x, start_y, duration (seconds)."""
    return np.rec.fromarrays(fixations.T[:3], names="start_x,start_y,duration")


def _as_array(scanpath: Scanpath) -> np.ndarray:
    return np.column_stack([scanpath.x, scanpath.y, scanpath.duration])


def _stimulus(*scanpaths: Scanpath, size: tuple[int, int] = (600, 800)) -> Stimulus:
    return Stimulus("toy", Path("toy.jpg"), size, tuple(scanpaths))


def _path(observer: str, points: list[tuple[float, float]], duration: float = 0.2) -> Scanpath:
    xy = np.asarray(points, dtype=np.float64)
    return Scanpath(observer, xy[:, 0], xy[:, 1], np.full(len(xy), duration))


def _random_scanpaths(
    rng: np.random.Generator, like: tuple[Scanpath, ...], size: tuple[int, int]
) -> list[Scanpath]:
    """Uniformly random fixations with the lengths and durations of ``like``."""
    height, width = size
    return [
        Scanpath(
            f"random{k}", rng.uniform(0, width, len(p)), rng.uniform(0, height, len(p)), p.duration
        )
        for k, p in enumerate(like)
    ]


def _nw_brute_force(score: np.ndarray, gap: float) -> float:
    """Textbook Needleman-Wunsch, cell by cell."""
    n1, n2 = score.shape
    f = np.zeros((n1 + 1, n2 + 1))
    f[:, 0] = gap * np.arange(n1 + 1)
    f[0, :] = gap * np.arange(n2 + 1)
    for i in range(1, n1 + 1):
        for j in range(1, n2 + 1):
            f[i, j] = max(
                f[i - 1, j - 1] + score[i - 1, j - 1], f[i - 1, j] + gap, f[i, j - 1] + gap
            )
    return float(f[n1, n2])


# --------------------------------------------------------------------------- MultiMatch


def _osie_pairs(val: Dataset, n_pairs: int) -> list[tuple[Scanpath, Scanpath]]:
    """Consecutive observers with at least 3 fixations on the first validation images."""
    pairs = []
    for stimulus in val:
        usable = [p for p in stimulus.scanpaths if len(p) >= 3]
        pairs += list(itertools.pairwise(usable))
        if len(pairs) >= n_pairs:
            return pairs[:n_pairs]
    raise AssertionError("not enough OSIE scanpaths")


@pytest.mark.parametrize("simplify", [False, True])
def test_multimatch_matches_multimatch_gaze_on_osie(osie_val, multimatch_gaze, simplify):
    width, height = OSIE_SCREEN
    amplitude = 0.1 * math.hypot(width, height)
    compared, lone = 0, 0
    for a, b in _osie_pairs(osie_val, 30):
        ours = sm.multimatch(a, b, OSIE_SCREEN, simplify=simplify)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ref = multimatch_gaze.docomparison(
                    _record(_as_array(a)),
                    _record(_as_array(b)),
                    screensize=[width, height],
                    grouping=simplify,
                    TDir=45.0,
                    TDur=0.3,
                    TAmp=amplitude,
                )
        except IndexError:  # the package fails on a path simplified to one saccade (see below)
            lone += 1
            continue
        np.testing.assert_allclose(
            [ours[k] for k in sm.MULTIMATCH_DIMENSIONS], ref, rtol=0, atol=1e-9
        )
        compared += 1
    assert compared >= 25 and lone <= 5


def test_multimatch_hand_computed():
    # Both scanpaths make the saccades (300, 0) then (0, 300); b starts 60 px lower and its
    # fixations last 0.4 s instead of 0.2 s. Aligned pairs: (0, 0), (1, 1). Screen diagonal 1000.
    a = np.array([[100, 100, 0.2], [400, 100, 0.2], [400, 400, 0.2]])
    b = a + np.array([0, 60, 0.2])
    result = sm.multimatch(a, b, OSIE_SCREEN, simplify=False)
    expected = {
        "vector": 1,
        "direction": 1,
        "length": 1,
        "position": 1 - 60 / 1000,
        "duration": 0.5,
    }
    assert result == pytest.approx(expected, abs=1e-12)


def test_multimatch_simplification_by_hand(multimatch_gaze):
    # a: (50, 0), (50, 0), (0, 300) with 0.1 s fixations; b: (100, 0), (0, 300) from the same
    # start. Simplified, a's two collinear saccades join (angle 0 < 45, middle fixation
    # 0.1 < 0.3 s), so a becomes b. Without simplification the best alignment is a0-b0, a1-b0,
    # a2-b1 with vector differences 50, 50, 0 (median 50: vector 1 - 50/2000) and length
    # differences 50, 50, 0 (length 1 - 50/1000); start positions differ by 0, 50, 0 (median 0).
    a = np.array([[100, 100, 0.1], [150, 100, 0.1], [200, 100, 0.1], [200, 400, 0.1]])
    b = np.array([[100, 100, 0.1], [200, 100, 0.1], [200, 400, 0.1]])
    simplified = sm.multimatch(a, b, OSIE_SCREEN)
    assert simplified == pytest.approx(dict.fromkeys(sm.MULTIMATCH_DIMENSIONS, 1.0), abs=1e-12)
    raw = sm.multimatch(a, b, OSIE_SCREEN, simplify=False)
    expected = {"vector": 0.975, "direction": 1, "length": 0.95, "position": 1, "duration": 1}
    assert raw == pytest.approx(expected, abs=1e-12)
    for grouping, ours in ((True, simplified), (False, raw)):
        ref = multimatch_gaze.docomparison(
            _record(a), _record(b), [800, 600], grouping=grouping, TDir=45.0, TDur=0.3, TAmp=100.0
        )
        assert [ours[k] for k in sm.MULTIMATCH_DIMENSIONS] == pytest.approx(ref, abs=1e-12)


def test_multimatch_lone_saccade_where_the_package_fails(multimatch_gaze):
    # Two short collinear saccades join into one 60 px saccade; the package's amplitude pass
    # then indexes a predecessor that does not exist. We keep the lone saccade.
    a = np.array([[100, 100, 0.1], [130, 100, 0.1], [160, 100, 0.1]])
    b = np.array([[100, 100, 0.2], [400, 100, 0.2], [400, 400, 0.2]])
    with pytest.raises(IndexError):
        multimatch_gaze.docomparison(
            _record(a), _record(b), [800, 600], grouping=True, TDir=45.0, TDur=0.3, TAmp=100.0
        )
    assert sm.multimatch(a, a, OSIE_SCREEN) == pytest.approx(
        dict.fromkeys(sm.MULTIMATCH_DIMENSIONS, 1.0)
    )
    assert all(0 <= v <= 1 for v in sm.multimatch(a, b, OSIE_SCREEN).values())


def test_multimatch_inputs_and_bad_input():
    a = _path("1", [(100, 100), (400, 100), (400, 400), (200, 300)])
    b = _path("2", [(120, 90), (380, 150), (420, 420)], duration=0.3)
    assert sm.multimatch(a, b, OSIE_SCREEN) == sm.multimatch(
        _as_array(a), _as_array(b), OSIE_SCREEN
    )
    # Too short: NaN on every dimension, also for an empty scanpath.
    for short in (_as_array(a)[:2], np.zeros((0, 3)), []):
        result = sm.multimatch(short, b, OSIE_SCREEN)
        assert set(result) == set(sm.MULTIMATCH_DIMENSIONS)
        assert all(math.isnan(v) for v in result.values())
    nan_x = _as_array(a)
    nan_x[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sm.multimatch(nan_x, b, OSIE_SCREEN)
    with pytest.raises(ValueError, match="outside"):
        sm.multimatch(_as_array(a) + np.array([500, 0, 0]), b, OSIE_SCREEN)
    with pytest.raises(ValueError, match="outside"):  # (height, width) passed by mistake
        sm.multimatch(a, b, (300, 800))
    with pytest.raises(ValueError, match="shape"):
        sm.multimatch(np.zeros((4, 4)), b, OSIE_SCREEN)
    with pytest.raises(ValueError, match="durations"):
        sm.multimatch(_as_array(a) * [1, 1, -1], b, OSIE_SCREEN)


def test_multimatch_unknown_durations_only_affect_duration():
    a = _path("1", [(100, 100), (400, 100), (400, 400), (200, 300)])
    b = _path("2", [(120, 90), (380, 150), (420, 420)], duration=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unknown = sm.multimatch(_as_array(a)[:, :2], b, OSIE_SCREEN, simplify=False)
    known = sm.multimatch(a, b, OSIE_SCREEN, simplify=False)
    assert math.isnan(unknown.pop("duration"))
    known.pop("duration")
    assert unknown == known


# --------------------------------------------------------------------------- alignment core


def test_needleman_wunsch_matches_brute_force():
    rng = np.random.default_rng(0)
    for n1, n2 in [(1, 1), (1, 5), (4, 1), (7, 9), (12, 5)]:
        score = rng.normal(size=(n1, n2))
        for gap in (0.0, -0.3, -2.0):
            assert sm._needleman_wunsch(score, gap) == pytest.approx(_nw_brute_force(score, gap))


# --------------------------------------------------------------------------- ScanMatch

# A 100 x 300 image in a 1 x 3 grid: x in [0, 100) is cell 0, [100, 200) cell 1, [200, 300)
# cell 2. With threshold 2, substitution scores are 2 - |cell difference|: 2, 1, 0.
TINY = (100, 300)
CELLS = {0: (50.0, 50.0), 1: (150.0, 50.0), 2: (250.0, 50.0)}


def _cells(*cells: int, durations: tuple[float, ...] | None = None) -> np.ndarray:
    xy = np.array([CELLS[c] for c in cells])
    d = np.full(len(cells), 0.2) if durations is None else np.asarray(durations)
    return np.column_stack([xy, d])


def test_scanmatch_hand_worked_alignment():
    a, b = _cells(0, 1, 2), _cells(1, 2, 0)
    kw = {"grid": (1, 3), "threshold": 2.0, "temporal_bin": None}
    # gap 0: best is a1-b0 (2) + a2-b1 (2) with a0 and b2 unmatched: 4 / (2 * 3).
    assert sm.scanmatch(a, b, TINY, **kw) == pytest.approx(4 / 6)
    # gap -1: that alignment pays two gaps (4 - 2), tied with a0-b0, a1-b1, a2-b2 (1 + 1 + 0).
    assert sm.scanmatch(a, b, TINY, gap=-1.0, **kw) == pytest.approx(2 / 6)
    assert sm.scanmatch(a, a, TINY, **kw) == pytest.approx(1.0)
    assert sm.scanmatch(b, a, TINY, **kw) == sm.scanmatch(a, b, TINY, **kw)


def test_scanmatch_temporal_binning_by_hand():
    kw = {"grid": (1, 3), "threshold": 2.0, "temporal_bin": 0.05}
    # a: cell 0 for 0.1 s, cell 1 for 0.05 s -> 0 0 1; b: cell 0 for 0.15 s -> 0 0 0.
    # Aligned one to one: 2 + 2 + 1 = 5 of 2 * 3.
    a = _cells(0, 1, durations=(0.1, 0.05))
    b = _cells(0, durations=(0.15,))
    assert sm.scanmatch(a, b, TINY, **kw) == pytest.approx(5 / 6)
    # Without binning: 0 1 against 0 -> 2 of 2 * 2.
    assert sm.scanmatch(a, b, TINY, **{**kw, "temporal_bin": None}) == pytest.approx(0.5)
    # Durations round half away from zero (0.025 s is one bin); shorter fixations drop out.
    assert sm.scanmatch(_cells(0, durations=(0.025,)), _cells(0), TINY, **kw) == pytest.approx(
        1 / 4
    )
    assert math.isnan(sm.scanmatch(_cells(0, durations=(0.02,)), b, TINY, **kw))
    with pytest.raises(ValueError, match="unknown"):
        sm.scanmatch(a[:, :2], b, TINY, **kw)
    assert sm.scanmatch(a[:, :2], b, TINY, **{**kw, "temporal_bin": None}) == pytest.approx(0.5)


def test_scanmatch_threshold_by_hand():
    # Saccade amplitudes 100 and 300 px: std (n - 1) = 141.42; cells are 1200 / 12 = 100 wide.
    paths = [_path("1", [(0, 0), (100, 0)]), _path("2", [(0, 0), (0, 300)])]
    assert sm.scanmatch_threshold(paths, (800, 1200)) == pytest.approx(2 * math.sqrt(2e4) / 100)
    with pytest.raises(ValueError, match="2 saccades"):
        sm.scanmatch_threshold(paths[:1], (800, 1200))
    # The default threshold of a pair comes from its own saccades; none there -> NaN.
    assert math.isnan(sm.scanmatch(_cells(0), _cells(0), TINY, grid=(1, 3)))
    a, b = paths
    default = sm.scanmatch(a, b, (800, 1200), temporal_bin=None)
    given = sm.scanmatch(a, b, (800, 1200), temporal_bin=None, threshold=2 * math.sqrt(2e4) / 100)
    assert default == given


def test_scanmatch_range_symmetry_and_bad_input():
    rng = np.random.default_rng(1)
    size = (600, 800)
    for _ in range(20):
        a, b = (
            np.column_stack(
                [rng.uniform(0, 800, n), rng.uniform(0, 600, n), rng.uniform(0.05, 0.6, n)]
            )
            for n in rng.integers(1, 12, size=2)
        )
        ab = sm.scanmatch(a, b, size, threshold=3.5)
        assert 0 <= ab <= 1
        assert ab == pytest.approx(sm.scanmatch(b, a, size, threshold=3.5))
        assert sm.scanmatch(a, a, size, threshold=3.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside"):  # (width, height) passed by mistake
        sm.scanmatch(np.array([[700.0, 100, 0.2]]), np.array([[10.0, 10, 0.2]]), (800, 600))
    with pytest.raises(ValueError, match="threshold"):
        sm.scanmatch(_cells(0), _cells(1), TINY, threshold=0.0)
    with pytest.raises(ValueError, match="gap"):
        sm.scanmatch(_cells(0), _cells(1), TINY, threshold=1.0, gap=1.0)
    assert math.isnan(sm.scanmatch(np.zeros((0, 3)), _cells(1), TINY, threshold=1.0))


# --------------------------------------------------------------------------- SequenceScore


def test_sequence_score_by_hand():
    a, b = _cells(0, 1, 2), _cells(1, 2, 0)
    # Grid labels 0 1 2 vs 1 2 0: longest common subsequence "1 2" -> 2 / 3.
    assert sm.sequence_score(a, b, image_size=TINY, grid=(1, 3)) == pytest.approx(2 / 3)
    assert sm.sequence_score(b, a, image_size=TINY, grid=(1, 3)) == pytest.approx(2 / 3)
    assert sm.sequence_score(a, a, image_size=TINY, grid=(1, 3)) == 1.0
    # Centers at x = 60 (L) and 260 (R): a reads L L R, b reads L R L; common: L R -> 2 / 3.
    centers = [(60.0, 50.0), (260.0, 50.0)]
    assert sm.sequence_score(a, b, centers=centers) == pytest.approx(2 / 3)
    # Cut to the first two fixations: L L vs L R -> 1 / 2.
    assert sm.sequence_score(a, b, centers=centers, max_length=2) == pytest.approx(1 / 2)
    # Lengths differ: 0 1 2 vs 2 -> 1 / 3; empty -> NaN.
    assert sm.sequence_score(a, _cells(2), image_size=TINY, grid=(1, 3)) == pytest.approx(1 / 3)
    assert math.isnan(sm.sequence_score(a, np.zeros((0, 3)), image_size=TINY, grid=(1, 3)))
    with pytest.raises(ValueError, match="centers or image_size"):
        sm.sequence_score(a, b)
    with pytest.raises(ValueError, match="outside"):
        sm.sequence_score(a, b, image_size=(300, 100))


def test_sequence_score_range_and_symmetry():
    rng = np.random.default_rng(2)
    for _ in range(20):
        a, b = (
            np.column_stack([rng.uniform(0, 800, n), rng.uniform(0, 600, n)])
            for n in rng.integers(1, 15, size=2)
        )
        ab = sm.sequence_score(a, b, image_size=(600, 800))
        assert 0 <= ab <= 1
        assert ab == sm.sequence_score(b, a, image_size=(600, 800))


def test_cluster_fixations_finds_separated_groups():
    rng = np.random.default_rng(3)
    truth = np.array([[100.0, 100.0], [600.0, 150.0], [400.0, 500.0]])
    paths = []
    for _ in range(12):
        order = rng.permutation(np.repeat(np.arange(3), 3))
        xy = truth[order] + rng.normal(0, 10, size=(len(order), 2))
        paths.append(np.column_stack([xy, np.full(len(order), 0.2)]))
    centers = sm.cluster_fixations(paths)
    assert len(centers) == 3
    nearest = np.linalg.norm(centers[:, None] - truth[None], axis=-1).min(axis=0)
    assert nearest.max() < 10
    with pytest.raises(ValueError, match="no fixations"):
        sm.cluster_fixations([])
    # Points exactly one bandwidth apart are neighbours (as in scikit-learn): 0 and 10 merge
    # at their mean 5; 100 stays alone.
    line = np.array([[0.0, 0.0, 0.2], [10.0, 0.0, 0.2], [100.0, 0.0, 0.2]])
    np.testing.assert_allclose(sm.cluster_fixations([line], bandwidth=10), [[5, 0], [100, 0]])


def test_cluster_fixations_matches_scikit_learn(osie_val):
    cluster = importlib.import_module("sklearn.cluster")
    # Mean shift at fixed bandwidths, four images.
    for stimulus in list(osie_val)[:4]:
        points = np.column_stack(stimulus.fixations())
        base = cluster.estimate_bandwidth(points)
        assert sm._bandwidth(points, 0.3) == pytest.approx(base, rel=1e-12)
        for factor in (0.5, 1.0):
            ref = cluster.MeanShift(bandwidth=factor * base).fit(points).cluster_centers_
            ours = sm.cluster_fixations(stimulus, bandwidth=factor * base)
            np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)
    # The bandwidth selection of [C21]'s preprocessing, with scikit-learn, on one image.
    stimulus = osie_val[0]
    points = np.column_stack(stimulus.fixations())
    base = cluster.estimate_bandwidth(points)
    best, best_rate = None, -np.inf
    for factor in sm.BANDWIDTH_FACTORS:
        model = cluster.MeanShift(bandwidth=factor * base).fit(points)
        between = within = 0
        for p in stimulus.scanpaths:
            labels = model.predict(np.column_stack([p.x, p.y]))
            same = int((labels[1:] == labels[:-1]).sum())
            within += same
            between += len(labels) - 1 - same
        rate = (between - within) / len(model.cluster_centers_)
        if rate > best_rate:
            best, best_rate = model, rate
    np.testing.assert_allclose(sm.cluster_fixations(stimulus), best.cluster_centers_, atol=1e-9)


# --------------------------------------------------------------------------- against humans


def test_human_baseline_averages_ordered_pairs():
    paths = [_path(str(k), [(10.0 * k, 10.0)]) for k in (1, 2, 3)]
    stimulus = _stimulus(*paths)

    def code(a: Scanpath, b: Scanpath) -> float:
        return 10.0 * float(a.observer) + float(b.observer)

    # Ordered pairs (i, j), i != j, of 1..3: sum of 10 i + j = 10 * 12 + 12 = 132 over 6.
    assert sm.human_baseline(stimulus, code) == pytest.approx(22.0)

    def no_threes(a: Scanpath, b: Scanpath) -> float:
        return math.nan if "3" in (a.observer, b.observer) else code(a, b)

    assert sm.human_baseline(stimulus, no_threes) == pytest.approx((12 + 21) / 2)
    assert math.isnan(sm.human_baseline(_stimulus(paths[0]), code))
    assert all(math.isnan(v) for v in sm.human_baseline(_stimulus(), "multimatch").values())
    # Each prediction against each human: predictions 4 and 5 against humans 1..3.
    predictions = [_path(str(k), [(10.0 * k, 10.0)]) for k in (4, 5)]
    assert sm.score_against_humans(predictions, stimulus, code) == pytest.approx(45 + 2)
    assert sm.score_against_humans(predictions[0], stimulus, code) == pytest.approx(40 + 2)
    with pytest.raises(ValueError, match="unknown metric"):
        sm.human_baseline(stimulus, "levenshtein")


def test_named_metrics_take_their_arguments_from_the_stimulus(osie_val):
    stimulus = osie_val[0]
    threshold = sm.scanmatch_threshold(stimulus.scanpaths, stimulus.size)
    a, b = stimulus.scanpaths[:2]
    expected = np.mean(
        [
            sm.scanmatch(a, b, stimulus.size, threshold=threshold),
            sm.scanmatch(b, a, stimulus.size, threshold=threshold),
        ]
    )
    pair = _stimulus(a, b, size=stimulus.size)
    assert sm.human_baseline(pair, "scanmatch", threshold=threshold) == pytest.approx(expected)
    centers = sm.cluster_fixations(stimulus)
    assert sm.score_against_humans(a, stimulus, "sequence_score") == pytest.approx(
        np.mean([sm.sequence_score(a, h, centers=centers) for h in stimulus.scanpaths])
    )


def test_human_baseline_on_osie_beats_random_scanpaths(osie_val):
    stimulus = osie_val[0]
    rng = np.random.default_rng(4)
    random_paths = _random_scanpaths(rng, stimulus.scanpaths, stimulus.size)
    human = sm.human_baseline(stimulus, "multimatch")
    chance = sm.score_against_humans(random_paths, stimulus, "multimatch")
    assert set(human) == set(sm.MULTIMATCH_DIMENSIONS)
    assert all(0 <= v <= 1 for v in (*human.values(), *chance.values()))
    assert human["position"] > chance["position"] + 0.03
    for metric in ("scanmatch", "sequence_score"):
        human_score = sm.human_baseline(stimulus, metric)
        chance_score = sm.score_against_humans(random_paths, stimulus, metric)
        assert 0 <= chance_score < human_score <= 1, metric
