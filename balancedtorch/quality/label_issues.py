"""Finding mislabeled samples: confident learning (as cleanlab) and the simple mistake ranking."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Mapping
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .._classes import group_by_class
from .._optional import require
from ._distributed import Comm, check_distributed
from ._inputs import as_tensor, check_labels, check_labels_and_probs, check_pred_probs
from ._results import MistakesPerClass, RankedMistakes, check_class_names

__all__ = ["find_label_issues", "rank_mistakes", "mistakes_per_class", "label_quality_scores"]

PRUNING_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both")
FILTERS = PRUNING_FILTERS + ("confident_learning", "predicted_neq_given", "low_normalized_margin", "low_self_confidence")
RANKINGS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")

# cleanlab's constants, so that borderline cases are decided the same way
_FLOATING_POINT_COMPARISON = 1e-6
_THRESHOLD_LOWER_BOUND = 2e-6
_CLIPPING_LOWER_BOUND = 1e-6
_TINY = 1e-100
_ABSENT_CLASS_THRESHOLD = 2  # cleanlab's BIG_VALUE: no probability reaches it
_MULTILABEL_EMA_ALPHA = 0.8  # cleanlab's default aggregator of per-class scores in multi-label data
_UNSET = object()


# --------------------------------------------------------------------------- scores
# Label-quality scores are computed with numpy, with cleanlab's formulas and
# dtypes (self_confidence and normalized_margin in the input's dtype,
# confidence_weighted_entropy in float64), and ranked with numpy's argsort:
# the same scores, bit for bit, order the flagged samples exactly as cleanlab,
# ties included. Only the flagged rows are scored, so this is not a hot path.


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype :func:`_numpy_probs` gives a tensor of ``dtype``."""
    return {torch.float64: np.dtype(np.float64), torch.float16: np.dtype(np.float16)}.get(dtype, np.dtype(np.float32))


def _numpy_probs(p: Tensor) -> np.ndarray:
    if p.dtype in (torch.float32, torch.float64, torch.float16):
        return p.cpu().numpy()
    return p.float().cpu().numpy()  # bfloat16 and others: numpy has no such dtype


def _thresholds_np(class_values: Sequence[np.ndarray]) -> np.ndarray:
    """cleanlab's ``get_confident_thresholds`` from each class's self-confidences (index order).

    The mean is numpy's (pairwise, in the input dtype), and the dtype follows
    cleanlab: the input's when every class is present, float64 otherwise.
    """
    means = [np.mean(v) if v.size else _ABSENT_CLASS_THRESHOLD for v in class_values]
    return np.clip(means, a_min=_THRESHOLD_LOWER_BOUND, a_max=None)


