"""``classes_present``: which classes each segmentation mask holds, counted with the class_counts kernel."""

from __future__ import annotations

import sys
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from .. import _validate
from .._validate import refuse_meta
from ..ops.class_counts import class_counts

__all__ = ["classes_present"]

# Pixels per class_counts call on a stacked mask tensor: the int64 keys of one
# chunk take 8 bytes a pixel (64 MiB here), whatever the number of samples.
_CHUNK_PIXELS = 1 << 23
# Bins per call: up to 2**16 the CPU kernel keeps one private histogram per
# thread; above it every pixel would take an atomic add.
_CHUNK_BINS = 1 << 16
# An ignore value at most this far above the classes gets a bin of its own (255 with C = 19).
_MAX_EXTRA_BINS = 1 << 10
_MASK_KEYS = ("mask", "masks", "segmentation_mask", "label")
# Above this many (sample, class) cells the presence is found from the classes
# present (unique pairs) instead of a dense [N, C] table: num_classes=2**40 must
# not size anything by C.
_DENSE_CELLS = 1 << 28
_FLOAT_EXACT = float(1 << 53)


def _as_mask(mask: Any, where: str, caller: str) -> Tensor:
    """One mask (or a stack of them) as an integer tensor the kernel reads; the input is never modified."""
    if isinstance(mask, Tensor):
        refuse_meta(mask, where, caller)
        t = mask.detach()
    else:
        array = np.asarray(mask)  # numpy arrays, PIL images, nested lists
        if array.dtype == object or array.dtype.kind not in "biuf":
            raise TypeError(
                f"{caller}: {where} must be an integer array of class ids, got {type(mask).__name__} of dtype {array.dtype}"
            )
        if array.dtype.kind == "u" and array.dtype.itemsize > 1:  # 16-bit PNG masks; torch lacks most uint16 ops
            if array.dtype.itemsize == 8 and array.size and int(array.max()) > (1 << 63) - 1:
                raise ValueError(f"{caller}: {where} holds {int(array.max())}, too large for a class id")
            array = array.astype(np.int64)
        t = torch.from_numpy(np.ascontiguousarray(array))
    if t.dtype == torch.bool:
        return t.to(torch.uint8)
    if t.is_complex():
        raise TypeError(f"{caller}: {where} must hold integer class ids, got dtype {t.dtype}")
    if t.is_floating_point():
        bad = ~torch.isfinite(t) | (t != t.round()) | (t.abs() > _FLOAT_EXACT)
        if bool(bad.any()):
            value = t.flatten()[bad.flatten().nonzero()[0, 0]].item()
            raise TypeError(
                f"{caller}: {where} must hold integer class ids, got dtype {t.dtype} with the value {value} "
                "(torchvision's ToTensor divides masks by 255: use PILToTensor or torch.as_tensor(numpy.array(mask)))"
            )
        return t.long()
    if t.dtype not in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        t = t.long()  # torch's uint16/32/64
    return t


def _bins(num_classes: int, ignore_index: Optional[int]) -> int:
    """Histogram bins per sample: the classes, and up to the ignore value when it lies a little above them.

    Counting ignored pixels in a bin of their own (255 of a uint8 mask: 256
    bins) keeps every value in range, so the kernel takes its fast path and
    no pass rewrites them; the bins past C are dropped afterwards.
    """
    if ignore_index is not None and num_classes <= ignore_index < num_classes + _MAX_EXTRA_BINS:
        return ignore_index + 1
    return num_classes


def _first_bad(flat: Tensor, num_classes: int, ignore_index: Optional[int]) -> Optional[int]:
    """Flat index of the first value outside [0, num_classes) other than ignore_index, or None."""
    bad = (flat < 0) | (flat >= num_classes)
    if ignore_index is not None:
        bad &= flat != ignore_index
    found = bad.nonzero()
    return int(found[0, 0]) if found.numel() else None


