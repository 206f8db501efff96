"""BatchAugment(crop_focus=...): crops centred on rare pixels, and the focus_pixels kernel behind them."""

import math

import pytest
import torch

import balancedtorch as bt
from balancedtorch.augment._focus import focus_pixels

OP = torch.ops.balancedtorch.focus_pixels


# ----------------------------------------------------------------- reference
def reference_focus(masks, classes, weights, uniforms, active=None):
    """Pure-PyTorch selection with the kernel's documented semantics (a loop over samples)."""
    B = masks.shape[0]
    flat = masks.reshape(B, -1).long().cpu()
    classes = classes.cpu()
    counts = (flat.unsqueeze(1) == classes.view(1, -1, 1)).sum(2)
    if weights is None:  # "rare": 1 / batch pixels, the batch's most frequent class excluded
        batch = counts.sum(0)
        w = [0.0 if int(n) == 0 else 1.0 / int(n) for n in batch]
        w[int(batch.argmax())] = 0.0
    else:
        w = [float(x) for x in weights.cpu()]
    index = torch.full((B,), -1, dtype=torch.long)
    uniforms = uniforms.cpu().double()
    for b in range(B):
        if active is not None and not bool(active[b]):
            continue
        present = [k for k in range(len(w)) if counts[b, k] > 0 and w[k] > 0]
        if not present:
            continue
        total = 0.0
        for k in present:
            total += w[k]
        t, acc, slot = float(uniforms[b, 0]) * total, 0.0, present[-1]
        for k in present:
            acc += w[k]
            if t < acc:
                slot = k
                break
        n = int(counts[b, slot])
        r = min(int(float(uniforms[b, 1]) * n), n - 1)
        index[b] = int((flat[b] == int(classes[slot])).nonzero()[r, 0])
    return index, counts


def sparse_masks(B, H, W, dtype=torch.uint8, classes=(1, 2, 3), density=0.01, seed=0, fill_frac=0.02):
    """Background 0 with a sprinkle of rare classes and some 255 (ignore) pixels."""
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(B, H, W, dtype=torch.long)
    r = torch.rand(B, H, W, generator=g)
    for i, c in enumerate(classes):
        m[(r >= i * density) & (r < (i + 1) * density)] = c
    m[r > 1 - fill_frac] = 255
    return m.to(dtype)


# ----------------------------------------------------------------- the kernel
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64, torch.bool])
@pytest.mark.parametrize("mode", ["dict", "rare"])
def test_focus_pixels_matches_reference(device, dtype, mode):
    g = torch.Generator().manual_seed(1)
    B, H, W = 9, 37, 53
    if dtype == torch.bool:
        masks = torch.rand(B, H, W, generator=g) < 0.05
        classes = torch.tensor([0, 1]) if mode == "rare" else torch.tensor([1])
    else:
        masks = sparse_masks(
            B, H, W, dtype, classes=(1, 2, 3, 7), density=0.003 * (1 + torch.rand(1, generator=g).item()), seed=2
        )
        masks[3] = 0  # a sample without any focus class
        classes = torch.tensor([c for c in range(256) if c != 255]) if mode == "rare" else torch.tensor([1, 3, 7, 9])
    weights = None if mode == "rare" else torch.rand(classes.numel(), generator=g, dtype=torch.float64) + 0.1
    uniforms = torch.rand(B, 2, generator=g, dtype=torch.float64)
    uniforms[0] = torch.tensor([0.0, 0.0])
    uniforms[1] = torch.tensor([1.0, 1.0])  # both ends of [0, 1]
    active = torch.rand(B, generator=g) < 0.8
    active[:2] = True
    ref_index, ref_counts = reference_focus(masks, classes, weights, uniforms, active)
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    index, counts = focus_pixels(to(masks), to(classes), to(weights), to(uniforms), to(active))
    assert torch.equal(counts.cpu(), ref_counts)
    assert torch.equal(index.cpu(), ref_index)
    if dtype != torch.bool:
        assert int(index[3]) == -1
    assert (index.cpu()[~active] == -1).all()


def test_focus_pixels_binary_search_classes(device):
    """int64 classes spread wider than the lookup table: the binary-search path."""
    g = torch.Generator().manual_seed(3)
    values = torch.tensor([-(2**40), -5, 0, 3, 10**6, 2**40])
    masks = values[torch.randint(0, values.numel(), (6, 20, 30), generator=g)]
    classes = torch.tensor([-(2**40), 3, 10**6, 2**41])
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    uniforms = torch.rand(6, 2, generator=g, dtype=torch.float64)
    ref = reference_focus(masks, classes, weights, uniforms)
    got = focus_pixels(masks.to(device), classes.to(device), weights.to(device), uniforms.to(device))
    assert torch.equal(got[0].cpu(), ref[0]) and torch.equal(got[1].cpu(), ref[1])


