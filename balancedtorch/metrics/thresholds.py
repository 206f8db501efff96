"""Decision thresholds tuned on validation data: ``tune_threshold`` and ``apply_thresholds``.

A prediction is positive when ``score >= threshold``: scikit-learn's rule
(``precision_recall_curve``, ``FixedThresholdClassifier``). The candidate
thresholds are every distinct score (the thresholds of
``precision_recall_curve``) plus ``inf`` (predict no positive), so the optimum
is exact: the scores are sorted once per class, true and false positives are
counted cumulatively, and the metric is evaluated at every candidate, all on
the scores' device. Since every threshold returned is one of the scores (or
``inf``), ``apply_thresholds`` on the same data reproduces the reported value
exactly.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from .._labels import check_labels
from .._validate import all_finite
from ..data.labels import refuse_meta

__all__ = ["METRICS", "apply_thresholds", "tune_threshold"]

#: The metrics ``tune_threshold`` maximises.
METRICS = ("f1", "recall@precision", "precision@recall", "balanced_accuracy", "fbeta")

# per chunk of classes, at most this many (class, candidate) pairs: bounds the
# temporaries to a few hundred MiB however many classes there are
_CHUNK_ELEMENTS = 1 << 22


def _to_tensor(values: Any, name: str, caller: str) -> Tensor:
    """A tensor view of any array-like (pandas' read-only arrays copied, so torch does not warn)."""
    if isinstance(values, Tensor):
        return values.detach()
    array = np.asarray(values)
    if array.dtype == object or array.dtype.kind in "USVMmO":
        raise TypeError(f"{caller}: {name} must be numeric, got an array of dtype {array.dtype}")
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(np.ascontiguousarray(array))


def _where(name: str, t: Tensor, flat: int) -> str:
    """``name[i]`` or ``name[i, j]`` for the flat index of an element of ``t``."""
    index = np.unravel_index(flat, tuple(t.shape)) if t.dim() else ()
    return f"{name}[{', '.join(str(int(i)) for i in index)}]"


def _check_scores(scores: Any, caller: str) -> Tensor:
    s = _to_tensor(scores, "scores", caller)
    if s.dtype == torch.bool or s.is_complex():
        raise TypeError(f"{caller}: scores must hold real numbers (probabilities or logits), got dtype {s.dtype}")
    if not s.is_floating_point():
        s = s.double()  # integer scores: inf must be representable as a threshold
    if s.dim() == 0 or s.dim() > 2:
        raise ValueError(
            f"{caller}: scores must have shape (N,) (binary) or (N, C) (one-vs-rest, multi-label), "
            f"got shape {tuple(s.shape)}; flatten segmentation outputs first"
        )
    if s.shape[0] == 0:
        raise ValueError(f"{caller}: scores is empty")
    if s.dim() == 2 and s.shape[1] == 0:
        raise ValueError(f"{caller}: scores has shape {tuple(s.shape)}: no classes")
    if not all_finite(s):
        bad = ~torch.isfinite(s)
        i = int(bad.flatten().nonzero()[0, 0])
        raise ValueError(
            f"{caller}: scores must be finite (no NaN or inf), got {_where('scores', s, i)} = {s.flatten()[i].item()}"
        )
    return s


def _named_labels(labels: Any, scores: Tensor, caller: str, pos_label: Any) -> Optional[Tuple[Tensor, str]]:
    """Labels of any kind read with scikit-learn's rules, or None for the 0/1 and class-index rules below.

    Taken here: an explicit ``pos_label`` (binary scores: positive where ``labels == pos_label``), and
    labels that are not numbers (strings, objects): binary scores need ``pos_label`` as in
    scikit-learn's ``precision_recall_curve``; ``(N, C)`` scores take the sorted distinct labels as
    their columns (scikit-learn's ``classes_`` order), all C of them present.
    """
    numeric = isinstance(labels, Tensor)
    array = None
    if not numeric:
        array = np.asarray(labels) if not isinstance(labels, np.ndarray) else labels
        if array.dtype.kind == "S" or (array.dtype == object and array.size and isinstance(array.flat[0], bytes)):
            raise TypeError(f"{caller}: labels represented as bytes are not supported; convert them to str or integers")
        numeric = array.dtype.kind in "biuf" or (
            array.dtype == object and all(isinstance(v, numbers.Real) for v in array.ravel())
        )
    if numeric and pos_label is None:
        return None
    binary = scores.dim() == 1 or scores.shape[1] == 1
    n = scores.shape[0]
    y = labels.detach() if isinstance(labels, Tensor) else array
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"{caller}: labels has shape {tuple(y.shape)} but scores has shape {tuple(scores.shape)}: "
            "one label per score row is expected"
        )
    if pos_label is not None and not binary:
        raise ValueError(
            f"{caller}: pos_label is for binary scores of shape (N,); for (N, C) scores the columns are the "
            f"classes, got pos_label={pos_label!r} and scores of shape {tuple(scores.shape)}"
        )
    if isinstance(y, Tensor):
        classes = torch.unique(y).tolist()
    else:
        try:
            classes = np.unique(y).tolist()
        except TypeError as e:
            raise ValueError(f"{caller}: labels mixes label types that cannot be ordered: {e}") from None
    if binary:
        if pos_label is None:
            shown = ", ".join(repr(c) for c in classes)
            raise ValueError(
                f"{caller}: labels takes value in {{{shown}}} and pos_label is not specified: either make labels "
                "take value in {0, 1} or {-1, 1} or pass pos_label explicitly."
            )
        # pos_label must be one of the labels, whatever their number; the one exception is the usual
        # positive 1 next to labels that are all 0 (or all -1): a split without positives (warned below)
        no_positive_split = pos_label == 1 and not isinstance(pos_label, str) and classes in ([0], [-1])
        if pos_label not in classes and not no_positive_split:
            raise ValueError(f"{caller}: pos_label={pos_label!r} is not a valid label. It should be one of {classes}")
        if isinstance(y, Tensor):
            positive = y == pos_label if not isinstance(pos_label, (str, bytes)) else torch.zeros_like(y, dtype=torch.bool)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                eq = np.asarray(y == pos_label)
            positive = torch.from_numpy(eq.astype(bool) if eq.shape == y.shape else np.zeros(y.shape, dtype=bool))
        return positive.to(scores.device).view(1, n), "binary"
    C = scores.shape[1]
    if len(classes) != C:
        raise ValueError(
            f"{caller}: labels holds {len(classes)} distinct labels but scores has C={C} columns; the columns "
            f"are taken to be the sorted labels {classes[:10]}{'...' if len(classes) > 10 else ''}: every class "
            "must occur (or map the labels to column indices 0..C-1 first)"
        )
    codes = torch.from_numpy(np.searchsorted(np.asarray(classes, dtype=array.dtype), array).astype(np.int64))
    codes = codes.to(scores.device)
    return codes.view(1, n) == torch.arange(C, device=scores.device).view(C, 1), "multiclass"


