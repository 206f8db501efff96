"""The nearest-neighbour machinery of ``novelty.py``: feature checks, exact k-th distances, candidate merging.

Used by :class:`NoveltyDetector` and :func:`embedding_coverage` (both search
the training features with :func:`balancedtorch.ops.knn`, exact, and report
Euclidean k-th nearest-neighbour distances), across ranks too.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor

from .._validate import all_finite, as_tensor, refuse_meta
from ..ops.knn import knn

__all__: List[str] = []


# --- shared checks --------------------------------------------------------------


def _features(
    values: Any, name: str, owner: str, dim: Optional[int] = None, device: Any = None, allow_empty: bool = False
) -> Tensor:
    """(N, D) floating features, finite, on ``device``; float16/bfloat16/integers become float32."""
    t = as_tensor(values, name)
    refuse_meta(t, name, owner)
    if t.dim() != 2:
        raise ValueError(f"{owner}: {name} must have shape (N, D), got {tuple(t.shape)}")
    if (t.shape[0] == 0 and not allow_empty) or t.shape[1] == 0:
        raise ValueError(f"{owner}: {name} must be non-empty with D >= 1 features, got {tuple(t.shape)}")
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{owner}: {name} must be real numbers, got dtype {t.dtype}")
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    if dim is not None and t.shape[1] != dim:
        raise ValueError(f"{owner}: {name} has {t.shape[1]} features but the training features have {dim}")
    if not all_finite(t):
        i, j = (int(v) for v in (~torch.isfinite(t)).nonzero()[0])
        raise ValueError(f"{owner}: {name} must be finite, got {name}[{i}, {j}] = {t[i, j].item()}")
    return t.to(device) if device is not None else t


def _row_sums(t: Tensor) -> Tensor:
    """Sum over dim 1 by pairwise halving: elementwise adds only, so each row's rounding depends on
    nothing but its own values (not on the number of rows, the device or the reduction kernel)."""
    t = t.t().contiguous()  # (D, N): each halving adds two contiguous blocks
    while t.shape[0] > 1:
        h = t.shape[0] // 2
        half = t[:h] + t[h : 2 * h]
        t = torch.cat([half, t[2 * h :]]) if t.shape[0] % 2 else half
    return t[0]


def _normalized(t: Tensor, normalize: bool) -> Tensor:
    # zero rows stay zero (no NaN): divided by max(norm, eps), as F.normalize; the norm row by row
    # (_row_sums), so a bank normalised whole, per rank or per chunk holds the same bits
    if not normalize:
        return t
    squares = _row_sums(t * t)
    info = torch.finfo(t.dtype)
    # rows whose sum of squares overflows (|x| ~ 1e20 in float32) or sinks near the subnormals (|x| ~ 1e-20)
    # would become zero or stay tiny: those are scaled by their largest |value| first, as BLAS nrm2 does
    rescale = ~(squares <= info.max) | (squares < info.tiny / info.eps * t.shape[1])
    out = t / squares.sqrt().clamp_min(1e-12).unsqueeze(1)
    if bool(rescale.any()):
        rows = rescale.nonzero().squeeze(1)
        part = t.index_select(0, rows)
        top = part.abs().amax(1, keepdim=True)
        part = part / torch.where(top > 0, top, torch.ones_like(top))  # zero rows stay zero
        out[rows] = part / _row_sums(part * part).sqrt().clamp_min(1e-12).unsqueeze(1)
    return out


def _kth(d2: Tensor, dtype: torch.dtype) -> Tensor:
    """Euclidean k-th distance in ``dtype`` from ascending float64 squared distances.

    The root is taken in float64 before rounding to ``dtype``: a float32
    squared distance would overflow (or vanish) for distances beyond about
    1e19 (below about 1e-19) that float32 holds fine.
    """
    return d2[:, -1].clamp_min(0).sqrt().to(dtype)


# --- candidate search and merge -------------------------------------------------

_NONE = torch.iinfo(torch.int64).max  # index of an empty candidate slot (distance +inf): sorts last
_PAIR_ELEMENTS = 2**22  # float64 elements of one block of candidate differences


def _pair_distances(q: Tensor, ref: Tensor, idx: Tensor) -> Tensor:
    """float64 squared distances of queries ``q`` to their candidates ``ref[idx]`` (idx < 0: none, +inf).

    One formula for every candidate, wherever it was found: float64
    differences, squared, summed over the features. ``knn`` ranks with
    float64 differences too, but the summation order of its paths differs
    (re-rank, exact row search), so the distance of one pair could differ in
    the last bit between a bank searched whole and one split across ranks or
    chunks; recomputed here, it cannot: the blocks summed have the same shape
    (queries, k, D) whatever the bank's split, so the reduction runs alike.
    """
    n, k = idx.shape
    out = torch.full((n, k), math.inf, dtype=torch.float64, device=q.device)
    if n == 0 or k == 0 or ref.shape[0] == 0:
        return out
    rows = max(1, _PAIR_ELEMENTS // (k * q.shape[1]))
    for a in range(0, n, rows):
        b = min(n, a + rows)
        i = idx[a:b]
        near = ref.index_select(0, i.clamp_min(0).reshape(-1)).view(b - a, k, -1)
        diff = q[a:b].to(torch.float64).unsqueeze(1) - near  # float64: float32 values convert exactly
        out[a:b] = diff.square_().sum(2).masked_fill_(i < 0, math.inf)
    return out


def _merge(d: Tensor, i: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """Each row's k smallest candidates by (distance, global index): the order of a single ``knn`` search."""
    by_index = torch.argsort(i, dim=1, stable=True)
    d, i = d.gather(1, by_index), i.gather(1, by_index)
    order = torch.argsort(d, dim=1, stable=True)[:, :k]
    return d.gather(1, order), i.gather(1, order)


