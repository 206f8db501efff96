"""Input checks (issue 16): one label validator, resumable-state checks, extreme weights, class_p
outside its classes, NaN/inf parameters, and resuming with DataLoader workers."""

import io
import pickle
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from scipy import stats

import balancedtorch as bt
import balancedtorch.augment.functional as AF
from balancedtorch import _labels

BIG = 2**40
NAN, INF = float("nan"), float("inf")


def random_labels(n=300, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    labels[torch.randperm(n, generator=g)[:classes]] = torch.arange(classes)  # every class present
    return labels


def with_stray(labels, value, seed=1):
    """``labels`` with ``value`` at a random position; returns (labels, position)."""
    g = torch.Generator().manual_seed(seed)
    i = int(torch.randint(0, labels.numel(), (1,), generator=g))
    out = labels.clone()
    out[i] = value
    return out, i


# --- 1. the label validator: huge labels, unsigned dtypes -----------------------------------

LABEL_TAKERS = {
    "ClassBalancedSampler": lambda y, **kw: bt.data.ClassBalancedSampler(y, **kw),
    "StratifiedBatchSampler": lambda y, **kw: bt.data.StratifiedBatchSampler(y, 8, **kw),
    "class_weights": lambda y, **kw: bt.class_weights(labels=y, **kw),
    "coverage_report": lambda y, **kw: bt.quality.coverage_report(y, {"slice": np.arange(len(y)) % 3}, **kw),
}


@pytest.mark.parametrize("taker", sorted(LABEL_TAKERS))
@pytest.mark.parametrize("value", [BIG, _labels.MAX_INFERRED_CLASSES, 2**62])
def test_huge_label_is_named_not_allocated(taker, value):
    labels, i = with_stray(random_labels(), value)
    with pytest.raises(ValueError, match=rf"labels\[{i}\] = {value} would make {value + 1} classes") as info:
        LABEL_TAKERS[taker](labels)
    assert "num_classes=" in str(info.value)


@pytest.mark.parametrize("taker", sorted(LABEL_TAKERS))
def test_num_classes_confirms_a_class_count(taker):
    labels = random_labels(classes=4)
    labels[labels == 3] = 6  # classes 3, 4, 5 empty; 6 present
    out = LABEL_TAKERS[taker](labels, num_classes=7) if taker != "class_weights" else None
    if taker in ("ClassBalancedSampler", "StratifiedBatchSampler"):
        assert out.num_classes == 7
        assert set(out.indices().flatten().tolist()) <= set(range(len(labels)))
    elif taker == "coverage_report":
        assert out["slice"]["counts"].shape == (3, 7)
    # a label beyond num_classes is named
    bad, i = with_stray(labels, 9)
    if taker == "class_weights":
        with pytest.raises(ValueError, match="class 3 has no samples"):
            bt.class_weights(labels=labels, num_classes=7)
        with pytest.raises(ValueError, match=r"num_classes=7"):
            bt.class_weights(labels=bad, num_classes=7)
    else:
        with pytest.raises(ValueError, match=rf"< num_classes=7, got labels\[{i}\] = 9"):
            LABEL_TAKERS[taker](bad, num_classes=7)


def test_class_weights_infers_past_ignore_index():
    labels, _ = with_stray(random_labels(), BIG)
    labels[labels == 4] = BIG  # BIG is the ignored value: no class count is inferred from it
    w = bt.class_weights(labels=labels, ignore_index=BIG)
    assert w.shape == (4,)


UNSIGNED = [torch.uint8, torch.uint16, torch.uint32, torch.uint64, np.uint8, np.uint16, np.uint32, np.uint64]


def _as(labels, dtype):
    if isinstance(dtype, torch.dtype):
        return labels.to(dtype)
    return labels.numpy().astype(dtype)


@pytest.mark.parametrize("dtype", UNSIGNED, ids=str)
def test_unsigned_labels_work_everywhere(dtype):
    labels = random_labels(classes=5)
    y = _as(labels, dtype)
    torch.testing.assert_close(bt.class_weights(labels=y), bt.class_weights(labels=labels))
    a = bt.data.ClassBalancedSampler(y, seed=3)
    b = bt.data.ClassBalancedSampler(labels, seed=3)
    assert torch.equal(a.indices(), b.indices())
    a = bt.data.StratifiedBatchSampler(y, 10, seed=3)
    b = bt.data.StratifiedBatchSampler(labels, 10, seed=3)
    assert torch.equal(a.indices(), b.indices())
    groups = {"slice": np.arange(len(labels)) % 4}
    assert torch.equal(
        bt.quality.coverage_report(y, groups)["slice"]["counts"], bt.quality.coverage_report(labels, groups)["slice"]["counts"]
    )
    assert torch.equal(bt.data.labels_of(y), labels)
    probs = torch.softmax(torch.randn(len(labels), 5, dtype=torch.float64), 1)
    assert np.array_equal(bt.quality.find_label_issues(y, probs), bt.quality.find_label_issues(labels, probs))


@pytest.mark.parametrize("as_numpy", [False, True])
def test_uint64_beyond_int64_is_named(as_numpy):
    labels = np.array([0, 1, 2, 2**63 + 5, 1], dtype=np.uint64)
    y = labels if as_numpy else torch.from_numpy(labels)
    for call in (
        lambda: bt.data.ClassBalancedSampler(y),
        lambda: bt.class_weights(labels=y),
        lambda: bt.quality.coverage_report(y, {"a": [0, 1, 0, 1, 0]}),
    ):
        with pytest.raises(ValueError, match=rf"labels\[3\] = {2**63 + 5} is too large"):
            call()


@pytest.mark.parametrize(
    "labels, match",
    [
        (torch.tensor([0.0, 1.5, 2.0]), r"integer class labels, got dtype torch.float32 with labels\[1\] = 1.5"),
        (torch.tensor([0.0, NAN]), r"labels\[1\] = nan"),
        (torch.tensor([0.0, INF]), r"labels\[1\] = inf"),
        (torch.tensor([True, False]), "must hold integers, got dtype torch.bool"),
        (np.array(["cat", "dog"]), "non-numeric labels"),
        (torch.zeros(2, 3, dtype=torch.long), r"must be 1-D, got shape \(2, 3\)"),
        (torch.tensor([0, -3, 1]), r"must be >= 0, got labels\[1\] = -3"),
    ],
)
def test_validator_messages(labels, match):
    with pytest.raises(ValueError, match=match):
        bt.data.ClassBalancedSampler(labels)


def test_validator_never_modifies_its_input():
    labels = random_labels()
    before = labels.clone()
    array = labels.numpy().astype(np.uint32)
    array_before = array.copy()
    bt.data.ClassBalancedSampler(labels)
    bt.class_weights(labels=array)
    bt.quality.coverage_report(labels.double(), {"a": np.arange(len(labels)) % 2})
    assert torch.equal(labels, before) and np.array_equal(array, array_before)


# --- 4. BatchAugment: labels outside class_p use p ------------------------------------------


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_class_p_outside_its_classes_uses_p(p, device):
    # class 1 (the last key) is always augmented, class 0 never; anything else follows p
    aug = bt.augment.BatchAugment(hflip=1.0, p=p, class_p={0: 0.0, 1: 1.0})
    labels = torch.tensor([-1, 0, 1, 5, BIG, -(2**40), 1, 0], device=device)
    images = torch.rand(len(labels), 3, 6, 6, device=device)
    applied = aug.sample_params(images, labels, torch.Generator(device=device).manual_seed(0))["applied"]
    expected = torch.tensor([p == 1.0, False, True, p == 1.0, p == 1.0, p == 1.0, True, False], device=device)
    assert torch.equal(applied, expected)
    out = aug(images, labels=labels)
    flipped = images.flip(-1)
    for i in range(len(labels)):
        assert torch.allclose(out[i], flipped[i] if expected[i] else images[i])


def test_class_p_labels_checked():
    aug = bt.augment.BatchAugment(hflip=0.5, class_p={0: 1.0})
    images = torch.rand(3, 3, 6, 6)
    with pytest.raises(ValueError, match=r"integer class labels.*labels\[1\] = 0.5"):
        aug(images, labels=torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        aug(images, labels=torch.tensor([0, 1]))
    # unsigned and integer-valued float labels work as their int64 values
    for labels in (
        torch.tensor([0, 1, 2], dtype=torch.uint32),
        torch.tensor([0.0, 1.0, 2.0]),
        np.array([0, 1, 2], dtype=np.uint64),
    ):
        a = aug.sample_params(images, labels, torch.Generator().manual_seed(1))["applied"]
        b = aug.sample_params(images, torch.tensor([0, 1, 2]), torch.Generator().manual_seed(1))["applied"]
        assert torch.equal(a, b)


def test_class_p_is_copied():
    class_p = {0: 1.0}
    aug = bt.augment.BatchAugment(hflip=1.0, p=0.0, class_p=class_p)
    class_p[0] = float("nan")  # later edits of the caller's dict bypass no check
    applied = aug.sample_params(torch.rand(2, 3, 4, 4), torch.tensor([0, 1]))["applied"]
    assert applied.tolist() == [True, False]


# --- 5. NaN / inf parameters -----------------------------------------------------------------

AUGMENT_BAD = [
    ("rotation", NAN),
    ("rotation", INF),
    ("rotation", (NAN, 10.0)),
    ("rotation", (-10.0, INF)),
    ("translate", (NAN, 0.1)),
    ("translate", NAN),
    ("scale", NAN),
    ("scale", (NAN, 1.2)),
    ("scale", (0.8, INF)),
    ("shear", NAN),
    ("shear", (0.0, NAN)),
    ("shear", (0.0, 1.0, NAN, 2.0)),
    ("shear", INF),
    ("brightness", NAN),
    ("brightness", INF),
    ("brightness", (NAN, 1.2)),
    ("contrast", NAN),
    ("contrast", (0.5, NAN)),
    ("saturation", NAN),
    ("saturation", (NAN, NAN)),
    ("hue", NAN),
    ("hue", (NAN, 0.1)),
    ("p", NAN),
    ("hflip", NAN),
    ("vflip", NAN),
    ("p", INF),
    ("class_p", {0: NAN}),
    ("class_p", {1: INF}),
    ("mean", (NAN, 0.5, 0.5)),
    ("mean", (0.5, INF, 0.5)),
    ("std", (0.2, NAN, 0.2)),
    ("std", (INF, 0.2, 0.2)),
    ("crop_scale", (NAN, 1.0)),
    ("crop_ratio", (0.75, INF)),
    ("fill", NAN),
    ("fill", INF),
]


@pytest.mark.parametrize("name, value", AUGMENT_BAD, ids=[f"{n}={v}" for n, v in AUGMENT_BAD])
def test_batch_augment_refuses_nan_and_inf(name, value):
    with pytest.raises(ValueError, match=name):
        bt.augment.BatchAugment(**{name: value})


@pytest.mark.parametrize("column", range(4))
@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_affine_color_refuses_non_finite_color(column, bad):
    images = torch.rand(3, 3, 8, 8)
    color = torch.tensor([[1.1, 0.9, 1.2, 0.05]] * 3)
    color[1, column] = bad
    with pytest.raises(ValueError, match=rf"color\[1, {column}\]"):
        AF.affine_color(images, AF.identity_matrix(3), color)


@pytest.mark.parametrize("bad", [NAN, INF])
def test_affine_color_refuses_non_finite_theta(bad):
    theta = AF.affine_matrix(torch.rand(3, dtype=torch.float64) * 30).float()
    theta[2, 0, 1] = bad
    with pytest.raises(ValueError, match=r"theta\[2, 0, 1\]"):
        AF.affine_color(torch.rand(3, 3, 8, 8), theta)


def _imbalanced_xy():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=g, dtype=torch.float64).numpy()
    y = np.array([0] * 30 + [1] * 10)
    return X, y


@pytest.mark.parametrize("shrinkage", [NAN, INF, -1.0, "x"])
def test_random_over_sampler_shrinkage_matches_imbalanced_learn(shrinkage):
    imblearn = pytest.importorskip("imblearn.over_sampling")
    X, y = _imbalanced_xy()
    with pytest.raises((ValueError, TypeError)) as theirs:
        imblearn.RandomOverSampler(shrinkage=shrinkage, random_state=0).fit_resample(X, y)
    with pytest.raises(ValueError, match="shrinkage") as ours:
        bt.resample.RandomOverSampler(shrinkage=shrinkage, random_state=0).fit_resample(X, y)
    # the same exception type: imbalanced-learn's InvalidParameterError is a ValueError and a TypeError
    assert isinstance(ours.value, ValueError) and isinstance(ours.value, TypeError)
    assert isinstance(theirs.value, ValueError) and isinstance(theirs.value, TypeError)
    assert type(ours.value) is type(theirs.value)  # scikit-learn's InvalidParameterError itself, not a look-alike


@pytest.mark.parametrize("factor", [NAN, INF, -0.5])
def test_random_over_sampler_shrinkage_dict_values(factor):
    X, y = _imbalanced_xy()
    with pytest.raises(ValueError, match=r"shrinkage\[1\] must be a finite number >= 0"):
        bt.resample.RandomOverSampler(shrinkage={1: factor}, random_state=0).fit_resample(X, y)
    Xr, _ = bt.resample.RandomOverSampler(shrinkage={1: 0.5}, random_state=0).fit_resample(X, y)
    assert np.isfinite(Xr).all() and Xr.shape == (60, 3)


# --- 3. weights whose sum overflows (or underflows) float64 ---------------------------------


@pytest.mark.parametrize(
    "weights",
    [[1e308, 1e308, 1.0], [1.7e308, 0.0, 8e307, 1e306], [5e-324, 1e-323, 0.0, 2e-323], [1e308] * 3 + [3e307]],
    ids=["overflow", "overflow-mixed", "subnormal", "overflow-even"],
)
def test_alias_table_follows_extreme_weights(weights, ieee_denormals):
    w = torch.tensor(weights, dtype=torch.float64)
    exact = np.array([float(v) for v in weights], dtype=np.float64)
    probs = (exact / exact.max()) / (exact / exact.max()).sum()
    n = 200_000
    sampler = bt.data.WeightedRandomSampler(w, n, generator=torch.Generator().manual_seed(0))
    counts = np.bincount(sampler.indices().numpy(), minlength=len(weights))
    keep = probs > 1e-12
    assert counts[~keep].sum() == 0
    assert stats.chisquare(counts[keep], probs[keep] * n).pvalue > 1e-4


def test_without_replacement_follows_subnormal_weights(ieee_denormals):
    # P(first draw = i) = w_i / sum(w): 1/7, 2/7, 4/7 (keys log(u)/w were all -inf before rescaling)
    w = torch.tensor([5e-324, 1e-323, 2e-323], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    firsts = [int(bt.ops.sample_without_replacement(w, 1, g)) for _ in range(4000)]
    counts = np.bincount(firsts, minlength=3)
    assert stats.chisquare(counts, np.array([1, 2, 4]) / 7 * len(firsts)).pvalue > 1e-4


def test_class_balanced_sample_weights_that_overflow():
    labels = torch.tensor([0, 0, 0, 1, 1])
    sample_weights = torch.tensor([1e308, 1e308, 1.0, 3.0, 1.0], dtype=torch.float64)
    s = bt.data.ClassBalancedSampler(labels, num_samples=100_000, sample_weights=sample_weights, seed=0)
    counts = np.bincount(s.indices().numpy(), minlength=5)
    expected = np.array([0.25, 0.25, 0.0, 0.375, 0.125])  # balanced classes, weights within
    assert counts[2] == 0
    assert stats.chisquare(counts[expected > 0], expected[expected > 0] * counts.sum()).pvalue > 1e-4
    picked = bt.data.ClassBalancedSampler(labels, replacement=False, sample_weights=sample_weights, seed=0).indices()
    assert sorted(picked.tolist()) == [0, 1, 3, 4]  # two of class 0 (never the 1.0 against 1e308s), both of class 1


def test_alias_table_keeps_its_input():
    w = torch.tensor([1e308, 1e308, 1.0], dtype=torch.float64)
    before = w.clone()
    bt.ops.AliasTable(w)
    assert torch.equal(w, before)


# --- 2. load_state_dict refuses states that do not belong to the sampler --------------------


def _weights(n=200, seed=0):
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


SAMPLERS = {
    "ClassBalancedSampler": lambda labels=None, **kw: bt.data.ClassBalancedSampler(
        random_labels(200) if labels is None else labels, seed=5, **kw
    ),
    "StratifiedBatchSampler": lambda labels=None, **kw: bt.data.StratifiedBatchSampler(
        random_labels(200) if labels is None else labels, 10, seed=5, **kw
    ),
    "WeightedRandomSampler": lambda labels=None, **kw: bt.data.WeightedRandomSampler(
        _weights() if labels is None else labels, 150, generator=torch.Generator().manual_seed(5), **kw
    ),
}


def _mid_state(sampler, steps=7):
    it = iter(sampler)
    taken = [next(it) for _ in range(steps)]
    return sampler.state_dict(), taken


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_state_roundtrip_pickle_and_torch_save(kind):
    sampler = SAMPLERS[kind]()
    state, taken = _mid_state(sampler)
    rest = list(sampler)
    for restored in (pickle.loads(pickle.dumps(state)), _torch_roundtrip(state)):
        fresh = SAMPLERS[kind]()
        fresh.load_state_dict(restored)
        assert list(fresh) == rest
    assert isinstance(state["fingerprint"], str) and state["sampler"] == kind


def _torch_roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
@pytest.mark.parametrize(
    "change, match",
    [
        (dict(position=-1), r"position'\] must be >= 0.*got -1"),
        (dict(position=10**6), r"position'\] = 1000000 is beyond the epoch"),
        (dict(epoch=-2), r"epoch'\] must be >= 0"),
        (dict(rank=1), "saved by rank 1, this sampler is rank 0"),
        (dict(num_replicas=4), "saved with num_replicas=4"),
        (dict(sampler="RandomSampler"), "saved by a RandomSampler"),
    ],
)
def test_bad_state_is_refused_and_sampler_unchanged(kind, change, match):
    sampler = SAMPLERS[kind]()
    state, _ = _mid_state(sampler)
    fresh, reference = SAMPLERS[kind](), SAMPLERS[kind]()
    with pytest.raises(ValueError, match=match):
        fresh.load_state_dict({**state, **change})
    assert list(fresh) == list(reference)  # a refused state leaves the sampler as it was


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_state_of_the_wrong_type_is_refused(kind):
    state, _ = _mid_state(SAMPLERS[kind]())
    fresh, reference = SAMPLERS[kind](), SAMPLERS[kind]()
    with pytest.raises(TypeError, match=r"position'\] must be an int, got 2.5"):
        fresh.load_state_dict({**state, "position": 2.5})
    assert list(fresh) == list(reference)


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_state_from_other_data_is_refused(kind):
    state, _ = _mid_state(SAMPLERS[kind]())
    if kind == "WeightedRandomSampler":
        other, what = _weights(seed=1), "weights"
    else:
        other, what = random_labels(200, seed=1), "labels"
    with pytest.raises(ValueError, match=f"saved by a sampler over other {what}"):
        SAMPLERS[kind](other).load_state_dict(state)
    # a permutation of the same values is other data too
    same = SAMPLERS[kind]()
    data = same.weights if kind == "WeightedRandomSampler" else same.labels
    permuted = data[torch.randperm(data.numel(), generator=torch.Generator().manual_seed(2))]
    with pytest.raises(ValueError, match="other"):
        SAMPLERS[kind](permuted).load_state_dict(state)


def test_state_from_other_sample_weights_is_refused():
    labels = random_labels(200)
    state, _ = _mid_state(bt.data.ClassBalancedSampler(labels, sample_weights=_weights(), seed=5))
    with pytest.raises(ValueError, match="other labels and sample_weights"):
        bt.data.ClassBalancedSampler(labels, sample_weights=_weights(seed=3), seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match="other labels"):
        bt.data.ClassBalancedSampler(labels, seed=5).load_state_dict(state)


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_states_of_older_versions_still_load(kind):
    sampler = SAMPLERS[kind]()
    state, _ = _mid_state(sampler)
    rest = list(sampler)
    old = {k: state[k] for k in ("seed", "epoch", "explicit_epoch", "epoch_seed", "position", "num_replicas", "rank")}
    fresh = SAMPLERS[kind](SAMPLERS[kind]().weights * 2 if kind == "WeightedRandomSampler" else None)
    fresh.load_state_dict(old)  # no fingerprint: no data check
    if kind != "WeightedRandomSampler":
        assert list(fresh) == rest


def test_position_at_the_end_of_the_epoch_loads():
    sampler = SAMPLERS["ClassBalancedSampler"]()
    state = {**sampler.state_dict(), "position": len(sampler)}
    fresh = SAMPLERS["ClassBalancedSampler"]()
    fresh.load_state_dict(state)
    assert list(fresh) == []  # the epoch is over; the next pass is the next epoch
    assert len(list(fresh)) == len(sampler)


def test_distributed_state_checks_rank():
    labels = random_labels(200)
    ranks = [bt.data.ClassBalancedSampler(labels, num_replicas=2, rank=r, seed=1) for r in range(2)]
    states = [_mid_state(s)[0] for s in ranks]
    for r in range(2):
        fresh = bt.data.ClassBalancedSampler(labels, num_replicas=2, rank=r, seed=1)
        fresh.load_state_dict(states[r])
        with pytest.raises(ValueError, match=f"saved by rank {1 - r}, this sampler is rank {r}"):
            fresh.load_state_dict(states[1 - r])


def test_fingerprint_is_computed_once(monkeypatch):
    calls = []
    real = bt.data.WeightedRandomSampler._fingerprint_data
    monkeypatch.setattr(bt.data.WeightedRandomSampler, "_fingerprint_data", lambda self: calls.append(1) or real(self))
    sampler = bt.data.WeightedRandomSampler(_weights(10_000), 100, generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        state = sampler.state_dict()
    sampler.load_state_dict(state)
    assert len(calls) == 1


# --- 6. resuming with DataLoader workers ---------------------------------------------------


class _Indices(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


N = 240
BATCH = 8

LOADER_SAMPLERS = {
    "ClassBalancedSampler": (lambda: bt.data.ClassBalancedSampler(random_labels(N, seed=4), seed=11), "sampler"),
    "ClassBalancedSampler-generator": (
        lambda: bt.data.ClassBalancedSampler(random_labels(N, seed=4), generator=torch.Generator().manual_seed(9)),
        "sampler",
    ),
    "WeightedRandomSampler": (
        lambda: bt.data.WeightedRandomSampler(_weights(N), N, generator=torch.Generator().manual_seed(9)),
        "sampler",
    ),
    "WeightedRandomSampler-no-replacement": (
        lambda: bt.data.WeightedRandomSampler(_weights(N), N // 2, replacement=False, generator=torch.Generator().manual_seed(9)),
        "sampler",
    ),
    "StratifiedBatchSampler": (lambda: bt.data.StratifiedBatchSampler(random_labels(N, seed=4), BATCH, seed=11), "batch_sampler"),
}


def _stateful_loader(sampler, how, workers=2):
    from torchdata.stateful_dataloader import StatefulDataLoader

    if how == "batch_sampler":
        return StatefulDataLoader(_Indices(N), batch_sampler=sampler, num_workers=workers)
    return StatefulDataLoader(_Indices(N), batch_size=BATCH, sampler=sampler, num_workers=workers)


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")
@pytest.mark.parametrize("stop", [2, -1], ids=["early", "last-but-one"])
@pytest.mark.parametrize("kind", sorted(LOADER_SAMPLERS))
def test_stateful_dataloader_with_workers_resumes_exactly(kind, stop):
    pytest.importorskip("torchdata.stateful_dataloader")
    make, how = LOADER_SAMPLERS[kind]
    full = [i for batch in _stateful_loader(make(), how) for i in batch.tolist()]
    loader = _stateful_loader(make(), how)
    stop = stop % len(loader)  # -1: the workers have already drawn the end of the epoch
    consumed = []
    it = iter(loader)
    for _ in range(stop):
        consumed += next(it).tolist()
    state = loader.state_dict()
    del it
    resumed = _stateful_loader(make(), how)
    resumed.load_state_dict(state)
    rest = [i for batch in resumed for i in batch.tolist()]
    assert Counter(consumed + rest) == Counter(full)  # nothing lost, nothing repeated
    assert consumed + rest == full


@pytest.mark.parametrize("stop", [3, 9])
@pytest.mark.parametrize("kind", ["ClassBalancedSampler", "WeightedRandomSampler", "StratifiedBatchSampler"])
def test_consumed_batches_pattern_resumes_exactly(kind, stop):
    """The README pattern for a plain DataLoader with workers: the sampler's state at the start
    of the epoch plus the number of batches the loop consumed (a state taken inside the loop
    would be ahead: the workers prefetch)."""
    make, how = LOADER_SAMPLERS[kind]
    per_batch = 1 if how == "batch_sampler" else BATCH

    def loader_of(sampler):
        if how == "batch_sampler":
            return torch.utils.data.DataLoader(_Indices(N), batch_sampler=sampler, num_workers=2)
        return torch.utils.data.DataLoader(_Indices(N), batch_size=BATCH, sampler=sampler, num_workers=2)

    full = [i for batch in loader_of(make()) for i in batch.tolist()]
    sampler = make()
    start = sampler.state_dict()  # before iterating: nothing is prefetched yet
    consumed, batches = [], 0
    for batch in loader_of(sampler):
        consumed += batch.tolist()
        batches += 1
        if batches == stop:
            ahead = sampler.state_dict()["position"]
            break
    assert ahead > batches * per_batch  # the naive state is ahead of the loop
    checkpoint = {"sampler": start, "batches": batches}

    fresh = make()
    fresh.load_state_dict(
        {**checkpoint["sampler"], "position": checkpoint["sampler"]["position"] + checkpoint["batches"] * per_batch}
    )
    rest = [i for batch in loader_of(fresh) for i in batch.tolist()]
    assert consumed + rest == full
    assert Counter(consumed + rest) == Counter(full)


@pytest.mark.parametrize("kwargs", [dict(crop=8), dict(), dict(rotation=10.0)])
@pytest.mark.parametrize("shape", [(2, 3, 0, 16), (2, 3, 16, 0)])
def test_batch_augment_refuses_empty_images(kwargs, shape):
    # crop= divided by H = 0 (ZeroDivisionError)
    with pytest.raises(ValueError, match=r"images must have H, W >= 1"):
        bt.augment.BatchAugment(**kwargs)(torch.zeros(shape, dtype=torch.uint8))


@pytest.mark.parametrize("scheme", ["inverse", "sqrt_inverse", "median_frequency", "effective_number"])
@pytest.mark.parametrize("normalize", ["mean", "sum"])
def test_class_weights_of_counts_whose_sum_overflows(scheme, normalize, ieee_denormals):
    # [1e308, 1e308, 1] gave nan weights: the sum of the counts overflowed float64
    w = bt.class_weights(counts=[1e308, 1e308, 1], scheme=scheme, normalize=normalize, dtype=torch.float64)
    assert bool(torch.isfinite(w).all()) and w[2] > w[0] and w[0] == w[1]
    small = bt.class_weights(counts=[1e8, 1e8, 1], scheme=scheme, normalize=normalize, dtype=torch.float64)
    if scheme != "effective_number":  # ratios of counts only: the same shape of weights at any scale
        assert torch.allclose(w[2] / w.sum(), torch.tensor(1.0, dtype=torch.float64), rtol=1e-6)  # the others ~1e-308
    assert small[2] > small[0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(counts=[1e308, 1e308, 1], normalize=None), "raw inverse weights overflow float64"),
        (dict(counts=[1, 70000], dtype=torch.float16, normalize=None), "overflow dtype=torch.float16"),
    ],
)
def test_class_weights_that_cannot_be_represented(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bt.class_weights(**kwargs)


def test_metrics_refuse_nan_scores():
    m = bt.metrics.ClassificationMetrics(3)
    x = torch.randn(4, 3)
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN scores \(sample 2"):
        m.update(x, torch.tensor([0, 1, 2, 2]))
    assert int(m.confmat.sum()) == 0  # nothing counted
    m.update(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))  # an empty batch is a no-op
    assert int(m.confmat.sum()) == 0


def test_state_with_an_epoch_seed_beyond_63_bits_is_refused():
    sampler = bt.data.ClassBalancedSampler(torch.tensor([0, 1] * 10), seed=1)
    state = sampler.state_dict()
    state["epoch_seed"] = 2**80  # torch.Generator().manual_seed raised "Overflow when unpacking long long"
    with pytest.raises(
        ValueError, match=r"epoch_seed'\] must be an int in \[0, 9223372036854775807\] or None, got 1208925819614629174706176"
    ):
        sampler.load_state_dict(state)


def test_report_digits_are_checked():
    m = bt.metrics.ClassificationMetrics(2)
    m.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="digits must be an int >= 0, got -1"):
        m.report(digits=-1)
    assert "precision" in m.report(digits=0)


def test_drift_monitor_empty_batch_is_a_no_op():
    m = bt.quality.DriftMonitor(torch.randint(0, 3, (500,), generator=torch.Generator().manual_seed(0)), window=100)
    m.update(torch.tensor([0, 1, 2]))
    before = m.counts.clone()
    m.update(torch.tensor([], dtype=torch.long))
    m.update(torch.zeros(0, 3))
    assert torch.equal(m.counts, before)


def test_labels_of_column_must_be_a_name_or_callable():
    ds = torch.utils.data.TensorDataset(torch.randn(3, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="labels_of: column must be a str .* got 5"):
        bt.data.labels_of(ds, column=5)


@pytest.mark.slow
def test_pandas_inputs_to_samplers_and_metrics_do_not_warn():
    # torch warns once per process on read-only (pandas copy-on-write) arrays: a fresh interpreter
    pytest.importorskip("pandas")
    code = """
import warnings, numpy as np, pandas as pd
warnings.simplefilter("error")
import balancedtorch as bt
rng = np.random.default_rng(0)
y = pd.Series(rng.integers(0, 3, 100))
p = pd.DataFrame(rng.dirichlet(np.ones(3), 100))
w = pd.Series(rng.random(100))
assert len(list(bt.data.WeightedRandomSampler(w, 10))) == 10
assert len(bt.data.ClassBalancedSampler(y.to_numpy(), sample_weights=w)) == 100
m = bt.metrics.ClassificationMetrics(3)
m.update(p, y)
assert m.compute()["confusion_matrix"].sum() == 100
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
