"""``WeightedRandomSampler``: drop-in for torch's, on O(1)-per-draw C++ kernels, for any N."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from .. import _validate
from .._validate import as_tensor
from ..ops.sampling import AliasTable, sample_without_replacement
from ._epoch import EpochSampler
from .labels import refuse_meta

__all__ = ["WeightedRandomSampler"]


def _as_weights(weights) -> Tensor:
    if isinstance(weights, Tensor):
        refuse_meta(weights, "weights", "WeightedRandomSampler")
        w = weights.detach().cpu()
    else:
        array = np.asarray(weights)
        if array.dtype.kind not in "iuf":
            raise ValueError(f"weights must be numbers, got an array of dtype {array.dtype}")
        w = as_tensor(array, "weights")
    if w.dim() != 1:
        raise ValueError(f"weights must be a 1-D sequence, got shape {tuple(w.shape)}")
    if w.numel() == 0:
        raise ValueError("weights is empty")
    if w.dtype == torch.bool or w.is_complex():
        raise ValueError(f"weights must be real numbers, got dtype {w.dtype}")
    w = _validate.finite_nonnegative(w.double(), "weights")
    if not w.sum() > 0:
        raise ValueError("weights sum to zero; nothing can be drawn")
    return w


class WeightedRandomSampler(EpochSampler, DistributedSampler[int]):
    """Samples ``num_samples`` indices with probabilities proportional to ``weights``.

    Same signature and semantics as ``torch.utils.data.WeightedRandomSampler``,
    faster and for any number of weights: with replacement an alias table
    (O(N) once, O(1) per draw); without replacement Efraimidis-Spirakis keys
    and a partial selection (O(N) memory; ``torch.multinomial`` refuses more
    than 2**24 categories). Zero-weight indices are never drawn; weights of
    any finite magnitude work (a sum that overflows float64 is rescaled).
    Adds ``set_epoch``, ``state_dict``/``load_state_dict`` (resume mid-epoch)
    and ``indices()``.

    ``state_dict()`` / ``load_state_dict()`` resume mid-epoch on a fresh
    sampler over the same data. With ``DataLoader(num_workers > 0)`` the
    loader prefetches, so a state taken inside the training loop is ahead of
    the consumed batches: use torchdata's ``StatefulDataLoader`` (it calls
    these methods itself) or the sampler's state from the start of the epoch
    plus the number of consumed batches (README, "Resuming with DataLoader
    workers").

    Args:
        weights (sequence[N]): non-negative weights, need not sum to 1.
        num_samples (int): indices per epoch.
        replacement (bool): draw with replacement (default) or not
            (then ``num_samples`` <= number of positive weights).
        generator (torch.Generator, optional): source of randomness; without
            one, each epoch draws its seed from torch's global RNG, as torch
            does, except when sharded (then from ``seed`` and the epoch, the
            same on every rank, as ``DistributedSampler``).
        num_replicas, rank (int, optional, keyword): distributed sharding,
            as the other samplers: default from ``torch.distributed``, read
            when an epoch starts. ``num_samples`` counts the whole epoch; each
            rank gets ``ceil(num_samples / num_replicas)`` disjoint positions
            of it (torch's sampler gives every rank ``num_samples`` draws).
            Pass ``num_replicas=1, rank=0`` for torch's per-rank behaviour.
        seed (int, keyword): base seed of the sharded epochs (default 0).

    Example:
        >>> import balancedtorch as bt
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> dataset = TensorDataset(torch.randn(100, 4), torch.tensor([0] * 90 + [1] * 10))
        >>> sample_weights = 1.0 / bt.ops.class_counts(dataset.tensors[1], 2).double()[dataset.tensors[1]]
        >>> sampler = bt.data.WeightedRandomSampler(sample_weights, num_samples=len(dataset), seed=0)
        >>> loader = DataLoader(dataset, batch_size=50, sampler=sampler)
        >>> 30 < sum(int(y.sum()) for x, y in loader) < 70  # the rare class: about half of 100 draws
        True
    """

    def __init__(
        self,
        weights: Union[Sequence[float], Tensor],
        num_samples: int,
        replacement: bool = True,
        generator: Optional[torch.Generator] = None,
        *,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement!r}")
        self.num_samples = _validate.integer(num_samples, "num_samples", low=1)
        self.weights = _as_weights(weights)
        self.replacement = replacement
        positive = int((self.weights > 0).sum())
        if not replacement and self.num_samples > positive:
            raise ValueError(
                f"num_samples={self.num_samples} exceeds the {positive} indices with positive weight; "
                "without replacement each index is drawn at most once"
            )
        super().__init__(generator, seed, num_replicas, rank)
        self._table = AliasTable(self.weights) if replacement else None

    def _random_epochs(self) -> bool:
        return self.generator is not None or self.num_replicas == 1

    def _draw_epoch_seed(self) -> int:
        if self.generator is None and self.num_replicas == 1:  # torch's sampler draws from the global RNG
            return int(torch.randint(0, (1 << 63) - 1, (1,), dtype=torch.long))
        # sharded: every rank must draw the same epoch, and their global RNGs may differ
        return super()._draw_epoch_seed()

    def _global_indices(self, generator: torch.Generator) -> Tensor:
        if self.replacement:
            return self._table.sample(self.num_samples, generator)
        return sample_without_replacement(self.weights, self.num_samples, generator)

    def _fingerprint_data(self) -> Dict[str, Tensor]:
        return {"weights": self.weights}

    def __iter__(self) -> Iterator[int]:
        """This rank's indices of the current epoch, as Python ints.

        Starts the epoch (or continues an interrupted pass from where it
        stopped); when a pass ends without ``set_epoch`` having been called,
        the next pass draws a new epoch. ``indices()`` gives the same indices
        as one int64 tensor.

        Example:
            >>> import balancedtorch as bt
            >>> sampler = bt.data.WeightedRandomSampler([0.0, 1.0, 3.0], num_samples=5)
            >>> 0 in list(sampler)  # zero weight: never drawn
            False
        """
        return self._iterate()

    def __len__(self) -> int:
        """Indices per epoch on this rank: ``ceil(num_samples / num_replicas)``.

        Example:
            >>> import balancedtorch as bt
            >>> len(bt.data.WeightedRandomSampler([1.0, 2.0], num_samples=7, num_replicas=2, rank=0))
            4
        """
        return self._per_rank(self.num_samples)

    def _repr_args(self) -> Dict[str, Any]:
        args = {"weights": self.weights, "num_samples": self.num_samples, "replacement": self.replacement}
        args.update(self._common_args())
        return args
