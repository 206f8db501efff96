"""MixUp and CutMix against torchvision.transforms.v2, and Remix's labels against the paper's rule written per pair."""

import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import balancedtorch as bt
from balancedtorch.augment import functional as AF

T = pytest.importorskip("torchvision.transforms.v2")

MIXES = {"MixUp": (bt.augment.MixUp, T.MixUp), "CutMix": (bt.augment.CutMix, T.CutMix)}


def batch(n=8, c=3, h=17, w=23, classes=5, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, h, w, generator=g)
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    return x, torch.randint(0, classes, (n,), generator=g)


def ours_and_torchvision(kind, alpha, x, y, classes, seed, generator):
    """Our transform (global RNG or a seeded generator) and torchvision's, both after torch.manual_seed(seed)."""
    ours, theirs = MIXES[kind]
    torch.manual_seed(seed)
    if generator:
        torch.rand(3)  # the global stream moves: only the generator may feed ours
        a = ours(alpha=alpha, num_classes=classes)(x, y, generator=torch.Generator().manual_seed(seed))
    else:
        a = ours(alpha=alpha, num_classes=classes)(x, y)
    torch.manual_seed(seed)
    b = theirs(alpha=alpha, num_classes=classes)(x, y)
    return a, b


# ---------------------------------------------------------------- torchvision parity


@pytest.mark.parametrize("kind", list(MIXES))
@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
@pytest.mark.parametrize("generator", [False, True], ids=["global_rng", "generator"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_equals_torchvision_bit_for_bit(kind, alpha, generator, dtype):
    x, y = batch(dtype=dtype)
    changed = 0
    for seed in range(6):
        (xa, ta), (xb, tb) = ours_and_torchvision(kind, alpha, x, y, 5, seed, generator)
        assert xa.dtype == xb.dtype == dtype and ta.dtype == tb.dtype == torch.float32
        assert torch.equal(xa, xb), (kind, seed, float((xa.double() - xb.double()).abs().max()))
        assert torch.equal(ta, tb), (kind, seed)
        changed += not torch.equal(xa, x)
    assert changed >= 4  # the comparison is a real one: most draws change the images


@pytest.mark.parametrize("kind", list(MIXES))
def test_equals_torchvision_on_channels_last_and_probability_labels(kind):
    x, y = batch(n=6, h=32, w=32)
    x = x.contiguous(memory_format=torch.channels_last)
    soft = torch.softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(1)), 1).double()
    for labels in (y, soft):
        (xa, ta), (xb, tb) = ours_and_torchvision(kind, 1.0, x, labels, 5, 3, False)
        assert xa.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(xa, xb) and torch.equal(ta, tb) and ta.dtype == tb.dtype


def test_cutmix_uint8_equals_torchvision_and_boxes_vary():
    x, y = batch(dtype=torch.uint8, h=31, w=40)
    areas = set()
    for seed in range(12):
        (xa, ta), (xb, tb) = ours_and_torchvision("CutMix", 1.0, x, y, 5, seed, False)
        assert xa.dtype == torch.uint8 and torch.equal(xa, xb) and torch.equal(ta, tb)
        torch.manual_seed(seed)
        areas.add(bt.augment.CutMix().sample_params(x)["lam_adjusted"])
    assert len(areas) >= 8 and min(areas) < 0.9


def test_mixup_uint8_is_the_float_blend_rounded():
    """torchvision's MixUp raises on uint8; ours blends in float32 and rounds (half to even)."""
    x, y = batch(dtype=torch.uint8)
    g = torch.Generator().manual_seed(4)
    lam = bt.augment.MixUp().sample_params(x, torch.Generator().manual_seed(4))["lam"]
    out, _ = bt.augment.MixUp(num_classes=5)(x, y, generator=g)
    xf = x.float()
    ref = (xf.roll(1, 0) * (1 - lam) + xf * lam).round().to(torch.uint8)
    assert out.dtype == torch.uint8 and torch.equal(out, ref) and not torch.equal(out, x)
    with pytest.raises(RuntimeError):
        T.MixUp(num_classes=5)(x, y)


