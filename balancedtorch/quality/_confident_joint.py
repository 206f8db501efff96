"""The compute stage of ``find_label_issues``: confident learning as cleanlab counts it, in torch.

Per-class thresholds (numpy means of the self-confidences, cleanlab's bits),
the calibrated confident joint, the prune counts (by class, by noise rate,
``num_to_remove_per_class``), the mask of one single-label problem
(:func:`_find_single`, across ranks too), the one-vs-rest reduction of
multi-label data (:func:`_find_multilabel`) and the ranking of the flagged
rows (:func:`_rank_single`). The checks and the agreement across ranks that
come before are in ``_validate.py``; the public functions in ``label_issues.py``.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .._classes import group_by_class
from .._distributed import Comm
from ._scores import _multilabel_scores_np, _numpy_dtype, _numpy_probs, _rank_across, _scores_np, _thresholds_np

__all__: list = []

PRUNING_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both")
FILTERS = PRUNING_FILTERS + ("confident_learning", "predicted_neq_given", "low_normalized_margin", "low_self_confidence")

# cleanlab's constants, so that borderline cases are decided the same way
_FLOATING_POINT_COMPARISON = 1e-6
_TINY = 1e-100


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


def _rank_single(mask: Tensor, y: Tensor, p: Tensor, method: str, adjust: bool, comm: Optional[Comm]) -> np.ndarray:
    """The rows flagged by ``mask``, lowest ``method`` score first (cleanlab's order); across ranks, this rank's rows in the global order."""
    flagged = torch.nonzero(mask).flatten().cpu().numpy()
    y_np, p_np = y.cpu().numpy()[flagged], _numpy_probs(p)
    if method == "self_confidence" and not adjust:
        scores = p_np[flagged, y_np]  # the default ranking: no copy of the flagged rows
    else:
        thresholds = _ranking_thresholds(y, p, comm) if adjust else None
        scores = _scores_np(y_np, p_np[flagged], method, adjust, thresholds)
    return flagged[np.argsort(scores)] if comm is None else _rank_across(flagged, scores, comm)


def _check_confident_joint(confident_joint: Any, shape: Tuple[int, ...]) -> np.ndarray:
    joint = confident_joint.detach().cpu().numpy() if isinstance(confident_joint, Tensor) else np.asarray(confident_joint)
    if joint.shape != shape or joint.dtype.kind not in "iuf":
        raise ValueError(f"confident_joint must be a numeric array of shape {shape}, got shape {joint.shape} dtype {joint.dtype}")
    if not np.isfinite(joint).all() or (joint < 0).any():
        raise ValueError("confident_joint must hold finite counts >= 0")
    return joint
