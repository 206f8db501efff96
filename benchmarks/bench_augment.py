"""BatchAugment against kornia and torchvision v2 on the issue's chain.

Batch 64 x 3 x 224 x 224 uint8 -> normalised float32: horizontal flip (p=0.5),
affine (rotation 30 degrees, translate 0.1, scale 0.8-1.2, shear 10 degrees),
colour jitter (0.4, 0.4, 0.4, 0.1), normalise. kornia takes float input, so
its timing includes the uint8 -> float conversion; torchvision v2 runs per
sample as a Dataset transform would.
"""

import pytest
import torch

import balancedtorch as bt

from _harness import DEVICES, interleaved_times, sync, with_bytes

B, H, W = 64, 224, 224
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def batch(device):
    g = torch.Generator().manual_seed(0)
    # smooth, image-like content rather than white noise
    x = torch.nn.functional.interpolate(
        torch.rand(B, 3, H // 8, W // 8, generator=g), size=(H, W), mode="bilinear", align_corners=False
    )
    return (x * 255).round().to(torch.uint8).to(device)


def ours(device):
    aug = bt.augment.BatchAugment(
        hflip=0.5,
        rotation=30,
        translate=(0.1, 0.1),
        scale=(0.8, 1.2),
        shear=10,
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        hue=0.1,
        mean=MEAN,
        std=STD,
    )
    g = torch.Generator(device=device).manual_seed(0)
    return lambda x: aug(x, generator=g)


def kornia_chain(device):
    K = pytest.importorskip("kornia")
    aug = K.augmentation.AugmentationSequential(
        K.augmentation.RandomHorizontalFlip(p=0.5),
        K.augmentation.RandomAffine(degrees=30, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10, p=1.0),
        K.augmentation.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0),
        K.augmentation.Normalize(mean=torch.tensor(MEAN), std=torch.tensor(STD)),
    ).to(device)
    return lambda x: aug(x.float().div_(255))


def torchvision_per_sample(device):
    T = pytest.importorskip("torchvision.transforms.v2")
    tf = T.Compose(
        [
            T.RandomHorizontalFlip(0.5),
            T.RandomAffine(degrees=30, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10),
            T.ColorJitter(0.4, 0.4, 0.4, 0.1),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(MEAN, STD),
        ]
    )
    return lambda x: torch.stack([tf(img) for img in x])


def _float_copy(x):
    """The chain's floor: read the uint8 batch once, write a float32 tensor of its shape once."""
    out = torch.empty(x.shape, device=x.device)
    return with_bytes(lambda: out.copy_(x), x.numel() * x.element_size() + out.numel() * out.element_size())


IMPLS = {"balancedtorch": ours, "kornia": kornia_chain, "torchvision v2 per sample": torchvision_per_sample}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("device", DEVICES)
def test_augment_chain(timed, benchmark, device, impl):
    if device == "cuda" and impl == "torchvision v2 per sample":
        pytest.skip("per-sample CPU pipeline")
    x = batch(device)
    fn = IMPLS[impl](device)
    heavy = impl != "balancedtorch" and device == "cpu"
    floor = None
    if impl == "balancedtorch":  # the floor: read the uint8 batch once, write the float32 output once
        floor = _float_copy(x)
    timed(
        lambda: fn(x),
        group=f"augment chain {B}x3x{H}x{W} uint8 -> float32 {device}",
        impl=impl,
        device=device,
        rounds=3 if heavy else None,
        floor=floor,
    )
    benchmark.extra_info["images_per_s"] = round(B / benchmark.stats.stats.median)


@pytest.mark.parametrize("device", DEVICES)
def test_device_copy_reference(timed, benchmark, device):
    """Bandwidth reference: reading the uint8 batch and writing the float32 output once."""
    x = batch(device)
    timed(
        _float_copy(x),
        group=f"augment chain {B}x3x{H}x{W} uint8 -> float32 {device}",
        impl="copy (uint8 -> float32 copy_)",
        device=device,
    )
    sync(device)


# ---------------------------------------------------------------- crop_focus
# A Cityscapes-sized segmentation batch, 32 x 3 x 512 x 1024 uint8 images and
# uint8 masks (19 classes in blocks, a few small blobs of the rare classes 17
# and 18, some 255 void), cropped to 512 x 512 with a horizontal flip and
# normalisation. Goal: crop_focus costs <= 10% over the same BatchAugment
# without it (ratio >= 0.91: the alternative's time / ours).
SB, SH, SW = 32, 512, 1024


