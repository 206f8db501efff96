"""Command line: ``balancedtorch demo | inspect LABELS | inspect-predictions PREDS | audit | info`` (also ``python -m balancedtorch``).

The package: :func:`main` (the entry point of the ``balancedtorch`` script
and of ``python -m balancedtorch``) and its argument parser here;
``readers.py`` reads the files, ``advice.py`` words the recommendations,
``commands.py`` runs each command; ``_common.py`` holds :class:`CLIError`
and the wording of numbers. The names of the former ``cli.py`` stay
importable from here.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from ._common import _LIST, _MAX_CLASSES, _MAX_DETAIL, _MAX_SPARSE, CLIError, _names_list, _one_line, _pct  # noqa: F401
from .advice import _class_list, suggest  # noqa: F401
from .commands import (  # noqa: F401
    _SHOWN_CLASSES,
    _SHOWN_ISSUES,
    _SHOWN_MISTAKES,
    _check_out_folder,
    _run,
    audit_files,
    inspect_labels,
    inspect_predictions,
)
from .readers import (  # noqa: F401
    _IMAGE_KEYS,
    _LABEL_KEYS,
    _NUMPY_GLOBALS,
    _PROB_KEYS,
    _Column,
    _load,
    _Loaded,
    _numpy,
    _pick,
    _read_images,
    _read_mapping,
    _torch_load,
    read_labels,
    read_predictions,
)


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="balancedtorch", description="Training on imbalanced and imperfect data with PyTorch.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="train a small CNN twice: plain vs the balanced stack (digits or traffic lights)")
    d.add_argument(
        "--task",
        choices=("classification", "segmentation", "loop", "longtail"),
        default="classification",
        help="classification: long-tailed digits (default); segmentation: traffic lights at 800:1; "
        "loop: detect an unseen slice in production, label a budget with each selection strategy, retrain; "
        "longtail: the long-tailed recognition losses and Remix side by side (CIFAR-10-LT profile, ratio 100)",
    )
    d.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    d.add_argument("--epochs", type=int, default=None, help="training epochs per run (classification: default 40; longtail: 30)")
    d.add_argument("--steps", type=int, default=None, help="training steps per run (segmentation: default 600; loop: 400)")
    d.add_argument("--seed", type=int, default=0, help="seed of the split, the models and the sampling (default 0)")
    d.add_argument(
        "--seeds", type=int, default=None, help="run seeds seed..seed+N-1 and print mean +- std (default 1; loop, longtail: 3)"
    )
    d.add_argument(
        "--out", default=None, help="folder for the PNGs (default demo_out; segmentation: demo_seg_out; loop: demo_loop_out)"
    )
    d.add_argument("--no-feature-smote", action="store_true", help="leave FeatureSMOTE out of the balanced stack")
    d.add_argument(
        "--methods",
        default=None,
        help="longtail: comma-separated methods (default: every one this build has): "
        "ce, focal, drw, ldam-drw, balanced-softmax, la, vs, seesaw, mixup, remix, remix-drw",
    )
    d.add_argument(
        "--data-root",
        default=None,
        help="longtail: a local CIFAR-10 (the folder holding cifar-10-batches-py/, as torchvision's CIFAR10 root; "
        "no download) instead of the generated images",
    )
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    i = sub.add_parser("inspect", help="class counts, shares, imbalance ratio and class weights of a labels or masks file")
    i.add_argument(
        "labels",
        help="a .csv/.tsv (see --column), .npy or .pt (1-D labels, or integer masks with ndim >= 2) "
        "or a text file with one label per line",
    )
    i.add_argument("--column", default=None, help="CSV column name or index (default: the only column that can hold labels)")
    i.add_argument(
        "--header",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the CSV's first row names the columns (default auto: detected, and said so)",
    )
    i.add_argument(
        "--ignore-index",
        type=int,
        default=None,
        metavar="N",
        help="a label left out of the counts and reported apart, e.g. 255 for void mask pixels",
    )
    i.add_argument(
        "--num-classes",
        type=int,
        default=None,
        metavar="K",
        help="the number of classes: classes never seen get a row with count 0",
    )
    i.add_argument("--max-rows", type=int, default=30, metavar="N", help="table rows shown (default 30; 0 shows all)")
    i.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    q = sub.add_parser(
        "inspect-predictions",
        help="mistakes per class, the most confident mistakes, the estimated label-noise "
        "rate and the label issues of a classifier's predictions",
    )
    q.add_argument(
        "preds",
        help="a .pt dict or .npz archive with 'labels' (N,) and 'pred_probs' (N, K) "
        "('logits' are softmaxed; optional 'class_names')",
    )
    q.add_argument(
        "--images",
        default=None,
        help="a .pt/.npz/.npy file of the N images ((N, C, H, W), uint8 or float; a .pt "
        "dict or .npz holds them under 'images'): write the grids",
    )
    q.add_argument("--out", default=None, help="folder for the grids with --images (default inspect_out)")
    q.add_argument("-n", type=int, default=32, help="tiles per grid (default 32)")
    q.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    a = sub.add_parser(
        "audit",
        help="one self-contained HTML report: class balance, advice, label issues, duplicates, leakage, novelty, drift",
    )
    a.add_argument("--labels", default=None, help="labels, in any format inspect reads (.csv/.tsv, .npy, .pt, text)")
    a.add_argument(
        "--preds", default=None, help="a .pt dict or .npz with 'labels' and 'pred_probs', as inspect-predictions reads"
    )
    a.add_argument("--features", default=None, help="(N, D) embeddings: .npy, .pt, or a .pt dict / .npz under 'features'")
    a.add_argument("--test-features", default=None, help="(M, D) embeddings of test or production inputs (needs --features)")
    a.add_argument("--images", default=None, help="the N images, as inspect-predictions --images reads them")
    a.add_argument("--test-images", default=None, help="the M images of --test-features")
    a.add_argument(
        "--production-preds", default=None, help="the model's predicted labels (P,) or probabilities (P, K) in production"
    )
    a.add_argument("--out", default="audit.html", help="the report's path (default audit.html)")
    sub.add_parser("info", help="build information (torch versions, CUDA, CPU capability)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input, 130 interrupted, 141 closed pipe)."""
    args = _build_parser().parse_args(argv)
    try:
        status = _run(args)
        sys.stdout.flush()  # a closed pipe shows here at the latest, not in the interpreter's exit flush
        return status
    except BrokenPipeError:
        # The reader (e.g. `| head`) has gone: as the Python docs recommend, point stdout at devnull so
        # the exit flush cannot raise again, and stop quietly with the status of a process ended by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
