"""``ClassificationMetrics``: streaming per-class metrics, the confusion matrix, PR / ROC curves."""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .._checks import as_tensor
from .._labels import check_labels, describe_one_hot
from .._optional import require
from ..data.labels import refuse_meta
from ..ops.class_counts import class_counts
from . import _curves

__all__ = ["ClassificationMetrics"]

_TASKS = ("multiclass", "binary", "multilabel")
_INPUT_FORMATS = ("auto", "logits", "probabilities")
_DEFAULT_EXACT_MAX_SAMPLES = 1_000_000


def _distributed() -> bool:
    """Whether a collective would reach other processes."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _check_sync(sync: Any) -> bool:
    if not isinstance(sync, bool):
        raise TypeError(f"sync must be True or False, got {sync!r}")
    return sync


def _div(num: Tensor, den: Tensor) -> Tensor:
    """num / den with 0 where den == 0 (scikit-learn's zero_division=0)."""
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


def _nanmean(values: Tensor, weights: Optional[Tensor] = None) -> float:
    """Mean (or weighted mean) over the entries that are not NaN; NaN when none is."""
    keep = ~torch.isnan(values)
    if not bool(keep.any()):
        return math.nan
    if weights is None:
        return float(values[keep].mean())
    w = weights[keep].double()
    return float((values[keep] * w).sum() / w.sum()) if float(w.sum()) > 0 else math.nan


def _class_last(x: Tensor, channels: int) -> Tensor:
    """(N, C, *) -> (N * prod(*), C)."""
    return x.movedim(1, -1).reshape(-1, channels)


def _figure(figsize: Tuple[float, float]):
    """A matplotlib Figure that pyplot does not track (nothing leaks into its global state)."""
    return require("matplotlib.figure", "plotting", "plots").Figure(figsize=figsize)


def _finish(fig, path: Optional[str]):
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


class ClassificationMetrics:
    """Streaming confusion matrix, per-class metrics and (optionally) PR / ROC curves, on the inputs' device.

    ``update`` accumulates a confusion matrix (int64; rows: target, columns:
    prediction, scikit-learn's layout) from predicted labels, logits or
    probabilities, for classification ``(N,)`` or segmentation ``(N, H, W)``
    targets (pixel level). ``compute`` returns every metric from it.

    **Tasks** (``task=``; ``None`` infers it at the first ``update`` that
    holds scores):

    * ``"multiclass"``: scores ``(N, K, ...)`` (logits or probabilities,
      prediction: the arg-max) or labels ``(N, ...)``; targets ``(N, ...)``
      or ``(N, 1, ...)``.
    * ``"binary"`` (``num_classes`` 2; inferred when ``num_classes=2`` and
      the scores are ``(N, ...)`` or ``(N, 1, ...)``): the score of class 1
      per sample, ``(N, ...)`` or ``(N, 1, ...)``; two-column scores
      ``(N, 2, ...)`` also work (softmax, column 1). Prediction:
      ``probability > 0.5`` (torchmetrics' rule). Per-class metrics are
      reported for both classes 0 and 1 (class 0 scored by ``1 - p``), but
      with ``curves=True`` ``average_precision`` and ``roc_auc`` are the
      floats of the positive class 1 (scikit-learn's binary
      ``average_precision_score(y, p)`` / ``roc_auc_score(y, p)``; both
      classes in ``per_class_average_precision`` / ``per_class_roc_auc``),
      and :meth:`plot_pr_curves` / :meth:`plot_roc_curves` show class 1's
      curve with its AP / AUC in the title.
    * ``"multilabel"`` (never inferred): scores or 0/1 labels ``(N, C, ...)``
      and 0/1 targets of the same shape; every label is its own binary
      problem at threshold 0.5 on the probability, as torchmetrics'
      ``multilabel_*`` metrics: the confusion matrix is ``(C, 2, 2)``
      (scikit-learn's ``multilabel_confusion_matrix`` layout ``[[tn, fp],
      [fn, tp]]``), macro averages run over all labels, weighted ones by
      support, ``ignore_index`` skips single entries.

    **Scores.** Logits become probabilities by softmax over the class
    dimension (multiclass) or sigmoid (binary, multilabel); probabilities are
    used as they are. ``input_format="auto"`` decides per batch as
    torchmetrics does: a batch whose scores all lie in [0, 1] is taken as
    probabilities, any other as logits (one host synchronisation per batch;
    a batch of logits that all happen to fall in [0, 1] would be misread, so
    pass ``input_format="logits"`` or ``"probabilities"`` when you know,
    which also skips that synchronisation). The arg-max of a multiclass batch
    is the same either way.

    **Curves** (``curves=True``; needs scores, not labels): ``compute()``
    adds, per class one-vs-rest, ``average_precision`` (scikit-learn's
    ``average_precision_score``) and ``roc_auc`` (``roc_auc_score``) with
    their macro (and weighted) averages, and :meth:`pr_curves`,
    :meth:`roc_curves`, :meth:`plot_pr_curves`, :meth:`plot_roc_curves`
    work. The state is *exact* (every score is kept; tied scores form one
    threshold, as in scikit-learn) for up to ``exact_max_samples`` scored
    samples (pixels for segmentation; ignored ones included), about
    ``exact_max_samples * (K + 2) * 4`` bytes; beyond that it switches, once
    and for good, to a *binned* state with torchmetrics' ``thresholds=``
    semantics (``score >= threshold``; equal to torchmetrics' binned
    ``average_precision`` / ``auroc`` on the same thresholds), on
    ``thresholds`` or, when not given, 1001 evenly spaced thresholds. Passing
    ``thresholds`` alone asks for the binned state from the start (as in
    torchmetrics), ``thresholds`` and ``exact_max_samples`` together for
    exact first, that grid beyond.

    **Undefined ranking metrics.** AP of a class without positive samples,
    and ROC AUC of a class without positives or without negatives, are NaN
    (scikit-learn warns or raises there); macro and weighted averages run
    over the classes where they are defined (NaN if none is). Weighted
    averages weight by the number of positives. None of this warns. An empty
    batch (N = 0, or only ignored samples) adds nothing: with no sample at
    all every class is undefined, so AP and ROC AUC are NaN (and the
    confusion-matrix metrics 0), exactly as before any ``update`` (the
    ranking functions of ``bt.metrics`` raise on empty input instead, as
    scikit-learn does).

    **Distributed** (``torch.distributed`` initialised, world size > 1):
    :meth:`compute` is the one collective call: call it on **every** rank;
    every rank gets the metrics of all samples. It all-reduces the confusion
    matrix (with the binned histogram, when the state is binned from the
    start) in one all-reduce. An exact state takes two collectives: one
    all-reduce carrying the matrix, every rank's sample count and whether any
    rank has switched to binned, then either one all-gather of the scores
    and targets (padded to the largest rank) or, if any rank is binned, one
    all-reduce of the histograms (the exact ranks bin their samples for it).
    Nothing else communicates: :meth:`report`, :meth:`pr_curves`,
    :meth:`roc_curves` and the ``plot_*`` methods reuse the state reduced by
    the last ``compute()``, so they can run on rank 0 alone. If
    ``update``/``reset`` ran after that ``compute()`` (or it never ran) they
    raise a ``RuntimeError`` asking for ``compute()`` on every rank first,
    rather than show stale numbers or wait for the other ranks.
    ``sync=False`` (every method) uses this rank's own samples and never
    communicates. Without a process group every method works on the local
    state and nothing changes.

    Multiclass and binary numbers equal scikit-learn's
    ``precision_recall_fscore_support`` (``zero_division=0``),
    ``confusion_matrix``, ``balanced_accuracy_score``, ``matthews_corrcoef``,
    ``jaccard_score`` and imbalanced-learn's ``specificity_score`` and
    ``geometric_mean_score`` on the same samples:

    * per-class arrays have one entry per class in ``range(num_classes)``; a
      ratio whose denominator is 0 is 0 (a class never predicted has precision
      0, a class absent from the targets recall 0);
    * macro averages (and ``mean_iou``) run over the *present* classes (in the
      targets or the predictions), as scikit-learn does without ``labels=``;
      weighted averages weight by support;
    * ``balanced_accuracy`` averages recall over classes present in the
      targets; ``gmean`` is the geometric mean of recall over present classes
      (0 as soon as one of them is never recovered); ``mcc`` is 0 when undefined.

    Args:
        num_classes (int): K (``>= 2``; for ``"multilabel"`` the number of
            labels C, ``>= 1``). Optional for ``task="binary"`` (2).
        class_names (sequence of str, optional): names for ``report()`` and plots.
        ignore_index (int, optional): target value to skip (e.g. 255 void pixels).
        device (torch.device, optional): where the state lives; default: the
            device of the first ``update``.
        task (str, optional): ``"multiclass"``, ``"binary"`` or
            ``"multilabel"``; default None: inferred (see above).
        curves (bool): keep what PR / ROC curves need (default False).
        thresholds (int, list of float or Tensor[T], optional): torchmetrics'
            ``thresholds=`` of the binned state (int n: ``linspace(0, 1, n)``;
            values in [0, 1], sorted and deduplicated). Needs ``curves=True``.
        exact_max_samples (int, optional): scored samples kept exactly before
            the state switches to binned (0: binned from the start); default
            1,000,000, or 0 when ``thresholds`` is given.
        input_format (str): ``"auto"`` (default), ``"logits"`` or
            ``"probabilities"`` (see Scores).
        validate_args (bool): check inputs in ``update`` (default True). The
            checks that cost a host synchronisation per batch on a GPU (label
            range, NaN or out-of-range scores) are skipped with False; invalid
            input then gives undefined numbers.

    Example:
        >>> metrics = bt.metrics.ClassificationMetrics(3, class_names=["red", "yellow", "green"], curves=True)
        >>> for x, y in val_loader:
        ...     metrics.update(model(x), y)
        >>> r = metrics.compute()   # under DDP: on every rank
        >>> r["balanced_accuracy"], r["macro_average_precision"], r["macro_roc_auc"]
        >>> print(metrics.report())                  # any rank, e.g. rank 0 only
        >>> fig = metrics.plot_pr_curves()           # a matplotlib Figure, e.g. for TensorBoard
    """

    def __init__(
        self,
        num_classes: Optional[int] = None,
        class_names: Optional[Sequence[str]] = None,
        ignore_index: Optional[int] = None,
        device: Optional[Any] = None,
        *,
        task: Optional[str] = None,
        curves: bool = False,
        thresholds: Any = None,
        exact_max_samples: Optional[int] = None,
        input_format: str = "auto",
        validate_args: bool = True,
    ) -> None:
        if task is not None and task not in _TASKS:
            raise ValueError(f"task must be None, 'multiclass', 'binary' or 'multilabel', got {task!r}")
        if num_classes is None and task == "binary":
            num_classes = 2
        minimum = 1 if task == "multilabel" else 2
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < minimum:
            raise ValueError(f"num_classes must be an int >= {minimum}, got {num_classes!r}")
        if task == "binary" and num_classes != 2:
            raise ValueError(f"task='binary' needs num_classes=2 (or None), got num_classes={num_classes!r}")
        self.num_classes = int(num_classes)
        if class_names is not None:
            class_names = [str(n) for n in class_names]
            if len(class_names) != self.num_classes:
                raise ValueError(f"class_names has {len(class_names)} names for num_classes={self.num_classes}")
        self.class_names = class_names
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral)):
            raise ValueError(f"ignore_index must be an int or None, got {ignore_index!r}")
        self.ignore_index = ignore_index
        self.device = None if device is None else torch.device(device)
        if self.device is not None and self.device.type == "meta":
            raise ValueError(
                "ClassificationMetrics: device='meta' holds no values for the counts; pass a device with data (CPU or GPU)"
            )
        self._init_device = self.device
        self.task = task
        if not isinstance(curves, bool):
            raise TypeError(f"curves must be True or False, got {curves!r}")
        self.curves = curves
        if thresholds is not None and not curves:
            raise ValueError(f"thresholds={thresholds!r} needs curves=True")
        self.thresholds = thresholds
        grid = _curves.check_thresholds(thresholds)
        if exact_max_samples is not None and (
            isinstance(exact_max_samples, bool) or not isinstance(exact_max_samples, numbers.Integral) or exact_max_samples < 0
        ):
            raise ValueError(f"exact_max_samples must be an int >= 0 or None, got {exact_max_samples!r}")
        if exact_max_samples is not None and not curves:
            raise ValueError(f"exact_max_samples={exact_max_samples!r} needs curves=True")
        self.exact_max_samples = exact_max_samples
        self._exact_limit = (
            int(exact_max_samples) if exact_max_samples is not None else (0 if grid is not None else _DEFAULT_EXACT_MAX_SAMPLES)
        )
        self._grid = grid if grid is not None else torch.linspace(0, 1, _curves.DEFAULT_BINS)
        if input_format not in _INPUT_FORMATS:
            raise ValueError(f"input_format must be 'auto', 'logits' or 'probabilities', got {input_format!r}")
        self.input_format = input_format
        if not isinstance(validate_args, bool):
            raise TypeError(f"validate_args must be True or False, got {validate_args!r}")
        self.validate_args = validate_args
        self._task = task  # resolved at the first update with scores when None
        self._version = 0
        self.reset()

    # -- state ------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every update (local; not collective). The task inferred by the first update is kept."""
        K = self.num_classes
        shape = (K, 2, 2) if self._task == "multilabel" else (K, K)
        self.confmat = torch.zeros(shape, dtype=torch.long, device=self.device)
        self._scores: List[Tensor] = []  # exact state: probabilities, (n, K) ((n, 1) binary)
        self._targets: List[Tensor] = []  # (n,) class (-1: ignored); multilabel (n, C) int8 in {0, 1, -1}
        self._stored = 0
        self._binned = self.curves and self._exact_limit == 0
        self._hist: Optional[Tensor] = (
            torch.zeros(K, 2, self._grid.numel() + 1, dtype=torch.long, device=self.device) if self._binned else None
        )
        # bumped by every change of the state, so that report() and the plots
        # can tell whether the state reduced by the last compute() is current
        self._version += 1
        self._reduced: Optional[Tuple[int, Tensor, Any]] = None  # (version, all-reduced matrix, curve state)

    def _to_device(self, device: torch.device) -> None:
        self.device = device
        self.confmat = self.confmat.to(device)
        self._grid = self._grid.to(device)
        if self._hist is not None:
            self._hist = self._hist.to(device)

    # -- input handling ------------------------------------------------------------
    def _probabilities(self, scores: Tensor, softmax_dim: Optional[int]) -> Tensor:
        """Probabilities from a batch of logits or probabilities (float32 at least), validated unless told not to."""
        caller = "ClassificationMetrics.update"
        if scores.dtype not in (torch.float32, torch.float64):
            scores = scores.float()
        fmt = self.input_format
        if scores.numel() and (fmt == "auto" or self.validate_args):
            # one host synchronisation for every check of the batch
            nan, outside = torch.stack([torch.isnan(scores).any(), ((scores < 0) | (scores > 1)).any()]).tolist()
            if nan and self.validate_args:
                bad = int(torch.isnan(scores).reshape(-1).nonzero()[0, 0])
                raise ValueError(f"{caller}: preds_or_logits holds NaN scores (element {bad} of the flattened batch)")
            if fmt == "auto":
                fmt = "logits" if outside else "probabilities"
            elif fmt == "probabilities" and outside:
                flat = scores.reshape(-1)
                bad = int(((flat < 0) | (flat > 1)).nonzero()[0, 0])
                raise ValueError(
                    f"{caller}: input_format='probabilities' but preds_or_logits.flatten()[{bad}] = "
                    f"{float(flat[bad]):.4g} is outside [0, 1]; pass input_format='logits' for logits"
                )
        if fmt == "logits":
            return torch.softmax(scores, softmax_dim) if softmax_dim is not None else torch.sigmoid(scores)
        return scores

    def _infer_task(self, preds: Tensor, shape: Tuple[int, ...]) -> str:
        if self._task is not None:
            return self._task
        K = self.num_classes
        binary_shaped = tuple(preds.shape) == shape or (
            preds.dim() == len(shape) + 1 and preds.dim() >= 2 and preds.shape[1] == 1
        )
        if not preds.is_floating_point():
            return "multiclass"  # labels count the same for both tasks: decide at the first scores
        task = "binary" if K == 2 and binary_shaped else "multiclass"
        self._task = task
        return task

    def _check_target(self, target: Any, shape: Tuple[int, ...], num_classes: int) -> Tensor:
        caller = "ClassificationMetrics.update"
        if self.validate_args or not isinstance(target, Tensor):
            t = check_labels(
                target,
                "target",
                caller=caller,
                num_classes=num_classes,
                ignore_index=self.ignore_index,  # exempt from the range, negative or not
                allow_empty=True,
                any_shape=True,
                device=self.device,
            )
            return t.view(shape)
        return target.detach().to(self.device).long()

    def _predicted_labels(self, preds: Tensor, target: Tensor) -> Tensor:
        if preds.shape == target.shape:
            if preds.is_floating_point():
                raise ValueError(
                    "ClassificationMetrics.update: preds_or_logits has the target's shape but holds floats; pass integer "
                    f"predicted labels, or scores of shape (N, {self.num_classes}, ...) (for 0/1 multi-label targets "
                    "of this shape pass task='multilabel')"
                )
            return preds.long()
        expected = (target.shape[0], self.num_classes) + tuple(target.shape[1:]) if target.dim() else None
        if expected is None or tuple(preds.shape) != expected:
            raise ValueError(
                f"ClassificationMetrics.update: preds_or_logits must have the target's shape {tuple(target.shape)} "
                f"(labels) or {expected} (logits / probabilities), got {tuple(preds.shape)}"
            )
        if not preds.is_floating_point():
            one_hot = describe_one_hot(preds, "preds_or_logits", "ClassificationMetrics.update")
            if one_hot is not None:
                raise ValueError(one_hot)
            raise ValueError(f"scores (logits / probabilities) must be floating, got dtype {preds.dtype}")
        # max(dim).indices: the first maximum, like argmax, but several times
        # faster over a strided class dimension (NCHW)
        top = preds.max(dim=1)
        # max propagates NaN: one check on the (N, ...) maxima, not on every score
        if self.validate_args and not self.curves and top.values.numel() and bool(torch.isnan(top.values).any()):
            bad = int(torch.isnan(top.values).reshape(-1).nonzero()[0, 0])
            raise ValueError(
                f"ClassificationMetrics.update: preds_or_logits holds NaN scores (sample {bad} of the flattened batch)"
            )
        return top.indices

    def _check_label_range(self, labels: Tensor, ignored: Optional[Tensor], high: int, what: str) -> None:
        if not self.validate_args or not labels.numel():
            return
        values = labels if ignored is None else labels.masked_fill(ignored, 0)
        low, top = torch.stack(torch.aminmax(values)).tolist()
        if low < 0 or top >= high:
            bad = ((values < 0) | (values >= high)).nonzero()[0, 0]
            bound = f"num_classes={high}" if self._task not in ("binary", "multilabel") else str(high)
            raise ValueError(f"ClassificationMetrics.update: {what} {int(values[bad])} is outside [0, {bound})")

    @torch.no_grad()
    def update(self, preds_or_logits: Any, target: Any) -> None:
        """Add a batch. Local (not collective): only this rank's state changes.

        Args:
            preds_or_logits (Tensor): multiclass: scores ``(N, K, ...)``
                (logits or probabilities) or predicted labels ``(N, ...)``;
                binary: scores ``(N, ...)``, ``(N, 1, ...)`` or ``(N, 2, ...)``
                or 0/1 labels ``(N, ...)``; multilabel: scores or 0/1 labels
                ``(N, C, ...)``. ``curves=True`` needs scores.
            target (Tensor or array): class indices ``(N, ...)`` (also
                ``(N, 1, ...)`` next to ``(N, K, ...)`` scores), integer or
                integral float, ``ignore_index`` allowed; multilabel: 0/1
                ``(N, C, ...)``.

        Raises:
            ValueError: shapes that do not fit the task, labels out of range,
                NaN scores, one-hot targets, labels where curves need scores.
            TypeError: complex ``preds_or_logits``.
        """
        caller = "ClassificationMetrics.update"
        refuse_meta(preds_or_logits, "preds_or_logits", caller)
        refuse_meta(target, "target", caller)
        preds = as_tensor(preds_or_logits, "preds_or_logits")
        if preds.is_complex():
            raise TypeError(
                f"{caller}: preds_or_logits must hold real scores (logits or probabilities) or integer labels; "
                f"complex numbers are not supported, got dtype {preds.dtype}"
            )
        shape = tuple(target.shape) if isinstance(target, Tensor) else tuple(np.shape(target))
        if len(shape) == 0:
            raise ValueError(f"{caller}: target must have a batch dimension, got a scalar")
        if self.device is None:
            self._to_device(preds.device)
        if self._task == "multilabel":
            self._update_multilabel(preds, target, shape)
        else:
            # (N, 1, ...) targets next to (N, K, ...) scores: the channel dimension of a mask
            if (
                len(shape) >= 2
                and shape[1] == 1
                and preds.dim() == len(shape)
                and preds.shape[0] == shape[0]
                and preds.shape[1] == self.num_classes
                and tuple(preds.shape[2:]) == shape[2:]
            ):
                shape = (shape[0],) + shape[2:]
                target = target.reshape(shape) if isinstance(target, Tensor) else np.reshape(target, shape)
            task = self._infer_task(preds, shape)
            if task == "binary":
                self._update_binary(preds, target, shape)
            else:
                self._update_multiclass(preds, target, shape)
        self._version += 1

    def _count(self, target: Tensor, labels: Tensor, ignored: Optional[Tensor]) -> None:
        K = self.num_classes
        pairs = target * K + labels
        if ignored is not None:
            pairs = pairs.masked_fill(ignored, -1)
        # the validated parallel histogram kernel of balancedtorch.ops
        self.confmat += class_counts(pairs, K * K, ignore_index=None if ignored is None else -1).view(K, K)

    def _needs_scores(self, preds: Tensor) -> None:
        if self.curves and not preds.is_floating_point():
            raise ValueError(
                "ClassificationMetrics.update: curves=True needs scores (logits or probabilities) in preds_or_logits, "
                f"got integer labels of dtype {preds.dtype}"
            )

    def _update_multiclass(self, preds: Tensor, target: Any, shape: Tuple[int, ...]) -> None:
        caller = "ClassificationMetrics.update"
        K = self.num_classes
        if len(shape) == 2 and shape[1] == K and tuple(preds.shape) in ((shape[0],), shape):
            # (N, K) targets next to (N,) labels or (N, K) scores: one-hot, not a segmentation row
            one_hot = describe_one_hot(as_tensor(target, "target"), "target", caller)
            if one_hot is not None:
                raise ValueError(one_hot + ("; for multi-label targets pass task='multilabel'" if "multi-hot" in one_hot else ""))
        # the shared validator: integer (or integral float) labels of any shape, in [0, K) or ignore_index
        target = self._check_target(target, shape, K)
        preds = preds.to(self.device)
        scores = preds.shape != target.shape
        if not scores:
            self._needs_scores(preds)
        labels = self._predicted_labels(preds, target).reshape(-1)
        flat = target.reshape(-1)
        ignored = None if self.ignore_index is None else flat == self.ignore_index
        if not scores:  # argmax of K scores is always in range
            self._check_label_range(labels, ignored, K, "predicted label")
        self._count(flat, labels, ignored)
        if self.curves:
            probs = _class_last(self._probabilities(preds, softmax_dim=1), K)
            self._add_curve_samples(probs, flat if ignored is None else flat.masked_fill(ignored, -1))

    def _update_binary(self, preds: Tensor, target: Any, shape: Tuple[int, ...]) -> None:
        caller = "ClassificationMetrics.update"
        target = self._check_target(target, shape, 2)
        preds = preds.to(self.device)
        if tuple(preds.shape) == shape:
            column = preds
        elif (
            preds.dim() == len(shape) + 1
            and preds.shape[0] == shape[0]
            and tuple(preds.shape[2:]) == shape[1:]
            and preds.shape[1] in (1, 2)
        ):
            column = preds
        else:
            raise ValueError(
                f"{caller}: task='binary' takes preds_or_logits of the target's shape {shape}, or (N, 1, ...) / "
                f"(N, 2, ...) scores next to it, got {tuple(preds.shape)}"
            )
        flat = target.reshape(-1)
        ignored = None if self.ignore_index is None else flat == self.ignore_index
        if not column.is_floating_point():
            self._needs_scores(column)
            if column.dim() != len(shape):
                raise ValueError(
                    f"{caller}: task='binary' takes 0/1 labels of the target's shape {shape}, got {tuple(column.shape)}"
                )
            labels = column.reshape(-1).long()
            self._check_label_range(labels, ignored, 2, "predicted label")
            self._count(flat, labels, ignored)
            return
        if column.dim() == len(shape) + 1 and column.shape[1] == 2:
            p = self._probabilities(column, softmax_dim=1).select(1, 1)
        else:
            p = self._probabilities(column.reshape(shape), softmax_dim=None)
        p = p.reshape(-1)
        self._count(flat, (p > 0.5).long(), ignored)  # torchmetrics' binary rule
        if self.curves:
            self._add_curve_samples(p.unsqueeze(1), flat if ignored is None else flat.masked_fill(ignored, -1))

    def _update_multilabel(self, preds: Tensor, target: Any, shape: Tuple[int, ...]) -> None:
        caller = "ClassificationMetrics.update"
        C = self.num_classes
        if len(shape) < 2 or shape[1] != C or tuple(preds.shape) != shape:
            raise ValueError(
                f"{caller}: task='multilabel' takes preds_or_logits and target of the same shape (N, num_classes={C}, ...), "
                f"got preds_or_logits {tuple(preds.shape)} and target {shape}"
            )
        target = self._check_target(target, shape, 2)
        preds = preds.to(self.device)
        y = _class_last(target, C)
        ignored = None if self.ignore_index is None else y == self.ignore_index
        if preds.is_floating_point():
            p = _class_last(self._probabilities(preds, softmax_dim=None), C)
            labels = (p > 0.5).long()  # torchmetrics' multilabel rule
        else:
            self._needs_scores(preds)
            labels = _class_last(preds, C).long()
            self._check_label_range(labels, ignored, 2, "predicted label")
        index = torch.arange(C, device=self.device) * 4 + y * 2 + labels
        if ignored is not None:
            index = index.masked_fill(ignored, -1)
        self.confmat += class_counts(index, 4 * C, ignore_index=None if ignored is None else -1).view(C, 2, 2)
        if self.curves:
            self._add_curve_samples(p, (y if ignored is None else y.masked_fill(ignored, -1)).to(torch.int8))

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
        index = _curves.histogram_index(s, positive, valid.expand_as(positive), self._grid.to(scores.device))
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

    def _all_reduce(self, cm: Tensor, curve: Any) -> Tuple[Tensor, Any]:
        dist = torch.distributed
        if curve is None:
            dist.all_reduce(cm)  # one all-reduce: the whole state is the matrix
            return cm, None
        if self._exact_limit == 0:  # binned on every rank from the start: matrix and histogram in one all-reduce
            hist = curve[1]
            buf = torch.cat([cm.reshape(-1), hist.reshape(-1)])
            dist.all_reduce(buf)
            return buf[: cm.numel()].view_as(cm), ("binned", buf[cm.numel() :].view_as(hist))
        world, rank = dist.get_world_size(), dist.get_rank()
        n_local = 0 if curve[0] == "binned" else curve[1].shape[0]
        info = torch.zeros(world + 2, dtype=torch.long, device=cm.device)
        info[rank] = n_local
        info[world] = int(curve[0] == "binned")
        info[world + 1] = int(curve[0] == "exact" and curve[1].dtype == torch.float64)
        buf = torch.cat([cm.reshape(-1), info])
        dist.all_reduce(buf)  # collective 1: matrix, sample counts, modes
        cm = buf[: cm.numel()].view_as(cm)
        info = buf[cm.numel() :].tolist()
        if info[world] > 0:  # some rank is binned: everyone bins, collective 2 sums the histograms
            hist = curve[1] if curve[0] == "binned" else self._histogram(curve[1], curve[2])
            dist.all_reduce(hist)
            return cm, ("binned", hist)
        counts = info[:world]
        dtype = torch.float64 if info[world + 1] else torch.float32
        scores, target = curve[1], curve[2]
        width = scores.shape[1]
        packed = torch.cat([scores.to(dtype), target.reshape(target.shape[0], -1).to(dtype)], 1)
        rows = max(counts)
        if rows == 0:
            return cm, curve
        padded = packed.new_zeros(rows, packed.shape[1])
        padded[: packed.shape[0]] = packed
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)  # collective 2: every rank's scores and targets
        packed = torch.cat([part[:n] for part, n in zip(parts, counts)])
        all_target = packed[:, width:].to(target.dtype)
        if target.dim() == 1:
            all_target = all_target[:, 0]
        return cm, ("exact", packed[:, :width], all_target)

    def _state_for(self, caller: str, sync: bool) -> Tuple[Tensor, Any]:
        """The state a non-collective method reports: local, or the one the last compute() reduced."""
        if not _check_sync(sync) or not _distributed():
            return self.confmat.clone(), self._local_curve_state()
        if self._reduced is None:
            raise RuntimeError(
                f"ClassificationMetrics.{caller}: under torch.distributed only compute() communicates and it has not "
                f"run yet; call compute() on every rank first (it sums the confusion matrices of all ranks), then "
                f"{caller}() on any rank, or pass sync=False for this rank's own samples"
            )
        version, cm, curve = self._reduced
        if version != self._version:
            raise RuntimeError(
                f"ClassificationMetrics.{caller}: update() or reset() ran after the last compute(), so the reduced "
                f"numbers are stale; call compute() on every rank again, then {caller}() on any rank, or pass "
                "sync=False for this rank's own samples"
            )
        return cm.clone(), curve

    def _confmat_for(self, caller: str, sync: bool) -> Tensor:
        return self._state_for(caller, sync)[0]

    # -- results ------------------------------------------------------------------
    def compute(self, sync: bool = True) -> Dict[str, Any]:
        """Every metric, as float64 tensors on the state's device (scalars as floats).

        **Collective** under ``torch.distributed`` (world size > 1) when
        ``sync=True``: every rank must call it, in the same order relative to
        other collectives; it reduces the state (one all-reduce, or two
        collectives for an exact curve state: see the class docstring) and
        remembers the result for :meth:`report`, the curves and the plots.
        Without a process group, or with ``sync=False``, it is local: the
        metrics of this rank's own samples, nothing communicated.

        Args:
            sync (bool): combine the state of all ranks (default True).

        Returns:
            dict: ``confusion_matrix`` (Tensor[K, K] int64; multilabel
            Tensor[C, 2, 2]), ``support`` (Tensor[K] int64), ``precision``,
            ``recall``, ``specificity``, ``f1``, ``iou`` (Tensor[K] float64),
            and the floats ``accuracy``, ``macro_*``, ``weighted_*``,
            ``mean_iou`` and (not multilabel) ``balanced_accuracy``, ``mcc``,
            ``gmean``. With ``curves=True`` also ``per_class_average_precision``
            and ``per_class_roc_auc`` (Tensor[K] float64, NaN where
            undefined), ``average_precision`` and ``roc_auc`` (the same
            tensors; for ``task="binary"`` the floats of the positive class 1,
            as scikit-learn's binary scores; they used to be Tensor[2]
            there) and the floats ``macro_average_precision``,
            ``weighted_average_precision``, ``macro_roc_auc``,
            ``weighted_roc_auc`` (over the classes, both for binary).
        """
        cm = self.confmat.clone()
        curve = self._local_curve_state()
        if _check_sync(sync) and _distributed():
            cm, curve = self._all_reduce(cm, curve)
            self._reduced = (self._version, cm.clone(), curve)
        result = self._metrics(cm)
        if curve is not None:
            result.update(self._ranking(curve))
        return result

    def _ranking(self, curve: Any) -> Dict[str, Any]:
        device = self.confmat.device
        if curve[0] == "binned":
            ap, auc = _curves.binned_scores(curve[1])
            positives = _curves.binned_counts(curve[1])[2]
        else:
            scores, positive, valid = self._one_vs_rest(curve[1], curve[2])
            valid = valid.expand_as(positive)
            # every class at once (bt.metrics' ranking functions run the same code); the ignored
            # samples weigh 0, which leaves them out of the curves
            weight = None if bool(valid.all()) else valid.T.double()
            ap, auc, P, _ = _curves.ranking_rows(scores.T, positive.T, weight)
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

    def _metrics(self, cm: Tensor) -> Dict[str, Any]:
        if cm.dim() == 3:
            return self._multilabel_metrics(cm)
        C = cm.double()
        tp = C.diagonal()
        support = C.sum(1)
        predicted = C.sum(0)
        total = C.sum()
        fp = predicted - tp
        fn = support - tp
        tn = total - tp - fp - fn
        precision = _div(tp, predicted)
        recall = _div(tp, support)
        specificity = _div(tn, tn + fp)
        f1 = _div(2 * tp, 2 * tp + fp + fn)
        iou = _div(tp, tp + fp + fn)
        present = (support > 0) | (predicted > 0)
        n_present = max(int(present.sum()), 1)
        in_targets = support > 0
        weights = _div(support, support.sum().expand_as(support))

        t_sum, p_sum = support, predicted
        cov_ytyp = tp.sum() * total - torch.dot(t_sum, p_sum)
        cov_ypyp = total**2 - torch.dot(p_sum, p_sum)
        cov_ytyt = total**2 - torch.dot(t_sum, t_sum)
        denom = cov_ytyt * cov_ypyp
        mcc = float(cov_ytyp / torch.sqrt(denom)) if float(denom) != 0 else 0.0
        present_recall = recall[present]
        gmean = (
            0.0
            if bool((present_recall == 0).any()) or present_recall.numel() == 0
            else float(torch.exp(torch.log(present_recall).mean()))
        )

        return {
            "confusion_matrix": cm,
            "support": support.long(),
            "precision": precision,
            "recall": recall,
            "specificity": specificity,
            "f1": f1,
            "iou": iou,
            "accuracy": float(_div(tp.sum(), total)),
            "balanced_accuracy": float(recall[in_targets].mean()) if bool(in_targets.any()) else 0.0,
            "macro_precision": float(precision[present].sum() / n_present),
            "macro_recall": float(recall[present].sum() / n_present),
            "macro_f1": float(f1[present].sum() / n_present),
            "weighted_precision": float((precision * weights).sum()),
            "weighted_recall": float((recall * weights).sum()),
            "weighted_f1": float((f1 * weights).sum()),
            "mean_iou": float(iou[present].sum() / n_present),
            "mcc": mcc,
            "gmean": gmean,
        }

    @staticmethod
    def _multilabel_metrics(cm: Tensor) -> Dict[str, Any]:
        C = cm.double()
        tn, fp, fn, tp = C[:, 0, 0], C[:, 0, 1], C[:, 1, 0], C[:, 1, 1]
        support = tp + fn
        precision = _div(tp, tp + fp)
        recall = _div(tp, support)
        specificity = _div(tn, tn + fp)
        f1 = _div(2 * tp, 2 * tp + fp + fn)
        iou = _div(tp, tp + fp + fn)
        weights = _div(support, support.sum().expand_as(support))
        return {
            "confusion_matrix": cm,
            "support": support.long(),
            "precision": precision,
            "recall": recall,
            "specificity": specificity,
            "f1": f1,
            "iou": iou,
            "accuracy": float(_div((tp + tn).sum(), C.sum())),
            "macro_precision": float(precision.mean()),
            "macro_recall": float(recall.mean()),
            "macro_f1": float(f1.mean()),
            "weighted_precision": float((precision * weights).sum()),
            "weighted_recall": float((recall * weights).sum()),
            "weighted_f1": float((f1 * weights).sum()),
            "mean_iou": float(iou.mean()),
        }

    def _names(self):
        return self.class_names or [str(k) for k in range(self.num_classes)]

    def report(self, digits: int = 2, sync: bool = True) -> str:
        """A table in the layout of sklearn's ``classification_report``, plus specificity and IoU.

        With ``curves=True`` two more columns: average precision and ROC AUC
        (``nan`` where undefined; averages over the defined classes).

        Not collective: safe on one rank alone. Under ``torch.distributed``
        with ``sync=True`` (default) it shows the numbers of all ranks as
        reduced by the last :meth:`compute`, which must have run on every
        rank after the last ``update``/``reset`` (``RuntimeError`` otherwise);
        ``sync=False`` shows this rank's own samples.

        Args:
            digits (int): decimals of the ratios (default 2).
            sync (bool): the numbers of all ranks (default True) or of this rank.

        Returns:
            str: the table, one line per class.
        """
        if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
            raise ValueError(f"ClassificationMetrics.report: digits must be an int >= 0, got {digits!r}")
        cm, curve = self._state_for("report", sync)
        r = self._metrics(cm)
        if curve is not None:
            r.update(self._ranking(curve))
        names = self._names()
        multilabel = cm.dim() == 3
        headers = ["precision", "recall", "f1-score", "specificity", "iou"]
        ratios = ["precision", "recall", "f1", "specificity", "iou"]
        if curve is not None:
            headers += ["avg-prec", "roc-auc"]
            ratios += ["per_class_average_precision", "per_class_roc_auc"]
        headers.append("support")
        width = max(max(len(n) for n in names), len("weighted avg"), digits)
        head = " " * width + "".join(f" {h:>11}" for h in headers)
        lines = [head, ""]
        row = "{:>{w}}" + " {:>11.{d}f}" * len(ratios) + " {:>11}"
        for k, name in enumerate(names):
            lines.append(row.format(name, *(float(r[key][k]) for key in ratios), int(r["support"][k]), w=width, d=digits))
        lines.append("")
        total = int(r["support"].sum()) if multilabel else int(cm.sum())
        if not multilabel:
            # as sklearn: accuracy sits in the f1-score column
            lines.append(
                f"{'accuracy':>{width}}"
                + " " * 24
                + f" {r['accuracy']:>11.{digits}f}"
                + " " * 12 * (len(ratios) - 3)
                + f" {total:>11}"
            )
            present = (r["support"] > 0) | (cm.sum(0) > 0)
        else:
            present = torch.ones(self.num_classes, dtype=torch.bool, device=cm.device)
        n = max(int(present.sum()), 1)
        w = r["support"].double() / max(int(r["support"].sum()), 1)
        macro = [
            r["macro_precision"],
            r["macro_recall"],
            r["macro_f1"],
            float(r["specificity"][present].sum() / n),
            float(r["iou"][present].sum() / n),
        ]
        weighted = [
            r["weighted_precision"],
            r["weighted_recall"],
            r["weighted_f1"],
            float((r["specificity"] * w).sum()),
            float((r["iou"] * w).sum()),
        ]
        if curve is not None:
            macro += [r["macro_average_precision"], r["macro_roc_auc"]]
            weighted += [r["weighted_average_precision"], r["weighted_roc_auc"]]
        lines.append(row.format("macro avg", *macro, total, w=width, d=digits))
        lines.append(row.format("weighted avg", *weighted, total, w=width, d=digits))
        lines.append("")
        if multilabel:
            lines.append(f"accuracy (per label) {r['accuracy']:.{digits + 2}f}   mean IoU {r['mean_iou']:.{digits + 2}f}")
        else:
            lines.append(
                f"balanced accuracy {r['balanced_accuracy']:.{digits + 2}f}   MCC {r['mcc']:.{digits + 2}f}   "
                f"G-mean {r['gmean']:.{digits + 2}f}   mean IoU {r['mean_iou']:.{digits + 2}f}"
            )
        return "\n".join(lines) + "\n"

    # -- curves ---------------------------------------------------------------------
    def _curve_state_for(self, caller: str, sync: bool) -> Any:
        if not self.curves:
            raise RuntimeError(f"ClassificationMetrics.{caller} needs curves=True at construction")
        return self._state_for(caller, sync)[1]

    def pr_curves(self, sync: bool = True) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """Per-class precision-recall curves (one-vs-rest), float64 on the state's device.

        Exact state: scikit-learn's ``precision_recall_curve`` of class ``k``
        (``precision[m + 1]``, ``recall[m + 1]``, ``thresholds[m]`` over the
        ``m`` distinct scores, ascending; recall 1 without positives, as
        there). Binned state: torchmetrics' binned curve (``precision[T + 1]``,
        ``recall[T + 1]``, ``thresholds[T]``; NaN where undefined). Not
        collective; under ``torch.distributed`` it follows the rule of
        :meth:`report`. Needs ``curves=True``.

        Args:
            sync (bool): all ranks (default True, as reduced by the last
                :meth:`compute`) or this rank's own samples.

        Returns:
            list of (precision, recall, thresholds), one per class.
        """
        return self._curves_of(self._curve_state_for("pr_curves", sync), "pr")

    def roc_curves(self, sync: bool = True) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """Per-class ROC curves (one-vs-rest), float64 on the state's device.

        Exact state: scikit-learn's ``roc_curve(..., drop_intermediate=False)``
        of class ``k`` (``fpr``, ``tpr``, ``thresholds``, the first threshold
        ``inf``; NaN rates where a class has no positives / negatives).
        Binned state: torchmetrics' binned ``roc`` (thresholds descending).
        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report`. Needs ``curves=True``.

        Args:
            sync (bool): all ranks (default True) or this rank's own samples.

        Returns:
            list of (fpr, tpr, thresholds), one per class.
        """
        return self._curves_of(self._curve_state_for("roc_curves", sync), "roc")

    def _curves_of(self, curve: Any, kind: str) -> List[Tuple[Tensor, Tensor, Tensor]]:
        out = []
        if curve[0] == "binned":
            grid = self._grid.to(curve[1].device)
            fn = _curves.binned_pr_curve if kind == "pr" else _curves.binned_roc_curve
            return [fn(curve[1], grid, c) for c in range(self.num_classes)]
        scores, positive, valid = self._one_vs_rest(curve[1], curve[2])
        valid = valid.expand_as(positive)
        fn = _curves.exact_pr_curve if kind == "pr" else _curves.exact_roc_curve
        for c in range(self.num_classes):
            keep = valid[:, c]
            out.append(fn(scores[keep, c], positive[keep, c]))
        return out

    # -- plots ------------------------------------------------------------------
    def plot_confusion_matrix(self, path: Optional[str] = None, normalize: Optional[str] = None, sync: bool = True):
        """Plot the confusion matrix (multilabel: one 2 x 2 matrix per label).

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report` (``sync=True``: the matrix reduced by the last
        :meth:`compute`; ``sync=False``: this rank's own).

        Args:
            path (str, optional): where to save the image (format from the
                extension, e.g. PNG); default None: not saved.
            normalize (str, optional): None (counts), ``"true"`` (rows),
                ``"pred"`` (columns) or ``"all"``.
            sync (bool): all ranks (default True) or this rank's own samples.

        Returns:
            matplotlib.figure.Figure: not registered with pyplot (nothing to
            close); e.g. ``SummaryWriter.add_figure`` or ``wandb.Image`` take it.
        """
        if normalize not in (None, "true", "pred", "all"):
            raise ValueError(f"normalize must be None, 'true', 'pred' or 'all', got {normalize!r}")
        cm = self._confmat_for("plot_confusion_matrix", sync).double().cpu()
        names = self._names()
        if cm.dim() == 3:
            cols = min(self.num_classes, 5)
            rows = (self.num_classes + cols - 1) // cols
            fig = _figure((2.6 * cols, 2.6 * rows))
            axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(-1)
            for ax in axes[self.num_classes :]:
                ax.set_axis_off()
            for k in range(self.num_classes):
                self._draw_matrix(axes[k], self._normalized(cm[k], normalize), ["0", "1"], normalize, colorbar=None)
                axes[k].set_title(names[k], fontsize=9)
            fig.suptitle("per-label confusion matrices" + (f" (normalised by {normalize})" if normalize else ""))
            return _finish(fig, path)
        size = max(4.0, 0.5 * self.num_classes + 2)
        fig = _figure((size, size))
        ax = fig.subplots()
        self._draw_matrix(ax, self._normalized(cm, normalize), names, normalize, colorbar=fig)
        ax.set_title("confusion matrix" + (f" (normalised by {normalize})" if normalize else ""))
        return _finish(fig, path)

    @staticmethod
    def _normalized(cm: Tensor, normalize: Optional[str]) -> Tensor:
        if normalize == "true":
            return _div(cm, cm.sum(-1, keepdim=True).expand_as(cm))
        if normalize == "pred":
            return _div(cm, cm.sum(-2, keepdim=True).expand_as(cm))
        if normalize == "all":
            return _div(cm, cm.sum().expand_as(cm))
        return cm

    @staticmethod
    def _draw_matrix(ax, cm: Tensor, names: List[str], normalize: Optional[str], colorbar) -> None:
        n = cm.shape[0]
        image = ax.imshow(cm.numpy(), cmap="Blues")
        if colorbar is not None:
            colorbar.colorbar(image, ax=ax, fraction=0.046)
        ax.set_xticks(range(n), names, rotation=45, ha="right")
        ax.set_yticks(range(n), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if n <= 30:
            fmt = "{:.2f}" if normalize else "{:.0f}"
            threshold = float(cm.max()) / 2 if cm.numel() else 0
            for i in range(n):
                for j in range(n):
                    v = float(cm[i, j])
                    ax.text(
                        j, i, fmt.format(v), ha="center", va="center", fontsize=8, color="white" if v > threshold else "black"
                    )

    def plot_per_class(self, path: Optional[str] = None, sync: bool = True):
        """Plot per-class precision, recall, F1 and IoU as grouped bars.

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report` (``sync=True``: the matrix reduced by the last
        :meth:`compute`; ``sync=False``: this rank's own).

        Args:
            path (str, optional): where to save the image; default None: not saved.
            sync (bool): all ranks (default True) or this rank's own samples.

        Returns:
            matplotlib.figure.Figure: not registered with pyplot.
        """
        r = self._metrics(self._confmat_for("plot_per_class", sync))
        names = self._names()
        fig = _figure((max(6.0, 0.6 * self.num_classes + 2), 4))
        ax = fig.subplots()
        width = 0.2
        for i, key in enumerate(("precision", "recall", "f1", "iou")):
            ax.bar([k + (i - 1.5) * width for k in range(self.num_classes)], r[key].cpu().numpy(), width, label=key)
        ax.set_xticks(range(self.num_classes), names, rotation=45, ha="right")
        ax.set_ylim(0, 1.05)
        ax.legend(ncols=4, fontsize=8)
        if "balanced_accuracy" in r:
            ax.set_title(f"per-class metrics (accuracy {r['accuracy']:.3f}, balanced {r['balanced_accuracy']:.3f})")
        else:
            ax.set_title(f"per-label metrics (macro F1 {r['macro_f1']:.3f}, mean IoU {r['mean_iou']:.3f})")
        return _finish(fig, path)

    def _plot_curves(self, kind: str, path: Optional[str], sync: bool):
        caller = "plot_pr_curves" if kind == "pr" else "plot_roc_curves"
        curve = self._curve_state_for(caller, sync)
        curves = self._curves_of(curve, kind)
        ranking = self._ranking(curve)
        names = self._names()
        binary = self._task == "binary"
        fig = _figure((6.0, 5.0))
        ax = fig.subplots()
        for k, (a, b, _) in enumerate(curves):
            if binary and k == 0:
                continue  # binary: the positive class (class 0's curves are those of 1 - p)
            if kind == "pr":
                value = float(ranking["per_class_average_precision"][k])
                if math.isnan(value):
                    continue  # no positives: no curve
                precision, recall = a.cpu().numpy(), b.cpu().numpy()
                ax.step(recall, np.nan_to_num(precision), where="post", label=f"{names[k]} (AP {value:.3f})")
            else:
                value = float(ranking["per_class_roc_auc"][k])
                if math.isnan(value):
                    continue
                ax.plot(a.cpu().numpy(), b.cpu().numpy(), label=f"{names[k]} (AUC {value:.3f})")
        if kind == "pr":
            ax.set_xlabel("recall")
            ax.set_ylabel("precision")
            if binary:
                ax.set_title(f"precision-recall of {names[1]} (AP {ranking['average_precision']:.3f})")
            else:
                ax.set_title(f"precision-recall (macro AP {ranking['macro_average_precision']:.3f})")
        else:
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("true positive rate")
            if binary:
                ax.set_title(f"ROC of {names[1]} (AUC {ranking['roc_auc']:.3f})")
            else:
                ax.set_title(f"ROC one-vs-rest (macro AUC {ranking['macro_roc_auc']:.3f})")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.05)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower left" if kind == "pr" else "lower right")
        return _finish(fig, path)

    def plot_pr_curves(self, path: Optional[str] = None, sync: bool = True):
        """Plot the per-class precision-recall curves (classes without positives left out), AP in the legend.

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report`. Needs ``curves=True``.

        Args:
            path (str, optional): where to save the image; default None: not saved.
            sync (bool): all ranks (default True) or this rank's own samples.

        Returns:
            matplotlib.figure.Figure: not registered with pyplot.
        """
        return self._plot_curves("pr", path, sync)

    def plot_roc_curves(self, path: Optional[str] = None, sync: bool = True):
        """Plot the per-class ROC curves (classes without positives or negatives left out), AUC in the legend.

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report`. Needs ``curves=True``.

        Args:
            path (str, optional): where to save the image; default None: not saved.
            sync (bool): all ranks (default True) or this rank's own samples.

        Returns:
            matplotlib.figure.Figure: not registered with pyplot.
        """
        return self._plot_curves("roc", path, sync)

    def __repr__(self) -> str:
        args = [f"num_classes={self.num_classes}"]
        defaults = (
            ("class_names", None),
            ("ignore_index", None),
            ("device", None),
            ("task", None),
            ("curves", False),
            ("thresholds", None),
            ("exact_max_samples", None),
            ("input_format", "auto"),
            ("validate_args", True),
        )
        for name, default in defaults:
            value = self._init_device if name == "device" else getattr(self, name)
            if (value is not None) if default is None else (value != default):
                args.append(f"{name}={value!r}")
        samples = int(self.confmat[0].sum()) if self.confmat.dim() == 3 else int(self.confmat.sum())
        return f"{type(self).__name__}({', '.join(args)}, samples={samples})"