def test_sample_params_are_the_ones_forward_uses():
    x, y = batch(n=5, h=20, w=30)
    mix, cut = bt.augment.MixUp(num_classes=5), bt.augment.CutMix(num_classes=5)
    lam = mix.sample_params(x, torch.Generator().manual_seed(7))["lam"]
    out, target = mix(x, y, generator=torch.Generator().manual_seed(7))
    assert 0 < lam < 1
    torch.testing.assert_close(out, lam * x + (1 - lam) * x[[4, 0, 1, 2, 3]], rtol=0, atol=1e-6)
    one_hot = torch.nn.functional.one_hot(y, 5).float()
    torch.testing.assert_close(target, lam * one_hot + (1 - lam) * one_hot[[4, 0, 1, 2, 3]], rtol=0, atol=1e-6)
    p = cut.sample_params(x, torch.Generator().manual_seed(9))
    out, target = cut(x, y, generator=torch.Generator().manual_seed(9))
    x1, y1, x2, y2 = p["box"]
    assert 0 <= x1 < x2 <= 30 and 0 <= y1 < y2 <= 20
    ref = x.clone()
    ref[:, :, y1:y2, x1:x2] = x[[4, 0, 1, 2, 3]][:, :, y1:y2, x1:x2]
    assert torch.equal(out, ref)
    assert p["lam_adjusted"] == pytest.approx(1 - (x2 - x1) * (y2 - y1) / 600, abs=1e-15)
    torch.testing.assert_close(target, p["lam_adjusted"] * one_hot + (1 - p["lam_adjusted"]) * one_hot[[4, 0, 1, 2, 3]])


def test_lam_follows_beta_alpha_alpha():
    """Mean 1/2 and variance 1 / (4 (2 alpha + 1)) of Beta(alpha, alpha), within 5 standard errors."""
    x = torch.rand(2, 1, 2, 2)
    for alpha in (0.2, 2.0):
        g = torch.Generator().manual_seed(0)
        lams = torch.tensor([bt.augment.MixUp(alpha=alpha).sample_params(x, g)["lam"] for _ in range(4000)], dtype=torch.float64)
        var = 1 / (4 * (2 * alpha + 1))
        assert abs(float(lams.mean()) - 0.5) < 5 * math.sqrt(var / 4000)
        assert abs(float(lams.var()) - var) < 0.1 * var


@pytest.mark.parametrize("kind", list(MIXES))
def test_inputs_are_never_modified(kind):
    for dtype in (torch.float32, torch.uint8):
        x, y = batch(dtype=dtype)
        x0, y0 = x.clone(), y.clone()
        cls = MIXES[kind][0]
        for remix in (False, True):
            cls(class_counts=[50, 20, 10, 5, 1], remix=remix)(x, y, generator=torch.Generator().manual_seed(0))
            assert torch.equal(x, x0) and torch.equal(y, y0)
        soft = torch.rand(8, 5)
        s0 = soft.clone()
        cls()(x, soft)
        assert torch.equal(soft, s0)


@pytest.mark.parametrize("kind", list(MIXES))
def test_batch_of_one_and_empty_batch(kind):
    cls = MIXES[kind][0]
    x, y = batch(n=1)
    out, target = cls(num_classes=5)(x, y, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x)  # paired with itself
    assert torch.equal(target, torch.nn.functional.one_hot(y, 5).float())
    out, target = cls(num_classes=5)(torch.rand(0, 3, 4, 4), torch.zeros(0, dtype=torch.long))
    assert out.shape == (0, 3, 4, 4) and target.shape == (0, 5)


# ---------------------------------------------------------------- Remix


