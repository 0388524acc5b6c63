"""The selective scan of Mamba (S6), in plain PyTorch, with the semantics of mamba-ssm.

For every batch element b, channel d and state index n, with step sizes ``delta`` (after the
optional ``delta_bias`` and softplus)::

    h[t] = exp(delta[t] * A[d, n]) * h[t - 1] + delta[t] * B[n, t] * u[t]      (h[-1] = 0)
    y[t] = sum_n C[n, t] * h[t] + D[d] * u[t]
    out  = y * silu(z)                                                       (if z is given)

``B`` and ``C`` are (batch, N, L), shared by all channels, or (batch, G, N, L): G groups, channel
d using group ``d // (D / G)`` (VMamba's four scan directions are four groups). This is
``mamba_ssm.ops.selective_scan_interface.selective_scan_fn`` for real ``A``, without
``return_last_state``. Everything is computed in float32 (float64 for float64 ``u``, which the
tests use to compare the implementations tightly); the output has ``u``'s dtype.

Three implementations, all differentiable:

* :func:`selective_scan_reference`: the recurrence, one step per position, through autograd.
  The oracle.
* :func:`selective_scan_chunked`: the sequence cut into chunks of T positions, in three passes:
  (1) every chunk scanned from a zero state, all chunks at once (T steps, each covering every
  chunk), giving the state each chunk ends in; (2) across chunks, sequentially, the state
  entering each chunk: the previous one decayed by the exp of the chunk's summed log-decays
  ``delta * A``, plus that chunk's end state; (3) every chunk scanned again from the state
  entering it, all at once, reading out y. About ``2 T + L / T`` steps instead of ``L``, and
  no tensor copies of B and C per channel. Every exponent is a sum of log-decays, never a
  difference that could overflow: stable whenever ``A <= 0`` (Mamba's ``A = -exp(A_log)``) and
  ``delta >= 0`` (softplus).

  Its backward is written out (autograd would keep every step's state, and spend its time
  stacking and multiplying them). The forward saves only its inputs and the state entering
  each chunk. The backward recomputes every state from those (T steps, all chunks at once),
  then runs the adjoint recurrence backwards: with ``a`` the decays, the gradient of the state
  after position t is ``g[t] = C[t] dy[t] + a[t + 1] g[t + 1]``, in the mirror of the three
  passes: (1) every chunk backwards from a zero gradient at its end, giving what reaches its
  start; (2) across chunks, sequentially from the right, the gradient reaching each chunk's
  end; (3) every chunk backwards again from that, forming at each step the gradients of the
  inputs ``delta u B`` (``g[t]``) and of the log-decays (``g[t] a[t] h[t - 1]``), and from
  these those of delta, u, A, B and C (B and C summed over their group's channels). Decays
  raised to the floor get no gradient, as through autograd's clamp; a chunk's decay counts as
  the product of its steps' (they differ only below e^NEGLIGIBLE_LOG_DECAY). The same stability:
  products of decays only. About ``3 T + L / T`` steps; two tensors the size of all states
  (decays and states) live during the backward only. Bias, softplus, D, the gate, the grouping
  of B and C and the dtype casts stay with autograd: elementwise on (batch, D, L).
* ``impl="cuda"``: mamba-ssm's fused CUDA kernel, when that package is installed.

:func:`selective_scan` dispatches; ``"auto"`` is the chunked path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

IMPLS = ("auto", "reference", "chunked", "cuda")
# The chunked path raises decays below e^-80 to e^-80 (a change invisible even in float64):
# exp of a log-decay in (-104, -87) is a subnormal float, which x86 CPUs compute about 12 times
# slower than a normal one, and a chunk's summed log-decays land there often.
NEGLIGIBLE_LOG_DECAY = -80.0
CUDA_HINT = (
    "impl='cuda' needs the CUDA kernels of mamba-ssm: pip install mamba-ssm (needs an NVIDIA GPU "
    "and the CUDA toolkit); impl='chunked' or 'reference' run anywhere"
)


def _check_shapes(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
) -> None:
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, D, L), got {tuple(u.shape)}")
    batch, dim, length = u.shape
    if length < 1:
        raise ValueError("the sequence is empty (L = 0)")
    if delta.shape != u.shape:
        raise ValueError(f"delta must have u's shape {tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != dim or A.is_complex():
        raise ValueError(f"A must be real (D, N) with D = {dim}, got {tuple(A.shape)}")
    state = A.shape[1]
    for name, m in (("B", B), ("C", C)):
        grouped = m.dim() == 4 and m.shape[1] > 0 and dim % m.shape[1] == 0
        if not (m.dim() == 3 or grouped) or m.shape[0] != batch or m.shape[-2:] != (state, length):
            raise ValueError(
                f"{name} must be (batch, N, L) or (batch, G, N, L) with G dividing D "
                f"(batch={batch}, D={dim}, N={state}, L={length}), got {tuple(m.shape)}"
            )
    for name, v in (("D", D), ("delta_bias", delta_bias)):
        if v is not None and v.shape != (dim,):
            raise ValueError(f"{name} must be ({dim},), got {tuple(v.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"z must have u's shape {tuple(u.shape)}, got {tuple(z.shape)}")


def _groups(m: Tensor) -> int:
    return 1 if m.dim() == 3 else m.shape[1]


def _prepare(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    delta_bias: Tensor | None,
    softplus: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """In the compute dtype: u, the final step sizes, A, and B and C as (batch, G, N, L) with a
    common number of groups G (which divides D)."""
    dtype = torch.promote_types(u.dtype, torch.float32)
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]  # (b, D, L)
    if softplus:
        delta = F.softplus(delta)
    groups = math.lcm(_groups(B), _groups(C))

    def grouped(m: Tensor) -> Tensor:  # (b, N, L) or (b, g, N, L) -> (b, G, N, L)
        m = m.to(dtype).unsqueeze(1) if m.dim() == 3 else m.to(dtype)
        return m.repeat_interleave(groups // m.shape[1], dim=1)

    return u.to(dtype), delta, A.to(dtype), grouped(B), grouped(C)


def _finish(y: Tensor, u: Tensor, D: Tensor | None, z: Tensor | None, dtype: torch.dtype) -> Tensor:
    """Add the skip ``D * u``, gate by ``silu(z)``, cast to the input dtype."""
    if D is not None:
        y = y + u * D.to(y.dtype)[:, None]  # (b, D, L)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(dtype)


def _decay_(log_decay: Tensor) -> Tensor:
    """exp(log_decay), at least e^NEGLIGIBLE_LOG_DECAY (see there), in place."""
    return log_decay.clamp_min_(NEGLIGIBLE_LOG_DECAY).exp_()


def _recurrence(u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """The reference: the recurrence, one position at a time, through autograd (as prepared
    by :func:`_prepare`; no skip or gate): (batch, D, L)."""
    per_group = u.shape[1] // B.shape[1]
    Bc, Cc = B.repeat_interleave(per_group, dim=1), C.repeat_interleave(per_group, dim=1)
    decay = torch.exp(dt.unsqueeze(-1) * A[:, None, :])  # (b, D, L, N)
    inputs = (dt * u).unsqueeze(-1) * Bc.transpose(-1, -2)  # (b, D, L, N)
    readout = Cc.transpose(-1, -2)  # (b, D, L, N)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])  # (b, D, N)
    ys = []
    # unbind, not indexing: its backward is one stack, where indexing would scatter L times
    for a_t, x_t, c_t in zip(decay.unbind(2), inputs.unbind(2), readout.unbind(2), strict=True):
        h = a_t * h + x_t  # (b, D, N)
        ys.append((h * c_t).sum(-1))  # (b, D)
    return torch.stack(ys, dim=-1)  # (b, D, L)


class _Chunks:
    """The chunked scan's layout: (b, D, L) sequences as (T, b, G, D / G, chunks) steps.

    Position in the chunk first, so that each step is contiguous; channels split into (group,
    channel in group), so that B and C broadcast over a group's channels. Padded positions
    (step size 0: no decay, no input) come last."""

    def __init__(self, u: Tensor, groups: int, state: int, chunk_size: int) -> None:
        self.batch, self.dim, self.length = u.shape
        self.groups, self.per_group, self.state = groups, self.dim // groups, state
        self.size = min(chunk_size, self.length)
        self.chunks = math.ceil(self.length / self.size)
        self.pad = self.chunks * self.size - self.length

    def steps(self, x: Tensor) -> Tensor:
        """(b, D, L) -> (T, b, G, D / G, chunks), contiguous."""
        x = F.pad(x, (0, self.pad))
        x = x.reshape(self.batch, self.groups, self.per_group, self.chunks, self.size)
        return x.permute(4, 0, 1, 2, 3).contiguous()

    def steps_n(self, m: Tensor) -> Tensor:
        """(b, G, N, L) -> (T, b, G, 1, chunks, N), contiguous."""
        m = F.pad(m, (0, self.pad))
        m = m.reshape(self.batch, self.groups, 1, self.state, self.chunks, self.size)
        return m.permute(5, 0, 1, 2, 4, 3).contiguous()

    def unsteps(self, x: Tensor) -> Tensor:
        """(T, b, G, D / G, chunks) -> (b, D, L): the inverse of :meth:`steps`."""
        x = x.permute(1, 2, 3, 4, 0).reshape(self.batch, self.dim, self.chunks * self.size)
        return x[..., : self.length]

    def unsteps_n(self, m: Tensor) -> Tensor:
        """(T, b, G, 1, chunks, N) -> (b, G, N, L): the inverse of :meth:`steps_n`."""
        m = m.permute(1, 2, 3, 5, 4, 0)  # (b, G, 1, N, chunks, T)
        m = m.reshape(self.batch, self.groups, self.state, self.chunks * self.size)
        return m[..., : self.length]

    def terms(
        self, u: Tensor, dt: Tensor, A: Tensor, B: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The recurrence's terms: A per channel (G, D / G, 1, N); by step the step sizes and
        the step sizes times u (T, b, G, D / G, chunks), B (T, b, G, 1, chunks, N) and the
        decays (T, b, G, D / G, chunks, N); the decay across each chunk (b, G, D / G, chunks, N)."""
        A_v = A.view(self.groups, self.per_group, 1, self.state)  # (G, D / G, 1, N)
        dt_s = self.steps(dt)  # (T, b, G, D / G, chunks)
        decay = _decay_(dt_s.unsqueeze(-1) * A_v)  # (T, b, G, D / G, chunks, N)
        # Summed log-decays of a chunk as (summed step sizes) * A: one small product
        through = _decay_(dt_s.sum(0).unsqueeze(-1) * A_v)  # (b, G, D / G, chunks, N)
        return A_v, dt_s, self.steps(dt * u), self.steps_n(B), decay, through


