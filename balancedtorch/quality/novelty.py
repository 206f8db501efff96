"""Inputs unlike the training data: kNN novelty (Sun et al., ICML 2022) and feature-space coverage.

Both tools search the training features with :func:`balancedtorch.ops.knn`
(exact) and report Euclidean (not squared) k-th nearest-neighbour distances.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
from torch import Tensor

from .._checks import all_finite, as_tensor
from ..ops.knn import knn
from ._inputs import check_labels

__all__ = ["NoveltyDetector", "embedding_coverage"]


# --- shared checks --------------------------------------------------------------


def _check_k(k: Any, owner: str) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"{owner}: k must be an int >= 1, got {k!r}")
    return int(k)


def _features(values: Any, name: str, owner: str, dim: Optional[int] = None, device: Any = None) -> Tensor:
    """(N, D) floating features, finite, on ``device``; float16/bfloat16/integers become float32."""
    t = as_tensor(values, name)
    if t.dim() != 2:
        raise ValueError(f"{owner}: {name} must have shape (N, D), got {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{owner}: {name} must be non-empty with D >= 1 features, got {tuple(t.shape)}")
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{owner}: {name} must be real numbers, got dtype {t.dtype}")
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    if dim is not None and t.shape[1] != dim:
        raise ValueError(f"{owner}: {name} has {t.shape[1]} features but the training features have {dim}")
    if not all_finite(t):
        i, j = (int(v) for v in (~torch.isfinite(t)).nonzero()[0])
        raise ValueError(f"{owner}: {name} must be finite, got {name}[{i}, {j}] = {t[i, j].item()}")
    return t.to(device) if device is not None else t


def _normalized(t: Tensor, normalize: bool) -> Tensor:
    # zero rows stay zero (no NaN): F.normalize divides by max(norm, eps)
    return torch.nn.functional.normalize(t, dim=1) if normalize else t


def _kth(d2: Tensor) -> Tensor:
    """Euclidean k-th distance from knn's ascending squared distances."""
    return d2[:, -1].clamp_min(0).sqrt()


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

    Args:
        k (int): neighbour rank of the score. Default 50.
        normalize (bool): L2-normalise bank and queries. Default True.
        fraction (float): in (0, 1]; the share of each class kept in the bank
            (the paper's alpha), drawn uniformly without replacement, at least
            one sample per class. Default 1.0 (the whole training set).
        device (torch.device or str, optional): where the bank lives and the
            search runs. Default: the training features' device.
        per_class (bool): score against the bank of the input's class; needs
            ``labels`` in :meth:`fit` and in every scoring call. Default False.
        generator (torch.Generator, optional): CPU generator of the
            ``fraction`` subsampling. Default: torch's global RNG.

    Attributes:
        bank_ (Tensor[M, D]): the (normalised, subsampled) training features.
        bank_labels_ (Tensor[M] int64 or None): their classes.
        bank_indices_ (Tensor[M] int64): rows of ``train_features`` kept.
        threshold_ (float or None): the cut set by :meth:`threshold`.

    Example:
        >>> det = bt.quality.NoveltyDetector(k=50).fit(train_feats)
        >>> det.threshold(val_feats, tpr=0.95)
        >>> novel = det.predict(prod_feats)  # Tensor[N] bool
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
    ) -> None:
        self.k = _check_k(k, "NoveltyDetector")
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:
            raise ValueError(f"NoveltyDetector: fraction must be in (0, 1], got {fraction!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"NoveltyDetector: generator must be a torch.Generator, got {type(generator).__name__}")
        self.normalize = bool(normalize)
        self.fraction = float(fraction)
        self.device = torch.device(device) if device is not None else None
        self.per_class = bool(per_class)
        self.generator = generator
        self.bank_: Optional[Tensor] = None
        self.bank_labels_: Optional[Tensor] = None
        self.bank_indices_: Optional[Tensor] = None
        self.threshold_: Optional[float] = None

    def __repr__(self) -> str:
        return (
            f"NoveltyDetector(k={self.k}, normalize={self.normalize}, fraction={self.fraction}, "
            f"device={self.device}, per_class={self.per_class})"
        )

    def fit(self, train_features: Any, labels: Any = None) -> "NoveltyDetector":
        """Store the bank of training features.

        Args:
            train_features (Tensor[N, D] | array): training embeddings.
            labels (Tensor[N], optional): their classes; needed for
                ``per_class``, and make ``fraction`` subsample per class.

        Returns:
            NoveltyDetector: self.

        Raises:
            ValueError: non-finite or non-2-D features, labels of another
                length, a bank (or, with ``per_class``, a class's bank)
                smaller than ``k``.
        """
        x = _features(train_features, "train_features", "NoveltyDetector.fit", device=self.device)
        n = x.shape[0]
        y = None
        if labels is not None:
            y = check_labels(labels, None, "labels", device=x.device)
            if y.numel() != n:
                raise ValueError(f"NoveltyDetector.fit: labels has {y.numel()} entries but train_features has {n} rows")
        elif self.per_class:
            raise ValueError("NoveltyDetector.fit: per_class=True needs labels (the training classes)")
        keep = self._subsample(n, y)
        bank_labels = y[keep.to(y.device)] if y is not None else None
        if self.per_class:
            counts = torch.bincount(bank_labels)
            small = ((counts > 0) & (counts < self.k)).nonzero()
            if small.numel():
                c = int(small[0, 0])
                raise ValueError(
                    f"NoveltyDetector.fit: class {c} has {int(counts[c])} samples in the bank, fewer than k={self.k}"
                )
        elif keep.numel() < self.k:
            raise ValueError(
                f"NoveltyDetector.fit: the bank has {keep.numel()} samples (train_features: {n}, "
                f"fraction={self.fraction}), fewer than k={self.k}"
            )
        self.bank_ = _normalized(x.index_select(0, keep.to(x.device)), self.normalize).contiguous()
        self.bank_labels_ = bank_labels
        self.bank_indices_ = keep
        self.threshold_ = None
        return self

    def _subsample(self, n: int, y: Optional[Tensor]) -> Tensor:
        if self.fraction >= 1:
            return torch.arange(n)
        codes = y.cpu() if y is not None else torch.zeros(n, dtype=torch.long)
        order = torch.randperm(n, generator=self.generator)
        # stable sort by class keeps the random order inside each class: its first ceil(f * n_c) are a uniform draw
        by_class = order[torch.sort(codes[order], stable=True)[1]]
        counts = torch.bincount(codes)
        starts = torch.cumsum(counts, 0) - counts
        keep = [by_class[s : s + math.ceil(self.fraction * c)] for s, c in zip(starts.tolist(), counts.tolist()) if c]
        return torch.sort(torch.cat(keep))[0]

    def _check_fitted(self, owner: str) -> Tensor:
        if self.bank_ is None:
            raise RuntimeError(f"NoveltyDetector.{owner}: call fit() first")
        return self.bank_

    def score(self, features: Any, labels: Any = None) -> Tensor:
        """Novelty scores: the Euclidean distance of each input to its k-th nearest bank sample.

        Args:
            features (Tensor[N, D] | array): embeddings to score (not part of
                the bank: a bank sample scores against itself too).
            labels (Tensor[N], optional): the predicted class of each input;
                required with ``per_class`` (each input is then searched
                among its class's bank only), ignored otherwise.

        Returns:
            Tensor[N]: scores in the bank's dtype, on the bank's device.
        """
        bank = self._check_fitted("score")
        q = _normalized(_features(features, "features", "NoveltyDetector.score", bank.shape[1], bank.device), self.normalize)
        q = q.to(bank.dtype)
        if not self.per_class:
            return _kth(knn(q, self.k, ref=bank)[0])
        if labels is None:
            raise ValueError("NoveltyDetector.score: per_class=True needs labels (the predicted class of each input)")
        y = check_labels(labels, None, "labels", device=bank.device)
        if y.numel() != q.shape[0]:
            raise ValueError(f"NoveltyDetector.score: labels has {y.numel()} entries but features has {q.shape[0]} rows")
        present = torch.bincount(self.bank_labels_, minlength=int(y.max()) + 1) > 0
        missing = ~present[y]
        if bool(missing.any()):
            i = int(missing.nonzero()[0, 0])
            raise ValueError(f"NoveltyDetector.score: labels[{i}] = {int(y[i])} is a class absent from the bank")
        return _kth(knn(q, self.k, groups=y, ref=bank, ref_groups=self.bank_labels_)[0])

    def threshold(self, val_features: Any, tpr: float = 0.95, labels: Any = None) -> float:
        """Set the cut so that a share ``tpr`` of in-distribution inputs pass (score <= cut).

        The cut is the ``ceil(tpr * N)``-th smallest score of ``val_features``
        (nearest rank): at least ``tpr`` of them pass, and no lower cut would
        do. Use held-out data, not the training features (those find
        themselves in the bank).

        Args:
            val_features (Tensor[N, D]): held-out in-distribution embeddings.
            tpr (float): in (0, 1). Default 0.95.
            labels (Tensor[N], optional): their (predicted) classes, for ``per_class``.

        Returns:
            float: the cut, also stored as ``threshold_``.
        """
        if isinstance(tpr, bool) or not isinstance(tpr, numbers.Real) or not 0 < tpr < 1:
            raise ValueError(f"NoveltyDetector.threshold: tpr must be in (0, 1), got {tpr!r}")
        s = self.score(val_features, labels)
        rank = min(max(math.ceil(float(tpr) * s.numel()), 1), s.numel())
        self.threshold_ = float(torch.kthvalue(s.double().cpu(), rank)[0])
        return self.threshold_

    def predict(self, features: Any, labels: Any = None) -> Tensor:
        """Tensor[N] bool: True where the score exceeds ``threshold_`` (novel)."""
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
        if isinstance(top_n, bool) or not isinstance(top_n, numbers.Integral) or top_n < 0:
            raise ValueError(f"NoveltyDetector.report: top_n must be an int >= 0, got {top_n!r}")
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
            y = check_labels(labels, None, "labels").cpu()
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
                uniques, codes = np.unique(array, return_inverse=True)
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
        >>> cov = bt.quality.embedding_coverage(train_feats, prod_feats, train_labels)
        >>> for r in cov["regions"]: print(r["count"], r["representatives"])
    """
    owner = "embedding_coverage"
    k = _check_k(k, owner)
    if isinstance(quantile, bool) or not isinstance(quantile, numbers.Real) or not 0 < quantile < 1:
        raise ValueError(f"{owner}: quantile must be in (0, 1), got {quantile!r}")
    for name, value in (("n_regions", n_regions), ("n_examples", n_examples)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{owner}: {name} must be an int >= 1, got {value!r}")
    x = _features(train_features, "train_features", owner)
    q = _features(query_features, "query_features", owner, x.shape[1], x.device)
    if x.shape[0] <= k:
        raise ValueError(f"{owner}: train_features has {x.shape[0]} rows; it needs more than k={k}")
    dtype = torch.promote_types(x.dtype, q.dtype)
    x = _normalized(x.to(dtype), normalize)
    q = _normalized(q.to(dtype), normalize)
    y = None
    if train_labels is not None:
        y = check_labels(train_labels, None, "train_labels").cpu()
        if y.numel() != x.shape[0]:
            raise ValueError(f"{owner}: train_labels has {y.numel()} entries but train_features has {x.shape[0]} rows")
    train_d = _kth(knn(x, k)[0]).double().cpu()
    qd2, qi = knn(q, k, ref=x)
    dist = _kth(qd2).double().cpu()
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