def remix_reference(a, b, lam, counts, kappa, tau, classes):
    """The paper's rule, one pair at a time, in Python floats."""
    rows = []
    for i, (ya, yb) in enumerate(zip(a.tolist(), b.tolist())):
        lam_i = lam[i] if isinstance(lam, list) else lam
        ratio = counts[ya] / counts[yb]
        if ratio >= kappa and lam_i < tau:
            lam_y = 0.0
        elif ratio <= 1 / kappa and 1 - lam_i < tau:
            lam_y = 1.0
        else:
            lam_y = lam_i
        row = [0.0] * classes
        row[yb] += 1 - lam_y
        row[ya] += lam_y
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float32).view(-1, classes)


# counts with exact ratios of 3 (300/100, 30/10) and 1/3, ties of equal counts, and a class much rarer
TIE_COUNTS = [300, 100, 100, 30, 10, 1]


def test_remix_ties_at_kappa_and_tau():
    f = AF.remix_targets
    # a = 300 (majority, ratio exactly 3 = kappa), b = 100: lam < tau -> all b; lam == tau -> mixed
    assert f(torch.tensor([0]), torch.tensor([1]), 0.49, TIE_COUNTS).tolist() == [[0, 1, 0, 0, 0, 0]]
    torch.testing.assert_close(f(torch.tensor([0]), torch.tensor([1]), 0.5, TIE_COUNTS), torch.tensor([[0.5, 0.5, 0, 0, 0, 0]]))
    # a = 100 (minority, ratio exactly 1/3), b = 300: 1 - lam < tau -> all a; 1 - lam == tau -> mixed
    assert f(torch.tensor([1]), torch.tensor([0]), 0.51, TIE_COUNTS).tolist() == [[0, 1, 0, 0, 0, 0]]
    torch.testing.assert_close(f(torch.tensor([1]), torch.tensor([0]), 0.5, TIE_COUNTS), torch.tensor([[0.5, 0.5, 0, 0, 0, 0]]))
    # ratio just below kappa (299/100) is a plain mix; 30/10 is exactly 3 again
    counts = [299, 100, 100, 30, 10, 1]
    torch.testing.assert_close(f(torch.tensor([0]), torch.tensor([1]), 0.2, counts), torch.tensor([[0.2, 0.8, 0, 0, 0, 0]]))
    assert f(torch.tensor([3]), torch.tensor([4]), 0.2, counts).tolist() == [[0, 0, 0, 0, 1, 0]]
    # equal counts never rebalance (kappa = 1 would: ratio 1 >= 1 and <= 1, the first case wins)
    torch.testing.assert_close(f(torch.tensor([1]), torch.tensor([2]), 0.1, counts), torch.tensor([[0, 0.1, 0.9, 0, 0, 0]]))
    assert f(torch.tensor([1]), torch.tensor([2]), 0.1, counts, kappa=1.0).tolist() == [[0, 0, 1, 0, 0, 0]]
    assert f(torch.tensor([1]), torch.tensor([2]), 0.9, counts, kappa=1.0, tau=0.95).tolist() == [[0, 0, 1, 0, 0, 0]]
    # the majority sample is most of the image: no rebalancing (Remix only acts when it is under tau)
    torch.testing.assert_close(f(torch.tensor([0]), torch.tensor([5]), 0.7, counts), torch.tensor([[0.7, 0, 0, 0, 0, 0.3]]))
    # tau = 0 never rebalances, tau = 1 always does for pairs kappa apart
    torch.testing.assert_close(
        f(torch.tensor([0]), torch.tensor([5]), 0.0, counts, tau=0.0), torch.tensor([[0.0, 0, 0, 0, 0, 1]])
    )
    assert f(torch.tensor([0, 5]), torch.tensor([5, 0]), 0.99, counts, tau=1.0).tolist() == [[0, 0, 0, 0, 0, 1]] * 2