def test_focus_pixels_large_masks_match_reference():
    """Masks of several chunks per sample (the CPU kernel splits samples over threads)."""
    masks = sparse_masks(2, 700, 300, torch.uint8, density=0.0005, seed=4)
    classes = torch.tensor([1, 2, 3])
    u = torch.rand(2, 2, dtype=torch.float64)
    for weights in (None, torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)):
        ref = reference_focus(masks, classes, weights, u)
        got = focus_pixels(masks, classes, weights, u)
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


@pytest.mark.cuda
def test_focus_pixels_cpu_and_cuda_agree():
    masks = sparse_masks(16, 130, 170, torch.uint8, seed=5)
    classes = torch.tensor([c for c in range(255)])
    u = torch.rand(16, 2, dtype=torch.float64)
    cpu = focus_pixels(masks, classes, None, u)
    gpu = focus_pixels(masks.cuda(), classes.cuda(), None, u.cuda())
    assert torch.equal(cpu[0], gpu[0].cpu()) and torch.equal(cpu[1], gpu[1].cpu())


def test_focus_pixels_opcheck():
    masks = sparse_masks(4, 12, 15, torch.uint8, density=0.05, seed=6)
    classes = torch.tensor([1, 2, 3])
    u = torch.rand(4, 2, dtype=torch.float64)
    torch.library.opcheck(
        OP, (masks, classes, torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64), u, torch.tensor([True, False, True, True]))
    )
    torch.library.opcheck(OP, (masks.long(), classes, None, u, None))


def test_focus_pixels_never_modifies_inputs():
    masks = sparse_masks(3, 10, 11, torch.int32, density=0.1, seed=7)
    classes, weights = torch.tensor([1, 2]), torch.tensor([1.0, 3.0], dtype=torch.float64)
    u, active = torch.rand(3, 2, dtype=torch.float64), torch.tensor([True, True, False])
    before = [t.clone() for t in (masks, classes, weights, u, active)]
    focus_pixels(masks, classes, weights, u, active)
    for a, b in zip(before, (masks, classes, weights, u, active)):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (dict(masks=torch.zeros(2, 3, 4, dtype=torch.float32)), TypeError, "masks must be uint8"),
        (dict(masks=torch.zeros(2, 12, dtype=torch.uint8)), ValueError, r"masks must have shape \(B, H, W\)"),
        (dict(classes=torch.tensor([3, 1])), ValueError, "sorted and distinct, got 3 before 1"),
        (dict(classes=torch.tensor([1, 1])), ValueError, "sorted and distinct"),
        (dict(classes=torch.tensor([], dtype=torch.long)), ValueError, "K >= 1"),
        (dict(classes=torch.tensor([1.0, 2.0])), TypeError, "classes must be int64"),
        (dict(weights=torch.tensor([1.0, -1.0], dtype=torch.float64)), ValueError, "finite and >= 0"),
        (dict(weights=torch.tensor([1.0, math.nan], dtype=torch.float64)), ValueError, "finite and >= 0"),
        (dict(weights=torch.tensor([1.0], dtype=torch.float64)), ValueError, "weights must have shape"),
        (dict(uniforms=torch.full((2, 2), 1.5, dtype=torch.float64)), ValueError, r"uniforms must lie in \[0, 1\]"),
        (dict(uniforms=torch.full((2, 2), math.nan, dtype=torch.float64)), ValueError, r"uniforms must lie in \[0, 1\]"),
        (dict(uniforms=torch.rand(3, 2, dtype=torch.float64)), ValueError, "uniforms must have shape"),
        (dict(active=torch.ones(2, dtype=torch.long)), TypeError, "active must be bool"),
    ],
)
def test_focus_pixels_bad_input(args, exc, match):
    kw = dict(
        masks=torch.randint(0, 3, (2, 3, 4), dtype=torch.uint8),
        classes=torch.tensor([1, 2]),
        weights=torch.tensor([1.0, 1.0], dtype=torch.float64),
        uniforms=torch.rand(2, 2, dtype=torch.float64),
        active=None,
    )
    kw.update(args)
    with pytest.raises(exc, match=match):
        focus_pixels(kw["masks"], kw["classes"], kw["weights"], kw["uniforms"], kw["active"])


