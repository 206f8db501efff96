"""``StratifiedBatchSampler``: every batch holds a fixed per-class quota."""

from __future__ import annotations

import warnings
from typing import Any, Dict, Iterator, List, Optional, Union

import torch
from torch import Tensor
from torch.utils.data import Sampler

from .. import _validate
from .._classes import group_by_class
from .._labels import infer_num_classes
from .._validate import UNSET, renamed
from ..ops.class_counts import class_counts
from ._epoch import EpochSampler, largest_remainder
from ._shares import target_shares
from .labels import as_labels

__all__ = ["StratifiedBatchSampler"]


class StratifiedBatchSampler(EpochSampler, Sampler[List[int]]):
    """Yields batches of indices in which every class has its quota.

    The per-batch quota of class c is its share of ``batch_size`` rounded by
    largest remainder (quotas sum to ``batch_size``; ties to the lower class).
    Each class's indices are consumed in a random order; a class smaller than
    its epoch demand is cycled, reshuffled on each pass, so rare classes
    repeat and common ones are spread over the epoch. Indices within a batch
    are shuffled.

    Args:
        labels (Tensor[N] | array | Dataset): class labels or a dataset.
        batch_size (int): samples per batch.
        class_shares: each class's share of every batch — ``"natural"``
            (p_c ∝ n_c; default), ``"balanced"`` (equal counts per class in
            every batch: m-per-class sampling for metric learning), ``"sqrt"``,
            a float alpha (p_c ∝ n_c ** alpha) or a dict ``{class: share}``;
            the vocabulary of :class:`ClassBalancedSampler`. Formerly
            ``class_ratios`` (deprecated alias, removed in the next release;
            its ``"dataset"`` is ``"natural"``).
        drop_last (bool): the default epoch is ``floor(N / batch_size)``
            batches instead of ``ceil(N / batch_size)``. Batches are always
            full. Default False.
        num_batches (int, optional): batches per epoch across all ranks
            (default: from ``drop_last``, as above).
        generator (torch.Generator, optional): source of randomness (single
            process); by default epochs derive from ``seed`` and ``epoch``.
        num_replicas, rank (int, optional): distributed sharding (default
            from ``torch.distributed``, read when an epoch starts); each rank
            gets ``ceil(num_batches / num_replicas)`` whole batches. With
            PyTorch Lightning use ``Trainer(use_distributed_sampler=False)``
            (Lightning cannot re-create a custom batch sampler; it raises a
            TypeError that says so); inside accelerate's ``BatchSamplerShard``
            it yields the whole epoch and accelerate deals the batches out.
        seed (int): base seed shared by all ranks. Default 0.
        num_classes (int, optional): number of classes C; labels must lie in
            ``[0, C)``. Default ``labels.max() + 1``, refused above 2**24 (a
            stray id such as 2**40 names itself in a ValueError instead of
            sizing per-class tables by it): pass it for more classes.

    ``state_dict()`` / ``load_state_dict()`` resume mid-epoch (the position
    counts batches) on a fresh sampler over the same data. With
    ``DataLoader(num_workers > 0)`` the loader prefetches, so a state taken
    inside the training loop is ahead of the consumed batches: use torchdata's ``StatefulDataLoader`` (it calls
    these methods itself) or the sampler's state from the start of the epoch
    plus the number of consumed batches (README, "Resuming with DataLoader
    workers").

    Example:
        >>> import balancedtorch as bt
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> train_set = TensorDataset(torch.randn(100, 4), torch.tensor([0] * 90 + [1] * 10))
        >>> batches = bt.data.StratifiedBatchSampler(train_set, batch_size=8, class_shares="balanced")
        >>> loader = DataLoader(train_set, batch_sampler=batches)  # num_workers=4 works too
        >>> x, y = next(iter(loader))
        >>> torch.bincount(y).tolist()  # every batch: 4 of each class
        [4, 4]
    """

    def __init__(
        self,
        labels: Any,
        batch_size: int,
        class_shares: Union[str, float, Dict[int, float]] = "natural",
        drop_last: bool = False,
        num_batches: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        seed: int = 0,
        num_classes: Optional[int] = None,
        *,
        class_ratios: Union[str, Dict[int, float]] = UNSET,
    ) -> None:
        class_shares = renamed("StratifiedBatchSampler", "class_shares", class_shares, "class_ratios", class_ratios, "natural")
        if isinstance(labels, Sampler):
            # Lightning's Trainer(use_distributed_sampler=True) re-creates a custom batch
            # sampler as cls(DistributedSampler(dataset), batch_size=, drop_last=)
            raise TypeError(
                f"StratifiedBatchSampler: labels must be labels or a dataset, got a {type(labels).__name__}. "
                "If PyTorch Lightning passed it (re-creating the batch sampler because "
                "Trainer(use_distributed_sampler=True)), use Trainer(use_distributed_sampler=False): "
                "StratifiedBatchSampler shards its batches across torch.distributed ranks itself."
            )
        super().__init__(generator, seed, num_replicas, rank)
        self.batch_size = _validate.integer(batch_size, "batch_size", low=1)
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last must be a bool, got {drop_last!r}")
        self.labels = as_labels(labels, num_classes=num_classes)
        self.num_classes = int(num_classes) if num_classes is not None else infer_num_classes(self.labels)
        self.counts = class_counts(self.labels, self.num_classes)
        self.class_shares = class_shares
        self.drop_last = drop_last
        shares = target_shares(self.counts, class_shares, "class_shares" if class_ratios is UNSET else "class_ratios")
        self.quotas = largest_remainder(shares, self.batch_size)
        starved = ((shares > 0) & (self.quotas == 0)).nonzero().flatten().tolist()
        if starved:
            warnings.warn(
                f"StratifiedBatchSampler: classes {starved[:10]} get no place in a batch of {self.batch_size} "
                "with these class_shares and will never be sampled; raise batch_size or use class_shares='balanced'",
                stacklevel=2,
            )
        n = int(self.labels.numel())
        default = n // self.batch_size if drop_last else -(-n // self.batch_size)
        self.num_batches = _validate.integer(num_batches, "num_batches", low=1) if num_batches is not None else max(default, 1)
        self._num_batches_arg, self._num_classes_arg = num_batches, num_classes  # as given, for repr
        self._order, self._offsets = group_by_class(self.labels, self.counts)

    @property
    def class_ratios(self) -> Union[str, float, Dict[int, float]]:
        """Deprecated name of :attr:`class_shares` (removed in the next release)."""
        warnings.warn("StratifiedBatchSampler.class_ratios is deprecated; use .class_shares", DeprecationWarning, stacklevel=2)
        return self.class_shares

    def _class_stream(self, c: int, length: int, generator: torch.Generator) -> Tensor:
        members = self._order[self._offsets[c] : self._offsets[c + 1]]
        passes = -(-length // members.numel())
        parts = [members[torch.randperm(members.numel(), generator=generator)] for _ in range(passes)]
        return torch.cat(parts)[:length]

    def _global_indices(self, generator: torch.Generator) -> Tensor:
        B, bs = self.num_batches, self.batch_size
        columns = []
        for c in torch.nonzero(self.quotas).flatten().tolist():
            q = int(self.quotas[c])
            columns.append(self._class_stream(c, q * B, generator).view(B, q))
        batches = torch.cat(columns, dim=1)
        # shuffle within each batch: argsort of random keys per row
        within = torch.rand((B, bs), generator=generator).argsort(dim=1)
        return batches.gather(1, within)

    def indices(self) -> Tensor:
        """This rank's batches for the current epoch, as an int64 tensor (batches, batch_size).

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> bt.data.StratifiedBatchSampler(torch.tensor([0, 1] * 8), batch_size=4).indices().shape
            torch.Size([4, 4])
        """
        return super().indices()

    def quota(self) -> Dict[int, int]:
        """Samples of each class in every batch: ``{class: count}``, classes with a zero quota left out.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> bt.data.StratifiedBatchSampler(torch.tensor([0] * 90 + [1] * 10), batch_size=10).quota()
            {0: 9, 1: 1}
        """
        return {c: int(q) for c, q in enumerate(self.quotas.tolist()) if q > 0}

    def _fingerprint_data(self) -> Dict[str, Tensor]:
        return {"labels": self.labels}

    def __iter__(self) -> Iterator[List[int]]:
        """This rank's batches of the current epoch, each a list of ``batch_size`` int indices.

        Starts the epoch (or continues an interrupted pass from where it
        stopped); when a pass ends without ``set_epoch`` having been called,
        the next pass is the next epoch. ``indices()`` gives the same batches
        as one int64 tensor ``(batches, batch_size)``.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> batches = bt.data.StratifiedBatchSampler(torch.tensor([0, 0, 0, 1] * 4), batch_size=4)
            >>> [len(b) for b in batches]
            [4, 4, 4, 4]
        """
        return self._iterate()

    def __len__(self) -> int:
        """Batches per epoch on this rank: ``ceil(num_batches / num_replicas)``.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> len(bt.data.StratifiedBatchSampler(torch.tensor([0, 1] * 10), batch_size=4, drop_last=True))
            5
        """
        return self._per_rank(self.num_batches)

    def _repr_args(self) -> Dict[str, Any]:
        args = {
            "labels": self._labels_summary(),
            "batch_size": self.batch_size,
            "class_shares": self.class_shares,
            "drop_last": self.drop_last,
            "num_batches": self._num_batches_arg,
        }
        args.update(self._common_args())
        args["num_classes"] = self._num_classes_arg
        return args
