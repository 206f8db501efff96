"""RepeatFactorSampler (LVIS / detectron2 repeat factors) and classes_present."""

import math
from collections import defaultdict

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import DataLoader, Dataset, TensorDataset

import balancedtorch as bt
import balancedtorch.data.presence as presence_module

P_THRESHOLD = 1e-4


def random_class_sets(n=400, num_classes=25, seed=0):
    """Long-tailed multi-label data: class c is in an image with probability 0.5 / (c + 1) ** 1.5; some images empty."""
    g = torch.Generator().manual_seed(seed)
    probs = 0.5 / torch.arange(1, num_classes + 1, dtype=torch.float64) ** 1.5
    multi_hot = torch.rand(n, num_classes, generator=g, dtype=torch.float64) < probs
    return multi_hot


def reference_factors(class_sets, t, sqrt=True):
    """detectron2's repeat_factors_from_category_frequency(..., repeat_thresh=t, sqrt=sqrt), as plain Python over sets."""
    freq = defaultdict(int)
    for classes in class_sets:
        for c in set(classes):
            freq[c] += 1
    n = len(class_sets)
    rep = {c: max(1.0, math.sqrt(t / (v / n)) if sqrt else t / (v / n)) for c, v in freq.items()}
    return torch.tensor([max((rep[c] for c in set(classes)), default=1.0) for classes in class_sets], dtype=torch.float64)


def sets_of(multi_hot):
    return [set(torch.nonzero(row).flatten().tolist()) for row in multi_hot]


# --- repeat factors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.001, 0.05, 0.3, 1.0])
def test_repeat_factors_equal_the_formula_on_random_data(threshold):
    multi_hot = random_class_sets()
    sets = sets_of(multi_hot)
    expected = reference_factors(sets, threshold)
    assert (expected > 1).any() or threshold == 0.001
    forms = {
        "sets": sets,
        "lists with repeats": [sorted(s) + sorted(s) for s in sets],
        "tensors": [torch.tensor(sorted(s), dtype=torch.int32) for s in sets],
        "multi-hot bool": multi_hot,
        "multi-hot int numpy": multi_hot.numpy().astype(np.int64),
        "multi-hot float": multi_hot.float(),
    }
    for name, labels in forms.items():
        sampler = bt.data.RepeatFactorSampler(labels, threshold=threshold)
        assert sampler.repeat_factors.dtype == torch.float64
        assert torch.allclose(sampler.repeat_factors, expected, rtol=1e-14, atol=0), name
    counts = multi_hot.sum(0)
    present = counts > 0
    assert torch.equal(sampler.classes, torch.nonzero(present).flatten())
    assert torch.allclose(sampler.class_frequency, counts[present].double() / 400)
    assert torch.allclose(sampler.class_repeat_factors, (threshold / sampler.class_frequency).sqrt().clamp_min(1))


def test_repeat_factors_on_a_hand_made_case():
    # 10 images, t = 0.3. Image fractions: class 0 in 9 (f = 0.9), class 1 in 2 (0.2), class 2 in 1 (0.1),
    # class 7 in 5 (0.5). r_c = max(1, sqrt(0.3 / f_c)): r_0 = 1, r_1 = sqrt(1.5), r_2 = sqrt(3), r_7 = 1.
    # An image's factor is the largest over its classes; image 9 has no class: 1 (detectron2's default=1.0).
    class_sets = [{0, 1, 2}, {0, 1}, {0, 7}, {0, 7}, {0, 7}, {0, 7}, {0}, {0, 7}, {0}, set()]
    expected = [math.sqrt(3), math.sqrt(1.5), 1, 1, 1, 1, 1, 1, 1, 1]
    sampler = bt.data.RepeatFactorSampler(class_sets, threshold=0.3)
    assert sampler.repeat_factors.tolist() == pytest.approx(expected, rel=1e-15)
    assert sampler.classes.tolist() == [0, 1, 2, 7]
    assert sampler.class_frequency.tolist() == pytest.approx([0.9, 0.2, 0.1, 0.5])
    assert sampler.class_repeat_factors.tolist() == pytest.approx([1, math.sqrt(1.5), math.sqrt(3), 1])
    assert sampler.expected_length == pytest.approx(8 + math.sqrt(3) + math.sqrt(1.5))
    # the same data in detectron2's dataset-dict format (one annotation per box: repeats count once)
    dicts = [{"annotations": [{"category_id": c} for c in sorted(s) for _ in range(2)]} for s in class_sets]
    assert torch.equal(bt.data.RepeatFactorSampler(dicts, threshold=0.3).repeat_factors, sampler.repeat_factors)
    # an object array of sets reads as the list
    as_objects = np.empty(len(class_sets), dtype=object)
    as_objects[:] = class_sets
    assert torch.equal(bt.data.RepeatFactorSampler(as_objects, threshold=0.3).repeat_factors, sampler.repeat_factors)
    # no image with a class: every factor 1, an epoch is a permutation
    empty = bt.data.RepeatFactorSampler([set()] * 6, threshold=0.3)
    assert empty.repeat_factors.tolist() == [1.0] * 6 and sorted(empty) == list(range(6))
    # sparse ids (COCO-style) change nothing
    sparse = [{c * 10**9 for c in s} for s in class_sets]
    assert torch.equal(bt.data.RepeatFactorSampler(sparse, threshold=0.3).repeat_factors, sampler.repeat_factors)