def _thresholds_of(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return _thresholds_np([p[:, k][y == k] for k in range(p.shape[1])])


def _scores_np(y: np.ndarray, p: np.ndarray, method: str, adjust_pred_probs: bool = False, thresholds=None) -> np.ndarray:
    """cleanlab's ``rank.get_label_quality_scores`` on rows ``(y, p)``; ``thresholds`` from the whole data set."""
    if adjust_pred_probs:
        if thresholds is None:
            thresholds = _thresholds_of(y, p)
        p = p - thresholds
        p += thresholds.max()
        p /= p.sum(axis=1, keepdims=True)
    self_conf = p[np.arange(y.shape[0]), y]
    if method == "self_confidence":
        return self_conf
    if method == "normalized_margin":
        # the largest probability among the other classes: the given one masked out
        others = np.where(np.arange(p.shape[1]) == y[:, None], -np.inf, p).max(axis=1).astype(p.dtype)
        return (self_conf - others + 1) / 2
    # confidence_weighted_entropy; np.log(K) is a float64 scalar: the score is float64
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError("pred_probs must hold probabilities in [0, 1] for confidence_weighted_entropy")
    xlogy = require("scipy.special", "method='confidence_weighted_entropy'", "sklearn").xlogy
    entropy = -np.sum(xlogy(p, p), axis=1) / np.log(p.shape[1])
    ratio = entropy / np.clip(self_conf, a_min=_CLIPPING_LOWER_BOUND, a_max=None)
    return np.log(ratio + 1) / np.clip(ratio, a_min=_CLIPPING_LOWER_BOUND, a_max=None)


def _multilabel_scores_np(y_one: np.ndarray, p: np.ndarray, method: str, adjust_pred_probs: bool = False) -> np.ndarray:
    """cleanlab's multi-label score: each class scored one-vs-rest, then its exponential moving average (alpha 0.8)."""
    per_class = np.zeros(y_one.shape)
    for c in range(p.shape[1]):
        per_class[:, c] = _scores_np(y_one[:, c], np.vstack((1 - p[:, c], p[:, c])).T, method, adjust_pred_probs)
    ordered = np.fliplr(np.sort(per_class, axis=1)).T
    ema = ordered[0]
    for s in ordered[1:]:
        ema = _MULTILABEL_EMA_ALPHA * s + (1 - _MULTILABEL_EMA_ALPHA) * ema
    return ema


def _check_method(method: Any, name: str) -> str:
    if method not in RANKINGS:
        raise ValueError(f"{name} must be one of {RANKINGS}, got {method!r}")
    return method


def _check_rank_by_kwargs(rank_by_kwargs: Any, method: Optional[str]) -> bool:
    """``adjust_pred_probs`` from cleanlab's ``rank_by_kwargs`` (the only key it forwards)."""
    if rank_by_kwargs is None:
        return False
    if not isinstance(rank_by_kwargs, dict):
        raise TypeError(f"rank_by_kwargs must be a dict or None, got {type(rank_by_kwargs).__name__}")
    unknown = set(rank_by_kwargs) - {"adjust_pred_probs"}
    if unknown:
        raise ValueError(f"rank_by_kwargs accepts only 'adjust_pred_probs', got {sorted(unknown)}")
    adjust = rank_by_kwargs.get("adjust_pred_probs", False)
    if not isinstance(adjust, (bool, np.bool_)):
        raise TypeError(f"rank_by_kwargs['adjust_pred_probs'] must be a bool, got {adjust!r}")
    if adjust and method == "confidence_weighted_entropy":
        raise ValueError("adjust_pred_probs is not supported for confidence_weighted_entropy (as cleanlab)")
    return bool(adjust)


def label_quality_scores(labels: Any, pred_probs: Any, method: str = "self_confidence", *, adjust_pred_probs: bool = False):
    """Per-sample label quality in [0, 1] (low = likely mislabeled), as ``cleanlab.rank.get_label_quality_scores``.

    ``self_confidence``: p[y]; ``normalized_margin``: (p[y] - max_{k != y} p[k] + 1) / 2;
    ``confidence_weighted_entropy``: log(1 + H/p[y]) / max(H/p[y], 1e-6) with H
    the entropy normalised by log K and p[y] clipped at 1e-6. The same values,
    bit for bit, and dtypes as cleanlab: the first two in the input's dtype,
    ``confidence_weighted_entropy`` in float64.

    Args:
        labels (Tensor[N] | array): given labels in [0, K).
        pred_probs (Tensor[N, K] | array): predicted probabilities (rows sum to 1;
            for logits pass ``logits.softmax(dim=1)``).
        method (str): ``"self_confidence"`` (default), ``"normalized_margin"`` or
            ``"confidence_weighted_entropy"``.
        adjust_pred_probs (bool): subtract each class's mean self-confidence and
            renormalise first (accounts for class imbalance; default False).

    Returns:
        scores[N]: numpy in, numpy out; a tensor (on ``pred_probs``'s device) otherwise.
        bfloat16 input is scored in float32 (numpy has no bfloat16).

    Example:
        >>> scores = bt.quality.label_quality_scores(labels, pred_probs, "normalized_margin")
        >>> worst = np.argsort(scores)[:20]
    """
    _check_method(method, "method")
    adjust = _check_rank_by_kwargs({"adjust_pred_probs": adjust_pred_probs}, method)
    y, p = check_labels_and_probs(labels, pred_probs)
    scores = _scores_np(y.cpu().numpy(), _numpy_probs(p), method, adjust)
    if isinstance(pred_probs, Tensor):
        return torch.from_numpy(np.ascontiguousarray(scores)).to(p.device)
    return scores


# --------------------------------------------------------------------------- confident joint


def _round_keeping_total(values: np.ndarray) -> np.ndarray:
    """Largest-remainder rounding of one row of counts.

    Each value goes to the nearest integer (halves to even), then the total is
    brought to the rounded total of the values: the ``short`` entries with the
    largest remainders ``value - rounded`` go one up (or, for a surplus, those
    with the smallest go one down). The rounded total differs from the sum of
    the rounded values by at most ``len(values)``, so one such step is exact.
    A row whose total is not finite is only rounded entry by entry.
    """
    rounded = np.round(values)
    short = np.round(values.sum()) - rounded.sum()
    if np.isfinite(short) and short != 0:
        remainders = np.argsort(values - rounded)  # ascending remainder
        step = int(short)
        chosen = remainders[::-1][:step] if step > 0 else remainders[:-step]
        rounded[chosen] += 1 if step > 0 else -1
    return rounded.astype(int)


def _round_rows(matrix: np.ndarray) -> np.ndarray:
    """Every row of a count matrix rounded to integers with its total kept (see _round_keeping_total)."""
    return np.stack([_round_keeping_total(np.asarray(row, dtype=float)) for row in matrix]).astype(int)


def _prune_counts(confident_joint: np.ndarray, min_per_class: int, frac_noise: float) -> np.ndarray:
    """How many samples of each (true, given) label pair to prune: the prune-by-class / by-noise-rate counts.

    Northcutt et al. (2021), section 3.2: the off-diagonal entries of the
    confident joint C[given, true] count the label errors. Here, with
    T = C transposed (row: true label i, column: given label j):

    1. Class j keeps at least ``min_per_class`` samples: where T[j, j] is smaller
       it is raised to ``min_per_class``, and the amount raised is taken in equal
       shares from the entries of column j (one share per non-zero entry other
       than the diagonal, at least one share), never below zero.
    2. Only ``frac_noise`` of each error count is pruned: the off-diagonal entries
       are scaled by it, and what they lose stays with the diagonal of their column.

    The result, in T's orientation, is truncated to integers.
    """
    table = confident_joint.T.astype(float)
    kept = np.diagonal(table)
    raised = np.maximum(kept, min_per_class)
    shares = np.maximum(np.count_nonzero(table, axis=0) - 1.0, 1.0)
    adjusted = np.clip(table - (raised - kept) / shares, 0, None)
    np.fill_diagonal(adjusted, raised)
    pruned = adjusted * frac_noise
    np.fill_diagonal(pruned, raised)
    np.fill_diagonal(pruned, raised + np.sum(adjusted - pruned, axis=0))
    return pruned.astype(int)  # truncated counts are integers already: no rounding left to do


def _prune_counts_to_remove(prune: np.ndarray, label_counts: np.ndarray, num_to_remove: np.ndarray) -> np.ndarray:
    """The prune counts rescaled so that samples of class k are flagged ``num_to_remove[k]`` times in all.

    cleanlab's rule, which its users' numbers depend on: entry (i, j) is divided
    by the total of row j (not of column j), the off-diagonal part of each row
    of those shares is scaled to ``num_to_remove`` of that row's class, the
    diagonal becomes ``label_counts - num_to_remove``, and each row is rounded
    keeping its total.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = prune / np.sum(prune, axis=1)  # broadcasts row j's total over column j
        off_diagonal = np.sum(shares, axis=1) - np.diagonal(shares)
        scaled = shares * num_to_remove[:, None] / off_diagonal[:, None]
    np.fill_diagonal(scaled, label_counts - num_to_remove)
    undefined = ~np.isfinite(scaled)
    if not undefined.any():
        return _round_rows(scaled)
    # a class with samples to remove but no estimated noise: its shares are
    # undefined (0 / 0), and nothing is pruned for those pairs
    warnings.warn(
        "num_to_remove_per_class: some classes have no estimated label noise to scale, so fewer samples than "
        "asked may be flagged; filter_by='prune_by_class' removes exactly num_to_remove_per_class",
        stacklevel=4,
    )
    with np.errstate(invalid="ignore"):
        rounded = np.stack([_round_keeping_total(row) for row in scaled.astype(float)])
    rounded[undefined] = 0
    return rounded.astype(int)


def _lowest_float_at_least(bound: np.ndarray, dtype: torch.dtype) -> Tensor:
    """Per entry, the smallest ``dtype`` value v with float64(v) >= bound.

    ``p >= v`` in ``dtype`` then decides exactly as ``float64(p) >= bound``,
    which is what numpy does when cleanlab's thresholds are float64 and
    ``pred_probs`` float32 (a class is absent): no float64 copy of pred_probs.
    """
    exact = torch.as_tensor(np.asarray(bound, dtype=np.float64))
    v = exact.to(dtype)
    return torch.where(v.double() < exact, torch.nextafter(v, torch.full_like(v, float("inf"))), v)


def _confident_thresholds(y: Tensor, p: Tensor, counts: Sequence[int], comm: Optional[Comm] = None) -> np.ndarray:
    """Per-class mean self-confidence, the confident joint's thresholds: cleanlab's, bit for bit.

    cleanlab takes numpy's mean (a pairwise float sum in the input's dtype,
    over the class's samples in index order). No reduce of per-rank partial
    sums reproduces that order, so across ranks each row's self-confidence
    (one scalar per row, never ``pred_probs``) is all-gathered and numpy's
    mean taken over the concatenation in rank order: the same bits as one
    process on the concatenated data, and as cleanlab.
    """
    return _ranking_thresholds(y, p, comm)


def _ranking_thresholds(y: Tensor, p: Tensor, comm: Optional[Comm] = None) -> np.ndarray:
    """cleanlab's ``get_confident_thresholds``: numpy's mean of each class's self-confidences, bit for bit.

    Across ranks each class's self-confidences (one scalar per row, grouped
    by class) are all-gathered and the same numpy mean taken on every rank.
    """
    K = p.shape[1]
    local_counts = torch.bincount(y, minlength=K)
    order, offsets = group_by_class(y, local_counts)
    grouped = p.gather(1, y[:, None]).squeeze(1).index_select(0, order)
    if comm is None:
        self_conf = _numpy_probs(grouped)
        return _thresholds_np([self_conf[offsets[k] : offsets[k + 1]] for k in range(K)])
    dtype = _numpy_dtype(p.dtype)
    rank_counts = torch.stack(comm.all_gather(local_counts.cpu())).numpy()  # [world, K]
    parts = [part.numpy().astype(dtype) for part in comm.all_gather_rows(grouped.double())]  # float64: exact
    bounds = np.concatenate([np.zeros((len(parts), 1), dtype=np.int64), np.cumsum(rank_counts, axis=1)], axis=1)
    return _thresholds_np([np.concatenate([part[b[k] : b[k + 1]] for part, b in zip(parts, bounds)]) for k in range(K)])


def _confident_joint(y: Tensor, p: Tensor, counts: Tensor, thresholds: np.ndarray, comm: Optional[Comm] = None):
    """Calibrated confident joint (K x K, rows: given label) and off-diagonal indices."""
    K = p.shape[1]
    # cleanlab compares pred_probs >= thresholds - 1e-6 in numpy's promoted dtype
    confident = p >= _lowest_float_at_least(thresholds - 1e-6, p.dtype).to(p.device)
    # counted as uint8 into int16/int32: far faster than a bool sum (int64)
    count_dtype = torch.int16 if K < 32767 else torch.int32
    num_confident = confident.view(torch.uint8).sum(1, dtype=count_dtype)
    # first confident class (bool viewed as uint8: no copy), or the argmax when several are
    guess = torch.where(num_confident > 1, p.argmax(1), confident.view(torch.uint8).argmax(1))
    keep = num_confident > 0
    # counted as cleanlab does, confusion_matrix(true=guess, pred=label).T: the
    # transposed (Fortran-order) layout changes numpy's pairwise summation
    # order in the calibration below, and with it the last bits that decide
    # ties in the rounding.
    counted = torch.zeros(K * K, dtype=torch.long, device=p.device)
    counted.index_add_(0, guess[keep] * K + y[keep], torch.ones_like(y[keep]))
    if comm is not None:
        counted = comm.all_reduce(counted)  # integer counts: the sum is exact
    joint = counted.view(K, K).cpu().numpy().T
    np.fill_diagonal(joint, joint.diagonal().clip(min=1))
    off_diagonal = torch.nonzero(keep & (guess != y)).flatten()
    label_counts = counts.cpu().numpy().astype(float)
    calibrated = (joint.T / np.clip(joint.sum(axis=1), _TINY, None) * label_counts).T
    calibrated = calibrated / np.clip(np.sum(calibrated), _TINY, None) * label_counts.sum()
    return _round_rows(calibrated), off_diagonal


def _near_prediction(y: Tensor, p: Tensor, rows: Tensor) -> Tensor:
    """cleanlab's _reduce_issues on ``rows``: the given label is the argmax once nudged by 1e-6 (input dtype)."""
    nudged = p[rows].clone()
    nudged[torch.arange(rows.numel(), device=p.device), y[rows]] += _FLOATING_POINT_COMPARISON
    return nudged.argmax(1) == y[rows]


