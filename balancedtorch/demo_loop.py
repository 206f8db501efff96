"""The loop demo (``balancedtorch demo --task loop``): detect an unseen slice, label a budget of it, retrain.

The digits of the main demo (scikit-learn's 1,797 8x8 digits, upscaled to
16x16, no download) are split per class into a training set, a validation
set, a production pool and a test set. Training and validation hold upright
digits only; in the production pool a share of the digits is rotated by 90
degrees: a slice the model never saw (the unseen slice of the main demo).

1. **Train** a small CNN on the upright training digits.
2. **Detect**: a :class:`~balancedtorch.quality.NoveltyDetector` on the
   model's embeddings (cut at 95% of validation) flags the novel part of the
   pool, and a :class:`~balancedtorch.quality.DriftMonitor` compares the
   pool's predicted classes with the validation's.
3. **Select** a labelling budget from the pool with each strategy of
   :func:`~balancedtorch.quality.select_for_labeling` (``random``, ``margin``,
   ``kcenter``, ``novelty``, ``balanced``), "label" it (the ground truth stands
   in for the annotator) and **retrain** from scratch on training + selection.
4. **Report** per strategy and budget the accuracy on the test digits rotated
   (the unseen slice) and on the whole test set (upright + rotated), mean ±
   std over seeds, the share of the selection that fell in the slice, and the
   path of the :func:`~balancedtorch.quality.audit` report of the first seed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from . import quality
from ._optional import require
from .demo import NUM_CLASSES, SIZE, embed, predict, rotated

STRATEGIES = ("random", "margin", "kcenter", "novelty", "balanced")
#: Per class: training, validation, production pool and test digits (the smallest digit class has 174).
PER_CLASS = {"train": 40, "val": 20, "pool": 60, "test": 35}
#: Share of the production pool that is rotated by 90 degrees (the unseen slice).
ROTATED_SHARE = 0.3
BUDGETS = (15, 30, 60, 120)
STEPS = 400
BATCH = 64
NOVELTY_K = 1  # as the main demo: the nearest neighbour separates the rotated digits on a small bank
NOVELTY_TPR = 0.95


@dataclass
class LoopSplit:
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_pool: Tensor
    y_pool: Tensor
    rotated_pool: Tensor  # bool, which pool digits are rotated
    x_test: Tensor  # upright test digits; the rotated copies are the unseen slice
    y_test: Tensor


def load_loop_split(seed: int = 0, per_class: Optional[Dict[str, int]] = None) -> LoopSplit:
    """The digits split per class; a ``ROTATED_SHARE`` of the pool rotated by 90 degrees."""
    per_class = dict(PER_CLASS, **(per_class or {}))
    datasets = require("sklearn.datasets", "the loop demo (its data are scikit-learn's digits)", "demo")
    digits = datasets.load_digits()
    images = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0
    images = nn.functional.interpolate(images, size=(SIZE, SIZE), mode="bilinear", align_corners=False).clamp_(0, 1)
    labels = torch.from_numpy(digits.target).long()
    g = torch.Generator().manual_seed(seed)
    parts: Dict[str, List[Tensor]] = {k: [] for k in per_class}
    for c in range(NUM_CLASSES):
        idx = (labels == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        start = 0
        for key, size in per_class.items():
            parts[key].append(idx[start : start + size])
            start += size
    take = {k: torch.cat(v)[torch.randperm(sum(t.numel() for t in v), generator=g)] for k, v in parts.items()}
    x_pool = images[take["pool"]].clone()
    turned = torch.rand(len(x_pool), generator=g) < ROTATED_SHARE
    x_pool[turned] = rotated(x_pool[turned])
    return LoopSplit(
        images[take["train"]],
        labels[take["train"]],
        images[take["val"]],
        labels[take["val"]],
        x_pool,
        labels[take["pool"]],
        turned,
        images[take["test"]],
        labels[take["test"]],
    )


class TinyNet(nn.Module):
    """A two-layer perceptron on the 16x16 pixels: backbone (64-d embeddings) and a linear head.

    The demo retrains a model per strategy, budget and seed (33 times): the
    main demo's CNN takes about a minute per training on 2 busy CPU cores,
    this one about a second, and it misreads rotated digits just as well.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, hidden: int = 128, dim: int = 64) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Flatten(), nn.Linear(SIZE * SIZE, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim), nn.ReLU(inplace=True)
        )
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def fit(x: Tensor, y: Tensor, *, steps: int, seed: int, device: torch.device) -> nn.Module:
    """A :class:`TinyNet` trained from scratch for ``steps`` steps of ``BATCH`` (uniform draws), plain cross-entropy."""
    torch.manual_seed(seed)
    model = TinyNet().to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    x, y = x.to(device), y.to(device)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(y), (min(BATCH, len(y)),), generator=g).to(device)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    return model


