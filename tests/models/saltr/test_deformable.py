"""Multi-scale deformable attention: the grid_sample implementation against an explicit loop."""

import importlib.util
import math

import pytest
import torch

from salience.models.saltr import SaltrConfig
from salience.models.saltr.deformable import (
    DeformableTransformer,
    MultiScaleDeformableAttention,
    encoder_reference_points,
    ms_deform_attn,
)


def _bilinear(feature: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Sample a (C, H, W) map at normalized (x, y); cell centers at (j + 0.5) / W, zeros outside."""
    _, h, w = feature.shape
    px, py = x * w - 0.5, y * h - 0.5  # continuous cell-index coordinates
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(feature.shape[0], dtype=feature.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - abs(px - xi)) * (1 - abs(py - yi))
            if 0 <= xi < w and 0 <= yi < h:
                out += weight * feature[:, yi, xi]
    return out


def _naive_ms_deform_attn(value, shapes, locations, weights):
    b, _, nh, dh = value.shape
    _, q, _, _, n_points, _ = locations.shape
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(b, q, nh, dh, dtype=value.dtype)
    for bi in range(b):
        for qi in range(q):
            for hi in range(nh):
                for lvl, (h, w) in enumerate(shapes):
                    feature = value[bi, starts[lvl] : starts[lvl + 1], hi].T.reshape(dh, h, w)
                    for p in range(n_points):
                        x, y = locations[bi, qi, hi, lvl, p].tolist()
                        out[bi, qi, hi] += weights[bi, qi, hi, lvl, p] * _bilinear(feature, x, y)
    return out.view(b, q, nh * dh)


def _random_inputs(
    seed=0, b=2, q=3, nh=2, dh=4, shapes=((5, 7), (3, 4), (1, 2)), n_points=3, kinks=True
):
    g = torch.Generator().manual_seed(seed)
    s = sum(h * w for h, w in shapes)
    value = torch.randn(b, s, nh, dh, generator=g, dtype=torch.float64)
    # locations reach outside [0, 1]; with kinks, some sit exactly on a cell center and on the
    # image border, where bilinear sampling is not differentiable
    locations = torch.rand(b, q, nh, len(shapes), n_points, 2, generator=g, dtype=torch.float64)
    locations = locations * 1.4 - 0.2
    weights = torch.rand(b, q, nh, len(shapes), n_points, generator=g, dtype=torch.float64)
    if not kinks:
        return value, list(shapes), locations, weights
    h, w = shapes[0]
    locations[0, 0, 0, 0, 0] = torch.tensor([0.5 / w, 0.5 / h], dtype=torch.float64)
    locations[0, 0, 0, 0, -1] = torch.tensor([0.0, 1.0], dtype=torch.float64)
    return value, list(shapes), locations, weights


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_naive_bilinear_loop(seed):
    value, shapes, locations, weights = _random_inputs(seed)
    expected = _naive_ms_deform_attn(value, shapes, locations, weights)
    torch.testing.assert_close(ms_deform_attn(value, shapes, locations, weights), expected)


def test_sampling_a_cell_center_returns_that_cell():
    value, shapes, locations, weights = _random_inputs(b=1, q=1, nh=1, shapes=((4, 6),), n_points=1)
    i, j = 2, 5
    locations[...] = torch.tensor([(j + 0.5) / 6, (i + 0.5) / 4], dtype=torch.float64)
    weights[...] = 1.0
    out = ms_deform_attn(value, shapes, locations, weights)
    torch.testing.assert_close(out[0, 0], value[0, i * 6 + j, 0])


def test_gradcheck():
    value, shapes, locations, weights = _random_inputs(
        b=1, q=2, nh=2, dh=2, shapes=((3, 4), (2, 2)), n_points=2, kinks=False
    )
    inputs = tuple(t.requires_grad_() for t in (value, locations, weights))
    assert torch.autograd.gradcheck(lambda v, loc, w: ms_deform_attn(v, shapes, loc, w), inputs)


def test_module_shapes_and_initial_offsets():
    attn = MultiScaleDeformableAttention(d_model=16, nheads=4, n_levels=2, n_points=3)
    shapes = [(6, 8), (3, 4)]
    query = torch.randn(2, 5, 16)
    reference = torch.rand(2, 5, 2, 2)
    out = attn(query, reference, torch.randn(2, 60, 16), shapes)
    assert out.shape == (2, 5, 16)
    bias = attn.sampling_offsets.bias.view(4, 2, 3, 2)
    # head 0 looks right, point k at k cells; every level starts alike
    torch.testing.assert_close(bias[0, 0], torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]))
    torch.testing.assert_close(bias[:, 0], bias[:, 1])
    assert bias.view(4, -1).abs().amax(1).tolist() == [3.0] * 4


def test_wrong_number_of_levels_raises():
    attn = MultiScaleDeformableAttention(d_model=8, nheads=2, n_levels=2, n_points=1)
    with pytest.raises(ValueError, match="2 feature levels"):
        attn(torch.randn(1, 2, 8), torch.rand(1, 2, 2, 2), torch.randn(1, 4, 8), [(2, 2)])


def test_encoder_reference_points_are_cell_centers():
    ref = encoder_reference_points([(2, 3), (1, 1)])
    expected = torch.tensor(
        [
            [1 / 6, 0.25],
            [0.5, 0.25],
            [5 / 6, 0.25],
            [1 / 6, 0.75],
            [0.5, 0.75],
            [5 / 6, 0.75],
            [0.5, 0.5],
        ]
    )
    torch.testing.assert_close(ref, expected)


def test_transformer_outputs_every_decoder_layer():
    config = SaltrConfig(
        attention="deformable",
        d_model=32,
        nheads=2,
        enc_layers=1,
        dec_layers=3,
        dim_feedforward=32,
        num_queries=5,
        n_levels=2,
        n_points=2,
    )
    transformer = DeformableTransformer(config)
    hs, reference = transformer([torch.randn(2, 32, 6, 8), torch.randn(2, 32, 3, 4)])
    assert hs.shape == (3, 2, 5, 32)
    assert reference.shape == (2, 5, 2)
    assert ((reference > 0) & (reference < 1)).all()


@pytest.mark.skipif(
    importlib.util.find_spec("mmcv") is not None, reason="mmcv is installed: the kernel may exist"
)
def test_cuda_kernel_flag_without_kernel_raises_with_install_hint():
    with pytest.raises(ImportError, match="pip install mmcv"):
        MultiScaleDeformableAttention(
            d_model=8, nheads=2, n_levels=1, n_points=1, use_cuda_kernel=True
        )
