"""The segmentation demo: traffic lights at 800:1 (``balancedtorch demo --task segmentation``).

The playbook's first example is a pixel detector for traffic lights: the
background outnumbers the traffic-light pixels 800:1, and a model that says
"background" everywhere scores 99.88% pixel accuracy while finding no light.
This demo rebuilds that situation without a download: street scenes of
64x128 RGB pixels are drawn procedurally from a seed (sky, buildings with lit
and unlit windows, trees, a road with lane marks and cars with red tail
lights, poles), some with traffic lights a few pixels wide: a dark housing
with three lamps, one of them lit. The lit lamp's pixels are the classes
red / yellow / green (56% / 3% / 41% of the lights, the playbook's shares);
everything else, unlit lamps and the red, yellow and green distractors
included, is background. Lighting (day, dusk, night), tint and sensor noise
vary per scene.

The same small fully-convolutional network (a two-level U-Net) is trained
twice for the same number of steps on the same scenes:

(a) the usual way: shuffled scenes, random 32x64 crops (``BatchAugment``,
    with flips and brightness / contrast jitter), plain cross-entropy;
(b) the balanced stack: ``RepeatFactorSampler`` over the classes each mask
    holds (``bt.data.classes_present``), the same ``BatchAugment`` crops but
    centred on a light's pixel half of the time (``crop_focus``), and Dice +
    cross-entropy with class weights (``bt.nn.DiceCELoss`` with
    ``bt.class_weights``).

Both are scored on the test scenes with ``bt.metrics.ClassificationMetrics``:
pixel accuracy, per-class IoU and recall, mean IoU.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from . import _validate, augment, data, metrics
from . import nn as btnn
from ._optional import install_hint
from .demo import _progress
from .weights import class_weights

__all__ = ["CLASS_NAMES", "SceneSplit", "TinyUNet", "light_colour_shares", "make_scenes", "make_split", "run_demo"]

HEIGHT, WIDTH = 64, 128
CLASS_NAMES = ("background", "red", "yellow", "green")
NUM_CLASSES = len(CLASS_NAMES)
LIGHT_SHARES = (0.56, 0.03, 0.41)  # red, yellow, green: the playbook's proportions among traffic lights
# Lights per scene: a quarter of the scenes hold none, a few hold up to four. With
# lamps of 2x2 or 3x3 pixels this makes background : light pixels about 800 : 1.
LIGHTS_PER_SCENE = (0.25, 0.30, 0.22, 0.13, 0.10)
TRAIN_SCENES, VAL_SCENES, TEST_SCENES = 1024, 128, 384
CROP = (32, 64)  # training crops of the balanced run: a quarter of the scene, no resizing

_LAMP = {1: (1.0, 0.12, 0.10), 2: (1.0, 0.78, 0.10), 3: (0.15, 1.0, 0.45)}
_SPLIT_KEYS = {"train": 0, "val": 1, "test": 2}


# ----------------------------------------------------------------------------- the scenes


def _rect(img: np.ndarray, y0: int, y1: int, x0: int, x1: int, colour) -> None:
    y0, y1, x0, x1 = max(0, y0), min(img.shape[0], y1), max(0, x0), min(img.shape[1], x1)
    if y1 > y0 and x1 > x0:
        img[y0:y1, x0:x1] = colour


def _scene(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One street scene: float32 image (H, W, 3) in [0, 1] and uint8 mask (H, W)."""
    H, W = HEIGHT, WIDTH
    img = np.zeros((H, W, 3), np.float32)
    mask = np.zeros((H, W), np.uint8)
    time_of_day = rng.choice(3, p=(0.5, 0.3, 0.2))  # day, dusk, night
    light = (1.0, 0.75, 0.35)[time_of_day] * rng.uniform(0.8, 1.15)
    horizon = int(rng.integers(24, 36))
    # sky: a vertical gradient whose colours depend on the time of day
    top, bottom = [
        (np.array([0.30, 0.50, 0.90]), np.array([0.70, 0.82, 0.95])),
        (np.array([0.25, 0.20, 0.45]), np.array([0.95, 0.55, 0.30])),
        (np.array([0.02, 0.03, 0.10]), np.array([0.10, 0.10, 0.20])),
    ][time_of_day]
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    img[:horizon] = top * (1 - t) + bottom * t
    # buildings with windows; at dusk and night some windows are lit warm yellow
    x = int(rng.integers(-10, 0))
    while x < W:
        bw = int(rng.integers(12, 34))
        bt_ = int(rng.integers(3, horizon - 4))
        shade = rng.uniform(0.25, 0.6)
        wall = np.array([shade, shade * rng.uniform(0.85, 1.0), shade * rng.uniform(0.75, 0.95)])
        _rect(img, bt_, horizon, x, x + bw, wall)
        ys = np.arange(bt_ + 2, horizon - 3, 4)
        xs = np.arange(x + 2, x + bw - 2, 4)
        xs = xs[(xs >= 0) & (xs < W - 1)]
        if ys.size and xs.size:
            colours = np.broadcast_to(wall * 0.55, (ys.size, xs.size, 3)).copy()
            if time_of_day > 0:
                lit = rng.random((ys.size, xs.size)) < 0.35
                warm = np.stack([np.ones(lit.sum()), rng.uniform(0.7, 0.9, lit.sum()), rng.uniform(0.2, 0.45, lit.sum())], 1)
                colours[lit] = warm / max(light, 0.35)
            for dy in (0, 1):
                for dx in (0, 1):
                    img[np.ix_(ys + dy, xs + dx)] = colours
        x += bw + int(rng.integers(0, 6))
    # road with lane marks (white, or yellow: a distractor for the yellow lamp)
    road = rng.uniform(0.25, 0.4)
    img[horizon:] = road
    lane_colour = np.array([0.95, 0.95, 0.9]) if rng.random() < 0.6 else np.array([0.95, 0.8, 0.15])
    lane_y = horizon + (H - horizon) // 2
    for lx in range(int(rng.integers(0, 12)), W, 16):
        _rect(img, lane_y, lane_y + 1, lx, lx + 8, lane_colour)
    # trees: green blobs (a distractor for the green lamp)
    for _ in range(int(rng.integers(0, 4))):
        cx, cy, r = rng.uniform(0, W), rng.uniform(horizon - 14, horizon), rng.uniform(4, 9)
        leaf = np.array([0.1, rng.uniform(0.45, 0.8), 0.15])
        y0, x0 = max(0, int(cy - r)), max(0, int(cx - r))
        yy, xx = np.mgrid[y0 : min(H, int(cy + r) + 1), x0 : min(W, int(cx + r) + 1)]
        blob = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        img[yy[blob], xx[blob]] = leaf * rng.uniform(0.8, 1.1, size=(int(blob.sum()), 1))
        _rect(img, int(cy + r - 2), horizon + 2, int(cx), int(cx) + 2, np.array([0.3, 0.2, 0.1]))
    # cars on the road with red tail lights (a distractor for the red lamp)
    for _ in range(int(rng.integers(0, 4))):
        cw, ch = int(rng.integers(12, 22)), int(rng.integers(6, 10))
        cx, cy = int(rng.integers(-4, W - 8)), int(rng.integers(horizon + 1, H - ch))
        body = rng.uniform(0.05, 0.9, size=3)
        _rect(img, cy, cy + ch, cx, cx + cw, body)
        _rect(img, cy + 1, cy + 3, cx + 2, cx + cw - 2, body * 0.4 + 0.3)  # rear window
        for tx in (cx + 1, cx + cw - 3):
            _rect(img, cy + ch - 3, cy + ch - 1, tx, tx + 2, np.array([0.95, 0.1, 0.08]))
    # traffic lights on poles: a dark housing of three lamps, one lit
    taken: List[Tuple[int, int]] = []
    n_lights = int(rng.choice(len(LIGHTS_PER_SCENE), p=LIGHTS_PER_SCENE))
    for _ in range(n_lights):
        s = int(rng.integers(2, 4))  # lamp size: 2x2 or 3x3 pixels
        hw, hh = s + 2, 3 * s + 4
        for _try in range(10):
            lx = int(rng.integers(1, W - hw - 1))
            if all(abs(lx - ox) > hw + 3 for ox, _ in taken):
                break
        else:
            continue
        ly = int(rng.integers(2, max(3, horizon - hh)))
        taken.append((lx, ly))
        pole = np.array([0.15, 0.15, 0.16]) * rng.uniform(0.8, 1.4)
        _rect(img, ly + hh, H - int(rng.integers(0, 8)), lx + hw // 2 - 1, lx + hw // 2 + 1, pole)
        _rect(img, ly, ly + hh, lx, lx + hw, np.array([0.06, 0.06, 0.07]) * rng.uniform(0.7, 1.3))
        lit = 1 + int(rng.choice(3, p=LIGHT_SHARES))
        for lamp in (1, 2, 3):
            y0, x0 = ly + 1 + (lamp - 1) * (s + 1), lx + 1
            colour = np.array(_LAMP[lamp])
            if lamp == lit:
                # an emitter: bright whatever the light of the scene, with a faint halo
                halo = img[max(0, y0 - 1) : y0 + s + 1, max(0, x0 - 1) : x0 + s + 1]
                halo += 0.25 * colour / max(light, 0.35)
                _rect(img, y0, y0 + s, x0, x0 + s, colour * rng.uniform(0.9, 1.0) / max(light, 0.35))
                mask[y0 : y0 + s, x0 : x0 + s] = lit
            else:
                _rect(img, y0, y0 + s, x0, x0 + s, colour * rng.uniform(0.12, 0.25))
    # lighting, tint and sensor noise
    tint = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    img = img * light * tint + rng.normal(0.0, rng.uniform(0.01, 0.04), size=img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32), mask


def make_scenes(n: int, seed: int = 0, split: str = "train") -> Tuple[Tensor, Tensor]:
    """``n`` street scenes, deterministic in ``(seed, split, index)``.

    Scene ``i`` depends only on the seed, the split and ``i``: the first ``k``
    of ``make_scenes(n, s)`` are ``make_scenes(k, s)``.

    Args:
        n (int): number of scenes.
        seed (int): the seed (default 0).
        split (str): ``"train"``, ``"val"`` or ``"test"``: disjoint streams.

    Returns:
        (images, masks): ``Tensor[n, 3, 64, 128]`` float32 in [0, 1] and
        ``Tensor[n, 64, 128]`` uint8 with 0 background, 1 red, 2 yellow,
        3 green (the lit lamp's pixels).
    """
    n = _validate.integer(n, "n", low=0, caller="make_scenes")
    if split not in _SPLIT_KEYS:
        raise ValueError(f"make_scenes: split must be 'train', 'val' or 'test', got {split!r}")
    images = np.empty((n, HEIGHT, WIDTH, 3), np.float32)
    masks = np.empty((n, HEIGHT, WIDTH), np.uint8)
    children = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _SPLIT_KEYS[split]]).spawn(n) if n else []
    for i, child in enumerate(children):
        images[i], masks[i] = _scene(np.random.Generator(np.random.PCG64(child)))
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(masks)


