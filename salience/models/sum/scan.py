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

Three implementations, all differentiable by autograd:

* :func:`selective_scan_reference`: the recurrence, one step per position. The oracle.
* :func:`selective_scan_chunked`: the sequence cut into chunks of T positions, in three passes:
  (1) every chunk scanned from a zero state, all chunks at once (T steps, each covering every
  chunk), giving the state each chunk ends in; (2) across chunks, sequentially, the state
  entering each chunk: the previous one decayed by the exp of the chunk's summed log-decays
  ``delta * A``, plus that chunk's end state; (3) every chunk scanned again from the state
  entering it, all at once, reading out y. About ``2 T + L / T`` steps instead of ``L``, and
  no tensor copies of B and C per channel. Every exponent is a sum of log-decays, never a
  difference that could overflow: stable whenever ``A <= 0`` (Mamba's ``A = -exp(A_log)``) and
  ``delta >= 0`` (softplus).
* ``impl="cuda"``: mamba-ssm's fused CUDA kernel, when that package is installed.

:func:`selective_scan` dispatches; ``"auto"`` is the chunked path.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

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
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Check shapes; in the compute dtype: u, the final step sizes, A, and B and C as
    (batch, G, N, L) with a common number of groups G (which divides D)."""
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    dtype = torch.promote_types(u.dtype, torch.float32)
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]  # (b, D, L)
    if delta_softplus:
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


def _decay(log_decay: Tensor) -> Tensor:
    """exp(log_decay), at least e^NEGLIGIBLE_LOG_DECAY (see there)."""
    return log_decay.clamp_min(NEGLIGIBLE_LOG_DECAY).exp()


def selective_scan_reference(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """The selective scan as its recurrence, one position at a time: (batch, D, L)."""
    dtype = u.dtype
    u32, dt, A32, Bg, Cg = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    per_group = u.shape[1] // Bg.shape[1]
    Bc, Cc = Bg.repeat_interleave(per_group, dim=1), Cg.repeat_interleave(per_group, dim=1)
    decay = torch.exp(dt.unsqueeze(-1) * A32[:, None, :])  # (b, D, L, N)
    inputs = (dt * u32).unsqueeze(-1) * Bc.transpose(-1, -2)  # (b, D, L, N)
    readout = Cc.transpose(-1, -2)  # (b, D, L, N)
    h = u32.new_zeros(u.shape[0], u.shape[1], A.shape[1])  # (b, D, N)
    ys = []
    # unbind, not indexing: its backward is one stack, where indexing would scatter L times
    for a_t, x_t, c_t in zip(decay.unbind(2), inputs.unbind(2), readout.unbind(2), strict=True):
        h = a_t * h + x_t  # (b, D, N)
        ys.append((h * c_t).sum(-1))  # (b, D)
    return _finish(torch.stack(ys, dim=-1), u32, D, z, dtype)  # (b, D, L)


def selective_scan_chunked(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    chunk_size: int = 16,
) -> Tensor:
    """The selective scan in chunks of ``chunk_size`` positions (see the module docstring)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    dtype = u.dtype
    u32, dt, A32, Bg, Cg = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    batch, dim, length = u.shape
    groups, state = Bg.shape[1], A.shape[1]
    per_group = dim // groups
    size = min(chunk_size, length)
    chunks = math.ceil(length / size)
    pad = chunks * size - length  # padded positions (delta 0: no decay, no input) come last

    # Position-in-chunk first, so that each step below reads contiguous memory; channels split
    # into (group, channel in group), so that B and C broadcast over a group's channels.
    def by_step(x: Tensor) -> Tensor:  # (b, D, L) -> (T, b, G, D / G, chunks)
        x = F.pad(x, (0, pad)).reshape(batch, groups, per_group, chunks, size)
        return x.permute(4, 0, 1, 2, 3)

    def by_step_n(m: Tensor) -> Tensor:  # (b, G, N, L) -> (T, b, G, 1, chunks, N)
        m = F.pad(m, (0, pad)).reshape(batch, groups, 1, state, chunks, size)
        return m.permute(5, 0, 1, 2, 4, 3)

    log_decay = by_step(dt).unsqueeze(-1) * A32.view(
        groups, per_group, 1, state
    )  # (T, b, G, D / G, chunks, N)
    decay = _decay(log_decay)  # (T, b, G, D / G, chunks, N)
    inputs = by_step(dt * u32).unsqueeze(-1) * by_step_n(Bg)  # (T, b, G, D / G, chunks, N)
    readout = by_step_n(Cg)  # (T, b, G, 1, chunks, N)

    # 1. The state each chunk ends in, started from zero: all chunks at once.
    h = u32.new_zeros(batch, groups, per_group, chunks, state)  # (b, G, D / G, chunks, N)
    for a_t, x_t in zip(decay.unbind(0), inputs.unbind(0), strict=True):
        h = torch.addcmul(x_t, a_t, h)  # a_t * h + x_t
    # 2. The state entering each chunk, sequentially across chunks. unbind, not indexing: its
    # backward is one stack, where indexing would scatter into a full-size zero tensor each time.
    through = _decay(log_decay.sum(0))  # (b, G, D / G, chunks, N): decay across each chunk
    carry = u32.new_zeros(batch, groups, per_group, state)  # (b, G, D / G, N)
    entering = []
    for through_c, end_c in zip(through.unbind(3), h.unbind(3), strict=True):
        entering.append(carry)
        carry = torch.addcmul(end_c, through_c, carry)
    h = torch.stack(entering, dim=3)  # (b, G, D / G, chunks, N)
    # 3. Every chunk from the state entering it, reading out y: all chunks at once.
    ys = []
    steps = zip(decay.unbind(0), inputs.unbind(0), readout.unbind(0), strict=True)
    for a_t, x_t, c_t in steps:
        h = torch.addcmul(x_t, a_t, h)
        ys.append((h * c_t).sum(-1))  # (b, G, D / G, chunks)
    y = torch.stack(ys, dim=-1).reshape(batch, dim, chunks * size)[..., :length]  # (b, D, L)
    return _finish(y, u32, D, z, dtype)


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
) -> Tensor:
    """The selective scan by ``impl``: "auto" (= "chunked"), "reference", "chunked" or "cuda"."""
    if impl in ("auto", "chunked"):
        return selective_scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if impl == "reference":
        return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if impl == "cuda":
        kernel = _mamba_kernel()
        _check_shapes(u, delta, A, B, C, D, z, delta_bias)
        return kernel(
            u, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus
        )
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
