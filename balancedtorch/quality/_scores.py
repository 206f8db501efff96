"""Label-quality scores of ``bt.quality``: cleanlab's formulas in numpy, and the ranking of flagged rows by them.

Label-quality scores are computed with numpy, with cleanlab's formulas and
dtypes (self_confidence and normalized_margin in the input's dtype,
confidence_weighted_entropy in float64), and ranked with numpy's argsort:
the same scores, bit for bit, order the flagged samples exactly as cleanlab,
ties included. Only the flagged rows are scored, so this is not a hot path.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from .._distributed import Comm
from .._optional import require

__all__: list = []

RANKINGS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")

# cleanlab's constants, so that borderline cases are decided the same way
_THRESHOLD_LOWER_BOUND = 2e-6
_CLIPPING_LOWER_BOUND = 1e-6
_ABSENT_CLASS_THRESHOLD = 2  # cleanlab's BIG_VALUE: no probability reaches it
_MULTILABEL_EMA_ALPHA = 0.8  # cleanlab's default aggregator of per-class scores in multi-label data


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
    adjust = _validate.flag(adjust, "rank_by_kwargs['adjust_pred_probs']")
    if adjust and method == "confidence_weighted_entropy":
        raise ValueError("adjust_pred_probs is not supported for confidence_weighted_entropy (as cleanlab)")
    return bool(adjust)


def _rank_across(rows: np.ndarray, scores: np.ndarray, comm: Comm) -> np.ndarray:
    """This rank's ``rows`` in the order ``np.argsort`` gives all ranks' scores (concatenated in rank order)."""
    parts = comm.all_gather_rows(torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float64)))
    start = sum(part.shape[0] for part in parts[: comm.rank])
    order = np.argsort(torch.cat(parts).numpy().astype(scores.dtype)) - start
    return rows[order[(order >= 0) & (order < rows.shape[0])]]
