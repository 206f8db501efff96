"""Command line: ``balancedtorch demo | inspect LABELS | info`` (also ``python -m balancedtorch``)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# ----------------------------------------------------------------------------- inspect


def _parse_labels(values: Sequence[str], source: str) -> Tuple[np.ndarray, List[str]]:
    """Integer labels -> themselves; otherwise class names -> sorted names and their codes."""
    cleaned = [v.strip() for v in values]
    cleaned = [v for v in cleaned if v != ""]
    if not cleaned:
        raise CLIError(f"{source}: no labels found (empty input)")
    try:
        as_int = np.array([int(v) for v in cleaned], dtype=np.int64)
        return as_int, []
    except ValueError:
        pass
    try:
        as_float = np.array([float(v) for v in cleaned])
        if np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)):
            return as_float.astype(np.int64), []
    except ValueError:
        pass
    names = sorted(set(cleaned))
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[v] for v in cleaned], dtype=np.int64), names


def _read_csv(path: str, column: Optional[str]) -> Tuple[np.ndarray, List[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()
    if not text.strip():
        raise CLIError(f"{path}: the file is empty")
    rows = [r for r in csv.reader(text.splitlines()) if r]
    if not rows:
        raise CLIError(f"{path}: the file is empty")
    header = rows[0]
    try:
        has_header = csv.Sniffer().has_header(text[:4096])
    except csv.Error:
        has_header = False
    if column is not None and not column.lstrip("-").isdigit():
        has_header = True
    if column is None:
        col = 0
    elif column.lstrip("-").isdigit():
        col = int(column)
    else:
        if column not in header:
            raise CLIError(f"{path}: no column named {column!r} (columns: {', '.join(header)})")
        col = header.index(column)
    body = rows[1:] if has_header else rows
    try:
        values = [r[col] for r in body]
    except IndexError:
        raise CLIError(f"{path}: column {column or 0} is missing on some rows") from None
    name = header[col] if has_header else f"column {col}"
    return _parse_labels(values, f"{path} [{name}]")


def read_labels(path: str, column: Optional[str] = None) -> Tuple[np.ndarray, List[str]]:
    """Labels from .csv, .npy, .pt or a text file with one label per line."""
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, not a labels file")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".csv":
            return _read_csv(path, column)
        if ext == ".npy":
            arr = np.load(path, allow_pickle=False)
            if arr.size == 0:
                raise CLIError(f"{path}: no labels found (empty array)")
            return _parse_labels([str(v) for v in arr.reshape(-1).tolist()], path)
        if ext in (".pt", ".pth"):
            import torch

            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                obj = obj.get("labels", obj.get("targets"))
            if obj is None:
                raise CLIError(f"{path}: expected a tensor or list of labels (or a dict with 'labels')")
            arr = np.asarray(obj.cpu().numpy() if hasattr(obj, "cpu") else obj)
            if arr.size == 0:
                raise CLIError(f"{path}: no labels found (empty tensor)")
            return _parse_labels([str(v) for v in arr.reshape(-1).tolist()], path)
        with open(path, encoding="utf-8") as f:
            return _parse_labels(f.read().splitlines(), path)
    except CLIError:
        raise
    except UnicodeDecodeError:
        raise CLIError(f"{path}: not a text file (use .csv, .npy, .pt or one label per line)") from None
    except Exception as exc:  # unreadable file of the right extension: one line, no traceback
        raise CLIError(f"{path}: cannot read labels ({type(exc).__name__}: {exc})") from None


def suggest(counts: np.ndarray) -> List[str]:
    ratio = counts.max() / max(1, counts[counts > 0].min())
    lines = []
    if ratio < 1.5:
        lines.append("classes are nearly balanced: the default sampler and plain cross-entropy are fine")
        return lines
    if ratio <= 10:
        lines.append('sampler: bt.data.ClassBalancedSampler(labels, strategy="sqrt")  # mild imbalance')
        lines.append('loss:    bt.nn.CrossEntropyLoss(weight=bt.class_weights(labels, scheme="sqrt_inverse"))')
    elif ratio <= 100:
        lines.append('sampler: bt.data.ClassBalancedSampler(labels, strategy="sqrt")')
        lines.append("loss:    bt.nn.LogitAdjustedLoss(class_counts, tau=1.0)  # or FocalLoss(gamma=2, weight=...)")
        lines.append("augment: bt.augment.BatchAugment(..., class_p={rare class: 1.0, common class: 0.2})")
    else:
        lines.append('sampler: bt.data.ClassBalancedSampler(labels, strategy="balanced", schedule=30)  # severe: balanced, easing to natural over 30 epochs')
        lines.append('loss:    bt.nn.FocalLoss(gamma=2, weight=bt.class_weights(labels, scheme="effective_number"))')
        lines.append("data:    bt.resample.SMOTE / FeatureSMOTE for the rarest classes")
    if (counts < 10).any():
        lines.append(f"note: {int((counts < 10).sum())} class(es) have fewer than 10 samples; StratifiedBatchSampler keeps them in every batch")
    return lines


def inspect_labels(path: str, column: Optional[str] = None, out=print) -> dict:
    import torch

    from .weights import SCHEMES, class_weights

    labels, names = read_labels(path, column)
    if (labels < 0).any():
        raise CLIError(f"{path}: labels must be >= 0 integers or class names, found {int(labels.min())}")
    counts = np.bincount(labels)
    present = counts > 0
    total = int(counts.sum())
    display = names if names else [str(i) for i in range(len(counts))]
    ratio = counts.max() / counts[present].min()
    weights = {}
    for scheme in SCHEMES:
        weights[scheme] = class_weights(counts=torch.from_numpy(np.where(present, counts, 1)), scheme=scheme, normalize=None).tolist()
    out(f"{path}: {total} labels, {int(present.sum())} classes, imbalance ratio {ratio:.1f} (largest / smallest)")
    header = f"{'class':<16}{'count':>9}{'share':>9}" + "".join(f"{s:>18}" for s in SCHEMES)
    out(header)
    for c in range(len(counts)):
        if not present[c]:
            continue
        cells = "".join(f"{weights[s][c]:>18.1f}" if s == "inverse" else f"{weights[s][c]:>18.3f}" for s in SCHEMES)
        out(f"{display[c][:15]:<16}{counts[c]:>9}{counts[c] / total:>8.1%}{cells}")
    out("(class weights unnormalised: inverse = N / n_c; pass normalize='mean' for weights averaging 1)")
    out("suggested:")
    for line in suggest(counts[present]):
        out(f"  {line}")
    return {"counts": counts.tolist(), "names": display, "imbalance_ratio": float(ratio), "weights": weights}


# ----------------------------------------------------------------------------- entry point


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="balancedtorch", description="Training on imbalanced and imperfect data with PyTorch.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="train a small CNN twice: plain vs the balanced stack (digits or traffic lights)")
    d.add_argument("--task", choices=("classification", "segmentation"), default="classification",
                   help="classification: long-tailed digits (default); segmentation: traffic lights at 800:1")
    d.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    d.add_argument("--epochs", type=int, default=None, help="training epochs per run (classification; default 40)")
    d.add_argument("--steps", type=int, default=None, help="training steps per run (segmentation; default 600)")
    d.add_argument("--seed", type=int, default=0, help="seed of the split, the models and the sampling (default 0)")
    d.add_argument("--seeds", type=int, default=1, help="run seeds seed..seed+N-1 and print mean +- std (default 1)")
    d.add_argument("--out", default=None, help="folder for the PNGs (default demo_out; segmentation: demo_seg_out)")
    d.add_argument("--no-feature-smote", action="store_true", help="leave FeatureSMOTE out of the balanced stack")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    i = sub.add_parser("inspect", help="class counts, shares, imbalance ratio and class weights of a labels file")
    i.add_argument("labels", help="a .csv (see --column), .npy, .pt or text file with one label per line")
    i.add_argument("--column", default=None, help="CSV column name or index (default: the first)")
    i.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    sub.add_parser("info", help="build information (torch versions, CUDA, CPU capability)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "info":
            from . import build_info

            for key, value in build_info().items():
                print(f"{key:<18}{value}")
            return 0
        if args.command == "inspect":
            result = inspect_labels(args.labels, args.column)
            if args.json:
                print(json.dumps(result))
            return 0
        if args.command == "demo" and args.task == "segmentation":
            from .demo_seg import run_segmentation_demos

            run_segmentation_demos(args, CLIError)
            return 0
        if args.command == "demo":
            if args.steps is not None:
                raise CLIError("--steps applies to --task segmentation; the classification demo takes --epochs")
            args.epochs = 40 if args.epochs is None else args.epochs
            args.out = "demo_out" if args.out is None else args.out
            if args.epochs < 1 or args.seeds < 1:
                raise CLIError("--epochs and --seeds must be >= 1")
            from .demo import run_demo

            results = []
            for s in range(args.seed, args.seed + args.seeds):
                out = args.out if args.seeds == 1 else os.path.join(args.out, f"seed{s}")
                results.append(
                    run_demo(args.device, args.epochs, s, out, feature_smote=not args.no_feature_smote, progress=not args.no_progress)
                )
                print()
            if args.seeds > 1:
                print(f"mean +- std over seeds {args.seed}..{args.seed + args.seeds - 1}:")
                for key in ("accuracy", "balanced_accuracy", "macro_f1"):
                    a = np.array([r["plain"][key] for r in results])
                    b = np.array([r["balanced"][key] for r in results])
                    print(f"  {key:<18} (a) {a.mean():.3f} +- {a.std():.3f}   (b) {b.mean():.3f} +- {b.std():.3f}   gain {np.mean(b - a):+.3f}")
            return 0
    except CLIError as exc:
        print(f"balancedtorch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
