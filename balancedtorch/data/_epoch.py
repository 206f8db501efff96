"""What every balancedtorch sampler shares: epochs, seeds, rank sharding and resumable state."""

from __future__ import annotations

import numbers
import zlib
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor

_MASK63 = (1 << 63) - 1


def resolve_replicas(num_replicas: Optional[int], rank: Optional[int]) -> Tuple[int, int]:
    """(num_replicas, rank), from torch.distributed when not given."""
    dist = torch.distributed
    initialized = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialized else 1
    if rank is None:
        rank = dist.get_rank() if initialized else 0
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, numbers.Integral) or num_replicas < 1:
        raise ValueError(f"num_replicas must be a positive int, got {num_replicas!r}")
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be an int in [0, num_replicas={num_replicas}), got {rank!r}")
    return int(num_replicas), int(rank)


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


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
    """

    def __init__(self, generator: Optional[torch.Generator], seed: int, num_replicas: Optional[int], rank: Optional[int]):
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.generator = generator
        self.seed = int(seed)
        self.num_replicas, self.rank = resolve_replicas(num_replicas, rank)
        self.epoch = 0
        self._explicit_epoch = False
        self._epoch_seed: Optional[int] = None
        self._position = 0
        self._cache: Optional[Tensor] = None

    # -- epochs ---------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose indices the next iteration yields (reshuffles)."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        if self._explicit_epoch and int(epoch) == self.epoch:
            return
        self.epoch = int(epoch)
        self._explicit_epoch = True
        self._reset_epoch()

    def _reset_epoch(self) -> None:
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
        if self.num_replicas == 1:
            return items
        total = items.shape[0]
        per_rank = -(-total // self.num_replicas)
        padded = per_rank * self.num_replicas
        if padded > total:
            reps = -(-padded // max(total, 1))
            items = torch.cat([items] * reps)[:padded]
        return items[self.rank :: self.num_replicas]

    def indices(self) -> Tensor:
        """This rank's indices for the current epoch (what iteration yields), as int64."""
        live = getattr(self, "_live", None)
        if live is not None and live[0].__length_hint__() == 0:
            self._settle()  # the previous pass finished: this is the next epoch
        if self._cache is None:
            self._cache = self._shard(self._global_indices(self._epoch_generator()))
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
            "sampler": type(self).__name__,
            "fingerprint": self._fingerprint(),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`, taken from a sampler over the same data.

        Refused with a ValueError that says why (and the sampler left as it
        was): a state of another kind of sampler, another world size or rank
        (each rank loads its own state), other labels/weights (the
        fingerprint differs), a negative position or one beyond the epoch.
        States saved before these fields existed load without those checks.
        See :meth:`state_dict` for ``DataLoader`` workers.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state_dict must be the dict state_dict() returned, got {type(state).__name__}")
        missing = {"seed", "epoch", "epoch_seed", "position"} - set(state)
        if missing:
            raise ValueError(f"state_dict is missing {sorted(missing)}")
        kind = state.get("sampler")
        if kind is not None and kind != type(self).__name__:
            raise ValueError(f"state_dict was saved by a {kind}, this sampler is a {type(self).__name__}")
        if state.get("num_replicas", self.num_replicas) != self.num_replicas:
            raise ValueError(
                f"state_dict was saved with num_replicas={state['num_replicas']}, this sampler has "
                f"num_replicas={self.num_replicas}: a mid-epoch state cannot move to another world size"
            )
        if state.get("rank", self.rank) != self.rank:
            raise ValueError(
                f"state_dict was saved by rank {state['rank']}, this sampler is rank {self.rank} "
                f"(num_replicas={self.num_replicas}): each rank must load the state its own sampler saved"
            )
        saved = state.get("fingerprint")
        if saved is not None and saved != self._fingerprint():
            what = " and ".join(self._fingerprint_data())
            raise ValueError(
                f"state_dict was saved by a sampler over other {what} (fingerprint {saved!r}, this sampler's "
                f"{self._fingerprint()!r}): build the sampler from the same {what} before loading its state"
            )
        for key in ("seed", "epoch", "position"):
            value = state[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"state_dict[{key!r}] must be an int, got {value!r}")
        epoch_seed = state["epoch_seed"]
        if epoch_seed is not None and (isinstance(epoch_seed, bool) or not isinstance(epoch_seed, numbers.Integral)):
            raise ValueError(f"state_dict['epoch_seed'] must be an int or None, got {epoch_seed!r}")
        if state["epoch"] < 0:
            raise ValueError(f"state_dict['epoch'] must be >= 0, got {state['epoch']}")
        position = int(state["position"])
        if position < 0:
            raise ValueError(f"state_dict['position'] must be >= 0 (items already drawn this epoch), got {position}")
        keep = (
            self.seed, self.epoch, self._explicit_epoch, self._epoch_seed, self._cache, getattr(self, "_live", None), self._position
        )
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
            self.seed, self.epoch, self._explicit_epoch, self._epoch_seed, self._cache, self._live, self._position = keep
            self._on_epoch_change()
            raise
        self._position = position
