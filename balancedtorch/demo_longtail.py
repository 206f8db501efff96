"""The long-tail demo (``balancedtorch demo --task longtail``): the long-tailed recognition methods side by side.

A 10-class training set with CIFAR-10-LT's exponential profile (class ``c``
keeps ``int(largest * 100 ** (-c / 9))`` images: imbalance ratio 100) and a
balanced test set. By default the data are generated (no download): colour
images of 16x16 pixels, each class a smooth random colour pattern (fixed for
every seed) seen through a random smooth nuisance pattern, pixel noise and a
shift of up to 2 pixels; 500 images in the largest class, 5 in the smallest,
100 test images per class. With ``--data-root`` the real CIFAR-10 is read from
a local copy (the python batches in ``cifar-10-batches-py/``, the folder
``torchvision.datasets.CIFAR10(root, download=False)`` reads; nothing is
downloaded) and cut to CIFAR-10-LT as Cao et al. (2019) do: a fixed random
subset per class, 5,000 down to 50; the test set is the full balanced one.

The same small CNN (three conv blocks, global average pooling, a linear
head) is trained from scratch with each method (``--methods``), for the same
epochs, batches and schedule, over several seeds; reported on the balanced
test set: balanced accuracy (= top-1 accuracy on a balanced test set) and the
accuracy of the many-shot, medium-shot and few-shot classes, mean ± std over
the seeds, printed and written to the output folder. Figures the papers
report on the real CIFAR-10-LT are printed for context, labelled as quoted.

Each method and the balancedtorch class it uses is one entry of
:data:`METHODS`; a method whose class this build lacks is skipped (and named).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from . import augment
from . import nn as btnn
from .weights import class_weights

NUM_CLASSES = 10
IMBALANCE_RATIO = 100.0
LARGEST = 500  # generated data: 500 images in the largest class, 5 in the smallest
TEST_PER_CLASS = 100
SIZE = 16
EPOCHS = 30  # MixUp and Remix need the longer schedule (Chou et al. 2020); at 15 they had not fitted the tail
BATCH = 64
SEEDS = 3
LR = 0.1
#: LDAM-DRW switches to class-balanced weights after this share of the epochs (Cao et al. switch at 160 of 200)
DRW_AT = 2.0 / 3.0
#: Effective-number beta of the class-balanced weights (Cui et al. 2019; focal and DRW)
CB_BETA = 0.9999
FOCAL_GAMMA = 1.0
#: MixUp and Remix (Chou et al. 2020): Beta(alpha, alpha) mixing on CIFAR, and Remix's kappa and tau for all their runs
MIX_ALPHA = 1.0
REMIX_KAPPA = 3.0
REMIX_TAU = 0.5
#: Shot groups by training images per class, as fractions of the largest class. With 500 images (generated)
#: they are the literature's thresholds, many > 100 and few < 20; on CIFAR-10-LT (5,000) many > 1,000, few < 200.
#: Either way: 4 many-shot, 3 medium-shot and 3 few-shot classes.
MANY_FRACTION = 1.0 / 5.0
FEW_FRACTION = 1.0 / 25.0
#: The generated classes' patterns are the same for every seed (one "world"); the images drawn depend on the seed.
WORLD_SEED = 2026
NUISANCE = 1.0
PIXEL_NOISE = 0.3
MAX_SHIFT = 2
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_SUBSET_SEED = 0  # one CIFAR-10-LT subset for every seed, as the papers' fixed training set


# ---------------------------------------------------------------- data


@dataclass
class LongTailData:
    name: str
    x_train: Tensor  # float32 (N, 3, H, W), normalised
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    counts: List[int] = field(default_factory=list)


def long_tail_counts(largest: int, ratio: float = IMBALANCE_RATIO, k: int = NUM_CLASSES) -> List[int]:
    """CIFAR-10-LT's profile: class ``c`` keeps ``int(largest * ratio ** (-c / (k - 1)))`` images (at least 1)."""
    return [max(1, int(largest * ratio ** (-c / (k - 1)))) for c in range(k)]


def shot_groups(counts: Sequence[int]) -> Dict[str, List[int]]:
    """Classes by training images: many (> largest * MANY_FRACTION), few (< largest * FEW_FRACTION), medium between."""
    top = max(counts)
    many = [c for c, n in enumerate(counts) if n > top * MANY_FRACTION]
    few = [c for c, n in enumerate(counts) if n < top * FEW_FRACTION]
    medium = [c for c in range(len(counts)) if c not in many and c not in few]
    return {"many": many, "medium": medium, "few": few}