_TIE_WINDOW = 8  # candidates asked of knn past the k-th, so that near-ties there are decided by _pair_distances


def _nearest_by_pair_distance(q: Tensor, ref: Tensor, k: int) -> Tensor:
    """Local indices [Q, k] of the k rows of ``ref`` nearest by (:func:`_pair_distances`, row).

    ``knn`` ranks with its own summation order, so two rows at equal distance
    can come out one ulp apart there, in the other order than in
    :func:`_pair_distances`; a bank searched whole would then keep another row
    than the same bank searched in chunks (merged by :func:`_pair_distances`).
    knn is asked for a window past k, widened until its last distance is
    clearly beyond its k-th (no row outside the window can tie), and the
    window is ranked again by :func:`_pair_distances`.
    """
    m = ref.shape[0]
    window = min(m, k + _TIE_WINDOW)
    while True:
        d, idx = knn(q, window, ref=ref)
        if window >= m:
            break
        kth, last = d[:, k - 1].double(), d[:, window - 1].double()
        slack = 64 * torch.finfo(d.dtype).eps
        if bool((last > kth * (1 + slack) + torch.finfo(torch.float64).tiny).all()):
            break
        window = min(m, 2 * window)
    if window == k:
        return idx
    return _merge(_pair_distances(q, ref, idx), idx, k)[1]


def _candidates(
    q: Tensor, y: Optional[Tensor], ref: Tensor, ref_y: Optional[Tensor], k: int, offset: int
) -> Tuple[Tensor, Tensor]:
    """Each query's min(k, rows) nearest rows of ``ref`` (of its class when ``y`` is given).

    Returns (Tensor[Q, k] float64, Tensor[Q, k] int64): squared distances
    (:func:`_pair_distances`) and global indices (``offset`` + row), in no
    particular order, padded with (+inf, ``_NONE``).
    """
    n, m = q.shape[0], ref.shape[0]
    local = torch.full((n, k), -1, dtype=torch.long, device=q.device)
    if n and m:
        if y is None:
            if m >= k:
                local = _nearest_by_pair_distance(q, ref, k)
            else:  # a slice smaller than k: all of it
                local[:, :m] = torch.arange(m, device=q.device)
        else:
            classes = max(int(y.max()), int(ref_y.max())) + 1
            counts = torch.bincount(ref_y, minlength=classes)
            have = counts[y]
            big = (have >= k).nonzero().squeeze(1)
            if big.numel():
                local[big] = knn(q[big], k, groups=y[big], ref=ref, ref_groups=ref_y)[1]
            small = ((have > 0) & (have < k)).nonzero().squeeze(1)
            if small.numel():  # a class with fewer than k rows here: all of them
                order = torch.argsort(ref_y, stable=True)
                starts = torch.cumsum(counts, 0) - counts
                j = torch.arange(k, device=q.device)
                ys = y[small]
                pos = (starts[ys].unsqueeze(1) + j).clamp_max(m - 1)
                local[small] = torch.where(j < have[small].unsqueeze(1), order[pos], -1)
    d = _pair_distances(q, ref, local)
    return d, torch.where(local >= 0, local + offset, _NONE)


_DTYPES = (torch.float32, torch.float64)
