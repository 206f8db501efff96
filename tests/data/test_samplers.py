"""Samplers: distributions (chi-square), quotas, sharding, determinism, resume, DataLoader use."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

import balancedtorch as bt

from _distributed import close_gloo, init_gloo, run_ranks, save_rank

P_THRESHOLD = 1e-4  # chi-square p-value below which a sampler is declared biased


def long_tailed_labels(n=6000, probs=(0.6, 0.25, 0.1, 0.04, 0.01), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial(torch.tensor(probs), n, replacement=True, generator=g)


def chi_square_p(observed, expected_probs):
    observed = np.asarray(observed, dtype=np.float64)
    expected = np.asarray(expected_probs, dtype=np.float64) * observed.sum()
    keep = expected > 0
    assert observed[~keep].sum() == 0, "drew a category of probability zero"
    return stats.chisquare(observed[keep], expected[keep]).pvalue


# --- operators ---------------------------------------------------------------


def splitmix64(z):
    mask = (1 << 64) - 1
    z = (z + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def alias_reference(weights, seed, num_samples):
    """Pure-Python alias sampling from the same counter-based words:
    u_j = splitmix64(seed + j * golden), cell = floor(u n / 2^64), coin = frac(u n / 2^64)."""
    prob, alias = bt.ops.alias_table(weights)
    n = weights.numel()
    out = []
    for j in range(num_samples):
        u = splitmix64((seed + j * 0x9E3779B97F4A7C15) & ((1 << 64) - 1))
        prod = u * n
        cell, frac = prod >> 64, (prod & ((1 << 64) - 1)) / 2.0**64
        out.append(cell if frac < float(prob[cell]) else int(alias[cell]))
    return torch.tensor(out)


def test_alias_table_is_exact():
    w = torch.rand(257, dtype=torch.float64) * (torch.rand(257) > 0.2)
    prob, alias = bt.ops.alias_table(w)
    n = w.numel()
    # probability mass of index i: (prob[i] + sum over cells aliasing to i of (1 - prob[cell])) / n
    mass = prob.clone()
    mass.index_add_(0, alias, 1 - prob)
    torch.testing.assert_close(mass / n, w / w.sum(), rtol=1e-9, atol=1e-12)
    assert bool((prob[w == 0] == 0).all())


@pytest.mark.parametrize("seed", [0, 12345, 2**63 - 1])
def test_alias_sample_matches_reference(seed):
    w = torch.rand(100, dtype=torch.float64)
    prob, alias = bt.ops.alias_table(w)
    got = torch.ops.balancedtorch.alias_sample(prob, alias, torch.tensor([seed]), 3000)
    assert torch.equal(got, alias_reference(w, seed, 3000))


@pytest.mark.parametrize("seed", [0, 99, 2**63 - 1])
def test_packed_alias_sample_matches_reference(seed):
    w = torch.rand(100, dtype=torch.float64) * (torch.rand(100) > 0.3)
    prob, alias = bt.ops.alias_table(w)
    packed = torch.ops.balancedtorch.alias_pack(prob, alias)
    thresholds = torch.round(prob * 2.0**32).long()
    assert torch.equal(packed & ((1 << 33) - 1), thresholds) and torch.equal(packed >> 33, alias)
    got = torch.ops.balancedtorch.alias_sample_packed(packed, torch.tensor([seed]), 3000)
    expected = []
    for j in range(3000):
        u = splitmix64((seed + j * 0x9E3779B97F4A7C15) & ((1 << 64) - 1))
        prod = u * 100
        cell, frac32 = prod >> 64, (prod & ((1 << 64) - 1)) >> 32
        expected.append(cell if frac32 < int(thresholds[cell]) else int(alias[cell]))
    assert torch.equal(got, torch.tensor(expected))
    assert bool((w[got] > 0).all()), "a zero-weight index was drawn"


def test_without_replacement_matches_key_reference():
    w = torch.rand(500, dtype=torch.float64) * (torch.rand(500) > 0.3)
    u = 1 - torch.rand(500, dtype=torch.float64)
    got = torch.ops.balancedtorch.sample_without_replacement(w, u, 40)
    keys = torch.where(w > 0, u.log() / w, torch.full_like(w, -math.inf))
    expected = torch.argsort(keys, descending=True, stable=True)[:40]
    assert torch.equal(got, expected)
    assert bool((w[got] > 0).all()) and got.unique().numel() == 40


def test_sampling_ops_opcheck():
    w = torch.rand(50, dtype=torch.float64)
    prob, alias = bt.ops.alias_table(w)
    torch.library.opcheck(torch.ops.balancedtorch.alias_table.default, (w,))
    torch.library.opcheck(torch.ops.balancedtorch.alias_sample.default, (prob, alias, torch.tensor([7]), 30))
    torch.library.opcheck(
        torch.ops.balancedtorch.sample_without_replacement.default, (w, 1 - torch.rand(50, dtype=torch.float64), 10)
    )


# --- WeightedRandomSampler -----------------------------------------------------


def test_weighted_with_replacement_follows_weights():
    w = torch.tensor([0.0, 1.0, 5.0, 0.5, 0.0, 2.5, 1.0])
    sampler = bt.data.WeightedRandomSampler(w, num_samples=200_000, generator=torch.Generator().manual_seed(1))
    counts = np.bincount(list(sampler), minlength=w.numel())
    assert counts[0] == 0 and counts[4] == 0
    assert chi_square_p(counts, (w / w.sum()).numpy()) > P_THRESHOLD


def test_weighted_without_replacement_first_draw_and_uniqueness():
    w = torch.tensor([3.0, 1.0, 0.0, 6.0, 2.0])
    firsts = []
    g = torch.Generator().manual_seed(2)
    for _ in range(4000):
        drawn = list(bt.data.WeightedRandomSampler(w, num_samples=4, replacement=False, generator=g))
        assert len(set(drawn)) == 4 and 2 not in drawn
        firsts.append(drawn[0])
    # the first draw of successive weighted sampling follows the weights exactly
    assert chi_square_p(np.bincount(firsts, minlength=5), (w / w.sum()).numpy()) > P_THRESHOLD


def test_weighted_without_replacement_second_draw_like_torch_multinomial():
    w = torch.tensor([3.0, 1.0, 2.0, 6.0])
    g = torch.Generator().manual_seed(3)
    ours = [tuple(bt.data.WeightedRandomSampler(w, 2, replacement=False, generator=g)) for _ in range(6000)]
    # P(first=i, second=j) = w_i / W * w_j / (W - w_i)
    W = float(w.sum())
    pairs = [(i, j) for i in range(4) for j in range(4) if i != j]
    probs = [float(w[i]) / W * float(w[j]) / (W - float(w[i])) for i, j in pairs]
    observed = [sum(1 for o in ours if o == p) for p in pairs]
    assert chi_square_p(observed, probs) > P_THRESHOLD


def test_weighted_beyond_multinomial_limit():
    n = (1 << 24) + 7
    w = torch.ones(n, dtype=torch.float64)
    w[::2] = 0.0
    with pytest.raises(RuntimeError):
        torch.multinomial(w, 3, replacement=False)
    drawn = bt.data.WeightedRandomSampler(w, 1000, replacement=False, generator=torch.Generator().manual_seed(0)).indices()
    assert drawn.unique().numel() == 1000 and bool((drawn % 2 == 1).all())


def test_weighted_drop_in_semantics():
    w = [0.1, 0.9, 0.4]
    ours = bt.data.WeightedRandomSampler(w, 7)
    ref = torch.utils.data.WeightedRandomSampler(w, 7)
    assert len(ours) == len(ref) == 7
    assert all(isinstance(i, int) for i in ours)
    a = list(bt.data.WeightedRandomSampler(w, 50, generator=torch.Generator().manual_seed(5)))
    b = list(bt.data.WeightedRandomSampler(w, 50, generator=torch.Generator().manual_seed(5)))
    assert a == b
    s = bt.data.WeightedRandomSampler(w, 50, generator=torch.Generator().manual_seed(5))
    assert list(s) != list(s), "successive epochs must differ"
    torch.manual_seed(0)
    first = list(bt.data.WeightedRandomSampler(w, 20))
    torch.manual_seed(0)
    assert list(bt.data.WeightedRandomSampler(w, 20)) == first  # global RNG without a generator, as torch


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(weights=[1.0, -1.0], num_samples=2), r"weights must be finite and >= 0, got weights\[1\] = -1"),
        (dict(weights=[1.0, float("nan")], num_samples=2), r"weights\[1\] = nan"),
        (dict(weights=[0.0, 0.0], num_samples=2), "weights sum to zero"),
        (dict(weights=[], num_samples=2), "weights is empty|weights must be numbers"),
        (dict(weights=[[1.0]], num_samples=2), "weights must be a 1-D sequence"),
        (dict(weights=[1.0, 2.0], num_samples=0), "num_samples must be an int >= 1, got 0"),
        (dict(weights=[1.0, 0.0, 2.0], num_samples=3, replacement=False), "exceeds the 2 indices with positive weight"),
        (dict(weights=[1.0], num_samples=1, replacement=1), "replacement should be a boolean"),
    ],
)
def test_weighted_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bt.data.WeightedRandomSampler(**kwargs)


# --- ClassBalancedSampler ------------------------------------------------------


@pytest.mark.parametrize("alpha", [1e6, -1e6, 1e308, -1e308, 800.0, -800.0, 3.7, -2.5])
def test_class_balanced_extreme_powers_are_the_limit_not_nan(alpha):
    """p_c ∝ n_c ** alpha computed in log space: a huge |alpha| gives all of the share to the largest (alpha > 0)
    or smallest (alpha < 0) classes, split equally on ties, never nan (n ** 1e6 overflows to inf / inf)."""
    labels = torch.tensor([0] * 50 + [1] * 7 + [2] * 50 + [3] * 3 + [4] * 3)
    sampler = bt.data.ClassBalancedSampler(labels, strategy=alpha, num_samples=400, generator=torch.Generator().manual_seed(0))
    shares = sampler.shares()
    n = torch.tensor([50.0, 7, 50, 3, 3], dtype=torch.float64)
    if abs(alpha) >= 800:  # n ** 800 overflows float64; the other classes' shares are below 1e-290
        expected = torch.tensor([0.5, 0, 0.5, 0, 0] if alpha > 0 else [0, 0, 0, 0.5, 0.5], dtype=torch.float64)
    else:
        expected = n**alpha / (n**alpha).sum()
    torch.testing.assert_close(shares, expected, rtol=1e-12, atol=1e-290)
    assert bool(torch.isfinite(shares).all()) and shares.sum().item() == pytest.approx(1.0)
    if abs(alpha) >= 800:  # only the limit's classes are ever drawn
        drawn = set(labels[torch.tensor(list(sampler))].tolist())
        assert drawn == set(torch.nonzero(expected).flatten().tolist())


@pytest.mark.parametrize("strategy", ["balanced", "sqrt", 0.5, 0.0, 1.0, {0: 0.1, 2: 0.3, 4: 0.6}])
def test_class_balanced_shares(strategy):
    labels = long_tailed_labels()
    n = torch.bincount(labels).double()
    sampler = bt.data.ClassBalancedSampler(
        labels, strategy=strategy, num_samples=60_000, generator=torch.Generator().manual_seed(0)
    )
    if strategy == "balanced":
        expected = torch.ones(5)
    elif strategy == "sqrt":
        expected = n.sqrt()
    elif isinstance(strategy, dict):
        expected = torch.zeros(5, dtype=torch.float64)
        for c, v in strategy.items():
            expected[c] = v
    else:
        expected = n**strategy
    expected = expected.double() / expected.sum()
    torch.testing.assert_close(sampler.shares(), expected)
    drawn = labels[torch.tensor(list(sampler))]
    assert len(drawn) == 60_000
    assert chi_square_p(torch.bincount(drawn, minlength=5).numpy(), expected.numpy()) > P_THRESHOLD


def test_class_balanced_without_replacement_undersamples():
    labels = long_tailed_labels()
    n = torch.bincount(labels)
    sampler = bt.data.ClassBalancedSampler(labels, replacement=False, seed=3)
    idx = sampler.indices()
    assert idx.unique().numel() == idx.numel(), "an index repeated without replacement"
    per_class = torch.bincount(labels[idx], minlength=5)
    assert bool((per_class == n.min()).all()), per_class  # every class cut to the smallest
    assert len(sampler) == 5 * int(n.min())
    with pytest.raises(ValueError, match="without replacement needs"):
        bt.data.ClassBalancedSampler(labels, replacement=False, num_samples=len(labels))


def test_class_balanced_sample_weights():
    labels = torch.tensor([0] * 50 + [1] * 50)
    sw = torch.zeros(100)
    sw[:5] = 1.0  # only five hard examples of class 0
    sw[50:] = 1.0
    sampler = bt.data.ClassBalancedSampler(
        labels, sample_weights=sw, num_samples=4000, generator=torch.Generator().manual_seed(0)
    )
    idx = sampler.indices()
    assert set(idx[labels[idx] == 0].tolist()) <= set(range(5))
    assert chi_square_p(torch.bincount(labels[idx]).numpy(), [0.5, 0.5]) > P_THRESHOLD


def test_class_balanced_schedule_moves_to_natural():
    labels = long_tailed_labels()
    natural = torch.bincount(labels).double() / len(labels)
    sampler = bt.data.ClassBalancedSampler(labels, schedule=4)
    torch.testing.assert_close(sampler.shares(), torch.full((5,), 0.2, dtype=torch.float64))
    sampler.set_epoch(2)
    mid = natural.sqrt() / natural.sqrt().sum()  # halfway: balanced^(1/2) * natural^(1/2)
    torch.testing.assert_close(sampler.shares(), mid)
    sampler.set_epoch(4)
    torch.testing.assert_close(sampler.shares(), natural)
    sampler.set_epoch(9)
    torch.testing.assert_close(sampler.shares(), natural)


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("num_replicas", [2, 3])
def test_class_balanced_distributed_shards(replacement, num_replicas):
    labels = long_tailed_labels(n=1001)
    shards = [
        bt.data.ClassBalancedSampler(labels, replacement=replacement, num_replicas=num_replicas, rank=r, seed=7)
        for r in range(num_replicas)
    ]
    lengths = {len(s) for s in shards}
    assert len(lengths) == 1, "ranks must have equal lengths"
    total = shards[0].num_samples
    assert lengths == {math.ceil(total / num_replicas)}
    full = bt.data.ClassBalancedSampler(labels, replacement=replacement, num_replicas=1, rank=0, seed=7).indices()
    interleaved = torch.stack([s.indices() for s in shards], 1).flatten()
    padded = torch.cat([full, full])[: interleaved.numel()]
    assert torch.equal(interleaved, padded), "ranks must take disjoint positions of one shared epoch"
    before = shards[0].indices().clone()
    shards[0].set_epoch(1)
    assert not torch.equal(shards[0].indices(), before), "set_epoch must reshuffle"


def test_state_dict_resume_mid_epoch():
    labels = long_tailed_labels()
    weights = torch.rand(300)
    for make in (
        lambda: bt.data.ClassBalancedSampler(labels, generator=torch.Generator().manual_seed(11)),
        lambda: bt.data.ClassBalancedSampler(labels, seed=4, num_replicas=2, rank=1),
        lambda: bt.data.StratifiedBatchSampler(labels, 32, class_ratios="balanced", seed=2),
        lambda: bt.data.WeightedRandomSampler(weights, 500, generator=torch.Generator().manual_seed(3)),
        lambda: bt.data.WeightedRandomSampler(weights, 200, replacement=False, generator=torch.Generator().manual_seed(3)),
    ):
        sampler = make()
        sampler.set_epoch(3)
        it = iter(sampler)
        head = [next(it) for _ in range(10)]
        state = sampler.state_dict()
        rest = list(it)
        fresh = make()
        fresh.load_state_dict(state)
        assert list(fresh) == rest, type(sampler).__name__
        whole = make()
        whole.set_epoch(3)
        assert head + rest == list(whole), "a resumed epoch continues the same epoch"


def test_epochs_advance_without_set_epoch():
    labels = long_tailed_labels(n=500)
    sampler = bt.data.ClassBalancedSampler(labels, seed=0)
    first, second = list(sampler), list(sampler)
    assert first != second
    sampler2 = bt.data.ClassBalancedSampler(labels, seed=0)
    assert list(sampler2) == first, "deterministic given the seed"
    sampler2.set_epoch(5)
    assert list(sampler2) == list(sampler2), "with set_epoch, the epoch is fixed by the caller"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(strategy="uniform"), "strategy must be 'balanced'"),
        (dict(strategy={9: 1.0}), r"class 9 is not in \[0, 5\)"),
        (dict(strategy={0: -1.0}), "must be a finite number >= 0"),
        (dict(num_samples=0), "num_samples must be an int >= 1"),
        (dict(num_replicas=2, rank=2), r"rank must be an int in \[0, num_replicas=2\)"),
        (dict(num_replicas=0), "num_replicas must be an int >= 1"),
        (dict(sample_weights=torch.ones(3)), "sample_weights must have shape"),
        (dict(schedule=0), "schedule as a number of epochs must be >= 1"),
    ],
)
def test_class_balanced_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bt.data.ClassBalancedSampler(long_tailed_labels(n=300), **kwargs)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: bt.data.WeightedRandomSampler([1.0, 2.0], num_samples=1.5), "num_samples must be an int >= 1, got 1.5"),
        (lambda: bt.data.ClassBalancedSampler(long_tailed_labels(n=300), seed=1.5), "seed must be an int, got 1.5"),
        (lambda: bt.data.ClassBalancedSampler(long_tailed_labels(n=300), num_replicas=2.0), "num_replicas must be"),
    ],
)
def test_sampler_arguments_of_the_wrong_type(make, match):
    with pytest.raises(TypeError, match=match):
        make()


def test_bad_labels():
    with pytest.raises(ValueError, match=r"labels must be >= 0, got labels\[1\] = -1"):
        bt.data.ClassBalancedSampler(torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match="must hold integer class labels"):
        bt.data.ClassBalancedSampler(torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="labels is empty"):
        bt.data.StratifiedBatchSampler(torch.empty(0, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="empty class|has no samples"):
        bt.data.ClassBalancedSampler(torch.tensor([0, 0, 2, 2]), strategy={1: 1.0, 0: 1.0})


# --- StratifiedBatchSampler ----------------------------------------------------


@pytest.mark.parametrize("class_ratios", ["dataset", "balanced", {0: 0.5, 4: 0.5}])
@pytest.mark.parametrize("batch_size", [10, 32, 64])
def test_every_batch_holds_the_quota(class_ratios, batch_size):
    labels = long_tailed_labels(n=2000)
    sampler = bt.data.StratifiedBatchSampler(labels, batch_size, class_ratios=class_ratios, seed=1)
    quota = sampler.quota()
    assert sum(quota.values()) == batch_size
    if class_ratios == "balanced":
        assert max(quota.values()) - min(quota.values()) <= 1 and len(quota) == 5
    batches = list(sampler)
    assert len(batches) == len(sampler) == math.ceil(2000 / batch_size)
    for batch in batches:
        counts = torch.bincount(labels[torch.tensor(batch)], minlength=5)
        assert {c: int(counts[c]) for c in range(5) if counts[c] > 0} == quota


def test_stratified_largest_remainder_and_coverage():
    labels = torch.tensor([0] * 600 + [1] * 300 + [2] * 100)
    sampler = bt.data.StratifiedBatchSampler(labels, 8, seed=0)  # 4.8, 2.4, 0.8 -> 5, 2, 1
    assert sampler.quota() == {0: 5, 1: 2, 2: 1}
    seen = torch.cat([torch.tensor(b) for b in sampler])
    # common classes are spread without repeats until exhausted; the epoch covers class 0 once
    assert seen[labels[seen] == 0].unique().numel() == min(600, 5 * len(sampler))


def test_stratified_cycles_small_classes_with_reshuffling():
    labels = torch.tensor([0] * 90 + [1] * 10)
    sampler = bt.data.StratifiedBatchSampler(labels, 10, class_ratios="balanced", num_batches=6, seed=0)
    ones = [i for b in sampler for i in b if labels[i] == 1]
    assert len(ones) == 30 and set(ones) == set(range(90, 100))
    passes = [ones[k : k + 10] for k in range(0, 30, 10)]
    assert all(sorted(p) == list(range(90, 100)) for p in passes), "each pass uses every index once"


def test_stratified_drop_last_and_distributed():
    labels = long_tailed_labels(n=1000)
    assert len(bt.data.StratifiedBatchSampler(labels, 64, drop_last=True)) == 15
    assert len(bt.data.StratifiedBatchSampler(labels, 64, drop_last=False)) == 16
    ranks = [bt.data.StratifiedBatchSampler(labels, 64, num_replicas=3, rank=r, seed=5) for r in range(3)]
    assert {len(r) for r in ranks} == {6}
    full = bt.data.StratifiedBatchSampler(labels, 64, seed=5).indices()
    for r, s in enumerate(ranks):
        assert torch.equal(s.indices(), torch.cat([full, full])[r::3][:6])
    assert s.indices().shape == (6, 64)


def test_stratified_warns_when_a_class_gets_no_place():
    labels = torch.tensor([0] * 990 + [1] * 10)
    with pytest.warns(UserWarning, match=r"classes \[1\] get no place"):
        bt.data.StratifiedBatchSampler(labels, 16)


# --- labels_of and DataLoader --------------------------------------------------


class _FolderLike(Dataset):
    def __init__(self, targets):
        self.targets = targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        raise AssertionError("labels_of must not load samples")


class _Opaque(Dataset):
    def __init__(self, labels):
        self._labels = labels

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, i):
        return torch.zeros(2), self._labels[i]


class _FakeHF:
    column_names = ["image", "label"]

    def __init__(self, labels):
        self._labels = labels

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, key):
        if key == "label":
            return list(self._labels)
        raise AssertionError("labels_of must read the column, not rows")


def test_labels_of_sources():
    labels = [3, 1, 2, 0, 1, 1]
    expected = torch.tensor(labels)
    assert torch.equal(bt.data.labels_of(_FolderLike(labels)), expected)
    assert torch.equal(bt.data.labels_of(TensorDataset(torch.randn(6, 2), expected)), expected)
    assert torch.equal(bt.data.labels_of(Subset(_FolderLike(labels), [5, 0, 2])), expected[[5, 0, 2]])
    concat = ConcatDataset([_FolderLike(labels), Subset(_FolderLike(labels), [1, 2])])
    assert torch.equal(bt.data.labels_of(concat), torch.cat([expected, expected[[1, 2]]]))
    assert torch.equal(bt.data.labels_of(_FakeHF(labels)), expected)
    assert torch.equal(bt.data.labels_of(_Opaque(labels), column=lambda ds: ds._labels), expected)
    with pytest.warns(UserWarning, match="loading every sample once"):
        assert torch.equal(bt.data.labels_of(_Opaque(labels)), expected)
    with pytest.raises(ValueError, match="non-numeric labels"):
        bt.data.labels_of(["cat", "dog"])


def test_torchvision_dataset_labels(tmp_path):
    datasets = pytest.importorskip("torchvision.datasets")
    from PIL import Image

    for cls, count in (("cat", 3), ("dog", 1)):
        (tmp_path / cls).mkdir()
        for i in range(count):
            Image.new("RGB", (4, 4)).save(tmp_path / cls / f"{i}.png")
    folder = datasets.ImageFolder(str(tmp_path))
    assert bt.data.labels_of(folder).tolist() == [0, 0, 0, 1]
    sampler = bt.data.ClassBalancedSampler(folder, num_samples=8, seed=0)
    assert len(sampler) == 8


@pytest.mark.parametrize("num_workers", [0, 2])
def test_dataloader_integration(num_workers):
    labels = long_tailed_labels(n=400)
    data = TensorDataset(torch.arange(400), labels)
    sampler = bt.data.ClassBalancedSampler(data, seed=0)
    loader = DataLoader(data, batch_size=50, sampler=sampler, num_workers=num_workers)
    seen = torch.cat([y for _, y in loader])
    assert seen.numel() == 400
    batches = bt.data.StratifiedBatchSampler(data, 20, class_ratios="balanced", seed=0)
    for x, y in DataLoader(data, batch_sampler=batches, num_workers=num_workers):
        assert torch.equal(torch.bincount(y, minlength=5), torch.full((5,), 4))
        assert torch.equal(labels[x], y)


def _ddp_worker(rank, world_size, init_file, out_dir):
    init_gloo(rank, world_size, init_file)
    try:
        labels = long_tailed_labels(n=999)
        sampler = bt.data.ClassBalancedSampler(labels, seed=3)  # ranks from torch.distributed
        batches = bt.data.StratifiedBatchSampler(labels, 16, class_ratios="balanced", seed=3)
        sampler.set_epoch(2)
        batches.set_epoch(2)
        save_rank(
            {"rank": sampler.rank, "replicas": sampler.num_replicas, "indices": sampler.indices(), "batches": batches.indices()},
            out_dir,
            rank,
        )
    finally:
        close_gloo()


@pytest.mark.slow
@pytest.mark.distributed
def test_torch_distributed_gloo_two_processes(tmp_path):
    results = run_ranks(_ddp_worker, 2, tmp_path)
    assert [r["rank"] for r in results] == [0, 1] and all(r["replicas"] == 2 for r in results)
    reference = bt.data.ClassBalancedSampler(long_tailed_labels(n=999), seed=3, num_replicas=1, rank=0)
    reference.set_epoch(2)
    full = reference.indices()
    assert results[0]["indices"].numel() == results[1]["indices"].numel() == 500
    both = torch.stack([results[0]["indices"], results[1]["indices"]], 1).flatten()
    assert torch.equal(both, torch.cat([full, full[:1]]))
    b0, b1 = results[0]["batches"], results[1]["batches"]
    assert b0.shape == b1.shape and not bool((b0 == b1).all())


def test_interrupted_pass_is_continued_and_finished_pass_advances():
    labels = long_tailed_labels(n=200)
    sampler = bt.data.ClassBalancedSampler(labels, seed=1)
    epoch0 = sampler.indices().tolist()
    it = iter(sampler)
    head = [next(it) for _ in range(50)]
    assert sampler.state_dict()["position"] == 50
    rest = list(it)  # the same iterator runs on after state_dict
    assert head + rest == epoch0
    assert sampler.state_dict()["position"] == 0 and sampler.epoch == 1
    again = iter(sampler)
    part = [next(again) for _ in range(20)]
    del again  # abandoned mid-epoch: the next pass continues it
    assert part + list(sampler) == sampler_epoch(labels, 1)


def sampler_epoch(labels, epoch):
    s = bt.data.ClassBalancedSampler(labels, seed=1)
    s.set_epoch(epoch)
    return s.indices().tolist()


# --- ranks resolved when an epoch starts (issue 18) ------------------------------------------------------------------


def _built_before_group_worker(rank, world_size, init_file, out_dir):
    import warnings

    labels = long_tailed_labels(n=999)
    weights = torch.rand(999, generator=torch.Generator().manual_seed(4)) + 0.1
    # the usual place: DataLoader and sampler made before the process group
    samplers = {
        "balanced": bt.data.ClassBalancedSampler(labels, seed=3),
        "weighted": bt.data.WeightedRandomSampler(weights, 1000, seed=3),
        "stratified": bt.data.StratifiedBatchSampler(labels, 16, class_ratios="balanced", seed=3),
    }
    lengths_before = {k: len(s) for k, s in samplers.items()}
    early = bt.data.ClassBalancedSampler(labels, seed=3)
    early_epoch = early.indices().clone()  # this epoch starts as one replica
    init_gloo(rank, world_size, init_file)
    try:
        out = {"lengths_before": lengths_before, "lengths": {k: len(s) for k, s in samplers.items()}}
        out["indices"] = {k: s.indices().clone() for k, s in samplers.items()}
        for s in samplers.values():
            s.set_epoch(1)
        out["indices1"] = {k: s.indices().clone() for k, s in samplers.items()}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            same = torch.equal(early.indices(), early_epoch)  # the epoch in progress keeps its ranks...
            len(early), early.state_dict()
        out["early"] = {"same": same, "warnings": [str(w.message) for w in caught], "next": None}
        early.set_epoch(1)  # ...the next one is sharded
        out["early"]["next"] = early.indices().clone()
        # Lightning's checkpoint holds rank 0's loader state: each rank resumes its own shard from it
        it = iter(samplers["balanced"])
        head = [next(it) for _ in range(7)]
        state = samplers["balanced"].state_dict()
        gathered = [None] * world_size
        torch.distributed.all_gather_object(gathered, state)
        fresh = bt.data.ClassBalancedSampler(labels, seed=3)
        fresh.load_state_dict(gathered[0])
        out["resume"] = {"head": head, "rest": list(fresh), "expected": list(it)}
        save_rank(out, out_dir, rank)
    finally:
        close_gloo()


@pytest.mark.slow
@pytest.mark.distributed
def test_sampler_built_before_init_process_group_shards(tmp_path):
    results = run_ranks(_built_before_group_worker, 2, tmp_path)
    labels = long_tailed_labels(n=999)
    weights = torch.rand(999, generator=torch.Generator().manual_seed(4)) + 0.1
    for r in results:
        assert r["lengths_before"] == {"balanced": 999, "weighted": 1000, "stratified": 63}
        assert r["lengths"] == {"balanced": 500, "weighted": 500, "stratified": 32}, "must shard once the group exists"
    for epoch, key in ((0, "indices"), (1, "indices1")):
        references = {
            "balanced": bt.data.ClassBalancedSampler(labels, seed=3, num_replicas=2, rank=0),
            "weighted": bt.data.WeightedRandomSampler(weights, 1000, seed=3, num_replicas=2, rank=0),
            "stratified": bt.data.StratifiedBatchSampler(labels, 16, class_ratios="balanced", seed=3, num_replicas=2, rank=0),
        }
        for kind, reference in references.items():
            reference.set_epoch(epoch)
            assert torch.equal(results[0][key][kind], reference.indices()), (kind, epoch)
            a, b = results[0][key][kind], results[1][key][kind]
            assert a.shape == b.shape and not torch.equal(a, b), f"{kind}: ranks must draw different positions"
    full = bt.data.ClassBalancedSampler(labels, seed=3, num_replicas=1, rank=0).indices()
    both = torch.stack([results[0]["indices"]["balanced"], results[1]["indices"]["balanced"]], 1).flatten()
    assert torch.equal(both, torch.cat([full, full[:1]])), "disjoint positions of one epoch"
    for r in results:
        early = r["early"]
        assert early["same"], "an epoch keeps the ranks it started with"
        assert len(early["warnings"]) == 1 and "every rank draws this whole epoch" in early["warnings"][0]
        assert early["next"].numel() == 500
        assert r["resume"]["rest"] == r["resume"]["expected"], "each rank resumes its own shard from rank 0's state"


def test_set_epoch_of_the_current_epoch_keeps_the_position():
    labels = long_tailed_labels(n=300)
    weights = torch.rand(300, generator=torch.Generator().manual_seed(8)) + 0.1
    for make in (
        lambda: bt.data.ClassBalancedSampler(labels, seed=2),
        lambda: bt.data.StratifiedBatchSampler(labels, 10, class_ratios="balanced", seed=2),
        lambda: bt.data.WeightedRandomSampler(weights, 200, generator=torch.Generator().manual_seed(1)),
    ):
        sampler = make()
        it = iter(sampler)  # a DataLoader iterator made before the trainer calls set_epoch(0)
        head = [next(it) for _ in range(5)]
        sampler.set_epoch(0)
        assert sampler.state_dict()["position"] == 5
        fresh = make()
        fresh.load_state_dict(sampler.state_dict())
        rest = list(it)
        assert list(fresh) == rest and len(head + rest) == len(sampler)
        sampler.set_epoch(1)
        assert sampler.state_dict()["position"] == 0 and list(sampler) != head + rest


def test_weighted_sampler_shards_like_the_others():
    weights = torch.rand(501, generator=torch.Generator().manual_seed(6)) + 0.05
    single = bt.data.WeightedRandomSampler(weights, 301, generator=torch.Generator().manual_seed(0))
    assert len(single) == 301 and single.num_replicas == 1  # no process group: torch's semantics
    for replacement in (True, False):
        ranks = [bt.data.WeightedRandomSampler(weights, 301, replacement, num_replicas=3, rank=r, seed=9) for r in range(3)]
        assert [len(s) for s in ranks] == [101] * 3
        whole = torch.stack([s.indices() for s in ranks], 1).flatten()
        assert not replacement or whole.unique().numel() > 150
        if not replacement:  # one epoch without replacement, padded by wrapping: 301 distinct, then 2 repeats
            assert whole[:301].unique().numel() == 301 and torch.equal(whole[301:], whole[:2])
        epoch0 = ranks[0].indices().clone()
        ranks[0].set_epoch(1)
        assert not torch.equal(ranks[0].indices(), epoch0)
    with pytest.raises(ValueError, match=r"rank must be an int in \[0, num_replicas=2\)"):
        bt.data.WeightedRandomSampler(weights, 10, num_replicas=2, rank=2)


class _ProxySampler(torch.utils.data.DistributedSampler):
    """Shards what another sampler yields, as ignite's DistributedProxySampler and Lightning's wrapper do."""

    def __init__(self, sampler, num_replicas, rank):
        self.sampler, self.num_replicas, self.rank, self.epoch = sampler, num_replicas, rank, 0

    def __iter__(self):
        return iter(list(self.sampler)[self.rank :: self.num_replicas])

    def __len__(self):
        return -(-len(self.sampler) // self.num_replicas)


def test_inside_a_sharding_wrapper():
    labels = long_tailed_labels(n=400)
    inner = bt.data.ClassBalancedSampler(labels, seed=1)
    wrapped = list(_ProxySampler(inner, 2, 1))
    assert inner.state_dict()["sharded_by"] == "_ProxySampler" and inner.num_replicas == 1
    assert wrapped == bt.data.ClassBalancedSampler(labels, seed=1).indices().tolist()[1::2], "the whole epoch, split once"
    explicit = bt.data.ClassBalancedSampler(labels, seed=1, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match=r"num_replicas=2\) is inside _ProxySampler, which shards it across ranks again"):
        list(_ProxySampler(explicit, 2, 0))
    batches = bt.data.StratifiedBatchSampler(labels, 8, class_ratios="balanced", num_replicas=2, rank=1, seed=1)
    with pytest.raises(ValueError, match="inside _ProxySampler"):
        len(_ProxySampler(batches, 2, 1))


def test_stratified_refuses_a_sampler_as_labels():
    # what Lightning passes when Trainer(use_distributed_sampler=True) re-creates a custom batch sampler
    data = TensorDataset(torch.arange(100), long_tailed_labels(n=100))
    proxy = torch.utils.data.DistributedSampler(data, num_replicas=2, rank=0)
    with pytest.raises(TypeError, match=r"use Trainer\(use_distributed_sampler=False\)"):
        bt.data.StratifiedBatchSampler(proxy, batch_size=10, drop_last=False)


# --- tensors without values (meta device): a ValueError naming the argument, before anything reads them --------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: bt.data.WeightedRandomSampler(m(5), 3), "WeightedRandomSampler: weights is on the meta device"),
        (lambda m: bt.data.ClassBalancedSampler(m(5, dtype=torch.long)), "labels is on the meta device"),
        (lambda m: bt.data.StratifiedBatchSampler(m(5, dtype=torch.long), 2), "labels is on the meta device"),
        (lambda m: bt.data.RepeatFactorSampler(m(5, 3)), "RepeatFactorSampler: labels is on the meta device"),
        (
            lambda m: bt.data.RepeatFactorSampler([m(1, dtype=torch.long), m(1, dtype=torch.long)]),
            r"RepeatFactorSampler: labels\[0\] is on the meta device",
        ),
        (
            lambda m: bt.data.RepeatFactorSampler([torch.tensor([0]), m(2, dtype=torch.long)]),
            r"RepeatFactorSampler: labels\[1\] is on the meta device",
        ),
        (lambda m: bt.data.RepeatFactorSampler(m(5, 3, 3, dtype=torch.long), num_classes=3), "labels is on the meta device"),
        (lambda m: bt.data.classes_present(m(2, 3, 3, dtype=torch.long), 3), "classes_present: masks is on the meta device"),
        (lambda m: bt.data.labels_of(torch.utils.data.TensorDataset(m(4, 2), m(4, dtype=torch.long))), "on the meta device"),
        (lambda m: bt.class_weights(labels=m(5, dtype=torch.long)), "class_weights: labels is on the meta device"),
        (lambda m: bt.class_weights(counts=m(5)), "class_weights: counts is on the meta device"),
        (lambda m: bt.class_weights(masks=m(2, 3, 3, dtype=torch.long)), "class_weights: masks is on the meta device"),
        (lambda m: bt.class_weights(masks=[m(3, 3, dtype=torch.long)]), r"class_weights: masks\[0\] is on the meta device"),
    ],
)
def test_meta_tensors_are_refused_by_name(call, match):
    with pytest.raises(ValueError, match=match):
        call(lambda *shape, **kw: torch.empty(*shape, device="meta", **kw))


# ---------------------------------------------------------------------------------------------
# one vocabulary: class_shares (strategy= / class_ratios= / "dataset" are deprecated aliases)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, old, new",
    [
        (lambda y, **kw: bt.data.ClassBalancedSampler(y, seed=3, **kw), "strategy", "sqrt"),
        (lambda y, **kw: bt.data.ClassBalancedSampler(y, seed=3, **kw), "strategy", {0: 0.2, 2: 0.8}),
        (lambda y, **kw: bt.data.StratifiedBatchSampler(y, 8, seed=3, **kw), "class_ratios", "balanced"),
    ],
)
def test_deprecated_share_keywords_warn_and_draw_the_same(make, old, new):
    y = long_tailed_labels(n=300)
    expected = list(make(y, class_shares=new))
    with pytest.warns(DeprecationWarning, match=rf"{old}= is deprecated.*use class_shares=") as record:
        sampler = make(y, **{old: new})
    assert record[0].filename == __file__  # points at the caller's line
    assert list(sampler) == expected
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated; use .class_shares"):
        assert getattr(sampler, old) == new
    assert sampler.class_shares == new
    with pytest.raises(TypeError, match=f"pass class_shares= only \\({old}= is its deprecated name\\)"):
        make(y, class_shares="sqrt", **{old: new})


def test_dataset_share_is_a_deprecated_name_of_natural():
    y = long_tailed_labels(n=300)
    natural = bt.data.StratifiedBatchSampler(y, 16, seed=1)
    assert natural.class_shares == "natural"
    with pytest.warns(DeprecationWarning, match="class_shares='dataset' is deprecated.*'natural'") as record:
        old = bt.data.StratifiedBatchSampler(y, 16, class_shares="dataset", seed=1)
    assert record[0].filename == __file__
    assert torch.equal(old.quotas, natural.quotas) and list(old) == list(natural)
    counts = torch.bincount(y).double()
    torch.testing.assert_close(bt.data.ClassBalancedSampler(y, class_shares="natural").shares(), counts / counts.sum())


@pytest.mark.parametrize("shares", ["sqrt", 0.5, 0.0])
def test_stratified_batches_take_every_share_of_the_vocabulary(shares):
    y = long_tailed_labels(n=400)
    batches = bt.data.StratifiedBatchSampler(y, 40, class_shares=shares, seed=0)
    expected = bt.data.ClassBalancedSampler(y, class_shares=shares).shares()
    # quotas are the shares of the batch rounded by largest remainder
    assert int(batches.quotas.sum()) == 40
    assert (batches.quotas.double() - 40 * expected).abs().max() < 1
    for batch in batches:
        assert torch.equal(torch.bincount(y[batch], minlength=len(batches.quotas)), batches.quotas)