def test_every_epoch_rounds_each_factor_up_or_down_and_hits_it_on_average():
    sets = sets_of(random_class_sets(n=150, num_classes=40, seed=5))
    sampler = bt.data.RepeatFactorSampler(sets, threshold=0.2, seed=11)
    r = sampler.repeat_factors
    assert (r.frac() > 0).sum() > 30, "enough fractional factors to test the rounding"
    epochs = 400
    total = torch.zeros_like(r)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        idx = sampler.indices()
        counts = torch.bincount(idx, minlength=r.numel()).double()
        assert ((counts == r.floor()) | (counts == r.ceil())).all(), "floor(r_i) or floor(r_i) + 1 repeats"
        assert len(sampler) == idx.numel()
        total += counts
    var = epochs * r.frac() * (1 - r.frac())
    random_part = var > 0
    assert torch.equal(total[~random_part], epochs * r[~random_part]), "integer factors repeat exactly r_i times"
    z2 = ((total - epochs * r)[random_part] ** 2 / var[random_part]).sum().item()
    p = stats.chi2.sf(z2, df=int(random_part.sum()))
    assert p > P_THRESHOLD, f"E[count_i] != r_i (chi-square p = {p:.2e})"


def test_deterministic_given_seed_or_generator_and_set_epoch_reshuffles():
    sets = sets_of(random_class_sets(n=300))
    a = bt.data.RepeatFactorSampler(sets, threshold=0.1, seed=4)
    b = bt.data.RepeatFactorSampler(sets, threshold=0.1, seed=4)
    assert list(a) == list(b)
    assert list(a) == list(b), "the next epochs agree too"
    c = bt.data.RepeatFactorSampler(sets, threshold=0.1, seed=5)
    assert list(c) != list(bt.data.RepeatFactorSampler(sets, threshold=0.1, seed=4))
    first = a.indices().clone()
    a.set_epoch(7)
    assert not torch.equal(a.indices(), first), "set_epoch reshuffles"
    assert list(a) == list(a), "with set_epoch, the caller fixes the epoch"
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    x = bt.data.RepeatFactorSampler(sets, threshold=0.1, generator=g1)
    y = bt.data.RepeatFactorSampler(sets, threshold=0.1, generator=g2)
    ex = [list(x) for _ in range(3)]
    assert ex == [list(y) for _ in range(3)]
    assert ex[0] != ex[1], "a generator draws a new epoch each pass"