@pytest.mark.parametrize("kappa, tau", [(3.0, 0.5), (1.0, 0.5), (2.5, 0.3), (10.0, 0.9), (3.0, 0.0), (3.0, 1.0)])
def test_remix_targets_match_the_rule_per_pair(kappa, tau):
    g = torch.Generator().manual_seed(int(kappa * 10 + tau * 100))
    a = torch.randint(0, 6, (400,), generator=g)
    b = torch.randint(0, 6, (400,), generator=g)
    # lam on the thresholds themselves as well as random
    special = [0.0, 1.0, tau, 1 - tau, 0.5]
    lam = [special[i % 5] if i < 100 else float(torch.rand((), generator=g, dtype=torch.float64)) for i in range(400)]
    ours = AF.remix_targets(a, b, torch.tensor(lam, dtype=torch.float64), TIE_COUNTS, kappa=kappa, tau=tau)
    ref = remix_reference(a, b, lam, TIE_COUNTS, kappa, tau, 6)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.sum(1), torch.ones(400))
    # with a scalar lam too
    for v in (0.25, tau):
        torch.testing.assert_close(
            AF.remix_targets(a, b, v, TIE_COUNTS, kappa=kappa, tau=tau), remix_reference(a, b, v, TIE_COUNTS, kappa, tau, 6)
        )


@settings(max_examples=150, deadline=None)
@given(
    counts=st.lists(st.sampled_from([1, 2, 3, 5, 6, 9, 10, 30, 90, 100, 300, 1e6, 0.5]), min_size=1, max_size=7),
    data=st.data(),
    kappa=st.sampled_from([1.0, 1.5, 2.0, 3.0, 100.0]),
    tau=st.sampled_from([0.0, 0.25, 0.5, 0.7, 1.0]),
)
def test_remix_targets_property(counts, data, kappa, tau):
    c = len(counts)
    n = data.draw(st.integers(0, 12))
    a = torch.tensor(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=torch.int64)
    b = torch.tensor(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=torch.int64)
    lam = data.draw(st.lists(st.sampled_from([0.0, 1.0, tau, 1 - tau, 0.5, 0.3, 1e-9]), min_size=n, max_size=n))
    ours = AF.remix_targets(a.int(), b, torch.tensor(lam, dtype=torch.float64), counts, kappa=kappa, tau=tau, num_classes=c)
    assert ours.shape == (n, c) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, remix_reference(a, b, lam, counts, kappa, tau, c), rtol=0, atol=1e-6)


def test_remix_without_rebalancing_equals_torchvision_labels():
    """Pairs that Remix leaves alone get MixUp's label bit for bit (equal counts: ratio 1 < kappa)."""
    x, y = batch(n=16)
    for seed in range(5):
        torch.manual_seed(seed)
        xa, ta = bt.augment.MixUp(class_counts=[7] * 5, remix=True)(x, y)
        torch.manual_seed(seed)
        xb, tb = T.MixUp(num_classes=5)(x, y)
        assert torch.equal(xa, xb) and torch.equal(ta, tb)


@pytest.mark.parametrize("kind", list(MIXES))
def test_remix_in_the_transforms_uses_the_pairs_and_the_lam_of_the_images(kind):
    cls = MIXES[kind][0]
    counts = [1000, 300, 100, 10, 3]
    x, y = batch(n=64, classes=5, seed=2)
    rebalanced = 0
    for seed in range(8):
        p = cls().sample_params(x, torch.Generator().manual_seed(seed))
        lam = p.get("lam_adjusted", p["lam"])
        plain_x, plain_t = cls(class_counts=counts)(x, y, generator=torch.Generator().manual_seed(seed))
        rx, rt = cls(class_counts=counts, remix=True)(x, y, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(rx, plain_x)  # Remix changes the labels only
        ref = remix_reference(y, y.roll(1, 0), lam, counts, 3.0, 0.5, 5)
        torch.testing.assert_close(rt, ref, rtol=0, atol=1e-6)
        torch.testing.assert_close(rt, AF.remix_targets(y, y.roll(1, 0), lam, counts), rtol=0, atol=0)
        rebalanced += int((rt != plain_t).any(1).sum())
    assert rebalanced > 0


# ---------------------------------------------------------------- losses take the soft targets


def test_soft_targets_train_with_bt_cross_entropy():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = batch(n=16)
    before = [p.detach().clone() for p in model.parameters()]
    for mix in (bt.augment.MixUp(class_counts=[50, 20, 10, 5, 1], remix=True), bt.augment.CutMix(num_classes=5)):
        xm, target = mix(x, y, generator=torch.Generator().manual_seed(1))
        logits = model(xm)
        loss = bt.nn.CrossEntropyLoss()(logits, target)
        ref = -(target * torch.log_softmax(logits.double(), 1)).sum(1).mean()
        assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
        torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, target))
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in model.parameters())
        opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kind", list(MIXES))
