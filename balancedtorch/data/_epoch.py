"""What every balancedtorch sampler shares: epochs, seeds, rank sharding and resumable state."""

from __future__ import annotations

import numbers
import sys
import warnings
import zlib
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from .. import _validate
from .._distributed import world_and_rank
from .._repr import Shown, call_repr

_MASK63 = (1 << 63) - 1


def check_replicas(num_replicas: Optional[int], rank: Optional[int]) -> Tuple[Optional[int], Optional[int]]:
    """The ``num_replicas`` / ``rank`` arguments, checked; None stays None (resolved per epoch)."""
    num_replicas = _validate.integer(num_replicas, "num_replicas", low=1, optional=True)
    rank = _validate.integer(rank, "rank", low=0, optional=True)
    if rank is not None and num_replicas is not None and rank >= num_replicas:
        raise ValueError(f"rank must be an int in [0, num_replicas={num_replicas}), got {rank!r}")
    return num_replicas, rank


def resolve_replicas(num_replicas: Optional[int], rank: Optional[int]) -> Tuple[int, int]:
    """(num_replicas, rank), from torch.distributed when not given (one replica without a process group)."""
    num_replicas, rank = check_replicas(num_replicas, rank)
    if num_replicas is None or rank is None:
        group = world_and_rank()
        if num_replicas is None:
            num_replicas = group[0] if group is not None else 1
        if rank is None:
            rank = group[1] if group is not None else 0
    if not rank < num_replicas:
        raise ValueError(
            f"rank must be an int in [0, num_replicas={num_replicas}), got {rank!r}"
            + ("" if world_and_rank() is not None else " (torch.distributed is not initialised: one replica)")
        )
    return num_replicas, rank


# Samplers of other libraries that shard what an inner sampler yields across
# ranks themselves: an inner sampler that also shards would hand each rank
# 1 / world_size of its share and drop the rest of the epoch.
_OUTER_SHARDERS = (
    ("accelerate.data_loader", "BatchSamplerShard"),
    ("lightning_fabric.utilities.distributed", "_DatasetSamplerWrapper"),
    ("lightning.fabric.utilities.distributed", "_DatasetSamplerWrapper"),
)
_FRAMES_SEARCHED = 8  # the sampler's own methods, torch's BatchSampler, the wrapper


def outer_sharder(sampler: Any) -> Optional[str]:
    """The class name of a sharding sampler that is iterating (or sizing) ``sampler``, if any.

    Looks at the few callers of ``__iter__`` / ``__len__``: a
    ``torch.utils.data.DistributedSampler`` other than ``sampler`` (Lightning's
    DistributedSamplerWrapper, ignite's DistributedProxySampler, catalyst's
    DistributedSamplerWrapper), accelerate's ``BatchSamplerShard`` or
    Lightning's ``_DatasetSamplerWrapper``. About a microsecond per call.
    """
    classes = [DistributedSampler]
    for module, name in _OUTER_SHARDERS:
        found = getattr(sys.modules.get(module), name, None)
        if isinstance(found, type):
            classes.append(found)
    classes = tuple(classes)
    frame = sys._getframe(1)
    for _ in range(_FRAMES_SEARCHED):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if owner is not None and owner is not sampler and isinstance(owner, classes):
            return type(owner).__name__
        frame = frame.f_back
    return None


def largest_remainder(shares: Tensor, total: int) -> Tensor:
    """Integer counts proportional to ``shares`` that sum to ``total`` exactly (Hamilton's method)."""
    shares = shares.double()
    exact = shares / shares.sum() * total
    counts = exact.floor().long()
    short = total - int(counts.sum())
    if short > 0:
        # ties go to the lower class index: stable sort of the remainders
        order = torch.sort(exact - counts, descending=True, stable=True).indices
        counts[order[:short]] += 1
    return counts


