"""``RepeatFactorSampler``: LVIS repeat-factor sampling for images that hold several classes."""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from .. import _validate
from .._repr import Shown
from ._epoch import EpochSampler
from .labels import refuse_meta
from .presence import _MASK_KEYS, presence_pairs

__all__ = ["RepeatFactorSampler"]

_CALLER = "RepeatFactorSampler"


def _multi_hot_pairs(labels: Tensor, num_classes: Optional[int]) -> Tuple[Tensor, Tensor, int]:
    """(image, class) pairs of a multi-hot [N, C] array of 0/1 (bool, integers or floats)."""
    n, c = labels.shape
    if n == 0 or c == 0:
        raise ValueError(f"{_CALLER}: labels is empty (multi-hot shape {tuple(labels.shape)})")
    if num_classes is not None and num_classes != c:
        raise ValueError(f"{_CALLER}: num_classes={num_classes} does not match the {c} columns of the multi-hot labels")
    if labels.is_complex():
        raise ValueError(f"{_CALLER}: multi-hot labels must be 0/1, got dtype {labels.dtype}")
    if labels.dtype != torch.bool:
        bad = (labels != 0) & (labels != 1)
        if bool(bad.any()):
            i, j = (int(v) for v in bad.nonzero()[0])
            raise ValueError(
                f"{_CALLER}: multi-hot labels must hold only 0 and 1, got labels[{i}, {j}] = {labels[i, j].item()}; "
                "soft or count targets: threshold them first (labels > 0)"
            )
    pairs = (labels != 0).nonzero()
    return pairs[:, 0], pairs[:, 1], n


def _class_ids(item: Any, index: int) -> np.ndarray:
    """The class ids of image ``index`` as a 1-D int64 array, checked."""
    where = f"labels[{index}]"
    if isinstance(item, dict):
        if "annotations" not in item:
            raise ValueError(
                f"{_CALLER}: {where} is a dict without 'annotations'; per-image dicts are read in detectron2's "
                "format ({'annotations': [{'category_id': c}, ...]})"
            )
        try:
            item = [ann["category_id"] for ann in item["annotations"]]
        except (KeyError, TypeError):
            raise ValueError(f"{_CALLER}: {where}['annotations'] must be a list of dicts with a 'category_id'") from None
    if isinstance(item, (bool, np.bool_)) or isinstance(item, (numbers.Number, str, bytes)):
        raise ValueError(
            f"{_CALLER}: {where} = {item!r} is not a set of class ids: labels must hold one iterable of class ids "
            "per image (e.g. [{0, 3}, {1}, set()]) or be a multi-hot (N, C) array; single-label data: "
            "ClassBalancedSampler"
        )
    if isinstance(item, Tensor):
        refuse_meta(item, where, _CALLER)
        array = item.detach().cpu().numpy()
    elif isinstance(item, np.ndarray):
        array = item
    else:
        try:
            array = np.asarray(list(item))
        except (TypeError, ValueError):
            raise ValueError(f"{_CALLER}: {where} must be an iterable of class ids, got {type(item).__name__}") from None
    if array.ndim == 0:
        raise ValueError(
            f"{_CALLER}: {where} is a single value, not a set of class ids: pass one iterable per image "
            "(e.g. [{0, 3}, {1}, set()]); single-label data: ClassBalancedSampler"
        )
    if array.ndim > 1:
        raise ValueError(
            f"{_CALLER}: {where} has shape {tuple(array.shape)}, not a 1-D set of class ids; segmentation masks: "
            "pass them stacked as one (N, H, W) tensor or as a dataset, with num_classes="
        )
    array = array.reshape(-1)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind == "b" or array.dtype.kind not in "iuf":
        example = array[0].item() if array.dtype != object else array[0]
        raise ValueError(f"{_CALLER}: {where} must hold integer class ids, got {example!r} (dtype {array.dtype})")
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.round(array)) | (np.abs(array) > 2.0**53)
        if bad.any():
            raise ValueError(f"{_CALLER}: {where} must hold integer class ids, got {array[bad][0].item()!r}")
    if array.dtype.kind == "u" and array.dtype.itemsize == 8 and int(array.max()) > (1 << 63) - 1:
        raise ValueError(f"{_CALLER}: {where} holds {int(array.max())}, too large for a class id")
    ids = array.astype(np.int64)
    if ids.min() < 0:
        raise ValueError(f"{_CALLER}: class ids must be >= 0, got {int(ids.min())} in {where}")
    return ids