# ----------------------------------------------------------------- BatchAugment
def test_every_crop_contains_a_focus_pixel(device):
    B, H, W = 24, 64, 96
    masks = torch.zeros(B, H, W, dtype=torch.uint8)
    g = torch.Generator().manual_seed(8)
    for b in range(B):  # 1 to 3 isolated pixels of class 5 or 9 per sample
        for _ in range(1 + b % 3):
            masks[b, torch.randint(0, H, (1,), generator=g), torch.randint(0, W, (1,), generator=g)] = 5 if b % 2 else 9
    images = torch.randint(0, 256, (B, 3, H, W), dtype=torch.uint8)
    # a fixed 32 x 32 box, no resize: every box pixel reaches the output
    aug = bt.augment.BatchAugment(
        hflip=0.5,
        vflip=0.5,
        crop=32,
        crop_scale=(32 * 32 / (H * W),) * 2,
        crop_ratio=(1.0, 1.0),
        brightness=0.3,
        crop_focus={5: 1.0, 9: 1.0},
        crop_focus_p=1.0,
    )
    gen = torch.Generator(device=device).manual_seed(0)
    x, m = aug(images.to(device), masks=masks.to(device), generator=gen)
    assert x.shape == (B, 3, 32, 32) and m.shape == (B, 32, 32)
    hit = ((m == 5) | (m == 9)).flatten(1).any(1)
    assert bool(hit.all()), hit
    # the same without crop_focus misses most of them
    plain = bt.augment.BatchAugment(
        hflip=0.5, vflip=0.5, crop=32, crop_scale=(32 * 32 / (H * W),) * 2, crop_ratio=(1.0, 1.0), brightness=0.3
    )
    _, m0 = plain(images.to(device), masks=masks.to(device), generator=torch.Generator(device=device).manual_seed(0))
    assert int(((m0 == 5) | (m0 == 9)).flatten(1).any(1).sum()) < B // 2


def test_chosen_pixel_is_uniform_chi_square(stats):
    """7 focus pixels in one mask; which one a crop is centred on is uniform (chi-square), and it is the box's centre pixel."""
    H, W = 40, 50
    mask = torch.zeros(H, W, dtype=torch.uint8)
    pixels = [(20, 25), (20, 26), (21, 25), (5, 40), (30, 10), (35, 45), (12, 12)]
    for r, c in pixels:
        mask[r, c] = 3
    mask[0, :] = 1  # another class, not a focus class
    B = 500
    masks = mask.expand(B, H, W).contiguous()
    images = torch.zeros(B, 3, H, W, dtype=torch.uint8)
    aug = bt.augment.BatchAugment(
        crop=(9, 11), crop_scale=(99 / (H * W),) * 2, crop_ratio=(11 / 9, 11 / 9), crop_focus={3: 1.0}, crop_focus_p=1.0
    )
    gen = torch.Generator().manual_seed(1)
    seen = {p: 0 for p in pixels}
    for _ in range(4):
        params = aug.sample_params(images, generator=gen, masks=masks)
        focus, boxes = params["focus"], params["crop"]
        assert (boxes[:, 2:] == torch.tensor([9.0, 11.0])).all()
        for (r, c), (top, left, _h, _w) in zip(focus.tolist(), boxes.tolist()):
            seen[(r, c)] += 1
            # centre pixel of the box, clamped into the image
            assert top == min(max(r - 4, 0), H - 9) and left == min(max(c - 5, 0), W - 11)
    counts = list(seen.values())
    assert sum(counts) == 4 * B
    assert stats.chisquare(counts).pvalue > 1e-3, counts


def test_dict_weights_chi_square(stats):
    """Classes present in the sample are drawn in proportion to their weights; absent ones never."""
    H, W = 30, 30
    mask = torch.zeros(H, W, dtype=torch.uint8)
    mask[0:2, :] = 1  # 60 pixels
    mask[10, 3] = 2  # 1 pixel
    mask[20:25, 5:10] = 3  # 25 pixels
    B = 2000
    masks = mask.expand(B, H, W).contiguous()
    aug = bt.augment.BatchAugment(crop=8, crop_focus={1: 1.0, 2: 2.0, 3: 5.0, 4: 10.0}, crop_focus_p=1.0)
    focus = aug.sample_params(torch.zeros(B, 1, H, W), generator=torch.Generator().manual_seed(2), masks=masks)["focus"]
    chosen = mask[focus[:, 0], focus[:, 1]]
    observed = [int((chosen == c).sum()) for c in (1, 2, 3)]
    assert sum(observed) == B
    expected = [B * w / 8 for w in (1.0, 2.0, 5.0)]
    assert stats.chisquare(observed, expected).pvalue > 1e-3, observed


def test_rare_weights_inverse_batch_frequency(stats):
    """ "rare": weight 1 / (pixels of the class in the batch), the most frequent class and the fill label never chosen."""
    H, W = 20, 20
    base = torch.zeros(H, W, dtype=torch.uint8)
    base[0, 0:4] = 1  # 4 pixels of class 1 per sample
    base[5, 0:2] = 2  # 2 pixels of class 2 per sample
    base[9, :] = 255  # fill / ignore label
    B = 1500
    masks = base.expand(B, H, W).clone()
    masks[:500, 15, 0:6] = 2  # the first 500 samples hold 8 pixels of class 2 ...
    masks[500:, 5, 0:2] = 0  # ... the others none: class 2 = 8 * 500 = 4000 pixels, class 1 = 4 * 1500 = 6000
    aug = bt.augment.BatchAugment(crop=6, crop_focus="rare", crop_focus_p=1.0)
    focus = aug.sample_params(torch.zeros(B, 1, H, W), generator=torch.Generator().manual_seed(3), masks=masks)["focus"]
    chosen = masks[torch.arange(B), focus[:, 0], focus[:, 1]]
    assert not bool((chosen == 0).any()) and not bool((chosen == 255).any())  # background (most frequent), fill
    assert bool((chosen[500:] == 1).all())  # the only focus class present there
    n1, n2 = 6000.0, 4000.0
    p1 = (1 / n1) / (1 / n1 + 1 / n2)  # 0.4 in the samples holding both
    observed = [int((chosen[:500] == 1).sum()), int((chosen[:500] == 2).sum())]
    assert stats.chisquare(observed, [500 * p1, 500 * (1 - p1)]).pvalue > 1e-3, observed


