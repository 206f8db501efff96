"""The ``plot_*`` methods of :class:`ClassificationMetrics`: confusion matrix, per-class bars, PR and ROC curves (matplotlib)."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import numpy as np
from torch import Tensor

from .. import _validate
from .._distributed import cross_rank
from .._optional import require
from .._validate import UNSET
from ._confusion import _div

__all__: list = []


def _figure(figsize: Tuple[float, float]):
    """A matplotlib Figure that pyplot does not track (nothing leaks into its global state)."""
    return require("matplotlib.figure", "plotting", "plots").Figure(figsize=figsize)


def _finish(fig, path: Optional[str]):
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


class PlotMixin:
    """Figures of the reduced (or local) state; matplotlib Figures that pyplot does not track (a base of ``ClassificationMetrics``)."""

    # -- plots ------------------------------------------------------------------
    def plot_confusion_matrix(
        self,
        path: Optional[str] = None,
        normalize: Optional[str] = None,
        distributed: Optional[bool] = None,
        *,
        sync: Any = UNSET,
    ):
        """Plot the confusion matrix (multilabel: one 2 x 2 matrix per label).

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report` (by default the matrix reduced by the last
        :meth:`compute`; ``distributed=False``: this rank's own).

        Args:
            path (str, optional): where to save the image (format from the
                extension, e.g. PNG); default None: not saved.
            normalize (str, optional): None (counts), ``"true"`` (rows),
                ``"pred"`` (columns) or ``"all"``.
            distributed (bool or None): all ranks (default None: when a process group runs) or, with False, this rank's own samples; ``sync=`` is its deprecated name.

        Returns:
            matplotlib.figure.Figure: not registered with pyplot (nothing to
            close); e.g. ``SummaryWriter.add_figure`` or ``wandb.Image`` take it.
        """
        normalize = _validate.choice(
            normalize, "normalize", (None, "true", "pred", "all"), caller="ClassificationMetrics.plot_confusion_matrix"
        )
        cm = (
            self._confmat_for(
                "plot_confusion_matrix", cross_rank("ClassificationMetrics.plot_confusion_matrix", distributed, sync)
            )
            .double()
            .cpu()
        )
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

    def plot_per_class(self, path: Optional[str] = None, distributed: Optional[bool] = None, *, sync: Any = UNSET):
        """Plot per-class precision, recall, F1 and IoU as grouped bars.

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report` (by default the matrix reduced by the last
        :meth:`compute`; ``distributed=False``: this rank's own).

        Args:
            path (str, optional): where to save the image; default None: not saved.
            distributed (bool or None): all ranks (default None: when a process group runs) or, with False, this rank's own samples; ``sync=`` is its deprecated name.

        Returns:
            matplotlib.figure.Figure: not registered with pyplot.
        """
        r = self._metrics(
            self._confmat_for("plot_per_class", cross_rank("ClassificationMetrics.plot_per_class", distributed, sync))
        )
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

    def _plot_curves(self, kind: str, path: Optional[str], cross: bool):
        caller = "plot_pr_curves" if kind == "pr" else "plot_roc_curves"
        curve = self._curve_state_for(caller, cross)
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

    def plot_pr_curves(self, path: Optional[str] = None, distributed: Optional[bool] = None, *, sync: Any = UNSET):
        """Plot the per-class precision-recall curves (classes without positives left out), AP in the legend.

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report`. Needs ``curves=True``.

        Args:
            path (str, optional): where to save the image; default None: not saved.
            distributed (bool or None): all ranks (default None: when a process group runs) or, with False, this rank's own samples; ``sync=`` is its deprecated name.

        Returns:
            matplotlib.figure.Figure: not registered with pyplot.
        """
        return self._plot_curves("pr", path, cross_rank("ClassificationMetrics.plot_pr_curves", distributed, sync))

    def plot_roc_curves(self, path: Optional[str] = None, distributed: Optional[bool] = None, *, sync: Any = UNSET):
        """Plot the per-class ROC curves (classes without positives or negatives left out), AUC in the legend.

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report`. Needs ``curves=True``.

        Args:
            path (str, optional): where to save the image; default None: not saved.
            distributed (bool or None): all ranks (default None: when a process group runs) or, with False, this rank's own samples; ``sync=`` is its deprecated name.

        Returns:
            matplotlib.figure.Figure: not registered with pyplot.
        """
        return self._plot_curves("roc", path, cross_rank("ClassificationMetrics.plot_roc_curves", distributed, sync))
