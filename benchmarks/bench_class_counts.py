"""class_counts against torch.bincount (with and without the range check that makes it safe)."""

import pytest
import torch

import balancedtorch as bt

from _harness import DEVICES, copy_floor

N = 10_000_000
C = 1000


def _labels(device, dtype):
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(C, generator=g, dtype=torch.float64) ** 4 + 1e-4
    return torch.multinomial(probs, N, replacement=True, generator=g).to(device=device, dtype=dtype)


def _bincount_checked(labels):
    # What a careful user writes: bincount silently grows on labels >= C and
    # raises an unhelpful error on negatives, so they check the range first.
    if int(labels.min()) < 0 or int(labels.max()) >= C:
        raise ValueError("labels out of range")
    return torch.bincount(labels, minlength=C)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["balancedtorch", "torch.bincount+check", "torch.bincount"])
def test_class_counts_int64(timed, device, impl):
    labels = _labels(device, torch.int64)
    fn = {
        "balancedtorch": lambda: bt.ops.class_counts(labels, C),
        "torch.bincount+check": lambda: _bincount_checked(labels),
        "torch.bincount": lambda: torch.bincount(labels, minlength=C),
    }[impl]
    floor = copy_floor(labels) if impl == "balancedtorch" else None
    out = timed(fn, group=f"class_counts int64 N=1e7 C={C} {device}", impl=impl, device=device, floor=floor)
    assert int(out.sum()) == N


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["balancedtorch", "torch.bincount(long)"])
def test_class_counts_uint8_masks(timed, device, impl):
    # Segmentation masks are uint8; bincount needs them as int64 first.
    masks = _labels(device, torch.int64).remainder(19).to(torch.uint8)
    fn = {
        "balancedtorch": lambda: bt.ops.class_counts(masks, 19),
        "torch.bincount(long)": lambda: torch.bincount(masks.long(), minlength=19),
    }[impl]
    floor = copy_floor(masks) if impl == "balancedtorch" else None
    out = timed(fn, group=f"class_counts uint8 N=1e7 C=19 {device}", impl=impl, device=device, floor=floor)
    assert int(out.sum()) == N
