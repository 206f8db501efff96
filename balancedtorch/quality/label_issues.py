"""Finding mislabeled samples: confident learning (as cleanlab) and the simple mistake ranking."""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import Tensor

from .._classes import group_by_class
from ._inputs import check_labels_and_probs

__all__ = ["find_label_issues", "rank_mistakes", "mistakes_per_class", "label_quality_scores"]

FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")
RANKINGS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")

# cleanlab's constants, so that borderline cases are decided the same way
_FLOATING_POINT_COMPARISON = 1e-6
_THRESHOLD_LOWER_BOUND = 2e-6
_CLIPPING_LOWER_BOUND = 1e-6
_TINY = 1e-100


def label_quality_scores(labels: Any, pred_probs: Any, method: str = "self_confidence") -> Tensor:
    """Per-sample label quality in [0, 1] (low = likely mislabeled), cleanlab's definitions.

    ``self_confidence``: p[y]; ``normalized_margin``: (p[y] - max_{k != y} p[k] + 1) / 2;
    ``confidence_weighted_entropy``: log(1 + H/p[y]) / max(H/p[y], 1e-6) with H
    the entropy normalised by log K and p[y] clipped at 1e-6.
    """
    y, p = check_labels_and_probs(labels, pred_probs)
    return _scores(y, p, method)


def _scores(y: Tensor, p: Tensor, method: str) -> Tensor:
    self_conf = p.gather(1, y[:, None]).squeeze(1)
    if method == "self_confidence":
        return self_conf
    if method == "normalized_margin":
        others = p.scatter(1, y[:, None], float("-inf")).amax(1)
        return (self_conf - others + 1) / 2
    if method == "confidence_weighted_entropy":
        entropy = -torch.special.xlogy(p, p).sum(1) / np.log(p.shape[1])
        ratio = entropy / self_conf.clamp_min(_CLIPPING_LOWER_BOUND)
        return torch.log(ratio + 1) / ratio.clamp_min(_CLIPPING_LOWER_BOUND)
    raise ValueError(f"rank_by must be one of {RANKINGS} or None, got {method!r}")


def _round_preserving_sum(floats: np.ndarray) -> np.ndarray:
    ints = floats.round()
    orig_sum = np.sum(floats).round()
    int_sum = np.sum(ints).round()
    while abs(int_sum - orig_sum) > _FLOATING_POINT_COMPARISON:
        diff = np.round(orig_sum - int_sum)
        increment = -1 if int(diff < 0.0) else 1
        changes = min(int(abs(diff)), len(floats))
        for i in np.argsort(floats - ints)[::-increment][:changes]:
            ints[i] = ints[i] + increment
        int_sum = np.sum(ints).round()
    return ints.astype(int)


def _round_rows(matrix: np.ndarray) -> np.ndarray:
    return np.stack([_round_preserving_sum(row.astype(float)) for row in matrix]).astype(int)


def _prune_counts(confident_joint: np.ndarray, n: int, frac_noise: float) -> np.ndarray:
    """cleanlab's _keep_at_least_n_per_class on the transposed joint (K x K, numpy: tiny)."""
    pcm = confident_joint.T
    diagonal = np.diagonal(pcm)
    new_diagonal = np.maximum(diagonal, n)
    diff = new_diagonal - diagonal
    per_col = np.maximum(np.count_nonzero(pcm, axis=0) - 1.0, 1.0)
    new = pcm - diff / per_col
    new[new < 0] = 0
    np.fill_diagonal(new, new_diagonal)
    # keep only frac_noise of the off-diagonal counts; the diagonal takes the rest
    reduced = new * frac_noise
    np.fill_diagonal(reduced, new.diagonal())
    np.fill_diagonal(reduced, new.diagonal() + np.sum(new - reduced, axis=0))
    return _round_rows(reduced.astype(int)).astype(int)


