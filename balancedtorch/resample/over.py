"""Over-samplers: RandomOverSampler, SMOTE, BorderlineSMOTE and ADASYN.

The algorithms are imbalanced-learn's (0.14): the same neighbour sets, the
same per-class output counts and the same output layout (the original samples
first, then each class's new samples in ascending class order). Neighbours come
from ``bt.ops.knn``; a new sample is ``x + u * (x_nn - x)``, ``u ~ U[0, 1)``.
The random streams are torch's, so the individual new points differ from
imbalanced-learn's for the same seed; their distribution does not.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, List, Tuple

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from ._base import BaseSampler, InvalidParameterError, Neighbours, _Data, _Rows, check_choice, check_n_jobs

__all__ = ["RandomOverSampler", "SMOTE", "BorderlineSMOTE", "ADASYN"]


class _OverSampler(BaseSampler):
    _sampling_type = "over-sampling"

    def _stack(self, data: _Data, X: Tensor, parts: List[Tuple[int, Tensor]]) -> Tuple[Tensor, Tensor]:
        new_rows = sum(p.shape[0] for _, p in parts)
        out = X.new_empty((data.n + new_rows, X.shape[1]))
        out[: data.n] = X
        codes = [data.codes]
        at = data.n
        for code, block in parts:
            out[at : at + block.shape[0]] = block
            at += block.shape[0]
            codes.append(torch.full((block.shape[0],), code, dtype=data.codes.dtype, device=data.device))
        return out, torch.cat(codes)


def _interpolate(base: Tensor, rows: Tensor, targets: Tensor, steps: Tensor) -> Tensor:
    """base[rows] + steps * (targets - base[rows]) in base's (floating) dtype."""
    start = base.index_select(0, rows)
    return torch.lerp(start, targets, steps.to(start.dtype).unsqueeze(1))


def _make_samples(
    X_from: Tensor, nn_data: Tensor, nns: Tensor, n_samples: int, gen: torch.Generator, pair_scale: Tensor = None
) -> Tensor:
    """n_samples new points: a random (row, neighbour) pair each, a uniform step.

    ``pair_scale`` (BorderlineSMOTE-2): a boolean per neighbour of nn_data; the
    step towards such a neighbour is drawn from U[0, 0.5) instead of U[0, 1).
    """
    n_rows, k = nns.shape
    device = X_from.device
    pick = torch.randint(0, n_rows * k, (n_samples,), generator=gen, device=device)
    rows, cols = pick // k, pick % k
    steps = torch.rand(n_samples, generator=gen, device=device, dtype=torch.float64)
    neighbours = nns[rows, cols]
    if pair_scale is not None:
        other = pair_scale[neighbours]
        steps = torch.where(other, steps * torch.rand(n_samples, generator=gen, device=device, dtype=torch.float64) * 0.5, steps)
    return _interpolate(X_from, rows, nn_data.index_select(0, neighbours), steps)