def _smooth(n: int, g: torch.Generator) -> Tensor:
    """Random smooth colour fields (n, 3, SIZE, SIZE): 4x4 normal noise upsampled bicubically."""
    coarse = torch.randn(n, 3, 4, 4, generator=g)
    return nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=False)


def _draw(patterns: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
    n = labels.numel()
    x = patterns[labels] + NUISANCE * _smooth(n, g) + PIXEL_NOISE * torch.randn(n, 3, SIZE, SIZE, generator=g)
    shifts = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (n, 2), generator=g).tolist()
    return torch.stack([torch.roll(img, (dy, dx), (1, 2)) for img, (dy, dx) in zip(x, shifts)]) if n else x


def synthetic_long_tail(
    seed: int = 0, largest: int = LARGEST, test_per_class: int = TEST_PER_CLASS, ratio: float = IMBALANCE_RATIO
) -> LongTailData:
    """Generated 16x16 colour images, 10 classes, CIFAR-10-LT's profile from ``largest``; a balanced test set."""
    patterns = _smooth(NUM_CLASSES, torch.Generator().manual_seed(WORLD_SEED))
    g = torch.Generator().manual_seed(seed)
    counts = long_tail_counts(largest, ratio)
    y_train = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(counts)])
    y_test = torch.arange(NUM_CLASSES).repeat_interleave(test_per_class)
    x_train, x_test = _draw(patterns, y_train, g), _draw(patterns, y_test, g)
    return LongTailData(
        f"generated 16x16 colour patterns, {NUM_CLASSES} classes (largest {counts[0]}, smallest {counts[-1]})",
        x_train,
        y_train,
        x_test,
        y_test,
        counts,
    )


