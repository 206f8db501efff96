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


def _finish(fig, path: Optional[str], own: bool = True):
    """Lay out a figure of ours (``own``), save it to ``path`` when given, and return the top-level Figure.

    A figure the caller passed (through ``ax=`` or ``fig=``) keeps its layout
    and its savefig settings: it may hold other plots, or use a layout engine
    (``layout="constrained"``) that ``tight_layout`` would replace.
    """
    root = fig.figure  # a SubFigure's top-level Figure; a Figure's is itself
    if own:
        fig.tight_layout()
    if path is not None:
        if own:
            root.savefig(path, dpi=100)
        else:
            root.savefig(path)
    return root


def _check_axes(ax: Any, caller: str):
    """``ax`` when it is a matplotlib Axes, else a TypeError naming ``ax``."""
    axes_type = require("matplotlib.axes", "plotting", "plots").Axes
    if not isinstance(ax, axes_type):
        raise TypeError(
            f"{caller}: ax must be a matplotlib.axes.Axes (e.g. from plt.subplots()), got {type(ax).__name__}: "
            f"{_validate._show(ax)}"
        )
    if getattr(ax, "name", "rectilinear") == "3d":  # its text() and bar() take other arguments
        raise TypeError(f"{caller}: ax must be a 2-D matplotlib Axes, got a 3-D one ({type(ax).__name__})")
    return ax


def _axes_list(ax: Any, count: int, caller: str) -> list:
    """``ax`` as ``count`` distinct Axes of one figure (a sequence or array of any shape, as plt.subplots gives)."""
    axes_type = require("matplotlib.axes", "plotting", "plots").Axes
    if isinstance(ax, axes_type):
        raise ValueError(
            f"{caller}: a multilabel confusion matrix is one 2 x 2 matrix per label: ax must be a sequence of "
            f"{count} Axes (e.g. plt.subplots(1, {count})[1]), got one Axes"
        )
    if isinstance(ax, (str, bytes, dict)) or not isinstance(ax, (list, tuple, np.ndarray)):
        raise TypeError(
            f"{caller}: ax must be a sequence of {count} matplotlib Axes (one per label), got {type(ax).__name__}: "
            f"{_validate._show(ax)}"
        )
    flat = list(np.asarray(ax, dtype=object).reshape(-1))
    for i, a in enumerate(flat):
        if not isinstance(a, axes_type):
            raise TypeError(f"{caller}: ax must hold matplotlib Axes only, got ax[{i}] = {_validate._show(a)}")
    if len(flat) != count:
        raise ValueError(f"{caller}: ax must hold {count} Axes (one per label), got {len(flat)}")
    if len({id(a) for a in flat}) != count:
        raise ValueError(f"{caller}: ax must hold {count} distinct Axes (one per label), got the same Axes twice")
    if len({id(a.figure.figure) for a in flat}) != 1:
        raise ValueError(f"{caller}: the Axes of ax must belong to one figure")
    return flat


def _canvas(ax: Any, figsize: Tuple[float, float], caller: str):
    """(figure, axes, own): a new untracked Figure with one Axes when ``ax`` is None, else ``ax`` (checked) and its figure."""
    if ax is None:
        fig = _figure(figsize)
        return fig, fig.subplots(), True
    ax = _check_axes(ax, caller)
    return ax.figure, ax, False


