"""``ClassificationMetrics``: streaming per-class metrics, the confusion matrix, PR / ROC curves.

This module holds the public class as the composition of its concerns, and
what ties them together: the arguments, ``reset``, ``update`` (which hands a
batch to the task's counting), the ``torch.distributed`` reduction and
``compute``. The concerns live beside it:

* ``_confusion.py``: reading a batch, the confusion-matrix counts, the metrics of a matrix;
* ``_curves.py``: the exact / binned curve state, AP and ROC AUC, the per-class curves;
* ``_report.py``: :meth:`ClassificationMetrics.report`;
* ``_plots.py``: the ``plot_*`` methods.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from .._distributed import all_gather_, all_reduce_, cross_rank, world_and_rank
from .._validate import UNSET, as_tensor
from ..data.labels import refuse_meta
from . import _curves
from ._confusion import ConfusionMixin, _class_last, _div  # noqa: F401  (_class_last, _div: their old home)
from ._curves import CurveMixin, _nanmean  # noqa: F401  (_nanmean: its old home)
from ._plots import PlotMixin, _figure, _finish  # noqa: F401  (_figure, _finish: their old home)
from ._report import ReportMixin

__all__ = ["ClassificationMetrics"]

_TASKS = ("multiclass", "binary", "multilabel")
_INPUT_FORMATS = ("auto", "logits", "probabilities")
_DEFAULT_EXACT_MAX_SAMPLES = 1_000_000


class ClassificationMetrics(ConfusionMixin, CurveMixin, ReportMixin, PlotMixin):
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
    ``distributed=False`` (every method) uses this rank's own samples and
    never communicates (``distributed=None``, the default: all ranks when a
    process group of world size > 1 runs; ``sync=`` is the deprecated name). Without a process group every method works on the local
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
        >>> import torch
        >>> import balancedtorch as bt
        >>> g = torch.Generator().manual_seed(0)
        >>> y = torch.tensor([0] * 50 + [1] * 5 + [2] * 45)
        >>> logits = 2.0 * torch.nn.functional.one_hot(y, 3) + torch.randn(100, 3, generator=g)
        >>> val_loader = zip(logits.split(25), y.split(25))  # stands for (model(x), y) batches
        >>> metrics = bt.metrics.ClassificationMetrics(3, class_names=["red", "yellow", "green"], curves=True)
        >>> for batch_logits, batch_y in val_loader:
        ...     metrics.update(batch_logits, batch_y)
        >>> r = metrics.compute()   # under DDP: on every rank
        >>> print(f'{r["balanced_accuracy"]:.3f} {r["macro_average_precision"]:.3f} {r["macro_roc_auc"]:.3f}')
        0.877 0.947 0.975
        >>> print(metrics.report())                  # any rank, e.g. rank 0 only
                       precision      recall    f1-score specificity         iou    avg-prec     roc-auc     support
        <BLANKLINE>
                 red        0.96        0.92        0.94        0.96        0.88        0.98        0.98          50
              yellow        0.67        0.80        0.73        0.98        0.57        0.93        0.99           5
               green        0.89        0.91        0.90        0.91        0.82        0.93        0.95          45
        <BLANKLINE>
            accuracy                                0.91                                                         100
           macro avg        0.84        0.88        0.86        0.95        0.76        0.95        0.97         100
        weighted avg        0.91        0.91        0.91        0.94        0.84        0.96        0.97         100
        <BLANKLINE>
        balanced accuracy 0.8770   MCC 0.8369   G-mean 0.8753   mean IoU 0.7587
        <BLANKLINE>
        >>> fig = metrics.plot_pr_curves()  # a matplotlib Figure (pip install matplotlib), e.g. for TensorBoard
        >>> # metrics.plot_pr_curves(ax=ax) draws into an Axes of yours, e.g. from plt.subplots()
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
        owner = "ClassificationMetrics"
        task = _validate.choice(task, "task", (None, *_TASKS), caller=owner)
        if num_classes is None and task == "binary":
            num_classes = 2
        # a confusion matrix needs two classes; multi-label counts one per label
        num_classes = _validate.integer(num_classes, "num_classes", low=1 if task == "multilabel" else 2, caller=owner)
        if task == "binary" and num_classes != 2:
            raise ValueError(f"task='binary' needs num_classes=2 (or None), got num_classes={num_classes!r}")
        self.num_classes = num_classes
        if class_names is not None:
            class_names = [str(n) for n in class_names]
            if len(class_names) != self.num_classes:
                raise ValueError(f"class_names has {len(class_names)} names for num_classes={self.num_classes}")
        self.class_names = class_names
        self.ignore_index = _validate.ignore_index(ignore_index, caller=owner)
        self.device = None if device is None else torch.device(device)
        if self.device is not None and self.device.type == "meta":
            raise ValueError(
                "ClassificationMetrics: device='meta' holds no values for the counts; pass a device with data (CPU or GPU)"
            )
        self._init_device = self.device
        self.task = task
        self.curves = curves = _validate.flag(curves, "curves", caller=owner)
        if thresholds is not None and not curves:
            raise ValueError(f"thresholds={thresholds!r} needs curves=True")
        self.thresholds = thresholds
        grid = _curves.check_thresholds(thresholds)
        exact_max_samples = _validate.integer(exact_max_samples, "exact_max_samples", low=0, optional=True, caller=owner)
        if exact_max_samples is not None and not curves:
            raise ValueError(f"exact_max_samples={exact_max_samples!r} needs curves=True")
        self.exact_max_samples = exact_max_samples
        self._exact_limit = (
            int(exact_max_samples) if exact_max_samples is not None else (0 if grid is not None else _DEFAULT_EXACT_MAX_SAMPLES)
        )
        self._grid = grid if grid is not None else torch.linspace(0, 1, _curves.DEFAULT_BINS)
        self.input_format = _validate.choice(input_format, "input_format", _INPUT_FORMATS, caller=owner)
        self.validate_args = _validate.flag(validate_args, "validate_args", caller=owner)
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

    def _all_reduce(self, cm: Tensor, curve: Any) -> Tuple[Tensor, Any]:
        if curve is None:
            all_reduce_(cm)  # one all-reduce: the whole state is the matrix
            return cm, None
        if self._exact_limit == 0:  # binned on every rank from the start: matrix and histogram in one all-reduce
            hist = curve[1]
            buf = torch.cat([cm.reshape(-1), hist.reshape(-1)])
            all_reduce_(buf)
            return buf[: cm.numel()].view_as(cm), ("binned", buf[cm.numel() :].view_as(hist))
        world, rank = world_and_rank()
        n_local = 0 if curve[0] == "binned" else curve[1].shape[0]
        info = torch.zeros(world + 2, dtype=torch.long, device=cm.device)
        info[rank] = n_local
        info[world] = int(curve[0] == "binned")
        info[world + 1] = int(curve[0] == "exact" and curve[1].dtype == torch.float64)
        buf = torch.cat([cm.reshape(-1), info])
        all_reduce_(buf)  # collective 1: matrix, sample counts, modes
        cm = buf[: cm.numel()].view_as(cm)
        info = buf[cm.numel() :].tolist()
        if info[world] > 0:  # some rank is binned: everyone bins, collective 2 sums the histograms
            hist = curve[1] if curve[0] == "binned" else self._histogram(curve[1], curve[2])
            all_reduce_(hist)
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
        all_gather_(parts, padded)  # collective 2: every rank's scores and targets
        packed = torch.cat([part[:n] for part, n in zip(parts, counts)])
        all_target = packed[:, width:].to(target.dtype)
        if target.dim() == 1:
            all_target = all_target[:, 0]
        return cm, ("exact", packed[:, :width], all_target)

    def _state_for(self, caller: str, cross: bool) -> Tuple[Tensor, Any]:
        """The state a non-collective method reports: local, or the one the last compute() reduced."""
        if not cross:
            return self.confmat.clone(), self._local_curve_state()
        if self._reduced is None:
            raise RuntimeError(
                f"ClassificationMetrics.{caller}: under torch.distributed only compute() communicates and it has not "
                f"run yet; call compute() on every rank first (it sums the confusion matrices of all ranks), then "
                f"{caller}() on any rank, or pass distributed=False for this rank's own samples"
            )
        version, cm, curve = self._reduced
        if version != self._version:
            raise RuntimeError(
                f"ClassificationMetrics.{caller}: update() or reset() ran after the last compute(), so the reduced "
                f"numbers are stale; call compute() on every rank again, then {caller}() on any rank, or pass "
                "distributed=False for this rank's own samples"
            )
        return cm.clone(), curve

    def _confmat_for(self, caller: str, cross: bool) -> Tensor:
        return self._state_for(caller, cross)[0]

    # -- results ------------------------------------------------------------------
    def compute(self, distributed: Optional[bool] = None, *, sync: Any = UNSET) -> Dict[str, Any]:
        """Every metric, as float64 tensors on the state's device (scalars as floats).

        **Collective** under ``torch.distributed`` (world size > 1) unless
        ``distributed=False``: every rank must call it, in the same order relative to
        other collectives; it reduces the state (one all-reduce, or two
        collectives for an exact curve state: see the class docstring) and
        remembers the result for :meth:`report`, the curves and the plots.
        Without a process group, or with ``distributed=False``, it is local: the
        metrics of this rank's own samples, nothing communicated.

        Args:
            distributed (bool or None): combine the state of all ranks
                (``None``, the default: when a process group of world size > 1
                runs; ``True``: a process group is required). ``sync=`` is its
                deprecated name (``sync=True`` is ``None``).

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
        if cross_rank("ClassificationMetrics.compute", distributed, sync):
            cm, curve = self._all_reduce(cm, curve)
            self._reduced = (self._version, cm.clone(), curve)
        result = self._metrics(cm)
        if curve is not None:
            result.update(self._ranking(curve))
        return result

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
