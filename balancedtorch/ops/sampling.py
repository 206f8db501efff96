"""Weighted sampling operators (C++ kernels) used by the samplers in :mod:`balancedtorch.data`."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["alias_table", "alias_sample", "sample_without_replacement"]


def alias_table(weights: Tensor) -> Tuple[Tensor, Tensor]:
    """Vose's alias table of non-negative weights, built in O(N).

    Args:
        weights (Tensor[N]): finite, >= 0, positive sum (CPU).

    Returns:
        (Tensor[N] float64, Tensor[N] int64): keep-probability and alias of each cell.
    """
    return torch.ops.balancedtorch.alias_table(weights)


def alias_sample(prob: Tensor, alias: Tensor, num_samples: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """``num_samples`` indices drawn with replacement from an alias table, O(1) per draw.

    Returns:
        Tensor[num_samples] int64.
    """
    uniforms = torch.rand((num_samples, 2), dtype=torch.float64, generator=generator)
    return torch.ops.balancedtorch.alias_sample(prob, alias, uniforms)


def sample_without_replacement(
    weights: Tensor, num_samples: int, generator: Optional[torch.Generator] = None
) -> Tensor:
    """``num_samples`` distinct indices, in the order successive weighted draws would give them.

    Efraimidis-Spirakis keys ``log(u) / w`` and a partial selection: O(N)
    memory and no limit on N (``torch.multinomial`` refuses more than 2**24
    categories). Zero-weight indices are never drawn.

    Returns:
        Tensor[num_samples] int64.
    """
    uniforms = torch.rand(weights.shape, dtype=torch.float64, generator=generator)
    uniforms = 1.0 - uniforms  # (0, 1]: log(u) is finite
    return torch.ops.balancedtorch.sample_without_replacement(weights, uniforms, num_samples)


@torch.library.register_fake("balancedtorch::alias_table")
def _alias_table_fake(weights):
    n = weights.shape[0]
    return weights.new_empty((n,), dtype=torch.float64), weights.new_empty((n,), dtype=torch.long)


@torch.library.register_fake("balancedtorch::alias_sample")
def _alias_sample_fake(prob, alias, uniforms):
    return alias.new_empty((uniforms.shape[0],))


@torch.library.register_fake("balancedtorch::sample_without_replacement")
def _sample_without_replacement_fake(weights, uniforms, num_samples):
    return weights.new_empty((num_samples,), dtype=torch.long)