def seg_batch(device):
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(
        torch.rand(SB, 3, SH // 8, SW // 8, generator=g), size=(SH, SW), mode="bilinear", align_corners=False
    )
    images = (x * 255).round().to(torch.uint8)
    coarse = torch.randint(0, 17, (SB, 1, SH // 64, SW // 64), generator=g).float()
    masks = torch.nn.functional.interpolate(coarse, size=(SH, SW), mode="nearest").squeeze(1).to(torch.uint8)
    for b in range(SB):  # 0-3 blobs of 6 x 3 pixels of a rare class (traffic lights)
        for _ in range(int(torch.randint(0, 4, (1,), generator=g))):
            r, c = int(torch.randint(0, SH - 6, (1,), generator=g)), int(torch.randint(0, SW - 3, (1,), generator=g))
            masks[b, r : r + 6, c : c + 3] = 17 + b % 2
    masks[:, :8] = 255
    return images.to(device), masks.to(device)


def seg_aug(device, crop_focus):
    aug = bt.augment.BatchAugment(hflip=0.5, crop=512, crop_scale=(0.25, 1.0), mean=MEAN, std=STD, crop_focus=crop_focus)
    g = torch.Generator(device=device).manual_seed(0)
    return lambda x, m: aug(x, masks=m, generator=g)


@pytest.mark.parametrize("focus", ["dict", "rare"])
@pytest.mark.parametrize("impl", ["balancedtorch", "same BatchAugment without crop_focus"])
@pytest.mark.parametrize("device", DEVICES)
def test_crop_focus_overhead(timed, benchmark, device, impl, focus):
    x, m = seg_batch(device)
    crop_focus = ({17: 1.0, 18: 1.0} if focus == "dict" else "rare") if impl == "balancedtorch" else None
    fn = seg_aug(device, crop_focus)
    group = f"crop_focus={focus} overhead {SB}x3x{SH}x{SW} uint8 + masks -> 512x512 {device}"
    timed(lambda: fn(x, m), group=group, impl=impl, device=device, rounds=5 if device == "cpu" else None)


@pytest.mark.parametrize("focus", ["dict", "rare"])
@pytest.mark.parametrize("device", DEVICES)
def test_focus_pixels_kernel(timed, benchmark, device, focus):
    """The focus_pixels kernel alone (both passes, every sample active) on the same masks."""
    from balancedtorch.augment._focus import focus_classes, focus_pixels

    _, m = seg_batch(device)
    classes, weights = focus_classes({17: 1.0, 18: 1.0} if focus == "dict" else "rare", torch.uint8, 255, device)
    u = torch.rand(SB, 2, dtype=torch.float64, device=device)
    group = f"crop_focus={focus} overhead {SB}x3x{SH}x{SW} uint8 + masks -> 512x512 {device}"
    timed(
        lambda: focus_pixels(m, classes, weights, u),
        group=group,
        impl="focus_pixels kernel alone (B active)",
        device=device,
        rounds=5 if device == "cpu" else None,
    )


# ---------------------------------------------------------------- MixUp / CutMix
# A 64 x 3 x 224 x 224 float32 batch and its class labels (1000 classes), mixed
# by ours and by torchvision v2's MixUp / CutMix (equal outputs given the same
# draws: checked below before timing), run interleaved under the same load.
MIX_CLASSES = 1000


@pytest.mark.parametrize("kind", ["MixUp", "CutMix", "MixUp remix"])
@pytest.mark.parametrize("device", DEVICES)
def test_mix_vs_torchvision(benchmark, device, kind):
    T = pytest.importorskip("torchvision.transforms.v2")
    x = batch(device).float().div_(255)
    y = torch.randint(0, MIX_CLASSES, (B,), generator=torch.Generator().manual_seed(1)).to(device)
    counts = torch.logspace(3, 0, MIX_CLASSES).round().clamp_min(1)
    name = kind.split()[0]
    ours = getattr(bt.augment, name)(num_classes=MIX_CLASSES, class_counts=counts, remix=kind.endswith("remix"))
    theirs = getattr(T, name)(num_classes=MIX_CLASSES)
    torch.manual_seed(0)
    a = ours(x, y)
    torch.manual_seed(0)
    b = theirs(x, y)
    assert torch.equal(a[0], b[0])
    times = interleaved_times({"bt": lambda: ours(x, y), "torchvision": lambda: theirs(x, y)}, device, 9)
    benchmark.group = f"{kind} {B}x3x{H}x{W} float32 {device}"
    benchmark.extra_info.update({k: [round(t * 1e3, 3) for t in v] for k, v in times.items()})
    benchmark.extra_info["ratio"] = round(min(times["torchvision"]) / min(times["bt"]), 2)
    benchmark.pedantic(lambda: None, rounds=1)
    print(
        f"\n{kind} {device}: balancedtorch {min(times['bt']) * 1e3:.2f} ms, torchvision v2 "
        f"{min(times['torchvision']) * 1e3:.2f} ms: {benchmark.extra_info['ratio']}x"
    )
