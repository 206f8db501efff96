"""SMOTE followed by a cleaning method: SMOTETomek and SMOTEENN (imbalanced-learn's)."""

from __future__ import annotations

from typing import Any

from ._base import BaseSampler, InvalidParameterError, _Data, check_n_jobs, clone_estimator
from .over import SMOTE
from .under import EditedNearestNeighbours, TomekLinks

__all__ = ["SMOTETomek", "SMOTEENN"]


class _Combined(BaseSampler):
    """A sampler like the others: ``fit`` checks the data (it does not resample),
    ``fit_resample`` runs a clone of ``smote`` then a clone of the cleaner; the
    objects passed in are never fitted (the clones are ``smote_`` and
    ``tomek_`` / ``enn_``)."""

    _sampling_type = "over-sampling"
    _cleaner_name = ""

    def __init__(self, sampling_strategy: Any, random_state: Any, smote: Any, cleaner: Any, n_jobs: Any, device: Any) -> None:
        super().__init__(sampling_strategy, random_state, device)
        self.smote = smote
        setattr(self, self._cleaner_name, cleaner)
        self.n_jobs = n_jobs  # accepted for imbalanced-learn compatibility; threads come from torch

    def _default_cleaner(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _validate_estimator(self) -> None:
        """``smote_`` and the cleaner's clone, as imbalanced-learn's method of the same name."""
        check_n_jobs(self.n_jobs, self._owner)
        if self.smote is not None:
            if not hasattr(self.smote, "fit_resample"):
                raise InvalidParameterError(f"{self._owner}: smote must be a sampler with fit_resample, got {self.smote!r}")
            self.smote_ = clone_estimator(self.smote)
        else:
            self.smote_ = SMOTE(sampling_strategy=self.sampling_strategy, random_state=self.random_state, device=self.device)
        cleaner = getattr(self, self._cleaner_name)
        if cleaner is not None:
            if not hasattr(cleaner, "fit_resample"):
                raise InvalidParameterError(
                    f"{self._owner}: {self._cleaner_name} must be a sampler with fit_resample, got {cleaner!r}"
                )
            cleaner_ = clone_estimator(cleaner)
        else:
            cleaner_ = self._default_cleaner()
        setattr(self, self._cleaner_name + "_", cleaner_)

    def fit_resample(self, X: Any, y: Any, **params):
        """Over-sample X and y with (a clone of) ``smote``, then clean the result with the cleaner.

        Args:
            X: Tensor/array/DataFrame/list [N, D], numeric.
            y: labels [N] of any kind :class:`SMOTE` takes.
            **params: accepted for imbalanced-learn compatibility; unused.

        Returns:
            (X_resampled, y_resampled) in the caller's containers (tensor in
            -> tensor out on its device; numpy in -> numpy out).

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> X, y = torch.randn(120, 4), torch.tensor([0] * 100 + [1] * 20)
            >>> X_res, y_res = bt.resample.SMOTEENN(random_state=0).fit_resample(X, y)
            >>> X_res.shape[0] <= 200, X_res.dtype  # balanced by SMOTE, then edited; tensor in, tensor out
            (True, torch.float32)
        """
        data = self._prepare(X, y)  # checks X and y once, with this sampler's name in the messages
        self._validate_estimator()
        X_in, y_in = data.x_in, y
        X_res, y_res = self.smote_.fit_resample(X_in, y_in)
        return self._cleaner_().fit_resample(X_res, y_res)

    def _cleaner_(self):
        return getattr(self, self._cleaner_name + "_")

    def _fit_resample(self, data: _Data):  # pragma: no cover - fit_resample is overridden
        raise NotImplementedError


class SMOTETomek(_Combined):
    """SMOTE, then remove the Tomek links of every class (Batista et al. 2004).

    Args:
        sampling_strategy, random_state: SMOTE's (used when ``smote`` is None).
        smote: a SMOTE-like sampler to use instead of the default (cloned).
        tomek: a TomekLinks-like sampler to use instead of
            ``TomekLinks(sampling_strategy="all")`` (cloned).
        n_jobs: accepted for imbalanced-learn compatibility.
        device: where numpy inputs are processed (tensors stay on theirs).

    Every argument defaults to None except ``sampling_strategy="auto"``.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> X, y = torch.randn(120, 4), torch.tensor([0] * 100 + [1] * 20)
        >>> smote_tomek = bt.resample.SMOTETomek(smote=bt.resample.SMOTE(k_neighbors=3), random_state=0)
        >>> X_res, y_res = smote_tomek.fit_resample(X, y)
        >>> X_res.shape[0] <= 200  # balanced by SMOTE, then the links removed
        True
    """

    _cleaner_name = "tomek"

    def __init__(
        self,
        *,
        sampling_strategy: Any = "auto",
        random_state: Any = None,
        smote: Any = None,
        tomek: Any = None,
        n_jobs: Any = None,
        device: Any = None,
    ) -> None:
        super().__init__(sampling_strategy, random_state, smote, tomek, n_jobs, device)

    def _default_cleaner(self):
        return TomekLinks(sampling_strategy="all", n_jobs=self.n_jobs, device=self.device)


class SMOTEENN(_Combined):
    """SMOTE, then edit every class with EditedNearestNeighbours (Batista et al. 2004).

    Args:
        sampling_strategy, random_state: SMOTE's (used when ``smote`` is None).
        smote: a SMOTE-like sampler to use instead of the default (cloned).
        enn: an EditedNearestNeighbours-like sampler to use instead of
            ``EditedNearestNeighbours(sampling_strategy="all")`` (cloned).
        n_jobs: accepted for imbalanced-learn compatibility.
        device: where numpy inputs are processed (tensors stay on theirs).

    Every argument defaults to None except ``sampling_strategy="auto"``.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> X, y = torch.randn(120, 4), torch.tensor([0] * 100 + [1] * 20)
        >>> X_res, y_res = bt.resample.SMOTEENN(random_state=0).fit_resample(X, y)
        >>> X_res.shape[0] <= 200  # balanced by SMOTE, then edited
        True
    """

    _cleaner_name = "enn"

    def __init__(
        self,
        *,
        sampling_strategy: Any = "auto",
        random_state: Any = None,
        smote: Any = None,
        enn: Any = None,
        n_jobs: Any = None,
        device: Any = None,
    ) -> None:
        super().__init__(sampling_strategy, random_state, smote, enn, n_jobs, device)

    def _default_cleaner(self):
        return EditedNearestNeighbours(sampling_strategy="all", n_jobs=self.n_jobs, device=self.device)