def test_len_is_exact_for_every_epoch():
    sets = sets_of(random_class_sets(n=300))
    lengths = set()
    for make in (
        lambda: bt.data.RepeatFactorSampler(sets, threshold=0.2, seed=1),
        lambda: bt.data.RepeatFactorSampler(sets, threshold=0.2, generator=torch.Generator().manual_seed(2)),
        lambda: bt.data.RepeatFactorSampler(sets, threshold=0.2, seed=1, num_replicas=3, rank=2),
    ):
        sampler = make()
        for _epoch in range(6):  # passes without set_epoch: each finished pass moves to the next epoch
            n = len(sampler)
            assert n == len(sampler.indices()) == len(list(sampler))
            lengths.add(n)
        sampler.set_epoch(10)
        assert len(sampler) == len(list(sampler))
    assert len(lengths) > 2, "stochastic rounding: epoch lengths vary"
    sampler = bt.data.RepeatFactorSampler(sets, threshold=0.2, seed=1)
    assert sampler.num_samples == len(sampler)
    assert abs(sampler.num_samples - sampler.expected_length) < 6 * math.sqrt(300)


def test_dataloader_yields_len_indices():
    sets = sets_of(random_class_sets(n=100))
    data = TensorDataset(torch.arange(100))
    sampler = bt.data.RepeatFactorSampler(sets, threshold=0.3, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        loader = DataLoader(data, batch_size=16, sampler=sampler)
        batches = [b[0] for b in loader]
        assert len(loader) == len(batches) == math.ceil(len(sampler) / 16)
        assert torch.equal(torch.cat(batches), sampler.indices())


def test_state_dict_resumes_mid_epoch():
    sets = sets_of(random_class_sets(n=300))
    for make in (
        lambda: bt.data.RepeatFactorSampler(sets, threshold=0.2, generator=torch.Generator().manual_seed(11)),
        lambda: bt.data.RepeatFactorSampler(sets, threshold=0.2, seed=4, num_replicas=2, rank=1),
        lambda: bt.data.RepeatFactorSampler(sets, threshold=0.2, seed=4),
    ):
        sampler = make()
        sampler.set_epoch(3)
        it = iter(sampler)
        head = [next(it) for _ in range(17)]
        state = sampler.state_dict()
        rest = list(it)
        fresh = make()
        fresh.load_state_dict(state)
        assert len(fresh) == len(head) + len(rest)
        assert list(fresh) == rest
        whole = make()
        whole.set_epoch(3)
        assert head + rest == list(whole), "a resumed epoch continues the same epoch"
    other = bt.data.RepeatFactorSampler(sets[::-1], threshold=0.2, seed=4)
    with pytest.raises(ValueError, match="fingerprint"):
        other.load_state_dict(bt.data.RepeatFactorSampler(sets, threshold=0.2, seed=4).state_dict())
    with pytest.raises(ValueError, match="was saved by a ClassBalancedSampler"):
        other.load_state_dict(bt.data.ClassBalancedSampler(torch.arange(300) % 3).state_dict())


@pytest.mark.parametrize("num_replicas", [2, 3])
def test_ranks_take_disjoint_equal_shares_of_one_epoch(num_replicas):
    sets = sets_of(random_class_sets(n=301))
    for epoch in range(3):
        ranks = [
            bt.data.RepeatFactorSampler(sets, threshold=0.2, seed=7, num_replicas=num_replicas, rank=r)
            for r in range(num_replicas)
        ]
        for s in ranks:
            s.set_epoch(epoch)
        full_sampler = bt.data.RepeatFactorSampler(sets, threshold=0.2, seed=7, num_replicas=1, rank=0)
        full_sampler.set_epoch(epoch)
        full = full_sampler.indices()
        assert {len(s) for s in ranks} == {math.ceil(full.numel() / num_replicas)}, "equal lengths"
        shares = [s.indices() for s in ranks]
        interleaved = torch.stack(shares, 1).flatten()
        # disjoint positions of the one epoch, which the union covers; the padding wraps around to its start
        assert torch.equal(interleaved[: full.numel()], full)
        assert torch.equal(interleaved[full.numel() :], full[: interleaved.numel() - full.numel()])


def test_masks_and_datasets_give_the_factors_of_their_class_sets():
    g = torch.Generator().manual_seed(2)
    masks = torch.randint(0, 6, (40, 9, 11), generator=g, dtype=torch.uint8)
    masks[masks == 5] = 255
    masks[:30][masks[:30] == 4] = 0  # class 4 only in the last 10 images
    sets = bt.data.classes_present(masks, 6, ignore_index=255)
    expected = bt.data.RepeatFactorSampler(sets, threshold=0.5).repeat_factors
    assert (expected > 1).any()
    from_tensor = bt.data.RepeatFactorSampler(masks, threshold=0.5, num_classes=6, ignore_index=255)
    assert torch.equal(from_tensor.repeat_factors, expected)
    pairs = [(torch.rand(3, 9, 11, generator=g), m.numpy()) for m in masks]
    for data in (_SegDataset(list(masks), "dict"), pairs, list(masks)):  # a dataset, or a list of samples
        from_dataset = bt.data.RepeatFactorSampler(data, threshold=0.5, num_classes=6, ignore_index=255, progress=False)
        assert torch.equal(from_dataset.repeat_factors, expected)


# --- classes_present -----------------------------------------------------------------------------------------------


def reference_present(masks, num_classes, ignore_index=None):
    out = []
    for m in masks:
        values = set(np.asarray(m).reshape(-1).tolist())
        values.discard(ignore_index)
        assert all(0 <= v < num_classes for v in values)
        out.append(sorted(values))
    return out


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.int32, torch.int16])
@pytest.mark.parametrize("shape", [(30, 13, 17), (30, 1, 13, 17)])
def test_classes_present_on_tensors(dtype, shape, monkeypatch):
    g = torch.Generator().manual_seed(1)
    masks = torch.randint(0, 12, shape, generator=g).to(dtype)
    masks[torch.rand(shape, generator=g) < 0.3] = 255  # void pixels
    masks[masks == 11] = 255  # class 11 never occurs
    masks[3] = 7  # a single-class mask
    masks[4] = 255  # an all-void mask: no class
    before = masks.clone()
    got = bt.data.classes_present(masks, 12, ignore_index=255)
    assert got == reference_present(masks, 12, 255)
    assert got[3] == [7] and got[4] == [] and all(11 not in s for s in got)
    assert torch.equal(masks, before), "the input is never modified"
    if dtype != torch.uint8:  # an ignore_index below the classes or far above them
        negative = masks.masked_fill(masks == 255, -1)
        assert bt.data.classes_present(negative, 12, ignore_index=-1) == got
        far = masks.masked_fill(masks == 255, 5000)
        assert bt.data.classes_present(far, 12, ignore_index=5000) == got
        far[9, 0, 0] = 255
        with pytest.raises(ValueError, match="the mask of sample 9 holds the value 255 at flat pixel index 0"):
            bt.data.classes_present(far, 12, ignore_index=5000)
    # several class_counts calls over (samples, classes) bins give the same answer
    monkeypatch.setattr(presence_module, "_CHUNK_PIXELS", 500)
    assert bt.data.classes_present(masks, 12, ignore_index=255) == got
    # an ignore_index inside [0, C) is never reported
    inside = bt.data.classes_present(masks, 256, ignore_index=7)
    assert inside == reference_present(masks, 256, 7)


