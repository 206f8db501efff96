"""Evaluation and data-quality tools against cleanlab and torchmetrics, same run."""

import warnings

import numpy as np
import pytest
import torch

import balancedtorch as bt

cleanlab_filter = pytest.importorskip("cleanlab.filter")


def _noisy(N, K, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, K)).astype(np.float32) * 3
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    y = np.where(rng.random(N) < 0.8, p.argmax(1), rng.integers(0, K, N))
    return y, p


@pytest.mark.parametrize("size", [(200_000, 10), (1_000_000, 100)], ids=["N=2e5,K=10", "N=1e6,K=100"])
@pytest.mark.parametrize("impl", ["balancedtorch", "cleanlab"])
def test_find_label_issues(timed, size, impl):
    N, K = size
    y, p = _noisy(N, K)
    if impl == "balancedtorch":
        yt, pt = torch.from_numpy(y), torch.from_numpy(p)
        fn = lambda: bt.quality.find_label_issues(yt, pt, return_indices_ranked_by="self_confidence")  # noqa: E731
    else:
        def fn():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return cleanlab_filter.find_label_issues(y, p, return_indices_ranked_by="self_confidence")

    rounds = 3 if N >= 1_000_000 else None
    out = timed(fn, group=f"find_label_issues N={N} K={K} float32", impl=impl, device="cpu", rounds=rounds)
    assert len(out) > 0


@pytest.mark.parametrize("impl", ["balancedtorch", "torchmetrics"])
def test_metrics_update(timed, impl):
    K = 19
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, K, 128, 256, generator=g)
    target = torch.randint(0, K, (8, 128, 256), generator=g)
    if impl == "balancedtorch":
        metric = bt.metrics.ClassificationMetrics(K)
        fn = lambda: metric.update(logits, target)  # noqa: E731
    else:
        tm = pytest.importorskip("torchmetrics")
        metric = tm.classification.MulticlassConfusionMatrix(num_classes=K)
        fn = lambda: metric.update(logits, target)  # noqa: E731
    timed(fn, group="metrics update, segmentation logits (8, 19, 128, 256)", impl=impl, device="cpu")
