"""``knn``: exact k nearest neighbours on GEMM tiles (CPU and CUDA)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .. import _validate

__all__ = ["knn", "DEFAULT_TILE_BYTES"]

DEFAULT_TILE_BYTES = 256 * 2**20


def knn(
    x: Tensor,
    k: int,
    groups: Optional[Tensor] = None,
    ref: Optional[Tensor] = None,
    ref_groups: Optional[Tensor] = None,
    *,
    max_tile_bytes: int = DEFAULT_TILE_BYTES,
) -> Tuple[Tensor, Tensor]:
    """Exact k nearest neighbours by squared Euclidean distance.

    Exact on every finite input: the result is a float64 brute-force
    search's (up to the last-bit rounding of float64 sums), ties going to
    the lower index. Distances are first computed
    approximately, tile by tile (``||q||^2 + ||r||^2 - 2 q.r``; on copies
    centred on the references' mean when the points sit far from the
    origin), each query with a proven bound on its distance error; every
    point within twice that bound of the query's k-th approximate distance
    stays a candidate, and the candidates are re-ranked with exact float64
    differences. A query whose window holds more points than its candidate
    list (tight clusters far from the centre, masses of near-ties) is
    searched by exact float64 differences against all references instead,
    which is slower but never wrong. CUDA and float64 tiles go through the
    device's GEMM; CPU float32 runs a fused register-blocked kernel that
    keeps no distance tile, and on CPUs with AVX512-BF16 computes the
    products in bfloat16 (``BALANCEDTORCH_KNN_BF16=0`` turns it off). Peak
    extra memory stays near ``max_tile_bytes`` (default 256 MiB) for any N.

    Args:
        x (Tensor[N, D]): queries (float16/bfloat16/float32/float64; CPU or CUDA).
        k (int): neighbours per query.
        groups (Tensor[N], optional): integer group (class) of each query;
            neighbours are then taken within the same group only.
        ref (Tensor[M, D], optional): the points to search. Default: ``x``
            itself, each query excluding its own index.
        ref_groups (Tensor[M], optional): groups of ``ref`` (needs ``groups``).
        max_tile_bytes (int): memory budget of one distance tile.

    Returns:
        (Tensor[N, k], Tensor[N, k]): squared distances (x's dtype), ascending,
        and int64 indices into ``ref`` (or ``x``). The distances are
        differentiable with respect to ``x`` and ``ref`` (the gradient of
        ``|x_n - ref_i|^2`` at the neighbours found; the indices are not).

    Raises:
        ValueError: k < 1, fewer than k candidates for some query (e.g. a group
            of size <= k), shape mismatches, zero features (D = 0), NaN or inf
            points.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> features = torch.tensor([[0.0], [1.0], [3.0], [10.0], [10.5], [12.0]])
        >>> labels = torch.tensor([0, 0, 0, 1, 1, 1])
        >>> d, i = bt.ops.knn(features, k=2, groups=labels)  # 2 nearest same-class neighbours
        >>> i.tolist(), d[:, 0].tolist()                     # squared distances, ascending
        ([[1, 2], [0, 2], [1, 0], [4, 5], [3, 5], [4, 3]], [1.0, 1.0, 4.0, 0.25, 0.25, 2.25])
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"knn: x must be a torch.Tensor, got {type(x).__name__}")
    k = _validate.integer(k, "k", caller="knn")  # k >= 1 and k < candidates: the kernel's checks
    return torch.ops.balancedtorch.knn(x, k, groups, ref, ref_groups, max_tile_bytes)