@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(alpha=0.0), ValueError, "alpha must be"),
        (dict(alpha=-1.0), ValueError, "alpha must be"),
        (dict(alpha=float("nan")), ValueError, "alpha must be"),
        (dict(alpha=float("inf")), ValueError, "alpha must be"),
        (dict(alpha="1"), TypeError, "alpha must be"),
        (dict(kappa=0.5), ValueError, "kappa must be"),
        (dict(kappa=float("nan")), ValueError, "kappa must be"),
        (dict(tau=-0.1), ValueError, "tau must be"),
        (dict(tau=1.5), ValueError, "tau must be"),
        (dict(remix=1), TypeError, "remix must be"),
        (dict(remix=True), ValueError, "remix=True needs class_counts"),
        (dict(num_classes=0), ValueError, "num_classes must be"),
        (dict(num_classes=3, class_counts=[1, 2]), ValueError, "class_counts has 2 entries but num_classes is 3"),
        (dict(class_counts=[5, 0, 1]), ValueError, r"class_counts\[1\] = 0"),
        (dict(class_counts=[5, -2, 1]), ValueError, r"class_counts\[1\] = -2"),
        (dict(class_counts=[5, float("nan")]), ValueError, r"class_counts\[1\] = nan"),
        (dict(class_counts=[[5, 1]]), ValueError, "class_counts must be a non-empty 1-D"),
        (dict(class_counts=[]), ValueError, "class_counts must be a non-empty 1-D"),
        (dict(class_counts=["a"]), ValueError, "class_counts must be numeric"),
        (dict(alpha=1e39), ValueError, "alpha must be"),  # past float32, the dtype lam is drawn in
        (dict(class_counts=torch.ones(3, device="meta")), ValueError, "class_counts is on the meta device"),
    ],
)
def test_bad_arguments_name_the_argument(kind, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        MIXES[kind][0](**kwargs)


@pytest.mark.parametrize("kind", list(MIXES))
def test_bad_batches_name_the_argument(kind):
    cls = MIXES[kind][0]
    x, y = batch()
    mix = cls(num_classes=5)
    cases = [
        ((x[0], y), ValueError, r"images must be a batch of shape \(B, C, H, W\).*one image"),
        ((x.flatten(2), y), ValueError, "images must be a batch"),
        ((x.numpy(), y), TypeError, "images must be a torch.Tensor"),
        ((x.int(), y), TypeError, "images must be uint8 or floating point"),
        ((x, y.tolist()), TypeError, "labels must be a torch.Tensor"),
        ((x, y[:5]), ValueError, "images hold 8 samples but labels 5"),
        ((x, y.view(2, 4, 1)), ValueError, "labels must be class indices of shape"),
        ((x, y.float()), TypeError, "labels must hold integer class indices"),
        ((x, y > 2), TypeError, "labels must hold integer class indices"),
        ((x, torch.full((8,), 5)), ValueError, r"labels must be class indices in \[0, 5\), got labels\[0\] = 5"),
        ((x, torch.tensor([0, 1, -1, 0, 0, 0, 0, 0])), ValueError, r"labels\[2\] = -1"),
        ((x, torch.rand(8, 4)), ValueError, "labels have 4 columns but num_classes is 5"),
    ]
    for args, exc, match in cases:
        with pytest.raises(exc, match=match):
            mix(*args)
    with pytest.raises(ValueError, match="num_classes .* must be given"):
        cls()(x, y)
    with pytest.raises(ValueError, match="remix=True needs class indices"):
        cls(class_counts=[1, 2, 3, 4, 5], remix=True)(x, torch.rand(8, 5))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        mix(x, y, generator=0)
    with pytest.raises(ValueError, match="meta device"):
        mix(x.to("meta"), y.to("meta"))


@pytest.mark.parametrize("kind", list(MIXES))
def test_a_refused_batch_draws_nothing(kind):
    x, y = batch()
    state = torch.get_rng_state()
    with pytest.raises(ValueError):
        MIXES[kind][0](num_classes=5)(x, torch.full((8,), 7))
    assert torch.equal(torch.get_rng_state(), state)


def test_remix_targets_bad_input():
    a, b = torch.tensor([0, 1]), torch.tensor([1, 0])
    f = AF.remix_targets
    with pytest.raises(ValueError, match=r"lam must be a number in \[0, 1\]"):
        f(a, b, 1.5, [3, 1])
    with pytest.raises(ValueError, match=r"lam must be a number in \[0, 1\]"):
        f(a, b, float("nan"), [3, 1])
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\], got lam\[1\] = nan"):
        f(a, b, torch.tensor([0.5, float("nan")]), [3, 1])
    with pytest.raises(ValueError, match=r"lam must be a number or a tensor of shape \(\) or \(2,\)"):
        f(a, b, torch.rand(3), [3, 1])
    with pytest.raises(TypeError, match="lam must be a float or a floating tensor"):
        f(a, b, torch.tensor([0, 1]), [3, 1])
    with pytest.raises(ValueError, match="target_a and target_b must have the same shape"):
        f(a, b[:1], 0.5, [3, 1])
    with pytest.raises(ValueError, match=r"target_b must be class indices in \[0, 2\), got target_b\[0\] = 2"):
        f(a, torch.tensor([2, 0]), 0.5, [3, 1])
    with pytest.raises(TypeError, match="target_a must hold integer class indices"):
        f(a.float(), b, 0.5, [3, 1])
    with pytest.raises(ValueError, match="class_counts has 2 entries but num_classes is 3"):
        f(a, b, 0.5, [3, 1], num_classes=3)
    with pytest.raises(ValueError, match="kappa must be"):
        f(a, b, 0.5, [3, 1], kappa=0.99)
    with pytest.raises(ValueError, match="tau must be"):
        f(a, b, 0.5, [3, 1], tau=2)
    with pytest.raises(ValueError, match=r"class_counts\[0\] = 0"):
        f(a, b, 0.5, torch.tensor([0, 1]))