class PlotMixin:
    """Figures of the reduced (or local) state (a base of ``ClassificationMetrics``).

    Every ``plot_*`` method draws either into a new Figure or, with ``ax=``,
    into an Axes of yours (scikit-learn's ``ConfusionMatrixDisplay.plot(ax=)``
    convention), and returns the Figure. The new Figure is a plain
    ``matplotlib.figure.Figure`` that pyplot does not track, on purpose: a
    training loop that logs a figure every epoch (``SummaryWriter.add_figure``,
    ``wandb.Image``) accumulates nothing (no "more than 20 figures" warning,
    no memory to free with ``plt.close``), a worker or logging thread touches
    no pyplot global state (pyplot is not thread-safe), and a headless server
    needs no backend (it draws with Agg whatever ``MPLBACKEND`` says). To have
    pyplot show the plot (a notebook, sphinx-gallery, ``plt.show()``), or to
    place it among other plots, draw into a pyplot Axes:
    ``fig, ax = plt.subplots(); metrics.plot_confusion_matrix(ax=ax)``.
    """

    # -- plots ------------------------------------------------------------------
    def plot_confusion_matrix(
        self,
        path: Optional[str] = None,
        normalize: Optional[str] = None,
        distributed: Optional[bool] = None,
        *,
        sync: Any = UNSET,
        ax: Any = None,
    ):
        """Plot the confusion matrix (multilabel: one 2 x 2 matrix per label).

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report` (by default the matrix reduced by the last
        :meth:`compute`; ``distributed=False``: this rank's own).

        Args:
            path (str, optional): where to save the image (format from the
                extension, e.g. PNG); default None: not saved. With ``ax``,
                the whole figure that holds ``ax`` is saved, with its own
                settings (dpi, layout).
            normalize (str, optional): None (counts), ``"true"`` (rows),
                ``"pred"`` (columns) or ``"all"``.
            distributed (bool or None): all ranks (default None: when a process group runs) or, with False, this rank's own samples; ``sync=`` is its deprecated name.
            ax (matplotlib.axes.Axes, optional): draw into this Axes (with
                its colorbar beside it) instead of a new Figure; its figure's
                layout is left as it is (``layout="constrained"`` keeps the
                tick labels inside). Multilabel: a sequence or array of
                ``num_classes`` Axes, one matrix each, titled by label (the
                figure title that a new Figure gets is left to you).
                Default None: a new Figure.

        Returns:
            matplotlib.figure.Figure: with ``ax``, the (top-level) figure that
            holds it; else a new one that pyplot does not track (nothing to
            close; see the class notes); e.g. ``SummaryWriter.add_figure`` or
            ``wandb.Image`` take it.

        Raises:
            ValueError: ``normalize`` not one of the above; multilabel ``ax``
                not ``num_classes`` distinct Axes of one figure.
            TypeError: ``ax`` not a matplotlib Axes (multilabel: not a
                sequence of them).

        Example:
            >>> import matplotlib.pyplot as plt
            >>> import torch
            >>> import balancedtorch as bt
            >>> metrics = bt.metrics.ClassificationMetrics(3, class_names=["cat", "dog", "fox"])
            >>> metrics.update(torch.tensor([0, 1, 1, 2, 0, 2]), torch.tensor([0, 1, 2, 2, 0, 1]))
            >>> fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
            >>> metrics.plot_confusion_matrix(ax=left) is fig
            True
            >>> _ = metrics.plot_confusion_matrix(normalize="true", ax=right)
            >>> right.get_title()
            'confusion matrix (normalised by true)'
            >>> plt.close(fig)
        """
        caller = "ClassificationMetrics.plot_confusion_matrix"
        normalize = _validate.choice(normalize, "normalize", (None, "true", "pred", "all"), caller=caller)
        cm = self._confmat_for("plot_confusion_matrix", cross_rank(caller, distributed, sync)).double().cpu()
        if ax is None:
            given = None
        else:  # multilabel (a 2 x 2 matrix per label): one Axes per label
            given = _axes_list(ax, self.num_classes, caller) if cm.dim() == 3 else _check_axes(ax, caller)
        names = self._names()
        if cm.dim() == 3:
            if given is None:
                cols = min(self.num_classes, 5)
                rows = (self.num_classes + cols - 1) // cols
                fig = _figure((2.6 * cols, 2.6 * rows))
                axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(-1)
                for unused in axes[self.num_classes :]:
                    unused.set_axis_off()
            else:
                fig, axes = given[0].figure, given
            for k in range(self.num_classes):
                self._draw_matrix(axes[k], self._normalized(cm[k], normalize), ["0", "1"], normalize, colorbar=None)
                axes[k].set_title(names[k], fontsize=9)
            if given is None:
                fig.suptitle("per-label confusion matrices" + (f" (normalised by {normalize})" if normalize else ""))
            return _finish(fig, path, own=given is None)
        size = max(4.0, 0.5 * self.num_classes + 2)
        fig, ax, own = _canvas(given, (size, size), caller)
        self._draw_matrix(ax, self._normalized(cm, normalize), names, normalize, colorbar=ax.figure)
        ax.set_title("confusion matrix" + (f" (normalised by {normalize})" if normalize else ""))
        return _finish(fig, path, own)

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

    def plot_per_class(
        self, path: Optional[str] = None, distributed: Optional[bool] = None, *, sync: Any = UNSET, ax: Any = None
    ):
        """Plot per-class precision, recall, F1 and IoU as grouped bars.

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report` (by default the matrix reduced by the last
        :meth:`compute`; ``distributed=False``: this rank's own).

        Args:
            path (str, optional): where to save the image; default None: not
                saved. With ``ax``, the whole figure that holds ``ax`` is
                saved, with its own settings.
            distributed (bool or None): all ranks (default None: when a process group runs) or, with False, this rank's own samples; ``sync=`` is its deprecated name.
            ax (matplotlib.axes.Axes, optional): draw into this Axes instead
                of a new Figure (its figure's layout is left as it is).
                Default None: a new Figure.

        Returns:
            matplotlib.figure.Figure: with ``ax``, the (top-level) figure that
            holds it; else a new one that pyplot does not track (see the
            class notes).

        Raises:
            TypeError: ``ax`` not a matplotlib Axes.

        Example:
            >>> import matplotlib.pyplot as plt
            >>> import torch
            >>> import balancedtorch as bt
            >>> metrics = bt.metrics.ClassificationMetrics(3)
            >>> metrics.update(torch.tensor([0, 1, 1, 2, 0, 2]), torch.tensor([0, 1, 2, 2, 0, 1]))
            >>> fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
            >>> metrics.plot_per_class(ax=ax) is fig
            True
            >>> len(ax.patches)  # 4 bars (precision, recall, F1, IoU) per class
            12
            >>> plt.close(fig)
        """
        caller = "ClassificationMetrics.plot_per_class"
        cross = cross_rank(caller, distributed, sync)
        if ax is not None:
            _check_axes(ax, caller)
        r = self._metrics(self._confmat_for("plot_per_class", cross))
        names = self._names()
        fig, ax, own = _canvas(ax, (max(6.0, 0.6 * self.num_classes + 2), 4), caller)
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
        return _finish(fig, path, own)

    def _plot_curves(self, kind: str, path: Optional[str], cross: bool, ax: Any):
        caller = "plot_pr_curves" if kind == "pr" else "plot_roc_curves"
        if ax is not None:
            _check_axes(ax, f"ClassificationMetrics.{caller}")
        curve = self._curve_state_for(caller, cross)
        curves = self._curves_of(curve, kind)
        ranking = self._ranking(curve)
        names = self._names()
        binary = self._task == "binary"
        fig, ax, own = _canvas(ax, (6.0, 5.0), f"ClassificationMetrics.{caller}")
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
        return _finish(fig, path, own)

    def plot_pr_curves(
        self, path: Optional[str] = None, distributed: Optional[bool] = None, *, sync: Any = UNSET, ax: Any = None
    ):
        """Plot the per-class precision-recall curves (classes without positives left out), AP in the legend.

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report`. Needs ``curves=True``.

        Args:
            path (str, optional): where to save the image; default None: not
                saved. With ``ax``, the whole figure that holds ``ax`` is
                saved, with its own settings.
            distributed (bool or None): all ranks (default None: when a process group runs) or, with False, this rank's own samples; ``sync=`` is its deprecated name.
            ax (matplotlib.axes.Axes, optional): draw into this Axes instead
                of a new Figure (its figure's layout is left as it is).
                Default None: a new Figure.

        Returns:
            matplotlib.figure.Figure: with ``ax``, the (top-level) figure that
            holds it; else a new one that pyplot does not track (see the
            class notes).

        Raises:
            RuntimeError: made without ``curves=True``.
            TypeError: ``ax`` not a matplotlib Axes.

        Example:
            >>> import matplotlib.pyplot as plt
            >>> import torch
            >>> import balancedtorch as bt
            >>> metrics = bt.metrics.ClassificationMetrics(task="binary", curves=True)
            >>> metrics.update(torch.tensor([0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.9, 0.05]), torch.tensor([0, 0, 1, 1, 1, 0, 1, 0]))
            >>> fig, (pr, roc) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
            >>> metrics.plot_pr_curves(ax=pr) is metrics.plot_roc_curves(ax=roc) is fig
            True
            >>> pr.get_title()
            'precision-recall of 1 (AP 0.950)'
            >>> plt.close(fig)
        """
        return self._plot_curves("pr", path, cross_rank("ClassificationMetrics.plot_pr_curves", distributed, sync), ax)

    def plot_roc_curves(
        self, path: Optional[str] = None, distributed: Optional[bool] = None, *, sync: Any = UNSET, ax: Any = None
    ):
        """Plot the per-class ROC curves (classes without positives or negatives left out), AUC in the legend.

        Not collective; under ``torch.distributed`` it follows the rule of
        :meth:`report`. Needs ``curves=True``.

        Args:
            path (str, optional): where to save the image; default None: not
                saved. With ``ax``, the whole figure that holds ``ax`` is
                saved, with its own settings.
            distributed (bool or None): all ranks (default None: when a process group runs) or, with False, this rank's own samples; ``sync=`` is its deprecated name.
            ax (matplotlib.axes.Axes, optional): draw into this Axes instead
                of a new Figure (its figure's layout is left as it is).
                Default None: a new Figure.

        Returns:
            matplotlib.figure.Figure: with ``ax``, the (top-level) figure that
            holds it; else a new one that pyplot does not track (see the
            class notes).

        Raises:
            RuntimeError: made without ``curves=True``.
            TypeError: ``ax`` not a matplotlib Axes.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> from matplotlib.figure import Figure
            >>> metrics = bt.metrics.ClassificationMetrics(task="binary", curves=True)
            >>> metrics.update(torch.tensor([0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.9, 0.05]), torch.tensor([0, 0, 1, 1, 1, 0, 1, 0]))
            >>> fig = Figure(figsize=(5, 4), layout="constrained")  # any figure: pyplot's or, as here, a bare one
            >>> ax = fig.add_subplot()
            >>> metrics.plot_roc_curves(ax=ax) is fig  # path="roc.png" would save fig
            True
            >>> ax.get_title()
            'ROC of 1 (AUC 0.938)'
        """
        return self._plot_curves("roc", path, cross_rank("ClassificationMetrics.plot_roc_curves", distributed, sync), ax)