class RandomOverSampler(_OverSampler):
    """Repeat random samples of the classes to over-sample (imbalanced-learn's RandomOverSampler).

    X is only indexed, never computed with: any X (strings, dates, NaN, every
    DataFrame column dtype) comes back as given, unless ``shrinkage`` is set.

    Args:
        sampling_strategy: which classes to over-sample and to what size.
            Default ``"auto"`` (= ``"not majority"``); also ``"minority"``,
            ``"not minority"``, ``"all"``, a float in (0, 1] (two classes:
            the minority's target size as a share of the majority's), a dict
            ``{class: target count}`` or a callable ``y -> dict``.
        random_state: int, numpy RandomState/Generator, torch.Generator or
            None (default: a fresh seed from torch's global RNG).
        shrinkage (float or dict, optional): smoothed bootstrap; new points get
            Gaussian noise scaled by ``shrinkage * h * std(class)``. Finite
            and >= 0 (a float or per-class dict values), checked at fit: a
            bad float raises what imbalanced-learn raises (a ValueError that
            is also a TypeError), a bad dict value a ValueError. Default None
            (plain repetition).
        device (str or torch.device, optional): where numpy inputs are
            processed; tensors stay on theirs. Default None (the input's).

    Attributes:
        sampling_strategy_ (dict): class -> samples added.
        sample_indices_ (ndarray or Tensor[N_out] int64): the row of X each
            output row repeats.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> X, y = torch.randn(120, 4), torch.tensor([0] * 100 + [1] * 20)
        >>> X_res, y_res = bt.resample.RandomOverSampler(random_state=0).fit_resample(X, y)
        >>> torch.bincount(y_res).tolist()
        [100, 100]
    """

    _accepts_any_x = True
    _has_sample_indices = True

    def __init__(
        self, *, sampling_strategy: Any = "auto", random_state: Any = None, shrinkage: Any = None, device: Any = None
    ) -> None:
        super().__init__(sampling_strategy, random_state, device)
        self.shrinkage = shrinkage

    def _fit_resample(self, data: _Data):
        shrink = self.shrinkage
        if shrink is not None:
            if isinstance(shrink, numbers.Real) and not isinstance(shrink, bool):
                if not (math.isfinite(shrink) and shrink >= 0):
                    raise InvalidParameterError(
                        f"RandomOverSampler: shrinkage must be None, a finite float >= 0 or a dict, got {shrink!r}"
                    )
                shrink = {c: float(shrink) for c in self.sampling_strategy_}
            elif not isinstance(shrink, dict):
                raise InvalidParameterError(
                    f"RandomOverSampler: shrinkage must be None, a finite float >= 0 or a dict, got {shrink!r}"
                )
            missing = set(self.sampling_strategy_) - set(shrink)
            if missing:
                raise ValueError(
                    f"RandomOverSampler: `shrinkage` should contain a shrinkage factor for each class that will be "
                    f"resampled; missing {sorted(missing, key=repr)}"
                )
            for cls, f in shrink.items():
                # imbalanced-learn lets NaN/inf factors through to NaN rows; refuse them
                try:
                    _validate.real(f, f"shrinkage[{cls!r}]", low=0)
                except (TypeError, ValueError) as e:  # imbalanced-learn's words first, its ValueError
                    raise ValueError(f"RandomOverSampler: The shrinkage factor needs to be >= 0: {e}") from None
        self.shrinkage_ = shrink
        if shrink is not None and data.numpy and not (np.issubdtype(data.np_dtype, np.number) or data.np_dtype == bool):
            raise ValueError(
                "RandomOverSampler: When shrinkage is not None, X needs to contain only numerical data to later "
                f"generate a smoothed bootstrap sample; got X of dtype {data.np_dtype}"
            )
        gen = self._generator
        picks = [torch.arange(data.n, device=data.device)]
        parts = []
        for code, n_new in self._codes_strategy.items():
            rows = data.rows_of(code)
            boot = rows[torch.randint(0, rows.numel(), (n_new,), generator=gen, device=data.device)]
            picks.append(boot)
            parts.append((code, boot))
        idx = torch.cat(picks)
        self.sample_indices_ = data.out_indices(idx)
        codes = data.codes.index_select(0, idx)
        if shrink is None:
            return _Rows(idx), codes  # rows of the caller's X: any dtype, NaN and every column dtype kept
        Xw = data.work()
        n, d = Xw.shape
        h = (4.0 / ((d + 2) * n)) ** (1.0 / (d + 4))
        blocks = []
        for code, boot in parts:
            rows = data.rows_of(code)
            scale = float(shrink[data.class_values[code]]) * h * Xw.index_select(0, rows).double().std(0, unbiased=False)
            noise = torch.randn((boot.numel(), d), generator=gen, device=data.device, dtype=torch.float64) * scale
            blocks.append((code, (Xw.index_select(0, boot).double() + noise).to(Xw.dtype)))
        return self._stack(data, Xw, blocks)


