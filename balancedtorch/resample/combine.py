"""SMOTE followed by a cleaning method: SMOTETomek and SMOTEENN (imbalanced-learn's)."""

from __future__ import annotations

from typing import Any

from .over import SMOTE
from .under import EditedNearestNeighbours, TomekLinks

__all__ = ["SMOTETomek", "SMOTEENN"]


class _Combined:
    _cleaner_name = ""

    def __init__(self, sampling_strategy: Any, random_state: Any, smote: Any, cleaner: Any, n_jobs: Any, device: Any) -> None:
        self.n_jobs = n_jobs  # accepted for imbalanced-learn compatibility; threads come from torch
        self.sampling_strategy = sampling_strategy
        self.random_state = random_state
        self.smote = smote
        self.device = device
        setattr(self, self._cleaner_name, cleaner)

    def _default_cleaner(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def fit_resample(self, X: Any, y: Any):
        self.smote_ = self.smote if self.smote is not None else SMOTE(
            sampling_strategy=self.sampling_strategy, random_state=self.random_state, device=self.device
        )
        cleaner = getattr(self, self._cleaner_name)
        cleaner_ = cleaner if cleaner is not None else self._default_cleaner()
        setattr(self, self._cleaner_name + "_", cleaner_)
        X_res, y_res = self.smote_.fit_resample(X, y)
        self.sampling_strategy_ = self.smote_.sampling_strategy_
        return cleaner_.fit_resample(X_res, y_res)

    def fit(self, X: Any, y: Any):
        self.fit_resample(X, y)
        return self


class SMOTETomek(_Combined):
    """SMOTE, then remove the Tomek links of every class (Batista et al. 2004)."""

    _cleaner_name = "tomek"

    def __init__(
        self, *, sampling_strategy: Any = "auto", random_state: Any = None, smote: Any = None, tomek: Any = None, n_jobs: Any = None, device: Any = None
    ) -> None:
        super().__init__(sampling_strategy, random_state, smote, tomek, n_jobs, device)

    def _default_cleaner(self):
        return TomekLinks(sampling_strategy="all", device=self.device)


class SMOTEENN(_Combined):
    """SMOTE, then edit every class with EditedNearestNeighbours (Batista et al. 2004)."""

    _cleaner_name = "enn"

    def __init__(
        self, *, sampling_strategy: Any = "auto", random_state: Any = None, smote: Any = None, enn: Any = None, n_jobs: Any = None, device: Any = None
    ) -> None:
        super().__init__(sampling_strategy, random_state, smote, enn, n_jobs, device)

    def _default_cleaner(self):
        return EditedNearestNeighbours(sampling_strategy="all", device=self.device)
