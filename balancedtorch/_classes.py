"""Grouping sample indices by class, shared by the samplers and the quality tools."""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor


def group_by_class(labels: Tensor, counts: Tensor) -> Tuple[Tensor, List[int]]:
    """Indices sorted by class and the class boundaries.

    Class c's members are ``order[offsets[c]:offsets[c + 1]]``, in index order
    (a stable sort). ``counts`` is ``bincount(labels)`` over all classes.
    """
    order = torch.argsort(labels, stable=True)
    offsets = [0] + counts.cumsum(0).tolist()
    return order, offsets
