"""Weighted sampling operators (C++ kernels) used by the samplers in :mod:`balancedtorch.data`."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .._repr import short_repr

__all__ = ["alias_table", "alias_sample", "sample_without_replacement", "AliasTable"]


def alias_table(weights: Tensor) -> Tuple[Tensor, Tensor]:
    """Vose's alias table of non-negative weights, built in O(N).

    Weights of any finite magnitude work: when their sum overflows float64
    (``[1e308, 1e308, 1]``) or is subnormal, the kernel first scales them by
    a power of two (which keeps every ratio).

    Args:
        weights (Tensor[N]): real weights (any floating or integer dtype;
            bool is refused), finite, >= 0, with a positive sum; need not sum
            to 1. CPU.

    Returns:
        (Tensor[N] float64, Tensor[N] int64): the keep-probability and the
        alias of each cell; :func:`alias_sample` draws from them.

    Raises:
        ValueError: weights not 1-D or empty, a negative or non-finite
            weight (named with its index), or weights that sum to zero.
        TypeError: bool or complex weights.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> prob, alias = bt.ops.alias_table(torch.tensor([1.0, 3.0]))
        >>> prob.tolist(), alias.tolist()
        ([0.5, 1.0], [1, 1])
    """
    return torch.ops.balancedtorch.alias_table(weights)


def alias_sample(prob: Tensor, alias: Tensor, num_samples: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """``num_samples`` indices drawn with replacement from an alias table, O(1) per draw.

    Args:
        prob (Tensor[N] float64): keep-probabilities from :func:`alias_table`.
        alias (Tensor[N] int64): aliases from :func:`alias_table`.
        num_samples (int): number of indices to draw (>= 0).
        generator (torch.Generator, optional): source of randomness (one
            63-bit seed is drawn from it); default torch's global RNG.

    Returns:
        Tensor[num_samples] int64: indices in ``[0, N)``, index i drawn with
        probability ``weights[i] / weights.sum()``.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> prob, alias = bt.ops.alias_table(torch.tensor([0.0, 1.0, 3.0]))
        >>> idx = bt.ops.alias_sample(prob, alias, 1000, torch.Generator().manual_seed(0))
        >>> bool((idx > 0).all())  # zero weight: never drawn
        True
    """
    # the kernel's counter-based stream is keyed by one 63-bit seed from the generator
    seed = torch.empty(1, dtype=torch.long).random_(generator=generator)
    return torch.ops.balancedtorch.alias_sample(prob, alias, seed, num_samples)


class AliasTable:
    """A reusable alias table of ``weights``: O(N) once, then O(1) per draw.

    Below 2**31 entries the table is also packed into one int64 word per cell
    (keep-threshold with 2**-32 resolution and alias), so that each draw reads
    a single random memory location.

    Args:
        weights (Tensor[N]): real weights, finite, >= 0, with a positive
            sum (see :func:`alias_table`). CPU.

    Attributes:
        prob (Tensor[N] float64), alias (Tensor[N] int64): the table.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> table = bt.ops.AliasTable(torch.tensor([1.0, 0.0, 3.0]))
        >>> idx = table.sample(10**6, torch.Generator().manual_seed(0))
        >>> torch.bincount(idx, minlength=3).tolist()  # about [250000, 0, 750000]
        [...]
    """

    def __init__(self, weights: Tensor) -> None:
        self.prob, self.alias = alias_table(weights)
        self.packed = torch.ops.balancedtorch.alias_pack(self.prob, self.alias) if self.prob.numel() < 2**31 else None

    def __len__(self) -> int:
        """Number of cells N (the number of weights).

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> len(bt.ops.AliasTable(torch.rand(10)))
            10
        """
        return self.prob.numel()

    def __repr__(self) -> str:
        """``AliasTable(weights=<tensor of N>)``: the weights are summarised by their number, never printed."""
        return f"{type(self).__name__}(weights={short_repr(self.prob)})"

    def sample(self, num_samples: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """``num_samples`` indices drawn with replacement, O(1) each.

        Args:
            num_samples (int): number of indices to draw (>= 0).
            generator (torch.Generator, optional): source of randomness (one
                63-bit seed is drawn from it); default torch's global RNG.

        Returns:
            Tensor[num_samples] int64: indices in ``[0, N)``.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> bt.ops.AliasTable(torch.tensor([0.0, 2.0])).sample(3).tolist()
            [1, 1, 1]
        """
        seed = torch.empty(1, dtype=torch.long).random_(generator=generator)
        if self.packed is not None:
            return torch.ops.balancedtorch.alias_sample_packed(self.packed, seed, num_samples)
        return torch.ops.balancedtorch.alias_sample(self.prob, self.alias, seed, num_samples)


def sample_without_replacement(weights: Tensor, num_samples: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """``num_samples`` distinct indices, in the order successive weighted draws would give them.

    Efraimidis-Spirakis keys ``log(u) / w`` and a partial selection: O(N)
    memory and no limit on N (``torch.multinomial`` refuses more than 2**24
    categories). Zero-weight indices are never drawn.

    Args:
        weights (Tensor[N]): real weights (any floating or integer dtype),
            finite, >= 0 (CPU).
        num_samples (int): distinct indices to draw, at most the number of
            positive weights.
        generator (torch.Generator, optional): source of the N uniforms;
            default torch's global RNG.

    Returns:
        Tensor[num_samples] int64: distinct indices into ``weights``.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> idx = bt.ops.sample_without_replacement(torch.tensor([1.0, 0.0, 5.0, 2.0]), 3)
        >>> sorted(idx.tolist())
        [0, 2, 3]
    """
    uniforms = torch.rand(weights.shape, dtype=torch.float64, generator=generator)
    uniforms = 1.0 - uniforms  # (0, 1]: log(u) is finite
    # the kernel rescales weights whose sum overflows or is subnormal (keys log(u) / w would be -inf)
    return torch.ops.balancedtorch.sample_without_replacement(weights, uniforms, num_samples)