def _smallest(values: Tensor, num: int) -> Tensor:
    """Positions of the ``num`` smallest values, chosen among exact ties at the cut as numpy's argsort (cleanlab)."""
    if num >= values.numel():
        return torch.arange(values.numel(), device=values.device)
    picked = torch.topk(values, num, largest=False, sorted=False).indices
    cut = values[picked].max()
    if int((values <= cut).sum()) > num:  # a tie straddles the cut: which ones cleanlab takes is numpy's choice
        return torch.from_numpy(np.argsort(_numpy_probs(values))[:num].copy()).to(values.device)
    return picked


def _select_smallest(values: Tensor, nums: np.ndarray, total: int, dtype: np.dtype, comm: Comm) -> Tensor:
    """Across ranks, per column j, this rank's share of ``np.argsort(column)[:nums[j]]`` on all ranks' rows.

    ``values`` (Tensor[n, M]) are this rank's rows; the column of all ranks
    is their concatenation in rank order (``total`` rows). The result is the
    bool mask [n, M] of this rank's rows among the ``nums[j]`` smallest.
    Each rank contributes its own ``max(nums)`` smallest per column (one
    all-gather), which holds every global cut; only where exactly tied values
    straddle a cut does the choice depend on numpy's (unstable) argsort of
    the whole column, and then that column (one scalar per row, as
    ``dtype``, the array the single-process code sorts) is all-gathered and
    sorted the same way on every rank.
    """
    n, M = values.shape
    v = values.detach().double().cpu()  # float64 holds every value exactly: the same comparisons
    nums = np.minimum(np.asarray(nums, dtype=np.int64), total)
    D = max(int(nums.max()) if M else 0, 1)
    top = torch.full((D, M), float("inf"), dtype=torch.float64)
    d = min(D, n)
    if d:
        top[:d] = torch.topk(v, d, dim=0, largest=False, sorted=True).values
    candidates = torch.cat(comm.all_gather(top)).sort(0).values  # holds each column's nums[j] smallest
    sel = torch.zeros((n, M), dtype=torch.bool)
    cut_at = torch.as_tensor(np.clip(nums - 1, 0, None))
    cuts = candidates.gather(0, cut_at[None]).squeeze(0) if M else torch.zeros(0, dtype=torch.float64)
    at_most = comm.all_reduce((v <= cuts[None]).sum(0))  # per column, how many of all rows are <= the cut
    straddle = [j for j in range(M) if 0 < nums[j] < total and int(at_most[j]) > nums[j]]
    for j in range(M):
        if nums[j] >= total:
            sel[:, j] = True
        elif nums[j] > 0 and j not in straddle:
            sel[:, j] = v[:, j] <= cuts[j]
    if straddle:
        parts = comm.all_gather_rows(v[:, straddle])
        start = sum(part.shape[0] for part in parts[: comm.rank])
        whole = torch.cat(parts).numpy().astype(dtype)
        for c, j in enumerate(straddle):
            chosen = np.argsort(np.ascontiguousarray(whole[:, c]))[: nums[j]] - start
            chosen = chosen[(chosen >= 0) & (chosen < n)]
            sel[torch.from_numpy(chosen.copy()), j] = True
    return sel.to(values.device)


