"""Near-duplicates within a data set and leakage between two: exact radius searches on :func:`balancedtorch.ops.knn`.

:func:`find_duplicates` returns the connected components of the graph whose
edges join the pairs of rows within a distance threshold (every such pair,
however many, chains included); :func:`find_leakage` returns the test rows
whose nearest training row lies within the threshold. Both decide at the
threshold on float64 distances, so their answers are those of a float64 brute
force over all pairs.
"""

from __future__ import annotations

import math
from typing import Any, List, Tuple

import torch
from torch import Tensor

from .. import _validate
from ..ops.knn import knn
from ._knn_search import _features, _normalized, _pair_distances

__all__ = ["find_duplicates", "find_leakage"]

METRICS = ("euclidean", "cosine")
_FIRST_K = 16  # neighbours asked first; a query whose k-th still lies within the radius asks again with 2k
_PAIR_BUDGET = 2**21  # (query, neighbour) slots held at once: bounds memory whatever the number of pairs


# --- checks -----------------------------------------------------------------------


class _Space:
    """Rows to search (``search``, float32/float64) and the float64 rows decided on (``exact``).

    Euclidean: both are the features (float32 values are exact in float64).
    Cosine: ``exact`` holds the rows L2-normalised in float64 and ``search``
    those rounded to the features' dtype, each within ``err`` (L2) of its
    exact row. The distance decided on is float64: the Euclidean distance of
    the exact rows, or ``|u - v|^2 / 2`` (= 1 - cos, without its cancellation
    near 0) for cosine.
    """

    def __init__(self, x: Tensor, metric: str, name: str, owner: str) -> None:
        self.metric = metric
        if metric == "euclidean":
            self.search, self.exact, self.err = x, x, 0.0
            return
        x64 = x.to(torch.float64)
        zero = (x64 == 0).all(1)
        if bool(zero.any()):
            i = int(zero.nonzero()[0, 0])
            raise ValueError(f"{owner}: {name}[{i}] is a zero row, whose cosine distance to anything is undefined")
        self.exact = _normalized(x64, True)
        self.search = self.exact.to(x.dtype) if x.dtype != torch.float64 else self.exact
        self.err = 0.0 if x.dtype == torch.float64 else torch.finfo(x.dtype).eps  # |u_i - fl(u_i)| <= eps / 2 |u_i|, and |u| = 1

    def distance(self, d2: Tensor) -> Tensor:
        """The metric's float64 distance from float64 squared distances of the exact rows."""
        return d2.sqrt() if self.metric == "euclidean" else d2 / 2

    def radius(self, threshold: float) -> float:
        """The Euclidean radius, between exact rows, of a distance ``threshold``."""
        return threshold if self.metric == "euclidean" else math.sqrt(2 * threshold)


def _limit(radius: float, dim: int) -> float:
    """Squared search-space distance beyond which no row can be within ``radius`` (float64 rounding included)."""
    return radius * radius * (1 + 8 * dim * torch.finfo(torch.float64).eps) + torch.finfo(torch.float64).tiny


def _prepare(owner: str, threshold: Any, metric: Any, **named: Any) -> Tuple[float, str, List[Tensor]]:
    metric = _validate.choice(metric, "metric", METRICS, caller=owner)
    threshold = _validate.real(threshold, "threshold", low=0, low_inclusive=False, caller=owner)
    tensors: List[Tensor] = []
    for name, value in named.items():
        dim = tensors[0].shape[1] if tensors else None
        device = tensors[0].device if tensors else None
        t = _features(value, name, owner, dim, device)
        if dim is not None and t.device != device:
            raise ValueError(f"{owner}: {name} is on {t.device} but {next(iter(named))} is on {device}")
        tensors.append(t)
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return threshold, metric, [t.to(dtype) for t in tensors]


# --- radius search ---------------------------------------------------------------