class _ChunkedScan(torch.autograd.Function):
    """The chunked scan without D and gate, (u, step sizes, A, B, C as (b, G, N, L)) -> y,
    with the backward of the module docstring. Saves the inputs and the state entering each
    chunk, where autograd would save every step's state."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int
    ) -> Tensor:
        lay = _Chunks(u, B.shape[1], A.shape[1], chunk_size)
        _, _, dtu_s, B_s, decay, through = lay.terms(u, dt, A, B)
        dtu_s = dtu_s.unsqueeze(-1)  # (T, b, G, D / G, chunks, 1)
        C_s = lay.steps_n(C)  # (T, b, G, 1, chunks, N)
        # 1. The state each chunk ends in, started from zero: all chunks at once.
        h = dtu_s[0] * B_s[0]  # (b, G, D / G, chunks, N)
        for t in range(1, lay.size):
            h.mul_(decay[t]).addcmul_(dtu_s[t], B_s[t])  # a[t] h + delta[t] u[t] B[t]
        # 2. The state entering each chunk, sequentially across chunks.
        entering = torch.zeros_like(h)  # (b, G, D / G, chunks, N)
        for k in range(1, lay.chunks):
            prev = (..., k - 1, slice(None))
            torch.addcmul(h[prev], through[prev], entering[prev], out=entering[..., k, :])
        # 3. Every chunk from the state entering it, reading out y: all chunks at once.
        h = entering.clone()
        y = u.new_empty(lay.size, *h.shape[:-1])  # (T, b, G, D / G, chunks)
        for t in range(lay.size):
            h.mul_(decay[t]).addcmul_(dtu_s[t], B_s[t])
            torch.sum(h * C_s[t], -1, out=y[t])
        ctx.save_for_backward(u, dt, A, B, C, entering)
        ctx.chunk_size = chunk_size
        return lay.unsteps(y)  # (b, D, L)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, dy: Tensor) -> tuple[Tensor | None, ...]:
        u, dt, A, B, C, entering = ctx.saved_tensors
        lay = _Chunks(u, B.shape[1], A.shape[1], ctx.chunk_size)
        A_v, dt_s, dtu_s, B_s, decay, through = lay.terms(u, dt, A, B)
        dtu_s = dtu_s.unsqueeze(-1)  # (T, b, G, D / G, chunks, 1)
        C_s = lay.steps_n(C)  # (T, b, G, 1, chunks, N)
        dy_s = lay.steps(dy).unsqueeze(-1)  # (T, b, G, D / G, chunks, 1)
        # The states again, from the state entering each chunk (states[t] precedes step t),
        # and the gradient of C, which needs nothing else.
        states = u.new_empty(lay.size + 1, *entering.shape)  # (T + 1, b, G, D / G, chunks, N)
        states[0] = entering
        dC = torch.empty_like(C_s)  # (T, b, G, 1, chunks, N)
        for t in range(lay.size):
            torch.mul(decay[t], states[t], out=states[t + 1]).addcmul_(dtu_s[t], B_s[t])
            torch.sum(states[t + 1] * dy_s[t], 2, keepdim=True, out=dC[t])
        # The state gradient g[t] = C[t] dy[t] + a[t + 1] g[t + 1] (a: the decays).
        # 1. Within each chunk from zero at its end: what reaches the state entering it.
        g = C_s[-1] * dy_s[-1]  # (b, G, D / G, chunks, N)
        for t in range(lay.size - 1, 0, -1):
            g.mul_(decay[t]).addcmul_(C_s[t - 1], dy_s[t - 1])
        g.mul_(decay[0])
        # 2. The gradient reaching each chunk's end from the right, sequentially across chunks.
        right = torch.zeros_like(g)  # (b, G, D / G, chunks, N)
        for k in range(lay.chunks - 1, 0, -1):
            next_ = (..., k, slice(None))
            torch.addcmul(g[next_], through[next_], right[next_], out=right[..., k - 1, :])
        # 3. Within each chunk from that, and the gradients it makes, step by step.
        g = right
        d_dtu = torch.empty_like(dt_s)  # (T, b, G, D / G, chunks)
        d_dt = torch.empty_like(dt_s)  # (T, b, G, D / G, chunks)
        dB = torch.empty_like(B_s)  # (T, b, G, 1, chunks, N)
        dA = u.new_zeros(lay.groups, lay.per_group, lay.state)  # (G, D / G, N)
        # Whether any decay was clamped: a bound on delta * A per channel from delta's extremes
        low, high = dt_s.amin((0, 1, 4))[..., None, None], dt_s.amax((0, 1, 4))[..., None, None]
        clamps = bool((torch.minimum(low * A_v, high * A_v) < NEGLIGIBLE_LOG_DECAY).any())
        for t in range(lay.size - 1, -1, -1):
            g.addcmul_(C_s[t], dy_s[t])  # g[t]
            torch.sum(g * B_s[t], -1, out=d_dtu[t])
            torch.sum(g * dtu_s[t], 2, keepdim=True, out=dB[t])
            # d log-decay = g[t] a[t] h[t - 1], where the decay was not clamped (as in clamp's
            # own gradient)
            g.mul_(decay[t])  # a[t] g[t]: the gradient of the state before step t
            d_log = g * states[t]  # (b, G, D / G, chunks, N)
            if clamps:
                d_log.masked_fill_(dt_s[t].unsqueeze(-1) * A_v < NEGLIGIBLE_LOG_DECAY, 0)
            torch.sum(d_log * A_v, -1, out=d_dt[t])
            dA += (d_log * dt_s[t].unsqueeze(-1)).sum((0, 3))
        d_dt += d_dtu * lay.steps(u)
        du = lay.unsteps(d_dtu) * dt  # (b, D, L)
        return du, lay.unsteps(d_dt), dA.view_as(A), lay.unsteps_n(dB), lay.unsteps_n(dC), None


def _mamba_kernel() -> Callable[..., Tensor]:
    """mamba-ssm's ``selective_scan_fn``, or an ImportError that says how to get it."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError as exc:
        raise ImportError(CUDA_HINT) from exc
    return selective_scan_fn


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    impl: str = "auto",
    chunk_size: int = 16,
) -> Tensor:
    """The selective scan by ``impl``: "auto" (= "chunked"), "reference", "chunked" (in chunks
    of ``chunk_size`` positions, see the module docstring) or "cuda": (batch, D, L)."""
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    if impl == "cuda":
        kernel = _mamba_kernel()
        return kernel(
            u, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus
        )
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    dtype = u.dtype
    u32, dt, A32, Bg, Cg = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    if impl == "reference":
        y = _recurrence(u32, dt, A32, Bg, Cg)  # (b, D, L)
    else:
        y = _ChunkedScan.apply(u32, dt, A32, Bg, Cg, chunk_size)  # (b, D, L)
    return _finish(y, u32, D, z, dtype)


# The twins by name, as mamba names its own: the reference is the test oracle, chunked the default.
selective_scan_reference = partial(selective_scan, impl="reference")
selective_scan_chunked = partial(selective_scan, impl="chunked")