def _prune_across_ranks(pk, members, k, n_k, prune, filter_by, by_class, by_noise, comm) -> None:
    """The pruning of class k (:func:`_find_single`) when its ``n_k`` samples are spread over ranks."""
    dtype = _numpy_dtype(pk.dtype)
    if filter_by in ("prune_by_class", "both"):
        num = min(int(n_k - prune[k, k]), n_k)
        if num >= 1:  # every rank agrees: prune and n_k are global
            sel = _select_smallest(pk[:, k : k + 1], np.array([num]), n_k, dtype, comm)
            by_class[members[sel[:, 0]]] = True
    if filter_by in ("prune_by_noise_rate", "both"):
        nums = np.minimum(prune[:, k], n_k)
        nums[k] = 0
        cols = np.flatnonzero(nums > 0)
        if cols.size:
            # the largest margins p_j - p_k are the smallest of their negation (exact), as numpy's argsort(-margin)
            margins = pk[:, torch.as_tensor(cols, device=pk.device)] - pk[:, k : k + 1]
            sel = _select_smallest(-margins, nums[cols], n_k, dtype, comm)
            by_noise[members[sel.any(1)]] = True


def _find_single(
    y: Tensor,
    p: Tensor,
    filter_by: str,
    frac_noise: float,
    num_to_remove: Optional[np.ndarray],
    min_examples_per_class: int,
    confident_joint: Optional[np.ndarray],
    comm: Optional[Comm] = None,
) -> Tensor:
    """The mask of cleanlab's single-label find_label_issues.

    With ``comm`` the rows are this rank's share: counts, thresholds and the
    confident joint are those of all ranks' rows, the mask is this rank's.
    """
    K = p.shape[1]
    local_counts = torch.bincount(y, minlength=K)
    order, offsets = group_by_class(y, local_counts)  # used by the thresholds and the pruning
    counts = local_counts
    if comm is not None:
        counts = comm.all_reduce(local_counts).to(y.device)
    thresholds = _confident_thresholds(y, p, counts.tolist(), comm)
    mask = torch.zeros(y.numel(), dtype=torch.bool, device=p.device)
    if filter_by == "predicted_neq_given":
        mask = p.argmax(1) != y
    elif confident_joint is None or filter_by not in PRUNING_FILTERS:
        joint, off_diagonal = _confident_joint(y, p, counts, thresholds, comm)
        if confident_joint is None:
            confident_joint = joint

    if filter_by in PRUNING_FILTERS:
        prune = _prune_counts(confident_joint, min_examples_per_class, float(frac_noise))
        if num_to_remove is not None:
            prune = _prune_counts_to_remove(prune, counts.cpu().numpy(), num_to_remove)
        by_label = p.index_select(0, order)  # rows grouped by given label, one gather
        by_class = torch.zeros_like(mask)
        by_noise = torch.zeros_like(mask)
        for k in range(K):
            members = order[offsets[k] : offsets[k + 1]]
            n_k = members.numel() if comm is None else int(counts[k])  # all ranks' samples of class k
            if n_k <= min_examples_per_class:
                if n_k:
                    warnings.warn(f"May not flag all label issues in class {k}: it has too few examples", stacklevel=3)
                continue
            if n_k <= 1:
                continue
            pk = by_label[offsets[k] : offsets[k + 1]]
            if comm is not None:
                _prune_across_ranks(pk, members, k, n_k, prune, filter_by, by_class, by_noise, comm)
                continue
            # partial selections (topk) instead of full sorts; where exactly
            # tied samples straddle a cut, numpy's argsort picks them, as in cleanlab
            if filter_by in ("prune_by_class", "both"):
                num = min(int(n_k - prune[k, k]), n_k)
                if num >= 1:
                    by_class[members[_smallest(pk[:, k], num)]] = True
            if filter_by in ("prune_by_noise_rate", "both"):
                # for each other class j, the prune[j, k] samples of given label k
                # with the largest margin p_j - p_k: one topk over all j at once
                nums = np.minimum(prune[:, k], n_k)
                nums[k] = 0  # only noise rates, not the diagonal
                if nums.max() > 0:
                    margins = pk - pk[:, k : k + 1]
                    depth = int(min(nums.max() + 1, n_k))  # one more: shows a tie across the cut
                    values, top = torch.topk(margins, depth, dim=0, sorted=True)
                    nums_t = torch.as_tensor(nums, device=p.device)
                    keep = torch.arange(depth, device=p.device)[:, None] < nums_t[None, :]
                    tied: np.ndarray = np.zeros(0, dtype=np.int64)
                    cut = (nums > 0) & (nums < n_k)
                    if cut.any():
                        at = torch.as_tensor(np.where(cut, nums - 1, 0), device=p.device)[None]
                        same = (values.gather(0, at + 1) == values.gather(0, at))[0].cpu().numpy()
                        tied = np.flatnonzero(same & cut)
                        keep[:, torch.as_tensor(tied, device=p.device)] = False
                    by_noise[members[top[keep]]] = True
                    for j in tied:
                        # a tie straddles column j's cut: numpy's argsort of -margin picks, as in cleanlab
                        chosen = np.argsort(-_numpy_probs(margins[:, j]))[: nums[j]]
                        by_noise[members[torch.from_numpy(chosen.copy()).to(p.device)]] = True
        mask = {"prune_by_class": by_class, "prune_by_noise_rate": by_noise, "both": by_class & by_noise}[filter_by]
    elif filter_by == "confident_learning":
        mask[off_diagonal] = True
    elif filter_by in ("low_normalized_margin", "low_self_confidence"):
        # as many as the confident joint's off-diagonal (less those near their prediction), lowest scores first
        num_errors = int((~_near_prediction(y, p, off_diagonal)).sum())
        scores = _scores_np(y.cpu().numpy(), _numpy_probs(p), filter_by[4:])
        if comm is not None:
            num_errors = int(comm.all_reduce(torch.tensor([num_errors]))[0])
            total = int(counts.sum())
            mask = _select_smallest(torch.from_numpy(scores)[:, None], np.array([num_errors]), total, scores.dtype, comm)
            return mask[:, 0].to(p.device)
        mask[torch.from_numpy(np.argsort(scores)[:num_errors].copy()).to(p.device)] = True
        return mask

    # never flag a sample whose given label is (within 1e-6, in the input's
    # dtype as cleanlab) the model's prediction; only flagged rows need checking
    rows = torch.nonzero(mask).flatten()
    mask[rows[_near_prediction(y, p, rows)]] = False
    return mask


# --------------------------------------------------------------------------- public


def _multi_hot(labels: Any, num_rows: int, K: int) -> np.ndarray:
    """(N, K) int64 0/1 from per-sample class lists (cleanlab's format) or a multi-hot array/tensor."""
    if hasattr(labels, "to_numpy") and not isinstance(labels, Tensor):
        # pandas: a multi-hot DataFrame, or a Series of per-sample class lists
        labels = labels.to_numpy() if getattr(labels, "ndim", 1) == 2 else labels.tolist()
    if isinstance(labels, Tensor) or (isinstance(labels, np.ndarray) and labels.dtype != object):
        hot = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else labels
        if hot.ndim != 2 or hot.shape != (num_rows, K):
            raise ValueError(
                f"labels with multi_label=True must be a list of per-sample class lists or a multi-hot array of shape "
                f"({num_rows}, {K}), got an array of shape {tuple(hot.shape)}"
            )
        if not np.isin(hot, (0, 1)).all():
            raise ValueError("labels with multi_label=True as an array must be multi-hot (only 0 and 1)")
        return hot.astype(np.int64)
    if not isinstance(labels, Sequence) or isinstance(labels, (str, bytes)):
        raise TypeError(f"labels with multi_label=True must be a list of per-sample class lists, got {type(labels).__name__}")
    if len(labels) != num_rows:
        raise ValueError(f"labels has {len(labels)} entries but pred_probs has {num_rows} rows")
    hot = np.zeros((num_rows, K), dtype=np.int64)
    for i, row in enumerate(labels):
        if isinstance(row, (str, bytes)) or not hasattr(row, "__iter__"):
            raise TypeError(f"labels[{i}] must be a list of class indices when multi_label=True, got {row!r}")
        for c in row:
            if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or not 0 <= c < K:
                raise ValueError(f"labels[{i}] must hold class indices in [0, {K}), got {c!r}")
            hot[i, c] = 1
    return hot


