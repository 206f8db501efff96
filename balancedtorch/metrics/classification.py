"""``ClassificationMetrics``: streaming per-class metrics and the confusion matrix."""

from __future__ import annotations

import numbers
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .._labels import check_labels, describe_one_hot
from ..ops.class_counts import class_counts

__all__ = ["ClassificationMetrics"]


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


class ClassificationMetrics:
    """Streaming confusion matrix and per-class metrics, on the device of the inputs.

    ``update`` accumulates a K x K confusion matrix (int64; rows: target,
    columns: prediction, scikit-learn's layout) from predicted labels, logits
    or probabilities, for classification ``(N,)`` or segmentation ``(N, H, W)``
    targets (pixel level). ``compute`` returns every metric from it.

    Distributed (``torch.distributed`` initialised, world size > 1):
    :meth:`compute` is the one collective: call it on **every** rank; it sums
    the matrices of all ranks with one all-reduce and every rank gets the
    metrics of all samples. Nothing else communicates: :meth:`report`,
    :meth:`plot_confusion_matrix` and :meth:`plot_per_class` reuse the
    matrix reduced by the last ``compute()``, so they can run on rank 0
    alone. If ``update``/``reset`` ran after that ``compute()`` (or it never
    ran) they raise a ``RuntimeError`` asking for ``compute()`` on every rank
    first, rather than show stale numbers or wait for the other ranks.
    ``sync=False`` (every method) uses this rank's own samples and never
    communicates. Without a process group every method works on the local
    state and nothing changes.

    The numbers equal scikit-learn's ``precision_recall_fscore_support``
    (``zero_division=0``), ``confusion_matrix``, ``balanced_accuracy_score``,
    ``matthews_corrcoef``, ``jaccard_score`` and imbalanced-learn's
    ``specificity_score`` and ``geometric_mean_score`` on the same samples:

    * per-class arrays have one entry per class in ``range(num_classes)``; a
      ratio whose denominator is 0 is 0 (a class never predicted has precision
      0, a class absent from the targets recall 0);
    * macro averages run over the *present* classes (in the targets or the
      predictions), as scikit-learn does without ``labels=``; weighted
      averages weight by support;
    * ``balanced_accuracy`` averages recall over classes present in the
      targets; ``gmean`` is the geometric mean of recall over present classes
      (0 as soon as one of them is never recovered); ``mcc`` is 0 when undefined.

    Args:
        num_classes (int): K.
        class_names (sequence of str, optional): names for ``report()`` and plots.
        ignore_index (int, optional): target value to skip (e.g. 255 void pixels).
        device (torch.device, optional): where the state lives; default: the
            device of the first ``update``.

    Example:
        >>> metrics = bt.metrics.ClassificationMetrics(3, class_names=["red", "yellow", "green"])
        >>> for x, y in val_loader:
        ...     metrics.update(model(x), y)
        >>> metrics.compute()["balanced_accuracy"]   # under DDP: on every rank
        >>> print(metrics.report())                  # any rank, e.g. rank 0 only
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Optional[Sequence[str]] = None,
        ignore_index: Optional[int] = None,
        device: Optional[Any] = None,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
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
        self._version = 0
        self.reset()

    def reset(self) -> None:
        """Forget every update (local; not collective)."""
        self.confmat = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long, device=self.device)
        # bumped by every change of the state, so that report() and the plots
        # can tell whether the matrix reduced by the last compute() is current
        self._version += 1
        self._reduced: Optional[Tuple[int, Tensor]] = None  # (version, all-reduced matrix)

    # -- accumulation -----------------------------------------------------------
    def _predicted_labels(self, preds: Tensor, target: Tensor) -> Tensor:
        if preds.shape == target.shape:
            if preds.is_floating_point():
                raise ValueError(
                    "preds_or_logits has the target's shape but holds floats; pass integer predicted labels, "
                    f"or scores of shape (N, {self.num_classes}, ...)"
                )
            return preds.long()
        expected = (target.shape[0], self.num_classes) + tuple(target.shape[1:]) if target.dim() else None
        if expected is None or tuple(preds.shape) != expected:
            raise ValueError(
                f"preds_or_logits must have the target's shape {tuple(target.shape)} (labels) or "
                f"{expected} (logits / probabilities), got {tuple(preds.shape)}"
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
        if top.values.numel() and bool(torch.isnan(top.values).any()):
            bad = int(torch.isnan(top.values).reshape(-1).nonzero()[0, 0])
            raise ValueError(f"ClassificationMetrics.update: preds_or_logits holds NaN scores (sample {bad} of the flattened batch)")
        return top.indices

    @torch.no_grad()
    def update(self, preds_or_logits: Any, target: Any) -> None:
        """Add a batch: predicted labels ``(N, ...)`` or scores ``(N, K, ...)``, and targets ``(N, ...)``.

        Local (not collective): only this rank's state changes.
        """
        preds = torch.as_tensor(preds_or_logits).detach()
        caller = "ClassificationMetrics.update"
        K = self.num_classes
        shape = tuple(target.shape) if isinstance(target, Tensor) else tuple(np.shape(target))
        if len(shape) == 0:
            raise ValueError(f"{caller}: target must have a batch dimension, got a scalar")
        if len(shape) == 2 and shape[1] == K and tuple(preds.shape) in ((shape[0],), shape):
            # (N, K) targets next to (N,) labels or (N, K) scores: one-hot, not a segmentation row
            one_hot = describe_one_hot(torch.as_tensor(target), "target", caller)
            if one_hot is not None:
                raise ValueError(one_hot)
        if self.device is None:
            self.device = preds.device
            self.confmat = self.confmat.to(self.device)
        # the shared validator: integer (or integral float) labels of any shape, in [0, K) or ignore_index
        target = check_labels(
            target,
            "target",
            caller=caller,
            num_classes=K,
            ignore_index=self.ignore_index,  # exempt from the range, negative or not
            allow_empty=True,
            any_shape=True,
            device=self.device,
        ).view(shape)
        preds = preds.to(self.device)
        scores = preds.shape != target.shape
        labels = self._predicted_labels(preds, target).reshape(-1)
        target = target.reshape(-1)
        ignored = None if self.ignore_index is None else target == self.ignore_index
        if not scores and labels.numel():  # argmax of K scores is always in range
            values = labels if ignored is None else labels.masked_fill(ignored, 0)
            low, high = torch.aminmax(values)
            if int(low) < 0 or int(high) >= K:
                bad = ((values < 0) | (values >= K)).nonzero()[0, 0]
                raise ValueError(f"{caller}: predicted label {int(values[bad])} is outside [0, num_classes={K})")
        pairs = target * K + labels
        if ignored is not None:
            pairs = pairs.masked_fill(ignored, -1)
        # the validated parallel histogram kernel of balancedtorch.ops
        self.confmat += class_counts(pairs, K * K, ignore_index=None if ignored is None else -1).view(K, K)
        self._version += 1

    def _confmat_for(self, caller: str, sync: bool) -> Tensor:
        """The matrix a non-collective method reports: local, or the one the last compute() reduced."""
        if not _check_sync(sync) or not _distributed():
            return self.confmat.clone()
        if self._reduced is None:
            raise RuntimeError(
                f"ClassificationMetrics.{caller}: under torch.distributed only compute() communicates and it has not "
                f"run yet; call compute() on every rank first (it sums the confusion matrices of all ranks), then "
                f"{caller}() on any rank, or pass sync=False for this rank's own samples"
            )
        version, cm = self._reduced
        if version != self._version:
            raise RuntimeError(
                f"ClassificationMetrics.{caller}: update() or reset() ran after the last compute(), so the reduced "
                f"numbers are stale; call compute() on every rank again, then {caller}() on any rank, or pass "
                "sync=False for this rank's own samples"
            )
        return cm.clone()

    # -- results ------------------------------------------------------------------
    def compute(self, sync: bool = True) -> Dict[str, Any]:
        """Every metric, as float64 tensors on the state's device (scalars as floats).

        **Collective** under ``torch.distributed`` (world size > 1) when
        ``sync=True``: every rank must call it, in the same order relative to
        other collectives; it all-reduces the confusion matrix once and
        remembers the result for :meth:`report` and the plots. Without a
        process group, or with ``sync=False``, it is local: the metrics of
        this rank's own samples, nothing communicated.

        Args:
            sync (bool): sum the state of all ranks (default True).

        Returns:
            dict: ``confusion_matrix`` (Tensor[K, K] int64), ``support``
            (Tensor[K] int64), ``precision``, ``recall``, ``specificity``,
            ``f1``, ``iou`` (Tensor[K] float64), and the floats ``accuracy``,
            ``balanced_accuracy``, ``macro_*``, ``weighted_*``, ``mcc``,
            ``gmean``.
        """
        cm = self.confmat.clone()
        if _check_sync(sync) and _distributed():
            torch.distributed.all_reduce(cm)  # one all-reduce: the whole state is the matrix
            self._reduced = (self._version, cm.clone())
        return self._metrics(cm)

    def _metrics(self, cm: Tensor) -> Dict[str, Any]:
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
        gmean = 0.0 if bool((present_recall == 0).any()) or present_recall.numel() == 0 else float(torch.exp(torch.log(present_recall).mean()))

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
            "mcc": mcc,
            "gmean": gmean,
        }

    def _names(self):
        return self.class_names or [str(k) for k in range(self.num_classes)]

    def report(self, digits: int = 2, sync: bool = True) -> str:
        """A table in the layout of sklearn's ``classification_report``, plus specificity and IoU.

        Not collective: safe on one rank alone. Under ``torch.distributed``
        with ``sync=True`` (default) it shows the numbers of all ranks as
        reduced by the last :meth:`compute`, which must have run on every
        rank after the last ``update``/``reset`` (``RuntimeError`` otherwise);
        ``sync=False`` shows this rank's own samples.

        Args:
            digits (int): decimals of the ratios (default 2).
            sync (bool): the numbers of all ranks (default True) or of this rank.
        """
        if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
            raise ValueError(f"ClassificationMetrics.report: digits must be an int >= 0, got {digits!r}")
        r = self._metrics(self._confmat_for("report", sync))
        names = self._names()
        headers = ["precision", "recall", "f1-score", "specificity", "iou", "support"]
        width = max(max(len(n) for n in names), len("weighted avg"), digits)
        head = " " * width + "".join(f" {h:>11}" for h in headers)
        lines = [head, ""]
        row = "{:>{w}}" + " {:>11.{d}f}" * 5 + " {:>11}"
        for k, name in enumerate(names):
            lines.append(row.format(name, r["precision"][k], r["recall"][k], r["f1"][k], r["specificity"][k], r["iou"][k], int(r["support"][k]), w=width, d=digits))
        lines.append("")
        total = int(r["support"].sum())
        # as sklearn: accuracy sits in the f1-score column
        lines.append(f"{'accuracy':>{width}}" + " " * 24 + f" {r['accuracy']:>11.{digits}f}" + " " * 24 + f" {total:>11}")
        present = (r["support"] > 0) | (r["confusion_matrix"].sum(0) > 0)
        n = max(int(present.sum()), 1)
        macro_spec = float(r["specificity"][present].sum() / n)
        macro_iou = float(r["iou"][present].sum() / n)
        w = r["support"].double() / max(total, 1)
        lines.append(row.format("macro avg", r["macro_precision"], r["macro_recall"], r["macro_f1"], macro_spec, macro_iou, total, w=width, d=digits))
        lines.append(row.format("weighted avg", r["weighted_precision"], r["weighted_recall"], r["weighted_f1"], float((r["specificity"] * w).sum()), float((r["iou"] * w).sum()), total, w=width, d=digits))
        lines.append("")
        lines.append(f"balanced accuracy {r['balanced_accuracy']:.{digits + 2}f}   MCC {r['mcc']:.{digits + 2}f}   G-mean {r['gmean']:.{digits + 2}f}")
        return "\n".join(lines) + "\n"

    # -- plots ------------------------------------------------------------------
    @staticmethod
    def _pyplot():
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - matplotlib is a dev dependency
            raise ImportError("plotting needs matplotlib: pip install matplotlib") from exc
        return plt

    def plot_confusion_matrix(self, path: str, normalize: Optional[str] = None, sync: bool = True) -> str:
        """Write the confusion matrix as a PNG; ``normalize``: None (counts), "true", "pred" or "all".

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report` (``sync=True``: the matrix reduced by the last
        :meth:`compute`; ``sync=False``: this rank's own). Returns ``path``.
        """
        if normalize not in (None, "true", "pred", "all"):
            raise ValueError(f"normalize must be None, 'true', 'pred' or 'all', got {normalize!r}")
        cm = self._confmat_for("plot_confusion_matrix", sync).double().cpu()
        plt = self._pyplot()
        if normalize == "true":
            cm = _div(cm, cm.sum(1, keepdim=True).expand_as(cm))
        elif normalize == "pred":
            cm = _div(cm, cm.sum(0, keepdim=True).expand_as(cm))
        elif normalize == "all":
            cm = _div(cm, cm.sum().expand_as(cm))
        names = self._names()
        size = max(4.0, 0.5 * self.num_classes + 2)
        fig, ax = plt.subplots(figsize=(size, size))
        image = ax.imshow(cm.numpy(), cmap="Blues")
        fig.colorbar(image, ax=ax, fraction=0.046)
        ax.set_xticks(range(self.num_classes), names, rotation=45, ha="right")
        ax.set_yticks(range(self.num_classes), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if self.num_classes <= 30:
            fmt = "{:.2f}" if normalize else "{:.0f}"
            threshold = float(cm.max()) / 2 if cm.numel() else 0
            for i in range(self.num_classes):
                for j in range(self.num_classes):
                    v = float(cm[i, j])
                    ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=8, color="white" if v > threshold else "black")
        ax.set_title("confusion matrix" + (f" (normalised by {normalize})" if normalize else ""))
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def plot_per_class(self, path: str, sync: bool = True) -> str:
        """Write per-class precision, recall, F1 and IoU as grouped bars (PNG).

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report` (``sync=True``: the matrix reduced by the last
        :meth:`compute`; ``sync=False``: this rank's own). Returns ``path``.
        """
        r = self._metrics(self._confmat_for("plot_per_class", sync))
        plt = self._pyplot()
        names = self._names()
        fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * self.num_classes + 2), 4))
        width = 0.2
        for i, key in enumerate(("precision", "recall", "f1", "iou")):
            ax.bar([k + (i - 1.5) * width for k in range(self.num_classes)], r[key].cpu().numpy(), width, label=key)
        ax.set_xticks(range(self.num_classes), names, rotation=45, ha="right")
        ax.set_ylim(0, 1.05)
        ax.legend(ncols=4, fontsize=8)
        ax.set_title(f"per-class metrics (accuracy {r['accuracy']:.3f}, balanced {r['balanced_accuracy']:.3f})")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes}, samples={int(self.confmat.sum())})"
