"""balancedtorch: fast, drop-in PyTorch parts for training on imbalanced and imperfect data.

Public names only; see README.md for the tour.
"""

# _extension loads balancedtorch._C before any module that uses its ops: keep this order
# isort: skip_file

from ._version import __version__
from ._extension import build_info, cpu_cache_bytes, empty_cpu_cache  # loads balancedtorch._C first
from . import _meta  # noqa: F401  (fake kernels, autograd, autocast and Python kernels of every op)
from . import ops
from . import augment
from . import data
from . import functional
from . import losses
from . import metrics
from . import nn
from . import quality
from . import resample
from .weights import class_weights

__all__ = [
    "__version__",
    "augment",
    "build_info",
    "class_weights",
    "cpu_cache_bytes",
    "empty_cpu_cache",
    "data",
    "functional",
    "losses",
    "metrics",
    "nn",
    "ops",
    "quality",
    "resample",
]
