"""bt.augment against torchvision.transforms.v2.functional on real (scikit-learn digits) and random images."""

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt
from balancedtorch.augment import functional as AF

TF = pytest.importorskip("torchvision.transforms.v2.functional")
BILINEAR = TF.InterpolationMode.BILINEAR
NEAREST = TF.InterpolationMode.NEAREST


def digits(n=6, size=(48, 56), seed=0):
    """Handwritten digits from scikit-learn, upscaled and tinted into RGB images in [0, 1]."""
    datasets = pytest.importorskip("sklearn.datasets")
    data = datasets.load_digits()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.images), generator=g)[:n]
    x = torch.from_numpy(data.images[idx.numpy()]).float().unsqueeze(1) / 16.0
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    tint = 0.3 + 0.7 * torch.rand(n, 3, 1, 1, generator=g)
    background = 0.2 * torch.rand(n, 3, 1, 1, generator=g)
    return (background + x * tint).clamp(0, 1)


def random_images(n=4, size=(40, 52), seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size[0] * 2, size[1] * 2, generator=g)
    return F.avg_pool2d(x, 2)  # smooth enough that bilinear rounding stays small


def assert_close_images(ours, ref, max_tol=2 / 255, mean_tol=1 / 255, border=4):
    assert ours.shape == ref.shape
    diff = (ours.float() - ref.float()).abs()
    if border:
        diff = diff[..., border:-border, border:-border]
    assert float(diff.max()) <= max_tol, float(diff.max())
    assert float(diff.mean()) <= mean_tol, float(diff.mean())


def run(images, theta, color=None, **kw):
    B = images.shape[0]
    theta = theta.expand(B, 2, 3).float() if theta.shape[0] == 1 else theta.float()
    if color is not None and color.dim() == 1:
        color = color.expand(B, 4)
    return AF.affine_color(images, theta, color, **kw)


AFFINES = [
    dict(angle=30.0, translate=[3, -2], scale=1.1, shear=[10.0, 0.0]),
    dict(angle=-17.0, translate=[0, 5], scale=0.8, shear=[-5.0, 7.0]),
    dict(angle=0.0, translate=[0, 0], scale=1.35, shear=[0.0, 0.0]),
]


@pytest.mark.parametrize("source", ["digits", "random"])
@pytest.mark.parametrize("params", AFFINES, ids=lambda p: f"a{p['angle']}")
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_affine_matches_torchvision(device, source, params, interpolation):
    img = (digits() if source == "digits" else random_images()).to(device)
    theta = AF.affine_matrix(params["angle"], params["translate"], params["scale"], params["shear"])
    ours = run(img, theta.to(device), interpolation=interpolation)
    mode = BILINEAR if interpolation == "bilinear" else NEAREST
    ref = TF.affine(img, interpolation=mode, **params)
    if interpolation == "bilinear":
        assert_close_images(ours, ref, max_tol=1e-5, mean_tol=1e-6, border=0)
    else:  # nearest: a pixel may round the other way where the position is within float error of .5
        assert float(((ours - ref).abs() > 1e-6).float().mean()) < 1e-3


@pytest.mark.parametrize("fill", [0.0, 0.7])
def test_fill_matches_torchvision(device, fill):
    img = digits().to(device)
    theta = AF.affine_matrix(25.0, (6, 4), 0.7, (0.0, 0.0)).to(device)
    ours = run(img, theta, fill=fill)
    ref = TF.affine(img, angle=25.0, translate=[6, 4], scale=0.7, shear=[0.0, 0.0], interpolation=BILINEAR, fill=fill)
    assert_close_images(ours, ref, max_tol=1e-5, mean_tol=1e-6, border=0)


