"""SUM's blocks: the four-way cross scan, SS2D, the (conditional) VSS blocks, resampling."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from salience.data.conditions import TOKEN_SLOTS, Condition
from salience.models.sum.blocks import (
    SS2D,
    PatchExpanding,
    PatchMerging,
    VSSBlock,
    cross_merge,
    cross_scan,
)


def test_cross_scan_directions_are_the_four_pixel_orders():
    height, width = 3, 5
    x = torch.arange(height * width, dtype=torch.float64).view(1, 1, height, width)
    xs = cross_scan(x)[0, :, 0]  # (4, L)
    index = torch.arange(height * width)
    column_major = (index % height) * width + index // height  # pixel at step j, columns first
    torch.testing.assert_close(xs[0], index.double())
    torch.testing.assert_close(xs[1], column_major.double())
    torch.testing.assert_close(xs[2], index.flip(0).double())
    torch.testing.assert_close(xs[3], column_major.flip(0).double())
    for k in range(4):  # each a permutation of the pixels
        assert sorted(xs[k].long().tolist()) == index.tolist()


def test_cross_merge_puts_every_path_back_on_its_pixels():
    x = torch.randn(2, 3, 4, 7, dtype=torch.float64)
    merged = cross_merge(cross_scan(x), 4, 7)  # (2, 3, 28)
    torch.testing.assert_close(merged, 4 * x.flatten(2))
    # merge is the adjoint of scan: <scan(x), y> == <x, merge(y)>
    y = torch.randn(2, 4, 3, 28, dtype=torch.float64)
    lhs = (cross_scan(x) * y).sum()
    rhs = (x.flatten(2) * cross_merge(y, 4, 7)).sum()
    torch.testing.assert_close(lhs, rhs)


def test_ss2d_has_vmamba_parameter_names_and_shapes():
    d_model, d_state = 32, 8
    d_inner, rank = 64, math.ceil(d_model / 16)
    shapes = {k: tuple(v.shape) for k, v in SS2D(d_model, d_state=d_state).state_dict().items()}
    assert shapes == {
        "in_proj.weight": (2 * d_inner, d_model),
        "conv2d.weight": (d_inner, 1, 3, 3),
        "conv2d.bias": (d_inner,),
        "x_proj_weight": (4, rank + 2 * d_state, d_inner),
        "dt_projs_weight": (4, d_inner, rank),
        "dt_projs_bias": (4, d_inner),
        "A_logs": (4 * d_inner, d_state),
        "Ds": (4 * d_inner,),
        "out_norm.weight": (d_inner,),
        "out_norm.bias": (d_inner,),
        "out_proj.weight": (d_model, d_inner),
    }


def test_ss2d_scan_implementations_agree_and_see_the_whole_image():
    torch.manual_seed(0)
    op = SS2D(16, d_state=4, scan_impl="reference")
    x = torch.randn(2, 5, 6, 16, requires_grad=True)
    want = op(x)  # (2, 5, 6, 16)
    assert want.shape == x.shape
    op.scan_impl = "chunked"
    torch.testing.assert_close(op(x), want, rtol=1e-5, atol=1e-5)
    # one corner's output depends on the opposite corner (past the 3x3 conv's reach)
    want[0, 0, 0].sum().backward()
    assert x.grad[0, -1, -1].abs().sum() > 0
    assert x.grad[1].abs().sum() == 0  # and not on other images


def test_vss_block_with_and_without_mlp():
    x = torch.randn(1, 4, 4, 8)
    plain, with_mlp = VSSBlock(8, d_state=4), VSSBlock(8, d_state=4, mlp_ratio=2.0)
    assert not any(k.startswith(("norm2", "mlp")) for k in plain.state_dict())
    assert {"norm2.weight", "mlp.fc1.weight", "mlp.fc2.weight"} <= set(with_mlp.state_dict())
    assert plain(x).shape == with_mlp(x).shape == x.shape


@pytest.mark.parametrize("mlp_ratio", [0.0, 2.0])
def test_condition_changes_the_output_and_trains_only_its_tokens(mlp_ratio):
    torch.manual_seed(0)
    block = VSSBlock(8, num_conditions=TOKEN_SLOTS, token_dim=16, d_state=4, mlp_ratio=mlp_ratio)
    x = torch.randn(2, 4, 4, 8)
    eye = torch.full((2,), Condition.EYE_NATURAL)
    ui = torch.full((2,), Condition.USER_INTERFACE)
    assert not torch.allclose(block(x, eye), block(x, ui))
    block(x, torch.tensor([Condition.MOUSE_NATURAL, 2])).square().sum().backward()
    grad = block.tokens.weight.grad  # (4, 16)
    assert (grad[[0, 2]].abs().sum(1) > 0).all()
    assert (grad[[1, 3]] == 0).all()


def test_modulation_shifts_and_scales_the_normalized_input():
    torch.manual_seed(0)
    block = VSSBlock(8, num_conditions=TOKEN_SLOTS, token_dim=16, d_state=4, mlp_ratio=2.0)
    x, condition = torch.randn(2, 3, 5, 8), torch.tensor([1, 2])
    shift, scale, shift2, scale2 = block.modulation(block.tokens(condition))[:, None, None].split(
        8, -1
    )
    want = x + block.op(block.norm(x) * (1 + scale) + shift)
    want = want + block.mlp(block.norm2(want) * (1 + scale2) + shift2)
    torch.testing.assert_close(block(x, condition), want)


def test_zero_modulation_is_the_unconditioned_block():
    """With the modulation MLP's output zero, x * (1 + 0) + 0: exactly a VSS block."""
    torch.manual_seed(0)
    conditioned = VSSBlock(8, num_conditions=TOKEN_SLOTS, token_dim=16, d_state=4, mlp_ratio=2.0)
    nn.init.zeros_(conditioned.modulation[-1].weight)
    nn.init.zeros_(conditioned.modulation[-1].bias)
    plain = VSSBlock(8, d_state=4, mlp_ratio=2.0)
    plain.load_state_dict(conditioned.state_dict(), strict=False)
    x = torch.randn(2, 3, 5, 8)
    torch.testing.assert_close(conditioned(x, torch.tensor([0, 3])), plain(x))


def test_patch_merging_concatenates_each_2x2_patch_in_vmamba_order():
    merge = PatchMerging(3, out_dim=12)
    merge.norm = nn.Identity()
    with torch.no_grad():
        merge.reduction.weight.copy_(torch.eye(12))
    x = torch.randn(2, 4, 6, 3)
    got = merge(x)  # (2, 2, 3, 12)
    want = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    torch.testing.assert_close(got, want)
    assert PatchMerging(3)(torch.randn(1, 5, 7, 3)).shape == (1, 3, 4, 6)  # odd sides padded


@pytest.mark.parametrize("scale", [2, 4])
def test_patch_expanding_spreads_each_pixel_over_its_patch(scale):
    out_dim = 3
    expand = PatchExpanding(scale * scale * out_dim, out_dim, scale=scale)
    expand.norm = nn.Identity()
    with torch.no_grad():
        expand.expand.weight.copy_(torch.eye(scale * scale * out_dim))
    x = torch.randn(2, 3, 4, scale * scale * out_dim)
    got = expand(x)  # (2, 3 s, 4 s, out)
    assert got.shape == (2, 3 * scale, 4 * scale, out_dim)
    for p in range(scale):
        for q in range(scale):
            channels = slice((p * scale + q) * out_dim, (p * scale + q + 1) * out_dim)
            torch.testing.assert_close(got[:, p::scale, q::scale], x[..., channels])
