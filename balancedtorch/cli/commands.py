"""The commands: ``inspect`` (:func:`inspect_labels`), ``inspect-predictions`` (:func:`inspect_predictions`), ``audit`` (:func:`audit_files`), ``demo`` and ``info`` (dispatched by :func:`_run`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

import numpy as np

from .._optional import MissingOptionalDependency
from ._common import _MAX_CLASSES, _MAX_SPARSE, CLIError, _names_list, _pct
from .advice import suggest
from .readers import _load, _numpy, _pick, _read_images, _read_mapping, read_labels, read_predictions

__all__ = ["inspect_labels", "inspect_predictions", "audit_files"]

_SHOWN_MISTAKES = 20  # "the 20 most confident mistakes"
_SHOWN_CLASSES = 10  # classes in the per-class table: with the rest, one screen
_SHOWN_ISSUES = 20


def inspect_labels(
    path: str,
    column: Optional[str] = None,
    out=print,
    *,
    ignore_index: Optional[int] = None,
    num_classes: Optional[int] = None,
    max_rows: int = 30,
    header: str = "auto",
) -> Dict[str, Any]:
    """Print class counts, shares, imbalance ratio, class weights and advice for a labels or masks file.

    Args:
        path (str): .csv/.tsv (a header row is detected; see ``--column``), .npy or .pt
            (1-D labels, or integer masks with ndim >= 2: pixels are counted), or
            text with one label per line.
        column (str, optional): CSV column name or index. Default: the only
            column that can hold labels (several candidates -> CLIError).
        out (callable): receives each output line. Default ``print``.
        ignore_index (int, optional): a label excluded from the counts (void pixels), reported apart.
        num_classes (int, optional): the number of classes; classes never seen get count-0 rows.
        max_rows (int): table rows shown, 0 for all. Default 30.
        header (str): ``"auto"`` (default), ``"yes"`` or ``"no"``: whether a CSV's first row is a header.

    Returns:
        dict: ``counts``, ``names``, ``imbalance_ratio``, ``weights`` (None for
        classes never seen), ``ignored``, ``absent``, ``masks`` and, for masks,
        ``images`` and ``images_with_class``.
    """
    import torch

    from ..weights import SCHEMES, class_weights

    if num_classes is not None and num_classes < 1:
        raise CLIError(f"--num-classes must be >= 1, got {num_classes}")
    if max_rows < 0:
        raise CLIError(f"--max-rows must be >= 0 (0 shows every class), got {max_rows}")
    if header not in ("auto", "yes", "no"):
        raise CLIError(f"--header must be auto, yes or no, got {header!r}")
    loaded = _load(path, column, header)
    names = loaded.names
    if names and (ignore_index is not None or num_classes is not None):
        flag = "--ignore-index" if ignore_index is not None else "--num-classes"
        raise CLIError(f"{path}: {flag} needs integer labels, but the labels are names ({_names_list(names)})")
    flat = loaded.labels.reshape(-1)
    keep = np.ones(flat.shape, dtype=bool) if ignore_index is None else flat != ignore_index
    ignored = int(flat.size - keep.sum())
    kept = flat[keep]
    unit = "pixels" if loaded.masks else "labels"
    if kept.size == 0:
        raise CLIError(f"{path}: all {flat.size} {unit} equal --ignore-index {ignore_index}: nothing to count")
    low = int(kept.min())
    if low < 0:
        what = "pixels" if loaded.masks else "samples"
        hint = f" (pass --ignore-index {low} if it marks void / unlabelled {what})" if ignore_index is None else ""
        raise CLIError(f"{path}: labels must be >= 0 integers or class names, found {low}{hint}")
    high = int(kept.max())
    if num_classes is not None and high >= num_classes:
        over = np.unique(kept[kept >= num_classes])
        hint = f" (pass --ignore-index {high} if it marks void {unit})" if ignore_index is None and over.size == 1 else ""
        raise CLIError(
            f"{path}: label {high} >= --num-classes {num_classes} (labels out of range: "
            f"{_names_list([str(v) for v in over.tolist()])}){hint}"
        )
    if num_classes is None and not names and high >= max(_MAX_SPARSE, 10 * kept.size):
        raise CLIError(
            f"{path}: label {high} among {kept.size} {unit}: class ids must be 0..K-1 (is this an ID column? "
            "pass --num-classes if there really are that many classes)"
        )
    k = num_classes if num_classes is not None else (len(names) if names else high + 1)
    if k > _MAX_CLASSES:
        raise CLIError(f"{path}: {k} classes is more than inspect tabulates ({_MAX_CLASSES})")
    counts = np.bincount(kept, minlength=k)
    present = counts > 0
    total = int(counts.sum())
    display = names if names else [str(c) for c in range(k)]
    ratio = float(counts.max() / counts[present].min())

    presence = None
    num_images = None
    if loaded.masks:
        images = loaded.labels.reshape(1, -1) if loaded.labels.ndim == 2 else loaded.labels.reshape(loaded.labels.shape[0], -1)
        num_images = images.shape[0]
        presence = np.zeros(k, dtype=np.int64)
        for img in images:
            img = img if ignore_index is None else img[img != ignore_index]
            presence += np.bincount(img, minlength=k) > 0

    weights: Dict[str, List[Optional[float]]] = {}
    present_counts = torch.from_numpy(counts[present])
    for scheme in SCHEMES:
        w = class_weights(counts=present_counts, scheme=scheme, normalize=None).tolist()
        full: List[Optional[float]] = [None] * k
        for c, v in zip(np.flatnonzero(present).tolist(), w):
            full[c] = v
        weights[scheme] = full

    if loaded.masks:
        out(
            f"{path}: {num_images} mask(s), {total} counted pixels, {int(present.sum())} classes, "
            f"imbalance ratio {ratio:.1f} (largest / smallest, in pixels)"
        )
    else:
        out(f"{path}: {total} labels, {int(present.sum())} classes, imbalance ratio {ratio:.1f} (largest / smallest)")
    for note in loaded.notes:
        out(f"  {note}")
    if ignore_index is not None:
        what = "ignored pixels" if loaded.masks else "ignored labels"
        out(f"{what}: {ignored} ({ignored / flat.size:.1%} of all) equal to --ignore-index {ignore_index}, not counted")
    elif loaded.masks and high == 255 and (counts[:255] > 0).any() and int(np.flatnonzero(counts[:255])[-1]) < 128:
        top = int(np.flatnonzero(counts[:255])[-1])
        out(
            f"note: 255 occurs ({counts[255]} pixels) far above the other classes (0..{top}): if it marks void / "
            "unlabelled pixels, pass --ignore-index 255 (it is counted as a class here)"
        )

    count_head = "pixels" if loaded.masks else "count"
    cw = max(9, len(str(int(counts.max()))) + 2)
    head = f"{'class':<16}{count_head:>{cw}}{'share':>9}" + (f"{'images':>9}" if loaded.masks else "")
    out(head + "".join(f"{s:>18}" for s in SCHEMES))
    rows = list(range(k)) if num_classes is not None else np.flatnonzero(present).tolist()
    shown = rows if max_rows == 0 else rows[:max_rows]
    for c in shown:
        cells = "".join(
            f"{'-':>18}"
            if weights[s][c] is None
            else (f"{weights[s][c]:>18.1f}" if s == "inverse" else f"{weights[s][c]:>18.3f}")
            for s in SCHEMES
        )
        img = f"{presence[c]:>9}" if presence is not None else ""
        out(f"{display[c][:15]:<16}{counts[c]:>{cw}}{_pct(counts[c] / total):>9}{img}{cells}")
    if len(shown) < len(rows):
        out(f"… {len(rows) - len(shown)} more classes (--max-rows 0 shows all)")
    absent = np.flatnonzero(~present).tolist()
    if absent:
        ids = _names_list([str(c) for c in absent])
        if num_classes is not None:
            out(
                f"never seen: {len(absent)} of the {num_classes} classes have count 0: {ids} "
                "(no class weight; a weighted loss or sampler needs a count for them, or drop them)"
            )
        else:
            out(
                f"never seen: {len(absent)} class id(s) between 0 and {high} do not occur: {ids} "
                "(pass --num-classes if the model has more classes)"
            )
    out("(class weights unnormalised: inverse = N / n_c; pass normalize='mean' for weights averaging 1)")
    out("suggested:")
    for line in suggest(
        counts, names or None, masks=loaded.masks, ignore_index=ignore_index, presence=presence, num_images=num_images
    ):
        out(f"  {line}")
    result: Dict[str, Any] = {
        "counts": counts.tolist(),
        "names": display,
        "imbalance_ratio": ratio,
        "weights": weights,
        "ignored": ignored,
        "absent": absent,
        "masks": loaded.masks,
        "column": loaded.column,
        "header": loaded.header,
    }
    if presence is not None:
        result["images"] = num_images
        result["images_with_class"] = presence.tolist()
    return result


def _check_out_folder(out: str) -> None:
    """--out must be a folder we can create or write into: checked before any output."""
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise CLIError(f"--out {out}: cannot create the folder for the grids: a file of that name exists")
        if not os.access(out, os.W_OK | os.X_OK):
            raise CLIError(f"--out {out}: cannot write the grids: the folder is not writable")
        return
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CLIError(f"--out {out}: cannot create the folder: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"--out {out}: cannot create the folder: {parent} is not writable")


def inspect_predictions(path: str, images: Optional[str] = None, out: Optional[str] = None, n: int = 32) -> Dict[str, Any]:
    """Print the mistakes of a classifier, the estimated label-noise rate and the label issues, in one screen.

    With ``images``, write ``mistakes.png`` (the ``n`` most confident
    mistakes) and ``label_issues.png`` (the ``n`` most likely label issues)
    into ``out``. Returns the numbers as a dict.
    """
    from ..quality import find_label_issues, mistakes_per_class, plot_mistakes, rank_mistakes
    from ..quality.gallery import _check_count, _estimated_noise_rate, _grid

    labels, probs, names, notes = read_predictions(path)
    try:
        ranked = rank_mistakes(labels, probs, names)
        per = mistakes_per_class(labels, probs, names)
        rate = _estimated_noise_rate(labels, probs)
        issues = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{path}: {exc}") from None
    issues = np.asarray(issues).reshape(-1).astype(np.int64)
    N, K = probs.shape
    wrong = ranked.num_rows
    imgs = None
    if images is not None:  # every input checked before anything is printed or created
        out = "inspect_out" if out is None else out
        _check_out_folder(out)
        imgs = _read_images(images)
        try:
            _check_count(imgs, N, "labels")
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{images}: {exc}") from None
    print(
        f"{path}: {N} samples, {K} classes; {wrong} mispredicted ({_pct(wrong / N)})" + (f"; {'; '.join(notes)}" if notes else "")
    )
    print(f"estimated label-noise rate: {_pct(rate)} (off-diagonal of the calibrated confident joint)")
    shown = ", ".join(map(str, issues[:_SHOWN_ISSUES].tolist())) + (
        f" … {len(issues) - _SHOWN_ISSUES} more" if len(issues) > _SHOWN_ISSUES else ""
    )
    print(
        f"label issues found: {len(issues)} ({_pct(len(issues) / N)}; find_label_issues, most likely first)"
        + (f": {shown}" if len(issues) else "")
    )
    print()
    print(per.to_string(max_rows=_SHOWN_CLASSES))
    print()
    print(ranked.to_string(max_rows=_SHOWN_MISTAKES))
    result: Dict[str, Any] = {
        "samples": int(N),
        "classes": int(K),
        "mistakes": int(wrong),
        "noise_rate": rate,
        "label_issues": issues.tolist(),
        "top_mistakes": ranked["index"][:_SHOWN_MISTAKES].tolist(),
    }
    if images is not None:
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:  # e.g. --out names a file, or a folder we may not write
            raise CLIError(f"--out {out}: cannot create the folder for the grids ({exc.strerror or exc})") from None
        try:
            files = [os.path.join(out, "mistakes.png"), os.path.join(out, "label_issues.png")]
            plot_mistakes(imgs, labels, probs, class_names=names, n=n, path=files[0])
            label_of = (lambda c: names[c]) if names is not None else (lambda c: c)
            pick = issues[:n].tolist()
            titles = [
                f"{label_of(int(labels[i]))} → {label_of(int(probs[i].argmax()))} ({float(probs[i].max()):.2f})" for i in pick
            ]
            _grid(imgs, pick, titles, f"{len(pick)} most likely of {len(issues)} label issues (given → predicted)", files[1])
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{images}: {exc}") from None
        except OSError as exc:  # the folder exists but a PNG cannot be written there
            raise CLIError(f"--out {out}: cannot write the grids ({exc})") from None
        print()
        print(f"grids written: {', '.join(files)}")
        result["files"] = files
    return result


_FEATURE_KEYS = ("features", "embeddings", "x")
_PRODUCTION_KEYS = ("pred_probs", "probs", "preds", "predictions", "labels")


def _read_array(path: str, what: str, keys) -> np.ndarray:
    """An array from a .npy file, a .pt tensor, or a .pt dict / .npz archive holding it under one of ``keys``."""
    obj = _read_mapping(path, what)
    if isinstance(obj, dict):
        key = _pick(obj, keys)
        if key is None:
            raise CLIError(f"{path}: a dict without {' or '.join(repr(k) for k in keys)} (keys: {_names_list(map(str, obj))})")
        obj = obj[key]
    if not hasattr(obj, "shape"):
        raise CLIError(f"{path}: expected {what} as a tensor or array, got {type(obj).__name__}")
    return _numpy(obj)


def audit_files(
    labels: Optional[str] = None,
    preds: Optional[str] = None,
    features: Optional[str] = None,
    test_features: Optional[str] = None,
    images: Optional[str] = None,
    test_images: Optional[str] = None,
    production_preds: Optional[str] = None,
    out: str = "audit.html",
) -> str:
    """``balancedtorch audit``: read the files as ``inspect`` / ``inspect-predictions`` do and write the HTML report.

    Returns the report's path; bad input -> :class:`CLIError` (one line), nothing written.
    """
    from ..quality import audit

    if labels is None and preds is None and features is None:
        raise CLIError("pass at least one of --labels, --preds or --features")
    y = probs = names = None
    if preds is not None:
        y, probs, names, _ = read_predictions(preds)
    if labels is not None:
        given, label_names = read_labels(labels)
        if label_names and names is None:
            names = label_names
        if y is not None:
            if given.shape != y.shape:
                raise CLIError(f"--labels {labels} holds {given.size} labels but --preds {preds} holds {y.size}")
            differ = np.flatnonzero(given != y)
            if differ.size:
                i = int(differ[0])
                raise CLIError(
                    f"--labels {labels} and the labels in --preds {preds} differ (first at index {i}: {given[i]} vs {y[i]})"
                )
        y = given
    x = _read_array(features, "features", _FEATURE_KEYS) if features is not None else None
    t = _read_array(test_features, "test features", _FEATURE_KEYS) if test_features is not None else None
    imgs = _read_images(images) if images is not None else None
    timgs = _read_images(test_images) if test_images is not None else None
    prod = _read_array(production_preds, "production predictions", _PRODUCTION_KEYS) if production_preds is not None else None
    if prod is not None and prod.dtype.kind == "f" and prod.ndim == 1:
        prod = prod.astype(np.int64)
    try:
        return audit(
            y,
            probs,
            x,
            imgs,
            t,
            names,
            out,
            test_images=timgs,
            production_preds=prod,
        )
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc).removeprefix("audit: ")) from None


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "info":
            from .. import build_info

            for key, value in build_info().items():
                print(f"{key:<18}{value}")
            return 0
        if args.command == "inspect":
            result = inspect_labels(
                args.labels,
                args.column,
                ignore_index=args.ignore_index,
                num_classes=args.num_classes,
                max_rows=args.max_rows,
                header=args.header,
            )
            if args.json:
                print(json.dumps(result))
            return 0
        if args.command == "inspect-predictions":
            if args.out is not None and args.images is None:
                raise CLIError("--out names the folder for the grids: pass --images too")
            if args.n < 1:
                raise CLIError(f"-n must be >= 1, got {args.n}")
            result = inspect_predictions(args.preds, args.images, args.out, args.n)
            if args.json:
                print(json.dumps(result))
            return 0
        if args.command == "audit":
            path = audit_files(
                args.labels,
                args.preds,
                args.features,
                args.test_features,
                args.images,
                args.test_images,
                args.production_preds,
                args.out,
            )
            print(f"audit written: {path} (open it in a browser)")
            return 0
        if args.command == "demo" and args.seeds is None:
            args.seeds = 3 if args.task in ("loop", "longtail") else 1
        if args.command == "demo" and args.task != "longtail":
            for given, option in ((args.methods, "--methods"), (args.data_root, "--data-root")):
                if given is not None:
                    raise CLIError(f"{option} applies to --task longtail")
        if args.command == "demo" and args.task == "longtail":
            from ..demo_longtail import run_longtail_demos

            run_longtail_demos(args, CLIError)
            return 0
        if args.command == "demo" and args.task == "loop":
            from ..demo_loop import run_loop_demos

            run_loop_demos(args, CLIError)
            return 0
        if args.command == "demo" and args.task == "segmentation":
            from ..demo_seg import run_segmentation_demos

            run_segmentation_demos(args, CLIError)
            return 0
        if args.command == "demo":
            if args.steps is not None:
                raise CLIError("--steps applies to --task segmentation; the classification demo takes --epochs")
            args.epochs = 40 if args.epochs is None else args.epochs
            args.out = "demo_out" if args.out is None else args.out
            if args.epochs < 1 or args.seeds < 1:
                raise CLIError("--epochs and --seeds must be >= 1")
            from ..demo import run_demo

            results = []
            for s in range(args.seed, args.seed + args.seeds):
                out = args.out if args.seeds == 1 else os.path.join(args.out, f"seed{s}")
                results.append(
                    run_demo(
                        args.device, args.epochs, s, out, feature_smote=not args.no_feature_smote, progress=not args.no_progress
                    )
                )
                print()
            if args.seeds > 1:
                print(f"mean +- std over seeds {args.seed}..{args.seed + args.seeds - 1}:")
                for key in ("accuracy", "balanced_accuracy", "macro_f1"):
                    a = np.array([r["plain"][key] for r in results])
                    b = np.array([r["balanced"][key] for r in results])
                    print(
                        f"  {key:<18} (a) {a.mean():.3f} +- {a.std():.3f}   (b) {b.mean():.3f} +- {b.std():.3f}   gain {np.mean(b - a):+.3f}"
                    )
                nov = {
                    key: np.array([r["novelty"][key] for r in results])
                    for key in ("auroc", "flag_rate_unseen", "flag_rate_ordinary")
                }
                print(
                    f"  novelty AUROC      (b) {nov['auroc'].mean():.3f} +- {nov['auroc'].std():.3f}   flagged: rotated "
                    f"{nov['flag_rate_unseen'].mean():.0%} +- {nov['flag_rate_unseen'].std():.0%}, ordinary test "
                    f"{nov['flag_rate_ordinary'].mean():.0%} +- {nov['flag_rate_ordinary'].std():.0%}"
                )
            return 0
    except (CLIError, MissingOptionalDependency) as exc:
        print(f"balancedtorch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1  # pragma: no cover - argparse rejects unknown commands