@dataclass
class SceneSplit:
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor


def make_split(seed: int = 0, n_train: int = TRAIN_SCENES, n_val: int = VAL_SCENES, n_test: int = TEST_SCENES) -> SceneSplit:
    """Train / validation / test scenes from one seed (three disjoint streams)."""
    return SceneSplit(*make_scenes(n_train, seed, "train"), *make_scenes(n_val, seed, "val"), *make_scenes(n_test, seed, "test"))


def light_colour_shares(masks: Tensor) -> Dict[str, float]:
    """Shares of red / yellow / green among the traffic-light pixels, and background : light pixels.

    Lamp sizes do not depend on the colour, so the pixel shares estimate the
    shares of lights (56 / 3 / 41 in expectation).
    """
    counts = torch.bincount(masks.reshape(-1).long(), minlength=NUM_CLASSES).double()
    light = counts[1:]
    shares = light / light.sum().clamp_min(1.0)
    return {
        "red": float(shares[0]),
        "yellow": float(shares[1]),
        "green": float(shares[2]),
        "background_ratio": float(counts[0] / light.sum().clamp_min(1.0)),
    }


# ----------------------------------------------------------------------------- the network


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyUNet(nn.Module):
    """A two-level U-Net (30k parameters at ``width=8``): logits ``(N, classes, H, W)``."""

    def __init__(self, classes: int = NUM_CLASSES, width: int = 8) -> None:
        super().__init__()
        w = width
        self.enc1, self.enc2, self.mid = _block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.dec2, self.dec1 = _block(6 * w, 2 * w), _block(3 * w, w)
        self.head = nn.Conv2d(w, classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(m, size=e2.shape[-2:], mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="nearest"), e1], 1))
        return self.head(d1)


