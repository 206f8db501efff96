"""Exact kNN: balancedtorch's GEMM-tile kernel against scikit-learn's brute-force search."""

import numpy as np
import pytest
import torch

import balancedtorch as bt

neighbors = pytest.importorskip("sklearn.neighbors")

N, D, K = 50_000, 64, 5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("impl", ["balancedtorch", "balancedtorch float32 only", "sklearn brute"])
def test_self_knn(timed, benchmark, impl, dtype, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(dtype)
    if impl == "balancedtorch float32 only":  # the kernel without its bfloat16 (AVX512-BF16) search
        monkeypatch.setenv("BALANCEDTORCH_KNN_BF16", "0")
    if impl.startswith("balancedtorch"):
        xt = torch.from_numpy(x)
        fn = lambda: bt.ops.knn(xt, K)  # noqa: E731
    else:
        model = neighbors.NearestNeighbors(n_neighbors=K + 1, algorithm="brute").fit(x)
        fn = lambda: model.kneighbors(x)  # noqa: E731
    timed(fn, group=f"self kNN N={N} D={D} k={K} {dtype} cpu", impl=impl, device="cpu", rounds=3)
    # useful distance work: N^2 pairs x D multiply-adds
    benchmark.extra_info["GFLOP_per_s"] = round(2 * N * N * D / benchmark.stats.stats.median / 1e9, 1)