def test_flips_and_quarter_turns_are_exact(device):
    img = digits(size=(40, 40)).to(device)
    B = img.shape[0]
    h = run(img, AF.flip_matrix(torch.ones(B, dtype=torch.bool), torch.zeros(B, dtype=torch.bool)).to(device))
    v = run(img, AF.flip_matrix(torch.zeros(B, dtype=torch.bool), torch.ones(B, dtype=torch.bool)).to(device))
    assert torch.equal(h, TF.horizontal_flip(img))
    assert torch.equal(v, TF.vertical_flip(img))
    plus90 = run(img, AF.affine_matrix(90.0).to(device))
    minus90 = run(img, AF.affine_matrix(-90.0).to(device))
    # torchvision's affine convention (clockwise angles): +90 degrees is rot90(k=-1) on (H, W)
    assert torch.equal(plus90, torch.rot90(img, k=-1, dims=(-2, -1)))
    assert torch.equal(minus90, torch.rot90(img, k=1, dims=(-2, -1)))
    ref = TF.affine(img, angle=90.0, translate=[0, 0], scale=1.0, shear=[0.0, 0.0], interpolation=BILINEAR)
    torch.testing.assert_close(plus90, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("box", [(5, 7, 30, 20), (0, 0, 48, 56), (10, 3, 17, 40)])
@pytest.mark.parametrize("out", [(32, 32), (64, 48)])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resized_crop_matches_torchvision(device, box, out, interpolation):
    img = digits().to(device)
    top, left, h, w = box
    boxes = torch.tensor([box], dtype=torch.float32, device=device).expand(6, 4)
    ours = run(img, AF.identity_matrix(1).to(device), crop=boxes, size=out, interpolation=interpolation)
    mode = BILINEAR if interpolation == "bilinear" else NEAREST
    ref = TF.resized_crop(img, top, left, h, w, list(out), interpolation=mode, antialias=False)
    assert_close_images(ours, ref, max_tol=1e-5, mean_tol=1e-6, border=0)
    if interpolation == "nearest":
        return  # torch's "nearest" resize floors dst * scale, unlike a warp's centred rounding
    # the single-matrix form (crop_matrix) agrees away from the box edge, where it reads past the box
    single = run(img, AF.crop_matrix(top, left, h, w, (48, 56), out).to(device), size=out, interpolation=interpolation)
    assert_close_images(single, ref, border=2)


COLOURS = {
    "brightness": (torch.tensor([1.4, 1.0, 1.0, 0.0]), lambda x: TF.adjust_brightness(x, 1.4)),
    "contrast": (torch.tensor([1.0, 0.55, 1.0, 0.0]), lambda x: TF.adjust_contrast(x, 0.55)),
    "contrast_up": (torch.tensor([1.0, 1.6, 1.0, 0.0]), lambda x: TF.adjust_contrast(x, 1.6)),
    "saturation": (torch.tensor([1.0, 1.0, 1.7, 0.0]), lambda x: TF.adjust_saturation(x, 1.7)),
    "hue": (torch.tensor([1.0, 1.0, 1.0, 0.23]), lambda x: TF.adjust_hue(x, 0.23)),
    "hue_negative": (torch.tensor([1.0, 1.0, 1.0, -0.4]), lambda x: TF.adjust_hue(x, -0.4)),
}


@pytest.mark.parametrize("name", list(COLOURS))
@pytest.mark.parametrize("source", ["digits", "random"])
def test_each_colour_op_matches_torchvision(device, name, source):
    img = (digits() if source == "digits" else random_images()).to(device)
    colour, ref_fn = COLOURS[name]
    ours = run(img, AF.identity_matrix(1).to(device), colour.to(device))
    assert_close_images(ours, ref_fn(img), max_tol=2e-5, mean_tol=1e-6, border=0)


def test_normalize_matches_torchvision(device):
    img = digits().to(device)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ours = run(img, AF.identity_matrix(1).to(device), mean=mean, std=std)
    torch.testing.assert_close(ours, TF.normalize(img, list(mean), list(std)), rtol=1e-5, atol=1e-5)


def torchvision_chain(img, box, out, flip, affine, colour, mean, std):
    if img.dtype == torch.uint8:
        # torchvision's float resize path (its CUDA path; on CPU it resizes uint8 with a
        # fixed-point kernel that differs by one level on some pixels), rounded back to uint8
        x = TF.resized_crop(img.float(), *box, list(out), interpolation=BILINEAR, antialias=False).round_().to(torch.uint8)
    else:
        x = TF.resized_crop(img, *box, list(out), interpolation=BILINEAR, antialias=False)
    if flip:
        x = TF.horizontal_flip(x)
    x = TF.affine(x, interpolation=BILINEAR, **affine)
    b, c, s, h = colour
    x = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(x, b), c), s), h)
    return TF.normalize(TF.to_dtype(x, torch.float32, scale=True), list(mean), list(std))


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_whole_chain_matches_torchvision(device, dtype, out_dtype):
    img = digits()
    box, out = (4, 6, 36, 44), (40, 40)
    affine = dict(angle=21.0, translate=[2, -3], scale=1.15, shear=[8.0, 0.0])
    colour = (1.2, 0.8, 1.3, -0.07)
    mean, std = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
    # uint8 against torchvision's uint8 arithmetic (rounding and truncation between steps)
    source = (img * 255).round().to(torch.uint8) if dtype == torch.uint8 else img
    ref = torchvision_chain(source, box, out, True, affine, colour, mean, std)
    theta = AF.compose(
        AF.flip_matrix(torch.tensor([True]), torch.tensor([False])),
        AF.affine_matrix(affine["angle"], affine["translate"], affine["scale"], affine["shear"]),
    )
    x = (img * 255).round().to(torch.uint8) if dtype == torch.uint8 else img.to(dtype)
    boxes = torch.tensor([box], dtype=torch.float32).expand(6, 4).to(device)
    ours = run(
        x.to(device),
        theta.to(device),
        torch.tensor(colour, dtype=torch.float64).to(device),
        crop=boxes,
        size=out,
        mean=mean,
        std=std,
        out_dtype=out_dtype,
    )
    assert ours.dtype == out_dtype and ours.shape == (6, 3, 40, 40)
    # compare in pixel units (before normalisation): divide back by std
    scale = torch.tensor(std).view(1, 3, 1, 1)
    ours_px = ours.float().cpu() * scale
    ref_px = ref * scale
    if dtype != torch.uint8:
        assert_close_images(ours_px, ref_px, max_tol=2 / 255 if out_dtype == torch.float32 else 3 / 255)
    else:
        # torchvision's uint8 arithmetic rounds and truncates between steps: a sample whose
        # warp lands within float error of a rounding boundary differs by one level, and
        # brightness, saturation and hue amplify that level on those few pixels
        diff = (ours_px - ref_px).abs()[..., 4:-4, 4:-4]
        assert float(diff.mean()) <= 0.1 / 255
        assert float((diff > 1.5 / 255).float().mean()) < 0.005
        assert float(diff.max()) <= 8 / 255