def _union(parent: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Join the components of the pairs (a, b); ``parent`` maps each row to its component's smallest row."""
    while a.numel():
        ra, rb = parent[a], parent[b]
        apart = ra != rb
        if not bool(apart.any()):
            break
        a, b, ra, rb = a[apart], b[apart], ra[apart], rb[apart]
        # hook the larger root under the smaller one: roots only ever point lower, so no cycle can form
        parent.scatter_reduce_(0, torch.maximum(ra, rb), torch.minimum(ra, rb), reduce="amin")
        while True:  # pointer jumping until every row points at its root again
            up = parent[parent]
            if torch.equal(up, parent):
                break
            parent = up
    return parent


def _radius_pairs(
    q_search: Tensor, q_exact: Tensor, space: _Space, threshold: float, q_err: float
) -> Tuple[Tensor, Tensor, Tensor]:
    """All pairs (query, row of ``space``) within ``threshold``: positions, rows, float64 distances.

    Each query asks knn for its k nearest search rows, k doubling while the
    k-th (exact float64 distance of the search rows) still lies within the
    radius widened by the rows' rounding; then no row outside the list can be
    within the threshold, and the list is decided on exact distances.
    """
    ref_s, ref_x = space.search, space.exact
    m, dim = ref_s.shape
    limit = _limit(space.radius(threshold) + q_err + space.err, dim)
    found: List[Tuple[Tensor, Tensor, Tensor]] = []
    pending = torch.arange(q_search.shape[0], device=q_search.device)
    k = min(_FIRST_K, m)
    while pending.numel():
        step = max(1, _PAIR_BUDGET // k)
        grow = []
        for a in range(0, pending.numel(), step):
            rows = pending[a : a + step]
            qs = q_search.index_select(0, rows)
            idx = knn(qs, k, ref=ref_s)[1]
            if k < m:
                kth = _pair_distances(qs, ref_s, idx[:, -1:]).squeeze(1)
                more = kth <= limit
                if bool(more.any()):
                    grow.append(rows[more])
                    keep = ~more
                    rows, idx = rows[keep], idx[keep]
            if not rows.numel():
                continue
            d = space.distance(_pair_distances(q_exact.index_select(0, rows), ref_x, idx))
            hit = (d <= threshold).nonzero()
            found.append((rows[hit[:, 0]], idx[hit[:, 0], hit[:, 1]], d[hit[:, 0], hit[:, 1]]))
        pending = torch.cat(grow) if grow else pending[:0]
        k = min(2 * k, m)
    if not found:
        empty = pending.new_zeros(0)
        return empty, empty, q_exact.new_zeros(0, dtype=torch.float64)
    return tuple(torch.cat(parts) for parts in zip(*found))  # type: ignore[return-value]


# --- public API ------------------------------------------------------------------


def find_duplicates(features: Any, threshold: float, *, metric: str = "euclidean") -> List[Tensor]:
    """Groups of near-duplicate rows: the connected components of the pairs within ``threshold``.

    Two rows are linked when their distance is at most ``threshold``; a group
    is a connected component of those links (so a chain a-b-c is one group
    even when a and c are farther apart). Every linked pair is found, however
    many: a radius search on the exact kNN engine (:func:`balancedtorch.ops.knn`,
    k grown per row until its k-th neighbour lies beyond the threshold), every
    pair decided on its float64 distance, so the groups are those of a float64
    brute force over all pairs. Memory stays bounded (a fixed number of
    neighbour slots at a time, whatever the number of pairs).

    Args:
        features (Tensor[N, D] | array): rows to compare (float16/bfloat16 and
            integers are searched as float32); CPU or CUDA.
        threshold (float): largest distance of a linked pair (> 0).
        metric (str): ``"euclidean"`` (distance ``|a - b|``) or ``"cosine"``
            (``1 - cos(a, b)``, computed in float64 as ``|u - v|^2 / 2`` on
            the rows ``u, v`` normalised in float64; zero rows are refused).
            Default ``"euclidean"``.

    Returns:
        list of Tensor int64 (CPU): one per group of two or more rows, indices
        ascending, groups in the order of their smallest index. Rows linked to
        nothing are not listed.

    Raises:
        TypeError: ``threshold`` not a number.
        ValueError: ``threshold`` <= 0, NaN or infinite; ``features`` not
            (N, D) with N, D >= 1, or with NaN/inf; unknown ``metric``; a
            zero row under ``"cosine"``.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> x = torch.tensor([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [0.0, 0.2]])
        >>> bt.quality.find_duplicates(x, 0.15)
        [tensor([0, 1, 3])]
    """
    owner = "find_duplicates"
    threshold, metric, (x,) = _prepare(owner, threshold, metric, features=features)
    space = _Space(x, metric, "features", owner)
    n = x.shape[0]
    parent = torch.arange(n, device=x.device)
    if n > 1:
        pending = torch.arange(n, device=x.device)
        limit = _limit(space.radius(threshold) + 2 * space.err, x.shape[1])
        # rows whose nearest other row is beyond the radius link to nothing: one k=1 search settles most rows
        nearest = knn(space.search, 1)[1]
        d1 = _pair_distances(space.search, space.search, nearest).squeeze(1)
        pending = pending[d1 <= limit]
        step = max(1, _PAIR_BUDGET // _FIRST_K)
        for a in range(0, pending.numel(), step):
            rows = pending[a : a + step]
            pos, j, _ = _radius_pairs(
                space.search.index_select(0, rows), space.exact.index_select(0, rows), space, threshold, space.err
            )
            i = rows[pos]
            lower = i < j  # each pair is found from both ends; the row itself (distance 0) is dropped
            parent = _union(parent, i[lower], j[lower])
    parent = parent.cpu()
    sizes = torch.bincount(parent, minlength=n)
    grouped = (sizes[parent] > 1).nonzero().squeeze(1)  # ascending rows
    if not grouped.numel():
        return []
    roots = parent[grouped]
    order = torch.argsort(roots, stable=True)  # by root (the group's smallest row), rows ascending inside
    counts = torch.unique_consecutive(roots[order], return_counts=True)[1]
    return list(torch.split(grouped[order], counts.tolist()))


def find_leakage(
    train_features: Any, test_features: Any, threshold: float, *, metric: str = "euclidean"
) -> Tuple[Tensor, Tensor, Tensor]:
    """Test rows that (nearly) appear in the training set: nearest training row within ``threshold``.

    Each test row's nearest training row is found exactly (ties to the lowest
    training index) on :func:`balancedtorch.ops.knn` and its distance
    recomputed in float64; the test rows whose distance is at most
    ``threshold`` are returned, as a float64 brute force would.

    Args:
        train_features (Tensor[M, D] | array): training rows.
        test_features (Tensor[N, D] | array): test (or validation) rows, same D,
            same device.
        threshold (float): largest distance counted as a leak (> 0).
        metric (str): ``"euclidean"`` or ``"cosine"`` (``1 - cos``, as in
            :func:`find_duplicates`). Default ``"euclidean"``.

    Returns:
        (Tensor[L] int64, Tensor[L] int64, Tensor[L] float64), on the CPU: the
        leaking test rows (ascending), their nearest training rows and the
        distances.

    Raises:
        TypeError / ValueError: as :func:`find_duplicates`, for either
        features; ``test_features`` with another number of features.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> train = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
        >>> test = torch.tensor([[1.0, 1.05], [3.0, 3.0]])
        >>> bt.quality.find_leakage(train, test, 0.1)
        (tensor([0]), tensor([1]), tensor([0.0500], dtype=torch.float64))
    """
    owner = "find_leakage"
    threshold, metric, (train, test) = _prepare(
        owner, threshold, metric, train_features=train_features, test_features=test_features
    )
    bank = _Space(train, metric, "train_features", owner)
    queries = _Space(test, metric, "test_features", owner)
    m, dim = train.shape
    slack = 1 + 8 * dim * torch.finfo(torch.float64).eps
    tiny = torch.finfo(torch.float64).tiny
    reach = bank.err + queries.err  # search rows vs exact rows, per pair
    radius = bank.radius(threshold)
    out_q, out_j, out_d = [], [], []
    pending = torch.arange(test.shape[0], device=test.device)
    window = min(m, 8)
    while pending.numel():
        step = max(1, _PAIR_BUDGET // window)
        grow = []
        for a in range(0, pending.numel(), step):
            rows = pending[a : a + step]
            qs = queries.search.index_select(0, rows)
            idx = knn(qs, window, ref=bank.search)[1]
            first = _pair_distances(qs, bank.search, idx[:, :1]).squeeze(1)
            near = first <= ((radius + reach) ** 2) * slack + tiny  # beyond: the nearest exact row is too
            rows, idx, first, qs = rows[near], idx[near], first[near], qs[near]
            if window < m and rows.numel():
                # every row that could be the exact nearest (or tie with it) must lie inside the window
                last = _pair_distances(qs, bank.search, idx[:, -1:]).squeeze(1)
                short = last <= (first.sqrt() + 2 * reach) ** 2 * slack + tiny
                if bool(short.any()):
                    grow.append(rows[short])
                    rows, idx = rows[~short], idx[~short]
            if not rows.numel():
                continue
            d = bank.distance(_pair_distances(queries.exact.index_select(0, rows), bank.exact, idx))
            by_index = torch.argsort(idx, dim=1, stable=True)
            d, idx = d.gather(1, by_index), idx.gather(1, by_index)
            best = torch.argmin(d, dim=1, keepdim=True)  # the first minimum: the lowest index among ties
            d, idx = d.gather(1, best).squeeze(1), idx.gather(1, best).squeeze(1)
            hit = d <= threshold
            out_q.append(rows[hit])
            out_j.append(idx[hit])
            out_d.append(d[hit])
        pending = torch.cat(grow) if grow else pending[:0]
        window = min(2 * window, m)
    if not out_q:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty.clone(), torch.zeros(0, dtype=torch.float64)
    q, j, d = (torch.cat(parts).cpu() for parts in (out_q, out_j, out_d))
    order = torch.argsort(q)
    return q[order], j[order], d[order]
