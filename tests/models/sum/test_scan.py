"""The selective scan: the recurrence as defined, and the chunked path against it."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from salience.models.sum.scan import (
    selective_scan,
    selective_scan_chunked,
    selective_scan_reference,
)

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(
    batch: int,
    dim: int,
    length: int,
    state: int,
    groups: int | None,
    *,
    gate: bool = True,
    bias: bool = True,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> dict[str, torch.Tensor | None]:
    """Random scan inputs; B and C (batch, N, L) when ``groups`` is None, else grouped."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    bc = (batch, state, length) if groups is None else (batch, groups, state, length)
    return {
        "u": rand(batch, dim, length),
        "delta": rand(batch, dim, length),  # raw: softplus makes it a step size
        "A": -torch.exp(rand(dim, state)),
        "B": rand(*bc),
        "C": rand(*bc),
        "D": rand(dim),
        "z": rand(batch, dim, length) if gate else None,
        "delta_bias": rand(dim) if bias else None,
    }


@pytest.mark.parametrize(("groups_b", "groups_c"), [(2, 2), (2, 4), (None, 4)])
def test_reference_is_the_recurrence_written_out(groups_b, groups_c):
    """The oracle itself, against the definition in Python scalars
    (groups, bias, softplus, D, z)."""
    batch, dim, length, state = 2, 4, 5, 3
    x = make_inputs(batch, dim, length, state, groups_b)
    x["C"] = make_inputs(batch, dim, length, state, groups_c, seed=1)["C"]
    got = selective_scan_reference(**x, delta_softplus=True)
    t = {k: v.tolist() for k, v in x.items()}

    def entry(name: str, groups: int | None, b: int, d: int, n: int, i: int) -> float:
        return t[name][b][n][i] if groups is None else t[name][b][d // (dim // groups)][n][i]

    for b in range(batch):
        for d in range(dim):
            h = [0.0] * state
            for i in range(length):
                dt = math.log1p(math.exp(t["delta"][b][d][i] + t["delta_bias"][d]))
                y = 0.0
                for n in range(state):
                    h[n] = (
                        math.exp(dt * t["A"][d][n]) * h[n]
                        + dt * entry("B", groups_b, b, d, n, i) * t["u"][b][d][i]
                    )
                    y += entry("C", groups_c, b, d, n, i) * h[n]
                y += t["D"][d] * t["u"][b][d][i]
                zi = t["z"][b][d][i]
                y *= zi / (1 + math.exp(-zi))
                assert got[b, d, i].item() == pytest.approx(y, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("length", "chunk", "groups", "gate", "bias", "softplus"),
    [
        (37, 8, None, True, True, True),  # L not a multiple of the chunk
        (300, 32, 4, True, True, True),  # long, grouped as in VMamba
        (64, 16, 1, False, False, False),  # exact chunks, no extras
        (50, 64, 2, False, True, True),  # one chunk longer than L
        (129, 1, None, True, False, True),  # chunks of one step
    ],
)
def test_chunked_matches_reference_in_values_and_gradients(
    length, chunk, groups, gate, bias, softplus
):
    x = make_inputs(2, 8, length, 4, groups, gate=gate, bias=bias, seed=length)
    if not softplus:
        x["delta"] = x["delta"].abs() * 0.5  # step sizes must be positive without softplus
    weights = torch.randn(2, 8, length, dtype=torch.float64)  # a generic loss

    def run(fn, **kw):
        leaves = {k: v.clone().requires_grad_(True) for k, v in x.items() if v is not None}
        out = fn(**{**x, **leaves}, delta_softplus=softplus, **kw)
        (out * weights).sum().backward()
        return out.detach(), {k: v.grad for k, v in leaves.items()}

    want, want_grads = run(selective_scan_reference)
    got, got_grads = run(selective_scan_chunked, chunk_size=chunk)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    assert set(got_grads) == {k for k in NAMES if x[k] is not None}
    for name in got_grads:
        assert want_grads[name].abs().sum() > 0, name
        torch.testing.assert_close(got_grads[name], want_grads[name], rtol=1e-9, atol=1e-9)


def test_chunked_in_float32_stays_close_and_keeps_the_dtype():
    x = make_inputs(1, 16, 200, 8, 4, dtype=torch.float32)
    want = selective_scan_reference(**x, delta_softplus=True)
    got = selective_scan_chunked(**x, delta_softplus=True, chunk_size=24)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_chunked_is_stable_under_strong_decay():
    """Log-decays summing to -1e5 within a chunk: no overflow, no NaN."""
    x = make_inputs(1, 4, 256, 4, None, gate=False, bias=False, dtype=torch.float32)
    x["A"] = x["A"] * 1000  # |A| up to thousands
    x["delta"] = x["delta"].abs() + 1.0
    want = selective_scan_reference(**x)
    got = selective_scan_chunked(**x, chunk_size=64)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_dispatch_and_its_errors(monkeypatch):
    x = make_inputs(1, 4, 20, 2, None)
    want = selective_scan_reference(**x, delta_softplus=True)
    for impl in ("auto", "reference", "chunked"):
        got = selective_scan(**x, delta_softplus=True, impl=impl)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="impl must be one of"):
        selective_scan(**x, impl="fast")
    # mamba-ssm absent (whether or not this machine has it): a clear ImportError with the hint
    for module in ("mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.selective_scan_interface"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match="pip install mamba-ssm"):
        selective_scan(**x, impl="cuda")


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("B", (1, 3, 2, 20), "G dividing D"),  # 3 groups do not divide 4 channels
        ("C", (1, 2, 21), "C must be"),
        ("A", (4, 2, 1), "A must be"),
        ("delta", (1, 4, 19), "delta must"),
        ("D", (5,), "D must"),
    ],
)
def test_bad_shapes_are_named(name, shape, message):
    x = make_inputs(1, 4, 20, 2, None)
    x[name] = torch.randn(*shape, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        selective_scan_chunked(**x)


def test_softplus_matches_torch():
    """delta_softplus is F.softplus, as in mamba-ssm (identical for one step with A = 0)."""
    x = make_inputs(1, 3, 1, 1, None, gate=False, bias=False)
    x["A"] = torch.zeros(3, 1, dtype=torch.float64)
    x["C"] = torch.ones_like(x["C"])
    x["B"] = torch.ones_like(x["B"])
    x["D"] = None
    got = selective_scan_chunked(**x, delta_softplus=True)
    torch.testing.assert_close(got, F.softplus(x["delta"]) * x["u"])


def test_b_and_c_may_be_grouped_differently():
    x = make_inputs(2, 12, 45, 3, 4)
    x["C"] = torch.randn(2, 3, 3, 45, dtype=torch.float64)  # 3 groups for C, 4 for B
    shared = torch.randn(2, 3, 45, dtype=torch.float64)  # C shared by all channels
    for c in (x["C"], shared):
        want = selective_scan_reference(**{**x, "C": c}, delta_softplus=True)
        got = selective_scan_chunked(**{**x, "C": c}, delta_softplus=True, chunk_size=8)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("groups", "extras", "softplus", "length", "chunk"),
    [
        (None, True, True, 11, 4),  # B, C shared; D, z, bias; L not a multiple of the chunk
        (2, True, True, 11, 4),  # grouped
        (2, False, True, 9, 3),  # no D, z, bias; exact chunks
        (None, False, False, 7, 16),  # one chunk, longer than L; raw step sizes
        (4, True, False, 6, 1),  # chunks of one step
    ],
)
def test_chunked_backward_passes_gradcheck(groups, extras, softplus, length, chunk):
    """The hand-written backward against finite differences, for every input (float64)."""
    x = make_inputs(2, 4, length, 3, groups, gate=extras, bias=extras, seed=length)
    if not extras:
        x["D"] = None
    if not softplus:
        x["delta"] = x["delta"].abs() * 0.5 + 0.1  # step sizes must be positive without softplus
    names = [k for k in NAMES if x[k] is not None]

    def scan(*leaves: torch.Tensor) -> torch.Tensor:
        kw = {**x, **dict(zip(names, leaves, strict=True))}
        return selective_scan_chunked(**kw, delta_softplus=softplus, chunk_size=chunk)

    leaves = tuple(x[k].clone().requires_grad_(True) for k in names)
    assert torch.autograd.gradcheck(scan, leaves)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_chunked_gradients_match_reference_on_a_long_sequence(dtype, tol):
    """L = 300 with VMamba's initial ranges: step sizes 1e-3 to 0.1 through softplus and bias
    (some raised to several by the input), A = -(1 .. N); the reference in float64."""
    batch, dim, length, state, groups = 2, 16, 300, 8, 4
    g = torch.Generator().manual_seed(3)
    dt_init = torch.exp(torch.rand(dim, generator=g) * math.log(100) + math.log(1e-3))
    x = {
        "u": torch.randn(batch, dim, length, generator=g),
        "delta": torch.randn(batch, dim, length, generator=g) * 2,
        "A": -torch.arange(1, state + 1).repeat(dim, 1),
        "B": torch.randn(batch, groups, state, length, generator=g),
        "C": torch.randn(batch, groups, state, length, generator=g),
        "D": torch.ones(dim),
        "z": torch.randn(batch, dim, length, generator=g),
        "delta_bias": dt_init + torch.log(-torch.expm1(-dt_init)),  # softplus^-1
    }
    x = {k: v.double() for k, v in x.items()}
    weights = torch.randn(batch, dim, length, generator=g, dtype=torch.float64)

    def grads(fn, cast: torch.dtype, **kw) -> dict[str, torch.Tensor]:
        leaves = {k: v.to(cast, copy=True).requires_grad_(True) for k, v in x.items()}
        (fn(**leaves, delta_softplus=True, **kw).double() * weights).sum().backward()
        return {k: v.grad.double() for k, v in leaves.items()}

    want = grads(selective_scan_reference, torch.float64)
    got = grads(selective_scan_chunked, dtype, chunk_size=16)
    for name in NAMES:
        scale = want[name].abs().max()
        torch.testing.assert_close(got[name] / scale, want[name] / scale, rtol=tol, atol=tol)


