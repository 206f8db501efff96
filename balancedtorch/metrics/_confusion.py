"""Confusion-matrix state of :class:`ClassificationMetrics`: reading a batch, counting it, the metrics from the matrix.

``ConfusionMixin`` holds what ``update`` does to a batch (scores to
probabilities, the task inferred, targets and predicted labels validated, the
pairs counted into ``confmat``; multiclass, binary and multilabel) and what
``compute`` derives from a matrix (per-class precision, recall, specificity,
F1, IoU and their averages, balanced accuracy, MCC, G-mean). It reads the
attributes ``ClassificationMetrics.__init__`` sets (``num_classes``,
``ignore_index``, ``device``, ``curves``, ``input_format``,
``validate_args``, ``_task``, ``confmat``) and hands the scores of a batch to
``_add_curve_samples`` of :class:`._curves.CurveMixin` when ``curves=True``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

from .._labels import check_labels, describe_one_hot
from .._validate import as_tensor
from ..ops.class_counts import class_counts

__all__: list = []


def _div(num: Tensor, den: Tensor) -> Tensor:
    """num / den with 0 where den == 0 (scikit-learn's zero_division=0)."""
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


def _class_last(x: Tensor, channels: int) -> Tensor:
    """(N, C, *) -> (N * prod(*), C)."""
    return x.movedim(1, -1).reshape(-1, channels)


def _first_max(scores: Tensor) -> Optional[Tensor]:
    """``scores.max(dim=1).indices`` (the first maximum along dim 1, as argmax), bit for bit, where that is fast
    to find another way; None where it is not (the caller then takes ``max(dim=1)``): off the CPU, a class
    dimension that is innermost (``max`` is fast there), more than 255 classes, no elements, or a NaN maximum
    (``max`` returns the first NaN's position).

    On CPU, over a strided class dimension (NCHW scores), torch's ``max(dim=1)``
    walks each pixel's classes one scalar at a time (~10 ms for 8 x 19 x 128 x 256
    float32 on two cores), while ``amax`` and elementwise ops are vectorised
    across pixels. So the maximum comes from ``amax``, and each score gets the
    rank c where it equals its pixel's maximum, c + K elsewhere (``!=`` written
    in the scores' dtype: a bool output is not vectorised); the smallest rank is
    the first maximum (~3 ms in all). Equal zeros of either sign are ties, as in
    ``max``; ranks below 256 are exact in every floating dtype, and those of K or
    more (rounded in bfloat16 to 256 or more) stay above every class. Eight
    OpenMP parallel regions (``max(dim=1)`` and its NaN check: three); with
    libgomp's default spin-waiting each region can wait a scheduler slice (~8 ms)
    while another process holds a core, so under such contention this path is
    the slower one.
    """
    K = scores.shape[1]
    if scores.device.type != "cpu" or scores.dim() < 3 or scores.stride(1) == 1 or not 1 < K < 256 or not scores.numel():
        return None
    values = scores.amax(1, keepdim=True)
    if bool(torch.isnan(values.amax())):  # amax propagates NaN
        return None
    away = torch.ne(scores, values, out=torch.empty_like(scores))  # 0 at a maximum, 1 elsewhere
    classes = torch.arange(K, dtype=scores.dtype).view((1, K) + (1,) * (scores.dim() - 2))
    return torch.add(classes, away, alpha=K, out=away).amin(1).long()  # ranks c + K * away


class ConfusionMixin:
    """Input handling, confusion-matrix counting and the metrics of a matrix (a base of ``ClassificationMetrics``)."""

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
        # the first maximum, like argmax: _first_max where it is fast (it has checked for
        # NaN), else max(dim).indices (several times faster than argmax over NCHW)
        fast = _first_max(preds)
        if fast is not None:
            return fast
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

    def _count(self, target: Tensor, labels: Tensor, ignored: Optional[Tensor]) -> None:
        K = self.num_classes
        pairs = torch.add(labels, target, alpha=K)  # target * K + labels in one pass
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

    # -- metrics of a confusion matrix ---------------------------------------------------
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
