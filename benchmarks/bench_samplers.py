"""Samplers against torch's samplers and the usual recipes, same run."""

import random

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import balancedtorch as bt

N7 = 10**7


def _weights(n):
    return torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.01


@pytest.mark.parametrize("impl", ["balancedtorch", "torch.multinomial"])
def test_weighted_indices_1e7(timed, impl):
    w = _weights(N7)
    if impl == "balancedtorch":
        sampler = bt.data.WeightedRandomSampler(w, N7, generator=torch.Generator().manual_seed(1))

        def fn():
            sampler.set_epoch(sampler.epoch + 1)  # a fresh epoch each round
            return sampler.indices()

        rounds = None
    else:
        g = torch.Generator().manual_seed(1)
        fn = lambda: torch.multinomial(w, N7, replacement=True, generator=g)  # noqa: E731
        rounds = 2
    out = timed(fn, group="1e7 weighted indices (with replacement)", impl=impl, device="cpu", rounds=rounds)
    assert out.numel() == N7


@pytest.mark.parametrize("impl", ["balancedtorch", "torch"])
def test_weighted_full_iteration_1e7(timed, impl):
    w = _weights(N7)
    cls = bt.data.WeightedRandomSampler if impl == "balancedtorch" else torch.utils.data.WeightedRandomSampler
    sampler = cls(w, N7, generator=torch.Generator().manual_seed(1))
    out = timed(
        lambda: list(sampler), group="1e7 weighted draws, full iteration (list(sampler))", impl=impl, device="cpu", rounds=2
    )
    assert len(out) == N7


def test_without_replacement_1e8(timed):
    # torch.multinomial refuses more than 2**24 categories; there is nothing to compare with
    w = torch.rand(10**8, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    sampler = bt.data.WeightedRandomSampler(w, 10**6, replacement=False, generator=torch.Generator().manual_seed(1))

    def fn():
        sampler.set_epoch(sampler.epoch + 1)
        return sampler.indices()

    out = timed(fn, group="without replacement, N=1e8, 1e6 draws (torch cannot)", impl="balancedtorch", device="cpu", rounds=1)
    assert out.unique().numel() == 10**6


def _python_stratified_epoch(labels, batch_size, num_batches, seed=0):
    """The plain per-class implementation: shuffled per-class lists, cycled, quota per batch."""
    rng = random.Random(seed)
    per_class = {}
    for i, c in enumerate(labels.tolist()):
        per_class.setdefault(c, []).append(i)
    classes = sorted(per_class)
    quota = {c: batch_size // len(classes) + (1 if k < batch_size % len(classes) else 0) for k, c in enumerate(classes)}
    pools = {c: [] for c in classes}
    batches = []
    for _ in range(num_batches):
        batch = []
        for c in classes:
            for _ in range(quota[c]):
                if not pools[c]:
                    pools[c] = per_class[c][:]
                    rng.shuffle(pools[c])
                batch.append(pools[c].pop())
        rng.shuffle(batch)
        batches.append(batch)
    return batches


@pytest.mark.parametrize("impl", ["balancedtorch", "plain Python"])
def test_stratified_epoch_1e7(timed, impl):
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(1000, generator=g, dtype=torch.float64) ** 3 + 1e-3
    labels = torch.multinomial(probs, N7, replacement=True, generator=g)
    sampler = bt.data.StratifiedBatchSampler(labels, 256, class_shares="balanced", seed=0)
    if impl == "balancedtorch":

        def fn():
            sampler.set_epoch(sampler.epoch + 1)
            return sampler.indices()
    else:
        fn = lambda: _python_stratified_epoch(labels, 256, len(sampler))  # noqa: E731
    timed(fn, group="stratified epoch, 1e7 labels, 1000 classes, batch 256", impl=impl, device="cpu", rounds=1)


@pytest.mark.parametrize(
    "impl", ["bt.WeightedRandomSampler", "bt.ClassBalancedSampler", "bt.StratifiedBatchSampler", "torch.WeightedRandomSampler"]
)
def test_dataloader_epoch(timed, benchmark, impl):
    n = 10**6
    g = torch.Generator().manual_seed(0)
    labels = torch.multinomial(torch.tensor([0.6, 0.25, 0.1, 0.04, 0.01]), n, replacement=True, generator=g)
    data = TensorDataset(torch.arange(n), labels)
    weights = (1.0 / torch.bincount(labels).double())[labels]
    if impl == "bt.StratifiedBatchSampler":
        loader = DataLoader(data, batch_sampler=bt.data.StratifiedBatchSampler(labels, 256, class_shares="balanced"))
    else:
        sampler = {
            "bt.WeightedRandomSampler": lambda: bt.data.WeightedRandomSampler(weights, n),
            "bt.ClassBalancedSampler": lambda: bt.data.ClassBalancedSampler(labels),
            "torch.WeightedRandomSampler": lambda: torch.utils.data.WeightedRandomSampler(weights, n),
        }[impl]()
        loader = DataLoader(data, batch_size=256, sampler=sampler)
    timed(lambda: sum(1 for _ in loader), group="DataLoader epoch, 1e6 items, batch 256", impl=impl, device="cpu", rounds=2)
    benchmark.extra_info["batches_per_s"] = round(len(loader) / benchmark.stats.stats.median, 1)
