"""Ranking metrics of :class:`ClassificationMetrics`: PR / ROC curves, average precision and ROC AUC.

Two kinds of state, both per class one-vs-rest:

* exact: the scores and targets themselves; the curves have one point per
  distinct score, as scikit-learn's ``precision_recall_curve`` /
  ``roc_curve(drop_intermediate=False)``, and tied scores form one point
  (one threshold), as there;
* binned: for every class and target (negative, positive) a histogram of
  ``searchsorted(thresholds, score, right=True)``, i.e. of how many
  thresholds each score reaches. ``score >= thresholds[k]`` (torchmetrics'
  rule) holds exactly when that bin is ``> k``, so reverse cumulative sums
  give torchmetrics' per-threshold confusion counts with ``O(log T)`` work per
  score instead of ``O(T)``, and the histogram sums across ranks.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor

__all__: List[str] = []

# the grid taken over when an exact state grows past exact_max_samples (torchmetrics' thresholds=1001)
DEFAULT_BINS = 1001


def check_thresholds(thresholds: Any) -> Optional[Tensor]:
    """torchmetrics' ``thresholds=`` argument as a sorted 1-D float tensor (None stays None).

    int n -> ``torch.linspace(0, 1, n)``; a list/tuple -> ``torch.tensor``;
    a 1-D floating tensor as is. Values must lie in [0, 1]; they are sorted
    and duplicates dropped (neither changes AP or AUROC).
    """
    if thresholds is None:
        return None
    if isinstance(thresholds, bool):
        raise TypeError(f"thresholds must be None, an int >= 2, a list of floats or a 1-D tensor, got {thresholds!r}")
    if isinstance(thresholds, numbers.Integral):
        if thresholds < 2:
            raise ValueError(f"thresholds must be an int >= 2 (the number of evenly spaced thresholds), got {thresholds!r}")
        return torch.linspace(0, 1, int(thresholds))
    if isinstance(thresholds, (list, tuple)):
        if not thresholds or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in thresholds):
            raise ValueError(f"thresholds as a list must be a non-empty list of floats in [0, 1], got {thresholds!r}")
        t = torch.tensor([float(v) for v in thresholds])
    elif isinstance(thresholds, Tensor):
        if thresholds.dim() != 1 or thresholds.numel() == 0 or not thresholds.is_floating_point():
            raise ValueError(
                f"thresholds as a tensor must be 1-D, non-empty and floating, got shape {tuple(thresholds.shape)} "
                f"dtype {thresholds.dtype}"
            )
        t = thresholds.detach().cpu().clone()
    else:
        raise TypeError(
            f"thresholds must be None, an int >= 2, a list of floats or a 1-D tensor, got {type(thresholds).__name__}"
        )
    bad = ~((t >= 0) & (t <= 1))
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"thresholds must lie in [0, 1], got thresholds[{i}] = {float(t[i])!r}")
    return torch.unique(t)  # sorted


def histogram_index(scores: Tensor, positive: Tensor, valid: Tensor, thresholds: Tensor) -> Tensor:
    """Flat bin of every (sample, class) pair in a ``(C, 2, T + 1)`` histogram; -1 where not valid.

    Args:
        scores (Tensor[n, C]): probabilities.
        positive (Tensor[n, C] bool): the one-vs-rest targets.
        valid (Tensor[n, C] or Tensor[n, 1] bool): pairs that count.
        thresholds (Tensor[T]): sorted, on the scores' device.
    """
    dtype = torch.promote_types(scores.dtype, thresholds.dtype)  # torchmetrics compares preds >= thresholds so
    T = thresholds.numel()
    bins = torch.searchsorted(thresholds.to(dtype), scores.to(dtype).contiguous(), right=True)
    C = scores.shape[1]
    rows = torch.arange(C, device=scores.device) * 2 + positive.long()
    return (rows * (T + 1) + bins).masked_fill(~valid, -1)


def binned_counts(hist: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(tps, fps) at every threshold, Tensor[C, T] each, and the totals (P, N), Tensor[C] each."""
    tail = hist.double().flip(-1).cumsum(-1).flip(-1)  # tail[..., j]: scores reaching at least j thresholds
    return tail[:, 1, 1:], tail[:, 0, 1:], tail[:, 1, 0], tail[:, 0, 0]