class _CifarUnpickler(pickle.Unpickler):
    """Reads CIFAR's python batches (dicts of numpy arrays and lists) and nothing that could run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3 (a str -> bytes conversion)
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            import importlib

            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR-10 batch")


def _cifar_folder(root: str) -> str:
    """``root/cifar-10-batches-py`` (torchvision's root), or ``root`` itself when it is that folder."""
    for folder in (os.path.join(root, CIFAR_FOLDER), root):
        if os.path.isfile(os.path.join(folder, "test_batch")):
            return folder
    raise FileNotFoundError(
        f"no CIFAR-10 python batches under {root!r}: expected {os.path.join(root, CIFAR_FOLDER)}/data_batch_1..5 and "
        "test_batch (the folder torchvision.datasets.CIFAR10(root, download=True) creates; nothing is downloaded here)"
    )


def _read_batch(path: str) -> Tuple[np.ndarray, np.ndarray]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing CIFAR-10 batch")
    with open(path, "rb") as f:
        entry = _CifarUnpickler(f, encoding="bytes").load()
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: not a CIFAR-10 batch (a dict with 'data' and 'labels')")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    labels = entry.get("labels", entry.get("fine_labels"))
    data = np.asarray(entry.get("data"))
    if labels is None or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(labels):
        raise ValueError(f"{path}: not a CIFAR-10 batch ('data' of shape (N, 3072) uint8 and N 'labels')")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def load_cifar10(root: str) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """CIFAR-10 from a local copy: (train images uint8 (N, 3, 32, 32), train labels, test images, test labels)."""
    folder = _cifar_folder(root)
    parts = [_read_batch(os.path.join(folder, f"data_batch_{i}")) for i in range(1, 6)]
    x_test, y_test = _read_batch(os.path.join(folder, "test_batch"))
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    for name, y in (("training", y_train), ("test", y_test)):
        if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise ValueError(f"{folder}: {name} labels outside 0..9, not CIFAR-10")
    return (torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(x_test), torch.from_numpy(y_test))


def cifar10_long_tail(root: str, ratio: float = IMBALANCE_RATIO) -> LongTailData:
    """CIFAR-10-LT from a local CIFAR-10: per class a fixed random subset of ``int(n_max * ratio ** (-c / 9))`` images.

    ``n_max`` is the smallest class's size in the training batches (5,000 in
    CIFAR-10). Images are scaled to [0, 1] and normalised with the training
    subset's per-channel mean and standard deviation.
    """
    x_train, y_train, x_test, y_test = load_cifar10(root)
    available = torch.bincount(y_train, minlength=NUM_CLASSES)
    if int(available.min()) == 0:
        raise ValueError(f"{root}: some CIFAR-10 classes have no training images: {available.tolist()}")
    counts = long_tail_counts(int(available.min()), ratio)
    g = torch.Generator().manual_seed(CIFAR_SUBSET_SEED)
    keep = []
    for c, n in enumerate(counts):
        idx = (y_train == c).nonzero().squeeze(1)
        keep.append(idx[torch.randperm(idx.numel(), generator=g)[:n]])
    keep = torch.cat(keep)
    xs, ys = x_train[keep].float().div_(255), y_train[keep]
    mean, std = xs.mean((0, 2, 3), keepdim=True), xs.std((0, 2, 3), keepdim=True).clamp_min(1e-3)
    x_test = (x_test.float().div_(255) - mean) / std
    return LongTailData(
        f"CIFAR-10-LT from {root} (largest {counts[0]}, smallest {counts[-1]})", (xs - mean) / std, ys, x_test, y_test, counts
    )


# ---------------------------------------------------------------- the network


class NormedLinear(nn.Module):
    """Cosine-similarity head (LDAM's NormedLinear): logits in [-1, 1], which LDAM scales by ``s``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features).uniform_(-1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.normalize(x, dim=1) @ nn.functional.normalize(self.weight, dim=0)


class SmallNet(nn.Module):
    """Three conv blocks (width 8, 16, 32), global average pooling and a head; any input size."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 8, normed: bool = False) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        cin = 3
        for i, cout in enumerate((width, 2 * width, 4 * width)):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
            cin = cout
        self.backbone = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = NormedLinear(cin, num_classes) if normed else nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


# ---------------------------------------------------------------- the methods


class DeferredReweighting(nn.Module):
    """DRW (Cao et al. 2019): ``before`` until epoch ``switch``, then ``after`` (the same loss, class-balanced weights)."""

    def __init__(self, before: nn.Module, after: nn.Module, switch: int) -> None:
        super().__init__()
        self.before, self.after, self.switch = before, after, switch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return (self.before if self.epoch < self.switch else self.after)(input, target)


def _cb_weights(counts: Sequence[int]) -> Tensor:
    return class_weights(counts=counts, scheme="effective_number", beta=CB_BETA)


def drw_epoch(epochs: int) -> int:
    """The epoch from which DRW uses the class-balanced weights: ``round(DRW_AT * epochs)``."""
    return int(round(DRW_AT * epochs))


def _drw(before: nn.Module, after: nn.Module, epochs: int) -> DeferredReweighting:
    return DeferredReweighting(before, after, switch=drw_epoch(epochs))


@dataclass(frozen=True)
class Method:
    """One row of the table: the loss (built per run from the class counts), and what the run changes besides."""

    label: str
    uses: str  # the balancedtorch classes it uses, as printed
    needs: Tuple[str, ...]  # names in bt.nn it needs; missing from this build -> the method is skipped
    loss: Callable[[List[int], int], nn.Module]  # (training images per class, epochs) -> criterion
    normed_head: bool = False  # LDAM's cosine head (the paper's recipe)
    mix: Optional[str] = None  # "mixup": MixUp on every batch; "remix": MixUp with Remix labels (MIX_ALPHA, REMIX_*)


METHODS: Dict[str, Method] = {
    "ce": Method("CE", "bt.nn.CrossEntropyLoss", ("CrossEntropyLoss",), lambda counts, epochs: btnn.CrossEntropyLoss()),
    "focal": Method(
        "CB focal",
        f"bt.nn.FocalLoss(gamma={FOCAL_GAMMA:g}, weight=bt.class_weights(effective_number, beta={CB_BETA}))",
        ("FocalLoss",),
        lambda counts, epochs: btnn.FocalLoss(gamma=FOCAL_GAMMA, weight=_cb_weights(counts)),
    ),
    "drw": Method(
        "CE-DRW",
        f"bt.nn.CrossEntropyLoss; weight=bt.class_weights(effective_number) from {DRW_AT:.0%} of the epochs",
        ("CrossEntropyLoss",),
        lambda counts, epochs: _drw(btnn.CrossEntropyLoss(), btnn.CrossEntropyLoss(weight=_cb_weights(counts)), epochs),
    ),
    "ldam-drw": Method(
        "LDAM-DRW",
        f"bt.nn.LDAMLoss(max_m=0.5, s=30), cosine head; weight=bt.class_weights(effective_number) from {DRW_AT:.0%} of the epochs",
        ("LDAMLoss",),
        lambda counts, epochs: _drw(
            btnn.LDAMLoss(counts, max_m=0.5, s=30.0), btnn.LDAMLoss(counts, max_m=0.5, s=30.0, weight=_cb_weights(counts)), epochs
        ),
        normed_head=True,
    ),
    "balanced-softmax": Method(
        "Balanced Softmax",
        "bt.nn.BalancedSoftmaxLoss",
        ("BalancedSoftmaxLoss",),
        lambda counts, epochs: btnn.BalancedSoftmaxLoss(counts),
    ),
    "la": Method(
        "Logit adjustment",
        "bt.nn.LogitAdjustedLoss(tau=1)",
        ("LogitAdjustedLoss",),
        lambda counts, epochs: btnn.LogitAdjustedLoss(counts, tau=1.0),
    ),
    "vs": Method(
        "VS",
        "bt.nn.VSLoss(gamma=0.3, tau=1)",
        ("VSLoss",),
        lambda counts, epochs: btnn.VSLoss(counts, gamma=0.3, tau=1.0),
    ),
    "seesaw": Method(
        "Seesaw",
        "bt.nn.SeesawLoss(p=0.8, q=2)",
        ("SeesawLoss",),
        lambda counts, epochs: btnn.SeesawLoss(len(counts), p=0.8, q=2.0),
    ),
    "mixup": Method(
        "CE + MixUp",
        f"bt.augment.MixUp(alpha={MIX_ALPHA:g}) + bt.nn.CrossEntropyLoss",
        ("CrossEntropyLoss",),
        lambda counts, epochs: btnn.CrossEntropyLoss(),
        mix="mixup",
    ),
    "remix": Method(
        "CE + Remix",
        f"bt.augment.MixUp(alpha={MIX_ALPHA:g}, remix=True, kappa={REMIX_KAPPA:g}, tau={REMIX_TAU:g}) + bt.nn.CrossEntropyLoss",
        ("CrossEntropyLoss",),
        lambda counts, epochs: btnn.CrossEntropyLoss(),
        mix="remix",
    ),
    "remix-drw": Method(
        "Remix-DRW",
        f"bt.augment.MixUp(alpha={MIX_ALPHA:g}, remix=True, kappa={REMIX_KAPPA:g}, tau={REMIX_TAU:g}) + bt.nn.CrossEntropyLoss; "
        f"weight=bt.class_weights(effective_number) from {DRW_AT:.0%} of the epochs",
        ("CrossEntropyLoss",),
        lambda counts, epochs: _drw(btnn.CrossEntropyLoss(), btnn.CrossEntropyLoss(weight=_cb_weights(counts)), epochs),
        mix="remix",
    ),
}

#: Top-1 accuracy on the real CIFAR-10-LT (rho = 100, ResNet-32, the papers' own schedules and augmentation) as the
#: papers report it: quoted for context, not reproduced by this demo. Only figures checked against the paper's text
#: are given; a method without one is left out rather than guessed. Chou et al. (2020, "Remix: Rebalanced Mixup",
#: ECCV workshops) Table 1 trains 300 epochs (DRW at epoch 250) and averages 5 runs; its figures marked as taken
#: from other papers are credited to those. method -> (its label, top-1 %, source).
QUOTED: Dict[str, Tuple[str, float, str]] = {
    "ce": ("CE (ERM)", 71.86, "Chou et al. 2020, Table 1"),
    "focal": ("CB focal", 74.57, "Cui et al. 2019 (CVPR), as listed in Chou et al. 2020, Table 1"),
    "drw": ("CE-DRW", 74.86, "Cao et al. 2019 (NeurIPS), as listed in Chou et al. 2020, Table 1"),
    "ldam-drw": ("LDAM-DRW", 77.03, "Cao et al. 2019 (NeurIPS): top-1 error 22.97%, 200 epochs"),
    "mixup": ("CE + MixUp", 73.09, "Chou et al. 2020, Table 1"),
    "remix": ("CE + Remix", 75.36, "Chou et al. 2020, Table 1"),
    "remix-drw": ("Remix-DRW", 79.76, "Chou et al. 2020, Table 1 (the best Remix variant there)"),
}


def available(name: str) -> bool:
    """Whether this build of balancedtorch has every class ``METHODS[name]`` uses."""
    return all(hasattr(btnn, n) for n in METHODS[name].needs)


# ---------------------------------------------------------------- training and evaluation


def build_run(
    name: str, counts: List[int], epochs: int, device: torch.device
) -> Tuple[nn.Module, nn.Module, Optional[augment.MixUp]]:
    """What one run of method ``name`` trains with: a fresh SmallNet, its criterion, and its batch mixer (or None)."""
    method = METHODS[name]
    model = SmallNet(normed=method.normed_head).to(device)
    criterion = method.loss(counts, epochs).to(device)
    mix = None
    if method.mix is not None:
        mix = augment.MixUp(alpha=MIX_ALPHA, class_counts=counts, remix=method.mix == "remix", kappa=REMIX_KAPPA, tau=REMIX_TAU)
    return model, criterion, mix


def train_and_evaluate(
    data: LongTailData, name: str, *, epochs: int, seed: int, device: torch.device, batch_size: int = BATCH
) -> Dict[str, Any]:
    """One method, one seed: a fresh SmallNet trained for ``epochs``; per-class test accuracy and the group means."""
    torch.manual_seed(seed)
    counts = list(data.counts)  # plain ints: what every loss's class_counts takes
    model, criterion, mix = build_run(name, counts, epochs, device)
    optimiser = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4, nesterov=True)
    n = len(data.y_train)
    steps = math.ceil(n / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=LR, total_steps=epochs * steps)
    g = torch.Generator().manual_seed(seed)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        if hasattr(criterion, "set_epoch"):
            criterion.set_epoch(epoch)
        order = torch.randperm(n, generator=g).to(device)
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            x, y = x_train[idx], y_train[idx]
            if mix is not None:
                x, y = mix(x, y, generator=g)
            loss = criterion(model(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(data.x_test[i : i + 1000].to(device)).argmax(1).cpu() for i in range(0, len(data.y_test), 1000)])
    per_class = [float((pred[data.y_test == c] == c).double().mean()) for c in range(NUM_CLASSES)]
    groups = shot_groups(data.counts)
    out = {"per_class": per_class, "balanced_accuracy": float(np.mean(per_class)), "seconds": seconds}
    for group, classes in groups.items():
        out[group] = float(np.mean([per_class[c] for c in classes])) if classes else float("nan")
    return out