# ---------------------------------------------------------------- devices


@pytest.mark.parametrize("kind", list(MIXES))
def test_device_matches_cpu(device, kind):
    cls = MIXES[kind][0]
    x, y = batch(n=16, h=32, w=32)
    x = x.contiguous(memory_format=torch.channels_last)
    counts = [1000, 300, 100, 10, 3]
    for remix in (False, True):
        mix = cls(class_counts=counts, remix=remix)
        cpu = mix(x, y, generator=torch.Generator().manual_seed(5))
        dev = mix(x.to(device), y.to(device), generator=torch.Generator().manual_seed(5))
        assert dev[0].device.type == device.type and dev[1].device.type == device.type
        assert dev[0].is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(dev[0].cpu(), cpu[0]) and torch.equal(dev[1].cpu(), cpu[1])
    a, b = y.to(device), y.roll(1, 0).to(device)
    lam = torch.rand(16, dtype=torch.float64)
    torch.testing.assert_close(
        AF.remix_targets(a, b, lam.to(device), counts).cpu(), AF.remix_targets(y, y.roll(1, 0), lam, counts)
    )


@pytest.mark.cuda
def test_cuda_generator_is_refused_and_labels_on_another_device():
    x, y = batch()
    mix = bt.augment.MixUp(num_classes=5)
    with pytest.raises(ValueError, match="generator must be a CPU generator"):
        mix(x.cuda(), y.cuda(), generator=torch.Generator(device="cuda"))
    with pytest.raises(ValueError, match="labels is on cpu but images is on cuda"):
        mix(x.cuda(), y)


