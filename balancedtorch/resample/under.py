"""Under-samplers: RandomUnderSampler, NearMiss, TomekLinks, EditedNearestNeighbours, ClusterCentroids.

imbalanced-learn's algorithms (0.14) and output order: classes ascending, each
class's kept samples (in selection order for NearMiss, in index order for the
cleaning methods), ``sample_indices_`` the rows of X kept. Neighbour searches
go through ``bt.ops.knn``; on data without distance ties the same samples are
selected as imbalanced-learn selects.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import Tensor

from ..ops.knn import knn
from ._base import (
    BaseSampler,
    InvalidParameterError,
    Neighbours,
    _Data,
    _Rows,
    check_choice,
    check_int,
    check_n_jobs,
    clone_estimator,
    selection,
)

__all__ = ["RandomUnderSampler", "NearMiss", "TomekLinks", "EditedNearestNeighbours", "ClusterCentroids"]


class _UnderSampler(BaseSampler):
    _sampling_type = "under-sampling"
    _has_sample_indices = True

    def _keep(self, data: _Data, keep: Dict[int, Optional[Tensor]]):
        idx = selection(data, keep)
        self.sample_indices_ = data.out_indices(idx)
        # rows of the caller's X: every DataFrame column dtype (and, for the random sampler, any X) kept
        return _Rows(idx), data.codes.index_select(0, idx)


class RandomUnderSampler(_UnderSampler):
    """Keep a random subset of each class to under-sample (imbalanced-learn's RandomUnderSampler).

    X is only indexed: any X (strings, dates, NaN, every DataFrame column
    dtype) comes back as given.

    Args:
        sampling_strategy: which classes to under-sample and to what size.
            Default ``"auto"`` (= ``"not minority"``); also ``"majority"``,
            ``"not majority"``, ``"all"``, a float in (0, 1] (two classes:
            minority / majority size after resampling), a dict
            ``{class: count to keep}`` or a callable ``y -> dict``.
        random_state: int, numpy RandomState/Generator, torch.Generator or
            None (default: a fresh seed from torch's global RNG).
        replacement (bool): draw the kept samples with replacement. Default False.
        device (str or torch.device, optional): where numpy inputs are
            processed; tensors stay on theirs. Default None (the input's).

    Attributes:
        sampling_strategy_ (dict): class -> samples kept.
        sample_indices_ (ndarray or Tensor[N_out] int64): the rows of X kept.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> X, y = torch.randn(120, 4), torch.tensor([0] * 100 + [1] * 20)
        >>> X_res, y_res = bt.resample.RandomUnderSampler(random_state=0).fit_resample(X, y)
        >>> torch.bincount(y_res).tolist()
        [20, 20]
    """

    _accepts_any_x = True

    def __init__(
        self, *, sampling_strategy: Any = "auto", random_state: Any = None, replacement: bool = False, device: Any = None
    ) -> None:
        super().__init__(sampling_strategy, random_state, device)
        self.replacement = replacement

    def _fit_resample(self, data: _Data):
        if not isinstance(self.replacement, (bool, np.bool_)):
            raise InvalidParameterError(f"RandomUnderSampler: replacement must be a bool, got {self.replacement!r}")
        gen = self._generator
        keep = {}
        for code, n_keep in self._codes_strategy.items():
            n_class = data.counts[code]
            if self.replacement:
                keep[code] = torch.randint(0, n_class, (n_keep,), generator=gen, device=data.device)
            else:
                keep[code] = torch.randperm(n_class, generator=gen, device=data.device)[:n_keep]
        return self._keep(data, keep)


def _farthest_sum(queries: Tensor, ref: Tensor, n: int, chunk_bytes: int = 256 * 2**20) -> Tensor:
    """Sum of the Euclidean distances to the n farthest rows of ref, per query (chunked)."""
    out = torch.empty(queries.shape[0], dtype=torch.float64, device=queries.device)
    rows = max(1, chunk_bytes // (8 * max(1, ref.shape[0])))
    r = ref.double()
    for s in range(0, queries.shape[0], rows):
        d = torch.cdist(queries[s : s + rows].double(), r)
        out[s : s + rows] = d.topk(n, dim=1, largest=True, sorted=False).values.sum(1)
    return out


class NearMiss(_UnderSampler):
    """Keep the samples nearest to (or, version 3, farthest among those near) the minority class (Mani & Zhang 2003).

    version=1: smallest mean distance to the ``n_neighbors`` nearest minority
    samples; version=2: smallest mean distance to the ``n_neighbors`` farthest
    minority samples; version=3: among the ``n_neighbors_ver3`` nearest
    neighbours of each minority sample, the largest mean distance to the
    ``n_neighbors`` nearest minority samples. Same selections and order as
    imbalanced-learn.

    Args:
        sampling_strategy: which classes to under-sample and to what size.
            Default ``"auto"`` (= ``"not minority"``); as
            :class:`RandomUnderSampler`.
        version (int): 1 (default), 2 or 3, checked at fit.
        n_neighbors (int or estimator): minority neighbours averaged over.
            Default 3.
        n_neighbors_ver3 (int or estimator): version 3's candidate
            neighbourhood of each minority sample. Default 3.
        n_jobs: accepted for imbalanced-learn compatibility (torch's threads
            are used). Default None.
        device (str or torch.device, optional): where numpy inputs are
            processed; tensors stay on theirs. Default None (the input's).

    Attributes:
        sampling_strategy_ (dict): class -> samples kept.
        sample_indices_ (ndarray or Tensor[N_out] int64): the rows of X kept.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> X, y = torch.randn(120, 4), torch.tensor([0] * 100 + [1] * 20)
        >>> X_res, y_res = bt.resample.NearMiss(version=2).fit_resample(X, y)
        >>> torch.bincount(y_res).tolist()
        [20, 20]
    """

    def __init__(
        self,
        *,
        sampling_strategy: Any = "auto",
        version: int = 1,
        n_neighbors: int = 3,
        n_neighbors_ver3: int = 3,
        n_jobs: Any = None,
        device: Any = None,
    ) -> None:
        super().__init__(sampling_strategy, None, device)
        self.version = version
        self.n_neighbors = n_neighbors
        self.n_neighbors_ver3 = n_neighbors_ver3
        self.n_jobs = n_jobs  # accepted for imbalanced-learn compatibility; threads come from torch

    def _fit_resample(self, data: _Data):
        check_choice(self.version, "version", self._owner, (1, 2, 3))
        check_n_jobs(self.n_jobs, self._owner)
        nn = Neighbours(self.n_neighbors, "n_neighbors", self._owner, 0)
        self.nn_ = nn.estimator
        k = nn.k
        Xw = data.work()
        # imbalanced-learn takes the minority from a Counter: ties go to the class seen first in y
        first_seen = torch.full((len(data.counts),), data.n, dtype=torch.long, device=data.device)
        first_seen.scatter_reduce_(0, data.codes, torch.arange(data.n, device=data.device), reduce="amin")
        first = first_seen.tolist()
        minority = min(range(len(data.counts)), key=lambda c: (data.counts[c], first[c]))
        X_min = Xw.index_select(0, data.rows_of(minority))
        if X_min.shape[0] < k:
            raise ValueError(f"NearMiss: n_neighbors={k} needs at least {k} minority samples, got {X_min.shape[0]}")
        keep = {}
        for code, n_keep in self._codes_strategy.items():
            X_class = Xw.index_select(0, data.rows_of(code))
            candidates = None
            if self.version == 1:
                score = nn.distances(X_class, X_min, k)[0].sum(1)
            elif self.version == 2:
                if nn.own_search:
                    score = nn.distances(X_class, X_min, X_min.shape[0])[0][:, -k:].sum(1)
                else:
                    score = _farthest_sum(X_class, X_min, k)
            else:
                nn3 = Neighbours(self.n_neighbors_ver3, "n_neighbors_ver3", self._owner, 0)
                self.nn_ver3_ = nn3.estimator
                k3 = nn3.k
                if X_class.shape[0] < k3:
                    raise ValueError(
                        f"NearMiss: n_neighbors_ver3={k3} needs at least {k3} samples in class "
                        f"{data.class_values[code]!r}, got {X_class.shape[0]}"
                    )
                _, near = nn3.distances(X_min, X_class, k3)
                candidates = torch.unique(near.flatten())
                X_sel = X_class.index_select(0, candidates)
                score = nn.distances(X_sel, X_min, k)[0].sum(1)
            # Python's stable sorted(): ties keep index order, also when reversed
            order = torch.sort(score, stable=True, descending=self.version == 3).indices
            if order.numel() < n_keep:
                warnings.warn(
                    f"NearMiss: {n_keep} samples asked from class {data.class_values[code]!r} but only "
                    f"{order.numel()} are candidates; all of them are returned",
                    stacklevel=3,
                )
            order = order[:n_keep]
            keep[code] = order if candidates is None else candidates[order]
        return self._keep(data, keep)


class TomekLinks(_UnderSampler):
    """Remove the samples of the targeted classes that form a Tomek link (Tomek 1976).

    Two samples of different classes form a link when each is the other's
    nearest neighbour.

    Args:
        sampling_strategy: the classes whose linked samples are removed.
            Default ``"auto"`` (= ``"not minority"``); also ``"majority"``,
            ``"not majority"``, ``"all"`` or a list of classes.
        n_jobs: accepted for imbalanced-learn compatibility (torch's threads
            are used). Default None.
        device (str or torch.device, optional): where numpy inputs are
            processed; tensors stay on theirs. Default None (the input's).

    Attributes:
        sample_indices_ (ndarray or Tensor[N_out] int64): the rows of X kept.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> X = torch.tensor([[0.0], [0.1], [1.0], [5.0]])
        >>> X_res, y_res = bt.resample.TomekLinks().fit_resample(X, torch.tensor([0, 1, 0, 0]))
        >>> X_res.flatten().tolist()  # (0.0, 0.1) is a link; the majority's 0.0 goes
        [0.10000000149011612, 1.0, 5.0]
    """

    _sampling_type = "clean-sampling"

    def __init__(self, *, sampling_strategy: Any = "auto", n_jobs: Any = None, device: Any = None) -> None:
        super().__init__(sampling_strategy, None, device)
        self.n_jobs = n_jobs  # accepted for imbalanced-learn compatibility; threads come from torch

    def _fit_resample(self, data: _Data):
        check_n_jobs(self.n_jobs, self._owner)
        nn = knn(data.work(), 1)[1].squeeze(1)
        y = data.codes
        targeted = torch.zeros(len(data.counts), dtype=torch.bool, device=data.device)
        targeted[list(self._codes_strategy)] = True
        links = targeted[y] & (y[nn] != y) & (nn[nn] == torch.arange(data.n, device=data.device))
        idx = (~links).nonzero().squeeze(1)
        self.sample_indices_ = data.out_indices(idx)
        return _Rows(idx), y.index_select(0, idx)


class EditedNearestNeighbours(_UnderSampler):
    """Remove the samples of the targeted classes that disagree with their neighbourhood (Wilson 1972).

    ``kind_sel="all"``: keep a sample only if all its ``n_neighbors`` nearest
    neighbours share its class; ``"mode"``: if the most common class among
    them (the smallest class on ties) is its own.

    Args:
        sampling_strategy: the classes to clean. Default ``"auto"``
            (= ``"not minority"``); also ``"majority"``, ``"not majority"``,
            ``"all"`` or a list of classes.
        n_neighbors (int or estimator): neighbours consulted. Default 3.
        kind_sel (str): ``"all"`` (default) or ``"mode"``, checked at fit.
        n_jobs: accepted for imbalanced-learn compatibility (torch's threads
            are used). Default None.
        device (str or torch.device, optional): where numpy inputs are
            processed; tensors stay on theirs. Default None (the input's).

    Attributes:
        sample_indices_ (ndarray or Tensor[N_out] int64): the rows of X kept.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> X, y = torch.randn(300, 2), torch.tensor([0] * 250 + [1] * 50)
        >>> X_res, y_res = bt.resample.EditedNearestNeighbours(kind_sel="mode").fit_resample(X, y)
        >>> int((y_res == 1).sum())  # the minority is not cleaned ("auto")
        50
    """

    _sampling_type = "clean-sampling"

    def __init__(
        self,
        *,
        sampling_strategy: Any = "auto",
        n_neighbors: int = 3,
        kind_sel: str = "all",
        n_jobs: Any = None,
        device: Any = None,
    ) -> None:
        super().__init__(sampling_strategy, None, device)
        self.n_neighbors = n_neighbors
        self.kind_sel = kind_sel
        self.n_jobs = n_jobs  # accepted for imbalanced-learn compatibility; threads come from torch

    def _fit_resample(self, data: _Data):
        nn_ = Neighbours(self.n_neighbors, "n_neighbors", self._owner, 1)
        self.nn_ = nn_.estimator
        check_choice(self.kind_sel, "kind_sel", self._owner, ("all", "mode"))
        check_n_jobs(self.n_jobs, self._owner)
        Xw = data.work()
        keep = {}
        for code in self._codes_strategy:
            X_class = Xw.index_select(0, data.rows_of(code))
            _, nn = nn_.query(X_class, Xw)
            labels = data.codes[nn]  # (n_class, k)
            if self.kind_sel == "all":
                ok = (labels == code).all(1)
            else:
                votes = (labels.unsqueeze(2) == labels.unsqueeze(1)).sum(2)  # votes[i, j]: how many share labels[i, j]
                best = votes.max(1, keepdim=True).values
                mode = torch.where(votes == best, labels, torch.full_like(labels, len(data.counts))).min(1).values
                ok = mode == code
            keep[code] = ok.nonzero().squeeze(1)
        return self._keep(data, keep)


def kmeans(x: Tensor, n_clusters: int, gen: torch.Generator, max_iter: int = 300, tol: float = 1e-4) -> Tensor:
    """Lloyd's k-means with k-means++ seeding, on x's device; returns the centroids."""
    n = x.shape[0]
    xd = x.double()
    centers = torch.empty((n_clusters, x.shape[1]), dtype=torch.float64, device=x.device)
    # seeding and assignments in the data's precision, as scikit-learn's KMeans
    # (float32 data: half the bytes per pass, and the fused CPU kNN kernel)
    xs = xd if x.dtype == torch.float64 else x.float()
    xsq = (xs * xs).sum(1)

    def sq_dist(i: int) -> Tensor:  # squared distances of every point to point i: one matrix-vector product
        d = torch.mv(xs, xs[i]).mul_(-2).add_(xsq).add_(xsq[i]).clamp_min_(0).double()
        d[i] = 0
        return d

    pick = int(torch.randint(0, n, (1,), generator=gen, device=x.device))
    centers[0] = xd[pick]
    closest = sq_dist(pick)
    for c in range(1, n_clusters):
        # D^2 sampling by inverse CDF: the first point whose running sum passes u * total
        cum = torch.cumsum(closest, 0)
        total = cum[-1:]
        if bool(total <= 0):
            pick = int(torch.randint(0, n, (1,), generator=gen, device=x.device))
        else:
            u = torch.rand(1, generator=gen, device=x.device, dtype=torch.float64) * total
            pick = min(int(torch.searchsorted(cum, u, right=True)), n - 1)
        centers[c] = xd[pick]
        closest = torch.minimum(closest, sq_dist(pick))
    threshold = tol * float(xd.var(0, unbiased=False).mean())
    for _ in range(max_iter):
        assign = knn(xs, 1, ref=centers.to(xs.dtype))[1].squeeze(1)
        sums = torch.zeros_like(centers).index_add_(0, assign, xd)
        sizes = torch.bincount(assign, minlength=n_clusters).unsqueeze(1)
        updated = torch.where(sizes > 0, sums / sizes.clamp_min(1), centers)
        shift = (updated - centers).pow(2).sum()
        centers = updated
        if float(shift) <= threshold:
            break
    return centers


class ClusterCentroids(_UnderSampler):
    """Replace each class to under-sample by the centroids of a k-means on it (imbalanced-learn's ClusterCentroids).

    k-means (k-means++ seeding, Lloyd iterations) runs on the data's device
    through ``bt.ops.knn``. ``voting="soft"`` (the default for dense data)
    returns the centroids; ``"hard"`` the class sample nearest to each.
    ``estimator``: optionally a scikit-learn style clusterer with
    ``n_clusters`` and ``cluster_centers_`` (run on numpy copies).

    Args:
        sampling_strategy: which classes to under-sample and to how many
            centroids. Default ``"auto"`` (= ``"not minority"``); as
            :class:`RandomUnderSampler`.
        random_state: int, numpy RandomState/Generator, torch.Generator or
            None (default: a fresh seed from torch's global RNG).
        estimator: a clusterer to use instead of the built-in k-means
            (cloned; the object passed is never fitted). Default None.
        voting (str): ``"auto"`` (default, = ``"soft"``), ``"soft"``
            (centroids; floating even for integer X) or ``"hard"`` (the
            nearest class sample to each centroid), checked at fit.
        max_iter (int): Lloyd iterations of the built-in k-means. Default 300.
        device (str or torch.device, optional): where numpy inputs are
            processed; tensors stay on theirs. Default None (the input's).

    Attributes:
        sampling_strategy_ (dict): class -> centroids kept.
        voting_ (str): the voting used.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> X, y = torch.randn(120, 4), torch.tensor([0] * 100 + [1] * 20)
        >>> X_res, y_res = bt.resample.ClusterCentroids(random_state=0).fit_resample(X, y)
        >>> torch.bincount(y_res).tolist()
        [20, 20]
    """

    _has_sample_indices = False  # centroids are new points, as imbalanced-learn

    def __init__(
        self,
        *,
        sampling_strategy: Any = "auto",
        random_state: Any = None,
        estimator: Any = None,
        voting: str = "auto",
        max_iter: int = 300,
        device: Any = None,
    ) -> None:
        super().__init__(sampling_strategy, random_state, device)
        self.estimator = estimator
        self.voting = voting
        self.max_iter = max_iter

    def _fit_resample(self, data: _Data):
        check_choice(self.voting, "voting", self._owner, ("auto", "soft", "hard"))
        if self.estimator is not None and not (hasattr(self.estimator, "fit") and hasattr(self.estimator, "predict")):
            raise InvalidParameterError(
                f"ClusterCentroids: estimator must be None or a clusterer with fit and predict, got {self.estimator!r}"
            )
        # imbalanced-learn: "auto" is "hard" for sparse X (centroids of sparse rows are dense), "soft" otherwise
        self.voting_ = ("hard" if data.x_sp is not None else "soft") if self.voting == "auto" else self.voting
        data.float_out = self.voting_ == "soft"  # centroids of integer X are floats, as imbalanced-learn's
        max_iter = check_int(self.max_iter, "max_iter", self._owner)
        self.estimator_ = None if self.estimator is None else clone_estimator(self.estimator)
        if self.estimator_ is not None and not hasattr(self.estimator_, "n_clusters"):
            raise ValueError(
                "ClusterCentroids: `estimator` should be a clustering estimator exposing a parameter `n_clusters` "
                f"and a fitted parameter `cluster_centers_`. Got {self.estimator!r}"
            )
        Xw = data.work()
        gen = self._generator
        xs, ys = [], []
        for code in range(len(data.counts)):
            X_class = Xw.index_select(0, data.rows_of(code))
            n_keep = self._codes_strategy.get(code)
            if n_keep is None:
                xs.append(X_class)
            elif n_keep == 0:
                xs.append(X_class[:0])
            else:
                if self.estimator is None:
                    centers = kmeans(X_class, n_keep, gen, max_iter=max_iter).to(X_class.dtype)
                else:
                    # the clone is refitted per class, as imbalanced-learn's estimator_; the user's object is untouched
                    est = self.estimator_.set_params(n_clusters=n_keep).fit(X_class.cpu().numpy())
                    if not hasattr(est, "cluster_centers_"):
                        raise RuntimeError(
                            "ClusterCentroids: `estimator` should be a clustering estimator exposing a fitted "
                            f"parameter `cluster_centers_`. {self.estimator!r} has none after fit"
                        )
                    centers = torch.as_tensor(est.cluster_centers_, device=data.device).to(X_class.dtype)
                if self.voting_ == "hard":
                    centers = X_class.index_select(0, knn(centers, 1, ref=X_class)[1].squeeze(1))
                xs.append(centers)
            ys.append(torch.full((xs[-1].shape[0],), code, dtype=data.codes.dtype, device=data.device))
        return torch.cat(xs), torch.cat(ys)
