"""What to label next: :func:`select_for_labeling`, core-set (k-center greedy), uncertainty, novelty and class-balanced picks.

``"kcenter"`` is the greedy farthest-first traversal of Sener & Savarese
(ICLR 2018): each pick is the pool row farthest from everything labelled or
picked so far. Each pick is one call of the fused kernel
``balancedtorch::kcenter_update`` (float64 distances to the new centre, the
running minimum and its argmax in one pass over the pool), so the picks are
those of a float64 greedy. Where that kernel is not built (CUDA in a CPU-only
build) it runs approximately instead (one matrix-vector product per pick, in
the features' dtype, with a proven error bound per row) and decides every
pick on exact float64 distances: the same picks.
The other strategies rank the pool by a per-row score. Under
``torch.distributed`` the pool is sharded across ranks and every rank gets the
picks of one process on the concatenated pool.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from .._distributed import Comm, use_distributed
from ..ops.knn import knn
from ._inputs import check_pred_probs
from ._knn_search import _features, _pair_distances, _row_sums
from .novelty import NoveltyDetector

__all__ = ["select_for_labeling"]

STRATEGIES = ("kcenter", "margin", "entropy", "balanced", "novelty")
NOVELTY_K = 10  # neighbour rank of the "novelty" score (fewer when fewer rows are labelled)
_BLOCK = 2**22  # float64 elements of one block of exact differences
_NONE = float(2**62)  # global index of "no candidate" (sorts after every real row; exact in float64)


# --- checks -----------------------------------------------------------------------


def _inputs(
    pool_features: Any,
    budget: Any,
    strategy: Any,
    labeled_features: Any,
    pred_probs: Any,
    generator: Any,
    normalize: Any,
    allow_empty: bool,
) -> Tuple[int, Tensor, Optional[Tensor], Optional[Tensor]]:
    owner = "select_for_labeling"
    _validate.choice(strategy, "strategy", STRATEGIES, caller=owner)
    budget = _validate.integer(budget, "budget", low=1, caller=owner)
    _validate.flag(normalize, "normalize", caller=owner)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{owner}: generator must be a torch.Generator, got {type(generator).__name__}")
    x = _features(pool_features, "pool_features", owner, allow_empty=allow_empty)
    lab = None
    if labeled_features is not None:
        lab = _features(labeled_features, "labeled_features", owner, None, x.device, allow_empty=True)
        if lab.shape[1] != x.shape[1]:
            raise ValueError(f"{owner}: labeled_features has {lab.shape[1]} features but pool_features has {x.shape[1]}")
        lab = lab if lab.shape[0] else None
    if strategy == "novelty" and lab is None:
        raise ValueError(f"{owner}: strategy='novelty' needs labeled_features (at least one row) to measure novelty from")
    p = None
    if strategy in ("margin", "entropy", "balanced"):
        if pred_probs is None:
            raise ValueError(f"{owner}: strategy={strategy!r} needs pred_probs (the model's probabilities on the pool)")
        shape = tuple(getattr(pred_probs, "shape", np.shape(pred_probs)))
        if len(shape) != 2 or shape[0] != x.shape[0]:
            raise ValueError(f"{owner}: pred_probs must have shape ({x.shape[0]}, K) (one row per pool row), got {shape}")
        if shape[0]:
            p = check_pred_probs(pred_probs, None).to(x.device)
        else:
            p = torch.zeros(shape, dtype=torch.float64, device=x.device)
            if shape[1] < 2:
                raise ValueError(f"{owner}: pred_probs must have K >= 2 classes, got {shape}")
    return budget, x, lab, p


# --- scores -----------------------------------------------------------------------


def _margin(p: Tensor) -> Tensor:
    top = p.double().topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def _entropy(p: Tensor) -> Tensor:
    if p.shape[0] == 0:
        return p.new_zeros(0, dtype=torch.float64)
    return _row_sums(torch.special.entr(p.double()))  # 0 log 0 = 0; row by row, whatever the batch


def _first_by(keys: List[Tensor], budget: int) -> Tensor:
    """The ``budget`` rows first in lexicographic order of ``keys`` (ascending), then of the row index."""
    order = torch.arange(keys[0].numel())
    for key in reversed(keys):
        order = order[torch.argsort(key.cpu()[order], stable=True)]
    return order[:budget]


def _balanced(margin: Tensor, cls: Tensor, budget: int) -> Tensor:
    """Round robin over the predicted classes, lowest margin first inside each; a round in order of margin."""
    order = _first_by([cls, margin], cls.numel())  # by class, then margin, then index
    cls_sorted = cls[order]
    counts = torch.bincount(cls_sorted)
    starts = torch.cumsum(counts, 0) - counts
    rank_in_class = torch.empty_like(order)
    rank_in_class[order] = torch.arange(order.numel()) - starts[cls_sorted]
    return _first_by([rank_in_class, margin], budget)


# --- k-center greedy --------------------------------------------------------------


def _matmul_unit(dtype: torch.dtype, device: torch.device) -> float:
    """Unit roundoff of a product in ``dtype`` (TF32 / bfloat16 where torch allows them for float32)."""
    if dtype == torch.float64:
        return 2.0**-53
    precision = torch.get_float32_matmul_precision()
    tf32 = device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32
    if precision == "medium":
        return 2.0**-8
    if precision == "high" or tf32:
        return 2.0**-11
    return 2.0**-24


def _labelled_distances(x: Tensor, labeled: Tensor) -> Tensor:
    """float64 squared distance of every row of ``x`` to its nearest labelled row (knn, chunk by chunk)."""
    step = max(1, (64 * 2**20) // (8 * labeled.shape[1]))
    best = torch.full((x.shape[0],), math.inf, dtype=torch.float64, device=x.device)
    for a in range(0, labeled.shape[0], step):
        chunk = labeled[a : a + step].to(x.dtype)
        idx = knn(x, 1, ref=chunk)[1]
        best = torch.minimum(best, _pair_distances(x, chunk, idx).squeeze(1))
    return best


def _has_fused_kernel(device: torch.device) -> bool:
    """Whether ``balancedtorch::kcenter_update`` has a kernel for ``device`` (CUDA only in a CUDA build)."""
    key = "CUDA" if device.type == "cuda" else "CPU"
    return device.type in ("cpu", "cuda") and torch._C._dispatch_has_kernel_for_dispatch_key("balancedtorch::kcenter_update", key)


class _KCenterFused:
    """Greedy farthest-first over this process's pool rows (a rank's slice, at ``offset``), fused.

    ``mind`` holds, per row, its exact float64 squared distance to the
    nearest center (-inf once picked: never a candidate again; +inf before
    any center). A new center costs one call of ``kcenter_update``: one pass
    over the pool that returns the updated minimums and their argmax (the
    lowest index among ties), so the next pick is known without another pass.
    """

    def __init__(self, x: Tensor, offset: int, comm: Optional[Comm]) -> None:
        self.x, self.offset = x.contiguous(), offset
        self.mind = torch.full((x.shape[0],), math.inf, dtype=torch.float64, device=x.device)
        self.top: Optional[Tensor] = None  # 0-d index of the largest of mind

    def start_from(self, labeled: Tensor) -> None:
        if self.x.shape[0] == 0:
            return
        self.mind = _labelled_distances(self.x, labeled)
        self.top = torch.argmax(self.mind)  # the first maximum: the lowest index among ties

    def add(self, row: Tensor, global_index: int) -> None:
        """A new center (its float64 row): the distances to it, the minimums and the next candidate."""
        if self.x.shape[0] == 0:
            return
        local = global_index - self.offset
        if 0 <= local < self.x.shape[0]:
            self.mind[local] = -math.inf  # picked: stays -inf through every minimum
        self.mind, self.top = torch.ops.balancedtorch.kcenter_update(self.x, row.to(self.x.device), self.mind)

    def best(self) -> Tuple[float, float]:
        """(exact distance, global index) of this slice's farthest row; (-inf, _NONE) when none is left."""
        if self.x.shape[0] == 0 or self.top is None:
            return -math.inf, _NONE
        i = int(self.top)
        value = float(self.mind[i])
        if value == -math.inf:
            return -math.inf, _NONE
        return value, float(i + self.offset)

    def row(self, global_index: float) -> Tensor:
        local = int(global_index) - self.offset
        if 0 <= local < self.x.shape[0]:
            return self.x[local].double()
        return self.x.new_zeros(self.x.shape[1], dtype=torch.float64)