@pytest.mark.cuda
def test_cuda_path_does_not_synchronise():
    """A forward with CUDA tensors (class counts cached after the first call) never waits for the device."""
    x, y = batch(n=64, h=64, w=64)
    x, y = x.cuda(), y.cuda()
    for mix in (
        bt.augment.MixUp(class_counts=[5, 4, 3, 2, 1], remix=True),
        bt.augment.CutMix(class_counts=[5, 4, 3, 2, 1], remix=True),
    ):
        mix(x, y)  # warm-up: the counts are copied to the device once
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            mix(x, y)
        finally:
            torch.cuda.set_sync_debug_mode("default")


# ---------------------------------------------------------------- docs and repr


@pytest.mark.parametrize("cls", [bt.augment.MixUp, bt.augment.CutMix])
def test_docstrings_and_repr(cls):
    for fn in (cls, cls.forward):
        doc = inspect.getdoc(fn) or ""
        assert "Example:" in doc and "Args:" in doc
    forward_doc = inspect.getdoc(cls.forward)
    for section in ("Returns:", "Tensor[", "images", "labels", "generator"):
        assert section in forward_doc
    for p in inspect.signature(cls.__init__).parameters:
        assert p == "self" or p in (cls.__doc__ or "")
    assert repr(cls()) == f"{cls.__name__}(alpha=1)"
    assert repr(cls(alpha=0.2, num_classes=10)) == f"{cls.__name__}(alpha=0.2, num_classes=10)"
    text = repr(cls(class_counts=[50, 5, 1], remix=True, kappa=2.5, tau=0.4))
    assert text == f"{cls.__name__}(alpha=1, class_counts=[50, 5, 1], remix=True, kappa=2.5, tau=0.4)"
    assert "class_counts=[20 classes]" in repr(cls(class_counts=list(range(1, 21))))
    assert "remix_targets" in AF.__all__ and "Example:" in AF.remix_targets.__doc__


@pytest.mark.parametrize("kind", list(MIXES))
def test_images_that_require_grad_are_mixed_differentiably(kind):
    x = torch.rand(4, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0])
    mix = MIXES[kind][0](num_classes=3)
    out, target = mix(x, y, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # the same call on a plain tensor: the values must not depend on requires_grad
        plain, plain_target = mix(x.detach(), y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out.detach(), plain) and torch.equal(target, plain_target)
    assert out.requires_grad
    weights = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    if kind == "MixUp":
        lam = mix.sample_params(x, torch.Generator().manual_seed(3))["lam"]
        ref = lam * weights + (1 - lam) * weights.roll(-1, 0)  # x_i feeds out_i (lam) and out_{i+1} (1 - lam)
    else:
        x1, y1, x2, y2 = mix.sample_params(x, torch.Generator().manual_seed(3))["box"]
        inside = torch.zeros(8, 8, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        ref = torch.where(inside, weights.roll(-1, 0), weights)
    torch.testing.assert_close(grad, ref)


def test_remix_targets_meta_class_counts():
    with pytest.raises(ValueError, match="remix_targets: class_counts is on the meta device"):
        AF.remix_targets(torch.tensor([0, 1]), torch.tensor([1, 0]), 0.3, torch.ones(2, device="meta"))