class SMOTE(_OverSampler):
    """Synthetic Minority Over-sampling (Chawla et al. 2002), imbalanced-learn's SMOTE.

    Each new point lies on the segment between a random sample of the class and
    one of its ``k_neighbors`` nearest same-class neighbours (itself excluded).
    Output: the input rows first, then each class's new rows, in ascending
    class order; X keeps its floating dtype (integer X: truncated back).

    Args:
        sampling_strategy: which classes to over-sample and to what size.
            Default ``"auto"`` (= ``"not majority"``); also ``"minority"``,
            ``"not minority"``, ``"all"``, a float in (0, 1] (two classes),
            a dict ``{class: target count}`` or a callable ``y -> dict``.
        random_state: int, numpy RandomState/Generator, torch.Generator or
            None (default: a fresh seed from torch's global RNG).
        k_neighbors (int or estimator): same-class neighbours to interpolate
            towards. Default 5. A scikit-learn style neighbours estimator
            counts the sample itself (``n_neighbors - 1`` neighbours); a
            non-Euclidean one runs its own search on numpy copies.
        device (str or torch.device, optional): where numpy inputs are
            processed; tensors stay on theirs. Default None (the input's).

    Attributes:
        sampling_strategy_ (dict): class -> samples added.
        nn_k_: the neighbours estimator the parameters describe.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> X, y = torch.randn(120, 4), torch.tensor([0] * 100 + [1] * 20)
        >>> X_res, y_res = bt.resample.SMOTE(k_neighbors=5, random_state=0).fit_resample(X, y)
        >>> X_res.shape, torch.bincount(y_res).tolist()
        (torch.Size([200, 4]), [100, 100])
    """

    def __init__(
        self, *, sampling_strategy: Any = "auto", random_state: Any = None, k_neighbors: int = 5, device: Any = None
    ) -> None:
        super().__init__(sampling_strategy, random_state, device)
        self.k_neighbors = k_neighbors

    def _fit_resample(self, data: _Data):
        nn_k = Neighbours(self.k_neighbors, "k_neighbors", self._owner, 1)
        self.nn_k_ = nn_k.estimator
        Xw = data.work()
        todo = [(code, n_new) for code, n_new in self._codes_strategy.items() if n_new > 0]
        blocks = [Xw.index_select(0, data.rows_of(code)) for code, _ in todo]
        # every class's same-class neighbours from one knn(groups=) call (equal to one call per class)
        nns = nn_k.within_classes(blocks, [data.class_values[code] for code, _ in todo])
        parts = []
        for (code, n_new), X_class, nns_class in zip(todo, blocks, nns):
            parts.append((code, _make_samples(X_class, X_class, nns_class, n_new, self._generator)))
        return self._stack(data, Xw, parts)


class BorderlineSMOTE(_OverSampler):
    """SMOTE from the borderline samples only (Han et al. 2005), imbalanced-learn's BorderlineSMOTE.

    A sample is "in danger" when at least half, but not all, of its
    ``m_neighbors`` nearest neighbours (all classes) belong to other classes.
    ``kind="borderline-1"`` interpolates towards the ``k_neighbors`` nearest
    same-class samples; ``"borderline-2"`` towards the nearest samples of any
    class, stepping at most half-way towards other classes.

    Args:
        sampling_strategy: which classes to over-sample and to what size.
            Default ``"auto"`` (= ``"not majority"``); as :class:`SMOTE`.
        random_state: int, numpy RandomState/Generator, torch.Generator or
            None (default: a fresh seed from torch's global RNG).
        k_neighbors (int or estimator): neighbours to interpolate towards.
            Default 5.
        m_neighbors (int or estimator): neighbours (all classes) that decide
            whether a sample is in danger. Default 10.
        kind (str): ``"borderline-1"`` (default) or ``"borderline-2"``,
            checked at fit.
        device (str or torch.device, optional): where numpy inputs are
            processed; tensors stay on theirs. Default None (the input's).

    Attributes:
        sampling_strategy_ (dict): class -> samples added.
        in_danger_indices (dict): class -> the rows of X found in danger.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> X, y = torch.randn(300, 2), torch.tensor([0] * 250 + [1] * 50)
        >>> X_res, y_res = bt.resample.BorderlineSMOTE(kind="borderline-2", random_state=0).fit_resample(X, y)
        >>> X_res.shape[0] >= 300
        True
    """

    def __init__(
        self,
        *,
        sampling_strategy: Any = "auto",
        random_state: Any = None,
        k_neighbors: int = 5,
        m_neighbors: int = 10,
        kind: str = "borderline-1",
        device: Any = None,
    ) -> None:
        super().__init__(sampling_strategy, random_state, device)
        self.k_neighbors = k_neighbors
        self.m_neighbors = m_neighbors
        self.kind = kind

    def _fit_resample(self, data: _Data):
        nn_k = Neighbours(self.k_neighbors, "k_neighbors", self._owner, 1)
        nn_m = Neighbours(self.m_neighbors, "m_neighbors", self._owner, 1)
        self.nn_k_, self.nn_m_ = nn_k.estimator, nn_m.estimator
        m = nn_m.k
        check_choice(self.kind, "kind", self._owner, ("borderline-1", "borderline-2"))
        Xw = data.work()
        parts = []
        self.in_danger_indices = {}
        for code, n_new in self._codes_strategy.items():
            if n_new == 0:
                continue
            rows = data.rows_of(code)
            X_class = Xw.index_select(0, rows)
            _, nbrs = nn_m.query(X_class, Xw)
            n_other = (data.codes[nbrs] != code).sum(1)
            danger = (n_other * 2 >= m) & (n_other < m)
            if not bool(danger.any()):
                continue
            self.in_danger_indices[data.class_values[code]] = data.out_indices(rows[danger])
            X_danger = X_class[danger]
            if self.kind == "borderline-1":
                _, nns = nn_k.query(X_danger, X_class, data.class_values[code])
                block = _make_samples(X_danger, X_class, nns, n_new, self._generator)
            else:
                _, nns = nn_k.query(X_danger, Xw)
                block = _make_samples(X_danger, Xw, nns, n_new, self._generator, pair_scale=data.codes != code)
            parts.append((code, block))
        return self._stack(data, Xw, parts)