def accuracies(model: nn.Module, split: LoopSplit, device: torch.device) -> Dict[str, float]:
    """Accuracy on the rotated test digits (the slice), the upright ones, and all of them."""
    up = (predict(model, split.x_test, device).argmax(1).cpu() == split.y_test).double()
    rot = (predict(model, rotated(split.x_test), device).argmax(1).cpu() == split.y_test).double()
    return {"slice": float(rot.mean()), "upright": float(up.mean()), "overall": float(torch.cat([up, rot]).mean())}


def select(strategy: str, budget: int, model: nn.Module, split: LoopSplit, device: torch.device, seed: int) -> Tensor:
    """``budget`` pool indices to label, by ``strategy`` (``"random"``: uniform, without replacement)."""
    g = torch.Generator().manual_seed(seed + 777)
    if strategy == "random":
        return torch.randperm(len(split.y_pool), generator=g)[:budget]
    pool = embed(model, split.x_pool, device).cpu()
    return quality.select_for_labeling(
        pool,
        budget,
        strategy=strategy,
        labeled_features=embed(model, split.x_train, device).cpu(),
        pred_probs=predict(model, split.x_pool, device).cpu(),
        generator=g,
        distributed=False,
    )


def detect(model: nn.Module, split: LoopSplit, device: torch.device) -> Dict[str, float]:
    """Novelty flags on the pool (rotated vs upright) and drift of the pool's predicted classes against validation."""
    detector = quality.NoveltyDetector(k=NOVELTY_K).fit(embed(model, split.x_train, device))
    detector.threshold(embed(model, split.x_val, device), tpr=NOVELTY_TPR)
    flagged = detector.predict(embed(model, split.x_pool, device)).cpu()
    monitor = quality.DriftMonitor(predict(model, split.x_val, device).cpu())
    monitor.update(predict(model, split.x_pool, device).cpu())
    status = monitor.status(distributed=False)
    return {
        "flag_rate_rotated": float(flagged[split.rotated_pool].double().mean()),
        "flag_rate_upright": float(flagged[~split.rotated_pool].double().mean()),
        "psi": status["psi"],
        "p_value": status["p_value"],
        "drift": status["drift"],
    }


