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

The functions above ``CurveMixin`` are the maths (also used by
``ranking.py`` and ``demo.py``); ``CurveMixin`` holds the curve state of
``ClassificationMetrics`` (kept exact until ``exact_max_samples``, binned
beyond), its AP / ROC AUC and ``pr_curves`` / ``roc_curves``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .._distributed import cross_rank
from .._validate import UNSET
from ..ops.class_counts import class_counts

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


# rows per chunk of ranking_rows: at most this many (row, sample) pairs, bounding its float64
# temporaries to a few tens of MiB however many classes (or class pairs) there are
_CHUNK_ELEMENTS = 1 << 22


def clf_counts(scores: Tensor, positive: Tensor, weight: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn's confusion counts at every threshold, for each row of ``scores``.

    The scores of a row are sorted descending (stable: tied samples keep their
    order, as scikit-learn's ``argsort(stable=True, descending=True)``), and
    the true / false positives are summed cumulatively in float64 in that
    order, so weighted counts round exactly as scikit-learn's.

    Args:
        scores (Tensor[R, n]): real scores.
        positive (Tensor[R, n] bool): the targets.
        weight (Tensor[R, n] or Tensor[n], optional): sample weights (>= 0).

    Returns:
        (s, tps, fps, last), each ``[R, n]``: the sorted scores, the (weighted)
        true and false positives among the samples up to each position, and
        ``last``: the last sample of each run of tied scores (where a threshold
        sits: one threshold per distinct score).
    """
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)
    s = scores.gather(-1, order)
    y = positive.gather(-1, order)
    n = s.shape[-1]
    if weight is None:
        tps = y.double().cumsum(-1)
        fps = torch.arange(1, n + 1, dtype=torch.float64, device=s.device) - tps
    else:
        w = weight.double().expand_as(scores).gather(-1, order)
        yw = torch.where(y, w, torch.zeros_like(w))
        tps = yw.cumsum(-1)
        fps = (w - yw).cumsum(-1)  # a cumulative sum, as scikit-learn's: never decreasing under rounding
    last = torch.ones_like(s, dtype=torch.bool)
    last[..., :-1] = s[..., :-1] != s[..., 1:]
    return s, tps, fps, last


def ranking_rows(
    scores: Tensor, positive: Tensor, weight: Optional[Tensor] = None, max_fpr: Optional[float] = None
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Average precision and ROC AUC of every row, with no host synchronisation.

    scikit-learn's definitions: AP is the step integral ``sum_k (R_k - R_{k-1})
    P_k`` over the thresholds (``average_precision_score``), ROC AUC the
    trapezoidal area under ``roc_curve`` (``roc_auc_score``); with
    ``max_fpr`` the area up to that false positive rate (the point at
    ``max_fpr`` linearly interpolated) with McClish's correction.

    Every position of a sorted row is turned into a point of the curve: the
    last sample of a run of ties is its threshold's point, every other sample
    repeats the point before it. Repeated points add zero-width steps and
    segments, so the sums over all positions equal the sums over the
    thresholds, and the rows keep one shape (no data-dependent sizes).
    Samples of weight 0 likewise only repeat points, so a 0/1 ``weight``
    selects samples.

    Args:
        scores (Tensor[R, n]), positive (Tensor[R, n] bool), weight (Tensor[R, n]
            or Tensor[n], optional, >= 0): as :func:`clf_counts`.
        max_fpr (float, optional): in (0, 1); None or 1: the whole area.

    Returns:
        (ap, auc, P, N), Tensor[R] float64 each: AP (0 without positives, as
        scikit-learn), ROC AUC (NaN without positives or negatives), and the
        (weighted) numbers of positives and negatives.
    """
    R, n = scores.shape
    if R == 0 or n == 0:
        z = scores.new_zeros(R, dtype=torch.float64)
        return z, torch.full_like(z, math.nan), z, z.clone()
    step = max(1, _CHUNK_ELEMENTS // n)
    if R > step:
        parts = [
            ranking_rows(
                scores[r : r + step],
                positive[r : r + step],
                None if weight is None else (weight if weight.dim() == 1 else weight[r : r + step]),
                max_fpr,
            )
            for r in range(0, R, step)
        ]
        return tuple(torch.cat([p[i] for p in parts]) for i in range(4))  # type: ignore[return-value]
    _, tps, fps, last = clf_counts(scores, positive, weight)
    arange = torch.arange(n, device=scores.device)
    # the latest threshold at or before every position (-1: none yet, the origin)
    at = torch.where(last, arange, torch.full_like(arange, -1)).cummax(-1).values
    seen = at >= 0
    at = at.clamp_min(0)
    zero = torch.zeros(R, 1, dtype=torch.float64, device=scores.device)
    tp = torch.cat([zero, torch.where(seen, tps.gather(-1, at), zero)], 1)
    fp = torch.cat([zero, torch.where(seen, fps.gather(-1, at), zero)], 1)
    P, N = tps[:, -1], fps[:, -1]
    # AP: precision 0 where nothing is predicted positive (scikit-learn's rule)
    ps = tp + fp
    precision = torch.where(ps != 0, tp / torch.where(ps != 0, ps, torch.ones_like(ps)), torch.zeros_like(ps))
    recall = tp / torch.where(P != 0, P, torch.ones_like(P)).unsqueeze(1)
    ap = ((recall[:, 1:] - recall[:, :-1]) * precision[:, 1:]).sum(-1).clamp_min(0)
    ap = torch.where(P != 0, ap, torch.zeros_like(ap))
    # ROC AUC: trapezoids, each as numpy's trapezoid forms it
    defined = (P > 0) & (N > 0)
    tpr = tp / torch.where(P > 0, P, torch.ones_like(P)).unsqueeze(1)
    fpr = fp / torch.where(N > 0, N, torch.ones_like(N)).unsqueeze(1)
    dx = fpr[:, 1:] - fpr[:, :-1]
    trapezoids = dx * (tpr[:, 1:] + tpr[:, :-1]) / 2.0
    if max_fpr is None or max_fpr == 1:
        auc = trapezoids.sum(-1)
    else:
        # scikit-learn: stop = searchsorted(fpr, max_fpr, "right"); the point at max_fpr interpolated
        # between points stop - 1 and stop (fpr[-1] == 1 > max_fpr, so both exist)
        stop = (fpr <= max_fpr).sum(-1, keepdim=True).clamp(1, n)
        x0, x1 = fpr.gather(-1, stop - 1), fpr.gather(-1, stop)
        y0, y1 = tpr.gather(-1, stop - 1), tpr.gather(-1, stop)
        width = torch.where(x1 > x0, x1 - x0, torch.ones_like(x1))
        y_max = (y1 - y0) / width * (max_fpr - x0) + y0  # numpy's interp
        inside = torch.where(arange.unsqueeze(0) + 1 < stop, trapezoids, torch.zeros_like(trapezoids)).sum(-1)
        partial = inside + ((max_fpr - x0) * (y_max + y0) / 2.0)[:, 0]
        min_area = 0.5 * max_fpr**2
        auc = 0.5 * (1 + (partial - min_area) / (max_fpr - min_area))
    auc = torch.where(defined, auc, torch.full_like(auc, math.nan))
    return ap, auc, P, N


def exact_counts(scores: Tensor, positive: Tensor, weight: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """scikit-learn's ``confusion_matrix_at_thresholds``: (fps, tps, thresholds) at every distinct score, descending.

    Samples of weight 0 are left out first (they add no threshold), as there.
    """
    if weight is not None:
        keep = weight != 0
        scores, positive, weight = scores[keep], positive[keep], weight[keep]
    s, tps, fps, last = clf_counts(scores.unsqueeze(0), positive.unsqueeze(0), None if weight is None else weight.unsqueeze(0))
    last = last[0]
    return fps[0][last], tps[0][last], s[0][last]


def exact_pr_curve(
    scores: Tensor, positive: Tensor, weight: Optional[Tensor] = None, drop_intermediate: bool = False
) -> Tuple[Tensor, Tensor, Tensor]:
    """scikit-learn's ``precision_recall_curve`` (float64): precision[m+1], recall[m+1], thresholds[m] ascending."""
    if scores.numel() == 0:
        e = scores.new_zeros(0, dtype=torch.float64)
        return e.new_ones(1), e.new_zeros(1), scores.new_zeros(0)
    fps, tps, thr = exact_counts(scores, positive, weight)
    if drop_intermediate and fps.numel() > 2:
        # keep the first and last point of every run of equal tps (equal recall: a vertical line)
        keep = torch.ones_like(tps, dtype=torch.bool)
        keep[1:-1] = (tps[1:-1] != tps[:-2]) | (tps[2:] != tps[1:-1])
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    ps = tps + fps
    precision = torch.where(ps != 0, tps / torch.where(ps != 0, ps, torch.ones_like(ps)), torch.zeros_like(ps))
    total = tps[-1:]
    recall = torch.where(total != 0, tps / torch.where(total != 0, total, torch.ones_like(total)), torch.ones_like(tps))
    one = torch.ones(1, dtype=torch.float64, device=scores.device)
    return torch.cat([precision.flip(0), one]), torch.cat([recall.flip(0), one * 0]), thr.flip(0)


def _second_difference(x: Tensor) -> Tensor:
    """numpy's ``diff(x, 2)``, rounded as there: differences of the differences."""
    d = x[1:] - x[:-1]
    return d[1:] - d[:-1]


def exact_roc_curve(
    scores: Tensor, positive: Tensor, weight: Optional[Tensor] = None, drop_intermediate: bool = False
) -> Tuple[Tensor, Tensor, Tensor]:
    """scikit-learn's ``roc_curve`` (float64): fpr, tpr, thresholds (first: inf); NaN rates without negatives / positives."""
    if scores.numel() == 0:
        z = torch.zeros(1, dtype=torch.float64, device=scores.device)
        return z, z.clone(), torch.full_like(z, math.inf)
    fps, tps, thr = exact_counts(scores, positive, weight)
    if drop_intermediate and fps.numel() > 2:
        # drop the points collinear with their neighbours (zero second differences of both counts)
        keep = torch.ones_like(tps, dtype=torch.bool)
        keep[1:-1] = (_second_difference(fps) != 0) | (_second_difference(tps) != 0)
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    zero = torch.zeros(1, dtype=torch.float64, device=scores.device)
    fps = torch.cat([zero, fps])
    tps = torch.cat([zero, tps])
    thr = torch.cat([torch.full_like(zero, math.inf), thr.double()])
    fpr = torch.where(fps[-1:] > 0, fps / torch.where(fps[-1:] > 0, fps[-1:], 1.0), torch.full_like(fps, math.nan))
    tpr = torch.where(tps[-1:] > 0, tps / torch.where(tps[-1:] > 0, tps[-1:], 1.0), torch.full_like(tps, math.nan))
    return fpr, tpr, thr


def exact_scores(scores: Tensor, positive: Tensor) -> Tuple[float, float]:
    """(AP, ROC AUC) of one class, each NaN where undefined (no positives; no positives or no negatives)."""
    ap, auc, P, _ = ranking_rows(scores.unsqueeze(0), positive.unsqueeze(0))
    return (float(ap[0]) if float(P[0]) > 0 else math.nan), float(auc[0])


# -- the curve state of ClassificationMetrics -------------------------------------------------------


def _nanmean(values: Tensor, weights: Optional[Tensor] = None) -> float:
    """Mean (or weighted mean) over the entries that are not NaN; NaN when none is."""
    keep = ~torch.isnan(values)
    if not bool(keep.any()):
        return math.nan
    if weights is None:
        return float(values[keep].mean())
    w = weights[keep].double()
    return float((values[keep] * w).sum() / w.sum()) if float(w.sum()) > 0 else math.nan


class CurveMixin:
    """Exact / binned curve state, AP and ROC AUC from it, and the per-class curves (a base of ``ClassificationMetrics``).

    Reads the attributes ``ClassificationMetrics.__init__`` / ``reset`` set
    (``num_classes``, ``curves``, ``device``, ``_task``, ``_grid``,
    ``_exact_limit``, ``_binned``, ``_hist``, ``_scores``, ``_targets``,
    ``_stored``) and ``_state_for`` of the class for the reduced state.
    """

    # -- curve state ------------------------------------------------------------------
    def _one_vs_rest(self, scores: Tensor, target: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(scores [n, K], positive [n, K], valid [n, K] or [n, 1]) from the stored form."""
        if self._task == "multilabel":
            return scores, target == 1, target >= 0
        if scores.shape[1] == 1:  # binary: class 0 is scored by 1 - p
            p = scores[:, 0].double()
            scores = torch.stack([1 - p, p], 1)
        classes = torch.arange(self.num_classes, device=target.device)
        return scores, target.unsqueeze(1) == classes, (target >= 0).unsqueeze(1)

    def _histogram(self, scores: Tensor, target: Tensor) -> Tensor:
        K = self.num_classes
        T = self._grid.numel()
        if scores.shape[0] == 0:
            return torch.zeros(K, 2, T + 1, dtype=torch.long, device=scores.device)
        s, positive, valid = self._one_vs_rest(scores, target)
        index = histogram_index(s, positive, valid.expand_as(positive), self._grid.to(scores.device))
        return class_counts(index, K * 2 * (T + 1), ignore_index=-1).view(K, 2, T + 1)

    def _add_curve_samples(self, scores: Tensor, target: Tensor) -> None:
        if self._binned:
            self._hist += self._histogram(scores, target)
            return
        self._scores.append(scores)
        self._targets.append(target)
        self._stored += scores.shape[0]
        if self._stored > self._exact_limit:  # switch to the binned state, once and for good
            scores, target = self._exact_state()
            self._hist = self._histogram(scores, target)
            self._scores, self._targets, self._stored = [], [], 0
            self._binned = True

    def _exact_state(self) -> Tuple[Tensor, Tensor]:
        if not self._scores:
            width = 1 if self._task == "binary" else self.num_classes
            scores = torch.zeros(0, width, device=self.device)
            multilabel = self._task == "multilabel"
            target = torch.zeros(
                (0, self.num_classes) if multilabel else (0,), dtype=torch.int8 if multilabel else torch.long, device=self.device
            )
            return scores, target
        dtype = torch.float64 if any(s.dtype == torch.float64 for s in self._scores) else torch.float32
        if len(self._scores) > 1:  # keep one chunk: the next compute() concatenates nothing
            self._scores = [torch.cat([s.to(dtype) for s in self._scores])]
            self._targets = [torch.cat(self._targets)]
        return self._scores[0].to(dtype), self._targets[0]

    def _local_curve_state(self) -> Any:
        if not self.curves:
            return None
        if self._binned:
            return ("binned", self._hist.clone())
        return ("exact",) + self._exact_state()

    # -- AP and ROC AUC ---------------------------------------------------------------
    def _ranking(self, curve: Any) -> Dict[str, Any]:
        device = self.confmat.device
        if curve[0] == "binned":
            ap, auc = binned_scores(curve[1])
            positives = binned_counts(curve[1])[2]
        else:
            scores, positive, valid = self._one_vs_rest(curve[1], curve[2])
            valid = valid.expand_as(positive)
            # every class at once (bt.metrics' ranking functions run the same code); the ignored
            # samples weigh 0, which leaves them out of the curves
            weight = None if bool(valid.all()) else valid.T.double()
            ap, auc, P, _ = ranking_rows(scores.T, positive.T, weight)
            ap = torch.where(P > 0, ap, torch.full_like(ap, math.nan))
            positives = (positive & valid).sum(0).double()
        ap, auc, positives = ap.to(device), auc.to(device), positives.to(device)
        result: Dict[str, Any] = {
            "average_precision": ap,
            "macro_average_precision": _nanmean(ap),
            "weighted_average_precision": _nanmean(ap, positives),
            "roc_auc": auc,
            "macro_roc_auc": _nanmean(auc),
            "weighted_roc_auc": _nanmean(auc, positives),
            "per_class_average_precision": ap,
            "per_class_roc_auc": auc,
        }
        if self._task == "binary":
            # the positive class headlines, as scikit-learn's binary average_precision_score / roc_auc_score
            result["average_precision"] = float(ap[1])
            result["roc_auc"] = float(auc[1])
        return result

    # -- curves ---------------------------------------------------------------------
    def _curve_state_for(self, caller: str, cross: bool) -> Any:
        if not self.curves:
            raise RuntimeError(f"ClassificationMetrics.{caller} needs curves=True at construction")
        return self._state_for(caller, cross)[1]

    def pr_curves(self, distributed: Optional[bool] = None, *, sync: Any = UNSET) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """Per-class precision-recall curves (one-vs-rest), float64 on the state's device.

        Exact state: scikit-learn's ``precision_recall_curve`` of class ``k``
        (``precision[m + 1]``, ``recall[m + 1]``, ``thresholds[m]`` over the
        ``m`` distinct scores, ascending; recall 1 without positives, as
        there). Binned state: torchmetrics' binned curve (``precision[T + 1]``,
        ``recall[T + 1]``, ``thresholds[T]``; NaN where undefined). Not
        collective; under ``torch.distributed`` it follows the rule of
        :meth:`report`. Needs ``curves=True``.

        Args:
            distributed (bool or None): all ranks (default None, as reduced by the last
                :meth:`compute`) or, with False, this rank's own samples;
                ``sync=`` is its deprecated name.

        Returns:
            list of (precision, recall, thresholds), one per class.
        """
        return self._curves_of(
            self._curve_state_for("pr_curves", cross_rank("ClassificationMetrics.pr_curves", distributed, sync)), "pr"
        )

    def roc_curves(self, distributed: Optional[bool] = None, *, sync: Any = UNSET) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """Per-class ROC curves (one-vs-rest), float64 on the state's device.

        Exact state: scikit-learn's ``roc_curve(..., drop_intermediate=False)``
        of class ``k`` (``fpr``, ``tpr``, ``thresholds``, the first threshold
        ``inf``; NaN rates where a class has no positives / negatives).
        Binned state: torchmetrics' binned ``roc`` (thresholds descending).
        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report`. Needs ``curves=True``.

        Args:
            distributed (bool or None): all ranks (default None: when a process group runs) or, with False, this rank's own samples; ``sync=`` is its deprecated name.

        Returns:
            list of (fpr, tpr, thresholds), one per class.
        """
        return self._curves_of(
            self._curve_state_for("roc_curves", cross_rank("ClassificationMetrics.roc_curves", distributed, sync)), "roc"
        )

    def _curves_of(self, curve: Any, kind: str) -> List[Tuple[Tensor, Tensor, Tensor]]:
        out = []
        if curve[0] == "binned":
            grid = self._grid.to(curve[1].device)
            fn = binned_pr_curve if kind == "pr" else binned_roc_curve
            return [fn(curve[1], grid, c) for c in range(self.num_classes)]
        scores, positive, valid = self._one_vs_rest(curve[1], curve[2])
        valid = valid.expand_as(positive)
        fn = exact_pr_curve if kind == "pr" else exact_roc_curve
        for c in range(self.num_classes):
            keep = valid[:, c]
            out.append(fn(scores[keep, c], positive[keep, c]))
        return out