def _check_num_to_remove(num_to_remove_per_class: Any, K: int) -> Optional[np.ndarray]:
    if num_to_remove_per_class is None:
        return None
    values = np.asarray(num_to_remove_per_class.cpu() if isinstance(num_to_remove_per_class, Tensor) else num_to_remove_per_class)
    if values.ndim == 0:  # one count for every class, as cleanlab's broadcasting allows
        values = np.full(K, values)
    if values.shape != (K,) or values.dtype.kind not in "iu" or (values < 0).any():
        raise ValueError(
            f"num_to_remove_per_class must be {K} non-negative integers (one per class), got {num_to_remove_per_class!r}"
        )
    return values.astype(np.int64)


def _check_confident_joint(confident_joint: Any, shape: Tuple[int, ...]) -> np.ndarray:
    joint = confident_joint.detach().cpu().numpy() if isinstance(confident_joint, Tensor) else np.asarray(confident_joint)
    if joint.shape != shape or joint.dtype.kind not in "iuf":
        raise ValueError(f"confident_joint must be a numeric array of shape {shape}, got shape {joint.shape} dtype {joint.dtype}")
    if not np.isfinite(joint).all() or (joint < 0).any():
        raise ValueError("confident_joint must hold finite counts >= 0")
    return joint


def _check_rows(pred_probs: Any, allow_empty: bool, labels: Any = None, multi_label: bool = False):
    """Checked ``pred_probs`` (and labels); a rank's share may hold 0 rows (``allow_empty``), as ``(0, K)``."""
    p = as_tensor(pred_probs, "pred_probs")
    if allow_empty and p.dim() == 2 and p.shape[0] == 0 and p.shape[1] >= 2 and p.is_floating_point():
        if multi_label:
            return p
        y = check_labels(labels, p.shape[1], device=p.device, allow_empty=True)
        if y.numel():
            raise ValueError(f"labels has {y.numel()} entries but pred_probs has 0 rows")
        return y, p
    if multi_label:
        return check_pred_probs(pred_probs, None, multi_label=True)
    return check_labels_and_probs(labels, pred_probs)


def _agree_across_ranks(comm: Comm, error: Optional[BaseException], K: int, dtype: Any, num_rows: int, options: tuple) -> None:
    """One all-gather before any data-dependent collective: every rank raises, or none does."""
    dtypes = (None, torch.float16, torch.bfloat16, torch.float32, torch.float64)
    code = dtypes.index(dtype) if dtype in dtypes else len(dtypes)
    fingerprint = zlib.crc32(repr(options).encode()) & 0x7FFFFFFF
    facts = comm.agree(error, [K, code, num_rows, fingerprint], "find_label_issues")
    if len({f[0] for f in facts}) > 1:
        raise ValueError(
            f"pred_probs must have the same number of classes on every rank, got {[f[0] for f in facts]} (rank order)"
        )
    if len({f[1] for f in facts}) > 1:
        raise ValueError(
            f"pred_probs must have the same dtype on every rank, got {[str(dtypes[f[1]]) for f in facts]} (rank order)"
        )
    if len({f[3] for f in facts}) > 1:
        raise ValueError(
            "find_label_issues must be called with the same options on every rank (filter_by, "
            "return_indices_ranked_by, rank_by_kwargs, frac_noise, num_to_remove_per_class, ...)"
        )
    if sum(f[2] for f in facts) == 0:
        raise ValueError("pred_probs is empty on every rank")


def _fingerprint(array: Any) -> Optional[int]:
    """A checksum of a user-given array (None stays None), to check that every rank passed the same one."""
    if array is None:
        return None
    try:
        values = array.detach().cpu().numpy() if isinstance(array, Tensor) else np.asarray(array, dtype=np.float64)
        return zlib.crc32(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    except (TypeError, ValueError):  # not an array: the check before reported it; no raise before the collective
        return -1


def _rank_across(rows: np.ndarray, scores: np.ndarray, comm: Comm) -> np.ndarray:
    """This rank's ``rows`` in the order ``np.argsort`` gives all ranks' scores (concatenated in rank order)."""
    parts = comm.all_gather_rows(torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float64)))
    start = sum(part.shape[0] for part in parts[: comm.rank])
    order = np.argsort(torch.cat(parts).numpy().astype(scores.dtype)) - start
    return rows[order[(order >= 0) & (order < rows.shape[0])]]