def _check_labels(labels: Any, scores: Tensor, caller: str, pos_label: Any = None) -> Tuple[Tensor, str]:
    """Labels as a bool (K, N) positives mask for the K columns of ``scores``, and the task."""
    named = _named_labels(labels, scores, caller, pos_label)
    if named is not None:
        return named
    if isinstance(labels, Tensor):
        t = labels.detach()
        if t.dtype == torch.bool:
            t = t.to(torch.uint8)
    else:
        array = np.asarray(labels)
        if array.dtype == np.bool_:
            array = array.astype(np.uint8)
        elif array.dtype.kind in "iuf" and not array.flags.writeable:
            array = array.copy()
        t = array
    shape = tuple(t.shape)
    flat = check_labels(t, "labels", caller=caller, allow_negative=True, any_shape=True, allow_empty=True, device=scores.device)
    y = flat.view(shape)
    n = scores.shape[0]
    if y.dim() == 0 or y.shape[0] != n:
        raise ValueError(
            f"{caller}: labels has shape {shape} but scores has shape {tuple(scores.shape)}: "
            "one label (or one row of 0/1 labels) per score row is expected"
        )
    binary = scores.dim() == 1 or (scores.shape[1] == 1 and y.dim() == 1)
    if y.dim() == 2 and y.shape[1] == 1 and (scores.dim() == 1 or scores.shape[1] == 1):
        y, binary = y[:, 0], True
    if binary:
        if y.dim() != 1:
            raise ValueError(
                f"{caller}: labels has shape {shape} for binary scores of shape {tuple(scores.shape)}: expected (N,) 0/1 labels"
            )
        _check_zero_one(y, caller, "for binary scores of shape (N,); for C classes pass scores of shape (N, C)")
        return y.bool().view(1, n), "binary"
    C = scores.shape[1]
    if y.dim() == 1:
        bad = (y < 0) | (y >= C)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{caller}: labels must be class indices 0..{C - 1} for scores with C={C} columns, got labels[{i}] = {int(y[i])}"
            )
        return y.view(1, n) == torch.arange(C, device=y.device).view(C, 1), "multiclass"
    if y.dim() != 2 or y.shape[1] != C:
        raise ValueError(
            f"{caller}: labels has shape {shape} but scores has shape {tuple(scores.shape)}: expected (N,) class "
            f"indices (one-vs-rest) or (N, {C}) 0/1 multi-label targets"
        )
    _check_zero_one(y, caller, "for multi-label targets of shape (N, C)")
    return y.bool().T, "multilabel"