class ADASYN(_OverSampler):
    """Adaptive synthetic sampling (He et al. 2008), imbalanced-learn's ADASYN.

    Samples whose ``n_neighbors`` nearest neighbours belong more to other
    classes get proportionally more new points (``rint`` of their share), each
    interpolated towards a random one of their same-class neighbours.

    Args:
        sampling_strategy: which classes to over-sample and to what size.
            Default ``"auto"`` (= ``"not majority"``); as :class:`SMOTE`.
        random_state: int, numpy RandomState/Generator, torch.Generator or
            None (default: a fresh seed from torch's global RNG).
        n_neighbors (int or estimator): neighbours that measure how hard a
            sample is, and the same-class neighbours it interpolates
            towards. Default 5.
        n_jobs: accepted for imbalanced-learn compatibility (torch's threads
            are used). Default None.
        device (str or torch.device, optional): where numpy inputs are
            processed; tensors stay on theirs. Default None (the input's).

    Raises:
        RuntimeError: at fit, when no neighbour of a class to over-sample
            belongs to another class (as imbalanced-learn).

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> X, y = torch.randn(300, 2), torch.tensor([0] * 250 + [1] * 50)
        >>> X_res, y_res = bt.resample.ADASYN(random_state=0).fit_resample(X, y)
        >>> abs(int((y_res == 1).sum()) - 250) < 25  # about balanced (rounded per sample)
        True
    """

    def __init__(
        self,
        *,
        sampling_strategy: Any = "auto",
        random_state: Any = None,
        n_neighbors: int = 5,
        n_jobs: Any = None,
        device: Any = None,
    ) -> None:
        super().__init__(sampling_strategy, random_state, device)
        self.n_neighbors = n_neighbors
        self.n_jobs = n_jobs  # accepted for imbalanced-learn compatibility; threads come from torch

    def _fit_resample(self, data: _Data):
        check_n_jobs(self.n_jobs, self._owner)
        nn = Neighbours(self.n_neighbors, "n_neighbors", self._owner, 1)
        self.nn_ = nn.estimator
        k = nn.k
        Xw = data.work()
        gen = self._generator
        todo = []  # (code, the class's rows, how many new points each row gets, their sum)
        for code, n_new in self._codes_strategy.items():
            if n_new == 0:
                continue
            rows = data.rows_of(code)
            X_class = Xw.index_select(0, rows)
            _, nns = nn.query(X_class, Xw)
            ratio = (data.codes[nns] != code).sum(1).double() / k
            total = ratio.sum()
            if not bool(total > 0):
                raise RuntimeError(
                    f"ADASYN: no neighbour of class {data.class_values[code]!r} belongs to another class, so ADASYN "
                    "has nothing to adapt to (division by zero); use SMOTE for this data"
                )
            per_row = torch.round(ratio / total * n_new).long()  # numpy's rint: half to even
            n_gen = int(per_row.sum())
            if n_gen == 0:
                raise ValueError("ADASYN: no samples would be generated with this sampling_strategy")
            nn.check(rows.numel(), data.class_values[code])  # raised in class order, as the search per class did
            todo.append((code, X_class, per_row, n_gen))
        # the same-class neighbours of every class from one knn(groups=) call; the draws follow in class order
        nns = nn.within_classes([t[1] for t in todo], [data.class_values[t[0]] for t in todo])
        parts = []
        for (code, X_class, per_row, n_gen), nns_class in zip(todo, nns):
            src = torch.repeat_interleave(torch.arange(X_class.shape[0], device=data.device), per_row)
            cols = torch.randint(0, k, (n_gen,), generator=gen, device=data.device)
            steps = torch.rand(n_gen, generator=gen, device=data.device, dtype=torch.float64)
            parts.append((code, _interpolate(X_class, src, X_class.index_select(0, nns_class[src, cols]), steps)))
        return self._stack(data, Xw, parts)
