"""Rank-sharded data for the quality tools: exact sums and the collectives they need.

The quality tools reduce per-class statistics across ``torch.distributed``
ranks. A float sum depends on its order, so "the union over ranks equals the
single-process answer" needs sums that do not: :func:`exact_group_sums` adds
non-negative floats exactly, as integers (fixed point, 2**-1074 units, in
32-bit limbs), and :func:`round_ratio` rounds ``sum / n`` once, to the nearest
value of the target dtype. Every collective here is called by every rank, in
the same order, whatever its data (a rank may hold 0 rows).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

# a non-negative float64 x <= 2**_TOP_BITS is an integer multiple of 2**-1074
_FIXED_SHIFT = 1074
_LIMB_BITS = 32
_TOP_BITS = 2  # the values summed are probabilities (<= 1); room for 2
_NUM_LIMBS = (_FIXED_SHIFT + _TOP_BITS + _LIMB_BITS - 1) // _LIMB_BITS + 1
_PART_BITS = 26  # a 53-bit mantissa in two parts of <= 27 bits: part << 31 fits int64
_CHUNK = 1 << 20


def check_distributed(distributed: Any) -> bool:
    """Whether to reduce across ranks: ``None`` means "a process group of world size > 1 is initialised"."""
    dist = torch.distributed
    active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if distributed is None:
        return active
    if not isinstance(distributed, (bool, np.bool_)):
        raise TypeError(f"distributed must be True, False or None, got {distributed!r}")
    if distributed and not (dist.is_available() and dist.is_initialized()):
        raise ValueError("distributed=True needs an initialised torch.distributed process group (init_process_group)")
    return bool(distributed) and dist.get_world_size() > 1


class Comm:
    """The default process group, with tensors on the device its backend needs (NCCL: the current CUDA device)."""

    def __init__(self) -> None:
        dist = torch.distributed
        self.world = dist.get_world_size()
        self.rank = dist.get_rank()
        backend = str(dist.get_backend()).lower()
        self.device = torch.device("cuda", torch.cuda.current_device()) if "nccl" in backend else torch.device("cpu")

    def all_reduce(self, t: Tensor) -> Tensor:
        """Sum over ranks (a copy, on the CPU)."""
        buf = t.to(self.device, copy=True)
        torch.distributed.all_reduce(buf)
        return buf.cpu()

    def all_gather(self, t: Tensor, device: Any = None) -> List[Tensor]:
        """Every rank's ``t`` (same shape on every rank), rank 0 first, on ``device`` (default: the CPU)."""
        buf = t.to(self.device).contiguous()
        out = [torch.empty_like(buf) for _ in range(self.world)]
        torch.distributed.all_gather(out, buf)
        target = torch.device("cpu") if device is None else device
        return [o.to(target) for o in out]

    def all_gather_rows(self, t: Tensor, sizes: Optional[Sequence[int]] = None, device: Any = None) -> List[Tensor]:
        """Every rank's ``t`` whose first dimension may differ between ranks (padded to the longest, then cut).

        ``sizes``: every rank's row count when the caller already exchanged
        them (saves one all-gather); ``device``: where the parts land (default:
        the CPU).
        """
        if sizes is None:
            sizes = [int(s) for s in self.all_gather(torch.tensor([t.shape[0]], dtype=torch.long))]
        padded = t.new_zeros((max(max(sizes), 1),) + tuple(t.shape[1:]))
        padded[: t.shape[0]] = t
        return [part[:n] for part, n in zip(self.all_gather(padded, device), sizes)]

    def agree(self, error: Optional[BaseException], facts: Sequence[int], what: str) -> List[List[int]]:
        """Every rank's ``facts`` (small ints); raises on every rank if any rank failed or they disagree.

        Called by every rank before anything that depends on the data, so a
        rank with bad input raises its own error and the others a ValueError
        naming that rank, instead of waiting forever in a later collective.
        """
        mine = torch.tensor([0 if error is None else 1] + list(facts), dtype=torch.long)
        rows = [r.tolist() for r in self.all_gather(mine)]
        if error is not None:
            raise error
        failed = [r for r, row in enumerate(rows) if row[0]]
        if failed:
            raise ValueError(f"{what}: invalid input on rank(s) {failed} (see the error raised there)")
        return [row[1:] for row in rows]


def exact_group_sums(values: Tensor, groups: Tensor, num_groups: int, comm: Optional[Comm] = None) -> List[int]:
    """Per group, the exact sum of non-negative ``values``, as an integer in units of 2**-1074.

    ``values`` (any float dtype, converted to float64 exactly) and ``groups``
    (int64 in ``[0, num_groups)``) are 1-D. With ``comm`` the integer limbs are
    summed over ranks (int64, exact up to 2**31 values per group). The result
    does not depend on the order of the values, nor on how they are split
    across ranks.
    """
    v_all = values.detach().flatten()
    g_all = groups.flatten()
    limbs = torch.zeros(num_groups * _NUM_LIMBS, dtype=torch.long)
    for start in range(0, v_all.numel(), _CHUNK):  # bounded temporaries (several int64 copies of a chunk)
        v = v_all[start : start + _CHUNK].double().cpu()
        g = g_all[start : start + _CHUNK].cpu()
        nz = v != 0
        if not bool(nz.all()):
            v, g = v[nz], g[nz]
        if not v.numel():
            continue
        mantissa, exponent = torch.frexp(v)  # v = mantissa * 2**exponent, mantissa in [0.5, 1)
        m = (mantissa * 2.0**53).long()  # exact: 53 bits
        shift = exponent.long() + (_FIXED_SHIFT - 53)  # v = m * 2**(shift - 1074)
        low = shift < 0
        if bool(low.any()):  # subnormal: m has enough trailing zeros to shift them out
            m = torch.where(low, m >> (-shift).clamp_min(0), m)
            shift = shift.clamp_min(0)
        for part, at in ((m & ((1 << _PART_BITS) - 1), shift), (m >> _PART_BITS, shift + _PART_BITS)):
            q, r = at // _LIMB_BITS, at % _LIMB_BITS
            wide = part << r  # < 2**58
            base = g * _NUM_LIMBS + q
            limbs.index_add_(0, base, wide & ((1 << _LIMB_BITS) - 1))
            limbs.index_add_(0, base + 1, wide >> _LIMB_BITS)
    if comm is not None:
        limbs = comm.all_reduce(limbs)
    table = limbs.view(num_groups, _NUM_LIMBS).tolist()
    return [sum(int(c) << (_LIMB_BITS * i) for i, c in enumerate(row)) for row in table]


def round_ratio(numerator: int, denominator: int, dtype: Any) -> np.generic:
    """``numerator / (denominator * 2**1074)`` rounded once to the nearest ``dtype`` value (ties to even)."""
    exact = Fraction(numerator, denominator << _FIXED_SHIFT)
    dtype = np.dtype(dtype)
    guess = dtype.type(float(exact))  # float() rounds correctly to float64; a narrower dtype may round twice
    if dtype == np.float64:
        return guess
    inf = dtype.type(np.inf)
    candidates = [np.nextafter(guess, -inf), guess, np.nextafter(guess, inf)]
    best = min(candidates, key=lambda c: (abs(Fraction(float(c)) - exact), int(c.view(f"u{dtype.itemsize}")) & 1))
    return dtype.type(best)
