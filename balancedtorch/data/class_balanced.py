"""``ClassBalancedSampler``: sample so that classes appear with chosen shares."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Callable, Dict, Iterator, Optional, Union

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from .. import _validate
from .._classes import group_by_class
from .._labels import infer_num_classes
from .._validate import UNSET, as_tensor, renamed
from ..ops.class_counts import class_counts
from ..ops.sampling import AliasTable, sample_without_replacement
from ._epoch import EpochSampler, largest_remainder
from ._shares import target_shares
from .labels import as_labels

__all__ = ["ClassBalancedSampler"]


def _schedule_fn(schedule: Any) -> Optional[Callable[[int], float]]:
    if schedule is None:
        return None
    if isinstance(schedule, numbers.Integral) and not isinstance(schedule, bool):
        if schedule < 1:
            raise ValueError(f"schedule as a number of epochs must be >= 1, got {schedule}")
        epochs = int(schedule)
        return lambda epoch: min(1.0, epoch / epochs)
    if callable(schedule):
        return schedule
    raise ValueError(f"schedule must be None, a number of epochs or a callable epoch -> [0, 1], got {schedule!r}")


class ClassBalancedSampler(EpochSampler, DistributedSampler[int]):
    """Draws indices so that each class gets a target share of the epoch.

    Args:
        labels (Tensor[N] | array | Dataset): class labels, or a dataset
            (read with :func:`balancedtorch.data.labels_of`).
        class_shares: the target share of each class in an epoch —
            ``"balanced"`` (equal; default), ``"sqrt"`` (p_c ∝ sqrt(n_c)),
            ``"natural"`` (p_c ∝ n_c), a float alpha (p_c ∝ n_c ** alpha: 0 is
            balanced, 1 natural) or a dict ``{class: share}``. The same
            vocabulary as :class:`StratifiedBatchSampler`'s. Formerly
            ``strategy`` (deprecated alias, removed in the next release).
        num_samples (int, optional): indices per epoch across all ranks.
            Default ``len(labels)`` with replacement; without replacement the
            largest epoch the shares allow with every index used at most once.
        replacement (bool): ``True`` oversamples small classes (indices repeat);
            ``False`` undersamples large ones (each index at most once per epoch;
            per-class quotas by largest remainder). Default True.
        generator (torch.Generator, optional): source of randomness (single
            process); by default epochs derive from ``seed`` and ``epoch``.
        num_replicas, rank (int, optional): distributed sharding; default from
            ``torch.distributed``, read when an epoch starts (so a sampler
            built before ``init_process_group`` shards). Each rank gets
            ``ceil(num_samples / num_replicas)`` indices, disjoint positions of
            one shared epoch. It is a ``torch.utils.data.DistributedSampler``,
            so Lightning keeps it instead of wrapping it; inside accelerate's
            ``BatchSamplerShard`` it yields the whole epoch and accelerate
            splits it (README, "With Lightning / accelerate").
        seed (int): base seed shared by all ranks. Default 0.
        sample_weights (Tensor[N], optional): per-sample weights within each
            class (e.g. hard-example mining); class shares are kept.
        schedule (int or callable, optional): moves the shares from
            ``class_shares`` to the natural distribution as epochs pass: an int T
            goes linearly over T epochs, a callable maps epoch -> t in [0, 1];
            shares(t) ∝ class_share ** (1 - t) * natural_share ** t.
            Driven by :meth:`set_epoch`.
        num_classes (int, optional): number of classes C; labels must lie in
            ``[0, C)``. Default ``labels.max() + 1``, refused above 2**24 (a
            stray id such as 2**40 names itself in a ValueError instead of
            sizing per-class tables by it): pass it for more classes.

    ``state_dict()`` / ``load_state_dict()`` resume mid-epoch on a fresh
    sampler over the same data. With ``DataLoader(num_workers > 0)`` the
    loader prefetches, so a state taken inside the training loop is ahead of
    the consumed batches: use torchdata's ``StatefulDataLoader`` (it calls
    these methods itself) or the sampler's state from the start of the epoch
    plus the number of consumed batches (README, "Resuming with DataLoader
    workers").

    Example:
        >>> import balancedtorch as bt
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> train_set = TensorDataset(torch.randn(100, 4), torch.tensor([0] * 90 + [1] * 10))
        >>> sampler = bt.data.ClassBalancedSampler(train_set, class_shares="sqrt", seed=0)
        >>> loader = DataLoader(train_set, batch_size=20, sampler=sampler)  # num_workers=4 works too
        >>> for epoch in range(2):
        ...     sampler.set_epoch(epoch)
        ...     rare = sum(int((y == 1).sum()) for x, y in loader)
        >>> 15 < rare < 60  # sqrt shares: 25% of the epoch instead of 10%
        True
    """

    def __init__(
        self,
        labels: Any,
        class_shares: Union[str, float, dict] = "balanced",
        num_samples: Optional[int] = None,
        replacement: bool = True,
        generator: Optional[torch.Generator] = None,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        seed: int = 0,
        sample_weights: Optional[Any] = None,
        schedule: Any = None,
        num_classes: Optional[int] = None,
        *,
        strategy: Union[str, float, dict] = UNSET,
    ) -> None:
        class_shares = renamed("ClassBalancedSampler", "class_shares", class_shares, "strategy", strategy, "balanced")
        super().__init__(generator, seed, num_replicas, rank)
        replacement = _validate.flag(replacement, "replacement")
        self.labels = as_labels(labels, num_classes=num_classes)
        self.num_classes = int(num_classes) if num_classes is not None else infer_num_classes(self.labels)
        self.counts = class_counts(self.labels, self.num_classes)
        self._order, self._offsets = group_by_class(self.labels, self.counts)
        self.class_shares = class_shares
        self.replacement = replacement
        self._base_shares = target_shares(self.counts, class_shares, "class_shares" if strategy is UNSET else "strategy")
        self._natural = target_shares(self.counts, "natural")
        self._schedule = _schedule_fn(schedule)
        self._schedule_arg, self._num_classes_arg = schedule, num_classes  # as given, for repr
        self.sample_weights = self._check_sample_weights(sample_weights)
        self._requested = None if num_samples is None else _validate.integer(num_samples, "num_samples", low=1)
        self.num_samples = self._epoch_size(self.shares())

    @property
    def strategy(self) -> Union[str, float, dict]:
        """Deprecated name of :attr:`class_shares` (removed in the next release)."""
        warnings.warn("ClassBalancedSampler.strategy is deprecated; use .class_shares", DeprecationWarning, stacklevel=2)
        return self.class_shares

    def _check_sample_weights(self, sample_weights: Any) -> Optional[Tensor]:
        if sample_weights is None:
            return None
        w = as_tensor(sample_weights, "sample_weights").cpu().double()
        if w.shape != self.labels.shape:
            raise ValueError(f"sample_weights must have shape {tuple(self.labels.shape)}, got {tuple(w.shape)}")
        _validate.finite_nonnegative(w, "sample_weights")
        # each class's weights over their maximum: the per-class sums below can then
        # neither overflow (1e308s) nor underflow, and no ratio within a class changes
        class_max = torch.zeros(self.num_classes, dtype=torch.float64).scatter_reduce_(0, self.labels, w, "amax")
        empty = (class_max == 0) & (self._base_shares > 0)
        if bool(empty.any()):
            c = int(empty.nonzero()[0, 0])
            raise ValueError(f"sample_weights are all zero in class {c}, which class_shares samples")
        self._within_class = w / class_max.clamp_min(torch.finfo(torch.float64).tiny)[self.labels]
        return w

    def shares(self) -> Tensor:
        """The target class shares of the current epoch.

        Returns:
            Tensor[C] float64, summing to 1 (0 for classes without samples);
            with ``schedule`` it moves towards the natural shares as
            :meth:`set_epoch` advances.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> bt.data.ClassBalancedSampler(torch.tensor([0, 0, 0, 1]), class_shares="sqrt").shares()
            tensor([0.6340, 0.3660], dtype=torch.float64)
        """
        if self._schedule is None:
            return self._base_shares
        t = float(self._schedule(self.epoch))
        if not (math.isfinite(t) and 0.0 <= t <= 1.0):
            raise ValueError(f"schedule({self.epoch}) must be in [0, 1], got {t}")
        present = self._natural > 0
        mix = torch.zeros_like(self._natural)
        mix[present] = self._base_shares[present].clamp_min(1e-300) ** (1 - t) * self._natural[present] ** t
        return mix / mix.sum()

    def _epoch_size(self, shares: Tensor) -> int:
        if self.replacement:
            return self._requested if self._requested is not None else int(self.labels.numel())
        usable = shares > 0
        # the largest epoch whose quotas fit in every class
        limit = int(torch.floor((self.counts[usable].double() / shares[usable]).min() + 1e-9))
        total = self._requested if self._requested is not None else limit
        quotas = largest_remainder(shares, total)
        over = quotas > self.counts
        if bool(over.any()):
            c = int(over.nonzero()[0, 0])
            raise ValueError(
                f"num_samples={total} without replacement needs {int(quotas[c])} samples of class {c}, "
                f"which has {int(self.counts[c])}; use num_samples <= {limit} or replacement=True"
            )
        return total

    def _global_indices(self, generator: torch.Generator) -> Tensor:
        shares = self.shares()
        total = self._epoch_size(shares)
        per_class_mass = shares / self.counts.double().clamp_min(1)
        if self.replacement:
            # one alias table over samples: p(i) = share of its class x its weight within the class
            if self.sample_weights is None:
                w = per_class_mass[self.labels]
            else:
                unit = self._within_class
                class_sum = torch.zeros(self.num_classes, dtype=torch.float64).index_add_(0, self.labels, unit)
                w = shares[self.labels] * unit / class_sum.clamp_min(1e-300)[self.labels]
            return AliasTable(w).sample(total, generator)
        quotas = largest_remainder(shares, total)
        chosen = []
        for c in torch.nonzero(quotas).flatten().tolist():
            members = self._order[self._offsets[c] : self._offsets[c + 1]]
            k = int(quotas[c])
            if self.sample_weights is None:
                pick = torch.randperm(members.numel(), generator=generator)[:k]
            else:
                pick = sample_without_replacement(self._within_class[members], k, generator)
            chosen.append(members[pick])
        picked = torch.cat(chosen)
        return picked[torch.randperm(picked.numel(), generator=generator)]

    def _on_epoch_change(self) -> None:
        if hasattr(self, "_natural"):  # not during EpochSampler.__init__
            self.num_samples = self._epoch_size(self.shares())

    def _fingerprint_data(self) -> Dict[str, Tensor]:
        data = {"labels": self.labels}
        if self.sample_weights is not None:
            data["sample_weights"] = self.sample_weights
        return data

    def __iter__(self) -> Iterator[int]:
        """This rank's indices of the current epoch, as Python ints.

        Starts the epoch (or continues an interrupted pass from where it
        stopped); when a pass ends without ``set_epoch`` having been called,
        the next pass is the next epoch. ``indices()`` gives the same
        indices as one int64 tensor.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> labels = torch.tensor([0, 0, 0, 1])
            >>> drawn = labels[list(bt.data.ClassBalancedSampler(labels, num_samples=1000, seed=0))]
            >>> 400 < int((drawn == 1).sum()) < 600  # the rare class: about half the epoch
            True
        """
        return self._iterate()

    def __len__(self) -> int:
        """Indices per epoch on this rank: ``ceil(num_samples / num_replicas)``.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> len(bt.data.ClassBalancedSampler(torch.tensor([0, 0, 0, 1]), num_samples=10))
            10
        """
        return self._per_rank(self.num_samples)

    def _repr_args(self) -> Dict[str, Any]:
        args = {
            "labels": self._labels_summary(),
            "class_shares": self.class_shares,
            "num_samples": self._requested,
            "replacement": self.replacement,
        }
        args.update(self._common_args())
        args.update(sample_weights=self.sample_weights, schedule=self._schedule_arg, num_classes=self._num_classes_arg)
        return args
