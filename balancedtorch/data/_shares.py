"""Per-class target shares of the class-aware samplers."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import torch
from torch import Tensor

from .. import _validate


def target_shares(counts: Tensor, shares: Any, name: str = "class_shares") -> Tensor:
    """Target share of each class (float64, sums to 1, zero for classes without samples).

    shares (``class_shares`` of the samplers): ``"balanced"`` (equal),
    ``"sqrt"`` (p_c ∝ sqrt(n_c)), ``"natural"`` (p_c ∝ n_c; ``"dataset"`` is
    its deprecated name), a float alpha (p_c ∝ n_c ** alpha: 0 is balanced, 1
    natural) or a dict ``{class: share}`` (unlisted classes get 0; shares are
    normalised).
    """
    spec = shares
    if isinstance(spec, str) and spec == "dataset":
        warnings.warn(
            f"{name}='dataset' is deprecated and will be removed in the next release; use {name}='natural'",
            DeprecationWarning,
            stacklevel=3,
        )
        spec = "natural"
    n = counts.double()
    present = n > 0
    if isinstance(spec, str):
        if spec == "balanced":
            raw = present.double()
        elif spec == "sqrt":
            raw = n.sqrt()
        elif spec == "natural":
            raw = n.clone()
        else:
            raise ValueError(f"{name} must be 'balanced', 'sqrt', 'natural', a float or a dict, got {spec!r}")
    elif isinstance(spec, dict):
        raw = torch.zeros_like(n)
        for key, value in spec.items():
            if not _validate.is_integer(key) or not 0 <= key < n.numel():
                raise ValueError(f"{name}: class {key!r} is not in [0, {n.numel()})")
            value = _validate.real(value, f"{name}[{key}]", low=0)  # the share of class key
            if value > 0 and not bool(present[key]):
                raise ValueError(f"{name}: class {key} has no samples but is given share {value}")
            raw[int(key)] = float(value)
    elif isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        alpha = float(spec)
        if not math.isfinite(alpha):
            raise ValueError(f"{name} as a power must be finite, got {spec!r}")
        # n ** alpha normalised, in log space: alpha * (log n - log n*) with n* the
        # class of the largest n ** alpha, so that a large |alpha| (1e6) gives the
        # limit (the largest or smallest classes share everything) instead of
        # inf / inf = nan
        log_n = n.clamp_min(1).log()
        if bool(present.any()):
            top = log_n[present].max() if alpha >= 0 else log_n[present].min()
            # exponent <= 0 for every class; -inf (underflow) gives an exact 0
            raw = torch.where(present, (alpha * (log_n - top)).exp(), torch.zeros_like(n))
        else:
            raw = torch.zeros_like(n)
    else:
        raise ValueError(f"{name} must be 'balanced', 'sqrt', 'natural', a float or a dict, got {spec!r}")
    total = raw.sum()
    if not total > 0:
        raise ValueError(f"{name} gives every class a zero share")
    return raw / total
