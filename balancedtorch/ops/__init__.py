"""Low-level operators backed by the C++/CUDA kernels of ``balancedtorch._C``."""

from .class_counts import class_counts

__all__ = ["class_counts"]