def _confident_joint(y: Tensor, p: Tensor, counts: Tensor, order: Tensor, offsets: list):
    """Calibrated confident joint (K x K, rows: given label) and off-diagonal indices."""
    K = p.shape[1]
    # Per-class mean self-confidence with numpy's pairwise summation over the
    # class's samples in index order, exactly as cleanlab: a last-bit
    # difference in a threshold can flip a borderline sample.
    self_conf = p.gather(1, y[:, None]).squeeze(1).cpu().numpy()
    order_np = order.cpu().numpy()
    means = [
        np.mean(self_conf[order_np[offsets[k] : offsets[k + 1]]]) if offsets[k + 1] > offsets[k] else 2.0 for k in range(K)
    ]
    thresholds = torch.as_tensor(np.clip(np.asarray(means), _THRESHOLD_LOWER_BOUND, None), device=p.device)
    if not p.dtype == torch.float64:
        thresholds = thresholds.to(p.dtype)
    confident = p >= (thresholds - 1e-6)
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
    joint = counted.view(K, K).cpu().numpy().T
    np.fill_diagonal(joint, joint.diagonal().clip(min=1))
    off_diagonal = torch.nonzero(keep & (guess != y)).flatten()
    label_counts = counts.cpu().numpy().astype(float)
    calibrated = (joint.T / np.clip(joint.sum(axis=1), _TINY, None) * label_counts).T
    calibrated = calibrated / np.clip(np.sum(calibrated), _TINY, None) * label_counts.sum()
    return _round_rows(calibrated), off_diagonal


def find_label_issues(
    labels: Any,
    pred_probs: Any,
    filter_by: str = "prune_by_noise_rate",
    rank_by: Optional[str] = "self_confidence",
    *,
    frac_noise: float = 1.0,
    min_examples_per_class: int = 1,
) -> Tensor:
    """Samples whose given label is likely wrong, by confident learning (Northcutt et al. 2021).

    The same algorithm and defaults as ``cleanlab.filter.find_label_issues``
    (calibrated confident joint, then pruning), in torch on the device of
    ``pred_probs``. With the same arguments it flags the same samples and, with
    ``rank_by``, orders them as cleanlab's ``return_indices_ranked_by``.
    Deliberate difference: scores or margins that tie exactly are ordered by
    index (a stable sort; cleanlab's quicksort order among ties is
    unspecified).

    Args:
        labels (Tensor[N] | array): given labels in [0, K).
        pred_probs (Tensor[N, K] | array): out-of-sample predicted probabilities
            (rows sum to 1), e.g. from cross-validation.
        filter_by (str): ``"prune_by_noise_rate"`` (default), ``"prune_by_class"``,
            ``"both"``, ``"confident_learning"`` or ``"predicted_neq_given"``.
        rank_by (str or None): ``"self_confidence"`` (default), ``"normalized_margin"``
            or ``"confidence_weighted_entropy"``: return the flagged indices,
            most likely issue first; ``None``: return a boolean mask.
        frac_noise (float): in (0, 1]; return only this fraction of the estimated issues.
        min_examples_per_class (int): classes are never pruned below this size.

    Returns:
        Tensor[num_issues] int64 (ranked indices) or Tensor[N] bool (mask).

    Example:
        >>> issues = bt.quality.find_label_issues(labels, pred_probs)
        >>> print(f"{len(issues)} suspicious labels, worst first: {issues[:10].tolist()}")
    """
    if filter_by not in FILTERS:
        raise ValueError(f"filter_by must be one of {FILTERS}, got {filter_by!r}")
    if rank_by is not None and rank_by not in RANKINGS:
        raise ValueError(f"rank_by must be one of {RANKINGS} or None, got {rank_by!r}")
    if not (isinstance(frac_noise, (int, float)) and 0 < frac_noise <= 1):
        raise ValueError(f"frac_noise must be in (0, 1], got {frac_noise!r}")
    if isinstance(min_examples_per_class, bool) or not isinstance(min_examples_per_class, int) or min_examples_per_class < 0:
        raise ValueError(f"min_examples_per_class must be an int >= 0, got {min_examples_per_class!r}")
    y, p = check_labels_and_probs(labels, pred_probs)
    K = p.shape[1]
    counts = torch.bincount(y, minlength=K)
    order, offsets = group_by_class(y, counts)  # used by the thresholds and the pruning
    joint, off_diagonal = _confident_joint(y, p, counts, order, offsets)
    mask = torch.zeros(y.numel(), dtype=torch.bool, device=p.device)

    if filter_by in ("prune_by_noise_rate", "prune_by_class", "both"):
        prune = _prune_counts(joint, min_examples_per_class, float(frac_noise))
        by_label = p.index_select(0, order)  # rows grouped by given label, one gather
        by_class = torch.zeros_like(mask)
        by_noise = torch.zeros_like(mask)
        for k in range(K):
            members = order[offsets[k] : offsets[k + 1]]
            n_k = members.numel()
            if n_k <= min_examples_per_class:
                if n_k:
                    warnings.warn(f"May not flag all label issues in class {k}: it has too few examples", stacklevel=2)
                continue
            if n_k <= 1:
                continue
            pk = by_label[offsets[k] : offsets[k + 1]]
            # partial selections (topk) instead of full sorts; which of exactly
            # tied samples at the cut is taken is unspecified, as in cleanlab
            if filter_by in ("prune_by_class", "both"):
                num = min(int(n_k - prune[k, k]), n_k)
                if num >= 1:
                    by_class[members[torch.topk(pk[:, k], num, largest=False, sorted=False).indices]] = True
            if filter_by in ("prune_by_noise_rate", "both"):
                # for each other class j, the prune[j, k] samples of given label k
                # with the largest margin p_j - p_k: one topk over all j at once
                nums = np.minimum(prune[:, k], n_k)
                nums[k] = 0  # only noise rates, not the diagonal
                if nums.max() > 0:
                    margins = pk - pk[:, k : k + 1]
                    top = torch.topk(margins, int(nums.max()), dim=0, sorted=True).indices
                    keep = torch.arange(top.shape[0], device=p.device)[:, None] < torch.as_tensor(nums, device=p.device)[None, :]
                    by_noise[members[top[keep]]] = True
        mask = {"prune_by_class": by_class, "prune_by_noise_rate": by_noise, "both": by_class & by_noise}[filter_by]
    elif filter_by == "confident_learning":
        mask[off_diagonal] = True
    else:  # predicted_neq_given
        mask = p.argmax(1) != y

    # never flag a sample whose given label is (within 1e-6, in the input's
    # dtype as cleanlab) the model's prediction; only flagged rows need checking
    rows = torch.nonzero(mask).flatten()
    nudged = p[rows].clone()
    nudged[torch.arange(rows.numel(), device=p.device), y[rows]] += _FLOATING_POINT_COMPARISON
    mask[rows[nudged.argmax(1) == y[rows]]] = False

    if rank_by is None:
        return mask
    flagged = torch.nonzero(mask).flatten()
    scores = _scores(y[flagged], p[flagged], rank_by)  # in the input dtype, as cleanlab
    return flagged[torch.argsort(scores, stable=True)]