def test_no_focus_pixel_falls_back_and_other_parameters_stay_as_drawn():
    B, H, W = 16, 48, 64
    masks = sparse_masks(B, H, W, density=0.002, seed=9)
    masks[::2] = 0  # half the samples without a focus class
    images = torch.randint(0, 256, (B, 3, H, W), dtype=torch.uint8)
    kw = dict(hflip=0.5, rotation=10, crop=24, brightness=0.2, p=0.9)
    focused = bt.augment.BatchAugment(**kw, crop_focus={1: 1.0, 2: 1.0, 3: 1.0}, crop_focus_p=1.0)
    plain = bt.augment.BatchAugment(**kw)
    a = focused.sample_params(images, generator=torch.Generator().manual_seed(4), masks=masks)
    b = plain.sample_params(images, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a["theta"], b["theta"]) and torch.equal(a["color"], b["color"]) and torch.equal(a["applied"], b["applied"])
    assert torch.equal(a["crop"][:, 2:], b["crop"][:, 2:])  # box sizes as drawn
    none = a["focus"][:, 0] < 0
    assert bool(none[::2].all())
    assert bool(none[~a["applied"]].all())  # samples that are not augmented are never focused
    assert torch.equal(a["crop"][none], b["crop"][none])  # the usual random crop
    assert not bool(none[1::2][a["applied"][1::2]].any())


def test_crop_focus_p_fraction():
    B, H, W = 4000, 16, 16
    masks = torch.zeros(B, H, W, dtype=torch.uint8)
    masks[:, 3, 4] = 7
    aug = bt.augment.BatchAugment(crop=4, crop_focus={7: 1.0}, crop_focus_p=0.33)
    focus = aug.sample_params(torch.zeros(B, 1, H, W), generator=torch.Generator().manual_seed(5), masks=masks)["focus"]
    k = int((focus[:, 0] >= 0).sum())
    assert abs(k - 0.33 * B) < 4 * math.sqrt(B * 0.33 * 0.67), k
    assert bool((focus[focus[:, 0] >= 0] == torch.tensor([3, 4])).all())


def test_deterministic_given_generator(device):
    B, H, W = 8, 40, 40
    masks = sparse_masks(B, H, W, seed=10).to(device)
    images = torch.randint(0, 256, (B, 3, H, W), dtype=torch.uint8, device=device)
    aug = bt.augment.BatchAugment(hflip=0.5, crop=16, crop_focus="rare", crop_focus_p=0.5)
    run = lambda s: aug(images, masks=masks, generator=torch.Generator(device=device).manual_seed(s))  # noqa: E731
    (x1, m1), (x2, m2), (_, m3) = run(0), run(0), run(1)
    assert torch.equal(x1, x2) and torch.equal(m1, m2)
    assert not torch.equal(m1, m3)


def test_same_on_batch_shares_draws_but_uses_each_mask():
    B, H, W = 6, 40, 40
    one = sparse_masks(1, H, W, density=0.003, seed=11)
    images = torch.randint(0, 256, (1, 3, H, W), dtype=torch.uint8).expand(B, 3, H, W).contiguous()
    aug = bt.augment.BatchAugment(
        crop=12,
        crop_scale=(0.09, 0.09),
        crop_ratio=(1.0, 1.0),
        same_on_batch=True,
        crop_focus={1: 1.0, 2: 1.0, 3: 1.0},
        crop_focus_p=1.0,
    )
    x, m = aug(images, masks=one.expand(B, H, W).contiguous(), generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(x[0], x[i]) and torch.equal(m[0], m[i]) for i in range(B))  # identical masks: identical crops
    masks = sparse_masks(B, H, W, density=0.003, seed=12)
    params = aug.sample_params(images, generator=torch.Generator().manual_seed(6), masks=masks)
    focus = params["focus"]
    assert bool((focus >= 0).all())
    assert len({tuple(f) for f in focus.tolist()}) > 1  # each sample's own pixel
    assert bool((masks[torch.arange(B), focus[:, 0], focus[:, 1]] > 0).all())
    assert bool((params["crop"][:, 2:] == params["crop"][0, 2:]).all())  # one box size for the batch


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_images_and_masks_get_the_same_crop(device, dtype):
    """An image that holds the mask's labels as its grey value comes out equal to the warped mask."""
    B, H, W = 10, 50, 70
    masks = sparse_masks(B, H, W, density=0.004, seed=13, fill_frac=0.0)
    masks[masks == 0] = torch.randint(10, 20, (int((masks == 0).sum()),), dtype=torch.uint8)  # texture
    images = masks.unsqueeze(1)
    images = images if dtype == torch.uint8 else images.float() / 255
    aug = bt.augment.BatchAugment(
        hflip=0.5,
        crop=(20, 30),
        crop_scale=(0.1, 0.4),
        interpolation="nearest",
        crop_focus={1: 1.0, 2: 1.0, 3: 1.0},
        crop_focus_p=0.7,
    )
    x, m = aug(images.to(device), masks=masks.to(device), generator=torch.Generator(device=device).manual_seed(7))
    assert torch.equal((x[:, 0] * 255).round().to(torch.uint8), m)


