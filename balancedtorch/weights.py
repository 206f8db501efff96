"""Per-class loss weights from labels or class counts."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from . import _validate
from ._labels import MAX_INFERRED_CLASSES, check_labels, describe_one_hot, infer_num_classes
from ._validate import refuse_meta
from .ops.class_counts import class_counts

__all__ = ["class_weights", "SCHEMES", "NORMALIZATIONS"]

SCHEMES = ("inverse", "sqrt_inverse", "effective_number", "median_frequency")
NORMALIZATIONS = ("mean", "sum", None)


def _as_count_tensor(counts: Any) -> Tensor:
    if isinstance(counts, Tensor):
        tensor = counts.detach()
    else:
        array = np.asarray(counts)
        if array.dtype.kind not in "iuf":
            raise ValueError(f"class_weights: counts must be numbers, got an array of dtype {array.dtype}")
        tensor = torch.from_numpy(np.array(array, dtype=np.float64))  # a copy: a read-only array (pandas) makes torch warn
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"class_weights: counts must be real numbers, got dtype {tensor.dtype}")
    if tensor.dim() != 1:
        raise ValueError(f"class_weights: counts must be 1-D (one count per class), got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ValueError("class_weights: counts is empty")
    return _validate.finite_nonnegative(tensor.to(torch.float64), "counts", caller="class_weights")


def class_weights(
    labels: Any = None,
    counts: Any = None,
    scheme: str = "inverse",
    beta: float = 0.999,
    normalize: Optional[str] = "mean",
    *,
    masks: Any = None,
    num_classes: Optional[int] = None,
    ignore_index: Optional[int] = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Per-class weights that counter class imbalance, ready for a loss's ``weight=``.

    Give one of ``labels``, per-class ``counts`` or segmentation ``masks``.
    With ``n_c`` samples (pixels) of class ``c``, ``N = sum(n_c)`` and
    frequency ``f_c = n_c / N``, the raw weight of class ``c`` is

    * ``"inverse"``: ``1 / f_c = N / n_c``
    * ``"sqrt_inverse"``: ``sqrt(N / n_c)``
    * ``"effective_number"``: ``(1 - beta) / (1 - beta ** n_c)``, the inverse
      effective number of samples (Cui et al., CVPR 2019); ``beta -> 1``
      approaches inverse counts, ``beta = 0`` gives equal weights
    * ``"median_frequency"``: ``median(f) / f_c`` (Eigen & Fergus 2015; the
      median over the classes, averaging the two middle ones for an even
      number of classes, as ``numpy.median``). With ``masks``, SegNet's
      definition: ``f_c`` = pixels of class ``c`` / total pixels of the images
      where ``c`` is present, so a class that fills the few images it appears
      in is not up-weighted as if it were rare. With ``labels`` or ``counts``
      (no images to tell presence) every class is present everywhere, ``f_c =
      n_c / N``, and the weights equal ``"inverse"`` after normalisation.

    and ``normalize`` rescales them: ``"mean"`` makes the weights average 1
    over the classes (so the loss keeps its scale), ``"sum"`` makes them sum to
    1, ``None`` returns the raw weights.

    At extreme imbalance (a class at 1/1000 of the pixels of another) plain
    ``"inverse"`` weights give the rare class ~1000 times the weight of the
    common ones (normalised to mean 1: about 0.004 for the most common class)
    and can wreck them; for segmentation take ``"median_frequency"`` from
    ``masks`` (or ``"sqrt_inverse"``) with ``normalize=None`` and bound the
    ratio, ``w.clamp(max=10 * w.min())``.

    Args:
        labels (Tensor | ndarray | sequence, optional): integer class labels
            (integral floats accepted) of any shape, e.g. segmentation masks
            ``(N, H, W)``, counted as :func:`balancedtorch.ops.class_counts`
            counts them. A one-hot ``(N, C)`` array is refused (pass ``argmax(1)``).
        counts (Tensor[C] | ndarray | sequence, optional): samples per class
            (non-negative; floats allowed, e.g. weighted counts).
        masks (Tensor[N, d1, ...] | ndarray | iterable, optional): segmentation
            label masks, one image per entry of dim 0 (``(N, H, W)``), or an
            iterable of per-image masks of any shapes (a list, a generator over
            a dataset). Pixels are counted as ``labels`` counts them; in
            addition ``"median_frequency"`` uses which images hold each class.
            ``ignore_index`` pixels are counted neither for their class nor in
            an image's total.
        scheme (str): one of ``"inverse"``, ``"sqrt_inverse"``,
            ``"effective_number"``, ``"median_frequency"``. Default ``"inverse"``.
        beta (float): in ``[0, 1)``, used by ``"effective_number"``. Default 0.999.
        normalize (str or None): ``"mean"`` (default), ``"sum"`` or ``None``.
        num_classes (int, optional): number of classes when ``labels`` are
            given; default ``labels.max() + 1`` (ignoring ``ignore_index``),
            refused above 2**24 (a stray id such as 2**40 names itself in a
            ValueError instead of sizing the result by it): pass it for more.
        ignore_index (int, optional): a label value to leave out of the counts.
            When it is one of the classes (``0 <= ignore_index < C``), that
            class gets weight 0 and the scheme and ``normalize`` use the
            other classes only.
        dtype (torch.dtype): floating dtype of the result. Default float32.

    Returns:
        Tensor[C]: the weights, on the device of ``labels``/``counts`` when
        they are tensors, else on the CPU.

    Raises:
        ValueError: not exactly one of ``labels``, ``counts`` and ``masks``; empty,
            negative or non-finite counts; a class with zero samples (its
            weight would be infinite); labels out of range; an unknown
            ``scheme`` or ``normalize``; ``beta`` outside ``[0, 1)``; labels
            that are not integers.
        TypeError: ``dtype`` is not a floating dtype.

    Example:
        >>> import balancedtorch as bt
        >>> bt.class_weights(counts=[56, 3, 41], normalize=None)  # red, yellow, green
        tensor([ 1.7857, 33.3333,  2.4390])
        >>> import torch
        >>> train_masks = torch.zeros(4, 16, 16, dtype=torch.uint8)  # class 0: road
        >>> train_masks[:2, :2, :2] = 1                              # class 1: 4 pixels in 2 images
        >>> train_masks[:, 15] = 255                                 # void
        >>> w = bt.class_weights(masks=train_masks, scheme="median_frequency", ignore_index=255, normalize=None)
        >>> w = w.clamp(max=10 * w.min())  # no class weighs more than 10x the most frequent one
        >>> criterion = bt.nn.CrossEntropyLoss(weight=w / w.mean(), ignore_index=255)
        >>> w
        tensor([0.5084, 5.0840])
    """
    owner = "class_weights"
    scheme = _validate.choice(scheme, "scheme", SCHEMES, caller=owner)
    normalize = _validate.choice(normalize, "normalize", NORMALIZATIONS, caller=owner)
    beta = _validate.real(beta, "beta", low=0, high=1, high_inclusive=False, caller=owner)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"class_weights: dtype must be a floating torch.dtype, got {dtype!r}")
    for name, value in (("labels", labels), ("counts", counts), ("masks", masks)):
        refuse_meta(value, name, "class_weights")
    if sum(x is not None for x in (labels, counts, masks)) != 1:
        raise ValueError("class_weights: give exactly one of labels=, counts= or masks=")
    num_classes = _validate.num_classes(num_classes, optional=True, caller=owner)
    ignore_index = _validate.ignore_index(ignore_index, caller=owner)

    presence_total = None  # per class: labelled pixels of the images holding it (masks only)
    if masks is not None:
        n, presence_total = _mask_counts(masks, num_classes, ignore_index)
    elif labels is not None:
        if isinstance(labels, Tensor) or (isinstance(labels, np.ndarray) and labels.dtype.kind in "biuf"):
            # labels of any shape are counted (masks), but a one-hot (N, C) array is almost surely a mistake
            one_hot = describe_one_hot(torch.as_tensor(labels), "labels", "class_weights", multi_hot=False)
            if one_hot is not None:
                raise ValueError(one_hot + " (if these really are 0/1 masks, pass labels.flatten())")
        # any shape, as class_counts; the range is checked by class_counts, which also honours ignore_index
        label_tensor = check_labels(labels, caller="class_weights", allow_negative=True, keep_dtype=True, any_shape=True)
        if num_classes is None:
            num_classes = infer_num_classes(label_tensor, caller="class_weights", ignore_index=ignore_index)
        else:
            _check_fits(int(num_classes), label_tensor.numel(), ignore_index)
        n = class_counts(label_tensor, int(num_classes), ignore_index).to(torch.float64)
    else:
        if num_classes is not None:
            raise ValueError("class_weights: num_classes is only used with labels= (counts has one entry per class)")
        n = _as_count_tensor(counts)

    # An ignore_index that is one of the classes: its labels are not counted,
    # and it gets weight 0 (the loss never sees it as a target); the scheme and
    # the normalisation use the other classes.
    ignored_class = counts is None and ignore_index is not None and 0 <= ignore_index < n.numel()
    if ignored_class:
        full_size = n.numel()
        keep = torch.arange(full_size, device=n.device) != ignore_index
        n = n[keep]
        if presence_total is not None:
            presence_total = presence_total[keep]
        if n.numel() == 0:
            raise ValueError(f"class_weights: ignore_index={ignore_index} is the only class, so no class is left to weight")

    empty = n == 0
    if bool(empty.any()):
        idx = int(empty.nonzero()[0, 0])
        if ignored_class and idx >= ignore_index:
            idx += 1  # n lost the ignored class's entry: name the real class id
        if bool(empty.all()):
            raise ValueError(f"class_weights: the counts sum to zero (counts = {n.tolist()[:8]}...)")
        raise ValueError(
            f"class_weights: class {idx} has no samples (count 0), so its weight would be infinite; "
            f"drop the class or give its count explicitly with counts="
        )

    total = n.sum()
    if presence_total is not None and scheme == "median_frequency":
        # SegNet's frequencies: pixels of c / pixels of the images where c is present
        freq = n / presence_total
        w = _median(freq) / freq
    elif not bool(torch.isfinite(total)) and scheme != "effective_number":
        # counts whose sum overflows (e.g. [1e308, 1e308, 1]): scale them by a
        # power of two (exact; these schemes depend only on ratios of counts)
        _, exponent = math.frexp(float(n.max()))
        n = n * 2.0 ** (-exponent // 2) * 2.0 ** (-exponent - (-exponent // 2))
        total = n.sum()
    if presence_total is not None and scheme == "median_frequency":
        pass  # done above
    elif scheme == "inverse":
        w = total / n
    elif scheme == "sqrt_inverse":
        w = torch.sqrt(total / n)
    elif scheme == "effective_number":
        # 1 - beta**n without cancellation: -expm1(n * log(beta)); beta = 0 gives log 0 = -inf -> 1.
        log_beta = math.log(beta) if beta > 0 else -math.inf
        w = (1.0 - beta) / -torch.expm1(n * log_beta)
    else:  # median_frequency from labels or counts: every class present everywhere
        freq = n / total
        w = _median(freq) / freq

    if normalize is not None and not bool(torch.isfinite(w).all()):
        # a raw weight beyond float64 (counts 1e308 apart): normalise the same
        # weights taken relative to the largest, min(n) / n (or its square root);
        # SegNet's frequencies stay SegNet's: min(freq) / freq (freq >= 1 / the
        # pixels of an image, never 0)
        if presence_total is not None and scheme == "median_frequency":
            w = freq.min() / freq
        else:
            w = n.min() / n
        if scheme == "sqrt_inverse":
            w = w.sqrt()
    if normalize is None and not bool(torch.isfinite(w).all()):
        raise ValueError(
            f"class_weights: the raw {scheme} weights overflow float64 (counts from {float(n.min()):g} to "
            f"{float(n.max()):g}); use normalize='mean' or 'sum'"
        )
    if normalize == "mean":
        w = w * (w.numel() / w.sum())
    elif normalize == "sum":
        w = w / w.sum()
    if ignored_class:
        w = torch.zeros(full_size, dtype=w.dtype, device=w.device).masked_scatter_(keep, w)
    out = w.to(dtype)
    if not bool(torch.isfinite(out).all()):
        raise ValueError(
            f"class_weights: the weights (largest {float(w.max()):g}) overflow dtype={dtype}; use a wider dtype or "
            f"normalize='mean' / 'sum'"
        )
    return out


def _median(values: Tensor) -> Tensor:
    """numpy.median of a 1-D float64 tensor: the middle value, the mean of the two middle ones for an even count."""
    s = values.sort().values
    k = s.numel() // 2
    return s[k] if s.numel() % 2 else (s[k - 1] + s[k]) / 2


def _check_fits(num_classes: int, num_labels: int, ignore_index: Optional[int]) -> None:
    """Every class needs a sample: a huge num_classes (2**40) with fewer labels fails before a num_classes-sized
    allocation (smaller ones are counted and name their first empty class)."""
    if num_classes <= MAX_INFERRED_CLASSES:
        return
    usable = num_classes - (1 if ignore_index is not None and 0 <= ignore_index < num_classes else 0)
    if usable > num_labels:
        raise ValueError(
            f"class_weights: num_classes={num_classes} but only {num_labels} labels were given, so some class "
            f"has no samples and its weight would be infinite; pass the true number of classes"
        )


# Per-image counts are taken for this many (image, class) cells at a time.
_CELLS_PER_CHUNK = 1 << 24


def _mask_counts(masks: Any, num_classes: Optional[int], ignore_index: Optional[int]) -> Tuple[Tensor, Tensor]:
    """(pixels per class, labelled pixels of the images holding each class), float64, from masks.

    A tensor/array is split along dim 0 into images; anything else iterable is
    read one mask at a time (so a generator over a dataset never has to fit in
    memory). Classes are sized by the largest label seen, so a huge
    ``num_classes`` allocates nothing before it is known to be satisfiable.
    """
    if isinstance(masks, (str, bytes)) or isinstance(masks, numbers.Number):
        raise TypeError(
            f"class_weights: masks must be a tensor/array (N, H, W) or an iterable of masks, got {type(masks).__name__}"
        )
    arrays = isinstance(masks, (Tensor, np.ndarray))
    if arrays:
        if masks.ndim < 2:
            raise ValueError(
                f"class_weights: masks must have shape (N, d1, ...) with images along dim 0, got shape {tuple(masks.shape)} "
                f"(pass labels= for 1-D labels)"
            )
        if masks.shape[0] == 0:
            raise ValueError("class_weights: masks holds no image")
        flat = check_labels(masks, "masks", caller="class_weights", allow_negative=True, any_shape=True, allow_empty=True)
        images = [flat.view(masks.shape[0], math.prod(masks.shape[1:]))]
    else:
        try:
            images = iter(masks)
        except TypeError:
            raise TypeError(
                f"class_weights: masks must be a tensor/array (N, H, W) or an iterable of masks, got {type(masks).__name__}"
            ) from None
    n = presence = None
    seen = 0
    pixels = 0
    for batch in images:
        if arrays:
            name = "masks"
        else:
            name = f"masks[{seen}]"
            if isinstance(batch, (str, bytes)):
                raise TypeError(f"class_weights: {name} must be a mask (tensor or array of integer labels), got {batch!r}")
            refuse_meta(batch, name, "class_weights")
            batch = check_labels(batch, name, caller="class_weights", allow_negative=True, any_shape=True, allow_empty=True)
            batch = batch.view(1, -1)
        seen += batch.shape[0]
        valid = torch.ones_like(batch, dtype=torch.bool) if ignore_index is None else batch != ignore_index
        negative = valid & (batch < 0)
        if bool(negative.any()):
            i = int(negative.reshape(-1).nonzero()[0, 0])
            ignored = "" if ignore_index is None else f" (or equal ignore_index={ignore_index})"
            raise ValueError(
                f"class_weights: {name} must hold labels >= 0{ignored}, got {name}[{i}] = {int(batch.reshape(-1)[i])}"
            )
        values = batch[valid]
        pixels += values.numel()
        if values.numel() == 0:
            continue
        top = int(values.max())
        limit = num_classes if num_classes is not None else MAX_INFERRED_CLASSES
        if top >= limit:
            bad = (batch >= limit) & valid
            i = int(bad.reshape(-1).nonzero()[0, 0])
            if num_classes is not None:
                raise ValueError(f"class_weights: {name} must hold labels < num_classes={num_classes}, got {name}[{i}] = {top}")
            raise ValueError(
                f"class_weights: {name}[{i}] = {top} would make {top + 1} classes (the largest label + 1), more than the "
                f"{MAX_INFERRED_CLASSES} inferred without being told; map sparse ids to 0 .. C-1 or pass num_classes="
            )
        size = top + 1
        # per-image counts, a chunk of images at a time: (image, class) cells
        rows = max(1, _CELLS_PER_CHUNK // size)
        for r0 in range(0, batch.shape[0], rows):
            part, part_valid = batch[r0 : r0 + rows], valid[r0 : r0 + rows]
            img = torch.arange(part.shape[0], device=part.device).view(-1, 1).expand_as(part)
            cells = torch.bincount((img[part_valid] * size + part[part_valid]), minlength=part.shape[0] * size)
            per_image = cells.view(part.shape[0], size).to(torch.float64)
            image_total = per_image.sum(1, keepdim=True)
            counts = per_image.sum(0)
            held = (per_image > 0).to(torch.float64).mul(image_total).sum(0)
            if n is None:
                n, presence = counts, held
            else:
                if n.numel() < size:
                    n = torch.nn.functional.pad(n, (0, size - n.numel()))
                    presence = torch.nn.functional.pad(presence, (0, size - presence.numel()))
                n[:size] += counts
                presence[:size] += held
    if seen == 0:
        raise ValueError("class_weights: masks holds no image")
    if n is None:
        raise ValueError(
            "class_weights: masks hold no labelled pixel"
            + ("" if ignore_index is None else f" (every pixel equals ignore_index={ignore_index})")
        )
    if num_classes is not None and n.numel() < num_classes:
        _check_fits(num_classes, pixels, ignore_index)
        missing = [c for c in range(n.numel(), min(num_classes, n.numel() + 8)) if c != ignore_index]
        if missing:
            raise ValueError(
                f"class_weights: class {missing[0]} has no pixels in masks (count 0), so its weight would be infinite; "
                f"drop the class or pass the true num_classes"
            )
        n = torch.nn.functional.pad(n, (0, num_classes - n.numel()))
        presence = torch.nn.functional.pad(presence, (0, num_classes - presence.numel()))
    return n, presence