# ----------------------------------------------------------------------------- training


def _dice_ce_loss(weight: Tensor) -> nn.Module:
    """Dice + weighted cross-entropy: Dice over the three light classes on the whole batch (nnU-Net's batch Dice)."""
    return btnn.DiceCELoss(lambda_dice=1.0, lambda_ce=1.0, include_background=False, batch=True, weight=weight, ignore_index=255)


_AUGMENT = dict(hflip=0.5, brightness=0.2, contrast=0.2)


def _crop_args() -> Dict[str, object]:
    # a pure crop of CROP pixels: area scale and aspect ratio fixed, so nothing is resized
    scale = CROP[0] * CROP[1] / (HEIGHT * WIDTH)
    return dict(crop=CROP, crop_scale=(scale, scale), crop_ratio=(CROP[1] / CROP[0],) * 2)


def _plain_augment():
    """Random crops, flips and brightness / contrast jitter: the usual pipeline, in both runs."""
    aug = augment.BatchAugment(**_crop_args(), **_AUGMENT)
    return lambda x, y, gen: aug(x, masks=y, generator=gen)


def _focus_augment(focus: Dict[int, float], p: float):
    """The same, with rare-class crops: a share ``p`` of the crops centred on a pixel of a ``focus`` class."""
    aug = augment.BatchAugment(**_crop_args(), crop_focus=focus, crop_focus_p=p, **_AUGMENT)
    return lambda x, y, gen: aug(x, masks=y, generator=gen)


