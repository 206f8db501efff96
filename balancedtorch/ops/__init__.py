"""Low-level operators backed by the C++/CUDA kernels of ``balancedtorch._C``."""

from .class_counts import class_counts
from .knn import knn
from .sampling import AliasTable, alias_sample, alias_table, sample_without_replacement

__all__ = ["class_counts", "knn", "AliasTable", "alias_table", "alias_sample", "sample_without_replacement"]