def test_uint8_against_torchvision_uint8_pipeline(device):
    img = (digits() * 255).round().to(torch.uint8)
    affine = dict(angle=12.0, translate=[1, 2], scale=0.95, shear=[4.0, 0.0])
    ref = TF.adjust_contrast(TF.adjust_brightness(TF.affine(img, interpolation=BILINEAR, **affine), 1.2), 0.8)
    ref = TF.to_dtype(ref, torch.float32, scale=True)
    theta = AF.affine_matrix(affine["angle"], affine["translate"], affine["scale"], affine["shear"])
    ours = run(img.to(device), theta.to(device), torch.tensor([1.2, 0.8, 1.0, 0.0], dtype=torch.float64).to(device))
    assert_close_images(ours.cpu(), ref)


def test_channels_last_and_strided_input(device):
    img = digits().to(device)
    theta = AF.affine_matrix(33.0, (1, 1), 0.9, (3.0, 2.0)).expand(6, 2, 3).to(device)
    colour = torch.tensor([1.1, 0.9, 1.2, 0.05], device=device).expand(6, 4)
    base = AF.affine_color(img, theta, colour)
    cl = AF.affine_color(img.contiguous(memory_format=torch.channels_last), theta, colour)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl, base, rtol=0, atol=1e-6)
    wide = torch.zeros(6, 3, 48, 112, device=device)
    wide[..., ::2] = img
    strided = AF.affine_color(wide[..., ::2], theta, colour)
    torch.testing.assert_close(strided, base, rtol=0, atol=1e-6)