def _batches(n: int, batch_size: int, sampler, gen: torch.Generator) -> Iterator[Tensor]:
    """Index batches forever: epochs of the sampler (set_epoch each time), or of a shuffle."""
    epoch = 0
    while True:
        if sampler is None:
            order = torch.randperm(n, generator=gen)
        else:
            sampler.set_epoch(epoch)
            order = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield order[i : i + batch_size]
        epoch += 1


@dataclass
class SegRunResult:
    name: str
    metrics: metrics.ClassificationMetrics
    model: nn.Module
    seconds: float
    recipe: Dict[str, object]

    def summary(self) -> Dict[str, object]:
        r = self.metrics.compute()
        out: Dict[str, object] = {"accuracy": float(r["accuracy"]), "mean_iou": float(r["mean_iou"])}
        for c, name in enumerate(CLASS_NAMES):
            out[f"iou_{name}"] = float(r["iou"][c])
            out[f"recall_{name}"] = float(r["recall"][c])
        lights = slice(1, NUM_CLASSES)
        out["light_mean_iou"] = float(r["iou"][lights].mean())
        out["light_mean_recall"] = float(r["recall"][lights].mean())
        return out


def train(
    split: SceneSplit,
    balanced: bool,
    *,
    steps: int,
    seed: int,
    device: torch.device,
    batch_size: int = 16,
    lr: float = 3e-3,
    rfs_threshold: float = 0.3,
    focus_p: float = 0.5,
    progress: bool = True,
) -> SegRunResult:
    """Train ``TinyUNet`` for ``steps`` steps: (a) plain (``balanced=False``) or (b) the balanced stack."""
    torch.manual_seed(seed)
    model = TinyUNet().to(device)
    n = len(split.y_train)
    gen = torch.Generator().manual_seed(seed)
    dev_gen = torch.Generator(device=device).manual_seed(seed)
    recipe: Dict[str, object]
    if balanced:
        present = data.classes_present(split.y_train, NUM_CLASSES)
        sampler = data.RepeatFactorSampler(present, threshold=rfs_threshold, seed=seed)
        counts = torch.bincount(split.y_train.reshape(-1).long(), minlength=NUM_CLASSES)
        weight = class_weights(counts=counts, scheme="sqrt_inverse", normalize="mean").to(device)
        loss_fn = _dice_ce_loss(weight).to(device)
        focus = {1: 1.0, 2: 1.0, 3: 1.0}
        aug = _focus_augment(focus, focus_p)
        recipe = {
            "sampler": f"RepeatFactorSampler(threshold={rfs_threshold})",
            "crop": CROP,
            "crop_focus_p": focus_p,
            "weight": [round(float(v), 3) for v in weight],
            "loss": type(loss_fn).__name__,
        }
    else:
        sampler, aug = None, _plain_augment()
        loss_fn = btnn.CrossEntropyLoss(ignore_index=255)
        recipe = {"sampler": "shuffle", "crop": CROP, "loss": "CrossEntropyLoss"}
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.15)
    batches = _batches(n, batch_size, sampler, gen)
    bar = _progress(steps, "(b) balanced stack" if balanced else "(a) plain", progress)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        idx = next(batches)
        x, y = split.x_train[idx].to(device), split.y_train[idx].to(device)
        if aug is not None:
            x, y = aug(x, y, dev_gen)
        loss = loss_fn(model(x), y.long())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if bar is not None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    m = metrics.ClassificationMetrics(NUM_CLASSES, class_names=list(CLASS_NAMES), device=device, curves=False)
    for i in range(0, len(split.y_test), 64):
        m.update(predict(model, split.x_test[i : i + 64], device), split.y_test[i : i + 64].to(device).long())
    return SegRunResult("balanced stack" if balanced else "plain", m, model, seconds, recipe)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, device: torch.device) -> Tensor:
    """Predicted classes ``(N, H, W)`` int64."""
    model.eval()
    return torch.cat([model(x[i : i + 64].to(device)).argmax(1) for i in range(0, len(x), 64)])


