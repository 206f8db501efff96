"""Look at the examples: image grids of the most confident mistakes and of the most novel inputs."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from .._optional import require
from .._validate import as_tensor
from ..metrics._plots import _figure, _finish
from ._confident_joint import _confident_joint, _confident_thresholds
from ._inputs import check_labels_and_probs
from .label_issues import rank_mistakes

__all__ = ["plot_mistakes", "plot_novel"]

#: Tiles per row of a grid (fewer when there are fewer tiles).
GRID_COLUMNS = 8
#: Inches per tile (width, height); the height leaves room for the title and the index.
TILE_SIZE = (1.9, 2.1)
#: Keys tried, in order, when a Dataset item is a dict.
_IMAGE_KEYS = ("image", "img", "pixel_values", "input")


def _num_images(images: Any) -> int:
    if isinstance(images, (Tensor, np.ndarray)):
        if images.ndim not in (3, 4):
            raise ValueError(
                f"images must be a (N, C, H, W) or (N, H, W) tensor/array, a sequence of (C, H, W) images or a Dataset, "
                f"got a {images.ndim}-d array of shape {tuple(images.shape)}"
            )
        return int(images.shape[0])
    if isinstance(images, (str, bytes)) or not (hasattr(images, "__len__") and hasattr(images, "__getitem__")):
        raise TypeError(
            f"images must be a (N, C, H, W) tensor/array, a sequence of (C, H, W) images or a map-style Dataset "
            f"(with __len__ and __getitem__), got {type(images).__name__}"
        )
    return len(images)


def _check_count(images: Any, expected: int, other: str, caller: str = "audit", name: str = "images") -> None:
    _validate.refuse_meta(images, name, caller)  # before any image is read
    count = _num_images(images)
    if count != expected:
        raise ValueError(f"images has {count} entries but {other} has {expected}: pass one image per sample, in the same order")


def _item(images: Any, i: int) -> Any:
    """Image ``i``; a Dataset item ``(image, label, ...)`` or ``{"image": ...}`` gives its image."""
    item = images[i]
    if isinstance(item, (tuple, list)) and not isinstance(images, (Tensor, np.ndarray)):
        if not item:
            raise ValueError(f"images[{i}] is an empty {type(item).__name__}: expected an image or (image, label)")
        item = item[0]
    elif isinstance(item, dict):
        key = next((k for k in _IMAGE_KEYS if k in item), None)
        if key is None:
            raise ValueError(f"images[{i}] is a dict without an image key (tried {', '.join(_IMAGE_KEYS)}; keys: {list(item)})")
        item = item[key]
    return item


def _pixels(image: Any, i: int) -> np.ndarray:
    """``image`` as an (H, W) or (H, W, C) array for imshow: uint8, or float in [0, 1].

    Float images outside [0, 1] (e.g. normalised with a mean and std) are
    stretched to [0, 1] per image, so that they stay visible.
    """
    channels_last = type(image).__module__.startswith("PIL")  # a PIL image (a torchvision Dataset without transform)
    if channels_last:
        a = np.asarray(image)
    else:
        a = as_tensor(image, f"images[{i}]").detach().cpu()
        if a.dtype in (torch.float16, torch.bfloat16):
            a = a.float()
        a = a.numpy()
    given = tuple(a.shape)
    if a.ndim == 3 and not channels_last:
        if a.shape[0] not in (1, 3, 4):
            raise ValueError(f"images[{i}] must be (C, H, W) with C in (1, 3, 4), got shape {tuple(a.shape)}")
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"images[{i}] must be (C, H, W) with C in (1, 3, 4) or (H, W), got shape {tuple(a.shape)}")
    if a.size == 0:  # min/max below and imshow have nothing to show
        raise ValueError(f"images[{i}] is empty: shape {given} has no pixels")
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if a.dtype.kind in "iu":
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError(
                f"images[{i}] holds integers outside [0, 255] (min {a.min()}, max {a.max()}): pass uint8 or float images"
            )
        return a.astype(np.uint8)
    if a.dtype.kind != "f":
        raise TypeError(f"images[{i}] must be uint8 or floating, got dtype {a.dtype}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"images[{i}] holds non-finite values (NaN or inf)")
    low, high = float(a.min()), float(a.max())
    if low < 0 or high > 1:
        a = (a - low) / (high - low) if high > low else np.zeros_like(a)
    return a


def _check_fig(fig: Any, caller: str):
    """``fig`` when it is an empty matplotlib Figure or SubFigure, else a TypeError / ValueError naming ``fig``."""
    base = require("matplotlib.figure", "plotting", "plots").FigureBase
    if not isinstance(fig, base):
        raise TypeError(
            f"{caller}: fig must be a matplotlib Figure or SubFigure (e.g. plt.figure() or fig.subfigures(1, 2)[0]), "
            f"got {type(fig).__name__}: {_validate._show(fig)}"
        )
    if fig.axes or getattr(fig, "subfigs", None):
        raise ValueError(
            f"{caller}: fig must be empty (the grid fills it), got one with {len(fig.axes)} Axes and "
            f"{len(getattr(fig, 'subfigs', []))} subfigures: pass a new figure, or a SubFigure (fig.subfigures()) "
            f"to put the grid beside other plots"
        )
    return fig


def _grid(images: Any, indices: Sequence[int], titles: Sequence[str], suptitle: str, path: Optional[str], fig: Any = None):
    """One tile per index, titled; the sample's index under the tile; into ``fig`` (checked by the caller) when given."""
    k = len(indices)
    cols = max(1, min(GRID_COLUMNS, k))
    rows = max(1, math.ceil(k / cols))
    own = fig is None
    if own:
        fig = _figure((TILE_SIZE[0] * cols, TILE_SIZE[1] * rows + 0.4))
    if k == 0:
        fig.text(0.5, 0.5, suptitle, ha="center", va="center")
        return _done(fig, path, own)
    for t, (i, title) in enumerate(zip(indices, titles)):
        a = _pixels(_item(images, int(i)), int(i))
        ax = fig.add_subplot(rows, cols, t + 1)
        gray = a.ndim == 2
        vmax = 255 if a.dtype == np.uint8 else 1.0
        ax.imshow(
            a, cmap="gray" if gray else None, vmin=0 if gray else None, vmax=vmax if gray else None, interpolation="nearest"
        )
        ax.set_title(title, fontsize=8)
        ax.set_xlabel(f"#{int(i)}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(suptitle, fontsize=10)
    return _done(fig, path, own)


def _done(fig: Any, path: Optional[str], own: bool):
    """Lay out, save and return (the top-level Figure) as ``_finish``.

    The grid fills a caller's figure (``fig=``) too: an empty top-level Figure
    without a layout engine is laid out as ours (``tight_layout``); a
    SubFigure or a figure with an engine (``layout="constrained"``) keeps its
    parent's or its own. A caller's figure is saved with its own settings.
    """
    if not own and fig.figure is fig and fig.get_layout_engine() is None:
        fig.tight_layout()
    return _finish(fig, path, own)


def plot_mistakes(
    images: Any,
    labels: Any,
    pred_probs: Any,
    class_names: Optional[Sequence[str]] = None,
    n: int = 32,
    path: Optional[str] = None,
    *,
    fig: Any = None,
):
    """A grid of the ``n`` most confident mistakes, in :func:`rank_mistakes` order.

    Each tile is titled ``target → prediction (confidence)`` (class names when
    given, else ids) with the sample's index under it: the samples to look at
    first when hunting for wrong labels.

    The grid is one Axes per tile, as many as there are mistakes to show (up
    to ``n``), so it takes a figure to fill (``fig=``) rather than an Axes:
    an empty Figure, or a SubFigure to put the grid beside other plots. By
    default a new Figure that pyplot does not track (see
    :class:`~balancedtorch.metrics.ClassificationMetrics` for why); to have
    pyplot show the grid (a notebook, sphinx-gallery, ``plt.show()``) pass
    ``fig=plt.figure(figsize=...)``.

    Args:
        images (Tensor[N, C, H, W] | Tensor[N, H, W] | array | sequence | Dataset):
            one image per sample, in the order of ``labels``: a tensor or
            numpy array, a sequence of (C, H, W) images, or a map-style Dataset
            whose items are images, ``(image, label, ...)`` tuples or dicts
            with an ``"image"`` key (PIL images are read as (H, W, C)). Only
            the ``n`` shown images are read. uint8 images are shown as they
            are; float images in [0, 1] too, others (e.g. normalised) are
            stretched to [0, 1] per image. C is 1 (grey), 3 (RGB) or 4 (RGBA).
        labels (Tensor[N] | array | sequence): given labels in [0, K).
        pred_probs (Tensor[N, K] | array): predicted probabilities (rows sum to 1).
        class_names (sequence of K str, optional): tile titles use these
            instead of class ids (default None).
        n (int): tiles at most (default 32); fewer when there are fewer mistakes.
        path (str, optional): also save the figure there (e.g. a PNG); with
            ``fig``, the whole top-level figure, with its own settings.
        fig (matplotlib.figure.Figure | SubFigure, optional): an empty figure
            to draw the grid into (default None: a new Figure). Its size is
            left as it is (a new Figure is 1.9 x 2.1 inches per tile, 8
            tiles a row); a top-level Figure without a layout engine is laid
            out with ``tight_layout``, one with an engine
            (``layout="constrained"``) or a SubFigure keeps it.

    Returns:
        matplotlib.figure.Figure: one axes per tile (``fig.axes``, in rank
        order); with ``fig``, the top-level figure that holds it, else a new
        one not registered with pyplot (nothing leaks into its global state).
        With no mistakes, a figure saying so and no axes.

    Raises:
        ValueError: as :func:`rank_mistakes`; ``images`` whose count differs
            from ``labels``; ``n`` not an int >= 1; an image of another shape,
            without pixels, with NaN/inf, or integers outside [0, 255];
            ``fig`` that already holds Axes or subfigures.
        TypeError: ``images`` of an unsupported type; ``fig`` not a
            matplotlib Figure or SubFigure.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> g = torch.Generator().manual_seed(0)
        >>> val_labels = torch.randint(0, 3, (40,), generator=g)
        >>> probs = torch.randn(40, 3, generator=g).softmax(1)
        >>> val_images = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8, generator=g)
        >>> fig = bt.quality.plot_mistakes(val_images, val_labels, probs, class_names=["a", "b", "c"], n=16)
        >>> len(fig.axes)  # path="mistakes.png" saves it too (needs matplotlib)
        16

        Beside other plots, in a pyplot figure:

        >>> import matplotlib.pyplot as plt
        >>> fig = plt.figure(figsize=(16, 6), layout="constrained")
        >>> left, right = fig.subfigures(1, 2, width_ratios=[1, 3])
        >>> _ = left.subplots().bar(["a", "b", "c"], val_labels.bincount().tolist())
        >>> bt.quality.plot_mistakes(val_images, val_labels, probs, n=8, fig=right) is fig
        True
        >>> len(right.axes)
        8
        >>> plt.close(fig)
    """
    n = _validate.integer(n, "n", low=1)  # tiles in the grid
    if fig is not None:
        _check_fig(fig, "plot_mistakes")
    ranked = rank_mistakes(labels, pred_probs, class_names, distributed=False)  # a picture of these rows: no collective
    _check_count(images, ranked.num_samples, "labels", "plot_mistakes")
    shown = ranked._rows(n)
    titles = [f"{r.target} → {r.prediction} ({r.confidence:.2f})" for r in shown]
    total = ranked.num_rows
    if total == 0:
        what = f"no mistakes: every prediction equals its label ({ranked.num_samples} samples)"
    else:
        what = f"{len(shown)} most confident of {total} mistakes in {ranked.num_samples} samples (target → prediction)"
    return _grid(images, [r.index for r in shown], titles, what, path, fig)


def plot_novel(images: Any, scores: Any, n: int = 32, path: Optional[str] = None, *, fig: Any = None):
    """A grid of the ``n`` most novel inputs: highest ``scores`` first (ties by index).

    A grid of one Axes per tile, drawn into a new Figure or, with ``fig=``,
    into a figure of yours, as :func:`plot_mistakes`.

    Args:
        images: one image per score, as in :func:`plot_mistakes`.
        scores (Tensor[N] | array | sequence): novelty scores, larger = more
            novel, e.g. ``NoveltyDetector.score(features)``.
        n (int): tiles at most (default 32).
        path (str, optional): also save the figure there (e.g. a PNG); with
            ``fig``, the whole top-level figure, with its own settings.
        fig (matplotlib.figure.Figure | SubFigure, optional): an empty figure
            to draw the grid into, as in :func:`plot_mistakes` (default None:
            a new Figure).

    Returns:
        matplotlib.figure.Figure: one axes per tile, most novel first, titled
        ``score <value>`` with the sample's index under it; with ``fig``, the
        top-level figure that holds it, else a new one not registered with
        pyplot.

    Raises:
        ValueError: ``scores`` not 1-D, empty or not finite; ``images`` whose
            count differs from ``scores``; ``n`` not an int >= 1; bad images
            as in :func:`plot_mistakes`; ``fig`` not empty.
        TypeError: ``fig`` not a matplotlib Figure or SubFigure.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> g, e = torch.Generator().manual_seed(0), torch.eye(8)
        >>> train_feats = torch.randn(500, 8, generator=g) + 4 * e[0]
        >>> val_feats = torch.randn(200, 8, generator=g) + 4 * e[0]   # held out, in distribution
        >>> prod_feats = torch.cat([torch.randn(50, 8, generator=g) + 4 * e[0],   # as in training
        ...                         torch.randn(50, 8, generator=g) + 4 * e[1]])  # a new situation
        >>> prod_images = torch.randint(0, 256, (100, 1, 16, 16), dtype=torch.uint8, generator=g)
        >>> detector = bt.quality.NoveltyDetector(k=5).fit(train_feats)
        >>> fig = bt.quality.plot_novel(prod_images, detector.score(prod_feats), n=16)  # path="novel.png" saves it
        >>> len(fig.axes)
        16
    """
    n = _validate.integer(n, "n", low=1)  # tiles in the grid
    if fig is not None:
        _check_fig(fig, "plot_novel")
    s = as_tensor(scores, "scores").detach()
    if s.dim() != 1 or s.numel() == 0:
        raise ValueError(f"scores must be a non-empty 1-D tensor/array (one score per image), got shape {tuple(s.shape)}")
    if s.dtype == torch.bool or s.is_complex():
        raise ValueError(f"scores must be real numbers, got dtype {s.dtype}")
    s = s.double().cpu()
    finite = torch.isfinite(s)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0])
        raise ValueError(f"scores must be finite, got scores[{i}] = {s[i].item()}")
    _check_count(images, s.numel(), "scores", "plot_novel")
    order = torch.argsort(-s, stable=True)[:n].tolist()
    titles = [f"score {s[i].item():.4g}" for i in order]
    return _grid(images, order, titles, f"{len(order)} most novel of {s.numel()} inputs (highest score first)", path, fig)


def _estimated_noise_rate(labels: Any, pred_probs: Any) -> float:
    """Share of labels estimated wrong: the off-diagonal mass of the calibrated confident joint.

    ``1 - trace(cleanlab.count.estimate_joint(labels, pred_probs))``; the
    label-noise rate printed by ``balancedtorch inspect-predictions``.
    """
    y, p = check_labels_and_probs(labels, pred_probs)
    counts = torch.bincount(y, minlength=p.shape[1])
    joint, _ = _confident_joint(y, p, counts, _confident_thresholds(y, p, counts.tolist()))  # find_label_issues' joint
    total = float(joint.sum())
    return float((total - np.trace(joint)) / total) if total > 0 else 0.0
