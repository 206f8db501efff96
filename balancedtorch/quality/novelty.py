"""Inputs unlike the training data: kNN novelty (Sun et al., ICML 2022) and feature-space coverage.

Both tools search the training features with :func:`balancedtorch.ops.knn`
(exact) and report Euclidean (not squared) k-th nearest-neighbour distances.
The search machinery they share (feature checks, exact k-th distances,
merging candidates across chunks and ranks) is in ``_knn_search.py``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from .._distributed import Comm, initialized, use_distributed
from .._labels import check_labels, infer_num_classes
from ..ops.knn import knn
from ._knn_search import (  # noqa: F401  (_merge, _normalized: imported from here by tests)
    _DTYPES,
    _candidates,
    _features,
    _kth,
    _merge,
    _normalized,
    _pair_distances,
)

__all__ = ["NoveltyDetector", "embedding_coverage"]


# --- NoveltyDetector ------------------------------------------------------------


class NoveltyDetector:
    """Deep nearest-neighbour novelty detection (Sun, Ming, Zhu & Li, ICML 2022).

    ``fit`` keeps a bank of training features (L2-normalised by default, as
    the paper); the novelty score of an input is the Euclidean distance to its
    k-th nearest neighbour in the bank (larger = more novel), found exactly by
    :func:`balancedtorch.ops.knn` (chunked, so large banks stay within a fixed
    memory budget). :meth:`threshold` picks the cut on held-out
    in-distribution data so that a share ``tpr`` of it passes; :meth:`predict`
    flags what lies beyond. With ``per_class=True`` each input is scored
    against the bank of its class (pass the predicted classes to
    :meth:`score` as ``labels=``).

    Scale: with ``bank_chunk_size`` the bank is searched chunk by chunk (a
    numpy array or ``np.memmap`` is then kept by reference, never copied
    whole); under ``torch.distributed`` every rank keeps its own slice of the
    bank and a query's k nearest are merged from every rank's k candidates
    (one all-gather of k candidates per query, never of the bank). Either way
    the scores are those of one process searching the whole bank, bit for bit:
    candidates are merged by (distance, global index), the order of a single
    search, and every candidate's distance comes from one float64 formula.
    The one exception is a near-tie within float64 rounding (about
    ``D * 1e-16`` relative) between two bank rows at the k-th rank, where the
    searches of the whole bank and of a slice may keep different rows.

    Distributed (``distributed=True``, or None with an initialised process
    group of world size > 1): :meth:`fit`, :meth:`score`, :meth:`threshold`,
    :meth:`predict` and :meth:`report` are **collective**: every rank calls
    them, in the same order, each with its own rows (any number, zero
    included, except in :meth:`fit` where the bank as a whole needs k rows).
    :meth:`fit` takes this rank's slice of the training set: a bank row's
    global index is the sizes of the lower ranks' slices plus its index here
    (``bank_offset_``), and the "fewer than k" checks count all ranks.
    :meth:`score` and :meth:`predict` return this rank's rows;
    :meth:`threshold` cuts on the validation scores of all ranks (every rank
    gets the same ``threshold_``, the single-process cut on their
    concatenation in rank order); :meth:`report` reports this rank's inputs
    only. ``fraction`` < 1 subsamples each rank's slice on its own (the bank
    then equals a single process's in distribution only). Bad input on one
    rank raises on every rank. Collectives follow the process group's device:
    the CPU under gloo, the current CUDA device under NCCL.

    Args:
        k (int): neighbour rank of the score. Default 50.
        normalize (bool): L2-normalise bank and queries. Default True.
        fraction (float): in (0, 1]; the share of each class kept in the bank
            (the paper's alpha), drawn uniformly without replacement, at least
            one sample per class. Default 1.0 (the whole training set).
        device (torch.device or str, optional): where the bank lives and the
            search runs (with ``bank_chunk_size``: where each chunk is moved
            and searched). Default: the training features' device (the CPU
            for numpy arrays).
        per_class (bool): score against the bank of the input's class; needs
            ``labels`` in :meth:`fit` and in every scoring call. Default False.
        generator (torch.Generator, optional): CPU generator of the
            ``fraction`` subsampling. Default: torch's global RNG.
        distributed (bool, optional): shard the bank across the ranks of the
            default ``torch.distributed`` process group (see above). Default
            None: whether one is initialised with world size > 1.
        bank_chunk_size (int, optional): search the bank this many rows at a
            time, for banks larger than the device's (or the host's) memory.
            The bank is then kept as given, not normalised (each chunk is
            normalised when searched): a numpy array or ``np.memmap`` by
            reference when ``fraction`` is 1 (a float32/float64 tensor too),
            checked for NaN/inf chunk by chunk. Peak extra memory is about one
            chunk plus the queries' candidates. Default None: the whole bank at
            once, normalised at :meth:`fit`.

    Attributes:
        bank_ (Tensor[M, D] | ndarray): the (normalised, subsampled) training
            features; with ``bank_chunk_size``, the features as given (the
            array itself when kept by reference), not normalised. This rank's
            slice when distributed.
        bank_labels_ (Tensor[M] int64 or None): their classes.
        bank_indices_ (Tensor[M] int64): rows of ``train_features`` kept.
        bank_offset_ (int): global index of this rank's first bank row (0 in
            one process).
        bank_sizes_ (list of int): bank rows of every rank, in rank order.
        distributed_ (bool): whether :meth:`fit` sharded the bank.
        threshold_ (float or None): the cut set by :meth:`threshold`.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> g, e = torch.Generator().manual_seed(0), torch.eye(8)
        >>> train_feats = torch.randn(500, 8, generator=g) + 4 * e[0]
        >>> val_feats = torch.randn(200, 8, generator=g) + 4 * e[0]   # held out, in distribution
        >>> prod_feats = torch.cat([torch.randn(50, 8, generator=g) + 4 * e[0],   # as in training
        ...                         torch.randn(50, 8, generator=g) + 4 * e[1]])  # a new situation
        >>> det = bt.quality.NoveltyDetector(k=5).fit(train_feats)  # k=50 for a bank of ~50,000
        >>> cut = det.threshold(val_feats, tpr=0.95)  # 95% of the held-out samples pass
        >>> novel = det.predict(prod_feats)  # Tensor[N] bool
        >>> int(novel[:50].sum()), int(novel[50:].sum())  # (as in training, new situation) flagged
        (1, 50)
    """

    def __init__(
        self,
        k: int = 50,
        normalize: bool = True,
        fraction: float = 1.0,
        device: Any = None,
        *,
        per_class: bool = False,
        generator: Optional[torch.Generator] = None,
        distributed: Optional[bool] = None,
        bank_chunk_size: Optional[int] = None,
    ) -> None:
        owner = "NoveltyDetector"
        self.k = _validate.integer(k, "k", low=1, caller=owner)
        fraction = _validate.real(fraction, "fraction", low=0, high=1, low_inclusive=False, caller=owner)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"NoveltyDetector: generator must be a torch.Generator, got {type(generator).__name__}")
        distributed = _validate.flag(distributed, "distributed", optional=True, caller=owner)
        normalize = _validate.flag(normalize, "normalize", caller=owner)
        per_class = _validate.flag(per_class, "per_class", caller=owner)
        bank_chunk_size = _validate.integer(bank_chunk_size, "bank_chunk_size", low=1, optional=True, caller=owner)
        self.normalize = bool(normalize)
        self.fraction = float(fraction)
        try:
            self.device = torch.device(device) if device is not None else None
        except (RuntimeError, TypeError, ValueError) as e:
            raise ValueError(f"NoveltyDetector: device must be a torch.device or a device string, got {device!r} ({e})") from None
        self.per_class = bool(per_class)
        self.generator = generator
        self.distributed = None if distributed is None else bool(distributed)
        self.bank_chunk_size = int(bank_chunk_size) if bank_chunk_size is not None else None
        self.bank_: Any = None
        self.bank_labels_: Optional[Tensor] = None
        self.bank_indices_: Optional[Tensor] = None
        self.bank_offset_ = 0
        self.bank_sizes_: List[int] = []
        self.distributed_ = False
        self.threshold_: Optional[float] = None
        self._class_counts: Optional[Tensor] = None  # of the whole bank (all ranks)
        self._dtype = torch.float32

    def __repr__(self) -> str:
        extra = ""
        if self.distributed is not None:
            extra += f", distributed={self.distributed}"
        if self.bank_chunk_size is not None:
            extra += f", bank_chunk_size={self.bank_chunk_size}"
        return (
            f"NoveltyDetector(k={self.k}, normalize={self.normalize}, fraction={self.fraction}, "
            f"device={self.device}, per_class={self.per_class}{extra})"
        )

    # -- fit ---------------------------------------------------------------------

    def _use_process_group(self, owner: str) -> bool:
        if self.distributed and not initialized():
            raise ValueError(f"NoveltyDetector.{owner}: distributed=True needs an initialised torch.distributed process group")
        return use_distributed(self.distributed)

    def fit(self, train_features: Any, labels: Any = None) -> "NoveltyDetector":
        """Store the bank of training features.

        Distributed: collective; each rank passes its own slice of the
        training set (zero rows allowed, as long as all ranks hold ``k``).

        Args:
            train_features (Tensor[N, D] | array | np.memmap): training
                embeddings (this rank's slice when distributed).
            labels (Tensor[N], optional): their classes; needed for
                ``per_class``, and make ``fraction`` subsample per class.

        Returns:
            NoveltyDetector: self.

        Raises:
            ValueError: non-finite or non-2-D features, labels of another
                length, a bank (or, with ``per_class``, a class's bank)
                smaller than ``k`` (counted over all ranks when distributed).
        """
        owner = "NoveltyDetector.fit"
        shard = self._use_process_group("fit")
        error: Optional[Exception] = None
        bank = bank_labels = keep = None
        dim, dtype, classes = 0, torch.float32, 0
        try:
            bank, bank_labels, keep = self._local_bank(train_features, labels, allow_empty=shard)
            dim = bank.shape[1]
            dtype = self._bank_dtype(bank)
            if bank_labels is not None and bank_labels.numel():
                classes = int(bank_labels.max()) + 1
        except (ValueError, TypeError) as e:
            if not shard:
                raise
            error = e
        rows = 0 if keep is None else keep.numel()
        info = [rows, dim, _DTYPES.index(dtype), int(bank_labels is not None), classes]
        comm = Comm() if shard else None
        everyone = comm.agree(error, info, owner) if shard else [info]  # collective 1
        if shard:
            for what, col in (("number of features", 1), ("dtype (float32 or float64)", 2), ("labels or none", 3)):
                if len({r[col] for r in everyone}) > 1:
                    raise ValueError(f"{owner}: the ranks' train_features disagree on their {what}: {[r[col] for r in everyone]}")
        sizes = [r[0] for r in everyone]
        rank = comm.rank if shard else 0
        counts = None
        if bank_labels is not None:
            counts = torch.bincount(bank_labels.cpu(), minlength=max(r[4] for r in everyone))
            if shard:  # collective 2
                counts = comm.all_reduce(counts)
        if self.per_class:
            small = ((counts > 0) & (counts < self.k)).nonzero()
            if small.numel():
                c = int(small[0, 0])
                where = " over all ranks" if shard else ""
                raise ValueError(f"{owner}: class {c} has {int(counts[c])} samples in the bank{where}, fewer than k={self.k}")
        elif sum(sizes) < self.k:
            n = train_features.shape[0] if hasattr(train_features, "shape") else len(train_features)
            where = f" over all ranks: {sizes}" if shard else f" (train_features: {n}, fraction={self.fraction})"
            raise ValueError(f"{owner}: the bank has {sum(sizes)} samples{where}, fewer than k={self.k}")
        self.bank_, self.bank_labels_, self.bank_indices_ = bank, bank_labels, keep
        self.bank_offset_ = sum(sizes[:rank])
        self.bank_sizes_ = sizes
        self.distributed_ = shard
        self.threshold_ = None
        self._class_counts = counts
        self._dtype = dtype
        return self

    @staticmethod
    def _bank_dtype(bank: Any) -> torch.dtype:
        if isinstance(bank, Tensor):
            return bank.dtype if bank.dtype in _DTYPES else torch.float32
        return torch.float64 if bank.dtype == np.float64 else torch.float32

    def _local_bank(self, train_features: Any, labels: Any, allow_empty: bool) -> Tuple[Any, Optional[Tensor], Tensor]:
        """(bank, bank labels, kept rows) of this process's training features, checked."""
        owner = "NoveltyDetector.fit"
        by_reference = self.bank_chunk_size is not None and isinstance(train_features, np.ndarray) and self.fraction >= 1
        if by_reference:
            x = self._checked_array(train_features, allow_empty)
        else:
            device = self.device if self.bank_chunk_size is None else None  # chunks move to the device one by one
            x = _features(train_features, "train_features", owner, device=device, allow_empty=allow_empty)
        n = x.shape[0]
        y = None
        if labels is not None:
            y = check_labels(labels, "labels", allow_empty=allow_empty, device=x.device if isinstance(x, Tensor) else None)
            if y.numel() != n:
                raise ValueError(f"{owner}: labels has {y.numel()} entries but train_features has {n} rows")
            if y.numel():  # per-class counts are tables of max + 1 entries: refuse a stray id such as 2**40
                infer_num_classes(y, "labels", caller=owner, num_classes_arg=None)
        elif self.per_class:
            raise ValueError(f"{owner}: per_class=True needs labels (the training classes)")
        keep = self._subsample(n, y)
        bank_labels = y[keep.to(y.device)] if y is not None else None
        if self.bank_chunk_size is not None:
            if by_reference or keep.numel() == n:
                return x, bank_labels, keep
            return x.index_select(0, keep.to(x.device)), bank_labels, keep
        return _normalized(x.index_select(0, keep.to(x.device)), self.normalize).contiguous(), bank_labels, keep

    def _checked_array(self, a: np.ndarray, allow_empty: bool) -> np.ndarray:
        """A numpy bank kept by reference: shape, dtype and finiteness checked chunk by chunk, nothing copied whole."""
        owner = "NoveltyDetector.fit"
        if a.ndim != 2:
            raise ValueError(f"{owner}: train_features must have shape (N, D), got {a.shape}")
        if (a.shape[0] == 0 and not allow_empty) or a.shape[1] == 0:
            raise ValueError(f"{owner}: train_features must be non-empty with D >= 1 features, got {a.shape}")
        if a.dtype.kind not in "fiu":
            raise ValueError(f"{owner}: train_features must be real numbers, got dtype {a.dtype}")
        if a.dtype.kind == "f":
            step = self.bank_chunk_size
            for c0 in range(0, a.shape[0], step):
                ok = np.isfinite(a[c0 : c0 + step])
                if not ok.all():
                    i, j = (int(v) for v in np.argwhere(~ok)[0])
                    raise ValueError(
                        f"{owner}: train_features must be finite, got train_features[{c0 + i}, {j}] = {a[c0 + i, j]}"
                    )
        return a

    def _subsample(self, n: int, y: Optional[Tensor]) -> Tensor:
        if self.fraction >= 1:
            return torch.arange(n)
        if n == 0:
            return torch.zeros(0, dtype=torch.long)
        codes = y.cpu() if y is not None else torch.zeros(n, dtype=torch.long)
        order = torch.randperm(n, generator=self.generator)
        # stable sort by class keeps the random order inside each class: its first ceil(f * n_c) are a uniform draw
        by_class = order[torch.sort(codes[order], stable=True)[1]]
        counts = torch.bincount(codes)
        starts = torch.cumsum(counts, 0) - counts
        keep = [by_class[s : s + math.ceil(self.fraction * c)] for s, c in zip(starts.tolist(), counts.tolist()) if c]
        return torch.sort(torch.cat(keep))[0]

    def _agree(self, error: Optional[Exception], owner: str) -> None:
        """Raise ``error`` before a collective call, on every rank when distributed (none is left waiting)."""
        if self.bank_ is not None and self.distributed_ and initialized():
            Comm().agree(error, [], f"NoveltyDetector.{owner}")
        elif error is not None:
            raise error

    def _check_fitted(self, owner: str) -> None:
        if self.bank_ is None:
            raise RuntimeError(f"NoveltyDetector.{owner}: call fit() first")
        if self.distributed_ and not initialized():
            raise RuntimeError(f"NoveltyDetector.{owner}: fit() sharded the bank across ranks; the process group is gone")

    # -- search ------------------------------------------------------------------

    def _search_device(self) -> torch.device:
        if self.device is not None:
            return self.device
        return self.bank_.device if isinstance(self.bank_, Tensor) else torch.device("cpu")

    def _chunks(self) -> Iterator[Tuple[int, Tensor, Optional[Tensor]]]:
        """(first row, normalised rows on the search device, their labels) of this rank's bank."""
        labels = self.bank_labels_
        if self.bank_chunk_size is None:
            yield 0, self.bank_, labels
            return
        device = self._search_device()
        step = self.bank_chunk_size
        for c0 in range(0, self.bank_.shape[0], step):
            part = self.bank_[c0 : c0 + step]
            if isinstance(part, np.ndarray):
                part = torch.from_numpy(np.array(part, dtype=part.dtype if part.dtype.kind == "f" else np.float32))
            chunk = _normalized(part.to(device=device, dtype=self._dtype), self.normalize)
            yield c0, chunk, labels[c0 : c0 + step].to(device) if labels is not None else None

    def _search(self, q: Tensor, y: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """(Tensor[Q, k] float64, Tensor[Q, k] int64): the k nearest of this rank's bank, by (distance, global index)."""
        best = None
        for c0, chunk, chunk_y in self._chunks():
            found = _candidates(q, y, chunk, chunk_y, self.k, self.bank_offset_ + c0)
            best = found if best is None else (torch.cat([best[0], found[0]], 1), torch.cat([best[1], found[1]], 1))
            best = _merge(best[0], best[1], self.k)
        if best is None:  # this rank holds no bank rows
            best = _candidates(q, y, q[:0], y[:0] if y is not None else None, self.k, 0)
        return best

    def _queries(self, features: Any, labels: Any, allow_empty: bool) -> Tuple[Tensor, Optional[Tensor]]:
        owner = "NoveltyDetector.score"
        device = self._search_device()
        dim = self.bank_.shape[1]
        q = _normalized(_features(features, "features", owner, dim, device, allow_empty), self.normalize).to(self._dtype)
        if not self.per_class:
            return q, None
        if labels is None:
            raise ValueError(f"{owner}: per_class=True needs labels (the predicted class of each input)")
        y = check_labels(labels, "labels", allow_empty=allow_empty, device=device)
        if y.numel() != q.shape[0]:
            raise ValueError(f"{owner}: labels has {y.numel()} entries but features has {q.shape[0]} rows")
        if y.numel():
            counts = self._class_counts
            codes = y.cpu()
            missing = codes >= counts.numel()  # beyond the bank's largest class (e.g. a stray 2**40)
            known = (~missing).nonzero().squeeze(1)
            missing[known] = counts[codes[known]] == 0
            if bool(missing.any()):
                i = int(missing.nonzero()[0, 0])
                raise ValueError(f"{owner}: labels[{i}] = {int(y[i])} is a class absent from the bank")
        return q, y

    def score(self, features: Any, labels: Any = None) -> Tensor:
        """Novelty scores: the Euclidean distance of each input to its k-th nearest bank sample.

        Distributed: collective; each rank passes its own inputs (zero rows
        allowed) and gets their scores against the bank of all ranks.

        Args:
            features (Tensor[N, D] | array): embeddings to score (not part of
                the bank: a bank sample scores against itself too).
            labels (Tensor[N], optional): the predicted class of each input;
                required with ``per_class`` (each input is then searched
                among its class's bank only), ignored otherwise.

        Returns:
            Tensor[N]: scores in the bank's dtype, on the search device (the
            bank's, or ``device``).
        """
        self._check_fitted("score")
        if not self.distributed_:
            q, y = self._queries(features, labels, allow_empty=False)
            return _kth(self._search(q, y)[0], self._dtype)
        owner = "NoveltyDetector.score"
        error: Optional[Exception] = None
        q = y = None
        try:
            q, y = self._queries(features, labels, allow_empty=True)
        except (ValueError, TypeError) as e:
            error = e
        comm = Comm()
        counts = [r[0] for r in comm.agree(error, [0 if q is None else q.shape[0]], owner)]  # collective 1
        if sum(counts) == 0:
            return q.new_zeros(0)
        q_all = torch.cat(comm.all_gather_rows(q, counts, q.device))  # collective 2: the queries of every rank
        y_all = torch.cat(comm.all_gather_rows(y, counts, y.device)) if y is not None else None  # collective 3 (per_class)
        d, i = self._search(q_all, y_all)
        # collective 4: every rank's k candidates for every query, distances as their int64 bits
        packed = comm.all_gather(torch.cat([d.view(torch.int64), i], 1), d.device)
        mine = slice(sum(counts[: comm.rank]), sum(counts[: comm.rank + 1]))
        k = self.k
        d = torch.cat([p[mine, :k].contiguous().view(torch.float64) for p in packed], 1)
        i = torch.cat([p[mine, k:] for p in packed], 1)
        return _kth(_merge(d, i, k)[0], self._dtype)

    def threshold(self, val_features: Any, tpr: float = 0.95, labels: Any = None) -> float:
        """Set the cut so that a share ``tpr`` of in-distribution inputs pass (score <= cut).

        The cut is the ``ceil(tpr * N)``-th smallest score of ``val_features``
        (nearest rank): at least ``tpr`` of them pass, and no lower cut would
        do. Use held-out data, not the training features (those find
        themselves in the bank). Distributed: collective; N counts the
        validation rows of all ranks, and every rank gets the same cut.

        Args:
            val_features (Tensor[N, D]): held-out in-distribution embeddings.
            tpr (float): in (0, 1). Default 0.95.
            labels (Tensor[N], optional): their (predicted) classes, for ``per_class``.

        Returns:
            float: the cut, also stored as ``threshold_``.
        """
        error = None
        try:
            _validate.real(
                tpr, "tpr", low=0, high=1, low_inclusive=False, high_inclusive=False, caller="NoveltyDetector.threshold"
            )
        except (TypeError, ValueError) as e:  # raised on every rank, or none
            error = e
        self._agree(error, "threshold")
        s = self.score(val_features, labels).double().cpu()
        if self.distributed_:
            s = torch.cat(Comm().all_gather_rows(s))
            if s.numel() == 0:
                raise ValueError("NoveltyDetector.threshold: val_features has no rows on any rank")
        rank = min(max(math.ceil(float(tpr) * s.numel()), 1), s.numel())
        self.threshold_ = float(torch.kthvalue(s, rank)[0])
        return self.threshold_

    def predict(self, features: Any, labels: Any = None) -> Tensor:
        """Tensor[N] bool: True where the score exceeds ``threshold_`` (novel).

        Distributed: collective (it scores), each rank gets its own inputs' flags.
        """
        self._check_fitted("predict")
        if self.threshold_ is None:
            raise RuntimeError("NoveltyDetector.predict: call threshold(val_features) first")
        return self.score(features, labels) > self.threshold_

    def report(
        self, features: Any, groups: Optional[Mapping[str, Any]] = None, labels: Any = None, top_n: int = 20
    ) -> Dict[str, Any]:
        """Where the novel inputs are: share flagged overall, per class and per slice, and the most novel.

        Args:
            features (Tensor[N, D]): embeddings (e.g. production inputs).
            groups (dict, optional): ``{attribute: per-sample values (N,)}``.
            labels (Tensor[N], optional): predicted classes; adds the per-class
                shares (and is what ``per_class`` scores against).
            top_n (int): how many of the most novel indices to list. Default 20.

        Returns:
            dict: ``{"scores": Tensor[N], "flagged": Tensor[N] bool,
            "share": float, "per_class": {class: share} (with labels),
            "per_group": {attribute: {value: share}} (with groups),
            "most_novel": Tensor[min(top_n, N)] int64 (descending score),
            "threshold": float}``.
        """
        error = None
        try:
            _validate.integer(top_n, "top_n", low=0, caller="NoveltyDetector.report")
        except (TypeError, ValueError) as e:  # raised on every rank, or none
            error = e
        self._agree(error, "report")
        scores = self.score(features, labels if self.per_class else None)
        if self.threshold_ is None:
            raise RuntimeError("NoveltyDetector.report: call threshold(val_features) first")
        flagged = (scores > self.threshold_).cpu()
        n = flagged.numel()
        out: Dict[str, Any] = {
            "scores": scores,
            "flagged": flagged,
            "share": float(flagged.double().mean()),
            "threshold": self.threshold_,
            "most_novel": torch.argsort(scores.cpu(), descending=True, stable=True)[: int(top_n)],
        }
        if labels is not None:
            y = check_labels(labels, "labels").cpu()
            if y.numel() != n:
                raise ValueError(f"NoveltyDetector.report: labels has {y.numel()} entries but features has {n} rows")
            out["per_class"] = {int(c): float(flagged[y == c].double().mean()) for c in torch.unique(y)}
        if groups is not None:
            if not isinstance(groups, Mapping):
                raise ValueError("NoveltyDetector.report: groups must be a dict {attribute: per-sample values}")
            per_group = {}
            for attribute, values in groups.items():
                array = np.asarray(values.cpu() if isinstance(values, Tensor) else values)
                if array.ndim != 1 or len(array) != n:
                    raise ValueError(
                        f"NoveltyDetector.report: groups[{attribute!r}] must have one value per sample ({n}), "
                        f"got shape {array.shape}"
                    )
                try:
                    uniques, codes = np.unique(array, return_inverse=True)
                except TypeError as e:  # values that cannot be ordered together, e.g. ints mixed with None
                    raise ValueError(
                        f"NoveltyDetector.report: groups[{attribute!r}] mixes values that cannot be sorted together ({e})"
                    ) from None
                codes = torch.as_tensor(codes.reshape(-1))
                per_group[attribute] = {
                    (u.item() if hasattr(u, "item") else u): float(flagged[codes == v].double().mean())
                    for v, u in enumerate(uniques)
                }
            out["per_group"] = per_group
        return out


# --- embedding coverage ---------------------------------------------------------


def embedding_coverage(
    train_features: Any,
    query_features: Any,
    train_labels: Any = None,
    k: int = 10,
    *,
    normalize: bool = True,
    quantile: float = 0.99,
    n_regions: int = 8,
    n_examples: int = 5,
    generator: Optional[torch.Generator] = None,
) -> Dict[str, Any]:
    """How densely the training set covers each query, and the regions it barely covers.

    Every training sample's own k-th nearest-neighbour distance (itself
    excluded) gives the scale of the training set's density; a query's k-th
    nearest-neighbour distance to the training set is compared with it:
    ``ratio`` is the query's distance over the (lower) median training distance and
    ``percentile`` the share of training samples whose distance is smaller. A
    query beyond the ``quantile`` of the training distances is *uncovered*;
    the uncovered queries are clustered by k-means
    (``bt.resample``'s, k-means++ seeding) into at most ``n_regions`` regions,
    largest first: the situations to collect data for.

    Args:
        train_features (Tensor[N, D]): training embeddings (N > k).
        query_features (Tensor[Q, D]): e.g. production embeddings.
        train_labels (Tensor[N], optional): training classes; each region then
            lists the classes of its queries' nearest training samples.
        k (int): neighbour rank. Default 10.
        normalize (bool): L2-normalise the features first. Default True.
        quantile (float): in (0, 1); the training-distance quantile above
            which a query is uncovered. Default 0.99.
        n_regions (int): most regions to cluster into. Default 8.
        n_examples (int): representative queries per region (nearest the
            region's centre). Default 5.
        generator (torch.Generator, optional): for the k-means seeding
            (on the features' device). Default: a fresh one seeded 0.

    Returns:
        dict: ``{"distance": Tensor[Q], "ratio": Tensor[Q] float64,
        "percentile": Tensor[Q] float64, "uncovered": Tensor[Q] bool,
        "cut": float, "regions": [{"count": int, "indices": Tensor int64,
        "representatives": Tensor int64, "mean_ratio": float,
        "nearest_classes": {class: count} (with train_labels)}]}``.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> g, e = torch.Generator().manual_seed(0), torch.eye(8)
        >>> train_feats = torch.randn(500, 8, generator=g) + 4 * e[0]
        >>> val_feats = torch.randn(200, 8, generator=g) + 4 * e[0]   # held out, in distribution
        >>> prod_feats = torch.cat([torch.randn(50, 8, generator=g) + 4 * e[0],   # as in training
        ...                         torch.randn(50, 8, generator=g) + 4 * e[1]])  # a new situation
        >>> train_labels = torch.randint(0, 2, (500,), generator=g)
        >>> cov = bt.quality.embedding_coverage(train_feats, prod_feats, train_labels)
        >>> int(cov["uncovered"][:50].sum()), int(cov["uncovered"][50:].sum())
        (0, 50)
        >>> for r in cov["regions"][:3]:
        ...     print(r["count"], r["representatives"].tolist())  # uncovered regions, largest first
        14 [70, 51, 64, 66, 87]
        10 [54, 72, 89, 69, 65]
        8 [88, 56, 73, 98, 90]
    """
    owner = "embedding_coverage"
    k = _validate.integer(k, "k", low=1, caller=owner)
    _validate.real(quantile, "quantile", low=0, high=1, low_inclusive=False, high_inclusive=False, caller=owner)
    normalize = _validate.flag(normalize, "normalize", caller=owner)
    if generator is not None and not isinstance(generator, torch.Generator):  # checked before any region needs it
        raise TypeError(f"{owner}: generator must be a torch.Generator, got {type(generator).__name__}")
    n_regions = _validate.integer(n_regions, "n_regions", low=1, caller=owner)
    n_examples = _validate.integer(n_examples, "n_examples", low=1, caller=owner)
    x = _features(train_features, "train_features", owner)
    q = _features(query_features, "query_features", owner, x.shape[1], x.device)
    if x.shape[0] <= k:
        raise ValueError(f"{owner}: train_features has {x.shape[0]} rows; it needs more than k={k}")
    dtype = torch.promote_types(x.dtype, q.dtype)
    x = _normalized(x.to(dtype), normalize)
    q = _normalized(q.to(dtype), normalize)
    y = None
    if train_labels is not None:
        y = check_labels(train_labels, "train_labels").cpu()
        if y.numel() != x.shape[0]:
            raise ValueError(f"{owner}: train_labels has {y.numel()} entries but train_features has {x.shape[0]} rows")
    # the k-th neighbours' distances in float64 (knn's are in the features' dtype, which may overflow)
    train_d = _kth(_pair_distances(x, x, knn(x, k)[1][:, -1:]), torch.float64).cpu()
    qi = knn(q, k, ref=x)[1]
    dist = _kth(_pair_distances(q, x, qi[:, -1:]), torch.float64).cpu()
    sorted_train = torch.sort(train_d)[0]
    median = float(sorted_train[(sorted_train.numel() - 1) // 2])  # the lower median, as torch.median
    rank = min(max(math.ceil(float(quantile) * sorted_train.numel()), 1), sorted_train.numel())
    cut = float(sorted_train[rank - 1])
    ratio = dist / median if median > 0 else torch.where(dist > 0, torch.inf, 1.0).double()
    percentile = torch.searchsorted(sorted_train, dist, right=False).double() / sorted_train.numel()
    uncovered = dist > cut
    regions = []
    idx = uncovered.nonzero().squeeze(1)
    if idx.numel():
        if generator is None:
            generator = torch.Generator(device=q.device).manual_seed(0)
        from ..resample.under import kmeans  # bt.resample loads lazily

        pts = q.index_select(0, idx.to(q.device))
        centers = kmeans(pts, min(int(n_regions), idx.numel()), generator).to(pts.dtype)
        d2c, assign = knn(pts, 1, ref=centers)
        assign, d2c = assign.squeeze(1).cpu(), d2c.squeeze(1).double().cpu()
        nearest = qi[:, 0].cpu()
        for c in range(centers.shape[0]):
            members = (assign == c).nonzero().squeeze(1)
            if not members.numel():
                continue
            order = members[torch.argsort(d2c[members], stable=True)]
            region = {
                "count": int(members.numel()),
                "indices": idx[members],
                "representatives": idx[order[: int(n_examples)]],
                "mean_ratio": float(ratio[idx[members]].mean()),
            }
            if y is not None:
                classes, counts = torch.unique(y[nearest[idx[members]]], return_counts=True)
                region["nearest_classes"] = {int(a): int(b) for a, b in zip(classes, counts)}
            regions.append(region)
        regions.sort(key=lambda r: -r["count"])
    return {
        "distance": dist,
        "ratio": ratio,
        "percentile": percentile,
        "uncovered": uncovered,
        "cut": cut,
        "regions": regions,
    }