def test_classes_present_without_ignore_index_and_other_inputs():
    g = torch.Generator().manual_seed(4)
    masks = torch.randint(0, 5, (20, 6, 8), generator=g)
    assert bt.data.classes_present(masks, 5) == reference_present(masks, 5)
    assert bt.data.classes_present(masks.numpy().astype(np.uint16), 5) == reference_present(masks, 5)
    assert bt.data.classes_present(masks.double(), 5) == reference_present(masks, 5), "integer-valued floats"
    binary = masks > 2
    assert bt.data.classes_present(binary, 2) == reference_present(binary.long(), 2)
    assert bt.data.classes_present(TensorDataset(torch.rand(20, 3), masks), 5) == reference_present(masks, 5)


class _SegDataset(Dataset):
    """Masks of different sizes, returned as (image, mask), {"image", "mask"} or the mask alone."""

    def __init__(self, masks, kind, fail_at=None):
        self.masks, self.kind, self.fail_at = masks, kind, fail_at

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, i):
        if i == self.fail_at:
            raise RuntimeError("broken sample")
        m = self.masks[i]
        if self.kind == "tuple":
            return torch.zeros(3, *m.shape), m
        if self.kind == "dict":
            return {"image": torch.zeros(3, *m.shape), "mask": m}
        if self.kind == "custom":
            return {"seg": m}
        return m


