"""BatchAugment / affine_color mask_fill: what a warp writes where it pads the masks.

The ignore label 255 by default (so the loss ignores the padding), an explicit
fill written as given, and fills outside the masks' dtype or not integers
refused, by the raw and the fake affine_mask too.
"""

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt
import balancedtorch.augment.functional as AF


def _images_and_masks(device, dtype, B=6, H=24, W=28, classes=19):
    images = torch.randint(1, 256, (B, 3, H, W), dtype=torch.uint8, device=device)
    if dtype == torch.bool:
        masks = torch.rand(B, H, W, device=device) < 0.5
    else:
        masks = torch.randint(0, classes, (B, H, W), device=device).to(dtype)
    return images, masks


ZOOM_OUT = dict(rotation=(20, 40), scale=(0.5, 0.7), hflip=0.5)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64, torch.bool], ids=str)
def test_batch_augment_pads_masks_with_the_ignore_label_by_default(device, dtype):
    images, masks = _images_and_masks(device, dtype)
    gen = lambda: torch.Generator(device=device).manual_seed(11)  # noqa: E731
    _, warped = bt.augment.BatchAugment(**ZOOM_OUT)(images, masks=masks, generator=gen())
    # the same parameters with an explicit fill of 1 on an all-zero mask: where the warp padded
    probe = bt.augment.BatchAugment(**ZOOM_OUT, mask_fill=1)
    _, pad = probe(images, masks=torch.zeros_like(masks), generator=gen())
    padded = pad == 1
    assert padded.any() and (~padded).any()
    expected_fill = False if dtype == torch.bool else 255
    assert warped.dtype == dtype
    assert bool((warped[padded] == expected_fill).all())
    _, inside = probe(images, masks=masks, generator=gen())
    assert torch.equal(warped[~padded], inside[~padded])  # the labels themselves are untouched
    if dtype != torch.bool:
        assert int(warped[~padded].max()) < 19  # 255 only where padded


def test_default_mask_fill_is_ignored_by_the_loss(device):
    images, masks = _images_and_masks(device, torch.uint8, classes=5)
    x, m = bt.augment.BatchAugment(**ZOOM_OUT)(images, masks=masks, generator=torch.Generator(device=device).manual_seed(3))
    logits = torch.randn(x.shape[0], 5, *x.shape[2:], device=device)
    got = bt.nn.CrossEntropyLoss(ignore_index=255)(logits, m.long())
    keep = m != 255
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], m[keep].long())
    torch.testing.assert_close(got, expected)


def test_explicit_mask_fill_in_range_is_written(device):
    images, masks = _images_and_masks(device, torch.int64)
    gen = lambda: torch.Generator(device=device).manual_seed(5)  # noqa: E731
    _, pad = bt.augment.BatchAugment(**ZOOM_OUT, mask_fill=1)(images, masks=torch.zeros_like(masks), generator=gen())
    for fill in (-100, 0, 2**40):
        _, warped = bt.augment.BatchAugment(**ZOOM_OUT, mask_fill=fill)(images, masks=masks, generator=gen())
        assert bool((warped[pad == 1] == fill).all())
    theta = AF.affine_matrix(torch.full((masks.shape[0],), 30.0), scale=0.5).float().to(device)
    for dtype, fill in (
        (torch.uint8, 0),
        (torch.uint8, 255),
        (torch.int32, -(2**31)),
        (torch.int32, 2**31 - 1),
        (torch.bool, True),
    ):
        _, warped = AF.affine_color(images, theta, masks=masks.to(dtype), mask_fill=fill)
        assert warped.dtype == dtype and bool((warped[:, 0, 0] == fill).all())  # the corners are padding


@pytest.mark.parametrize(
    "dtype, fill",
    [
        (torch.uint8, 256),
        (torch.uint8, -1),
        (torch.uint8, -100),
        (torch.int32, 2**31),
        (torch.int32, -(2**31) - 1),
        (torch.bool, 2),
        (torch.bool, -1),
    ],
    ids=str,
)
def test_mask_fill_outside_the_mask_dtype_raises(device, dtype, fill):
    images, masks = _images_and_masks(device, dtype)
    before = masks.clone()
    match = rf"mask_fill = {fill} is outside the range of the masks' dtype {dtype}"
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        bt.augment.BatchAugment(rotation=10, mask_fill=fill)(images, masks=masks)
    theta = AF.identity_matrix(masks.shape[0], device=device)
    with pytest.raises(ValueError, match="mask_fill"):
        AF.affine_color(images, theta, masks=masks, mask_fill=fill)
    assert torch.equal(masks, before)
    # the raw op refuses too (it used to wrap: 256 -> 0 labelled the padding as class 0)
    with pytest.raises(ValueError, match=r"affine_mask: fill must be a value of the masks' dtype"):
        torch.ops.balancedtorch.affine_mask(masks, theta, None, 8, 8, fill)


def test_affine_mask_fake_refuses_out_of_range_fill():
    from torch._subclasses.fake_tensor import FakeTensorMode

    masks = torch.randint(0, 5, (2, 6, 7), dtype=torch.uint8)
    theta = AF.identity_matrix(2)
    with FakeTensorMode() as mode:
        fm, ft = mode.from_tensor(masks), mode.from_tensor(theta)
        assert torch.ops.balancedtorch.affine_mask(fm, ft, None, 4, 5, 255).shape == (2, 4, 5)
        with pytest.raises(ValueError, match="fill must be a value of the masks' dtype"):
            torch.ops.balancedtorch.affine_mask(fm, ft, None, 4, 5, 256)
    torch.library.opcheck(torch.ops.balancedtorch.affine_mask.default, (masks, theta, None, 4, 5, 255))


@pytest.mark.parametrize("fill", [2.5, "255", float("nan"), 2**64, torch.tensor(1.0)], ids=repr)
def test_mask_fill_must_be_an_integer(fill):
    with pytest.raises(ValueError, match="mask_fill"):
        bt.augment.BatchAugment(mask_fill=fill)
    images, masks = _images_and_masks("cpu", torch.int64)
    with pytest.raises(ValueError, match="mask_fill"):
        AF.affine_color(images, AF.identity_matrix(masks.shape[0]), masks=masks, mask_fill=fill)