def test_single_channel_and_masks(device):
    img = digits()[:, :1].to(device)
    theta = AF.affine_matrix(torch.tensor([10.0, -40.0, 75.0, 0.0, 5.0, 180.0]), (2, 3), 1.1, (0.0, 0.0)).to(device)
    colour = torch.tensor([1.3, 0.7, 1.0, 0.0], device=device).expand(6, 4)
    masks = (img[:, 0] > 0.5).long() * 3 + (img[:, 0] > 0.8).long()
    out, warped = AF.affine_color(img, theta.float(), colour, masks=masks, mask_fill=255)
    ref = torch.stack(
        [
            TF.adjust_contrast(
                TF.adjust_brightness(
                    TF.affine(img[i], angle=a, translate=[2, 3], scale=1.1, shear=[0.0, 0.0], interpolation=BILINEAR), 1.3
                ),
                0.7,
            )
            for i, a in enumerate([10.0, -40.0, 75.0, 0.0, 5.0, 180.0])
        ]
    )
    assert_close_images(out, ref, max_tol=2e-5, mean_tol=1e-6, border=0)
    # masks: nearest with their own fill, the same positions the images use
    ref_masks = torch.stack(
        [
            TF.affine(
                masks[i : i + 1].float(),
                angle=a,
                translate=[2, 3],
                scale=1.1,
                shear=[0.0, 0.0],
                interpolation=NEAREST,
                fill=255.0,
            )[0]
            for i, a in enumerate([10.0, -40.0, 75.0, 0.0, 5.0, 180.0])
        ]
    ).long()
    assert warped.dtype == torch.int64
    assert float((warped != ref_masks).float().mean()) < 1e-3
    assert set(warped.unique().tolist()) <= {0, 3, 4, 255}
    out4, warped4 = AF.affine_color(img, theta.float(), masks=masks.unsqueeze(1).to(torch.uint8), mask_fill=7)
    assert warped4.shape == (6, 1, 48, 56) and warped4.dtype == torch.uint8


@pytest.mark.slow
def test_opcheck():
    img = digits(n=2)
    theta = AF.affine_matrix(torch.tensor([10.0, 20.0])).float()
    colour = torch.tensor([[1.1, 0.9, 1.2, 0.05], [0.9, 1.1, 0.8, -0.1]])
    torch.library.opcheck(
        torch.ops.balancedtorch.affine_color, (img, theta, colour, None, None, None, 30, 20, 0, None, torch.float32)
    )
    boxes = torch.tensor([[2.0, 3.0, 30.0, 40.0], [0.0, 0.0, 48.0, 56.0]])
    torch.library.opcheck(
        torch.ops.balancedtorch.affine_color,
        (img, theta, colour, boxes, torch.rand(3), torch.rand(3) + 0.5, 30, 20, 1, 0.5, torch.bfloat16),
    )
    masks = (img[:, 0] > 0.5).long()
    torch.library.opcheck(torch.ops.balancedtorch.affine_mask, (masks, theta, None, 30, 20, 0))
    torch.library.opcheck(torch.ops.balancedtorch.affine_mask, (masks, theta, boxes, 30, 20, 3))


# ----------------------------------------------------------------------------- BatchAugment

FULL = dict(
    hflip=0.5,
    vflip=0.2,
    rotation=30,
    translate=(0.1, 0.1),
    scale=(0.8, 1.2),
    shear=10,
    brightness=0.4,
    contrast=0.4,
    saturation=0.4,
    hue=0.1,
)