def _check_zero_one(y: Tensor, caller: str, context: str) -> None:
    bad = (y != 0) & (y != 1)
    if bool(bad.any()):
        i = int(bad.flatten().nonzero()[0, 0])
        raise ValueError(f"{caller}: labels must be 0 or 1 {context}, got {_where('labels', y, i)} = {int(y.flatten()[i])}")


def _div(num: Tensor, den: Tensor) -> Tensor:
    """num / den in float64 with 0 where den == 0 (scikit-learn's zero_division=0), one rounding."""
    num, den = num.double(), den.double()
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))


def _tune_block(s: Tensor, y: Tensor, metric: str, target: Optional[float], beta: Optional[float]) -> Dict[str, Tensor]:
    """The optimum for each row of ``s`` (K, N) with positives ``y`` (K, N) bool: (K,) tensors."""
    K, N = s.shape
    s_sorted, order = torch.sort(s, dim=1, descending=True)
    tp = torch.cumsum(torch.gather(y, 1, order), dim=1)  # int64
    fp = torch.arange(1, N + 1, device=s.device) - tp
    # candidate j + 1: threshold s_sorted[:, j], valid at the last of each run of equal scores;
    # candidate 0: threshold inf (no positive prediction)
    valid = torch.ones(K, N + 1, dtype=torch.bool, device=s.device)
    valid[:, 1:N] = s_sorted[:, :-1] != s_sorted[:, 1:]
    zero = tp.new_zeros(K, 1)
    tp, fp = torch.cat([zero, tp], 1), torch.cat([zero, fp], 1)
    thresholds = torch.cat([s_sorted.new_full((K, 1), math.inf), s_sorted], 1)
    pos = tp[:, -1:]
    neg = N - pos
    precision = _div(tp, tp + fp)
    recall = _div(tp, pos.expand_as(tp))
    secondary = None
    feasible = valid
    if metric == "f1":
        primary = _div(2 * tp, tp + fp + pos)
    elif metric == "fbeta":
        b2 = float(beta) ** 2
        primary = _div((1 + b2) * tp.double(), b2 * pos.double() + (tp + fp).double())
    elif metric == "balanced_accuracy":
        # the mean recall over the classes present in the labels (scikit-learn's balanced_accuracy_score),
        # as one division of integers so that equal values compare equal
        tn = neg - fp
        both = (pos > 0) & (neg > 0)
        num = torch.where(both, tp * neg + tn * pos, torch.where(pos > 0, tp, tn))
        den = torch.where(both, 2 * pos * neg, torch.where(pos > 0, pos, neg)).expand_as(num)
        primary = _div(num, den)
    elif metric == "recall@precision":
        primary, secondary = recall, precision
        feasible = valid & (precision >= target)
    else:  # precision@recall
        primary, secondary = precision, recall
        feasible = valid & (recall >= target)
    # every value lies in [0, 1]: -1 marks the candidates left out
    score = torch.where(feasible, primary, torch.full_like(primary, -1.0))
    best = score == score.max(dim=1, keepdim=True).values
    if secondary is not None:
        second = torch.where(best, secondary, torch.full_like(secondary, -1.0))
        best = best & (second == second.max(dim=1, keepdim=True).values)
    best = best & feasible
    # the first best candidate: the largest threshold; none feasible -> candidate 0 (inf)
    idx = best.to(torch.uint8).argmax(dim=1, keepdim=True)
    return {
        "threshold": thresholds.gather(1, idx)[:, 0],
        "value": torch.where(feasible.gather(1, idx), primary.gather(1, idx), torch.zeros_like(primary[:, :1]))[:, 0],
        "precision": precision.gather(1, idx)[:, 0],
        "recall": recall.gather(1, idx)[:, 0],
        "feasible": feasible.any(dim=1),
        "positives": pos[:, 0],
        "negatives": neg[:, 0],
    }