def _pm(values: Sequence[float]) -> str:
    a = np.asarray(values, dtype=np.float64)
    if np.isnan(a).all():
        return "-"
    return f"{np.nanmean(a):.3f} ± {np.nanstd(a):.3f}"


def run_longtail_demo(
    device: Optional[str] = None,
    seed: int = 0,
    seeds: int = SEEDS,
    *,
    epochs: int = EPOCHS,
    methods: Optional[Sequence[str]] = None,
    data_root: Optional[str] = None,
    out: Optional[str] = "demo_longtail_out",
    largest: int = LARGEST,
    test_per_class: int = TEST_PER_CLASS,
    printer=print,
) -> Dict[str, Any]:
    """Every method of ``methods`` (default: all that this build has) for seeds ``seed..seed+seeds-1``; the table.

    Returns a dict: ``table`` ({method: {"balanced_accuracy" | "many" | "medium" | "few": [one value per seed]}}),
    ``runs`` (every run's per-class accuracies), ``skipped`` (methods whose classes this build lacks),
    ``groups``, ``counts``, ``seconds`` and ``paths`` (the files written to ``out``).
    """
    start = time.perf_counter()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = list(METHODS) if methods is None else list(methods)
    skipped = [m for m in names if not available(m)]
    names = [m for m in names if available(m)]
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)  # batches of 64 small images: torch's thread pool costs more than it saves on a busy CPU
    try:
        fixed = cifar10_long_tail(data_root) if data_root is not None else None
        head = fixed or synthetic_long_tail(seed, largest, test_per_class)
        groups = shot_groups(head.counts)
        top = max(head.counts)
        printer(f"data: {head.name}; train {len(head.y_train)}, test {len(head.y_test)} (balanced); device {dev}")
        printer(f"train images per class: {head.counts} (imbalance ratio {head.counts[0] / head.counts[-1]:.0f})")
        printer(
            f"shot groups: many > {top * MANY_FRACTION:g} images {groups['many']}, few < {top * FEW_FRACTION:g} "
            f"{groups['few']}, medium between {groups['medium']}"
        )
        if skipped:
            printer(f"skipped (their classes are not in this build of balancedtorch): {', '.join(skipped)}")
        runs: Dict[str, List[Dict[str, Any]]] = {m: [] for m in names}
        for s in range(seed, seed + seeds):
            data = fixed or (head if s == seed else synthetic_long_tail(s, largest, test_per_class))
            for m in names:
                r = train_and_evaluate(data, m, epochs=epochs, seed=s, device=dev)
                runs[m].append(r)
                printer(f"  seed {s} {m:<17} balanced accuracy {r['balanced_accuracy']:.3f} ({r['seconds']:.1f} s)")
    finally:
        torch.set_num_threads(threads)
    keys = ("balanced_accuracy", "many", "medium", "few")
    table = {m: {k: [r[k] for r in runs[m]] for k in keys} for m in names}
    seconds = time.perf_counter() - start
    lines = [
        f"mean ± std over seeds {seed}..{seed + seeds - 1}, {epochs} epochs each, balanced test set "
        f"(many > {top * MANY_FRACTION:g} train images, few < {top * FEW_FRACTION:g})",
        f"{'method':<18}{'balanced acc':>15}{'many':>15}{'medium':>15}{'few':>15}   uses",
    ]
    for m in names:
        cells = table[m]
        lines.append(
            f"{m:<18}{_pm(cells['balanced_accuracy']):>15}{_pm(cells['many']):>15}{_pm(cells['medium']):>15}"
            f"{_pm(cells['few']):>15}   {METHODS[m].uses}"
        )
    quoted = [f"  {QUOTED[m][0]:<18}{QUOTED[m][1]:.2f}%   {QUOTED[m][2]}" for m in names if m in QUOTED]
    if quoted:
        lines += [
            "",
            "top-1 quoted from the papers, NOT reproduced here (real CIFAR-10-LT, rho = 100, ResNet-32, their schedules):",
        ]
        lines += quoted
    lines.append(f"time: {seconds:.0f} s")
    printer("")
    for line in lines:
        printer(line)
    paths: List[str] = []
    if out is not None:
        os.makedirs(out, exist_ok=True)
        text_path, json_path = os.path.join(out, "longtail_results.txt"), os.path.join(out, "longtail_results.json")
        with open(text_path, "w", encoding="utf-8") as f:
            f.write(f"data: {head.name}\ntrain images per class: {head.counts}\n\n" + "\n".join(lines) + "\n")
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "data": head.name,
                    "counts": head.counts,
                    "groups": groups,
                    "epochs": epochs,
                    "seeds": list(range(seed, seed + seeds)),
                    "uses": {m: METHODS[m].uses for m in names},
                    "runs": runs,
                    "skipped": skipped,
                    "quoted_not_reproduced": {m: {"top1": a, "source": src} for m, (_, a, src) in QUOTED.items() if m in names},
                    "seconds": seconds,
                },
                f,
                indent=1,
            )
        paths = [text_path, json_path]
        printer(f"table written: {text_path} and {json_path}")
    return {
        "table": table,
        "runs": runs,
        "skipped": skipped,
        "groups": groups,
        "counts": head.counts,
        "seconds": seconds,
        "paths": paths,
    }