def test_translation_mode_centres_the_pixel(device):
    """No crop: the focused pixel lands on the output's centre pixel, also under rotation and zoom."""
    B, H, W = 32, 41, 60
    masks = sparse_masks(B, H, W, density=0.001, seed=14, fill_frac=0.0)
    masks[:, 0, 0] = 1  # at least one focus pixel everywhere, in a corner
    images = (masks.unsqueeze(1).float() / 255).to(device)
    aug = bt.augment.BatchAugment(
        hflip=0.5, rotation=40, scale=(0.8, 1.5), interpolation="nearest", crop_focus={1: 1.0, 2: 1.0, 3: 1.0}, crop_focus_p=1.0
    )
    gen = torch.Generator(device=device).manual_seed(8)
    params = aug.sample_params(images, generator=torch.Generator(device=device).manual_seed(8), masks=masks.to(device))
    x, m = aug(images, masks=masks.to(device), generator=gen)
    focus = params["focus"].cpu()
    assert bool((focus >= 0).all())
    centre = m[:, H // 2, W // 2].cpu()
    assert torch.equal(centre, masks[torch.arange(B), focus[:, 0], focus[:, 1]])
    assert bool(((centre >= 1) & (centre <= 3)).all())
    assert bool((m == 255).any())  # the translation pads with the mask fill
    inside = m != 255
    assert torch.equal((x[:, 0] * 255).round().to(torch.uint8)[inside], m[inside])


def test_class_p_samples_not_augmented_are_not_focused():
    B, H, W = 200, 20, 20
    masks = torch.zeros(B, H, W, dtype=torch.uint8)
    masks[:, 10, 10] = 4
    labels = torch.arange(B) % 2
    aug = bt.augment.BatchAugment(crop=8, class_p={0: 0.0, 1: 1.0}, crop_focus={4: 1.0}, crop_focus_p=1.0)
    params = aug.sample_params(torch.zeros(B, 1, H, W), labels=labels, generator=torch.Generator().manual_seed(9), masks=masks)
    assert bool((params["focus"][labels == 0] == -1).all())
    assert bool((params["focus"][labels == 1] == torch.tensor([10, 10])).all())


def test_masks_4d_and_int64_and_bool():
    B, H, W = 5, 30, 30
    masks = sparse_masks(B, H, W, torch.int64, density=0.01, seed=15, fill_frac=0.0)
    masks[:, 29, 29] = 3
    aug = bt.augment.BatchAugment(
        crop=10, crop_scale=(100 / 900,) * 2, crop_ratio=(1.0, 1.0), crop_focus={3: 1.0}, crop_focus_p=1.0, mask_fill=-100
    )
    x, m = aug(torch.rand(B, 3, H, W), masks=masks.unsqueeze(1), generator=torch.Generator().manual_seed(10))
    assert m.shape == (B, 1, 10, 10) and bool((m == 3).flatten(1).any(1).all())
    b = torch.zeros(B, H, W, dtype=torch.bool)
    b[:, 7, 3] = True
    f = bt.augment.BatchAugment(crop=10, crop_focus="rare", crop_focus_p=1.0).sample_params(torch.rand(B, 3, H, W), masks=b)[
        "focus"
    ]
    assert bool((f == torch.tensor([7, 3])).all())  # True is the rare label, False the most frequent
    f = bt.augment.BatchAugment(crop=10, crop_focus={0: 1.0}, crop_focus_p=1.0).sample_params(torch.rand(B, 3, H, W), masks=b)[
        "focus"
    ]
    assert bool((b[torch.arange(B), f[:, 0], f[:, 1]] == 0).all())  # False is a class of bool masks


def test_repr_shows_crop_focus():
    r = repr(bt.augment.BatchAugment(crop=8, crop_focus={2: 1.0, 1: 3}, crop_focus_p=0.5))
    assert "crop_focus={1: 3.0, 2: 1.0}" in r and "crop_focus_p=0.5" in r
    assert "crop_focus" not in repr(bt.augment.BatchAugment(crop=8))


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(crop_focus="common"), "crop_focus must be None, 'rare' or a dict"),
        (dict(crop_focus=[1, 2]), r"crop_focus must be None, 'rare' or a dict.*\[1, 2\]"),
        (dict(crop_focus={}), "crop_focus must name at least one class"),
        (dict(crop_focus={-1: 1.0}), r"crop_focus key must be an int >= 0, got -1"),
        (dict(crop_focus={1: -1.0}), r"crop_focus\[1\] must be a finite number >= 0, got -1.0"),
        (dict(crop_focus={1: math.nan}), r"crop_focus\[1\] must be a finite number >= 0, got nan"),
        (dict(crop_focus={1: 0.0}), "at least one class of positive weight"),
        (dict(crop_focus={1: 1.0}, crop_focus_p=1.5), r"crop_focus_p must be a number in \[0, 1\], got 1.5"),
        (dict(crop_focus={1: 1.0}, crop_focus_p=-0.1), "crop_focus_p"),
    ],
)
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        bt.augment.BatchAugment(crop=8, **kw)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(crop_focus={True: 1.0}), "crop_focus key must be an int >= 0, got True"),
        (dict(crop_focus={1.5: 1.0}), "crop_focus key must be an int >= 0, got 1.5"),
        (dict(crop_focus={1: "1"}), r"crop_focus\[1\] must be a finite number >= 0, got '1'"),
        (dict(crop_focus={1: 1.0}, crop_focus_p="a"), "crop_focus_p must be a number in"),
    ],
)
def test_arguments_of_the_wrong_type(kw, match):
    with pytest.raises(TypeError, match=match):
        bt.augment.BatchAugment(crop=8, **kw)


