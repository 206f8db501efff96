"""Dataset-level resampling compatible with imbalanced-learn, and FeatureSMOTE for the training loop.

Same class names, parameters and ``fit_resample(X, y)`` as imbalanced-learn;
numpy in -> numpy out, tensor in -> tensor out on the same device, ``device=``
runs numpy input on another device (e.g. CUDA). Neighbour searches use the
exact, chunked ``bt.ops.knn``. The samplers are scikit-learn estimators
(``clone``, ``GridSearchCV`` in an ``imblearn.pipeline.Pipeline``) and take
labels of any kind imbalanced-learn takes, returned in the caller's container.
"""

from .combine import SMOTEENN, SMOTETomek
from .feature_smote import FeatureSMOTE
from .over import ADASYN, SMOTE, BorderlineSMOTE, RandomOverSampler
from .under import ClusterCentroids, EditedNearestNeighbours, NearMiss, RandomUnderSampler, TomekLinks

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
    "SMOTETomek",
    "TomekLinks",
]