def run_loop(
    device: Optional[str] = None,
    seed: int = 0,
    *,
    budgets: Sequence[int] = BUDGETS,
    strategies: Sequence[str] = STRATEGIES,
    steps: int = STEPS,
    out: Optional[str] = "demo_loop_out",
    per_class: Optional[Dict[str, int]] = None,
    printer=print,
) -> Dict[str, object]:
    """One seed of the loop; returns ``base`` accuracies, ``detect``, ``results[strategy][budget]`` and ``audit``."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    split = load_loop_split(seed, per_class)
    base = fit(split.x_train, split.y_train, steps=steps, seed=seed, device=dev)
    base_acc = accuracies(base, split, dev)
    found = detect(base, split, dev)
    printer(
        f"seed {seed}: trained on {len(split.y_train)} upright digits; production pool {len(split.y_pool)} "
        f"({int(split.rotated_pool.sum())} rotated by 90 degrees). Base model: slice {base_acc['slice']:.3f}, "
        f"overall {base_acc['overall']:.3f}"
    )
    printer(
        f"  detect: NoveltyDetector flags {found['flag_rate_rotated']:.0%} of the rotated pool digits vs "
        f"{found['flag_rate_upright']:.0%} of the upright; DriftMonitor PSI {found['psi']:.3f}, "
        f"p {found['p_value']:.2g}: {'drift' if found['drift'] else 'no drift'}"
    )
    audit_path = None
    if out is not None:
        os.makedirs(out, exist_ok=True)
        audit_path = quality.audit(
            labels=split.y_train,
            pred_probs=predict(base, split.x_train, dev).cpu(),
            features=embed(base, split.x_train, dev).cpu(),
            images=split.x_train,
            test_features=embed(base, split.x_pool, dev).cpu(),
            class_names=[str(c) for c in range(NUM_CLASSES)],
            path=os.path.join(out, "audit.html"),
            test_images=split.x_pool,
            production_preds=predict(base, split.x_pool, dev).cpu(),
            title=f"Loop demo: the base model and the production pool (seed {seed})",
        )
    results: Dict[str, Dict[int, Dict[str, float]]] = {}
    for strategy in strategies:
        results[strategy] = {}
        for budget in budgets:
            picked = select(strategy, budget, base, split, dev, seed)
            x = torch.cat([split.x_train, split.x_pool[picked]])
            y = torch.cat([split.y_train, split.y_pool[picked]])  # the ground truth stands in for the annotator
            model = fit(x, y, steps=steps, seed=seed, device=dev)
            acc = accuracies(model, split, dev)
            acc["rotated_picked"] = float(split.rotated_pool[picked].double().mean())
            results[strategy][budget] = acc
    return {"base": base_acc, "detect": found, "results": results, "audit": audit_path}


def _pm(values: Sequence[float]) -> str:
    a = np.asarray(values, dtype=np.float64)
    return f"{a.mean():.3f} ± {a.std():.3f}"


def run_loop_demo(
    device: Optional[str] = None,
    seed: int = 0,
    seeds: int = 3,
    *,
    budgets: Sequence[int] = BUDGETS,
    strategies: Sequence[str] = STRATEGIES,
    steps: int = STEPS,
    out: Optional[str] = "demo_loop_out",
    per_class: Optional[Dict[str, int]] = None,
    printer=print,
) -> Dict[str, object]:
    """``seeds`` runs of :func:`run_loop` (seeds ``seed..seed+seeds-1``) and the table of mean ± std."""
    start = time.perf_counter()
    threads = torch.get_num_threads()
    # batches of 64 rows through a 2-layer perceptron: on a shared CPU, torch's thread pool costs more than it
    # saves (0.3 s per training on one thread vs 4.6 s on two, 2 busy cores)
    torch.set_num_threads(1)
    try:
        runs = _runs(device, seed, seeds, budgets, strategies, steps, out, per_class, printer)
    finally:
        torch.set_num_threads(threads)
    return _summary(runs, seed, seeds, budgets, strategies, start, printer)


def _runs(device, seed, seeds, budgets, strategies, steps, out, per_class, printer) -> List[Dict[str, object]]:
    return [
        run_loop(
            device,
            s,
            budgets=budgets,
            strategies=strategies,
            steps=steps,
            out=out if s == seed else None,
            per_class=per_class,
            printer=printer,
        )
        for s in range(seed, seed + seeds)
    ]


def _summary(runs, seed, seeds, budgets, strategies, start, printer) -> Dict[str, object]:
    printer("")
    printer(
        f"mean ± std over seeds {seed}..{seed + seeds - 1}; accuracy on the rotated test digits (slice) and on all test digits"
    )
    printer(f"{'strategy':<10}{'budget':>7}{'slice':>17}{'overall':>17}{'picked rotated':>17}")
    printer(
        f"{'none':<10}{0:>7}{_pm([r['base']['slice'] for r in runs]):>17}{_pm([r['base']['overall'] for r in runs]):>17}{'-':>17}"
    )
    table: Dict[str, Dict[int, Dict[str, List[float]]]] = {}
    for strategy in strategies:
        table[strategy] = {}
        for budget in budgets:
            cells = {key: [r["results"][strategy][budget][key] for r in runs] for key in ("slice", "overall", "rotated_picked")}
            table[strategy][budget] = cells
            printer(
                f"{strategy:<10}{budget:>7}{_pm(cells['slice']):>17}{_pm(cells['overall']):>17}"
                f"{np.mean(cells['rotated_picked']):>17.0%}"
            )
    seconds = time.perf_counter() - start
    audit_path = runs[0]["audit"]
    if audit_path is not None:
        printer(f"audit report of seed {seed}: {audit_path} (open it in a browser)")
    printer(f"time: {seconds:.0f} s")
    return {"runs": runs, "table": table, "seconds": seconds, "audit": audit_path}


def run_loop_demos(args, error) -> Dict[str, object]:
    """``balancedtorch demo --task loop``: the command line's options checked (``error``: the CLI's error class)."""
    if args.epochs is not None:
        raise error("--epochs applies to the classification demo; --task loop takes --steps")
    if args.no_feature_smote:
        raise error("--no-feature-smote applies to the classification demo")
    steps = STEPS if args.steps is None else args.steps
    if steps < 1 or args.seeds < 1:
        raise error("--steps and --seeds must be >= 1")
    out = "demo_loop_out" if args.out is None else args.out
    return run_loop_demo(args.device, args.seed, args.seeds, steps=steps, out=out)