def test_bad_call():
    images = torch.rand(2, 3, 20, 20)
    aug = bt.augment.BatchAugment(crop=8, crop_focus={300: 1.0})
    with pytest.raises(ValueError, match="crop_focus needs the batch's masks"):
        aug(images)
    with pytest.raises(ValueError, match=r"crop_focus class 300 does not exist in masks of dtype torch.uint8"):
        aug(images, masks=torch.zeros(2, 20, 20, dtype=torch.uint8))
    aug(images, masks=torch.zeros(2, 20, 20, dtype=torch.int32))  # fine for int32
    with pytest.raises(ValueError, match="crop_focus class 255 is the masks' fill"):
        bt.augment.BatchAugment(crop=8, crop_focus={255: 1.0})(images, masks=torch.zeros(2, 20, 20, dtype=torch.uint8))
    with pytest.raises(ValueError, match="crop_focus class 2 does not exist in masks of dtype torch.bool"):
        bt.augment.BatchAugment(crop=8, crop_focus={2: 1.0})(images, masks=torch.zeros(2, 20, 20, dtype=torch.bool))
    with pytest.raises(ValueError, match="masks must have shape"):
        aug(images, masks=torch.zeros(2, 20, 21, dtype=torch.int32))
    with pytest.raises(ValueError, match="masks must be uint8, int32, int64 or bool"):
        aug(images, masks=torch.zeros(2, 20, 20, dtype=torch.float32))
    masks = torch.zeros(2, 20, 20, dtype=torch.int32)
    masks[:, 3, 3] = 300
    before = masks.clone()
    aug(images, masks=masks)
    assert torch.equal(masks, before)


@pytest.mark.parametrize("kw", [dict(crop=8, crop_focus={1: 1.0}), dict(crop=8), dict(hflip=0.5)])
def test_masks_on_another_device_are_refused_naming_both(kw):
    images = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    masks = torch.zeros(2, 16, 16, dtype=torch.long, device="meta")
    with pytest.raises(ValueError, match="BatchAugment: masks is on meta but the images are on cpu"):
        bt.augment.BatchAugment(**kw)(images, masks=masks)
    if "crop_focus" in kw:  # sample_params reads the masks too
        with pytest.raises(ValueError, match="masks is on meta but the images are on cpu"):
            bt.augment.BatchAugment(**kw).sample_params(images, masks=masks)
    with pytest.raises(ValueError, match="BatchAugment: labels is on meta but the images are on cpu"):
        bt.augment.BatchAugment(class_p={0: 1.0})(images, labels=torch.zeros(2, dtype=torch.long, device="meta"))
    from balancedtorch.augment.functional import affine_color

    with pytest.raises(ValueError, match="masks is on meta but the images are on cpu"):
        affine_color(images, torch.eye(2, 3).expand(2, 2, 3), masks=masks)


@pytest.mark.cuda
def test_masks_on_the_cpu_with_cuda_images_are_refused():
    images = torch.zeros(2, 3, 16, 16, dtype=torch.uint8, device="cuda")
    with pytest.raises(ValueError, match="BatchAugment: masks is on cpu but the images are on cuda:0"):
        bt.augment.BatchAugment(crop=8, crop_focus={1: 1.0})(images, masks=torch.zeros(2, 16, 16, dtype=torch.long))


