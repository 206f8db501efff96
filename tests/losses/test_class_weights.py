"""bt.class_weights: every scheme against its formula, sklearn, and bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

import balancedtorch as bt


def formula(counts, scheme, beta=0.999):
    """Raw weights straight from the published formulas, in numpy float64."""
    n = np.asarray(counts, dtype=np.float64)
    freq = n / n.sum()
    if scheme == "inverse":
        return 1.0 / freq
    if scheme == "sqrt_inverse":
        return np.sqrt(1.0 / freq)
    if scheme == "effective_number":  # Cui et al. 2019: (1 - beta) / (1 - beta^n)
        return (1.0 - beta) / (1.0 - np.power(beta, n))
    if scheme == "median_frequency":  # Eigen & Fergus 2015
        return np.median(freq) / freq
    raise AssertionError(scheme)


def random_counts(num_classes):
    return (np.random.pareto(1.2, size=num_classes) * 50).astype(np.int64) + 1


def test_playbook_traffic_lights():
    w = bt.class_weights(counts=[56, 3, 41], normalize=None)
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, torch.tensor([100 / 56, 100 / 3, 100 / 41]))
    assert [round(x, 1) for x in w.tolist()] == [1.8, 33.3, 2.4]


@pytest.mark.parametrize("scheme", bt.weights.SCHEMES)
@pytest.mark.parametrize("num_classes", [1, 2, 3, 10, 101])
@pytest.mark.parametrize("normalize", bt.weights.NORMALIZATIONS)
def test_schemes_match_formulas(scheme, num_classes, normalize):
    counts = random_counts(num_classes)
    raw = formula(counts, scheme)
    expected = {"mean": raw * num_classes / raw.sum(), "sum": raw / raw.sum(), None: raw}[normalize]
    got = bt.class_weights(counts=counts, scheme=scheme, normalize=normalize, dtype=torch.float64)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    if normalize == "mean":
        assert got.mean().item() == pytest.approx(1.0)
    if normalize == "sum":
        assert got.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.99, 0.9999, 1 - 1e-9])
def test_effective_number_betas(beta):
    counts = random_counts(12) * 1000
    got = bt.class_weights(counts=counts, scheme="effective_number", beta=beta, normalize=None, dtype=torch.float64)
    n = counts.astype(np.float64)
    expected = (1 - beta) / -np.expm1(n * np.log(beta)) if beta > 0 else np.ones_like(n)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)
    if beta == 0.0:
        assert torch.equal(got, torch.ones(12, dtype=torch.float64))


def test_effective_number_tends_to_inverse_counts():
    counts = np.array([5000, 120, 37, 9])
    w = bt.class_weights(counts=counts, scheme="effective_number", beta=1 - 1e-12, normalize="sum", dtype=torch.float64)
    inv = (1 / counts) / (1 / counts).sum()
    np.testing.assert_allclose(w.numpy(), inv, rtol=1e-6)


def test_median_frequency_even_and_odd():
    # Odd: the middle frequency gets weight 1. Even: the mean of the two middle ones.
    w = bt.class_weights(counts=[56, 3, 41], scheme="median_frequency", normalize=None)
    torch.testing.assert_close(w, torch.tensor([0.41 / 0.56, 0.41 / 0.03, 1.0]))
    w = bt.class_weights(counts=[10, 20, 30, 40], scheme="median_frequency", normalize=None)
    torch.testing.assert_close(w, torch.tensor([2.5, 1.25, 2.5 / 3, 0.625]))


def test_inverse_matches_sklearn_balanced():
    labels = np.random.choice(7, size=5000, p=np.array([40, 20, 15, 10, 8, 5, 2]) / 100)
    sk = compute_class_weight("balanced", classes=np.arange(7), y=labels)
    ours = bt.class_weights(labels=labels, normalize=None, dtype=torch.float64).numpy()
    np.testing.assert_allclose(ours / 7, sk, rtol=1e-12)  # sklearn: N / (C * n_c)


@pytest.mark.parametrize("kind", ["tensor", "numpy", "list", "int32", "uint8", "uint16"])
def test_labels_and_counts_agree(kind, device):
    labels = torch.multinomial(torch.tensor([0.5, 0.1, 0.3, 0.05, 0.05]), 3000, replacement=True)
    if kind == "tensor":
        given = labels.to(device)
    elif kind == "numpy":
        given = labels.numpy()
    elif kind == "list":
        given = labels.tolist()
    else:
        given = labels.numpy().astype(kind)
    counts = torch.bincount(labels, minlength=5)
    for scheme in bt.weights.SCHEMES:
        from_labels = bt.class_weights(labels=given, scheme=scheme)
        from_counts = bt.class_weights(counts=counts, scheme=scheme)
        torch.testing.assert_close(from_labels.cpu(), from_counts)
    if kind == "tensor":
        assert from_labels.device == labels.to(device).device


def test_counts_tensor_keeps_device_and_is_not_modified(device):
    counts = torch.tensor([900.0, 75.5, 24.5], device=device)
    before = counts.clone()
    w = bt.class_weights(counts=counts, scheme="sqrt_inverse")
    assert w.device == counts.device
    assert torch.equal(counts, before)
    expected = formula(before.cpu().numpy(), "sqrt_inverse")
    np.testing.assert_allclose(w.cpu().numpy(), expected * 3 / expected.sum(), rtol=1e-6)


def test_num_classes_and_ignore_index():
    labels = torch.tensor([0, 1, 1, 255, 2, 2, 2, 255])
    w = bt.class_weights(labels=labels, ignore_index=255, normalize=None)
    torch.testing.assert_close(w, torch.tensor([6 / 1, 6 / 2, 6 / 3]))
    with pytest.raises(ValueError, match="class 3 has no samples"):
        bt.class_weights(labels=torch.tensor([0, 1, 2]), num_classes=4)


@pytest.mark.parametrize(
    "kwargs, empty",
    [
        (dict(labels=[1, 3, 3], ignore_index=0), 2),  # the ignored class sits before the empty one
        (dict(labels=[0, 0, 3], ignore_index=1), 2),
        (dict(labels=[1, 1, 3], ignore_index=3), 0),  # ... after it
        (dict(labels=[0, 2, 4], ignore_index=2), 1),
        (dict(masks=torch.tensor([[[1, 3], [3, 1]]]), ignore_index=0, scheme="median_frequency"), 2),
    ],
)
def test_empty_class_is_named_by_its_real_id_around_an_ignored_class(kwargs, empty):
    with pytest.raises(ValueError, match=rf"class {empty} has no (samples|pixels)"):
        bt.class_weights(**kwargs)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes=2\)"):
        bt.class_weights(labels=torch.tensor([0, 1, 2]), num_classes=2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(counts=[5, -1, 3]), r"counts must be finite and >= 0, got counts\[1\] = -1"),
        (dict(counts=[5, float("nan")]), r"counts\[1\] = nan"),
        (dict(counts=[5, float("inf")]), r"counts\[1\] = inf"),
        (dict(counts=[]), "counts is empty"),
        (dict(counts=[0, 0, 0]), "counts sum to zero"),
        (dict(counts=[4, 0, 3]), "class 1 has no samples"),
        (dict(counts=[[1, 2], [3, 4]]), "counts must be 1-D"),
        (dict(counts=["a", "b"]), "counts must be numbers"),
        (dict(labels=[0, -1, 2]), r"labels must lie in \[0, num_classes=3\).*got label -1 at flat index 1"),
        (dict(labels=[0.0, 1.5]), r"labels must hold integer class labels.*labels\[1\] = 1.5"),
        (dict(labels=torch.tensor([True, False])), "labels must hold integers"),
        (dict(labels=[]), "labels must hold integers|labels is empty"),
        (dict(labels=torch.empty(0, dtype=torch.long)), "labels is empty"),
        (dict(labels=torch.eye(3, dtype=torch.long)), "labels looks like one-hot"),
        (dict(labels=[0, 1], num_classes=0), "num_classes must be an int >= 1"),
        (dict(labels=[255, 255], ignore_index=255), "every label equals ignore_index=255"),
        (dict(counts=[1, 2], num_classes=2), "num_classes is only used with labels"),
        (dict(), "exactly one of labels=, counts= or masks="),
        (dict(labels=[0, 1], counts=[1, 1]), "exactly one of labels=, counts= or masks="),
        (dict(counts=[1, 2], scheme="balanced"), "scheme must be one of .* got 'balanced'"),
        (dict(counts=[1, 2], normalize="max"), "normalize must be one of .* got 'max'"),
        (dict(counts=[1, 2], beta=1.0), r"beta must be a number in \[0, 1\), got 1.0"),
        (dict(counts=[1, 2], beta=-0.1), r"beta must be a number in \[0, 1\), got -0.1"),
        (dict(counts=[1, 2], beta=float("nan")), r"beta must be a number in \[0, 1\), got nan"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bt.class_weights(**kwargs)


def test_bad_dtype_raises_type_error():
    with pytest.raises(TypeError, match="dtype must be a floating torch.dtype"):
        bt.class_weights(counts=[1, 2], dtype=torch.int64)


# --- median frequency from masks (SegNet) ------------------------------------------------------------------------


def segnet_frequencies(masks, num_classes, ignore_index=None):
    """Eigen & Fergus 2015 / SegNet, from the definition: f_c = pixels of c / pixels of the images holding c."""
    pixels = np.zeros(num_classes)
    image_pixels = np.zeros(num_classes)
    for m in masks:
        m = np.asarray(m).reshape(-1)
        if ignore_index is not None:
            m = m[m != ignore_index]
        counts = np.bincount(m, minlength=num_classes)[:num_classes]
        pixels += counts
        image_pixels[counts > 0] += m.size
    return pixels, image_pixels


def segnet_median_frequency(masks, num_classes, ignore_index=None):
    pixels, image_pixels = segnet_frequencies(masks, num_classes, ignore_index)
    freq = pixels / image_pixels
    return np.median(freq) / freq


def _random_masks(n, shape, num_classes, seed, ignore=None):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        # each image holds a random subset of the classes, in random proportions (classes absent from most images)
        held = rng.choice(num_classes, size=rng.integers(1, num_classes + 1), replace=False)
        m = rng.choice(held, size=shape, p=rng.dirichlet(np.ones(held.size) * 0.5))
        if ignore is not None:
            m[rng.random(shape) < 0.05] = ignore
        out.append(m.astype(np.int64))
    for c in range(num_classes):  # every class somewhere
        out[c % n].flat[c] = c
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_median_frequency_from_masks_is_segnets(seed, ignore_index):
    masks = _random_masks(12, (9, 7), 6, seed, ignore_index)
    expected = segnet_median_frequency(masks, 6, ignore_index)
    stacked = np.stack(masks)
    forms = {
        "numpy stack": stacked,
        "tensor stack": torch.from_numpy(stacked).to(torch.uint8 if ignore_index else torch.int32),
        "list": masks,
        "generator": (torch.from_numpy(m) for m in masks),
    }
    for name, value in forms.items():
        got = bt.class_weights(
            masks=value, scheme="median_frequency", normalize=None, ignore_index=ignore_index, dtype=torch.float64
        )
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, err_msg=name)
    mean = bt.class_weights(masks=stacked, scheme="median_frequency", ignore_index=ignore_index, dtype=torch.float64)
    np.testing.assert_allclose(mean.numpy(), expected * 6 / expected.sum(), rtol=1e-12)
    # not the inverse frequency: presence matters
    inverse = bt.class_weights(masks=stacked, ignore_index=ignore_index, dtype=torch.float64)
    assert not np.allclose(mean.numpy(), inverse.numpy(), rtol=1e-3)


def test_median_frequency_masks_of_different_sizes_and_a_hand_case():
    # image 0: class 1 in 12 of 36 pixels; image 1: class 2 in 18 of 36; image 2: all class 3;
    # image 3: one class-1 pixel, one ignored, the rest class 0 (35 labelled pixels)
    m = torch.zeros(4, 6, 6, dtype=torch.long)
    m[0, :2] = 1
    m[1, :, :3] = 2
    m[2] = 3
    m[3, 0, 0] = 1
    m[3, 5, 5] = 255
    f = np.array([76 / 107, 13 / 71, 18 / 36, 36 / 36])
    expected = np.median(f) / f
    got = bt.class_weights(masks=m, scheme="median_frequency", normalize=None, ignore_index=255, dtype=torch.float64)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-14)
    sizes = [np.full((3, 5), 0), np.array([[0, 1, 1, 2]]), np.full((2, 2, 2), 2)]
    got = bt.class_weights(masks=sizes, scheme="median_frequency", normalize=None, dtype=torch.float64)
    np.testing.assert_allclose(got.numpy(), segnet_median_frequency(sizes, 3), rtol=1e-14)


def test_median_frequency_from_labels_and_counts_keeps_the_pixel_frequency_form():
    """No images to tell presence: every class present everywhere, f_c = n_c / N, equal to 'inverse' after normalising."""
    counts = [1000, 1, 37, 500]
    a = bt.class_weights(counts=counts, scheme="median_frequency", dtype=torch.float64)
    b = bt.class_weights(counts=counts, scheme="inverse", dtype=torch.float64)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    labels = torch.repeat_interleave(torch.arange(4), torch.tensor(counts))
    torch.testing.assert_close(bt.class_weights(labels=labels, scheme="median_frequency", dtype=torch.float64), a)


def test_median_frequency_from_masks_overflow_fallback_keeps_segnets_frequencies(monkeypatch):
    """Should the raw median-frequency weights overflow float64, the normalised ones are still SegNet's
    (min(freq) / freq normalised), not inverse-frequency weights. Overflow is forced through the median."""
    import balancedtorch.weights as weights

    masks = _random_masks(12, (9, 7), 6, seed=1)
    expected = segnet_median_frequency(masks, 6)
    median = weights._median
    monkeypatch.setattr(weights, "_median", lambda v: median(v) * 1e308 * 1e10)  # inf: every raw weight overflows
    for normalize, scale in (("mean", 6 / expected.sum()), ("sum", 1 / expected.sum())):
        got = bt.class_weights(masks=masks, scheme="median_frequency", normalize=normalize, dtype=torch.float64)
        np.testing.assert_allclose(got.numpy(), expected * scale, rtol=1e-12)
    with pytest.raises(ValueError, match="overflow float64"):
        bt.class_weights(masks=masks, scheme="median_frequency", normalize=None)


def test_masks_other_schemes_count_pixels_and_ignore_a_class():
    masks = _random_masks(5, (4, 4), 4, seed=3, ignore=255)
    stacked = np.stack(masks)
    for scheme in ("inverse", "sqrt_inverse", "effective_number"):
        torch.testing.assert_close(
            bt.class_weights(masks=stacked, scheme=scheme, ignore_index=255),
            bt.class_weights(labels=stacked, scheme=scheme, ignore_index=255),
        )
    # an ignore_index that is a class: weight 0, its pixels left out of the image totals too
    relabelled = [np.where(m == 255, 0, m) for m in masks]
    got = bt.class_weights(masks=relabelled, scheme="median_frequency", ignore_index=0, normalize=None, dtype=torch.float64)
    pixels, image_pixels = segnet_frequencies(relabelled, 4, ignore_index=0)
    freq = pixels[1:] / image_pixels[1:]  # the median over the other classes
    assert got[0].item() == 0.0
    np.testing.assert_allclose(got[1:].numpy(), np.median(freq) / freq, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(masks=torch.zeros(5, dtype=torch.long)), ValueError, r"masks must have shape \(N, d1, ...\)"),
        (dict(masks=5), TypeError, r"masks must be a tensor/array \(N, H, W\) or an iterable of masks, got int"),
        (dict(masks=["abc"]), TypeError, r"masks\[0\] must be a mask"),
        (dict(masks=[]), ValueError, r"masks holds no image"),
        (dict(masks=torch.full((2, 3, 3), 255), ignore_index=255), ValueError, r"no labelled pixel"),
        (dict(masks=torch.tensor([[[0, -2]]])), ValueError, r"masks must hold labels >= 0, got masks\[1\] = -2"),
        (
            dict(masks=[np.array([[0, 1]]), np.array([[7, 1]])], num_classes=3),
            ValueError,
            r"masks\[1\] must hold labels < num_classes=3, got masks\[1\]\[0\] = 7",
        ),
        (
            dict(masks=torch.zeros(2, 3, 3, dtype=torch.long), num_classes=2**40),
            ValueError,
            r"num_classes=1099511627776 but only 18 labels",
        ),
        (dict(masks=torch.tensor([[[0, 1]], [[0, 2**40]]])), ValueError, r"masks\[3\] = 1099511627776 would make"),
        (dict(masks=torch.tensor([[[0, 1]], [[0, 1]]]), num_classes=3), ValueError, r"class 2 has no pixels in masks"),
        (
            dict(masks=torch.zeros(1, 2, 2, dtype=torch.long), labels=[0]),
            ValueError,
            r"exactly one of labels=, counts= or masks=",
        ),
        (
            dict(labels=torch.zeros(10, dtype=torch.long), num_classes=2**40),
            ValueError,
            r"num_classes=1099511627776 but only 10 labels",
        ),
        (
            dict(masks=torch.randint(0, 3, (2, 4, 4)), scheme="median_frequency", ignore_index=2**70),
            ValueError,
            r"class_weights: ignore_index must fit in int64 .* got 1180591620717411303424",
        ),
        (dict(labels=[0, 1, 2], ignore_index=-(2**63) - 1), ValueError, r"ignore_index must fit in int64"),
    ],
)
def test_masks_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        bt.class_weights(**kwargs)


def test_class_weights_ignore_index_inside_classes(device):
    labels = torch.tensor([0, 1, 2, 0, 1, 1, 2, 0, 0], device=device)
    for scheme in ("inverse", "sqrt_inverse", "effective_number", "median_frequency"):
        for normalize in ("mean", "sum", None):
            w = bt.class_weights(labels, scheme=scheme, normalize=normalize, ignore_index=0)
            # class 0's labels are not counted: weight 0, the others as if class 0 did not exist
            rest = bt.class_weights(counts=[3, 2], scheme=scheme, normalize=normalize).to(device)
            assert w[0].item() == 0.0
            torch.testing.assert_close(w[1:], rest)
    # outside the classes: as before
    w = bt.class_weights(labels, ignore_index=255, normalize=None)
    torch.testing.assert_close(w, bt.class_weights(counts=[4, 3, 2], normalize=None).to(device))
    with pytest.raises(ValueError, match="ignore_index=0 is the only class"):
        bt.class_weights(torch.tensor([0, 0]), num_classes=1, ignore_index=0)


def test_class_weights_accepts_masks_of_any_shape(device):
    masks = torch.randint(0, 4, (3, 7, 9), device=device, dtype=torch.uint8)
    masks[0, 0, :4] = 255
    got = bt.class_weights(labels=masks, ignore_index=255, num_classes=4)
    expected = bt.class_weights(counts=bt.ops.class_counts(masks, 4, 255))
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, bt.class_weights(labels=masks.flatten(), ignore_index=255, num_classes=4))
    torch.testing.assert_close(
        bt.class_weights(labels=masks.cpu().numpy()[1:, :2]), bt.class_weights(labels=masks[1:, :2].flatten().cpu())
    )
    # integral floats are labels here too (one rule set)
    torch.testing.assert_close(bt.class_weights(labels=masks[1:].float()), bt.class_weights(labels=masks[1:]))
    with pytest.raises(ValueError, match=r"class_weights: labels looks like one-hot .*argmax\(1\)"):
        bt.class_weights(labels=F.one_hot(torch.randint(0, 3, (20,)), 3))
    with pytest.raises(ValueError, match=r"class_weights: labels must hold integer class labels.*1.5"):
        bt.class_weights(labels=torch.tensor([[0.0, 1.5], [1.0, 2.0]]))