def _range_error(sample: int, pixel: int, value: int, num_classes: int, ignore_index: Optional[int], caller: str) -> ValueError:
    ignored = "" if ignore_index is None else f" or equal ignore_index={ignore_index}"
    return ValueError(
        f"{caller}: the mask of sample {sample} holds the value {value} at flat pixel index {pixel}; class ids must "
        f"lie in [0, num_classes={num_classes}){ignored}"
    )


def _presence_of_chunk(masks: Tensor, start: int, num_classes: int, ignore_index: Optional[int], caller: str) -> Tensor:
    """Bool [n, C]: the classes present in each row of ``masks`` ([n, P] integer): one class_counts call
    over ``n * bins`` bins (sample s, value v -> bin s * bins + v)."""
    n, pixels = masks.shape
    if pixels == 0:
        return torch.zeros(n, num_classes, dtype=torch.bool, device=masks.device)
    bins = _bins(num_classes, ignore_index)
    lo, hi = (int(v) for v in torch.aminmax(masks))  # one pass; the common, valid case stops here
    keys = masks
    # the bin past the classes that counts ignored pixels, if any
    ignored_bin = ignore_index if ignore_index is not None and num_classes <= ignore_index < bins else None
    if lo < 0 or hi >= bins:
        bad = _first_bad(masks.reshape(-1), num_classes, ignore_index)
        if bad is not None:
            raise _range_error(
                start + bad // pixels, bad % pixels, int(masks.reshape(-1)[bad]), num_classes, ignore_index, caller
            )
        # only an ignore value out of the bins' reach (negative, or far above C): give it the extra bin C
        bins, ignored_bin = num_classes + 1, num_classes
        keys = masks.to(torch.int64, copy=True)  # our own copy: the input is never modified
        keys.masked_fill_(masks == ignore_index, num_classes)
    if n > 1:
        keys = keys.to(torch.int64) + torch.arange(n, device=masks.device, dtype=torch.int64).mul_(bins).unsqueeze(1)
    counts = class_counts(keys.reshape(-1), n * bins).view(n, bins)
    if bins > num_classes:  # values in [C, bins) other than the ignore value are out of range
        extra = counts[:, num_classes:].clone()
        if ignored_bin is not None:
            extra[:, ignored_bin - num_classes] = 0
        if bool(extra.any()):
            bad = _first_bad(masks.reshape(-1), num_classes, ignore_index)
            raise _range_error(
                start + bad // pixels, bad % pixels, int(masks.reshape(-1)[bad]), num_classes, ignore_index, caller
            )
    present = counts[:, :num_classes] > 0
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        present[:, ignore_index] = False
    return present