def test_crop_focus_p_zero_is_the_plain_augmentation():
    B, H, W = 6, 30, 40
    masks = sparse_masks(B, H, W, density=0.01, seed=16)
    images = torch.randint(0, 256, (B, 3, H, W), dtype=torch.uint8)
    kw = dict(hflip=0.5, crop=12, brightness=0.2)
    x0, m0 = bt.augment.BatchAugment(**kw, crop_focus="rare", crop_focus_p=0.0)(
        images, masks=masks, generator=torch.Generator().manual_seed(11)
    )
    x1, m1 = bt.augment.BatchAugment(**kw)(images, masks=masks, generator=torch.Generator().manual_seed(11))
    assert torch.equal(x0, x1) and torch.equal(m0, m1)


# ----------------------------------------------------------------- resized crops: the pixel on a sampling point
def _reads(size, out):
    """Box pixels a box of `size` resized to `out` reads (torch's nearest, float32, as the kernels)."""
    u = torch.arange(out, dtype=torch.float32)
    step = torch.tensor(float(size), dtype=torch.float32) / float(out)
    return set(torch.minimum(torch.floor(u * step), torch.tensor(float(size - 1))).long().tolist())


def _objects(B, H, W, margin, seed, cls=7):
    """One 2 x 3 object (6 pixels) of class `cls` per image, at least `margin` pixels from the bottom/right edges."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(B, H, W, dtype=torch.uint8)
    for b in range(B):
        r = int(torch.randint(0, H - 2 - margin + 1, (1,), generator=g))
        c = int(torch.randint(0, W - 3 - margin + 1, (1,), generator=g))
        masks[b, r : r + 2, c : c + 3] = cls
    return masks


@pytest.mark.parametrize("out", [23, 24, 25, 32, 9])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("flips", [False, True])
def test_resized_down_crops_always_hold_the_focus_class(device, out, interpolation, flips):
    """6-pixel objects, crops of 5-50% of a 96 x 96 image resized to a smaller output (the 800:1 trial): with
    crop_focus_p=1 every crop holds the class, for odd and even output sizes and either interpolation. (A box at
    most 78 pixels wide can always be moved so that a pixel away from the bottom/right edges is read.)"""
    B, H, W = 96, 96, 96
    margin = math.ceil(H / out)  # torch's nearest resize never reads the last ceil(box / out) - 1 rows/columns
    masks = _objects(B, H, W, margin, seed=out)
    images = torch.randint(0, 256, (B, 3, H, W), dtype=torch.uint8)
    aug = bt.augment.BatchAugment(
        hflip=0.5 if flips else 0.0,
        vflip=0.5 if flips else 0.0,
        crop=out,
        crop_scale=(0.05, 0.5),
        interpolation=interpolation,
        crop_focus={7: 1.0},
        crop_focus_p=1.0,
    )
    params = aug.sample_params(images, generator=torch.Generator(device=device).manual_seed(3), masks=masks.to(device))
    x, m = aug(images.to(device), masks=masks.to(device), generator=torch.Generator(device=device).manual_seed(3))
    assert m.shape == (B, out, out)
    assert bool((m == 7).flatten(1).any(1).all())
    # the focused pixel itself is read, and at an output pixel next to the centre when the box is not clamped
    boxes, focus = params["crop"].cpu().long(), params["focus"].cpu()
    old_misses = 0
    for b in range(B):
        top, left, h, w = boxes[b].tolist()
        row, col = focus[b].tolist()
        assert row - top in _reads(h, out) and col - left in _reads(w, out)
        # the former placement (box centred on the pixel, clamped) missed some of these
        ctop = min(max(row - h // 2, 0), H - h)
        cleft = min(max(col - w // 2, 0), W - w)
        old_misses += not (row - ctop in _reads(h, out) and col - cleft in _reads(w, out))
    assert old_misses > 0


def test_focus_placement_is_the_best_possible(device):
    """Whenever some position of the drawn box inside the image reads the pixel, the chosen one does, at the drawn
    size; of those, the one whose output pixel is nearest the centre. Otherwise (pixels at the bottom/right edges,
    boxes nearly as large as the image) the box is made smaller, as little as the candidates allow, and reads it."""
    from balancedtorch.augment.batch import _focus_start

    g = torch.Generator().manual_seed(0)
    full, out = 50, 12
    shrunk = 0
    for _ in range(20):
        size = torch.randint(1, full + 1, (64,), generator=g).double()
        pos = torch.floor(torch.rand(64, generator=g, dtype=torch.float64) * full)
        start, new = _focus_start(pos.to(device), size.to(device), out, full)
        for p, s, st, n in zip(pos.long().tolist(), size.long().tolist(), start.cpu().long().tolist(), new.cpu().long().tolist()):
            assert 1 <= n <= s and 0 <= st <= full - n
            assert p - st in _reads(n, out)  # always read
            reads = sorted(_reads(s, out))
            u_of = {
                x: u
                for u in reversed(range(out))
                for x in [
                    min(
                        math.floor(
                            float(torch.tensor(u, dtype=torch.float32) * (torch.tensor(float(s), dtype=torch.float32) / out))
                        ),
                        s - 1,
                    )
                ]
            }
            possible = [p - x for x in reads if 0 <= p - x <= full - s]
            if possible:
                assert n == s and p - st in u_of
                best = min(abs(u_of[p - q] - out // 2) for q in possible)
                assert abs(u_of[p - st] - out // 2) == best
            else:  # unreadable at the drawn size: smaller, but never below what reads the pixel for sure
                shrunk += 1
                assert n < s and n >= min(s, out)
    assert shrunk > 0


def test_focus_start_exhaustive():
    """Every pixel position and every box size, for odd and even image and output sizes: the box stays inside the
    image, is never larger than drawn, and its resize (float32, as the kernels) reads the pixel."""
    from balancedtorch.augment.batch import _focus_start

    for full in (1, 2, 7, 24, 25, 97):
        for out in (1, 2, 3, 8, 23, 24, 25, 200):
            P, S = torch.meshgrid(torch.arange(full), torch.arange(1, full + 1), indexing="ij")
            pos, size = P.reshape(-1).double(), S.reshape(-1).double()
            start, new = _focus_start(pos, size, out, full)
            assert bool(((new >= 1) & (new <= size) & (start >= 0) & (start <= full - new)).all())
            u = torch.arange(out, dtype=torch.float32)
            reads = torch.minimum(torch.floor(u.view(1, -1) * (new.float() / out).view(-1, 1)), (new.float() - 1).view(-1, 1))
            assert bool((reads.double() == (pos - start).view(-1, 1)).any(1).all()), (full, out)
            assert bool((new == size)[size <= out].all())  # boxes not shrunk by the resize are never made smaller


def _edge_objects(H, W, oh, ow):
    """One object of oh x ow pixels (class 7) per image, touching each edge and corner, and one in the middle."""
    spots = [
        (0, 0),
        (0, (W - ow) // 2),
        (0, W - ow),
        ((H - oh) // 2, 0),
        ((H - oh) // 2, W - ow),
        (H - oh, 0),
        (H - oh, (W - ow) // 2),
        (H - oh, W - ow),
        ((H - oh) // 2, (W - ow) // 2),
    ]
    masks = torch.zeros(len(spots), H, W, dtype=torch.uint8)
    for b, (r, c) in enumerate(spots):
        masks[b, r : r + oh, c : c + ow] = 7
    return masks


@pytest.mark.parametrize("obj", [(1, 1), (2, 3)])
@pytest.mark.parametrize("image, out", [((96, 96), 24), ((97, 95), 23), ((64, 81), (9, 10)), ((40, 41), 64)])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_focused_crops_hold_objects_on_every_edge_and_corner(device, obj, image, out, interpolation):
    """crop_focus_p=1 with crops resized down (and up): objects of 1 and 6 pixels touching every edge and corner
    are in every output mask, odd and even sizes, either interpolation, with flips."""
    (H, W), reps = image, 48
    masks = _edge_objects(H, W, *obj).repeat(reps, 1, 1)
    B = masks.shape[0]
    images = torch.randint(0, 256, (B, 3, H, W), dtype=torch.uint8)
    for scale in ((0.05, 0.5), (0.6, 1.0)):
        aug = bt.augment.BatchAugment(
            hflip=0.5,
            vflip=0.5,
            crop=out,
            crop_scale=scale,
            crop_ratio=(0.5, 2.0),
            interpolation=interpolation,
            crop_focus={7: 1.0},
            crop_focus_p=1.0,
        )
        _, m = aug(images.to(device), masks=masks.to(device), generator=torch.Generator(device=device).manual_seed(H + W))
        held = (m == 7).flatten(1).any(1).cpu()
        assert bool(held.all()), f"{int((~held).sum())} of {B} focused crops miss the class"


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [(40, 61), (41, 60)])
def test_no_crop_rotation_and_zoom_keep_the_focus_pixel(device, interpolation, size):
    """Without a crop the translation puts the pixel on the output's centre pixel, whatever the rotation and zoom."""
    B, (H, W) = 32, size
    masks = _objects(B, H, W, 0, seed=H)
    images = torch.randint(0, 256, (B, 3, H, W), dtype=torch.uint8)
    aug = bt.augment.BatchAugment(
        hflip=0.5, rotation=45, scale=(0.3, 2.0), shear=10, interpolation=interpolation, crop_focus={7: 1.0}, crop_focus_p=1.0
    )
    _, m = aug(images.to(device), masks=masks.to(device), generator=torch.Generator(device=device).manual_seed(1))
    assert bool((m[:, H // 2, W // 2] == 7).all())