def _is_mask_array(value: Any) -> bool:
    if isinstance(value, (Tensor, np.ndarray)):
        return value.ndim >= 2
    return hasattr(value, "getbands") and hasattr(value, "size")  # a PIL image


def _is_mask_sample(sample: Any) -> bool:
    """Whether a list element is a segmentation sample (a mask, (image, mask), {"mask": ...}), not a class set."""
    if isinstance(sample, dict):
        return any(key in sample for key in _MASK_KEYS)
    if isinstance(sample, (tuple, list)) and sample:
        return _is_mask_array(sample[-1])
    return _is_mask_array(sample)


def _set_pairs(labels: Any, num_classes: Optional[int]) -> Tuple[Tensor, Tensor, int]:
    """(image, class) pairs of a sequence of per-image class-id iterables; repeats within an image count once."""
    n = len(labels)
    if n == 0:
        raise ValueError(f"{_CALLER}: labels is empty")
    per_image = [_class_ids(labels[i], i) for i in range(n)]
    if n > 1 and all(isinstance(item, (list, tuple)) for item in labels):
        width = {a.size for a in per_image}
        if len(width) == 1 and width.pop() > 1 and all(((a == 0) | (a == 1)).all() for a in per_image):
            warnings.warn(
                f"{_CALLER}: labels look like multi-hot rows given as lists (every image a list of {per_image[0].size} "
                "zeros and ones); they are read as class ids (0 and 1). For multi-hot targets pass "
                "torch.tensor(labels) or numpy.array(labels).",
                stacklevel=3,
            )
    lengths = np.fromiter((a.size for a in per_image), dtype=np.int64, count=n)
    ids = torch.from_numpy(np.concatenate(per_image) if lengths.sum() else np.zeros(0, dtype=np.int64))
    images = torch.from_numpy(np.repeat(np.arange(n, dtype=np.int64), lengths))  # image i, once per class id
    if num_classes is not None and ids.numel() and int(ids.max()) >= num_classes:
        k = int(ids.argmax())
        raise ValueError(
            f"{_CALLER}: class ids must be < num_classes={num_classes}, got {int(ids[k])} in labels[{int(images[k])}]"
        )
    return images, ids, n