def tune_threshold(
    labels: Any,
    scores: Any,
    metric: str = "f1",
    target: Optional[float] = None,
    *,
    beta: Optional[float] = None,
    pos_label: Any = None,
) -> Dict[str, Any]:
    """The decision threshold that maximises a metric on validation data, exactly.

    A sample is predicted positive when ``score >= threshold`` (scikit-learn's
    rule, as in ``precision_recall_curve`` and ``FixedThresholdClassifier``).
    Every distinct score is a candidate threshold, plus ``inf`` (predict no
    positive): the scores are sorted once (O(N log N) per class) and the
    metric is evaluated at every candidate, on the scores' device. Thresholds
    live on the scale of the scores: tune on probabilities, apply to
    probabilities; tune on logits, apply to logits.

    Metrics (``value``; zero divisions give 0, scikit-learn's ``zero_division=0``):

    * ``"f1"``: F1 of the positive class (``sklearn.metrics.f1_score``);
      ``"fbeta"`` with ``beta=``: ``fbeta_score``.
    * ``"balanced_accuracy"``: mean of recall and specificity
      (``balanced_accuracy_score``; with one class in the labels, that
      class's recall).
    * ``"recall@precision"``: the largest recall with precision >= ``target``.
      If no finite threshold reaches the target, the result is
      ``threshold=inf`` (predict no positive), ``value=0.0``, with a warning.
    * ``"precision@recall"``: the largest precision with recall >= ``target``
      (always reachable when the labels hold a positive).

    Ties: among thresholds with the same value, the one with the better
    precision (``"recall@precision"``) or recall (``"precision@recall"``),
    then the largest threshold (the fewest positive predictions). Every
    threshold returned is one of the scores (or ``inf``), so
    ``apply_thresholds(scores, result)`` on the same data gives predictions
    whose metric equals ``value`` exactly, and the threshold is one of
    ``precision_recall_curve``'s.

    Labels with no positive sample give ``threshold=inf`` (predicting nothing
    is optimal for every metric); labels with no negative sample give the
    lowest score (predict everything); both warn.

    Labels of any kind, as in scikit-learn's ``precision_recall_curve``:
    binary labels may be any two values (strings included) with
    ``pos_label`` naming the positive one (without it they must be 0/1; unlike
    scikit-learn, {-1, 1} labels need ``pos_label=1``); for ``(N, C)`` scores, string
    (or other non-numeric) labels name the columns in sorted order
    (scikit-learn's ``classes_``), every class present.

    Args:
        labels: binary ``(N,)`` 0/1 labels (bool or integers) for ``(N,)``
            scores, or any labels with ``pos_label``; for ``(N, C)`` scores
            either ``(N,)`` class indices in ``[0, C)`` (one-vs-rest: class
            ``c`` against the rest), ``(N,)`` string labels (columns: the
            sorted labels) or ``(N, C)`` 0/1 multi-label targets. A tensor
            (any device), numpy array, list or pandas Series/DataFrame.
        scores: ``Tensor[N]`` (or ``[N, 1]``) scores of the positive class, or
            ``Tensor[N, C]`` per-class scores: probabilities or logits, finite.
            Higher means more likely positive.
        metric (str): ``"f1"`` (default), ``"recall@precision"``,
            ``"precision@recall"``, ``"balanced_accuracy"`` or ``"fbeta"``.
        target (float, optional): the precision (``"recall@precision"``) or
            recall (``"precision@recall"``) to reach, in ``[0, 1]``; required
            by those two metrics, refused by the others.
        beta (float, optional): the F-beta weight of recall, > 0; required by
            ``"fbeta"`` (e.g. 2.0 for recall-heavy problems), refused by the others.
        pos_label (int, float, bool or str, optional): binary scores only: the
            positive label (``labels == pos_label`` is positive); needed for
            labels other than 0/1 (e.g. ``"malignant"``). It must be one of the
            labels (a ValueError otherwise, however many values they hold),
            except ``pos_label=1`` for labels that are all 0 (or all -1): no
            positive sample, ``threshold=inf`` with a warning.

    Returns:
        dict: ``threshold``, ``value``, ``precision`` and ``recall`` at the
        threshold, plus ``metric``, ``target`` and ``task`` (``"binary"``,
        ``"multiclass"`` or ``"multilabel"``). Binary: Python floats.
        One-vs-rest and multi-label: ``Tensor[C]`` on the scores' device, per
        class (thresholds in the scores' floating dtype, the rest float64).

    Raises:
        ValueError: NaN or infinite scores, labels not 0/1 (binary,
            multi-label) or outside ``[0, C)``, mismatched shapes, empty
            input, an unknown metric, a missing or out-of-range ``target``/``beta``.
        TypeError: non-numeric scores or labels, a non-real ``target``/``beta``.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> g = torch.Generator().manual_seed(0)
        >>> val_labels = (torch.rand(1000, generator=g) < 0.1).long()          # 10% positives
        >>> val_probs = 0.3 * val_labels + 0.7 * torch.rand(1000, generator=g)
        >>> r = bt.metrics.tune_threshold(val_labels, val_probs, metric="recall@precision", target=0.9)
        >>> print(f'{r["threshold"]:.3f} {r["value"]:.2f} {r["precision"]:.2f}')  # recall 0.38 at precision >= 0.9
        0.701 0.38 1.00
        >>> preds = bt.metrics.apply_thresholds(val_probs, r)  # test_probs in practice
        >>> preds.dtype, int(preds.sum())
        (torch.bool, 38)
        >>> val_y = torch.tensor([0] * 50 + [1] * 5 + [2] * 45)
        >>> val_logits = 2.0 * torch.nn.functional.one_hot(val_y, 3) + torch.randn(100, 3, generator=g)
        >>> per_class = bt.metrics.tune_threshold(val_y, val_logits)   # (N,) classes, (N, C) logits
        >>> per_class["threshold"]                                       # Tensor[C]
        tensor([0.8067, 2.0162, 0.8975])
        >>> r = bt.metrics.tune_threshold(["ham", "spam", "spam", "ham"], torch.tensor([0.2, 0.9, 0.6, 0.7]),
        ...                               pos_label="spam")
        >>> print(f'{r["threshold"]:.2f} {r["value"]:.2f}')  # F1 0.8 at score >= 0.6
        0.60 0.80
    """
    caller = "tune_threshold"
    metric = _validate.choice(metric, "metric", METRICS, caller=caller)
    constrained = metric in ("recall@precision", "precision@recall")
    if constrained:
        if target is None:
            other = metric.split("@")[1]
            raise ValueError(f"{caller}: metric={metric!r} needs target= (the {other} to reach, in [0, 1])")
        target = _validate.real(target, "target", low=0, high=1, caller=caller)
    elif target is not None:
        raise ValueError(f"{caller}: target is used by 'recall@precision' and 'precision@recall' only, not by metric={metric!r}")
    if metric == "fbeta":
        if beta is None:
            raise ValueError(f"{caller}: metric='fbeta' needs beta= (> 0; 1.0 is F1)")
        beta = _validate.real(beta, "beta", low=0, low_inclusive=False, caller=caller)
    elif beta is not None:
        raise ValueError(f"{caller}: beta is used by metric='fbeta' only, not by metric={metric!r}")

    refuse_meta(labels, "labels", caller)
    refuse_meta(scores, "scores", caller)
    s = _check_scores(scores, caller)
    if pos_label is not None and not isinstance(pos_label, (numbers.Real, str, np.bool_)):
        raise TypeError(f"{caller}: pos_label must be an int, a float, a bool or a str, got {pos_label!r}")
    y, task = _check_labels(labels, s, caller, pos_label)
    s = s.reshape(1, -1) if task == "binary" else s.T
    K, N = s.shape
    step = max(1, _CHUNK_ELEMENTS // (N + 1))
    parts = [_tune_block(s[k : k + step], y[k : k + step], metric, target, beta) for k in range(0, K, step)]
    out = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
    _warn_degenerate(out, task, metric, target)
    result: Dict[str, Any] = {key: out[key] for key in ("threshold", "value", "precision", "recall")}
    if task == "binary":
        result = {k: float(v[0]) for k, v in result.items()}
    result.update(metric=metric, target=target, task=task)
    if metric == "fbeta":
        result["beta"] = beta
    return result


def _warn_degenerate(out: Dict[str, Tensor], task: str, metric: str, target: Optional[float]) -> None:
    def which(mask: Tensor) -> str:
        return "the labels" if task == "binary" else f"classes {mask.nonzero()[:, 0].tolist()}"

    no_pos, no_neg = out["positives"] == 0, out["negatives"] == 0
    if bool(no_pos.any()):
        warnings.warn(
            f"tune_threshold: {which(no_pos)}: no positive sample, every threshold scores the same; "
            "threshold=inf (predict no positive) is returned",
            UserWarning,
            stacklevel=3,
        )
    if bool(no_neg.any()):
        warnings.warn(
            f"tune_threshold: {which(no_neg)}: no negative sample; the threshold returned is the lowest score "
            "(predict every sample positive)",
            UserWarning,
            stacklevel=3,
        )
    unmet = ~out["feasible"] & ~no_pos
    if metric == "recall@precision" and bool(unmet.any()):
        warnings.warn(
            f"tune_threshold: {which(unmet)}: no threshold reaches precision >= {target}; "
            "threshold=inf (predict no positive) and value (recall) 0.0 are returned",
            UserWarning,
            stacklevel=3,
        )


def apply_thresholds(scores: Any, thresholds: Any, multilabel: Optional[bool] = None) -> Tensor:
    """Predictions from scores and tuned thresholds (positive when ``score >= threshold``).

    * Binary: ``scores`` ``(N,)`` (or ``(N, 1)``) and one threshold ->
      ``BoolTensor[N]``.
    * Multi-label (``multilabel=True``): ``scores`` ``(N, C)`` and ``(C,)``
      thresholds (or one for all) -> ``BoolTensor[N, C]``, each label on its own.
    * Multi-class (``multilabel=False``, the default for ``(N, C)`` scores):
      -> ``LongTensor[N]``, one class per sample: the class whose score
      clears its threshold by the widest margin, ``argmax_c(scores[:, c] -
      thresholds[c])``. When no class clears its threshold this is the class
      that misses it by the least, so every sample still gets a class; ties
      go to the lowest class index. A class with threshold ``inf`` (no
      positive in the validation data) is never predicted (unless every
      class has one: then plain ``argmax(scores)``). The margin is on the
      scores' scale, so use thresholds tuned on the same kind of scores.

    ``thresholds`` may be the dict returned by :func:`tune_threshold`; its
    ``task`` then decides between multi-label and multi-class (``multilabel``
    left at None, or consistent with it).

    Args:
        scores: ``Tensor[N]`` or ``Tensor[N, C]`` scores (tensor, numpy array,
            list or pandas object), finite.
        thresholds: a float, ``Tensor[C]``/sequence of per-class thresholds,
            or a :func:`tune_threshold` result. ``inf`` means never positive.
        multilabel (bool, optional): for ``(N, C)`` scores, independent labels
            (True) or one class per sample (False). Default: the task of a
            :func:`tune_threshold` result, else False.

    Returns:
        Tensor on the scores' device: ``bool[N]`` (binary), ``bool[N, C]``
        (multi-label) or ``int64[N]`` (multi-class).

    Raises:
        ValueError: NaN or infinite scores, NaN thresholds, a threshold count
            that does not match the classes, ``multilabel`` contradicting the
            result's task.
        TypeError: non-numeric scores or thresholds.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> g = torch.Generator().manual_seed(0)
        >>> val_labels = (torch.rand(200, generator=g) < 0.1).long()
        >>> val_probs = 0.3 * val_labels + 0.7 * torch.rand(200, generator=g)
        >>> r = bt.metrics.tune_threshold(val_labels, val_probs, metric="f1")
        >>> test_probs = torch.tensor([0.1, 0.95, 0.5])
        >>> bt.metrics.apply_thresholds(test_probs, r)          # bool (N,): score >= threshold
        tensor([False,  True, False])
        >>> val_y = torch.tensor([0] * 50 + [1] * 5 + [2] * 45)
        >>> val_logits = 2.0 * torch.nn.functional.one_hot(val_y, 3) + torch.randn(100, 3, generator=g)
        >>> r = bt.metrics.tune_threshold(val_y, val_logits, metric="balanced_accuracy")
        >>> classes = bt.metrics.apply_thresholds(val_logits, r)       # int64 (N,): argmax of score - threshold
        >>> classes.dtype, classes.shape
        (torch.int64, torch.Size([100]))
    """
    caller = "apply_thresholds"
    if multilabel is not None and not isinstance(multilabel, bool):
        raise TypeError(f"{caller}: multilabel must be True, False or None, got {multilabel!r}")
    task = None
    if isinstance(thresholds, dict):
        if "threshold" not in thresholds:
            raise ValueError(f"{caller}: thresholds is a dict without a 'threshold' key (expected a tune_threshold result)")
        task = thresholds.get("task")
        thresholds = thresholds["threshold"]
        if multilabel is not None and task in ("multiclass", "multilabel") and multilabel != (task == "multilabel"):
            raise ValueError(f"{caller}: multilabel={multilabel} contradicts the thresholds' task {task!r}")
    refuse_meta(scores, "scores", caller)
    refuse_meta(thresholds, "thresholds", caller)
    s = _check_scores(scores, caller)
    binary = s.dim() == 1 or (s.shape[1] == 1 and task in (None, "binary") and multilabel is not True)
    if binary and s.dim() == 2:
        s = s[:, 0]
    if isinstance(thresholds, Tensor):
        t = thresholds.detach()
    elif isinstance(thresholds, numbers.Real) and not isinstance(thresholds, bool):
        t = torch.tensor(float(thresholds), dtype=torch.float64)
    else:
        t = _to_tensor(thresholds, "thresholds", caller)
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{caller}: thresholds must hold real numbers, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.double()
    t = t.to(s.device)
    if bool(torch.isnan(t).any()):
        i = int(torch.isnan(t).flatten().nonzero()[0, 0])
        raise ValueError(f"{caller}: thresholds must not be NaN, got {_where('thresholds', t, i)} = nan")
    C = 1 if binary else s.shape[1]
    if t.numel() != 1 and (t.dim() != 1 or t.numel() != C):
        want = "one threshold" if binary else f"one threshold or {C} (one per class)"
        raise ValueError(f"{caller}: thresholds has shape {tuple(t.shape)} for scores of shape {tuple(s.shape)}: expected {want}")
    if binary:
        return _at_least(s, t.reshape(()))
    t = t.reshape(-1).expand(C)
    if multilabel or (multilabel is None and task == "multilabel"):
        return _at_least(s, t)
    if bool(torch.isposinf(t).all()):
        return s.argmax(dim=1)
    return (s - t.to(torch.promote_types(s.dtype, t.dtype))).argmax(dim=1)


def _at_least(s: Tensor, t: Tensor) -> Tensor:
    """``s >= t`` compared exactly (in the wider of the two dtypes)."""
    dtype = torch.promote_types(s.dtype, t.dtype)
    return s.to(dtype) >= t.to(dtype)
