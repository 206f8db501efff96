"""Dataset-level resampling compatible with imbalanced-learn, and FeatureSMOTE for the training loop.

Same class names, parameters and ``fit_resample(X, y)`` as imbalanced-learn;
numpy in -> numpy out, tensor in -> tensor out on the same device, ``device=``
runs numpy input on another device (e.g. CUDA). Neighbour searches use the
exact, chunked ``bt.ops.knn``. The samplers are scikit-learn estimators
(``clone``, ``GridSearchCV`` in an ``imblearn.pipeline.Pipeline``) and take
labels of any kind imbalanced-learn takes, returned in the caller's container.

Sparse X (scipy.sparse csr/csc, any other format as csr, or a DataFrame of
pandas sparse columns) is accepted by every sampler, as imbalanced-learn, and
comes back in the same format. Samplers that only pick rows
(RandomOverSampler, RandomUnderSampler) never densify it; the others compute
distances on a dense copy of X (the same exact search, so sparse and dense X
give identical results), refused with a ValueError when it would exceed
``_base.SPARSE_DENSE_LIMIT_BYTES`` (2 GiB). SMOTENC and SMOTEN handle
categorical features (strings, pandas ``category`` columns, any values).
Bad constructor parameters raise scikit-learn's ``InvalidParameterError``
(a ValueError and a TypeError) where imbalanced-learn does.
"""

import importlib
from typing import Any

from .feature_smote import FeatureSMOTE

# The resamplers derive from scikit-learn's BaseEstimator, and importing scikit-learn takes about 1.5 s: they
# are loaded on first use (PEP 562), so ``import balancedtorch`` does not pay for it.
_LAZY = {
    "SMOTEENN": "combine",
    "SMOTETomek": "combine",
    "ADASYN": "over",
    "SMOTE": "over",
    "SMOTEN": "categorical",
    "SMOTENC": "categorical",
    "BorderlineSMOTE": "over",
    "RandomOverSampler": "over",
    "ClusterCentroids": "under",
    "EditedNearestNeighbours": "under",
    "NearMiss": "under",
    "RandomUnderSampler": "under",
    "TomekLinks": "under",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ADASYN",
    "BorderlineSMOTE",
    "ClusterCentroids",
    "EditedNearestNeighbours",
    "FeatureSMOTE",
    "NearMiss",
    "RandomOverSampler",
    "RandomUnderSampler",
    "SMOTE",
    "SMOTEENN",
    "SMOTEN",
    "SMOTENC",
    "SMOTETomek",
    "TomekLinks",
]