class RepeatFactorSampler(EpochSampler, DistributedSampler[int]):
    """Repeats the images that hold rare classes: LVIS repeat-factor sampling (detectron2's).

    For images that hold several classes (segmentation masks, detection
    boxes, multi-label tags). With ``f_c`` the fraction of images that
    contain class ``c``, the class factor is ``r_c = max(1, sqrt(t / f_c))``
    (``max(1, t / f_c)`` with ``sqrt=False``, as detectron2's option)
    and an image's factor ``r_i`` the largest ``r_c`` over its classes (1 for
    an image with no class, as detectron2's ``max(..., default=1.0)``): an
    image holding a class rarer than ``t`` is repeated. Each epoch rounds the
    factors stochastically (image ``i`` appears ``floor(r_i)`` times, plus
    once more with probability ``frac(r_i)``, so ``E[count_i] = r_i``) and
    shuffles the repeated list: detectron2's ``RepeatFactorTrainingSampler``
    epoch by epoch, as a finite, resumable sampler.

    The epoch length therefore changes from epoch to epoch (by about
    ``sqrt(sum frac(r_i) (1 - frac(r_i)))``). ``len(sampler)`` is exact for
    the current epoch (it fixes the epoch's draw, so the iteration that
    follows has that length); :attr:`expected_length` is ``sum(r_i)``.

    Args:
        labels: the classes of every image, one of

            * a sequence with one iterable of class ids per image (sets,
              lists, 1-D tensors or arrays; ``[{0, 3}, {1}, set()]``), or
              detectron2 dataset dicts (``{"annotations": [{"category_id":
              c}, ...]}``); an id repeated within an image counts once;
            * a multi-hot ``(N, C)`` tensor or array of 0/1 (bool, integer or
              float);
            * segmentation masks: a stacked ``(N, H, W)`` / ``(N, 1, H, W)``
              integer tensor or a dataset of masks or ``(image, mask)``
              pairs, read with :func:`classes_present` (``num_classes``
              required, ``ignore_index`` and ``progress`` passed on).
        threshold (float): the frequency ``t`` > 0 below which a class's
            images are repeated (default 0.001, LVIS's); a class in half that
            fraction of images repeats them sqrt(2) times (twice with
            ``sqrt=False``). Above 1 every class is repeated (detectron2
            accepts such thresholds too).
        generator (torch.Generator, optional): source of randomness (single
            process); by default epochs derive from ``seed`` and ``epoch``.
        num_replicas, rank (int, optional): distributed sharding, as the other
            samplers: default from ``torch.distributed``, read when an epoch
            starts; each rank gets ``ceil(epoch length / num_replicas)``
            disjoint positions of one shared epoch (the last ones wrap
            around). detectron2 instead gives rank r every world-size-th index
            of an endless stream.
        seed (int): base seed shared by all ranks.
        num_classes (int, optional, keyword): number of classes; required for
            masks, an upper bound checked on class sets (ids must be below
            it), the column count of a multi-hot array.
        ignore_index (int, optional, keyword): for masks only, a value that
            is no class (e.g. 255).
        progress (bool, optional, keyword): for a dataset of masks, a progress
            bar while it is read (default: when stderr is a terminal).
        sqrt (bool, keyword): ``r_c = max(1, sqrt(t / f_c))`` (default True,
            LVIS's), or ``max(1, t / f_c)`` with False (detectron2's
            ``repeat_factors_from_category_frequency(..., sqrt=False)``).

    Attributes:
        repeat_factors (Tensor[N] float64): ``r_i`` of every image.
        classes (Tensor[K] int64): the class ids that occur in some image.
        class_frequency (Tensor[K] float64): ``f_c`` of those classes.
        class_repeat_factors (Tensor[K] float64): ``r_c`` of those classes.

    ``state_dict()`` / ``load_state_dict()`` resume mid-epoch on a fresh
    sampler over the same data (the state's fingerprint covers the repeat
    factors); with ``DataLoader(num_workers > 0)`` see the README, "Resuming
    with DataLoader workers".

    Example:
        >>> import balancedtorch as bt
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> train_masks = torch.zeros(20, 8, 8, dtype=torch.uint8)
        >>> train_masks[0, :2, :2] = 18                    # class 18 in one image of 20
        >>> train_masks[:, 7] = 255                         # void
        >>> train_set = TensorDataset(torch.randn(20, 3, 8, 8), train_masks)
        >>> present = bt.data.classes_present(train_masks, num_classes=19, ignore_index=255)
        >>> present[:2]
        [[0, 18], [0]]
        >>> sampler = bt.data.RepeatFactorSampler(present, threshold=0.1, seed=0)
        >>> loader = DataLoader(train_set, batch_size=8, sampler=sampler)  # num_workers=4 works too
        >>> for epoch in range(2):
        ...     sampler.set_epoch(epoch)
        ...     images = sum(len(x) for x, m in loader)
        >>> images in (20, 21)  # image 0 once or twice (r = sqrt(0.1 / 0.05) = 1.41), the others once
        True
    """

    def __init__(
        self,
        labels: Any,
        threshold: float = 0.001,
        generator: Optional[torch.Generator] = None,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        seed: int = 0,
        *,
        num_classes: Optional[int] = None,
        ignore_index: Optional[int] = None,
        progress: Optional[bool] = None,
        sqrt: bool = True,
    ) -> None:
        super().__init__(generator, seed, num_replicas, rank)
        # threshold: a class frequency below which images are repeated; above 1 every class is (as detectron2 allows)
        self.threshold = _validate.real(threshold, "threshold", low=0, low_inclusive=False, caller=_CALLER)
        self.sqrt = _validate.flag(sqrt, "sqrt", caller=_CALLER)
        self._num_classes_arg, self._ignore_index_arg, self._progress_arg = num_classes, ignore_index, progress  # for repr
        _validate.num_classes(num_classes, optional=True, caller=_CALLER)
        images, ids, n = self._pairs(labels, num_classes, ignore_index, progress)
        self._set_factors(images, ids, n)
        self._epoch_counts: Optional[Tuple[int, Tensor]] = None  # (epoch seed, per-image repeats)

    # -- labels -> factors ------------------------------------------------------
    @staticmethod
    def _pairs(labels: Any, num_classes: Optional[int], ignore_index: Any, progress: Any) -> Tuple[Tensor, Tensor, int]:
        if isinstance(labels, (str, bytes)) or isinstance(labels, torch.utils.data.Sampler):
            raise TypeError(f"{_CALLER}: labels must be class sets, a multi-hot array or masks, got {type(labels).__name__}")
        refuse_meta(labels, "labels", _CALLER)
        if isinstance(labels, np.ndarray) and labels.dtype == object and labels.ndim == 1:
            labels = list(labels)  # an object array of per-image sets
        array = labels if isinstance(labels, (Tensor, np.ndarray)) else None
        if isinstance(array, np.ndarray) and array.dtype.kind not in "biuf":
            raise ValueError(f"{_CALLER}: labels must hold numbers, got an array of dtype {array.dtype}")
        is_masks = array is not None and array.ndim >= 3
        is_dataset = (
            array is None
            and hasattr(labels, "__getitem__")
            and (not isinstance(labels, (list, tuple)) or (len(labels) > 0 and _is_mask_sample(labels[0])))
        )
        if is_masks or is_dataset:
            if num_classes is None:
                found = "a dataset" if is_dataset else f"shape {tuple(array.shape)}"
                raise ValueError(
                    f"{_CALLER}: labels are segmentation masks ({found}): pass num_classes= (and ignore_index= for void pixels)"
                )
            return presence_pairs(labels, num_classes, ignore_index, progress=progress, caller=_CALLER)
        if ignore_index is not None:
            raise ValueError(f"{_CALLER}: ignore_index={ignore_index!r} applies to segmentation masks only")
        if progress is not None and not isinstance(progress, bool):
            raise ValueError(f"{_CALLER}: progress must be True, False or None, got {progress!r}")
        if array is not None:
            t = (
                array.detach().cpu()
                if isinstance(array, Tensor)
                else torch.from_numpy(
                    np.ascontiguousarray(
                        array.astype(np.int64) if array.dtype.kind == "u" and array.dtype.itemsize > 1 else array
                    )
                )
            )
            if t.dim() == 2:
                return _multi_hot_pairs(t, num_classes)
            raise ValueError(
                f"{_CALLER}: labels of shape {tuple(t.shape)} are neither a multi-hot (N, C) array nor masks "
                "(N, H, W); one class per image: pass [[c] for c in labels] or use ClassBalancedSampler"
            )
        if not isinstance(labels, (list, tuple)):
            raise TypeError(f"{_CALLER}: labels must be class sets, a multi-hot array or masks, got {type(labels).__name__}")
        return _set_pairs(labels, num_classes)

    def _set_factors(self, images: Tensor, ids: Tensor, n: int) -> None:
        # distinct (image, class) pairs; classes compacted, so that sparse ids (COCO's 1..90, 10**9) cost nothing
        classes, compact = torch.unique(ids, return_inverse=True)
        k = classes.numel()
        if k:
            pair_keys = torch.unique(images * k + compact)
            images, compact = pair_keys // k, pair_keys % k
        per_class = torch.bincount(compact, minlength=k).double()
        frequency = per_class / n
        ratio = self.threshold / frequency
        class_factors = (torch.sqrt(ratio) if self.sqrt else ratio).clamp_min(1.0)
        factors = torch.ones(n, dtype=torch.float64)
        if k:
            factors.scatter_reduce_(0, images, class_factors[compact], "amax", include_self=True)
        self.num_images = n
        self.classes = classes
        self.class_frequency = frequency
        self.class_repeat_factors = class_factors
        self.repeat_factors = factors
        self._whole = factors.floor()
        self._frac = factors - self._whole

    @property
    def expected_length(self) -> float:
        """``sum(r_i)``: the mean epoch length across ranks."""
        return float(self.repeat_factors.sum())

    # -- epochs ------------------------------------------------------------------
    def _draw_counts(self, generator: torch.Generator) -> Tensor:
        """Stochastic rounding: floor(r_i) + Bernoulli(frac(r_i)) repeats of every image."""
        coins = torch.rand(self.num_images, generator=generator, dtype=torch.float64)
        return (self._whole + (coins < self._frac)).long()

    def _counts(self) -> Tensor:
        """This epoch's repeats per image, drawn once per epoch seed."""
        generator = self._epoch_generator()  # fixes the epoch's seed (drawn from `generator` when given)
        cached = self._epoch_counts
        if cached is None or cached[0] != self._epoch_seed:
            self._epoch_counts = (self._epoch_seed, self._draw_counts(generator))
        return self._epoch_counts[1]

    def _global_indices(self, generator: torch.Generator) -> Tensor:
        counts = self._draw_counts(generator)  # the same draw as _counts(): the generator starts from the epoch seed
        # image i, counts[i] times; numpy's repeat: torch's CPU kernel starts a parallel region that costs
        # milliseconds per call on a loaded machine
        repeated = torch.from_numpy(np.repeat(np.arange(self.num_images, dtype=np.int64), counts.numpy()))
        return repeated[torch.randperm(repeated.numel(), generator=generator)]

    @property
    def num_samples(self) -> int:
        """Indices in the current epoch across all ranks (before padding to a multiple of num_replicas)."""
        return int(self._counts().sum())

    def _on_epoch_change(self) -> None:
        self._epoch_counts = None

    def _fingerprint_data(self) -> Dict[str, Tensor]:
        return {"repeat_factors": self.repeat_factors}

    def __iter__(self) -> Iterator[int]:
        """This rank's indices of the current epoch (image ``i`` about ``r_i`` times, shuffled).

        Each image appears ``floor(r_i)`` times plus once more with
        probability ``frac(r_i)``, drawn from the epoch's seed; the list is
        shuffled, sharded over ``num_replicas`` (``len(self)`` each), and a
        later :meth:`set_epoch` draws a new rounding and order.

        Example:
            >>> import balancedtorch as bt
            >>> sampler = bt.data.RepeatFactorSampler([{0}, {0}, {0}, {0, 1}], threshold=1.0)
            >>> sorted(sampler)  # image 3 holds class 1 (f = 1/4): r = sqrt(1 / 0.25) = 2
            [0, 1, 2, 3, 3]
        """
        return self._iterate()

    def __len__(self) -> int:
        """Indices this rank yields in the current epoch (exact: the epoch's rounding is drawn here)."""
        live = getattr(self, "_live", None)
        if live is not None and live[0].__length_hint__() == 0:
            self._settle()  # the previous pass finished: the length is the next epoch's, as indices() is
        return self._per_rank(self.num_samples)

    def _repr_args(self) -> Dict[str, Any]:
        args: Dict[str, Any] = {
            "labels": Shown(f"<{self.num_images} images, {self.classes.numel()} classes>"),
            "threshold": self.threshold,
        }
        args.update(self._common_args())
        args.update(
            num_classes=self._num_classes_arg, ignore_index=self._ignore_index_arg, progress=self._progress_arg, sqrt=self.sqrt
        )
        return args