@pytest.mark.parametrize("kind", ["tuple", "dict", "plain", "custom"])
def test_classes_present_on_a_dataset(kind):
    g = torch.Generator().manual_seed(6)
    masks = [torch.randint(0, 4 + i % 3, (5 + i % 4, 7 + i % 5), generator=g, dtype=torch.uint8).numpy() for i in range(25)]
    masks[2][:] = 255
    masks[5][0, 0] = 255
    data = _SegDataset(masks, kind)
    getter = (lambda s: s["seg"]) if kind == "custom" else None
    got = bt.data.classes_present(data, 7, ignore_index=255, progress=False, mask=getter)
    assert got == reference_present(masks, 7, 255)
    assert got[2] == []


def test_classes_present_progress_bar_is_closed_however_reading_ends(capsys):
    masks = [np.full((4, 4), i % 3, dtype=np.uint8) for i in range(12)]
    assert bt.data.classes_present(_SegDataset(masks, "tuple"), 3, progress=True) == [[i % 3] for i in range(12)]
    assert "12/12" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="broken sample"):
        bt.data.classes_present(_SegDataset(masks, "tuple", fail_at=5), 3, progress=True)
    err = capsys.readouterr().err
    assert "5/12" in err
    bt.data.classes_present(_SegDataset(masks, "tuple"), 3)  # default: off when stderr is not a terminal
    assert capsys.readouterr().err == ""


@pytest.mark.cuda
def test_classes_present_on_cuda():
    g = torch.Generator().manual_seed(8)
    masks = torch.randint(0, 9, (16, 32, 32), generator=g, dtype=torch.uint8)
    masks[masks == 8] = 255
    assert bt.data.classes_present(masks.cuda(), 8, ignore_index=255) == reference_present(masks, 8, 255)


def test_classes_present_bad_input():
    masks = torch.randint(0, 3, (6, 4, 5), generator=torch.Generator().manual_seed(0))
    bad = masks.clone()
    bad[4, 2, 3] = 9
    with pytest.raises(
        ValueError,
        match=r"the mask of sample 4 holds the value 9 at flat pixel index 13; .*\[0, num_classes=3\) or equal ignore_index=255",
    ):
        bt.data.classes_present(bad, 3, ignore_index=255)
    with pytest.raises(ValueError, match="the mask of sample 4 holds the value 9"):
        bt.data.classes_present([m for m in bad], 3, progress=False)
    negative = masks.clone()
    negative[1, 0, 0] = -1
    with pytest.raises(ValueError, match="sample 1 holds the value -1"):
        bt.data.classes_present(negative, 3)
    with pytest.raises(TypeError, match="ToTensor divides masks by 255"):
        bt.data.classes_present(masks.float() / 255, 3)
    with pytest.raises(ValueError, match=r"must be a stack of masks .* got shape \(6, 20\)"):
        bt.data.classes_present(masks.reshape(6, 20), 3)
    with pytest.raises(ValueError, match="num_classes must be an int >= 1, got 0"):
        bt.data.classes_present(masks, 0)
    with pytest.raises(ValueError, match=r"classes_present: num_classes must fit in int64 .* got 18446744073709551616"):
        bt.data.classes_present([torch.zeros(4, 4, dtype=torch.long)], 2**64)
    with pytest.raises(ValueError, match=r"RepeatFactorSampler: num_classes must fit in int64"):
        bt.data.RepeatFactorSampler(masks, num_classes=2**63)
    assert bt.data.classes_present(masks, 2**63 - 1) == bt.data.classes_present(masks, 3)  # the int64 limit works
    with pytest.raises(TypeError, match="ignore_index must be an int or None, got 2.5"):
        bt.data.classes_present(masks, 3, ignore_index=2.5)
    with pytest.raises(ValueError, match="masks is empty"):
        bt.data.classes_present(torch.zeros(0, 4, 4, dtype=torch.uint8), 3)
    with pytest.raises(ValueError, match="the dataset is empty"):
        bt.data.classes_present([], 3)
    with pytest.raises(ValueError, match=r"sample 0 is a dict without any of the keys \['mask'"):
        bt.data.classes_present([{"image": masks[0]}], 3)
    with pytest.raises(TypeError, match="expected a mask tensor"):
        bt.data.classes_present(42, 3)
    with pytest.raises(TypeError, match="progress must be None, True or False"):
        bt.data.classes_present(masks, 3, progress="yes")