def _pairs_of_chunk(
    masks: Tensor, start: int, num_classes: int, ignore_index: Optional[int], caller: str
) -> Tuple[Tensor, Tensor]:
    """(sample, class) pairs present in the rows of ``masks`` ([n, P]), from the values themselves: nothing is
    sized by num_classes (the path for huge class counts). Samples are offset by ``start``; on the CPU."""
    masks = masks.to(torch.int64)  # compared with any int (ignore_index, num_classes) without overflow
    flat = masks.reshape(-1)
    bad = _first_bad(flat, num_classes, ignore_index)
    if bad is not None:
        pixels = masks.shape[1]
        raise _range_error(start + bad // pixels, bad % pixels, int(flat[bad]), num_classes, ignore_index, caller)
    rows = torch.arange(masks.shape[0], device=masks.device).view(-1, 1).expand_as(masks)
    keep = masks != ignore_index if ignore_index is not None else torch.ones_like(masks, dtype=torch.bool)
    pairs = torch.unique(torch.stack([rows[keep], masks[keep].to(torch.int64)], 1), dim=0).cpu()
    return pairs[:, 0] + start, pairs[:, 1]


def _find_mask(sample: Any, index: int, mask: Optional[Callable[[Any], Any]], caller: str) -> Any:
    if mask is not None:
        return mask(sample)
    if isinstance(sample, dict):
        for key in _MASK_KEYS:
            if key in sample:
                return sample[key]
        raise ValueError(
            f"{caller}: sample {index} is a dict without any of the keys {list(_MASK_KEYS)}; "
            f"pass mask=lambda sample: sample[...] to say where the mask is"
        )
    if isinstance(sample, (tuple, list)):
        if not sample:
            raise ValueError(f"{caller}: sample {index} is an empty {type(sample).__name__}")
        return sample[-1]
    return sample


class _Progress:
    """tqdm when installed, else a plain counter on stderr; closed however the loop ends."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.total, self.done, self.bar, self.enabled = total, 0, None, enabled
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dev dependency
            self._step = max(1, total // 100)
            return
        self.bar = tqdm(total=total, desc=desc, unit="sample")

    def update(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update()
        elif self.enabled and (self.done % self._step == 0 or self.done == self.total):
            sys.stderr.write(f"\rclasses_present: {self.done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.done:
            sys.stderr.write("\n")


def _show_progress(progress: Any, caller: str) -> bool:
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty is not None and isatty())
    return _validate.flag(progress, "progress", optional=True, caller=caller)


def presence_pairs(
    dataset_or_masks: Any,
    num_classes: Any,
    ignore_index: Any = None,
    *,
    progress: Any = None,
    mask: Optional[Callable[[Any], Any]] = None,
    caller: str = "classes_present",
) -> Tuple[Tensor, Tensor, int]:
    """(samples, classes, N): the (sample i, class c) pairs with c in the mask of sample i, sorted, on the CPU.

    What :func:`classes_present` computes, as int64 pairs (the repeat-factor
    sampler reads them without building Python lists). Small ``N * C``: a
    dense presence table counted with the class_counts kernel; large (a huge
    ``num_classes``): the pairs are taken from the values present, so memory
    never grows with ``num_classes``.
    """
    return _presence(dataset_or_masks, num_classes, ignore_index, progress, mask, caller)


def _presence(dataset_or_masks, num_classes, ignore_index, progress, mask, caller) -> Tuple[Tensor, Tensor, int]:
    num_classes = _validate.num_classes(num_classes, caller=caller)
    ignore_index = _validate.ignore_index(ignore_index, caller=caller)
    if mask is not None and not callable(mask):
        raise TypeError(f"{caller}: mask must be a callable sample -> mask, got {mask!r}")
    show = _show_progress(progress, caller)
    source = dataset_or_masks
    if isinstance(source, TensorDataset) and mask is None:
        source = source.tensors[-1]
    if isinstance(source, (Tensor, np.ndarray)):
        masks = _as_mask(source, "masks", caller)
        if masks.dim() < 3:
            raise ValueError(
                f"{caller}: masks must be a stack of masks (N, H, W), (N, 1, H, W) or (N, D, H, W), got shape "
                f"{tuple(masks.shape)}; one mask: masks[None]; multi-hot (N, C) targets are already class sets"
            )
        n = masks.shape[0]
        if n == 0:
            raise ValueError(f"{caller}: masks is empty (shape {tuple(masks.shape)})")
        flat = masks.reshape(n, -1)
        if n * num_classes > _DENSE_CELLS:
            per_chunk = max(1, _CHUNK_PIXELS // max(1, flat.shape[1]))
            found = [
                _pairs_of_chunk(flat[s : s + per_chunk], s, num_classes, ignore_index, caller) for s in range(0, n, per_chunk)
            ]
            return torch.cat([f[0] for f in found]), torch.cat([f[1] for f in found]), n
        bins = _bins(num_classes, ignore_index)
        per_chunk = max(1, min(_CHUNK_PIXELS // max(1, flat.shape[1]), _CHUNK_BINS // (bins + 1)))
        parts = [
            _presence_of_chunk(flat[s : s + per_chunk], s, num_classes, ignore_index, caller) for s in range(0, n, per_chunk)
        ]
        pairs = torch.cat(parts).cpu().nonzero()
        return pairs[:, 0], pairs[:, 1], n
    if isinstance(source, (str, bytes, dict)) or not hasattr(source, "__getitem__") or not hasattr(source, "__len__"):
        raise TypeError(
            f"{caller}: expected a mask tensor (N, H, W) or a map-style dataset of masks / (image, mask) pairs, "
            f"got {type(source).__name__}"
        )
    n = len(source)
    if n == 0:
        raise ValueError(f"{caller}: the dataset is empty")
    dense = n * num_classes <= _DENSE_CELLS
    out = torch.zeros(n, num_classes, dtype=torch.bool) if dense else None
    found_pairs = []
    bar = _Progress(n, show, "classes present")
    try:  # the bar is closed however reading ends (a bad sample raises half-way)
        for i in range(n):
            found = _as_mask(_find_mask(source[i], i, mask, caller), f"the mask of sample {i}", caller).reshape(1, -1)
            if dense:
                out[i] = _presence_of_chunk(found, i, num_classes, ignore_index, caller)[0].cpu()
            else:
                found_pairs.append(_pairs_of_chunk(found, i, num_classes, ignore_index, caller))
            bar.update()
    finally:
        bar.close()
    if dense:
        pairs = out.nonzero()
        return pairs[:, 0], pairs[:, 1], n
    return torch.cat([f[0] for f in found_pairs]), torch.cat([f[1] for f in found_pairs]), n


def classes_present(
    dataset_or_masks: Any,
    num_classes: int,
    ignore_index: Optional[int] = None,
    *,
    progress: Optional[bool] = None,
    mask: Optional[Callable[[Any], Any]] = None,
) -> List[List[int]]:
    """The classes that occur in each sample's segmentation mask.

    Counts every pixel once with the ``class_counts`` kernel: a stacked mask
    tensor in a few calls over ``(samples, classes)`` bins (chunks of about
    8M pixels, so memory stays bounded), a dataset one mask at a time. The
    result feeds :class:`balancedtorch.data.RepeatFactorSampler` (which calls
    this function itself when given masks).

    Args:
        dataset_or_masks: a mask tensor or array ``(N, H, W)``, ``(N, 1, H, W)``
            or ``(N, D, H, W)`` of any integer dtype (bool and integer-valued
            floats too), on any device; or a map-style dataset (or list) whose
            samples are masks, ``(image, mask)`` tuples (the mask is the *last*
            element) or dicts (the first of the keys ``"mask"``, ``"masks"``,
            ``"segmentation_mask"``, ``"label"``). Masks may be tensors,
            numpy arrays or PIL images, of any size. A ``TensorDataset`` is
            read through its last tensor, without loading samples.
        num_classes (int): number of classes C; class ids lie in ``[0, C)``.
        ignore_index (int, optional): a mask value that is no class (e.g. 255
            "void"); inside ``[0, C)`` that class is never reported.
        progress (bool, optional, keyword): a progress bar (tqdm when
            installed, else a counter on stderr) while a dataset is read.
            Default: on when stderr is a terminal. Tensors need none.
        mask (callable, optional, keyword): ``mask(sample) -> mask``, for
            datasets whose samples hold the mask elsewhere.

    Returns:
        list[list[int]]: for every sample, the sorted ids of the classes
        present (an empty list for a mask that is all ``ignore_index``).

    Raises:
        ValueError: ``num_classes`` not a positive int, an empty input, a
            stack that is not ``(N, ...)`` with at least 3 dimensions, or a
            mask value outside ``[0, C)`` other than ``ignore_index`` (the
            message names the sample, the value and its flat pixel index).
        TypeError: masks that are not integer (e.g. ToTensor's ``/255``
            floats), or an input that is neither a tensor nor a dataset.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> masks = torch.tensor([[[0, 0], [2, 255]], [[1, 1], [1, 1]]], dtype=torch.uint8)
        >>> bt.data.classes_present(masks, num_classes=3, ignore_index=255)
        [[0, 2], [1]]
    """
    samples, classes, n = presence_pairs(dataset_or_masks, num_classes, ignore_index, progress=progress, mask=mask)
    # sorted by sample, then class
    ends = np.cumsum(np.bincount(samples.numpy(), minlength=n))[:-1]
    return [part.tolist() for part in np.split(classes.numpy(), ends)]