def test_chunked_gradients_are_stable_under_strong_decay():
    """Log-decays far below the floor: finite gradients, those of the reference."""
    x = make_inputs(1, 4, 100, 4, 2, gate=False, bias=False, seed=5)
    x["A"] = x["A"] * 1000  # |A| up to thousands
    x["delta"] = x["delta"].abs() + 1.0
    weights = torch.randn(1, 4, 100, dtype=torch.float64)

    def grads(fn, **kw) -> dict[str, torch.Tensor]:
        leaves = {k: v.clone().requires_grad_(True) for k, v in x.items() if v is not None}
        (fn(**leaves, **kw) * weights).sum().backward()
        return {k: v.grad for k, v in leaves.items()}

    want = grads(selective_scan_reference)
    got = grads(selective_scan_chunked, chunk_size=16)
    for name in want:
        assert torch.isfinite(got[name]).all(), name
        torch.testing.assert_close(got[name], want[name], rtol=1e-9, atol=1e-9)


def test_chunked_saves_no_state_per_step():
    """For the backward, the forward saves its inputs and the state entering each chunk: less
    than one state per position in all (autograd through the chunked passes saved about 8)."""
    batch, dim, length, state = 2, 32, 256, 16
    x = make_inputs(batch, dim, length, state, 2, seed=7)
    leaves = {k: v.clone().requires_grad_(True) for k, v in x.items() if v is not None}
    saved = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        selective_scan_chunked(**leaves, delta_softplus=True, chunk_size=16)
    assert sum(saved) < batch * dim * length * state
