"""balancedtorch::class_counts against a pure-PyTorch reference (torch.bincount)."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import balancedtorch as bt

INT_DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


def reference_class_counts(labels, num_classes, ignore_index=None):
    flat = labels.flatten().to(torch.int64)
    if ignore_index is not None:
        flat = flat[flat != ignore_index]
    assert bool(((flat >= 0) & (flat < num_classes)).all())
    return torch.bincount(flat, minlength=num_classes)


def random_labels(shape, num_classes, dtype, device, skew=True):
    """Random labels in [0, num_classes), long-tailed when skew (not uniform, never constant)."""
    n = int(torch.Size(shape).numel())
    if skew and num_classes > 1:
        probs = torch.rand(num_classes, dtype=torch.float64) ** 4 + 1e-3
        flat = torch.multinomial(probs, n, replacement=True) if n else torch.empty(0, dtype=torch.long)
    else:
        flat = torch.randint(0, num_classes, (n,))
    return flat.reshape(shape).to(dtype=dtype, device=device)


def max_classes(dtype):
    """The largest label value a dtype holds (capped)."""
    return min(torch.iinfo(dtype).max, 1 << 20)


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 4097, 200_003])
@pytest.mark.parametrize("num_classes", [1, 5, 100, 70_000])
def test_matches_bincount(device, dtype, n, num_classes):
    num_classes = min(num_classes, max_classes(dtype) + 1)
    labels = random_labels((n,), num_classes, dtype, device)
    before = labels.clone()
    out = bt.ops.class_counts(labels, num_classes)
    assert out.dtype == torch.int64 and out.device == labels.device and out.shape == (num_classes,)
    torch.testing.assert_close(out, reference_class_counts(labels, num_classes), rtol=0, atol=0)
    assert torch.equal(labels, before), "class_counts modified its input"


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8])
def test_byte_labels_full_range(device, dtype):
    # Every non-negative value the dtype holds, with more classes than values
    # (uint8 then needs no range check at all).
    hi = max_classes(dtype)
    labels = torch.randint(0, hi + 1, (100_000,)).to(dtype=dtype, device=device)
    out = bt.ops.class_counts(labels, 300)
    torch.testing.assert_close(out, reference_class_counts(labels, 300), rtol=0, atol=0)


def test_many_classes_shared_output_path(device):
    # Above the private-histogram limit the CPU chunks share the output (atomics).
    num_classes = 300_000
    labels = torch.randint(0, num_classes, (1_000_003,), device=device)
    out = bt.ops.class_counts(labels, num_classes)
    torch.testing.assert_close(out, reference_class_counts(labels, num_classes), rtol=0, atol=0)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_agree(threads):
    labels = random_labels((300_001,), 17, torch.int64, "cpu")
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        out = bt.ops.class_counts(labels, 17)
    finally:
        torch.set_num_threads(old)
    torch.testing.assert_close(out, reference_class_counts(labels, 17), rtol=0, atol=0)


def test_segmentation_masks_with_ignore_index(device):
    num_classes = 19
    masks = random_labels((4, 64, 96), num_classes, torch.uint8, device)
    void = torch.rand(masks.shape, device=device) < 0.2
    masks[void] = 255
    out = bt.ops.class_counts(masks, num_classes, ignore_index=255)
    torch.testing.assert_close(out, reference_class_counts(masks, num_classes, 255), rtol=0, atol=0)
    assert int(out.sum()) == int((~void).sum())


def test_negative_ignore_index(device):
    labels = random_labels((5000,), 7, torch.int64, device)
    labels[::3] = -100
    out = bt.ops.class_counts(labels, 7, ignore_index=-100)
    torch.testing.assert_close(out, reference_class_counts(labels, 7, -100), rtol=0, atol=0)


def test_non_contiguous_input(device):
    base = random_labels((300, 400), 9, torch.int32, device)
    for view in (base.t(), base[:, ::3], base[::2].transpose(0, 1)):
        assert not view.is_contiguous()
        torch.testing.assert_close(bt.ops.class_counts(view, 9), reference_class_counts(view, 9), rtol=0, atol=0)


@pytest.mark.parametrize("bad_value", [-1, 5, 6, 127])
@pytest.mark.parametrize("position", [0, 17, 99_999])
def test_out_of_range_label_names_value_and_index(device, bad_value, position):
    labels = random_labels((100_000,), 5, torch.int8, device)
    labels[position] = bad_value
    labels[-1] = bad_value  # a later bad label must not hide the first one
    with pytest.raises(
        ValueError, match=rf"labels must lie in \[0, num_classes=5\).*got label {bad_value} at flat index {position}\b"
    ):
        bt.ops.class_counts(labels, 5)


def test_ignore_index_does_not_hide_other_invalid_labels(device):
    labels = torch.tensor([0, 255, 3, 7, 1], dtype=torch.uint8, device=device)
    with pytest.raises(ValueError, match=r"ignore_index=255.*got label 7 at flat index 3"):
        bt.ops.class_counts(labels, 4, ignore_index=255)


def test_zero_classes(device):
    assert bt.ops.class_counts(torch.empty(0, dtype=torch.long, device=device), 0).shape == (0,)
    with pytest.raises(ValueError, match="num_classes=0"):
        bt.ops.class_counts(torch.tensor([0], device=device), 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool, torch.complex64])
def test_rejects_non_integer_labels(device, dtype):
    labels = torch.ones(4, device=device).to(dtype)
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        bt.ops.class_counts(labels, 3)


def test_rejects_bad_arguments():
    labels = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="num_classes must be >= 0, got -1"):
        bt.ops.class_counts(labels, -1)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        bt.ops.class_counts(labels, 3.0)
    with pytest.raises(TypeError, match="labels must be a torch.Tensor"):
        bt.ops.class_counts([0, 1, 2], 3)
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        bt.ops.class_counts(labels, 3, ignore_index=1.5)
    with pytest.raises(ValueError, match=r"class_counts: ignore_index must fit in int64 .* got 1180591620717411303424"):
        bt.ops.class_counts(labels, 3, ignore_index=2**70)
    with pytest.raises(ValueError, match=r"class_counts: num_classes must fit in int64"):
        bt.ops.class_counts(labels, 2**64)


@pytest.mark.parametrize("ignore_index", [None, 3])
def test_opcheck(device, ignore_index):
    labels = random_labels((1000,), 4, torch.int64, device)
    torch.library.opcheck(torch.ops.balancedtorch.class_counts.default, (labels, 4, ignore_index))


def test_torch_compile_fullgraph(device):
    @torch.compile(fullgraph=True, backend="aot_eager")
    def weights_from(labels):
        counts = bt.ops.class_counts(labels, 6)
        return counts.sum() / counts.clamp_min(1)

    labels = random_labels((2000,), 6, torch.int64, device)
    expected = reference_class_counts(labels, 6)
    torch.testing.assert_close(weights_from(labels), expected.sum() / expected.clamp_min(1))


# -- ignore_index inside [0, C), every dtype and size, unsigned wide dtypes ----------------------------------------


def test_class_counts_ignore_index_inside_classes(device):
    labels = torch.tensor([0, 1, 2, 0], device=device)
    assert bt.ops.class_counts(labels, 3, ignore_index=0).tolist() == [0, 1, 1]
    assert bt.ops.class_counts(labels, 3, ignore_index=2).tolist() == [2, 1, 0]
    # many blocks, every block on the range-checked fast path
    labels = torch.randint(0, 7, (300_000,), device=device)
    for ignore in (0, 3, 6):
        counts = bt.ops.class_counts(labels, 7, ignore_index=ignore)
        assert torch.equal(counts.cpu(), reference_class_counts(labels.cpu(), 7, ignore))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=st.sampled_from(INT_DTYPES),
    # below and around the vector widths (4 to 32 lanes), the 4096-label
    # block and the 2 x 32768-label parallel grain
    n=st.one_of(st.integers(0, 80), st.sampled_from([4095, 4096, 4097, 65535, 65536, 65537, 140_001])),
    num_classes=st.sampled_from([1, 2, 3, 5, 31, 100, 127, 4097, 70_000]),
    ignore=st.one_of(st.none(), st.integers(-130, 130), st.sampled_from([255, -100, 4096, 69_999])),
    ignore_share=st.sampled_from([0.0, 0.01, 0.5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_class_counts_property(device, dtype, n, num_classes, ignore, ignore_share, seed):
    info = torch.iinfo(dtype)
    num_classes = min(num_classes, info.max + 1)
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g, dtype=torch.int64)
    representable = ignore is not None and info.min <= ignore <= info.max
    if representable and n:
        mask = torch.rand(n, generator=g) < ignore_share
        labels[mask] = ignore
    labels = labels.to(dtype).to(device)
    counts = bt.ops.class_counts(labels, num_classes, ignore_index=ignore)
    assert counts.dtype == torch.int64 and counts.shape == (num_classes,)
    assert torch.equal(counts.cpu(), reference_class_counts(labels.cpu(), num_classes, ignore))


def test_class_counts_refuses_unsigned_wide_dtypes():
    for dtype in (torch.uint16, torch.uint32, torch.uint64):
        labels = torch.tensor([0, 1, 2], dtype=dtype)
        with pytest.raises(TypeError, match="labels must be an integer tensor"):
            bt.ops.class_counts(labels, 3)
