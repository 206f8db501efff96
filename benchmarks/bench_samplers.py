"""Samplers: one epoch of indices, balancedtorch against torch's samplers and the usual recipes."""

import pytest
import torch

import balancedtorch as bt

N = 1_000_000


def _weights():
    return torch.rand(N, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.01


def _labels():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(100, generator=g, dtype=torch.float64) ** 4 + 1e-3
    return torch.multinomial(probs, N, replacement=True, generator=g)


@pytest.mark.parametrize("impl", ["balancedtorch", "torch"])
def test_weighted_with_replacement(timed, impl):
    w = _weights()
    cls = bt.data.WeightedRandomSampler if impl == "balancedtorch" else torch.utils.data.WeightedRandomSampler
    sampler = cls(w, N, replacement=True, generator=torch.Generator().manual_seed(1))
    out = timed(lambda: list(sampler), group="weighted, with replacement, N=1e6, 1e6 draws", impl=impl, device="cpu")
    assert len(out) == N


@pytest.mark.parametrize("impl", ["balancedtorch", "torch"])
def test_weighted_without_replacement(timed, impl):
    w = _weights()
    cls = bt.data.WeightedRandomSampler if impl == "balancedtorch" else torch.utils.data.WeightedRandomSampler
    sampler = cls(w, 100_000, replacement=False, generator=torch.Generator().manual_seed(1))
    out = timed(lambda: list(sampler), group="weighted, without replacement, N=1e6, 1e5 draws", impl=impl, device="cpu")
    assert len(out) == 100_000


@pytest.mark.parametrize("impl", ["balancedtorch", "torch recipe"])
def test_class_balanced_epoch(timed, impl):
    labels = _labels()
    if impl == "balancedtorch":
        sampler = bt.data.ClassBalancedSampler(labels, generator=torch.Generator().manual_seed(1))
        fn = lambda: list(sampler)  # noqa: E731
    else:
        # the usual recipe: inverse-frequency sample weights into torch's sampler
        def fn():
            counts = torch.bincount(labels)
            weights = (1.0 / counts.double())[labels]
            return list(torch.utils.data.WeightedRandomSampler(weights, N, generator=torch.Generator().manual_seed(1)))

    out = timed(fn, group="class-balanced epoch, N=1e6, 100 classes", impl=impl, device="cpu")
    assert len(out) == N