def test_batch_augment_deterministic_and_consistent(device):
    img = (digits(n=8) * 255).round().to(torch.uint8).to(device)
    aug = bt.augment.BatchAugment(**FULL, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    g = lambda s: torch.Generator(device=device).manual_seed(s)  # noqa: E731
    a, b, c = aug(img, generator=g(0)), aug(img, generator=g(0)), aug(img, generator=g(1))
    assert a.dtype == torch.float32 and a.shape == (8, 3, 48, 56)
    assert torch.equal(a, b) and not torch.equal(a, c)
    params = aug.sample_params(img, generator=g(0))
    direct = AF.affine_color(img, params["theta"], params["color"], mean=(0.5,) * 3, std=(0.2,) * 3, fill=0.0)
    assert torch.equal(direct, a)
    assert bool(params["applied"].all())


def test_batch_augment_parameter_ranges(device):
    img = digits(n=4).to(device).repeat(100, 1, 1, 1)
    aug = bt.augment.BatchAugment(rotation=(10, 25))
    theta = aug.sample_params(img, generator=torch.Generator(device=device).manual_seed(0))["theta"].cpu().double()
    # rotation only: theta = R(-angle) in torchvision's (y-down) convention; recover the angle
    angles = torch.rad2deg(torch.atan2(theta[:, 0, 1], theta[:, 0, 0]))
    assert float(angles.min()) >= 10 - 1e-4 and float(angles.max()) <= 25 + 1e-4
    assert float(angles.max() - angles.min()) > 10  # spread over the range
    torch.testing.assert_close(theta[:, :, 2], torch.zeros(400, 2, dtype=torch.float64))
    jitter = bt.augment.BatchAugment(brightness=0.5, contrast=(0.2, 0.3), hue=0.2)
    colour = jitter.sample_params(img, generator=torch.Generator(device=device).manual_seed(0))["color"].cpu()
    assert colour[:, 0].min() >= 0.5 and colour[:, 0].max() <= 1.5
    assert colour[:, 1].min() >= 0.2 and colour[:, 1].max() <= 0.3
    assert bool((colour[:, 2] == 1).all()) and colour[:, 3].abs().max() <= 0.2
    move = bt.augment.BatchAugment(translate=(0.1, 0.2))
    t = move.sample_params(img, generator=torch.Generator(device=device).manual_seed(0))["theta"].cpu()
    tx, ty = -t[:, 0, 2], -t[:, 1, 2]
    assert torch.equal(tx, tx.round()) and float(tx.abs().max()) <= 0.1 * 56 + 0.5 and float(ty.abs().max()) <= 0.2 * 48 + 0.5


def test_batch_augment_crop_boxes_follow_random_resized_crop(device):
    img = torch.rand(400, 3, 60, 80, device=device)
    aug = bt.augment.BatchAugment(crop=32, crop_scale=(0.25, 0.6), crop_ratio=(0.75, 1.33))
    boxes = aug.sample_params(img, generator=torch.Generator(device=device).manual_seed(0))["crop"].cpu().double()
    top, left, h, w = boxes.unbind(1)
    assert bool(((top >= 0) & (left >= 0) & (top + h <= 60) & (left + w <= 80)).all())
    area = w * h / (60 * 80)
    assert float(area.min()) >= 0.25 - 0.03 and float(area.max()) <= 0.6 + 0.03
    assert float((w / h).min()) >= 0.75 - 0.05 and float((w / h).max()) <= 1.33 + 0.05
    out = aug(img, generator=torch.Generator(device=device).manual_seed(0))
    assert out.shape == (400, 3, 32, 32)


def test_batch_augment_p_class_p_and_same_on_batch(device):
    img = (digits(n=8) * 255).round().to(torch.uint8).to(device)
    mean, std = (0.4, 0.4, 0.4), (0.3, 0.3, 0.3)
    plain = (img.float() / 255 - 0.4) / 0.3
    off = bt.augment.BatchAugment(**FULL, mean=mean, std=std, p=0.0)
    torch.testing.assert_close(off(img), plain, rtol=1e-6, atol=1e-6)
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1], device=device)
    per_class = bt.augment.BatchAugment(**FULL, mean=mean, std=std, class_p={0: 0.0, 1: 1.0})
    out = per_class(img, labels=labels, generator=torch.Generator(device=device).manual_seed(3))
    torch.testing.assert_close(out[labels == 0], plain[labels == 0], rtol=1e-6, atol=1e-6)
    assert bool(((out[labels == 1] - plain[labels == 1]).abs().flatten(1).max(1).values > 0.1).all())
    same = bt.augment.BatchAugment(**FULL, same_on_batch=True)
    rep = img[:1].expand(8, -1, -1, -1)
    res = same(rep, generator=torch.Generator(device=device).manual_seed(2))
    assert all(torch.equal(res[0], res[i]) for i in range(8))
    with pytest.raises(ValueError, match="labels"):
        per_class(img)


