"""Everything about ``torch.distributed`` in one place: is a process group running, the collectives, agreement.

Every cross-rank feature of the package goes through this module: the
samplers read the world size and rank here, the metrics and the quality tools
decide with :func:`use_distributed` whether to reduce, and :class:`Comm` holds
the collectives (tensors on the device the backend needs) and the per-rank
error agreement that keeps a rank with bad input from leaving the others
waiting. The word for cross-rank behaviour in the public API is
``distributed`` (``None``: on when a process group of world size > 1 runs).
"""

from __future__ import annotations

import warnings
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ._validate import UNSET


def initialized() -> bool:
    """Whether the default process group exists (``torch.distributed`` available and initialised)."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


def world_and_rank() -> Optional[Tuple[int, int]]:
    """(world size, rank) of the default process group, or None when there is none."""
    if initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return None


def active() -> bool:
    """Whether a collective would reach other processes: a process group of world size > 1."""
    return initialized() and torch.distributed.get_world_size() > 1


def use_distributed(distributed: Any, name: str = "distributed") -> bool:
    """Whether to reduce across ranks: ``None`` means "a process group of world size > 1 is initialised".

    ``True`` without a process group is a ValueError (nothing to reduce over);
    a value that is not a bool or None is a TypeError naming ``name``.
    """
    if distributed is None:
        return active()
    if not isinstance(distributed, (bool, np.bool_)):
        raise TypeError(f"{name} must be True, False or None, got {distributed!r}")
    if distributed and not initialized():
        raise ValueError(f"{name}=True needs an initialised torch.distributed process group (init_process_group)")
    return bool(distributed) and torch.distributed.get_world_size() > 1


def cross_rank(owner: str, distributed: Any, sync: Any = UNSET) -> bool:
    """Whether a method combines all ranks: ``distributed`` as :func:`use_distributed` reads it.

    ``sync`` is its deprecated name (one release; ``sync=True`` is
    ``distributed=None``, ``sync=False`` is ``distributed=False``): it warns
    at the caller's line of the method calling this.
    """
    if sync is not UNSET:
        if not isinstance(sync, (bool, np.bool_)):
            raise TypeError(f"sync must be True or False, got {sync!r}")
        if distributed is not None:
            raise TypeError(f"{owner}: pass distributed= only (sync= is its deprecated name), got both")
        warnings.warn(
            f"{owner}: sync= is deprecated and will be removed in the next release; use distributed= "
            "(sync=True is distributed=None, sync=False is distributed=False)",
            DeprecationWarning,
            stacklevel=3,
        )
        distributed = None if sync else False
    return use_distributed(distributed)


def all_reduce_(t: Tensor) -> Tensor:
    """Sum ``t`` over the ranks of the default group, in place (the tensor must be where the backend reads it)."""
    torch.distributed.all_reduce(t)
    return t


def all_gather_(parts: List[Tensor], t: Tensor) -> List[Tensor]:
    """Every rank's ``t`` into ``parts`` (one tensor like ``t`` per rank, rank 0 first), in place."""
    torch.distributed.all_gather(parts, t)
    return parts


class Comm:
    """The default process group, with tensors on the device its backend needs (NCCL: the current CUDA device)."""

    def __init__(self) -> None:
        dist = torch.distributed
        self.world = dist.get_world_size()
        self.rank = dist.get_rank()
        backend = str(dist.get_backend()).lower()
        self.device = torch.device("cuda", torch.cuda.current_device()) if "nccl" in backend else torch.device("cpu")

    def all_reduce(self, t: Tensor) -> Tensor:
        """Sum over ranks (a copy, on the CPU)."""
        buf = t.to(self.device, copy=True)
        torch.distributed.all_reduce(buf)
        return buf.cpu()

    def all_gather(self, t: Tensor, device: Any = None) -> List[Tensor]:
        """Every rank's ``t`` (same shape on every rank), rank 0 first, on ``device`` (default: the CPU)."""
        buf = t.to(self.device).contiguous()
        out = [torch.empty_like(buf) for _ in range(self.world)]
        torch.distributed.all_gather(out, buf)
        target = torch.device("cpu") if device is None else device
        return [o.to(target) for o in out]

    def all_gather_rows(self, t: Tensor, sizes: Optional[Sequence[int]] = None, device: Any = None) -> List[Tensor]:
        """Every rank's ``t`` whose first dimension may differ between ranks (padded to the longest, then cut).

        ``sizes``: every rank's row count when the caller already exchanged
        them (saves one all-gather); ``device``: where the parts land (default:
        the CPU).
        """
        if sizes is None:
            sizes = [int(s) for s in self.all_gather(torch.tensor([t.shape[0]], dtype=torch.long))]
        padded = t.new_zeros((max(max(sizes), 1),) + tuple(t.shape[1:]))
        padded[: t.shape[0]] = t
        return [part[:n] for part, n in zip(self.all_gather(padded, device), sizes)]

    def agree(self, error: Optional[BaseException], facts: Sequence[int], what: str) -> List[List[int]]:
        """Every rank's ``facts`` (small ints); raises on every rank if any rank failed or they disagree.

        Called by every rank before anything that depends on the data, so a
        rank with bad input raises its own error and the others a ValueError
        naming that rank, instead of waiting forever in a later collective.
        """
        mine = torch.tensor([0 if error is None else 1] + list(facts), dtype=torch.long)
        rows = [r.tolist() for r in self.all_gather(mine)]
        if error is not None:
            raise error
        failed = [r for r, row in enumerate(rows) if row[0]]
        if failed:
            raise ValueError(f"{what}: invalid input on rank(s) {failed} (see the error raised there)")
        return [row[1:] for row in rows]