# --- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0, -0.1, float("nan"), float("inf")])
def test_threshold_out_of_range(threshold):
    with pytest.raises(ValueError, match=r"threshold must be a finite number > 0.*got"):
        bt.data.RepeatFactorSampler([{0}, {1}], threshold=threshold)


@pytest.mark.parametrize("threshold", ["0.1", True, None])
def test_threshold_of_the_wrong_type(threshold):
    with pytest.raises(TypeError, match=rf"threshold must be a finite number > 0, got {threshold!r}"):
        bt.data.RepeatFactorSampler([{0}, {1}], threshold=threshold)


@pytest.mark.parametrize("sqrt", [None, 1, "no", 0.0])
def test_sqrt_must_be_a_bool(sqrt):
    with pytest.raises(TypeError, match=r"sqrt must be True or False, got"):
        bt.data.RepeatFactorSampler([{0}, {1}], sqrt=sqrt)


@pytest.mark.parametrize("sqrt", [True, False])
@pytest.mark.parametrize("threshold", [0.001, 0.05, 0.3, 1.0, 1.5, 4.0, 250.0])
def test_repeat_factors_sqrt_option_and_thresholds_above_one(sqrt, threshold):
    """detectron2's sqrt=False (r_c = max(1, t / f_c)) and thresholds above 1 (every class repeated)."""
    multi_hot = random_class_sets(n=300, num_classes=20, seed=3)
    sets = sets_of(multi_hot)
    expected = reference_factors(sets, threshold, sqrt=sqrt)
    for labels in (sets, multi_hot):
        sampler = bt.data.RepeatFactorSampler(labels, threshold=threshold, sqrt=sqrt)
        torch.testing.assert_close(sampler.repeat_factors, expected, rtol=1e-14, atol=0)
    ratio = threshold / sampler.class_frequency
    torch.testing.assert_close(sampler.class_repeat_factors, (ratio.sqrt() if sqrt else ratio).clamp_min(1))
    assert sampler.sqrt is sqrt
    assert ("sqrt=False" in repr(sampler)) == (not sqrt)
    if threshold > 1:
        assert bool((sampler.repeat_factors[multi_hot.any(1)] > 1).all())  # every image with a class repeats
    # the epoch is floor(r) + Bernoulli(frac(r)) copies of each image, as for sqrt=True
    counts = torch.bincount(torch.tensor(list(sampler)), minlength=300).double()
    assert bool(((counts - sampler.repeat_factors).abs() < 1).all())


def test_repeat_factors_sqrt_false_hand_case():
    # 10 images, t = 0.3: class 1 in 2 images (f = 0.2) -> r = 1.5; class 2 in 1 (0.1) -> 3; class 0 in 9 -> 1
    sets = [{0, 2}, {0, 1}, {0, 1}, {0}, {0}, {0}, {0}, {0}, {0}, set()]
    sampler = bt.data.RepeatFactorSampler(sets, threshold=0.3, sqrt=False)
    assert sampler.repeat_factors.tolist() == pytest.approx([3, 1.5, 1.5, 1, 1, 1, 1, 1, 1, 1], rel=1e-15)