def test_batch_augment_masks_follow_images(device):
    img = digits(n=4).to(device)
    masks = (img[:, 0] > 0.45).to(torch.uint8)
    aug = bt.augment.BatchAugment(hflip=0.5, rotation=40, scale=(0.7, 1.3), crop=(40, 40), mask_fill=9)
    out, m = aug(img, masks=masks, generator=torch.Generator(device=device).manual_seed(0))
    assert m.shape == (4, 40, 40) and m.dtype == torch.uint8
    # the mask marks where the warped digit is bright (nearest vs bilinear: allow the boundary)
    again = aug(torch.cat([masks.unsqueeze(1).float()] * 3, 1), generator=torch.Generator(device=device).manual_seed(0))
    agree = ((again[:, 0] > 0.5) == (m == 1)) | (m == 9)
    assert float(agree.float().mean()) > 0.97


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale=(-0.5, 1.0)), "scale"),
        (dict(brightness=-0.1), "brightness"),
        (dict(hue=0.6), "hue"),
        (dict(hue=(-0.7, 0.1)), "hue"),
        (dict(rotation=(30, 10)), "rotation"),
        (dict(hflip=1.5), "hflip"),
        (dict(translate=(0.1, 1.5)), "translate"),
        (dict(shear=(1, 2, 3)), "shear"),
        (dict(crop=0), "crop"),
        (dict(interpolation="bicubic"), "interpolation"),
        (dict(class_p={0: 2.0}), r"class_p\[0\]"),
        (dict(std=(0.1, 0.0, 0.1)), "std"),
    ],
)
def test_batch_augment_bad_ranges(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bt.augment.BatchAugment(**kwargs)


def test_bad_input():
    img = digits(n=2)
    theta = AF.identity_matrix(2)
    with pytest.raises(ValueError, match="images"):
        AF.affine_color(img[0], theta)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        AF.affine_color(torch.rand(2, 2, 8, 8), theta)
    with pytest.raises(ValueError, match="theta"):
        AF.affine_color(img, torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="saturation and hue"):
        AF.affine_color(img[:, :1], theta, torch.tensor([[1.0, 1.0, 1.5, 0.0]] * 2))
    with pytest.raises(ValueError, match="hue"):
        AF.affine_color(img, theta, torch.tensor([[1.0, 1.0, 1.0, 0.7]] * 2))
    with pytest.raises(ValueError, match="masks"):
        AF.affine_color(img, theta, masks=torch.zeros(2, 10, 10, dtype=torch.long))
    with pytest.raises(ValueError, match="saturation and hue"):
        bt.augment.BatchAugment(saturation=0.3)(img[:, :1])
    with pytest.raises(ValueError, match="C = 1 or 3"):
        bt.augment.BatchAugment(hflip=0.5)(torch.rand(2, 4, 8, 8))
    with pytest.raises(ValueError, match="mean"):
        AF.affine_color(img, theta, mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="size"):
        AF.affine_color(img, theta, size=(0, 5))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill", [None, 0.3])
def test_vector_and_scalar_paths_agree(device, dtype, interpolation, fill):
    """The CPU kernel's eight-pixel AVX2 path (contiguous, strided) and its scalar path
    (taken with a crop; a whole-image box at the same size is the identity) give the same bits."""
    img = random_images(n=5, size=(37, 61), seed=3)
    x = (img * 255).round().to(torch.uint8) if dtype == torch.uint8 else img
    x = x.to(device)
    theta = AF.affine_matrix(torch.tensor([13.0, -70.0, 180.0, 33.0, 0.0]), (3, -1), 0.9, (5.0, 0.0)).float().to(device)
    colour = torch.tensor(
        [[1.3, 0.7, 1.4, 0.15], [0.8, 1.2, 0.6, -0.3], [1.0, 1.0, 1.0, 0.0], [1.1, 1.0, 1.0, 0.5], [1.0, 0.5, 1.0, 0.0]],
        dtype=torch.float64,
        device=device,
    )
    f = None if fill is None else (fill * 255 if dtype == torch.uint8 else fill)
    kw = dict(interpolation=interpolation, fill=f, mean=(0.2, 0.3, 0.4), std=(0.5, 0.6, 0.7))
    vector = AF.affine_color(x, theta, colour, **kw)
    whole = torch.tensor([[0.0, 0.0, 37.0, 61.0]], device=device).expand(5, 4)
    scalar = AF.affine_color(x, theta, colour, crop=whole, **kw)
    torch.testing.assert_close(vector, scalar, rtol=0, atol=0)
    wide = torch.zeros(5, 3, 37, 122, dtype=x.dtype, device=device)
    wide[..., ::2] = x
    strided = AF.affine_color(wide[..., ::2], theta, colour, **kw)
    torch.testing.assert_close(strided, vector, rtol=0, atol=0)
    assert not torch.equal(vector[0], vector[1])


def test_pooled_outputs_never_alias_live_tensors():
    """Large CPU outputs come from a reuse pool: a live output is never handed out again."""
    g = torch.Generator().manual_seed(0)
    img = (torch.rand(16, 3, 256, 256, generator=g) * 255).to(torch.uint8)  # 12.6 MB float32 output
    theta = AF.affine_matrix(torch.rand(16, generator=g) * 40 - 20).float()
    first = AF.affine_color(img, theta)
    expected = first.clone()
    second = AF.affine_color(img, theta)
    assert first.data_ptr() != second.data_ptr()
    assert torch.equal(first, expected) and torch.equal(second, expected)
    freed = {first.data_ptr(), second.data_ptr()}
    del first, second
    third = AF.affine_color(img, theta)
    assert third.data_ptr() in freed  # warm memory reused
    assert torch.equal(third, expected)
    third.add_(1)  # an ordinary, writable tensor
    assert torch.equal(third, expected + 1)
