"""``knn``: exact k nearest neighbours on GEMM tiles (CPU and CUDA)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .. import _validate
from ._fake import check_same_device

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
        >>> d, i = bt.ops.knn(features, k=5, groups=labels)  # 5 nearest same-class neighbours
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"knn: x must be a torch.Tensor, got {type(x).__name__}")
    k = _validate.integer(k, "k", caller="knn")  # k >= 1 and k < candidates: the kernel's checks
    return torch.ops.balancedtorch.knn(x, k, groups, ref, ref_groups, max_tile_bytes)


def _knn_setup_context(ctx, inputs, output):
    x, _, _, ref, _, _ = inputs
    ctx.self_search = ref is None
    ctx.save_for_backward(x, ref if ref is not None else x, output[1])


def _knn_backward(ctx, grad_d, grad_i):
    # d[n, j] = |x_n - r_{i[n, j]}|^2: d/dx_n = 2 (x_n - r), d/dr = -2 (x_n - r)
    x, r, idx = ctx.saved_tensors
    if grad_d is None:
        return None, None, None, None, None, None
    n, k = idx.shape
    diff = x.unsqueeze(1) - r.index_select(0, idx.reshape(-1)).view(n, k, -1)
    g = 2.0 * grad_d.to(diff.dtype).unsqueeze(2) * diff
    grad_x = g.sum(1)
    grad_r = torch.zeros_like(r).index_add_(0, idx.reshape(-1), g.reshape(n * k, -1), alpha=-1)
    if ctx.self_search:
        return grad_x + grad_r, None, None, None, None, None
    return grad_x, None, None, grad_r, None, None


torch.library.register_autograd("balancedtorch::knn", _knn_backward, setup_context=_knn_setup_context)


@torch.library.register_fake("balancedtorch::knn")
def _knn_fake(x, k, groups=None, ref=None, ref_groups=None, max_tile_bytes=DEFAULT_TILE_BYTES):
    check_same_device("knn", "x", x, groups=groups, ref=ref, ref_groups=ref_groups)
    n = x.shape[0]
    return x.new_empty((n, k)), x.new_empty((n, k), dtype=torch.long)
