"""``ClassificationMetrics.report``: the table in the layout of scikit-learn's ``classification_report``."""

from __future__ import annotations

from typing import Any, Optional

import torch

from .. import _validate
from .._distributed import cross_rank
from .._validate import UNSET

__all__: list = []


class ReportMixin:
    """``report`` and the class names it and the plots show (a base of ``ClassificationMetrics``)."""

    def _names(self):
        return self.class_names or [str(k) for k in range(self.num_classes)]

    def report(self, digits: int = 2, distributed: Optional[bool] = None, *, sync: Any = UNSET) -> str:
        """A table in the layout of sklearn's ``classification_report``, plus specificity and IoU.

        With ``curves=True`` two more columns: average precision and ROC AUC
        (``nan`` where undefined; averages over the defined classes).

        Not collective: safe on one rank alone. Under ``torch.distributed``
        (``distributed=None``, the default) it shows the numbers of all ranks as
        reduced by the last :meth:`compute`, which must have run on every
        rank after the last ``update``/``reset`` (``RuntimeError`` otherwise);
        ``distributed=False`` shows this rank's own samples.

        Args:
            digits (int): decimals of the ratios (default 2).
            distributed (bool or None): the numbers of all ranks (default
                None: when a process group runs) or, with False, of this rank;
                ``sync=`` is its deprecated name.

        Returns:
            str: the table, one line per class.
        """
        digits = _validate.integer(digits, "digits", low=0, caller="ClassificationMetrics.report")
        cm, curve = self._state_for("report", cross_rank("ClassificationMetrics.report", distributed, sync))
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
