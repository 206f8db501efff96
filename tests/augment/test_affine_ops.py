"""The raw affine_color / affine_mask operators at their limits.

Images and strides past 32-bit offsets, sides past float32's exact integers
(refused), and fake kernels that return the real kernels' memory format.
"""

import pytest
import torch

from balancedtorch.augment.functional import affine_color

BIG = 2**31 + 8  # one side wider than int32 (and than float32's exact integers)


def _shift_theta(dx: float, dy: float) -> torch.Tensor:
    """Identity warp moved by (dx, dy) input pixels: output (x, y) reads input
    (x - W_out / 2 + W / 2 + dx - 0.5 + 0.5, ...), see affine_color's frame."""
    return torch.tensor([[[1.0, 0.0, dx], [0.0, 1.0, dy]]])


def test_affine_color_rejects_sides_beyond_float32():
    # torch.empty: 2 GiB of address space, no page is touched
    images = torch.empty((1, 1, 1, BIG), dtype=torch.uint8)
    theta = _shift_theta(0.0, 0.0)
    with pytest.raises(ValueError, match=r"images height and width must be below 2\^24.*W = 2147483656"):
        affine_color(images, theta, size=(1, 8))
    # the raw ops check too (the AVX2 path used to gather from a wrapped-around offset)
    with pytest.raises(ValueError, match=r"affine_color: images height and width must be below 2\^24"):
        torch.ops.balancedtorch.affine_color(images, theta, None, None, None, None, 1, 8, 1, None, torch.float32)
    with pytest.raises(ValueError, match=r"affine_mask: masks height and width must be below 2\^24"):
        torch.ops.balancedtorch.affine_mask(images[:, 0], theta, None, 1, 8, 0)
    with pytest.raises(ValueError, match=r"size must be below 2\^24"):
        affine_color(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), theta, size=(2**24, 1))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_affine_color_plane_past_2_31_elements(device, dtype, interpolation):
    # H * W = 2,147,488,281 > 2^31: the corner pixels sit past every 32-bit offset.
    # Only the two patches read are written (and so paged in).
    H = W = 46341
    images = torch.empty((1, 1, H, W), dtype=dtype, device=device)
    high = 256 if dtype == torch.uint8 else 1
    corner = torch.randint(0, high, (16, 16)) if dtype == torch.uint8 else torch.rand(16, 16)
    origin = torch.randint(0, high, (16, 16)) if dtype == torch.uint8 else torch.rand(16, 16)
    images[0, 0, H - 16 :, W - 16 :] = corner.to(device=device, dtype=dtype)
    images[0, 0, :16, :16] = origin.to(device=device, dtype=dtype)
    scale = 255.0 if dtype == torch.uint8 else 1.0
    # output pixel (x, y) reads input (x + dx + W / 2 - 8, y + dy + H / 2 - 8)
    for (dx, dy), patch in (((W / 2 - 8, H / 2 - 8), corner), ((8 - W / 2, 8 - H / 2), origin)):
        out = affine_color(images, _shift_theta(dx, dy), size=(16, 16), interpolation=interpolation)
        assert out.shape == (1, 1, 16, 16)
        torch.testing.assert_close(out[0, 0].cpu(), patch.float() / scale, rtol=0, atol=1e-6)
        if dtype == torch.uint8:
            warped = torch.ops.balancedtorch.affine_mask(images[:, 0], _shift_theta(dx, dy).to(device), None, 16, 16, 0)
            assert torch.equal(warped[0].cpu(), patch.to(torch.uint8))


def test_affine_color_strides_past_2_31(device):
    # Channel and batch strides beyond int32 on small planes (the AVX2 gather
    # path on the CPU): as_strided views into 8 GiB of untouched address space.
    sC, sB = 2**31 + 64, 2**32 + 256
    base = torch.empty(sB + 2 * sC + 64, dtype=torch.uint8, device=device)
    images = base.as_strided((2, 3, 8, 8), (sB, sC, 8, 1))
    values = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    images.copy_(values.to(device))
    theta = _shift_theta(0.0, 0.0).expand(2, 2, 3).contiguous()
    for interpolation in ("nearest", "bilinear"):
        out = affine_color(images, theta, interpolation=interpolation)
        torch.testing.assert_close(out.cpu(), values.float() / 255.0, rtol=0, atol=1e-6)
    masks = base.as_strided((2, 8, 8), (sB, 8, 1))
    warped = torch.ops.balancedtorch.affine_mask(masks, theta, None, 8, 8, 0)
    assert torch.equal(warped.cpu(), values[:, 0])


# -- fake kernels: the real kernels' memory format -----------------------------------------------------------------------


def _fake_outputs(op, args):
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        return op(*fake_args)


def _assert_same_layout(real, fake):
    real = real if isinstance(real, (tuple, list)) else (real,)
    fake = fake if isinstance(fake, (tuple, list)) else (fake,)
    for r, f in zip(real, fake):
        assert r.shape == f.shape and r.dtype == f.dtype
        if r.numel() > 1:
            assert r.stride() == f.stride(), (r.stride(), f.stride())


@pytest.mark.parametrize("channels_last", [False, True])
def test_affine_fakes_memory_format(device, channels_last):
    images = torch.randint(0, 256, (3, 3, 10, 12), dtype=torch.uint8, device=device)
    if channels_last:
        images = images.to(memory_format=torch.channels_last)
    theta = torch.eye(2, 3, device=device).repeat(3, 1, 1) + 0.05 * torch.randn(3, 2, 3, device=device)
    op = torch.ops.balancedtorch.affine_color.default
    args = (images, theta, None, None, None, None, 8, 9, 0, None, torch.float32)
    real = op(*args)
    assert real.is_contiguous(memory_format=torch.channels_last) == channels_last
    _assert_same_layout(real, _fake_outputs(op, args))
    torch.library.opcheck(op, args)
    masks = torch.randint(0, 5, (3, 10, 12), dtype=torch.uint8, device=device)
    mop = torch.ops.balancedtorch.affine_mask.default
    margs = (masks, theta, None, 8, 9, 255)
    _assert_same_layout(mop(*margs), _fake_outputs(mop, margs))
    torch.library.opcheck(mop, margs)