def binned_scores(hist: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-class AP and ROC AUC from a binned state, with torchmetrics' binned formulas; NaN where undefined."""
    tps, fps, P, N = binned_counts(hist)
    nan = torch.full_like(P, math.nan)
    precision = torch.where(tps + fps > 0, tps / (tps + fps).clamp_min(1), torch.zeros_like(tps))
    recall = tps / P.clamp_min(1).unsqueeze(1)
    ones = torch.ones_like(P).unsqueeze(1)
    precision = torch.cat([precision, ones], 1)
    recall = torch.cat([recall, torch.zeros_like(ones)], 1)
    ap = -((recall[:, 1:] - recall[:, :-1]) * precision[:, :-1]).sum(1)
    ap = torch.where(P > 0, ap, nan)
    tpr = (tps / P.clamp_min(1).unsqueeze(1)).flip(1)
    fpr = (fps / N.clamp_min(1).unsqueeze(1)).flip(1)
    auc = torch.trapezoid(tpr, fpr, dim=1)
    auc = torch.where((P > 0) & (N > 0), auc, nan)
    return ap, auc


def binned_pr_curve(hist: Tensor, thresholds: Tensor, c: int) -> Tuple[Tensor, Tensor, Tensor]:
    """torchmetrics' binned ``precision_recall_curve`` of class ``c``: (precision[T+1], recall[T+1], thresholds[T])."""
    tps, fps, P, _ = binned_counts(hist[c : c + 1])
    tps, fps, P = tps[0], fps[0], P[0]
    precision = torch.where(tps + fps > 0, tps / (tps + fps).clamp_min(1), torch.full_like(tps, math.nan))
    recall = tps / P if float(P) > 0 else torch.full_like(tps, math.nan)
    one = torch.ones(1, dtype=tps.dtype, device=tps.device)
    return torch.cat([precision, one]), torch.cat([recall, one * 0]), thresholds.double()


def binned_roc_curve(hist: Tensor, thresholds: Tensor, c: int) -> Tuple[Tensor, Tensor, Tensor]:
    """torchmetrics' binned ``roc`` of class ``c``: (fpr[T], tpr[T], thresholds[T] descending)."""
    tps, fps, P, N = binned_counts(hist[c : c + 1])
    nan = math.nan
    tpr = tps[0] / P[0] if float(P[0]) > 0 else torch.full_like(tps[0], nan)
    fpr = fps[0] / N[0] if float(N[0]) > 0 else torch.full_like(fps[0], nan)
    return fpr.flip(0), tpr.flip(0), thresholds.double().flip(0)


def _clf_curve(scores: Tensor, positive: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """scikit-learn's ``_binary_clf_curve``: (fps, tps, thresholds) at every distinct score, descending."""
    order = torch.argsort(scores, descending=True, stable=True)
    s = scores[order]
    y = positive[order].double()
    n = s.numel()
    last = torch.ones(n, dtype=torch.bool, device=s.device)
    last[:-1] = s[:-1] != s[1:]  # the last sample of every run of tied scores: one threshold per run
    tps = y.cumsum(0)[last]
    fps = (1 - y).cumsum(0)[last]
    return fps, tps, s[last]


def exact_pr_curve(scores: Tensor, positive: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """scikit-learn's ``precision_recall_curve`` (float64): precision[m+1], recall[m+1], thresholds[m] ascending."""
    if scores.numel() == 0:
        e = scores.new_zeros(0, dtype=torch.float64)
        return e.new_ones(1), e.new_zeros(1), e
    fps, tps, thr = _clf_curve(scores, positive)
    ps = tps + fps
    precision = torch.where(ps > 0, tps / ps.clamp_min(1), torch.zeros_like(tps))
    recall = tps / tps[-1] if float(tps[-1]) > 0 else torch.ones_like(tps)  # sklearn: recall 1 without positives
    one = torch.ones(1, dtype=torch.float64, device=scores.device)
    return torch.cat([precision.flip(0), one]), torch.cat([recall.flip(0), one * 0]), thr.flip(0)


def exact_roc_curve(scores: Tensor, positive: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """scikit-learn's ``roc_curve(drop_intermediate=False)`` (float64): fpr, tpr, thresholds (first: inf)."""
    if scores.numel() == 0:
        z = torch.zeros(1, dtype=torch.float64, device=scores.device)
        return z, z.clone(), torch.full_like(z, math.inf)
    fps, tps, thr = _clf_curve(scores, positive)
    zero = torch.zeros(1, dtype=torch.float64, device=scores.device)
    fps = torch.cat([zero, fps])
    tps = torch.cat([zero, tps])
    thr = torch.cat([torch.full_like(zero, math.inf), thr.double()])
    fpr = fps / fps[-1] if float(fps[-1]) > 0 else torch.full_like(fps, math.nan)
    tpr = tps / tps[-1] if float(tps[-1]) > 0 else torch.full_like(tps, math.nan)
    return fpr, tpr, thr


def exact_scores(scores: Tensor, positive: Tensor) -> Tuple[float, float]:
    """(AP, ROC AUC) of one class, each NaN where undefined (no positives; no positives or no negatives)."""
    n_pos = int(positive.sum())
    n_neg = positive.numel() - n_pos
    if n_pos == 0:
        return math.nan, math.nan
    precision, recall, _ = exact_pr_curve(scores, positive)
    ap = max(0.0, float(-((recall[1:] - recall[:-1]) * precision[:-1]).sum()))  # sklearn's step integral
    if n_neg == 0:
        return ap, math.nan
    fpr, tpr, _ = exact_roc_curve(scores, positive)
    return ap, float(torch.trapezoid(tpr, fpr))