class _KCenter:
    """Greedy farthest-first over this process's pool rows (a rank's slice, at ``offset``), bounded.

    The path of a device without the fused kernel (CUDA in a CPU-only build).

    ``approx`` holds, per row, its squared distance to the nearest center
    within ``bound`` of the exact float64 value: ``|p|^2 + |c|^2 - 2 p.c`` on
    rows centred on the pool's mean, all of it one matrix-vector product per
    pick (the rows carry ``-2 p``, 1 and ``|p|^2``; the center ``c``, ``|c|^2``
    and 1), so a pick costs one pass over the pool and three over a vector. A
    pick is the argmax of the exact values; only rows whose approximate value
    comes within ``2 * bound`` of the largest can be it, and only theirs are
    computed exactly (float64 differences, cached: each row's exact distance
    is brought up to date with the centers added since its last visit).
    """

    def __init__(self, x: Tensor, offset: int, comm: Optional[Comm]) -> None:
        self.x, self.offset, self.comm = x, offset, comm
        n, dim = x.shape
        dev = x.device
        total = torch.tensor([float(n)], dtype=torch.float64)
        sums = x.double().sum(0).cpu()
        if comm is not None:
            total, sums = comm.all_reduce(total), comm.all_reduce(sums)
        self.mean = (sums / total.clamp_min(1)).to(dev)
        centered = x.double() - self.mean
        rounded = centered.to(x.dtype)
        self.rows = torch.cat(
            [rounded * -2, torch.ones_like(rounded[:, :1]), rounded.double().square().sum(1, keepdim=True).to(x.dtype)], 1
        )
        radius = centered.norm(dim=1).max().reshape(1).cpu() if n else torch.zeros(1, dtype=torch.float64)
        if comm is not None:
            radius = torch.stack(comm.all_gather(radius)).max().reshape(1)
        r = float(radius) * (1 + 2**-20)
        unit = torch.finfo(x.dtype).eps / 2  # rounding of the centred rows, |p|^2 and |c|^2 to x's dtype
        eps = 2.0**-52
        u = _matmul_unit(x.dtype, dev)
        gamma = (dim + 3) * u / (1 - (dim + 3) * u)
        s = 1.01 * (unit + eps) * r  # |fl(x - mean) - (x - mean)| per row (L2)
        # |approx - exact|: the product's rounding (its terms sum to at most (|p| + |c|)^2 <= 4 r^2, |p|^2 and
        # |c|^2 rounded to x's dtype), the rows' rounding, and the float64 rounding of the exact differences
        self.bound = 2 * (gamma * 4 * r * r + 2 * unit * r * r + 2 * s * (4 * r + 2 * s) + 4 * dim * eps * r * r)
        self.bound += torch.finfo(torch.float64).tiny
        self.approx = torch.full((n,), math.inf, dtype=x.dtype, device=dev)
        self.exact = torch.full((n,), math.inf, dtype=torch.float64, device=dev)
        self.upto = torch.zeros(n, dtype=torch.long, device=dev)
        self.centers: List[Tensor] = []  # float64 rows of the picks

    def start_from(self, labeled: Tensor) -> None:
        """Exact distances to the nearest labelled row (knn, chunk by chunk of the labelled set)."""
        if self.x.shape[0] == 0:
            return
        best = _labelled_distances(self.x, labeled)
        self.exact = best
        self.approx = best.to(self.x.dtype, copy=True)
        self.bound += float(best.max()) * torch.finfo(self.x.dtype).eps  # rounding of the start to x's dtype

    def add(self, row: Tensor, global_index: int) -> None:
        """A new center (its float64 row): update the approximate distances."""
        self.centers.append(row)
        if self.x.shape[0] == 0:
            return
        c = (row.to(self.x.device) - self.mean).to(self.x.dtype)
        center = torch.cat([c, c.double().square().sum().reshape(1).to(c.dtype), c.new_ones(1)])
        torch.minimum(self.approx, torch.mv(self.rows, center), out=self.approx)
        local = global_index - self.offset
        if 0 <= local < self.x.shape[0]:
            self.approx[local] = -math.inf  # picked: never a candidate again

    def best(self) -> Tuple[float, float]:
        """(exact distance, global index) of this slice's farthest row; (-inf, _NONE) when none is left."""
        if self.x.shape[0] == 0:
            return -math.inf, _NONE
        top = float(self.approx.max())
        if top == -math.inf:
            return -math.inf, _NONE
        cand = (self.approx >= top - 2 * self.bound).nonzero().squeeze(1)
        stale = cand[self.upto[cand] < len(self.centers)]
        if stale.numel():
            self._refresh(stale)
        values = self.exact[cand]
        i = int(torch.argmax(values))  # the first maximum: the lowest index among ties
        return float(values[i]), float(int(cand[i]) + self.offset)

    def _refresh(self, rows: Tensor) -> None:
        first = int(self.upto[rows].min())  # centers already counted for some rows: min() is unchanged by them
        centers = torch.stack(self.centers[first:]).to(self.x.device)
        pts = self.x.index_select(0, rows).double()
        best = self.exact[rows]
        per = max(1, _BLOCK // (centers.shape[0] * pts.shape[1]))
        for a in range(0, rows.numel(), per):
            diff = pts[a : a + per].unsqueeze(1) - centers.unsqueeze(0)
            best[a : a + per] = torch.minimum(best[a : a + per], diff.square_().sum(2).min(1).values)
        self.exact[rows] = best
        self.upto[rows] = len(self.centers)

    def row(self, global_index: float) -> Tensor:
        local = int(global_index) - self.offset
        if 0 <= local < self.x.shape[0]:
            return self.x[local].double()
        return self.x.new_zeros(self.x.shape[1], dtype=torch.float64)


def _kcenter(
    x: Tensor, budget: int, labeled: Optional[Tensor], generator: Optional[torch.Generator], offset: int, total: int, comm
) -> Tensor:
    state = (_KCenterFused if _has_fused_kernel(x.device) else _KCenter)(x, offset, comm)
    picks: List[int] = []

    def take(value: float, index: float) -> None:
        row = state.row(index)
        if comm is not None:  # every rank's best (value, index, row): the owner's row travels with it
            mine = torch.cat([torch.tensor([value, index], dtype=torch.float64), row.cpu()])
            rows = torch.stack(comm.all_gather(mine))
            ties = rows[rows[:, 0] == rows[:, 0].max()]
            pick = ties[int(ties[:, 1].argmin())]  # the farthest; among ties, the lowest global index
            index, row = float(pick[1]), pick[2:]
        picks.append(int(index))
        state.add(row.to(x.device), int(index))

    if labeled is not None:
        state.start_from(labeled)
    else:
        first = torch.randint(total, (1,), generator=generator)
        if comm is not None:  # rank 0's draw
            first = comm.all_gather(first)[0]
        take(0.0, float(first))
    while len(picks) < budget:
        take(*state.best())
    return torch.tensor(picks, dtype=torch.long)


# --- public API ------------------------------------------------------------------


def select_for_labeling(
    pool_features: Any,
    budget: int,
    *,
    strategy: str = "kcenter",
    labeled_features: Any = None,
    pred_probs: Any = None,
    generator: Optional[torch.Generator] = None,
    normalize: bool = True,
    distributed: Optional[bool] = None,
) -> Tensor:
    """Which ``budget`` pool rows to label next.

    Strategies:

    - ``"kcenter"`` (default): core-set greedy (Sener & Savarese, ICLR 2018):
      repeatedly the pool row farthest (Euclidean) from every labelled row and
      every row picked so far. Without ``labeled_features`` the first pick is
      drawn uniformly with ``generator``. Exact: the picks of a float64 greedy,
      ties to the lowest index.
    - ``"margin"``: lowest margin between the two largest ``pred_probs`` first.
    - ``"entropy"``: highest entropy of ``pred_probs`` first.
    - ``"balanced"``: the budget split evenly over the predicted classes
      (argmax of ``pred_probs``), lowest margin first inside each; a class with
      too few rows leaves its share to the others (round robin: the j-th row of
      every class before any class's (j+1)-th, a round in order of margin).
    - ``"novelty"``: farthest from the labelled set first: the
      :class:`NoveltyDetector` score (distance to the k-th nearest labelled
      row, k = min(10, labelled rows)); with ``normalize=True`` (default)
      pool and labelled rows are L2-normalised first (the distance of their
      directions, as :class:`NoveltyDetector`'s default), with
      ``normalize=False`` it is the Euclidean distance of the raw rows.

    Ties go to the lowest pool index everywhere.

    What each strategy measures: ``"kcenter"`` the Euclidean distance of the
    raw rows, always (normalise pool and labelled rows yourself, e.g. with
    ``torch.nn.functional.normalize(x, dim=1)``, for a core-set of
    directions); ``"novelty"`` that of the rows as ``normalize`` says;
    ``"margin"``, ``"entropy"`` and ``"balanced"`` read ``pred_probs`` only.
    Normalised features suit embeddings of a network (their length carries
    little, their direction the content); raw ones suit features whose
    scale means something, such as low-dimensional measurements, where
    normalising maps every row onto the unit sphere and a rare cluster in
    the direction of the labelled set looks like it.

    Distributed (``distributed=True``, or None with an initialised process
    group of world size > 1): collective. Each rank passes its own slice of
    the pool (and of ``pred_probs``); the pool is their concatenation in rank
    order, and every rank gets the same picks, as indices into it: those of one
    process. ``labeled_features`` is the whole labelled set on every rank;
    without it, the first k-center pick is rank 0's draw.

    Args:
        pool_features (Tensor[N, D] | array): unlabelled rows (float32/float64;
            others are taken as float32); CPU or CUDA.
        budget (int): how many to pick, 1 <= budget <= N.
        strategy (str): one of the above. Default ``"kcenter"``.
        labeled_features (Tensor[L, D], optional): rows already labelled
            (``"kcenter"``, needed by ``"novelty"``); searched chunk by chunk.
        pred_probs (Tensor[N, K], optional): the model's probabilities on the
            pool (rows sum to 1); needed by ``"margin"``, ``"entropy"`` and
            ``"balanced"``.
        generator (torch.Generator, optional): CPU generator of the first
            k-center pick. Default: torch's global RNG.
        normalize (bool): ``"novelty"`` only: L2-normalise the rows before
            measuring distances (default True, as before); False: raw
            Euclidean distances. The other strategies do not read it (see
            above); distributed, every rank must pass the same value.
        distributed (bool, optional): see above. Default None.

    Returns:
        Tensor[budget] int64 (CPU): distinct pool indices, in the order picked
        (most informative first).

    Raises:
        TypeError: ``budget`` not an int, ``generator`` not a torch.Generator,
            ``normalize`` not True or False.
        ValueError: ``budget`` < 1 or larger than the pool; unknown
            ``strategy``; a strategy without what it needs; ``pred_probs`` of
            another shape or not probabilities; features of different D,
            non-2-D, empty or with NaN/inf.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> pool = torch.tensor([[0.0, 0.0], [0.1, 0.0], [4.0, 0.0], [0.0, 3.0]])
        >>> bt.quality.select_for_labeling(pool, 2, labeled_features=torch.zeros(1, 2))
        tensor([2, 3])

        Raw 2-D measurements: a rare cluster at (6, 6) in the direction of
        the labelled rows is new only by its distance, which normalising
        removes:

        >>> g = torch.Generator().manual_seed(0)
        >>> labeled = torch.randn(40, 2, generator=g) * 0.3 + 1.0
        >>> pool = torch.cat([torch.randn(30, 2, generator=g) * 0.3 + 1.0,   # rows 0-29: as labelled
        ...                   torch.randn(5, 2, generator=g) * 0.1 + 6.0])   # rows 30-34: rare cluster
        >>> raw = bt.quality.select_for_labeling(pool, 5, strategy="novelty", labeled_features=labeled, normalize=False)
        >>> sorted(raw.tolist())
        [30, 31, 32, 33, 34]
        >>> unit = bt.quality.select_for_labeling(pool, 5, strategy="novelty", labeled_features=labeled)  # normalize=True
        >>> [i for i in unit.tolist() if i >= 30]  # by direction alone the cluster looks labelled
        []
    """
    owner = "select_for_labeling"
    shard = use_distributed(distributed)
    if not shard:
        budget, x, lab, p = _inputs(pool_features, budget, strategy, labeled_features, pred_probs, generator, normalize, False)
        if budget > x.shape[0]:
            raise ValueError(f"{owner}: budget={budget} is larger than the pool ({x.shape[0]} rows)")
        return _select(strategy, budget, x, lab, p, generator, normalize, 0, x.shape[0], None)
    comm = Comm()
    error: Optional[Exception] = None
    facts = [0, 0, 0, 0, 0]
    try:
        budget, x, lab, p = _inputs(pool_features, budget, strategy, labeled_features, pred_probs, generator, normalize, True)
        facts = [x.shape[0], x.shape[1], 0 if lab is None else lab.shape[0], 0 if p is None else p.shape[1]]
        facts.append(int(bool(normalize)) if strategy == "novelty" else 0)
    except (ValueError, TypeError) as e:
        error = e
    everyone = comm.agree(error, facts, owner)
    checks = (("number of features", 1), ("labelled rows", 2), ("classes of pred_probs", 3), ("normalize", 4))
    for what, col in checks:
        if len({r[col] for r in everyone}) > 1:
            raise ValueError(f"{owner}: the ranks disagree on their {what}: {[r[col] for r in everyone]}")
    sizes = [r[0] for r in everyone]
    if budget > sum(sizes):
        raise ValueError(f"{owner}: budget={budget} is larger than the pool ({sum(sizes)} rows over all ranks: {sizes})")
    return _select(strategy, budget, x, lab, p, generator, normalize, sum(sizes[: comm.rank]), sum(sizes), comm, sizes)


def _select(strategy, budget, x, lab, p, generator, normalize, offset, total, comm, sizes=None) -> Tensor:
    if strategy == "kcenter":
        return _kcenter(x, budget, lab, generator, offset, total, comm)

    def gathered(t: Tensor) -> Tensor:
        t = t.cpu()
        return torch.cat(comm.all_gather_rows(t, sizes)) if comm is not None else t

    if strategy == "margin":
        return _first_by([gathered(_margin(p))], budget)
    if strategy == "entropy":
        return _first_by([gathered(-_entropy(p))], budget)
    if strategy == "balanced":
        cls = p.argmax(1) if p.shape[0] else p.new_zeros(0, dtype=torch.long)
        return _balanced(gathered(_margin(p)), gathered(cls), budget)
    det = NoveltyDetector(k=min(NOVELTY_K, lab.shape[0]), normalize=bool(normalize), distributed=False).fit(lab)
    scores = det.score(x).double() if x.shape[0] else x.new_zeros(0, dtype=torch.float64)
    return _first_by([gathered(-scores)], budget)