# ----------------------------------------------------------------------------- the demo

_COLOURS = np.array([[0.0, 0.0, 0.0], _LAMP[1], _LAMP[2], _LAMP[3]], np.float32)


def _paint(mask: Tensor) -> np.ndarray:
    """A mask as an RGB picture: black background, lamps in their colours, each lit pixel grown by one for visibility."""
    m = mask.long().clamp(0, NUM_CLASSES - 1)
    grown = F.max_pool2d(F.one_hot(m, NUM_CLASSES).movedim(-1, 0)[None, 1:].float(), 3, stride=1, padding=1)[0]
    out = np.zeros((*m.shape, 3), np.float32)
    for c in range(1, NUM_CLASSES):
        out[grown[c - 1].numpy() > 0] = _COLOURS[c] * 0.6
    for c in range(1, NUM_CLASSES):
        out[(m == c).numpy()] = _COLOURS[c]
    return out


def plot_predictions(split: SceneSplit, plain: nn.Module, stack: nn.Module, device: torch.device, path: str, rows: int = 4):
    """A PNG: input / ground truth / (a) / (b) for ``rows`` test scenes with lights (a yellow one first, if any)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    lights = (split.y_test > 0).flatten(1).any(1)
    yellow = (split.y_test == 2).flatten(1).any(1)
    order = torch.cat([yellow.nonzero().squeeze(1)[:1], lights.nonzero().squeeze(1)])
    picks = list(dict.fromkeys(order.tolist()))[:rows] or list(range(min(rows, len(split.y_test))))
    x = split.x_test[picks]
    columns = [
        ("input", None),
        ("ground truth", split.y_test[picks]),
        ("(a) plain", predict(plain, x, device).cpu()),
        ("(b) balanced stack", predict(stack, x, device).cpu()),
    ]
    fig, axes = plt.subplots(len(picks), 4, figsize=(13, 1.9 * len(picks) + 0.4), squeeze=False)
    for r, i in enumerate(picks):
        for c, (title, masks) in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(x[r].permute(1, 2, 0).numpy() if masks is None else _paint(masks[r]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title)
        axes[r, 0].set_ylabel(f"test {i}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_demo(
    device: Optional[str] = None,
    steps: int = 600,
    seed: int = 0,
    out: str = "demo_seg_out",
    progress: bool = True,
    printer=print,
    *,
    n_train: int = TRAIN_SCENES,
    n_val: int = VAL_SCENES,
    n_test: int = TEST_SCENES,
    batch_size: int = 16,
) -> Dict[str, object]:
    """Train plain vs the balanced stack on the traffic-light scenes; print and return the test metrics.

    Writes ``confusion_plain.png``, ``confusion_balanced.png`` and
    ``predictions.png`` to ``out`` (when matplotlib is installed).
    """
    steps = _validate.integer(steps, "steps", low=1, caller="run_demo")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    start = time.perf_counter()
    split = make_split(seed, n_train, n_val, n_test)
    stats = light_colour_shares(split.y_train)
    printer(
        f"data: procedural street scenes {HEIGHT}x{WIDTH}, train {n_train} / val {n_val} / test {n_test}; traffic-light "
        f"pixels red {stats['red']:.0%} / yellow {stats['yellow']:.0%} / green {stats['green']:.0%}, background : "
        f"lights = {stats['background_ratio']:.0f} : 1; device {dev}, seed {seed}, {steps} steps of {batch_size} crops "
        f"{CROP[0]}x{CROP[1]} per run"
    )
    plain = train(split, False, steps=steps, seed=seed, device=dev, batch_size=batch_size, progress=progress)
    stack = train(split, True, steps=steps, seed=seed, device=dev, batch_size=batch_size, progress=progress)
    a, b = plain.summary(), stack.summary()
    printer(
        f"(b) = {stack.recipe['sampler']} + crop_focus (p={stack.recipe['crop_focus_p']}) + "
        f"{stack.recipe['loss']}(weight={stack.recipe['weight']})"
    )
    printer("")
    printer(f"{'test pixels':<22}{'(a) plain':>12}{'(b) balanced':>14}")
    printer(f"{'pixel accuracy':<22}{a['accuracy']:>12.4%}{b['accuracy']:>14.4%}")
    printer(f"{'mean IoU':<22}{a['mean_iou']:>12.3f}{b['mean_iou']:>14.3f}")
    printer(f"{'traffic-light IoU':<22}{a['light_mean_iou']:>12.3f}{b['light_mean_iou']:>14.3f}")
    printer(f"{'traffic-light recall':<22}{a['light_mean_recall']:>12.3f}{b['light_mean_recall']:>14.3f}")
    for name in CLASS_NAMES:
        for key in ("iou", "recall"):
            label = f"{key if key == 'recall' else 'IoU'} {name}"
            printer(f"{label:<22}{a[f'{key}_{name}']:>12.3f}{b[f'{key}_{name}']:>14.3f}")
    printer(f"{'training time (s)':<22}{plain.seconds:>12.1f}{stack.seconds:>14.1f}")
    os.makedirs(out, exist_ok=True)
    paths: List[str] = []
    try:
        for run, name in ((plain, "confusion_plain.png"), (stack, "confusion_balanced.png")):
            run.metrics.plot_confusion_matrix(os.path.join(out, name))
            paths.append(os.path.join(out, name))
        paths.append(plot_predictions(split, plain.model, stack.model, dev, os.path.join(out, "predictions.png")))
    except ImportError:  # matplotlib missing: the numbers above are the result
        printer(f"figures: not drawn, matplotlib is not installed ({install_hint('matplotlib', 'plots')})")
    if paths:
        printer(f"figures: {', '.join(paths)}")
    seconds = time.perf_counter() - start
    printer(f"total time {seconds:.0f} s")
    return {"plain": a, "balanced": b, "recipe": stack.recipe, "paths": paths, "data": stats, "seconds": seconds}


def run_segmentation_demos(args, error) -> List[Dict[str, object]]:
    """``balancedtorch demo --task segmentation``: one run per seed, then mean +- std (``error``: the CLI's error type)."""
    if args.epochs is not None:
        raise error("--epochs applies to the classification demo; --task segmentation takes --steps")
    if args.no_feature_smote:
        raise error("--no-feature-smote applies to the classification demo (the segmentation demo has no FeatureSMOTE)")
    steps = 600 if args.steps is None else args.steps
    if steps < 1 or args.seeds < 1:
        raise error("--steps and --seeds must be >= 1")
    out = "demo_seg_out" if args.out is None else args.out
    results = []
    for s in range(args.seed, args.seed + args.seeds):
        folder = out if args.seeds == 1 else os.path.join(out, f"seed{s}")
        results.append(run_demo(args.device, steps, s, folder, progress=not args.no_progress))
        print()
    if args.seeds > 1:
        print(f"mean +- std over seeds {args.seed}..{args.seed + args.seeds - 1}:")
        keys = ["accuracy", "mean_iou", "light_mean_iou", "light_mean_recall"]
        keys += [f"{k}_{name}" for name in CLASS_NAMES[1:] for k in ("iou", "recall")]
        for key in keys:
            a = np.array([r["plain"][key] for r in results])
            b = np.array([r["balanced"][key] for r in results])
            print(f"  {key:<18} (a) {a.mean():.4f} +- {a.std():.4f}   (b) {b.mean():.4f} +- {b.std():.4f}")
    return results