def parse_methods(text: Optional[str], error) -> Optional[List[str]]:
    """``--methods a,b,c`` checked against :data:`METHODS` and this build (``error``: the CLI's error class)."""
    if text is None:
        return None
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not names:
        raise error(f"--methods must name at least one of {', '.join(METHODS)}")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise error(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    missing = [n for n in names if not available(n)]
    if missing:
        lacks = sorted({f"bt.nn.{c}" for n in missing for c in METHODS[n].needs if not hasattr(btnn, c)})
        raise error(f"--methods: {', '.join(missing)} need {', '.join(lacks)}, which this build of balancedtorch lacks")
    return list(dict.fromkeys(names))


def run_longtail_demos(args, error) -> Dict[str, Any]:
    """``balancedtorch demo --task longtail``: the command line's options checked (``error``: the CLI's error class)."""
    if args.steps is not None:
        raise error("--steps applies to --task segmentation and loop; --task longtail takes --epochs")
    if args.no_feature_smote:
        raise error("--no-feature-smote applies to the classification demo")
    epochs = EPOCHS if args.epochs is None else args.epochs
    if epochs < 1 or args.seeds < 1:
        raise error("--epochs and --seeds must be >= 1")
    methods = parse_methods(args.methods, error)
    if args.data_root is not None and not os.path.isdir(args.data_root):
        raise error(f"--data-root {args.data_root!r} is not a folder")
    out = "demo_longtail_out" if args.out is None else args.out
    try:
        return run_longtail_demo(
            args.device, args.seed, args.seeds, epochs=epochs, methods=methods, data_root=args.data_root, out=out
        )
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as exc:
        if args.data_root is None:
            raise
        raise error(f"--data-root: {exc}") from None
