"""scikit-learn's ranking metrics, drop-in: ``average_precision_score``, ``roc_auc_score``, ``precision_recall_curve``, ``roc_curve``.

Same signatures, defaults, results, warnings and error messages as
``sklearn.metrics`` (the ones its own tests check), on numpy arrays, lists
or pandas objects (numpy / float out) and on tensors (tensors out, on the
scores' device, CUDA included). The sorting and cumulative sums are the ones
:class:`ClassificationMetrics` uses for its exact curve state
(``balancedtorch/metrics/_curves.py``), run in torch on the scores' device;
the averaged scores are computed for all classes (or class pairs, or
samples) at once, without a host synchronisation per class. The input checks
(scikit-learn's rules and messages) and the numpy-or-tensor outputs are in
``_ranking_inputs.py``.

Only the labels are read on the host when they are not a tensor (strings,
objects); tensors stay on their device, and the host synchronisations left
are the ones whose answer decides what to return: the distinct labels, the
checks that raise or warn, and the data-dependent length of a curve.

Differences from scikit-learn:

* negative ``sample_weight`` values are refused (a ValueError naming
  ``sample_weight``); scikit-learn accepts them, which can give curves that
  are not monotonic;
* ``y_true`` and ``y_score`` of multi-label (2-D) inputs must have the same
  shape (scikit-learn uses the first ``y_score.shape[1]`` columns of
  ``y_true`` when it has more);
* with ``max_fpr``, targets holding both classes, one of which weighs 0 in
  total, give NaN with roc_curve's warning, as without ``max_fpr``
  (scikit-learn raises "x is neither increasing nor decreasing");
* ``multi_class="ovo"`` with one class in ``y_true`` (no pair) gives NaN
  with an UndefinedMetricWarning (scikit-learn: NaN from numpy's mean of
  nothing, or ZeroDivisionError with ``average="weighted"``);
* all sample weights 0 with ``average="samples"`` raise the ValueError of
  every other case (scikit-learn: ZeroDivisionError);
* empty inputs raise scikit-learn's ``check_array`` ValueError ("Found
  array with 0 sample(s) ...") in all four functions (scikit-learn raises
  it in ``roc_auc_score`` only; its ``average_precision_score`` and
  ``precision_recall_curve`` with ``pos_label`` raise an IndexError, its
  curves without ``pos_label`` a numpy broadcasting ValueError);
* floating-point sums are formed in another order (torch's reductions), so
  results can differ from scikit-learn's in the last bits.
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations
from typing import Any, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from . import _curves
from ._ranking_inputs import (
    _ALL_ZERO,
    Array,
    _assert_finite,
    _check_length,
    _check_not_empty,
    _check_pos_label_type,
    _check_weight,
    _column,
    _contains,
    _equal,
    _float_dtype,
    _labels_array,
    _labels_repr,
    _out_array,
    _out_scalar,
    _pos_label,
    _refuse_meta,
    _scores_tensor,
    _to_device,
    _type_of_target,
    _undefined_metric_warning,
    _unique,
)

__all__ = ["average_precision_score", "precision_recall_curve", "roc_auc_score", "roc_curve"]


# ----------------------------------------------------------------------------- curves
def _binary_inputs(
    caller: str, y_true: Any, y_score: Any, pos_label: Any, sample_weight: Any
) -> Tuple[Tensor, Tensor, Optional[Tensor], bool]:
    """(scores [n], positive [n] bool, weight [n] or None, tensors out) for a curve, as confusion_matrix_at_thresholds."""
    _refuse_meta(caller, y_true=y_true, y_score=y_score, sample_weight=sample_weight)
    _check_pos_label_type(pos_label, allow_none=True)
    y = _labels_array(y_true, "y_true")
    _check_not_empty(y)
    y_type = _type_of_target(y)
    if not (y_type == "binary" or (y_type == "multiclass" and pos_label is not None)):
        raise ValueError(f"{y_type} format is not supported")
    s = _scores_tensor(y_score)
    tensors = isinstance(y_score, Tensor)
    y = _to_device(y, s.device, "y_true")
    _assert_finite(s, "y_score")
    _check_length([("y_true", y.shape[0]), ("y_score", s.shape[0])])
    y = _column(y, "y_true")
    s = _column(s, "y_score")
    pos_label = _pos_label(pos_label, y)
    positive = _equal(y, pos_label, s.device)
    w = _check_weight(sample_weight, s.shape[0], s.device)
    return s, positive, w, tensors


def precision_recall_curve(
    y_true: Any,
    y_score: Any,
    *,
    pos_label: Any = None,
    sample_weight: Any = None,
    drop_intermediate: bool = False,
) -> Tuple[Array, Array, Array]:
    """Precision-recall pairs at every threshold: scikit-learn's ``precision_recall_curve``.

    A threshold sits at every distinct score (tied scores form one); a sample
    is predicted positive when ``score >= threshold``. The last point
    (precision 1, recall 0) has no threshold.

    Args:
        y_true (array or Tensor[n]): binary labels (any two values; without
            ``pos_label`` they must be {0, 1} or {-1, 1}); strings allowed.
        y_score (array or Tensor[n]): scores of the positive class
            (probabilities or any real scores), finite.
        pos_label (int, float, bool or str, optional): the positive label;
            default 1 for {0, 1} / {-1, 1} labels.
        sample_weight (array or Tensor[n], optional): weights >= 0; samples
            of weight 0 are left out (they add no threshold).
        drop_intermediate (bool): drop the thresholds whose point lies
            between two points of equal recall (default False).

    Returns:
        (precision[m + 1], recall[m + 1], thresholds[m]): float64 (recall
        decreasing, thresholds increasing in the scores' dtype); numpy
        arrays, or tensors on ``y_score``'s device when it is a tensor.
        Without positive samples recall is 1 everywhere (with a warning).

    Raises:
        ValueError: empty input, ``y_true`` not binary (or multiclass
            without ``pos_label``), string labels without ``pos_label``, NaN
            or infinite scores, lengths that differ, bad weights.
        TypeError: bytes labels, a ``pos_label`` of another type.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> y, probs = torch.tensor([0, 0, 1, 1, 0, 1]), torch.tensor([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
        >>> precision, recall, thresholds = bt.metrics.precision_recall_curve(y, probs)
        >>> precision
        tensor([0.5000, 0.6000, 0.7500, 0.6667, 1.0000, 1.0000, 1.0000], dtype=torch.float64)
        >>> thresholds
        tensor([0.1000, 0.2000, 0.3500, 0.4000, 0.8000, 0.9000])
    """
    drop_intermediate = _validate.flag(drop_intermediate, "drop_intermediate")
    s, positive, w, tensors = _binary_inputs("precision_recall_curve", y_true, y_score, pos_label, sample_weight)
    if not bool((positive if w is None else positive & (w != 0)).any()):
        warnings.warn("No positive class found in y_true, recall is set to one for all thresholds.", UserWarning, stacklevel=2)
    precision, recall, thresholds = _curves.exact_pr_curve(s, positive, w, drop_intermediate)
    if isinstance(y_score, Tensor) and y_score.dtype == torch.bool:
        thresholds = thresholds.bool()
    dt = _float_dtype(s.device)
    return _out_array(precision.to(dt), tensors), _out_array(recall.to(dt), tensors), _out_array(thresholds, tensors)


def roc_curve(
    y_true: Any,
    y_score: Any,
    *,
    pos_label: Any = None,
    sample_weight: Any = None,
    drop_intermediate: bool = True,
) -> Tuple[Array, Array, Array]:
    """Receiver operating characteristic: scikit-learn's ``roc_curve``.

    One point per distinct score (``score >= threshold`` is positive), after
    a first point (0, 0) at threshold ``inf``.

    Args:
        y_true (array or Tensor[n]): binary labels (as
            :func:`precision_recall_curve`).
        y_score (array or Tensor[n]): scores of the positive class, finite.
        pos_label (int, float, bool or str, optional): the positive label.
        sample_weight (array or Tensor[n], optional): weights >= 0.
        drop_intermediate (bool): drop the points collinear with their
            neighbours, which change neither the plot nor the area (default
            True).

    Returns:
        (fpr, tpr, thresholds), float64 each (thresholds: ``inf`` first, then
        decreasing); numpy arrays, or tensors on ``y_score``'s device. A rate
        without negatives (fpr) or positives (tpr) is NaN, with an
        UndefinedMetricWarning.

    Raises:
        ValueError, TypeError: as :func:`precision_recall_curve`.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> y, probs = torch.tensor([0, 0, 1, 1, 0, 1]), torch.tensor([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
        >>> fpr, tpr, thresholds = bt.metrics.roc_curve(y, probs)
        >>> fpr, tpr
        (tensor([0.0000, 0.0000, 0.0000, 0.3333, 0.3333, 1.0000], dtype=torch.float64),
         tensor([0.0000, 0.3333, 0.6667, 0.6667, 1.0000, 1.0000], dtype=torch.float64))
    """
    drop_intermediate = _validate.flag(drop_intermediate, "drop_intermediate")
    s, positive, w, tensors = _binary_inputs("roc_curve", y_true, y_score, pos_label, sample_weight)
    fpr, tpr, thresholds = _curves.exact_roc_curve(s, positive, w, drop_intermediate)
    undefined = torch.stack([fpr[-1].isnan(), tpr[-1].isnan()]).tolist()
    if undefined[0]:
        warnings.warn(
            "No negative samples in y_true, false positive value should be meaningless",
            _undefined_metric_warning(),
            stacklevel=2,
        )
    if undefined[1]:
        warnings.warn(
            "No positive samples in y_true, true positive value should be meaningless",
            _undefined_metric_warning(),
            stacklevel=2,
        )
    dt = _float_dtype(s.device)
    return tuple(_out_array(t.to(dt), tensors) for t in (fpr, tpr, thresholds))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- scores
_AVERAGES = (None, "micro", "macro", "weighted", "samples")


def _check_average(average: Any, caller: str) -> None:
    if not (average is None or (isinstance(average, str) and average in _AVERAGES)):
        raise ValueError(
            f"The 'average' parameter of {caller} must be a str among {{'macro', 'micro', 'samples', 'weighted'}} "
            f"or None. Got {average!r} instead."
        )


def _rows(kind: str, Y: Tensor, S: Tensor, average: Optional[str], w: Optional[Tensor], max_fpr: Optional[float]):
    """Per-row AP or ROC AUC of 0/1 targets ``Y`` and scores ``S`` (n, C), laid out for ``average``.

    Returns (values [R], average weights [R] or None).
    """
    if average == "micro":
        scores, positive = S.reshape(1, -1), Y.reshape(1, -1)
        weight = None if w is None else w.repeat_interleave(Y.shape[1]).unsqueeze(0)
        avg_weight = None
    elif average == "samples":
        scores, positive, weight, avg_weight = S, Y, None, w
    else:
        scores, positive = S.T, Y.T
        weight = w
        avg_weight = None
        if average == "weighted":
            avg_weight = (Y.double() * (1.0 if w is None else w.double().unsqueeze(1))).sum(0)
    if w is not None and (kind == "ap" or average == "samples") and bool((w == 0).all()):
        raise ValueError(_ALL_ZERO)
    ap, auc, P, N = _curves.ranking_rows(scores, positive, weight, max_fpr)
    if kind == "ap":
        if bool((P == 0).any()):
            warnings.warn(
                "No positive class found in y_true, recall is set to one for all thresholds.", UserWarning, stacklevel=4
            )
        return ap, avg_weight
    # _binary_roc_auc_score: one class in the (unweighted) targets of a row -> undefined, before any
    # weight is looked at; the other rows go through roc_curve, which refuses weights that are all 0
    one_class = positive.all(-1) | ~positive.any(-1)
    if weight is not None and bool((weight == 0).all()) and not bool(one_class.all()):
        raise ValueError(_ALL_ZERO)
    flags = torch.stack([one_class.any(), ((N <= 0) & ~one_class).any(), ((P <= 0) & ~one_class).any()]).tolist()
    messages = (
        "Only one class is present in y_true. ROC AUC score is not defined in that case.",
        # both classes present, but one of them has weight 0 only: roc_curve's warnings
        "No negative samples in y_true, false positive value should be meaningless",
        "No positive samples in y_true, true positive value should be meaningless",
    )
    for flag, message in zip(flags, messages):
        if flag:
            warnings.warn(message, _undefined_metric_warning(), stacklevel=4)
    return torch.where(one_class, torch.full_like(auc, math.nan), auc), avg_weight


def _average_scores(
    kind: str, Y: Tensor, S: Tensor, average: Optional[str], w: Optional[Tensor], max_fpr: Optional[float], tensors: bool
) -> Any:
    """scikit-learn's _average_binary_score on multi-label 0/1 targets ``Y`` (n, C) and scores ``S`` (n, C)."""
    device = S.device
    if average == "weighted":
        weights = (Y.double() * (1.0 if w is None else w.double().unsqueeze(1))).sum(0)
        total = float(weights.sum())
        if abs(total) <= 1e-8:  # numpy's isclose(total, 0)
            return _out_scalar(0.0, tensors, device)
    values, avg_weight = _rows(kind, Y, S, average, w, max_fpr)
    values = values.to(_float_dtype(device))
    if average is None:
        return _out_array(values, tensors)
    if avg_weight is None:
        result = values.mean()
    else:
        avg_weight = avg_weight.to(values.dtype)
        values = torch.where(avg_weight == 0, torch.zeros_like(values), values)
        result = (values * avg_weight).sum() / avg_weight.sum()
    return _out_scalar(result, tensors, device)


def _two_d(s: Tensor, y: Array, caller: str) -> None:
    if s.dim() != 2:
        raise ValueError(
            f"Expected 2D array, got {s.dim()}D array instead: y_score of shape {tuple(s.shape)} for "
            f"y_true of shape {tuple(y.shape)}"
        )
    if tuple(s.shape) != tuple(y.shape):
        raise ValueError(f"{caller}: y_true has shape {tuple(y.shape)} but y_score has shape {tuple(s.shape)}")


def _multilabel_targets(y: Array, device: torch.device) -> Tensor:
    t = y.to(device) if isinstance(y, Tensor) else torch.from_numpy(np.ascontiguousarray(y))
    return (t == 1).to(device)


def _one_hot(codes: Tensor, k: int) -> Tensor:
    return codes.unsqueeze(1) == torch.arange(k, device=codes.device)


def _encode(y: Array, classes: Array, device: torch.device) -> Tensor:
    """Index of every label in the sorted ``classes`` (all present), on ``device``."""
    if isinstance(y, Tensor):
        return torch.searchsorted(
            classes.to(y.dtype) if isinstance(classes, Tensor) else torch.as_tensor(classes, device=y.device).to(y.dtype),
            y.contiguous(),
        )
    return torch.from_numpy(np.searchsorted(np.asarray(classes), y).astype(np.int64)).to(device)


def average_precision_score(
    y_true: Any, y_score: Any, *, average: Optional[str] = "macro", pos_label: Any = 1, sample_weight: Any = None
) -> Any:
    """Average precision from prediction scores: scikit-learn's ``average_precision_score``.

    ``AP = sum_k (R_k - R_{k-1}) P_k`` over the thresholds of
    :func:`precision_recall_curve` (no interpolation). Binary targets give
    the AP of ``pos_label``; multiclass targets are binarised (one-vs-rest
    over the sorted labels, ``y_score`` one column per label); multi-label
    ``(n, C)`` 0/1 targets give one AP per column, averaged as ``average``
    says.

    Args:
        y_true (array or Tensor): ``(n,)`` labels (binary or multiclass, any
            kind: integers, strings, ...) or ``(n, C)`` 0/1 multi-label targets.
        y_score (array or Tensor): ``(n,)`` scores (binary) or ``(n, C)``.
        average (str, optional): ``"macro"`` (default: unweighted mean over
            columns), ``"weighted"`` (by the number of positives),
            ``"micro"`` (all entries as one binary problem), ``"samples"``
            (per row, multi-label) or None (the per-column values).
        pos_label (int, float, bool or str): the positive label of binary
            targets (default 1); must stay 1 for multiclass / multi-label.
        sample_weight (array or Tensor[n], optional): weights >= 0.

    Returns:
        float (a 0-dim float64 tensor for tensor ``y_score``); with
        ``average=None`` a float64 array (tensor) of per-column values. A
        column without positives scores 0, with a warning.

    Raises:
        ValueError: empty input, unsupported targets (continuous,
            multiclass-multioutput), a ``pos_label`` absent from two-valued binary targets, a
            ``pos_label`` other than 1 for multiclass / multi-label, a
            ``y_score`` of the wrong shape, NaN or infinite scores, bad weights.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> y, probs = torch.tensor([0, 0, 1, 1, 0, 1]), torch.tensor([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
        >>> bt.metrics.average_precision_score(y, probs)                 # binary
        tensor(0.9167, dtype=torch.float64)
        >>> bt.metrics.average_precision_score(y.numpy(), probs.numpy())  # numpy in, float out
        0.91666...
        >>> y3 = torch.tensor([0, 1, 2, 2, 1, 0])
        >>> probs_nk = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6],
        ...                          [0.3, 0.3, 0.4], [0.5, 0.4, 0.1], [0.6, 0.2, 0.2]])
        >>> bt.metrics.average_precision_score(y3, probs_nk, average=None)  # one per class
        tensor([1.0000, 1.0000, 1.0000], dtype=torch.float64)
    """
    caller = "average_precision_score"
    _refuse_meta(caller, y_true=y_true, y_score=y_score, sample_weight=sample_weight)
    _check_average(average, caller)
    _check_pos_label_type(pos_label, allow_none=False)
    y = _labels_array(y_true, "y_true")
    _check_not_empty(y)
    s = _scores_tensor(y_score)
    tensors = isinstance(y_score, Tensor)
    y = _to_device(y, s.device, "y_true")
    _assert_finite(s, "y_score")
    y_type = _type_of_target(y)
    present = _unique(y)
    n_present = present.numel() if isinstance(present, Tensor) else present.size
    if y_type == "binary":
        if n_present == 2 and not _contains(present, pos_label):
            raise ValueError(f"pos_label={pos_label} is not a valid label. It should be one of {_labels_repr(present)}")
    elif y_type == "multilabel-indicator" and pos_label != 1:
        raise ValueError(
            "Parameter pos_label is fixed to 1 for multilabel-indicator y_true. Do not set pos_label or set pos_label to 1."
        )
    elif y_type == "multiclass":
        if pos_label != 1:
            raise ValueError(
                "Parameter pos_label is fixed to 1 for multiclass y_true. Do not set pos_label or set pos_label to 1."
            )
        if s.dim() != 2 or tuple(s.shape) != (y.shape[0], n_present):
            raise ValueError(
                "`y_score` needs to be of shape `(n_samples, n_classes)`, since `y_true` contains multiple classes. "
                f"Got `y_score.shape={tuple(s.shape)}`."
            )
    if y_type not in ("binary", "multilabel-indicator", "multiclass"):
        raise ValueError(f"{y_type} format is not supported")
    _check_length([("y_true", y.shape[0]), ("y_score", s.shape[0])])
    if y_type == "binary":
        y1 = _column(y, "y_true")
        s1 = _column(s, "y_score")
        w = _check_weight(sample_weight, s1.shape[0], s.device)
        positive = _equal(y1, pos_label, s.device)
        ap, _, P, _ = _curves.ranking_rows(s1.unsqueeze(0), positive.unsqueeze(0), None if w is None else w)
        if float(P[0]) == 0:
            warnings.warn(
                "No positive class found in y_true, recall is set to one for all thresholds.", UserWarning, stacklevel=2
            )
        return _out_scalar(ap[0], tensors, s.device)
    if y_type == "multiclass":
        Y = _one_hot(_encode(_column(y, "y_true"), present, s.device), n_present)
    else:
        _two_d(s, y, caller)
        Y = _multilabel_targets(y, s.device)
    w = _check_weight(sample_weight, s.shape[0], s.device, allow_all_zero=True)
    return _average_scores("ap", Y, s, average, w, None, tensors)


def _check_max_fpr(max_fpr: Any) -> Optional[float]:
    try:
        return _validate.real(max_fpr, "max_fpr", low=0, high=1, low_inclusive=False, optional=True)
    except (TypeError, ValueError):  # scikit-learn's words and exception (its InvalidParameterError is a ValueError)
        raise ValueError(
            f"The 'max_fpr' parameter of roc_auc_score must be a float in the range (0.0, 1] or None. Got {max_fpr!r} instead."
        ) from None


def roc_auc_score(
    y_true: Any,
    y_score: Any,
    *,
    average: Optional[str] = "macro",
    sample_weight: Any = None,
    max_fpr: Optional[float] = None,
    multi_class: str = "raise",
    labels: Any = None,
) -> Any:
    """Area under the ROC curve: scikit-learn's ``roc_auc_score``.

    * Binary ``(n,)`` targets (any two labels; the greater one is positive)
      with ``(n,)`` scores of it: the area under :func:`roc_curve`; with
      ``max_fpr`` the standardised partial area up to that false positive
      rate (McClish 1989: 0.5 for chance, 1 for a perfect ranking).
    * Multiclass ``(n,)`` targets with ``(n, K)`` probabilities (rows summing
      to 1): ``multi_class="ovr"`` (one-vs-rest, averaged as ``average``
      says: macro, weighted by prevalence, micro or None) or ``"ovo"`` (Hand
      & Till 2001: the mean over class pairs of the two one-vs-one AUCs;
      ``average="weighted"`` weights the pairs by their prevalence).
      ``labels`` names the columns of ``y_score`` (sorted, unique); default:
      the sorted labels of ``y_true``.
    * Multi-label ``(n, C)`` 0/1 targets: one AUC per column, averaged as
      ``average`` says (also ``"samples"``).

    Args:
        y_true (array or Tensor): labels or multi-label 0/1 targets.
        y_score (array or Tensor): ``(n,)`` or ``(n, K)`` scores.
        average (str, optional): ``"macro"`` (default), ``"weighted"``,
            ``"micro"``, ``"samples"`` or None.
        sample_weight (array or Tensor[n], optional): weights >= 0 (not with
            ``multi_class="ovo"``).
        max_fpr (float, optional): in (0, 1]; binary / multi-label only.
        multi_class (str): ``"raise"`` (default: multiclass targets raise),
            ``"ovr"`` or ``"ovo"``.
        labels (array, optional): multiclass only, see above.

    Returns:
        float (a 0-dim float64 tensor for tensor ``y_score``), or with
        ``average=None`` one value per column. NaN where only one class is
        present, with an UndefinedMetricWarning.

    Raises:
        ValueError: the messages of scikit-learn's (empty input, unsupported targets,
            scores that are not probabilities for multiclass, bad ``labels``,
            ``max_fpr`` with multiclass targets, ``sample_weight`` with
            ``"ovo"``, ...).
        NotImplementedError: ``average=None`` with ``multi_class="ovo"``.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> y, probs = torch.tensor([0, 0, 1, 1, 0, 1]), torch.tensor([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
        >>> bt.metrics.roc_auc_score(y, probs)                        # binary
        tensor(0.8889, dtype=torch.float64)
        >>> bt.metrics.roc_auc_score(y, probs, max_fpr=0.5)           # partial, McClish
        tensor(0.8519, dtype=torch.float64)
        >>> y3 = torch.tensor([0, 1, 2, 2, 1, 0])
        >>> probs_nk = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6],
        ...                          [0.3, 0.3, 0.4], [0.5, 0.4, 0.1], [0.6, 0.2, 0.2]])
        >>> bt.metrics.roc_auc_score(y3, probs_nk, multi_class="ovo")  # Hand & Till
        tensor(1., dtype=torch.float64)
    """
    caller = "roc_auc_score"
    _refuse_meta(caller, y_true=y_true, y_score=y_score, sample_weight=sample_weight, labels=labels)
    _check_average(average, caller)
    max_fpr = _check_max_fpr(max_fpr)
    if not isinstance(multi_class, str) or multi_class not in ("raise", "ovr", "ovo"):
        raise ValueError(
            f"The 'multi_class' parameter of roc_auc_score must be a str among {{'ovo', 'ovr', 'raise'}}. "
            f"Got {multi_class!r} instead."
        )
    y = _labels_array(y_true, "y_true")
    _check_not_empty(y)
    y_type = _type_of_target(y)
    s = _scores_tensor(y_score)
    tensors = isinstance(y_score, Tensor)
    y = _to_device(y, s.device, "y_true")
    _assert_finite(s, "y_score")
    if y_type == "multiclass" or (y_type == "binary" and s.dim() == 2 and s.shape[1] > 2):
        if max_fpr is not None and max_fpr != 1.0:
            raise ValueError(
                "Partial AUC computation not available in multiclass setting, 'max_fpr' must be set to `None`, "
                f"received `max_fpr={max_fpr}` instead"
            )
        if multi_class == "raise":
            raise ValueError("multi_class must be in ('ovo', 'ovr')")
        return _multiclass_roc_auc(y, s, labels, multi_class, average, sample_weight, tensors)
    if y_type not in ("binary", "multilabel-indicator"):
        raise ValueError(f"{y_type} format is not supported")
    _check_length([("y_true", y.shape[0]), ("y_score", s.shape[0])])
    if y_type == "binary":
        y1 = _column(y, "y_true")
        s1 = _column(s, "y_score")
        classes = _unique(y1)
        n_classes = classes.numel() if isinstance(classes, Tensor) else classes.size
        # label_binarize: the greater of two labels is positive; one label: no positive
        positive = (
            _equal(y1, classes[-1], s.device) if n_classes == 2 else torch.zeros(y1.shape[0], dtype=torch.bool, device=s.device)
        )
        w = _check_weight(sample_weight, s1.shape[0], s.device, allow_all_zero=True)
        value, _ = _rows("roc", positive.unsqueeze(1), s1.unsqueeze(1), "macro", w, max_fpr)
        return _out_scalar(value[0], tensors, s.device)
    _two_d(s, y, caller)
    w = _check_weight(sample_weight, s.shape[0], s.device, allow_all_zero=True)
    return _average_scores("roc", _multilabel_targets(y, s.device), s, average, w, max_fpr, tensors)


def _multiclass_roc_auc(
    y: Array, s: Tensor, labels: Any, multi_class: str, average: Any, sample_weight: Any, tensors: bool
) -> Any:
    """scikit-learn's _multiclass_roc_auc_score."""
    if s.dim() != 2:
        raise ValueError(
            "`y_score` needs to be of shape `(n_samples, n_classes)`, since `y_true` contains multiple classes. "
            f"Got `y_score.shape={tuple(s.shape)}`."
        )
    sums = s.double().sum(1)
    if not bool(torch.allclose(torch.ones_like(sums), sums, rtol=1e-5, atol=1e-8)):
        raise ValueError(
            "Target scores need to be probabilities for multiclass roc_auc, i.e. they should sum up to 1.0 over classes"
        )
    options: Tuple[Any, ...] = ("macro", "weighted", None)
    if multi_class == "ovr":
        options = ("micro",) + options
    if average not in options:
        raise ValueError(f"average must be one of {options} for multiclass problems")
    if average is None and multi_class == "ovo":
        raise NotImplementedError("average=None is not implemented for multi_class='ovo'.")
    y = _column(y, "y_true")
    if labels is not None:
        lab = _labels_array(labels, "labels")
        if isinstance(lab, Tensor):
            lab = lab.cpu().numpy()
        lab = _column(lab, "labels")
        classes = np.unique(lab)
        if len(classes) != len(lab):
            raise ValueError("Parameter 'labels' must be unique")
        if not np.array_equal(classes, lab):
            raise ValueError("Parameter 'labels' must be ordered")
        if len(classes) != s.shape[1]:
            raise ValueError(
                f"Number of given labels, {len(classes)}, not equal to the number of columns in 'y_score', {s.shape[1]}"
            )
        present = _unique(y)
        present_np = present.cpu().numpy() if isinstance(present, Tensor) else present
        if len(np.setdiff1d(present_np, classes)):
            raise ValueError("'y_true' contains labels not in parameter 'labels'")
        if isinstance(y, Tensor):
            classes = torch.as_tensor(classes, device=y.device)
    else:
        classes = _unique(y)
        n = classes.numel() if isinstance(classes, Tensor) else classes.size
        if n != s.shape[1]:
            raise ValueError("Number of classes in y_true not equal to the number of columns in 'y_score'")
    _check_length([("y_true", y.shape[0]), ("y_score", s.shape[0])])
    codes = _encode(y, classes, s.device)
    K = s.shape[1]
    if multi_class == "ovo":
        if sample_weight is not None:
            raise ValueError(
                "sample_weight is not supported for multiclass one-vs-one ROC AUC, 'sample_weight' must be None in this case."
            )
        return _out_scalar(_ovo(codes, s, K, average), tensors, s.device)
    w = _check_weight(sample_weight, s.shape[0], s.device, allow_all_zero=True)
    return _average_scores("roc", _one_hot(codes, K), s, average, w, None, tensors)


def _ovo(codes: Tensor, s: Tensor, K: int, average: Optional[str]) -> Tensor:
    """Hand & Till's one-vs-one AUC: for every pair (a, b) of present classes, the mean of the AUC of a
    against b on column a and of b against a on column b, over the samples of a or b; averaged over
    the pairs (``"weighted"``: by the share of samples in the pair)."""
    present = torch.unique(codes).tolist()
    pairs = list(combinations(present, 2))
    if not pairs:
        warnings.warn(
            "Only one class is present in y_true. ROC AUC score is not defined in that case.",
            _undefined_metric_warning(),
            stacklevel=4,
        )
        return torch.tensor(math.nan, dtype=torch.float64, device=s.device)
    a = torch.tensor([p[0] for p in pairs], device=s.device)
    b = torch.tensor([p[1] for p in pairs], device=s.device)
    first = torch.cat([a, b])  # the positive class of each row, whose column is scored
    second = torch.cat([b, a])
    # rows of n samples, a bounded number at a time (K classes make K (K - 1) rows)
    step = max(1, _curves._CHUNK_ELEMENTS // max(1, codes.numel()))
    aucs = []
    for r in range(0, first.numel(), step):
        f, o = first[r : r + step], second[r : r + step]
        positive = codes.unsqueeze(0) == f.unsqueeze(1)
        in_pair = positive | (codes.unsqueeze(0) == o.unsqueeze(1))
        # the samples outside the pair weigh 0: they only repeat points of the curve (see ranking_rows)
        aucs.append(_curves.ranking_rows(s.T.index_select(0, f), positive, in_pair.double())[1])
    auc = torch.cat(aucs)
    pair_scores = (auc[: len(pairs)] + auc[len(pairs) :]) / 2
    if average == "weighted":
        # the share of all samples that belong to the pair
        counts = torch.bincount(codes, minlength=K).double()
        prevalence = (counts[a] + counts[b]) / codes.numel()
        return (pair_scores * prevalence).sum() / prevalence.sum()
    return pair_scores.mean()