def rank_mistakes(labels: Any, pred_probs: Any) -> Dict[str, Tensor]:
    """Every sample whose predicted class differs from its label, most confident mistake first.

    Returns:
        dict of equal-length tensors: ``index``, ``target`` (given label),
        ``prediction`` (argmax) and ``confidence`` (probability of the
        prediction), sorted by confidence, highest first (ties by index).

    Example:
        >>> m = bt.quality.rank_mistakes(val_labels, probs)
        >>> for i, t, p, c in zip(*m.values()): print(i, t, p, f"{c:.2f}")
    """
    y, p = check_labels_and_probs(labels, pred_probs)
    confidence, prediction = p.max(1)
    wrong = torch.nonzero(prediction != y).flatten()
    order = torch.argsort(-confidence[wrong].double(), stable=True)
    idx = wrong[order]
    return {"index": idx, "target": y[idx], "prediction": prediction[idx], "confidence": confidence[idx]}


def mistakes_per_class(labels: Any, pred_probs: Any) -> Dict[str, Any]:
    """Per class: how many of its samples are mispredicted, and as what; worst class first.

    Returns:
        dict with ``class`` (classes ordered by mistake rate, highest first;
        ties by count then class), ``count`` (mistakes), ``support`` (samples),
        ``rate`` (count / support, 0 for absent classes), and ``confused_with``:
        for each class, a list of ``(predicted_class, count)`` pairs, most
        frequent first.
    """
    y, p = check_labels_and_probs(labels, pred_probs)
    K = p.shape[1]
    prediction = p.argmax(1)
    confusion = torch.bincount(y * K + prediction, minlength=K * K).view(K, K).cpu()
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
    return {"class": order, "count": count[order], "support": support[order], "rate": rate[order], "confused_with": confused}