def find_label_issues(
    labels: Any,
    pred_probs: Any,
    *,
    filter_by: str = "prune_by_noise_rate",
    return_indices_ranked_by: Optional[str] = None,
    rank_by_kwargs: Optional[Dict[str, Any]] = None,
    frac_noise: float = 1.0,
    num_to_remove_per_class: Optional[Sequence[int]] = None,
    min_examples_per_class: int = 1,
    confident_joint: Optional[Any] = None,
    n_jobs: Optional[int] = None,
    verbose: bool = False,
    multi_label: bool = False,
    low_memory: bool = False,
    rank_by: Any = _UNSET,
    distributed: Optional[bool] = None,
):
    """Samples whose given label is likely wrong, by confident learning (Northcutt et al. 2021).

    ``cleanlab.filter.find_label_issues``'s signature, defaults and results:
    the calibrated confident joint, then pruning, in torch on the device of
    ``pred_probs``. With the same arguments it flags the same samples and, with
    ``return_indices_ranked_by``, returns them in the same order (the same
    label-quality scores, bit for bit, sorted by numpy as cleanlab sorts them).

    Args:
        labels (Tensor[N] | array | list): given labels in [0, K). With
            ``multi_label=True``: a list of per-sample class lists (cleanlab's
            format, e.g. ``[[0, 2], [], [1]]``) or a multi-hot ``(N, K)`` array (or DataFrame).
        pred_probs (Tensor[N, K] | array): out-of-sample predicted probabilities
            (rows sum to 1; with ``multi_label=True`` each column is one class's
            own probability), e.g. from cross-validation. Logits are refused
            with a ValueError that suggests ``logits.softmax(dim=1)``
            (``logits.sigmoid()`` with ``multi_label=True``).
        filter_by (str): ``"prune_by_noise_rate"`` (default), ``"prune_by_class"``,
            ``"both"``, ``"confident_learning"``, ``"predicted_neq_given"``,
            ``"low_normalized_margin"`` or ``"low_self_confidence"`` (the latter
            two: the lowest-scoring samples, as many as the confident joint's
            off-diagonal counts).
        return_indices_ranked_by (str or None): None (default): return a boolean
            mask; ``"self_confidence"``, ``"normalized_margin"`` or
            ``"confidence_weighted_entropy"``: return the flagged indices, most
            likely issue (lowest label-quality score) first.
        rank_by_kwargs (dict or None): ``{"adjust_pred_probs": True}`` ranks by
            scores of class-threshold-adjusted probabilities (cleanlab's option).
        frac_noise (float): in (0, 1]; return only this fraction of the estimated
            issues (pruning filters only).
        num_to_remove_per_class (int, sequence of K ints or None): flag this many
            samples per given class (exactly with ``"prune_by_class"``; within
            rounding with the other pruning filters).
        min_examples_per_class (int): classes are never pruned below this size (default 1).
        confident_joint (array[K, K] or None): a precomputed confident joint
            (rows: given label), e.g. from ``cleanlab.count.compute_confident_joint``;
            used by the pruning filters. With ``multi_label=True``: shape ``(K, 2, 2)``.
        n_jobs (int or None): accepted for cleanlab compatibility; no effect
            (the work runs in torch's own threads).
        verbose (bool): accepted for cleanlab compatibility; no effect.
        multi_label (bool): each sample may have several labels: one-vs-rest per
            class as cleanlab, flagged when flagged for any class (default False).
        low_memory (bool): accepted with ``multi_label=False`` (memory is already
            O(N·K)); cleanlab's approximate batched multi-label estimate is not
            implemented, so ``multi_label=True`` with ``low_memory=True`` raises.
        rank_by: deprecated alias of ``return_indices_ranked_by``.
        distributed (bool or None): ``labels`` and ``pred_probs`` are this
            rank's share of the data, sharded across ``torch.distributed``
            ranks (the global order is rank 0's rows, then rank 1's, ...).
            Class counts and the confident joint are all-reduced; the
            per-class thresholds are cleanlab's numpy means over every
            rank's self-confidences (one scalar per row all-gathered, never
            ``pred_probs``), so they are cleanlab's bit for bit; the
            pruning and ``low_*`` filters pick each class's or cell's ``n``
            samples across ranks from an all-gather of every rank's ``n``
            best candidates (one scalar each; where exactly tied values
            straddle a cut, of that column's scalars, so that the tie is
            decided as numpy's argsort decides it in one process). Every rank gets the answer
            for its own rows: the mask of its rows, or with
            ``return_indices_ranked_by`` indices into its own rows, in the
            global ranked order restricted to that rank. Concatenated in rank
            order, the masks equal the single-process mask on the
            concatenated data, exactly; the indices, shifted by each rank's
            offset, are the single-process ranking split by rank.
            **Collective**: every rank calls it with the same options and
            number of classes (a rank may hold 0 rows, as an ``(0, K)``
            array); invalid input on one rank raises there, and a ValueError
            naming that rank on the others (no rank is left waiting).
            ``rank_by_kwargs={"adjust_pred_probs": True}`` with
            ``multi_label=True`` is refused across ranks. None (default): distributed when a process
            group of world size > 1 is initialised (under ``torchrun``, pass
            False when every rank holds the whole data set); False: this
            rank's rows alone.

    Differences from cleanlab: labels with a
    single class are answered (cleanlab raises); with ``multi_label=True`` and a ``low_*`` filter the flagged samples
    are ranked by their own scores (cleanlab pairs scores and indices in
    different orders); ``multi_label=True`` also takes a multi-hot array.

    Returns:
        bool mask [N], or int64 indices [num_issues] when ``return_indices_ranked_by``
        is given: numpy in, numpy out; a tensor on ``pred_probs``'s device otherwise.

    Example:
        >>> mask = bt.quality.find_label_issues(labels, pred_probs)
        >>> issues = bt.quality.find_label_issues(labels, pred_probs, return_indices_ranked_by="self_confidence")
        >>> print(f"{mask.sum()} suspicious labels, worst first: {issues[:10]}")
    """
    comm = Comm() if check_distributed(distributed) else None
    error: Optional[BaseException] = None
    K, dtype, num_rows, adjust, num_to_remove = 0, None, 0, False, None
    try:
        if rank_by is not _UNSET:
            if return_indices_ranked_by is not None and rank_by != return_indices_ranked_by:
                raise ValueError(
                    f"rank_by={rank_by!r} and return_indices_ranked_by={return_indices_ranked_by!r} disagree: "
                    "pass only return_indices_ranked_by (rank_by is its old name)"
                )
            return_indices_ranked_by = rank_by
        if filter_by not in FILTERS:
            raise ValueError(f"filter_by must be one of {FILTERS}, got {filter_by!r}")
        if return_indices_ranked_by is not None:
            _check_method(return_indices_ranked_by, "return_indices_ranked_by")
        adjust = _check_rank_by_kwargs(rank_by_kwargs, return_indices_ranked_by)
        if isinstance(frac_noise, bool) or not (isinstance(frac_noise, (int, float)) and 0 < frac_noise <= 1):
            raise ValueError(f"frac_noise must be in (0, 1], got {frac_noise!r}")
        if (
            isinstance(min_examples_per_class, bool)
            or not isinstance(min_examples_per_class, (int, np.integer))
            or min_examples_per_class < 0
        ):
            raise ValueError(f"min_examples_per_class must be an int >= 0, got {min_examples_per_class!r}")
        if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1):
            raise ValueError(f"n_jobs must be None or an int >= 1, got {n_jobs!r}")
        for name, flag in (("verbose", verbose), ("multi_label", multi_label), ("low_memory", low_memory)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        if filter_by not in PRUNING_FILTERS:
            if num_to_remove_per_class is not None:
                raise ValueError(
                    f"num_to_remove_per_class works with filter_by in {PRUNING_FILTERS}, not {filter_by!r} (as cleanlab)"
                )
            if frac_noise != 1.0:
                warnings.warn(
                    f"frac_noise has no effect with filter_by={filter_by!r} (only with {PRUNING_FILTERS})", stacklevel=2
                )
        if filter_by == "confident_learning" and confident_joint is not None:
            warnings.warn(
                "confident_joint is ignored with filter_by='confident_learning': the confident joint is re-estimated "
                "from labels and pred_probs (as cleanlab)",
                stacklevel=2,
            )
        if multi_label and low_memory:
            raise ValueError(
                "low_memory=True with multi_label=True (cleanlab's approximate batched estimate) is not supported; "
                "use low_memory=False: the exact algorithm needs no more memory than pred_probs"
            )

        if multi_label:
            p = _check_rows(pred_probs, comm is not None, multi_label=True)
            K = p.shape[1]
            y_one = _multi_hot(labels, p.shape[0], K)
            if comm is not None and adjust:
                raise ValueError(
                    "rank_by_kwargs={'adjust_pred_probs': True} with multi_label=True is not supported with "
                    "distributed=True (its thresholds come from the ranked rows themselves); rank on one process"
                )
        else:
            y, p = _check_rows(pred_probs, comm is not None, labels=labels)
            K = p.shape[1]
            joint = None
            if confident_joint is not None and filter_by in PRUNING_FILTERS:
                joint = _check_confident_joint(confident_joint, (K, K))
        num_to_remove = _check_num_to_remove(num_to_remove_per_class, K)
        dtype, num_rows = p.dtype, p.shape[0]
    except (ValueError, TypeError) as err:
        if comm is None:
            raise
        error = err
    if comm is not None:
        _agree_across_ranks(
            comm,
            error,
            K,
            dtype,
            num_rows,
            (
                filter_by,
                return_indices_ranked_by,
                adjust,
                float(frac_noise),
                min_examples_per_class,
                multi_label,
                None if num_to_remove is None else num_to_remove.tolist(),
                _fingerprint(confident_joint),
            ),
        )

    if multi_label:
        mask, ranked = _find_multilabel(
            y_one,
            p,
            filter_by,
            return_indices_ranked_by,
            adjust,
            frac_noise,
            num_to_remove,
            min_examples_per_class,
            confident_joint,
            comm,
        )
    else:
        mask_t = _find_single(y, p, filter_by, frac_noise, num_to_remove, min_examples_per_class, joint, comm)
        ranked = None
        if return_indices_ranked_by is not None:
            flagged = torch.nonzero(mask_t).flatten().cpu().numpy()
            y_np, p_np = y.cpu().numpy()[flagged], _numpy_probs(p)
            if return_indices_ranked_by == "self_confidence" and not adjust:
                scores = p_np[flagged, y_np]  # the default ranking: no copy of the flagged rows
            else:
                thresholds = _ranking_thresholds(y, p, comm) if adjust else None
                scores = _scores_np(y_np, p_np[flagged], return_indices_ranked_by, adjust, thresholds)
            ranked = flagged[np.argsort(scores)] if comm is None else _rank_across(flagged, scores, comm)
        mask = mask_t
    if isinstance(pred_probs, Tensor):
        if ranked is not None:
            return torch.from_numpy(ranked.astype(np.int64)).to(p.device)
        return mask if isinstance(mask, Tensor) else torch.from_numpy(mask).to(p.device)
    if ranked is not None:
        return ranked.astype(np.int64)
    return mask.cpu().numpy() if isinstance(mask, Tensor) else mask


def _find_multilabel(
    y_one, p, filter_by, method, adjust, frac_noise, num_to_remove, min_examples_per_class, confident_joint, comm=None
):
    """cleanlab's one-vs-rest reduction: class c is the binary problem (y[:, c], [1 - p_c, p_c])."""
    N, K = y_one.shape
    if confident_joint is not None:
        shape = np.shape(confident_joint.detach().cpu() if isinstance(confident_joint, Tensor) else confident_joint)
        if tuple(shape) == (K, K):
            warnings.warn(
                "a (K, K) confident_joint is ignored with multi_label=True: pass the per-class (K, 2, 2) joint "
                "(as cleanlab.count.compute_confident_joint(..., multi_label=True))",
                stacklevel=3,
            )
            confident_joint = None
        else:
            confident_joint = _check_confident_joint(confident_joint, (K, 2, 2))
    y_all = torch.from_numpy(y_one).to(p.device)
    per_class_filter = "confident_learning" if filter_by in ("low_normalized_margin", "low_self_confidence") else filter_by
    flagged = torch.zeros(N, dtype=torch.bool, device=p.device)
    for c in range(K):
        binary = torch.stack((1 - p[:, c], p[:, c]), 1)
        joint = None
        if confident_joint is not None and per_class_filter in PRUNING_FILTERS:
            joint = confident_joint[c]
        remove = None if num_to_remove is None else np.array([num_to_remove[c], 0])
        mask_c = _find_single(y_all[:, c], binary, per_class_filter, frac_noise, remove, min_examples_per_class, joint, comm)
        flagged |= mask_c
    p_np = _numpy_probs(p)
    if per_class_filter != filter_by:
        # cleanlab: as many as confident learning flags, the lowest multi-label self-confidence scores
        num_errors = int(flagged.sum())
        self_conf = _multilabel_scores_np(y_one, p_np, "self_confidence")
        if comm is None:
            mask = np.zeros(N, dtype=bool)
            mask[np.argsort(self_conf)[:num_errors]] = True
        else:
            num_errors = int(comm.all_reduce(torch.tensor([num_errors]))[0])
            total = int(comm.all_reduce(torch.tensor([N]))[0])
            mask = _select_smallest(torch.from_numpy(self_conf)[:, None], np.array([num_errors]), total, self_conf.dtype, comm)
            mask = mask[:, 0].cpu().numpy()
        if method is None:
            return mask, None
        # ranked by the chosen score of the flagged rows (scored among themselves, as cleanlab); cleanlab
        # itself pairs these scores with its indices in another order, which we do not copy
        rows = np.flatnonzero(mask)
        scores = _multilabel_scores_np(y_one[rows], p_np[rows], method, adjust)
        return mask, rows[np.argsort(scores)] if comm is None else _rank_across(rows, scores, comm)
    mask = flagged.cpu().numpy()
    if method is None:
        return mask, None
    rows = np.flatnonzero(mask)
    if comm is None:  # adjust_pred_probs takes its thresholds from all rows
        return mask, rows[np.argsort(_multilabel_scores_np(y_one, p_np, method, adjust)[rows])]
    # across ranks adjust_pred_probs is refused: the scores are row by row
    return mask, _rank_across(rows, _multilabel_scores_np(y_one[rows], p_np[rows], method, False), comm)


def _check_name_strings(class_names: Any, what: str) -> Any:
    """class_names are documented as strings: a number (a class id passed by mistake) is a TypeError naming it.

    Returns the names (an iterator read into a list, so that it can be read again)."""
    if class_names is None or isinstance(class_names, (str, bytes, Mapping)) or not hasattr(class_names, "__iter__"):
        return class_names  # check_class_names words those
    class_names = list(class_names)
    for i, name in enumerate(class_names):
        if not isinstance(name, str):  # numpy.str_ is a str
            raise TypeError(
                f"{what}: class_names must be strings (one name per class), got class_names[{i}] = {name!r} "
                f"({type(name).__name__}); for ids as names pass [str(c) for c in ...]"
            )
    return class_names


def _check_mistake_inputs(labels: Any, pred_probs: Any, class_names: Any, comm: Optional[Comm], what: str):
    """Checked labels, pred_probs and names; across ranks, agreed by every rank before any data-dependent step."""
    error, y, p, names = None, None, None, None
    try:
        y, p = _check_rows(pred_probs, comm is not None, labels=labels)
        names = check_class_names(class_names, p.shape[1])
    except (ValueError, TypeError) as err:
        if comm is None:
            raise
        error = err
    if comm is not None:
        K = 0 if p is None else p.shape[1]
        facts = comm.agree(error, [K, 0 if p is None else p.shape[0]], what)
        if len({f[0] for f in facts}) > 1:
            raise ValueError(
                f"pred_probs must have the same number of classes on every rank, got {[f[0] for f in facts]} (rank order)"
            )
    return y, p, names


def rank_mistakes(
    labels: Any, pred_probs: Any, class_names: Optional[Sequence[str]] = None, *, distributed: Optional[bool] = None
) -> RankedMistakes:
    """Every sample whose predicted class differs from its label, most confident mistake first.

    The mistakes to look at first: a confident model that disagrees with the
    given label often points at a wrong label (or a hard, ambiguous sample).

    Args:
        labels (Tensor[N] | array | sequence): given labels in [0, K).
        pred_probs (Tensor[N, K] | array): predicted probabilities (rows sum
            to 1; for logits pass ``logits.softmax(dim=1)``), ideally
            out-of-sample.
        class_names (sequence of K str, optional): names shown instead of
            class ids when the result is printed (default None: ids).
        distributed (bool or None): the rows are this rank's share of data
            sharded across ``torch.distributed`` ranks (global order: rank
            0's rows, then rank 1's, ...). The result holds this rank's
            mistakes in the global order (one all-gather of a confidence per
            mistake), ``index`` into this rank's rows, and one more column,
            ``global_rank`` (int64, the position in the single-process
            ranking of all ranks' mistakes), so that the ranks' tables merge
            by it. **Collective**: every rank must call it (0 rows allowed).
            None (default): distributed when a process group of world size
            > 1 is initialised; False: this rank's rows alone.

    Returns:
        :class:`RankedMistakes`: a dict of equal-length tensors on
        ``pred_probs``'s device (a tensor on the CPU for numpy input):
        ``index`` (int64), ``target`` (int64, the given label), ``prediction``
        (int64, the argmax) and ``confidence`` (``pred_probs``'s dtype, the
        probability of the prediction), sorted by confidence, highest first
        (ties by index). ``print()`` shows it as a table (first
        ``max_rows=20`` rows), ``rows()`` gives Python tuples, ``to_pandas()``
        a DataFrame.

    Raises:
        ValueError: labels out of range, shapes that disagree, ``pred_probs``
            that are not probabilities (logits are named as such),
            ``class_names`` without one name per class; across ranks, on
            every rank when any rank's input is invalid or the ranks' numbers
            of classes differ.

    Example:
        >>> m = bt.quality.rank_mistakes(val_labels, probs, class_names=["red", "yellow", "green"])
        >>> print(m)                      # index, target → prediction, confidence
        >>> for r in m.rows()[:5]:
        ...     print(f"sample {r.index}: labelled {r.target}, predicted {r.prediction} ({r.confidence:.0%})")
    """
    class_names = _check_name_strings(class_names, "rank_mistakes")
    comm = Comm() if check_distributed(distributed) else None
    y, p, names = _check_mistake_inputs(labels, pred_probs, class_names, comm, "rank_mistakes")
    confidence, prediction = p.max(1)
    wrong = torch.nonzero(prediction != y).flatten()
    if comm is None:
        order = torch.argsort(-confidence[wrong].double(), stable=True)
        idx = wrong[order]
        columns = {"index": idx, "target": y[idx], "prediction": prediction[idx], "confidence": confidence[idx]}
        return RankedMistakes(columns, names, y.numel())
    # all ranks' mistakes in rank order are in global index order: a stable sort of all of their
    # confidences (one scalar per mistake) orders them as one process would; keep this rank's
    parts = comm.all_gather_rows(confidence[wrong].double().cpu())
    start = sum(part.shape[0] for part in parts[: comm.rank])
    order = torch.argsort(-torch.cat(parts), stable=True)
    position = torch.nonzero((order >= start) & (order < start + wrong.numel())).flatten()
    idx = wrong[(order[position] - start).to(wrong.device)]
    columns = {
        "index": idx,
        "target": y[idx],
        "prediction": prediction[idx],
        "confidence": confidence[idx],
        "global_rank": position.to(idx.device),
    }
    return RankedMistakes(columns, names, y.numel())


def mistakes_per_class(
    labels: Any, pred_probs: Any, class_names: Optional[Sequence[str]] = None, *, distributed: Optional[bool] = None
) -> MistakesPerClass:
    """Per class: how many of its samples are mispredicted, and as what; worst class first.

    Args:
        labels (Tensor[N] | array | sequence): given labels in [0, K).
        pred_probs (Tensor[N, K] | array): predicted probabilities (rows sum
            to 1; for logits pass ``logits.softmax(dim=1)``).
        class_names (sequence of K str, optional): names shown instead of
            class ids when the result is printed (default None: ids).
        distributed (bool or None): the rows are this rank's share of data
            sharded across ``torch.distributed`` ranks: the (K, K) confusion
            counts are all-reduced and every rank gets the same table, that
            of all ranks' rows (``num_samples`` counts them all).
            **Collective**: every rank must call it (0 rows allowed). None
            (default): distributed when a process group of world size > 1 is
            initialised; False: this rank's rows alone.

    Returns:
        :class:`MistakesPerClass`: a dict, on the CPU, with ``class``
        (Tensor[K] int64, classes ordered by mistake rate, highest first; ties
        by count then class), ``count`` (Tensor[K] int64, mistakes),
        ``support`` (Tensor[K] int64, samples), ``rate`` (Tensor[K] float64,
        count / support, 0 for absent classes), and ``confused_with``: for
        each class, a list of ``(predicted_class, count)`` pairs, most
        frequent first. ``print()`` shows it as a table (first
        ``max_rows=20`` classes), ``rows()`` gives Python tuples,
        ``to_pandas()`` a DataFrame.

    Raises:
        ValueError: as :func:`rank_mistakes`.

    Example:
        >>> per = bt.quality.mistakes_per_class(val_labels, probs, class_names=["red", "yellow", "green"])
        >>> print(per)                    # class, mistakes, support, rate, confused with
        >>> per["class"][:3]              # the three worst classes
    """
    comm = Comm() if check_distributed(distributed) else None
    class_names = _check_name_strings(class_names, "mistakes_per_class")
    y, p, names = _check_mistake_inputs(labels, pred_probs, class_names, comm, "mistakes_per_class")
    K = p.shape[1]
    prediction = p.argmax(1)
    confusion = torch.bincount(y * K + prediction, minlength=K * K).view(K, K).cpu()
    num_samples = y.numel()
    if comm is not None:
        confusion = comm.all_reduce(confusion)  # integer counts: exact
        num_samples = int(confusion.sum())
    support = confusion.sum(1)
    count = support - confusion.diagonal()
    rate = torch.where(support > 0, count.double() / support.clamp_min(1), torch.zeros(K, dtype=torch.float64))
    classes = sorted(range(K), key=lambda c: (-float(rate[c]), -int(count[c]), c))
    confused = []
    for c in classes:
        row = confusion[c].clone()
        row[c] = 0
        pairs = [(int(j), int(row[j])) for j in torch.argsort(-row, stable=True).tolist() if row[j] > 0]
        confused.append(pairs)
    order = torch.tensor(classes)
    columns = {"class": order, "count": count[order], "support": support[order], "rate": rate[order], "confused_with": confused}
    return MistakesPerClass(columns, names, num_samples)