@pytest.mark.parametrize(
    "labels, kwargs, match",
    [
        ([], {}, "labels is empty"),
        (torch.zeros(0, 3, dtype=torch.bool), {}, r"labels is empty \(multi-hot shape \(0, 3\)\)"),
        ([{0, 1}, {2, -3}], {}, r"class ids must be >= 0, got -3 in labels\[1\]"),
        ([{0, 1}, {2, 5}], dict(num_classes=4), r"must be < num_classes=4, got 5 in labels\[1\]"),
        ([{0}, [1.5]], {}, r"labels\[1\] must hold integer class ids, got 1.5"),
        ([{0}, ["cat"]], {}, r"labels\[1\] must hold integer class ids, got 'cat'"),
        ([{0}, 3], {}, r"labels\[1\] = 3 is not a set of class ids"),
        ([{0}, torch.tensor(3)], {}, r"labels\[1\] is a single value"),
        ([{0}, torch.zeros(2, 2, dtype=torch.long)], {}, r"labels\[1\] has shape \(2, 2\).*masks"),
        ([{0}, {"boxes": []}], {}, r"labels\[1\] is a dict without 'annotations'"),
        (torch.tensor([[0, 1], [2, 0]]), {}, r"must hold only 0 and 1, got labels\[1, 0\] = 2"),
        (torch.tensor([[0.0, 0.7]], dtype=torch.float64), {}, r"must hold only 0 and 1, got labels\[0, 1\] = 0.7"),
        (torch.tensor([[0, 1], [1, 0]]), dict(num_classes=3), "num_classes=3 does not match the 2 columns"),
        (np.array([["a", "b"]]), {}, "labels must hold numbers, got an array of dtype <U1"),
        (torch.tensor([0, 1, 2]), {}, r"neither a multi-hot \(N, C\) array nor masks"),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), {}, "are segmentation masks .*pass num_classes="),
        ([{0}, {1}], dict(ignore_index=255), "ignore_index=255 applies to segmentation masks only"),
        ([{0}, {1}], dict(num_classes=0), "num_classes must be an int >= 1"),
        ([{0}, {1}], dict(num_replicas=2, rank=2), r"rank must be an int in \[0, num_replicas=2\)"),
    ],
)
def test_bad_labels(labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bt.data.RepeatFactorSampler(labels, **kwargs)


def test_seed_of_the_wrong_type():
    with pytest.raises(TypeError, match="seed must be an int, got 1.5"):
        bt.data.RepeatFactorSampler([{0}, {1}], seed=1.5)


def test_multi_hot_rows_as_lists_warn():
    rows = [[0, 1, 1], [1, 0, 0], [0, 0, 1]]
    with pytest.warns(UserWarning, match=r"look like multi-hot rows given as lists.*torch.tensor\(labels\)"):
        as_sets = bt.data.RepeatFactorSampler(rows, threshold=0.5)
    assert as_sets.classes.tolist() == [0, 1]
    as_multi_hot = bt.data.RepeatFactorSampler(torch.tensor(rows), threshold=0.5)
    assert as_multi_hot.classes.tolist() == [0, 1, 2]


def test_bad_label_types():
    with pytest.raises(TypeError, match="labels must be class sets"):
        bt.data.RepeatFactorSampler("abc")
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        bt.data.RepeatFactorSampler([{0}], generator=3)


# --- a huge num_classes (fuzz): answered from the classes present, nothing sized by num_classes ----------------------


def test_classes_present_with_a_huge_num_classes_answers_from_the_classes_present():
    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 6, (5, 8, 9), generator=g, dtype=torch.uint8)
    masks[0, 0, :4] = 255
    masks[2] = 3
    expected = bt.data.classes_present(masks, num_classes=6, ignore_index=255)
    for num_classes in (2**20, 2**40, 2**62):
        assert bt.data.classes_present(masks, num_classes=num_classes, ignore_index=255) == expected
        assert bt.data.classes_present(list(masks), num_classes=num_classes, ignore_index=255) == expected  # a dataset
        small = bt.data.RepeatFactorSampler(masks, num_classes=6, ignore_index=255, threshold=0.5)
        huge = bt.data.RepeatFactorSampler(masks, num_classes=num_classes, ignore_index=255, threshold=0.5)
        assert torch.equal(small.repeat_factors, huge.repeat_factors)
    # without ignore_index, 255 is one of the 2**40 classes
    assert [255 in c for c in bt.data.classes_present(masks, num_classes=2**40)] == [True, False, False, False, False]
    with pytest.raises(ValueError, match=r"the mask of sample 0 holds the value -1"):
        bt.data.classes_present(torch.tensor([[[0, -1]]]), num_classes=2**40)
