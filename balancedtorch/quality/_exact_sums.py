"""Exact sums of probabilities across ranks: the union over ranks equals the single-process answer.

The quality tools reduce per-class statistics across ``torch.distributed``
ranks. A float sum depends on its order, so "the union over ranks equals the
single-process answer" needs sums that do not: :func:`exact_group_sums` adds
non-negative floats exactly, as integers (fixed point, 2**-1074 units, in
32-bit limbs), and :func:`round_ratio` rounds ``sum / n`` once, to the nearest
value of the target dtype. The collectives come from
:mod:`balancedtorch._distributed`.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, List, Optional

import numpy as np
import torch
from torch import Tensor

from .._distributed import Comm

# a non-negative float64 x <= 2**_TOP_BITS is an integer multiple of 2**-1074
_FIXED_SHIFT = 1074
_LIMB_BITS = 32
_TOP_BITS = 2  # the values summed are probabilities (<= 1); room for 2
_NUM_LIMBS = (_FIXED_SHIFT + _TOP_BITS + _LIMB_BITS - 1) // _LIMB_BITS + 1
_PART_BITS = 26  # a 53-bit mantissa in two parts of <= 27 bits: part << 31 fits int64
_CHUNK = 1 << 20


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