class EpochSampler:
    """Epoch bookkeeping of a sampler.

    The indices of an epoch are a function of one 63-bit ``epoch seed``: drawn
    from ``generator`` when one is given (so successive epochs differ and the
    generator advances, as torch's samplers do), otherwise derived from
    ``seed`` and ``epoch`` (identical on every rank, as DistributedSampler).
    Until ``set_epoch`` is first called, a finished pass moves to the next
    epoch by itself, so single-process loops reshuffle without it.
    ``state_dict()`` holds the seed, epoch, epoch seed and position, which is
    all a fresh sampler needs to resume mid-epoch, and what
    ``load_state_dict`` checks it against (rank, world size, a fingerprint
    of the data); with DataLoader workers see :meth:`state_dict`.

    ``num_replicas`` / ``rank`` not given are resolved from torch.distributed
    when an epoch starts (``__iter__``, ``__len__``, ``indices()``,
    ``set_epoch``), not at construction: a sampler built before
    ``init_process_group`` (a DataLoader made before Lightning or accelerate
    start the process group) shards once the group exists. The resolution
    holds until the epoch ends; an epoch that began as one replica warns once
    if a larger group appears before it ends. Inside a framework's sampler
    that shards across ranks itself (accelerate's ``BatchSamplerShard``,
    Lightning's ``DistributedSamplerWrapper``, ignite's
    ``DistributedProxySampler``) the sampler yields the whole epoch and lets
    the framework split it; with an explicit ``num_replicas > 1`` that would
    shard twice and drop data, so it raises a ValueError.
    """

    def __init__(self, generator: Optional[torch.Generator], seed: int, num_replicas: Optional[int], rank: Optional[int]):
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator
        self.seed = _validate.integer(seed, "seed", int64=False)  # any int: it is hashed
        self._replicas_arg, self._rank_arg = check_replicas(num_replicas, rank)
        self._pinned: Optional[Tuple[int, int]] = None  # (num_replicas, rank) of the epoch in progress
        self._outer: Optional[str] = None  # a framework sampler that shards what this one yields
        self._warned_world = False
        self.epoch = 0
        self._explicit_epoch = False
        self._epoch_seed: Optional[int] = None
        self._position = 0
        self._cache: Optional[Tensor] = None

    # -- repr -----------------------------------------------------------------
    def _repr_args(self) -> Dict[str, Any]:
        """The constructor arguments as this sampler holds them, by name, in signature order (subclasses)."""
        raise NotImplementedError

    def _common_args(self) -> Dict[str, Any]:
        """generator, num_replicas, rank and seed as given (None when left to torch.distributed)."""
        return {"generator": self.generator, "num_replicas": self._replicas_arg, "rank": self._rank_arg, "seed": self.seed}

    def __repr__(self) -> str:
        """The constructor call: required arguments, then those that differ from their defaults.

        Tensors are summarised (``labels=<tensor of 10000, 5 classes>``,
        ``weights=<tensor of 10000>``), a generator shows as
        ``<torch.Generator>``; ``num_replicas`` / ``rank`` appear when given,
        not when read from torch.distributed (and reading them never raises).
        """
        return call_repr(self, self._repr_args())

    def _labels_summary(self) -> Shown:
        return Shown(f"<tensor of {self.labels.numel()}, {self.num_classes} classes>")

    # -- ranks ----------------------------------------------------------------
    @property
    def num_replicas(self) -> int:
        """Ranks the epoch is sharded over: the argument, else torch.distributed's world size (1 without a group)."""
        return self._replicas()[0]

    @property
    def rank(self) -> int:
        """This sampler's rank: the argument, else torch.distributed's rank (0 without a group)."""
        return self._replicas()[1]

    def _epoch_started(self) -> bool:
        return self._cache is not None or self._position > 0

    def _resolve(self) -> Tuple[int, int]:
        """(num_replicas, rank) for an epoch that starts now."""
        if self._outer is not None and self._replicas_arg is None:
            return resolve_replicas(1, 0 if self._rank_arg is None else self._rank_arg)  # the framework splits
        return resolve_replicas(self._replicas_arg, self._rank_arg)

    def _replicas(self) -> Tuple[int, int]:
        if self._pinned is not None and self._epoch_started():
            if self._pinned[0] == 1 and self._replicas_arg is None and self._outer is None and not self._warned_world:
                group = world_and_rank()
                if group is not None and group[0] > 1:
                    self._warned_world = True
                    warnings.warn(
                        f"{type(self).__name__}: this epoch started before torch.distributed was initialised, as one "
                        f"replica; the process group now has {group[0]} ranks, so every rank draws this whole epoch. "
                        "The next epoch (set_epoch or a new pass) is sharded; build the sampler after "
                        "init_process_group or call set_epoch at the start of every epoch.",
                        stacklevel=3,
                    )
            return self._pinned
        return self._resolve()

    def _check_outer(self) -> None:
        """Notice a framework sampler that shards this one's output (see the class docstring)."""
        if self._outer is not None:
            return
        name = outer_sharder(self)
        if name is None:
            return
        if self._replicas_arg is not None and self._replicas_arg > 1:
            raise ValueError(
                f"{type(self).__name__}(num_replicas={self._replicas_arg}) is inside {name}, which shards it across "
                f"ranks again: each rank would get 1/{self._replicas_arg} of its share and the rest of the epoch "
                "would be dropped. Leave num_replicas and rank unset (the sampler then yields the whole epoch and "
                f"{name} splits it), or keep them and stop the framework from sharding (README, "
                "'With Lightning / accelerate')."
            )
        self._outer = name
        if self._position == 0 and getattr(self, "_live", None) is None:  # not begun: recomputed whole
            self._cache = None
            self._pinned = None

    def _per_rank(self, total: int) -> int:
        """``__len__``: this rank's share of ``total`` items."""
        self._check_outer()
        return -(-total // self.num_replicas)

    # -- epochs ---------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose indices the next iteration yields (reshuffles).

        The epoch already selected is kept as it is, position included:
        trainers (Lightning) call ``set_epoch`` after the DataLoader iterator
        has started drawing from the sampler. After the first call the epoch
        number advances only through ``set_epoch``, as with torch's
        ``DistributedSampler``.

        Args:
            epoch (int): the epoch number, >= 0; with the same ``seed`` every
                rank draws the same epoch.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> sampler = bt.data.ClassBalancedSampler(torch.tensor([0] * 6 + [1] * 2), seed=0)
            >>> loader = torch.utils.data.DataLoader(range(8), batch_size=4, sampler=sampler)
            >>> epochs = []
            >>> for epoch in range(3):
            ...     sampler.set_epoch(epoch)  # a new draw each epoch, the same one on every rank
            ...     epochs.append([batch.tolist() for batch in loader])
            >>> epochs[0] != epochs[1], len(epochs[2])
            (True, 2)
        """
        epoch = _validate.integer(epoch, "epoch", low=0, int64=False)
        if int(epoch) == self.epoch:
            self._explicit_epoch = True
            return
        self.epoch = int(epoch)
        self._explicit_epoch = True
        self._reset_epoch()

    def _reset_epoch(self) -> None:
        self._pinned = None
        self._live = None
        self._epoch_seed = None
        self._position = 0
        self._cache = None
        self._on_epoch_change()

    def _on_epoch_change(self) -> None:
        """Hook for samplers whose epoch size depends on the epoch."""

    def _random_epochs(self) -> bool:
        """Whether epoch seeds are drawn (from a generator) rather than derived from seed and epoch."""
        return self.generator is not None

    def _draw_epoch_seed(self) -> int:
        if self.generator is not None:
            return int(torch.randint(0, _MASK63, (1,), generator=self.generator, dtype=torch.long))
        # splitmix-style mixing of (seed, epoch): same on every rank
        z = (self.seed * 0x9E3779B97F4A7C15 + (self.epoch + 1) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
        z = ((z ^ (z >> 31)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
        return (z ^ (z >> 29)) & _MASK63

    def _epoch_generator(self) -> torch.Generator:
        if self._epoch_seed is None:
            self._epoch_seed = self._draw_epoch_seed()
        return torch.Generator().manual_seed(self._epoch_seed)

    # -- indices --------------------------------------------------------------
    def _global_indices(self, generator: torch.Generator) -> Tensor:
        """All ranks' indices of the epoch (subclasses)."""
        raise NotImplementedError

    def _shard(self, items: Tensor) -> Tensor:
        """This rank's share: pad by wrapping to a multiple of num_replicas, then every num_replicas-th item."""
        num_replicas, rank = self._pinned
        if num_replicas == 1:
            return items
        total = items.shape[0]
        per_rank = -(-total // num_replicas)
        padded = per_rank * num_replicas
        if padded > total:
            reps = -(-padded // max(total, 1))
            items = torch.cat([items] * reps)[:padded]
        return items[rank::num_replicas]

    def indices(self) -> Tensor:
        """This rank's indices for the current epoch (what iteration yields), as int64.

        Returns:
            Tensor[len(self)] int64 (the whole epoch, from its start, also
            mid-pass).

        Example:
            >>> import balancedtorch as bt
            >>> bt.data.WeightedRandomSampler([0.0, 1.0], num_samples=3).indices().tolist()
            [1, 1, 1]
        """
        live = getattr(self, "_live", None)
        if live is not None and live[0].__length_hint__() == 0:
            self._settle()  # the previous pass finished: this is the next epoch
        if self._cache is None:
            self._pinned = self._resolve()  # the epoch starts: its ranks hold until it ends
            self._cache = self._shard(self._global_indices(self._epoch_generator()))
        else:
            self._replicas()  # warns if a larger process group appeared mid-epoch
        return self._cache

    def _settle(self) -> None:
        """Close the previous pass: a finished one ends the epoch; an abandoned
        one leaves its position, which the next pass continues from."""
        live = getattr(self, "_live", None)
        if live is None:
            return
        rest, start, length = live
        remaining = rest.__length_hint__()
        self._live = None
        if remaining == 0:
            self._finish_epoch()
        else:
            self._position = start + length - remaining

    def _iterate(self):
        """An iterator over this rank's items from the saved position on.

        A plain list iterator, so handing out items costs no Python code per
        item; the position is read off it when needed (state_dict, next pass).
        """
        self._check_outer()
        self._settle()
        items = self.indices().tolist()
        start = self._position
        rest = iter(items if start == 0 else items[start:])
        self._live = (rest, start, len(items) - start)
        return rest

    def _current_position(self) -> int:
        live = getattr(self, "_live", None)
        if live is None:
            return self._position
        rest, start, length = live
        return start + length - rest.__length_hint__()

    def _finish_epoch(self) -> None:
        if not self._explicit_epoch:
            self.epoch += 1
        self._reset_epoch()

    # -- state ----------------------------------------------------------------
    def _fingerprint_data(self) -> Dict[str, Tensor]:
        """The tensors a state belongs to, by argument name (subclasses: labels, weights)."""
        return {}

    def _fingerprint(self) -> Optional[str]:
        """A CRC-32 of the bytes of :meth:`_fingerprint_data`, with their dtypes and shapes.

        Computed once per sampler, on the first state_dict / load_state_dict
        (zlib's CRC-32 runs at a few GB/s: ~0.3 s for 1e8 float64 weights).
        """
        cached = self.__dict__.get("_fingerprint_cache")
        if cached is not None:
            return cached
        data = self._fingerprint_data()
        if not data:
            return None
        crc = 0
        layout = []
        for name, tensor in data.items():
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            crc = zlib.crc32(memoryview(flat.view(torch.uint8).numpy()), crc)
            layout.append(f"{name}:{str(flat.dtype).replace('torch.', '')}[{flat.numel()}]")
        self._fingerprint_cache = f"crc32={crc:08x} " + " ".join(layout)
        return self._fingerprint_cache

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to resume: seed, epoch, epoch seed and position in the epoch.

        Also the rank, the world size and a fingerprint of the labels/weights,
        which :meth:`load_state_dict` checks. A plain dict of ints and
        strings: picklable and ``torch.save``-able.

        With ``DataLoader(num_workers > 0)`` the loader draws indices ahead of
        the batches it has returned (prefetching), so a state taken inside the
        training loop is ahead of the consumed batches: use torchdata's
        ``StatefulDataLoader`` (which calls this method at the right moment)
        or count the consumed batches and fast-forward (see the README).

        Returns:
            dict: ``seed``, ``epoch``, ``explicit_epoch``, ``epoch_seed``,
            ``position``, ``num_replicas``, ``rank``, ``sharded_by``,
            ``sampler`` (the class name) and ``fingerprint``.

        Example:
            >>> import io
            >>> import torch
            >>> import balancedtorch as bt
            >>> sampler = bt.data.ClassBalancedSampler(torch.tensor([0] * 90 + [1] * 10), seed=0)
            >>> it = iter(sampler)
            >>> consumed = [next(it) for _ in range(30)]
            >>> checkpoint = io.BytesIO()  # or a file, next to the model's state_dict
            >>> torch.save({"sampler": sampler.state_dict()}, checkpoint)
            >>> sampler.state_dict()["position"]
            30
        """
        live = getattr(self, "_live", None)
        if live is not None and live[0].__length_hint__() == 0:
            self._settle()  # a finished pass: the state is the next epoch's start
        if self._epoch_seed is None and self._random_epochs():
            # fix the epoch now, so that a resumed sampler replays this exact epoch
            self._epoch_seed = self._draw_epoch_seed()
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "explicit_epoch": self._explicit_epoch,
            "epoch_seed": self._epoch_seed,
            "position": self._current_position(),
            "num_replicas": self.num_replicas,
            "rank": self.rank,
            "sharded_by": self._outer,
            "sampler": type(self).__name__,
            "fingerprint": self._fingerprint(),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`, taken from a sampler over the same data.

        Refused with a ValueError that says why (and the sampler left as it
        was): a state of another kind of sampler, another world size or rank
        (each rank loads its own state; when the ranks come from
        torch.distributed, a state another rank saved loads too, at its
        position: Lightning's checkpoint holds rank 0's loader state only, and
        under DDP every rank is at the same position of its own shard), other labels/weights (the
        fingerprint differs), a negative position or one beyond the epoch.
        States saved before these fields existed load without those checks.
        See :meth:`state_dict` for ``DataLoader`` workers.

        Args:
            state (dict): what :meth:`state_dict` returned.

        Raises:
            TypeError: ``state`` is not a mapping.
            ValueError: see above; the message says which field differs.

        Example:
            >>> import io
            >>> import torch
            >>> import balancedtorch as bt
            >>> labels = torch.tensor([0] * 90 + [1] * 10)
            >>> sampler = bt.data.ClassBalancedSampler(labels, seed=0)
            >>> it = iter(sampler)
            >>> consumed = [next(it) for _ in range(30)]
            >>> checkpoint = io.BytesIO()
            >>> torch.save({"sampler": sampler.state_dict()}, checkpoint)
            >>> rest = list(it)  # what the uninterrupted run draws
            >>> _ = checkpoint.seek(0)
            >>> resumed = bt.data.ClassBalancedSampler(labels, seed=0)  # same arguments as before
            >>> resumed.load_state_dict(torch.load(checkpoint)["sampler"])  # continues mid-epoch
            >>> list(resumed) == rest
            True
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state_dict must be the dict state_dict() returned, got {type(state).__name__}")
        missing = {"seed", "epoch", "epoch_seed", "position"} - set(state)
        if missing:
            raise ValueError(f"state_dict is missing {sorted(missing)}")
        kind = state.get("sampler")
        if kind is not None and kind != type(self).__name__:
            raise ValueError(f"state_dict was saved by a {kind}, this sampler is a {type(self).__name__}")
        outer = self._outer
        if outer is None and self._replicas_arg is None and isinstance(state.get("sharded_by"), str):
            outer = state["sharded_by"]  # saved inside a framework's sharding sampler: whole epochs
        keep_outer, self._outer = self._outer, outer
        try:
            num_replicas, rank = self._resolve()
        finally:
            self._outer = keep_outer
        if state.get("num_replicas", num_replicas) != num_replicas:
            hint = ""
            if self._replicas_arg is None and world_and_rank() is None:
                hint = (
                    " (torch.distributed is not initialised here: load the state after init_process_group, "
                    "or pass num_replicas and rank)"
                )
            raise ValueError(
                f"state_dict was saved with num_replicas={state['num_replicas']}, this sampler has "
                f"num_replicas={num_replicas}{hint}: a mid-epoch state cannot move to another world size"
            )
        saved_rank = state.get("rank", rank)
        # Ranks from torch.distributed (a framework's): accept the state of another rank of the same
        # world. Lightning's checkpoint keeps only rank 0's loader state; the epoch (seed, epoch seed)
        # is the same on every rank and DDP steps the ranks together, so rank 0's position is this
        # rank's, and this sampler keeps drawing its own shard. Explicit ranks must match.
        framework_ranks = self._rank_arg is None and self._replicas_arg is None and num_replicas > 1
        if saved_rank != rank and not (
            framework_ranks and isinstance(saved_rank, numbers.Integral) and 0 <= saved_rank < num_replicas
        ):
            raise ValueError(
                f"state_dict was saved by rank {state['rank']}, this sampler is rank {rank} "
                f"(num_replicas={num_replicas}): each rank must load the state its own sampler saved"
            )
        saved = state.get("fingerprint")
        if saved is not None and saved != self._fingerprint():
            what = " and ".join(self._fingerprint_data())
            raise ValueError(
                f"state_dict was saved by a sampler over other {what} (fingerprint {saved!r}, this sampler's "
                f"{self._fingerprint()!r}): build the sampler from the same {what} before loading its state"
            )
        for key in ("seed", "epoch", "position"):
            _validate.integer(state[key], f"state_dict[{key!r}]", int64=False)
        epoch_seed = _validate.integer(
            state["epoch_seed"], "state_dict['epoch_seed']", low=0, high=_MASK63, optional=True, int64=False
        )
        if state["epoch"] < 0:
            raise ValueError(f"state_dict['epoch'] must be >= 0, got {state['epoch']}")
        position = int(state["position"])
        if position < 0:
            raise ValueError(f"state_dict['position'] must be >= 0 (items already drawn this epoch), got {position}")
        keep = (
            self.seed,
            self.epoch,
            self._explicit_epoch,
            self._epoch_seed,
            self._cache,
            getattr(self, "_live", None),
            self._position,
            self._pinned,
            self._outer,
        )
        self._outer = outer
        self._pinned = (num_replicas, rank)
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self._explicit_epoch = bool(state.get("explicit_epoch", True))
        self._epoch_seed = None if epoch_seed is None else int(epoch_seed)
        self._cache = None
        self._live = None
        try:
            self._on_epoch_change()
            length = len(self)  # this rank's items in the state's epoch
            if position > length:
                raise ValueError(
                    f"state_dict['position'] = {position} is beyond the epoch: this sampler yields {length} "
                    f"items per epoch on this rank (epoch {self.epoch}); was the state saved with other arguments?"
                )
        except Exception:
            (
                self.seed,
                self.epoch,
                self._explicit_epoch,
                self._epoch_seed,
                self._cache,
                self._live,
                self._position,
                self._pinned,
                self._outer,
            ) = keep
            self._on_epoch_change()
            raise
        self._position = position
