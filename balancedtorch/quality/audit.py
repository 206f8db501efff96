"""One self-contained HTML page about a data set: what is wrong with it and what to do next.

:func:`audit` gathers the data-quality tools into a page a person opens in a
browser: class balance (a chart) and the advice of ``balancedtorch inspect``,
label issues with thumbnails (``target → suggested``), near-duplicate groups,
train/test leakage pairs side by side, the most novel new inputs, coverage per
slice and prediction drift. Every input is optional: each section appears when
its inputs are given, and the page lists what more inputs would add.

The page needs nothing but itself: images are inline PNG data URIs (written
here, no matplotlib), charts inline SVG, the style an inline ``<style>``; no
script, no network. Every string from the caller (class names, slice values)
is escaped. Inputs are checked and the whole page built in memory before
anything is written, and the file is replaced atomically (temp file + rename):
bad input raises and leaves ``path`` as it was.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
import os
import struct
import tempfile
import zlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from .._labels import check_labels
from .._validate import as_tensor
from ._arguments import _check_name_strings
from ._inputs import check_pred_probs
from ._results import check_class_names
from .duplicates import find_duplicates, find_leakage
from .gallery import _check_count, _estimated_noise_rate, _item, _pixels
from .label_issues import find_label_issues, mistakes_per_class
from .novelty import NoveltyDetector
from .shift import DriftMonitor, coverage_report

__all__ = ["audit"]

#: Largest side of an inline thumbnail, in pixels (larger images are subsampled): keeps the page small.
THUMB_MAX = 96
#: Shown width of a thumbnail in the page (small images are scaled up, pixelated).
THUMB_SHOWN = 72
# k of the novelty score: on small banks the nearest neighbour separates unseen inputs best (see demo.NOVELTY_K)
_NOVELTY_K = 1
# a duplicate is closer than this share of the median nearest-neighbour distance: scale-free, so embeddings and
# raw pixels alike get a sensible default
_DUPLICATE_SHARE = 0.1


# --- inputs ---------------------------------------------------------------------------------------------------------


def _features(value: Any, name: str) -> Tensor:
    x = as_tensor(value, name)
    if x.dim() != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"audit: {name} must be a 2-D (N, D) tensor/array with N >= 2 rows, got shape {tuple(x.shape)}")
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"audit: {name} must be real numbers, got dtype {x.dtype}")
    x = x.detach().cpu().double()
    if not bool(torch.isfinite(x).all()):
        i, j = (int(v) for v in (~torch.isfinite(x)).nonzero()[0])
        raise ValueError(f"audit: {name} must be finite, got {name}[{i}, {j}] = {x[i, j].item()}")
    return x


def _check_path(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"audit: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not path or os.path.isdir(path):
        raise ValueError(f"audit: path must name a file, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"audit: path {path!r}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"audit: path {path!r}: the folder {folder!r} is not writable")
    return path


def _rows(sizes: Dict[str, int]) -> int:
    """The one number of samples every per-sample input agrees on."""
    values = set(sizes.values())
    if len(values) > 1:
        raise ValueError(
            "audit: the per-sample inputs disagree on the number of samples: "
            + ", ".join(f"{k} has {v}" for k, v in sizes.items())
        )
    return values.pop()


# --- HTML pieces ----------------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _png(a: np.ndarray) -> bytes:
    """A PNG file of an (H, W) or (H, W, 3|4) uint8 array (no filter, deflate): enough for thumbnails."""
    h, w = a.shape[:2]
    colour = 0 if a.ndim == 2 else {3: 2, 4: 6}[a.shape[2]]  # grey, RGB, RGBA
    raw = b"".join(b"\x00" + a[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _thumbnail(images: Any, i: int) -> str:
    """Image ``i`` as a data URI (uint8 PNG, subsampled to at most THUMB_MAX per side)."""
    a = _pixels(_item(images, i), i)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
    step = max(1, math.ceil(max(a.shape[:2]) / THUMB_MAX))
    a = np.ascontiguousarray(a[::step, ::step])
    return "data:image/png;base64," + base64.b64encode(_png(a)).decode("ascii")


def _figure(images: Any, i: int, caption: str) -> str:
    return (
        f'<figure><img src="{_thumbnail(images, i)}" width="{THUMB_SHOWN}" height="{THUMB_SHOWN}" alt="sample {i}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _bars(names: Sequence[str], series: Sequence[Tuple[str, Sequence[float], str]], unit: str = "") -> str:
    """A horizontal bar chart in inline SVG: one row per name, one bar per series (label, values, colour)."""
    label_w, bar_w, row_h = 150, 420, 8 + 14 * len(series)
    top = max((max(v) for _, v, _ in series), default=0) or 1
    height = row_h * len(names) + (22 if len(series) > 1 else 4)
    out = [f'<svg role="img" width="{label_w + bar_w + 90}" height="{height}">']
    for r, name in enumerate(names):
        y = r * row_h + 4
        out.append(f'<text x="{label_w - 6}" y="{y + row_h / 2 + 2:.0f}" text-anchor="end" class="lbl">{_e(name[:24])}</text>')
        for s, (_, values, colour) in enumerate(series):
            v = float(values[r])
            w = bar_w * v / top
            out.append(f'<rect x="{label_w}" y="{y + 14 * s}" width="{w:.1f}" height="12" fill="{colour}"/>')
            shown = f"{v:.1%}" if unit == "%" else f"{v:g}"
            out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 14 * s + 10}" class="val">{shown}</text>')
    if len(series) > 1:
        x = label_w
        for label, _, colour in series:
            out.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>')
            out.append(f'<text x="{x + 14}" y="{height - 5}" class="lbl">{_e(label)}</text>')
            x += 20 + 7 * len(label)
    out.append("</svg>")
    return "".join(out)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], classes: Optional[Sequence[Sequence[str]]] = None) -> str:
    """An HTML table; cells are HTML already (escape before)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for r, row in enumerate(rows):
        cls = classes[r] if classes is not None else [""] * len(row)
        body.append("<tr>" + "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for v, c in zip(row, cls)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(key: str, title: str, body: str, next_step: str) -> str:
    return f'<section id="{key}"><h2>{_e(title)}</h2>{body}<p class="next"><b>Next:</b> {next_step}</p></section>'


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;background:#fff}
h1{margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}
.summary{color:#555}.next{background:#eef6ee;border-left:4px solid #3a7;padding:8px 12px}
.gallery{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;text-align:center;font-size:12px;width:120px}
figure img{image-rendering:pixelated;border:1px solid #ccc;background:#000}
.pair{display:inline-flex;gap:4px;border:1px solid #ddd;padding:6px;margin:4px;border-radius:4px}
.group{display:flex;flex-wrap:wrap;gap:8px;border:1px solid #ddd;padding:6px;margin:6px 0;border-radius:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.empty{background:#f8c9c4}td.rare{background:#fbe3b5}td.under{background:#fff3c4}
pre{background:#f6f6f6;padding:10px;overflow-x:auto;font-size:12px}svg .lbl{font-size:12px}svg .val{font-size:11px;fill:#444}
.more li{margin:4px 0}
"""


# --- the report -----------------------------------------------------------------------------------------------------


def audit(
    labels: Any = None,
    pred_probs: Any = None,
    features: Any = None,
    images: Any = None,
    test_features: Any = None,
    class_names: Optional[Sequence[str]] = None,
    path: Any = "audit.html",
    *,
    groups: Optional[Mapping[str, Any]] = None,
    production_preds: Any = None,
    test_images: Any = None,
    duplicate_threshold: Optional[float] = None,
    n: int = 24,
    title: str = "Data audit",
) -> str:
    """Write one self-contained HTML report on a data set; returns ``path``.

    Sections, each with what to do next, appear when their inputs are given:

    - class balance (chart) and the advice of ``balancedtorch inspect``: ``labels``;
    - label issues, ``target → suggested`` with thumbnails when ``images``
      are given, mistakes per class and the estimated noise rate:
      ``labels`` and ``pred_probs``;
    - near-duplicate groups: ``features``; train/test leakage pairs side by
      side and the most novel test inputs: ``features`` and ``test_features``;
    - coverage per slice: ``groups`` (per class with ``labels``);
    - drift of the predicted classes: ``production_preds`` against
      ``pred_probs`` (or ``labels`` without them).

    Args:
        labels (Tensor[N] | array, optional): given class labels in [0, K).
        pred_probs (Tensor[N, K] | array, optional): out-of-sample predicted
            probabilities (rows sum to 1).
        features (Tensor[N, D] | array, optional): embeddings of the samples.
        images (Tensor[N, C, H, W] | array | sequence | Dataset, optional):
            one image per sample, as :func:`plot_mistakes` takes them; only
            the shown ones are read.
        test_features (Tensor[M, D] | array, optional): embeddings of new
            data (a test set, or production inputs); needs ``features``.
        class_names (sequence of K str, optional): names shown for the ids.
        path (str | os.PathLike): where the page goes (default ``"audit.html"``);
            its folder must exist.
        groups (dict, optional): ``{attribute: one value per sample (N,)}``,
            the slices (e.g. ``{"orientation": [...]}``).
        production_preds (Tensor[P] | Tensor[P, K], optional): the model's
            predicted labels or probabilities on production data.
        test_images (optional): one image per ``test_features`` row.
        duplicate_threshold (float, optional): largest Euclidean distance
            between ``features`` rows counted as duplicates (and as a leak).
            Default: 0.1 x the median nearest-neighbour distance in ``features``.
        n (int): thumbnails (and rows) at most per section. Default 24.
        title (str): the page's heading. Default ``"Data audit"``.

    Returns:
        str: ``path``.

    Raises:
        ValueError / TypeError: naming the argument: none of ``labels``,
            ``pred_probs``, ``features`` given; shapes that disagree; labels
            out of range; ``pred_probs`` not probabilities; non-finite
            features; ``test_features`` or ``test_images`` without what they
            pair with; a ``path`` whose folder is missing. Nothing is
            written then.

    Example:
        >>> import os
        >>> import tempfile
        >>> import torch
        >>> import balancedtorch as bt
        >>> g = torch.Generator().manual_seed(0)
        >>> labels = torch.randint(0, 3, (60,), generator=g)
        >>> probs = (2.0 * torch.nn.functional.one_hot(labels, 3) + torch.randn(60, 3, generator=g)).softmax(1)
        >>> emb, test_emb = torch.randn(60, 16, generator=g), torch.randn(20, 16, generator=g)
        >>> x = torch.randint(0, 256, (60, 3, 16, 16), dtype=torch.uint8, generator=g)
        >>> path = os.path.join(tempfile.mkdtemp(), "audit.html")
        >>> bt.quality.audit(labels, probs, features=emb, images=x, test_features=test_emb,
        ...                  class_names=["red", "yellow", "green"], path=path) == path
        True
        >>> open(path).read(15)  # one self-contained page: open it in a browser
        '<!DOCTYPE html>'
    """
    path = _check_path(path)
    n = _validate.integer(n, "n", low=1, caller="audit")
    if not isinstance(title, str):
        raise TypeError(f"audit: title must be a str, got {type(title).__name__}")
    if labels is None and pred_probs is None and features is None:
        raise ValueError("audit: pass at least one of labels, pred_probs or features (nothing to report on)")
    class_names = _check_name_strings(class_names, "audit")

    # every input checked before any work, and every piece of the page built before anything is written
    sizes: Dict[str, int] = {}
    p = None
    if pred_probs is not None:
        p = check_pred_probs(pred_probs, None, "pred_probs").detach().cpu().double()
        sizes["pred_probs"] = p.shape[0]
    K = p.shape[1] if p is not None else None
    if K is None and class_names is not None:
        K = len(list(class_names))
    y = None
    if labels is not None:
        y = check_labels(labels, "labels", num_classes=K).cpu()
        if y.numel() == 0:
            raise ValueError("audit: labels is empty")
        sizes["labels"] = y.numel()
        if K is None:
            K = max(2, int(y.max()) + 1)
    x = _features(features, "features") if features is not None else None
    if x is not None:
        sizes["features"] = x.shape[0]
    N = _rows(sizes)
    names = check_class_names(class_names, K) if K is not None else None
    if names is None and K is not None:
        names = [str(c) for c in range(K)]
    if images is not None:
        _check_count(images, N, next(iter(sizes)))
    t = None
    if test_features is not None:
        if x is None:
            raise ValueError("audit: test_features needs features (the training rows they are compared with)")
        t = _features(test_features, "test_features")
        if t.shape[1] != x.shape[1]:
            raise ValueError(f"audit: test_features has {t.shape[1]} columns but features has {x.shape[1]}")
    if test_images is not None:
        if t is None:
            raise ValueError("audit: test_images needs test_features (one image per test row)")
        _check_count(test_images, t.shape[0], "test_features", name="test_images")
    if groups is not None:
        if not isinstance(groups, Mapping) or not groups:
            raise ValueError("audit: groups must be a non-empty dict {attribute: one value per sample}")
        for attribute, values in groups.items():
            array = np.asarray(values.cpu() if isinstance(values, Tensor) else values)
            if array.ndim != 1 or len(array) != N:
                raise ValueError(f"audit: groups[{attribute!r}] must have one value per sample ({N}), got shape {array.shape}")
    prod = None
    if production_preds is not None:
        if p is None and y is None:
            raise ValueError("audit: production_preds needs a reference: pred_probs (or labels) of the reference data")
        prod = as_tensor(production_preds, "production_preds").detach().cpu()
        if prod.dim() == 2 and prod.shape[1] != K:
            raise ValueError(f"audit: production_preds has {prod.shape[1]} classes (columns) but the reference has {K}")
        if prod.numel() == 0:
            raise ValueError("audit: production_preds is empty")
    if duplicate_threshold is not None and (
        isinstance(duplicate_threshold, bool)
        or not isinstance(duplicate_threshold, numbers.Real)
        or not math.isfinite(duplicate_threshold)
        or duplicate_threshold <= 0
    ):
        raise ValueError(f"audit: duplicate_threshold must be a finite number > 0, got {duplicate_threshold!r}")

    sections: List[str] = []
    summary: List[str] = []
    missing: List[str] = []
    n = int(n)

    # class balance and the advice of `balancedtorch inspect`
    if y is not None:
        from ..cli.advice import suggest

        counts = np.bincount(y.numpy(), minlength=K)
        present = counts[counts > 0]
        ratio = float(present.max() / present.min())
        advice = suggest(counts, names)
        body = (
            f"<p>{N} labelled samples, {len(present)} of {K} classes present, imbalance ratio {ratio:.1f} "
            "(largest / smallest class).</p>" + _bars(names, [("samples", counts.tolist(), "#4a7ab5")])
        )
        sections.append(
            _section(
                "class-balance",
                "Class balance",
                body,
                "collect more of the smallest classes where you can; until then train with the sampler and loss below."
                if ratio >= 1.5
                else "nothing to do: the classes are balanced.",
            )
        )
        advice_html = "<pre>" + _e("\n".join(advice) or "no advice: a single class") + "</pre>"
        sections.append(
            _section(
                "advice",
                "Suggested training setup (as balancedtorch inspect)",
                advice_html,
                "apply these in the training script, then audit the new model's predictions again.",
            )
        )
        summary.append(f"{N} samples, imbalance ratio {ratio:.1f}")
    elif p is not None:
        counts = np.bincount(p.argmax(1).numpy(), minlength=K)
        body = f"<p>No labels: the classes the model predicts on the {N} samples.</p>" + _bars(
            names, [("predicted", counts.tolist(), "#8a6ab5")]
        )
        sections.append(
            _section("class-balance", "Predicted class balance", body, "pass labels= for the true class balance and the advice.")
        )
        missing.append("labels: the class balance of the given labels and the training advice of balancedtorch inspect")
    else:
        missing.append("labels: the class balance and the training advice of balancedtorch inspect")

    # label issues
    if y is not None and p is not None:
        ranked = find_label_issues(y, p, return_indices_ranked_by="self_confidence")
        ranked = ranked.tolist() if hasattr(ranked, "tolist") else list(ranked)
        rate = _estimated_noise_rate(y, p)
        per = mistakes_per_class(y, p, names, distributed=False)
        shown = ranked[:n]
        body = (
            f"<p>{len(ranked)} of {N} labels look wrong (find_label_issues, confident learning); estimated label-noise "
            f"rate {rate:.1%}. Most likely first, <i>given → suggested (probability of the suggestion)</i>.</p>"
        )
        if shown:
            if images is not None:
                figs = [
                    _figure(
                        images,
                        i,
                        f"#{i}: {_e(names[int(y[i])])} → {_e(names[int(p[i].argmax())])} ({float(p[i].max()):.2f})",
                    )
                    for i in shown
                ]
                body += '<div class="gallery">' + "".join(figs) + "</div>"
            else:
                rows = [[str(i), _e(names[int(y[i])]), _e(names[int(p[i].argmax())]), f"{float(p[i].max()):.2f}"] for i in shown]
                body += _table(["index", "given", "suggested", "probability"], rows)
                missing.append("images: thumbnails of the label issues, duplicates and leaks")
        worst = [r for r in per.rows() if r.count][:n]
        if worst:
            confused = lambda r: ", ".join(f"{_e(c)} ({k})" for c, k in r.confused_with[:3])  # noqa: E731
            body += "<h3>Mistakes per class, worst first</h3>" + _table(
                ["class", "mistakes", "support", "rate", "mistaken for"],
                [[_e(r.label), str(r.count), str(r.support), f"{r.rate:.1%}", confused(r)] for r in worst],
            )
        sections.append(
            _section(
                "label-issues",
                "Label issues",
                body,
                "review these samples first (most likely first); relabel or drop the wrong ones and retrain. "
                "A class with many issues may need clearer labelling guidelines."
                if ranked
                else "no label looks wrong; audit again when new labels arrive.",
            )
        )
        summary.append(f"{len(ranked)} label issues")
    else:
        missing.append("labels and pred_probs: the label issues (target → suggested) and mistakes per class")

    # duplicates, leakage, novelty
    if x is not None:
        nearest = NoveltyDetector(k=2, normalize=False).fit(x).score(x)  # the nearest other row (itself is at 0)
        positive = nearest[nearest > 0]
        scale = float(positive.median()) if positive.numel() else 1.0
        threshold = float(duplicate_threshold) if duplicate_threshold is not None else _DUPLICATE_SHARE * scale
        groups_found = find_duplicates(x, threshold)
        body = (
            f"<p>{len(groups_found)} group{'' if len(groups_found) == 1 else 's'} of near-duplicates ({sum(len(g) for g in groups_found)} samples) within "
            f"distance {threshold:.4g} of each other in the features (median nearest-neighbour distance {scale:.4g}).</p>"
        )
        for g in groups_found[:n]:
            idx = g.tolist()[:8]
            more = f" and {len(g) - 8} more" if len(g) > 8 else ""
            if images is not None:
                label = (lambda i: f"#{i}: {_e(names[int(y[i])])}") if y is not None else (lambda i: f"#{i}")
                body += '<div class="group">' + "".join(_figure(images, i, label(i)) for i in idx) + _e(more) + "</div>"
            else:
                body += f'<div class="group">samples {", ".join(map(str, idx))}{_e(more)}</div>'
        sections.append(
            _section(
                "duplicates",
                "Near-duplicates",
                body,
                "keep one sample per group (duplicates weigh twice in training and in the metrics); "
                "check that duplicates carry the same label.",
            )
        )
        summary.append(f"{len(groups_found)} duplicate groups")
        if t is not None:
            q, j, d = find_leakage(x, t, threshold)
            body = f"<p>{q.numel()} of {t.shape[0]} test rows lie within {threshold:.4g} of a training row: test ↔ train.</p>"
            for a, b, dist in list(zip(q.tolist(), j.tolist(), d.tolist()))[:n]:
                if images is not None and test_images is not None:
                    body += (
                        '<div class="pair">'
                        + _figure(test_images, a, f"test #{a}")
                        + _figure(images, b, f"train #{b} (d={dist:.3g})")
                        + "</div>"
                    )
                else:
                    body += f'<div class="pair">test #{a} ↔ train #{b} (distance {dist:.3g})</div>'
            sections.append(
                _section(
                    "leakage",
                    "Train/test leakage",
                    body,
                    "remove these test rows (or their training twins) before trusting the test score; split by source "
                    "(patient, video, user) rather than by sample.",
                )
            )
            summary.append(f"{q.numel()} leaked test rows")
            loo = NoveltyDetector(k=_NOVELTY_K + 1).fit(x).score(x)  # each training row against the others
            cut = float(torch.quantile(loo, 0.95))
            scores = NoveltyDetector(k=_NOVELTY_K).fit(x).score(t).cpu()
            flagged = int((scores > cut).sum())
            order = torch.argsort(-scores, stable=True)[:n].tolist()
            body = (
                f"<p>{flagged} of {t.shape[0]} test rows ({flagged / t.shape[0]:.0%}) are farther from the training set than "
                f"95% of the training rows are from each other (NoveltyDetector, k={_NOVELTY_K}, cut {cut:.3g}); "
                "most novel first.</p>"
            )
            if test_images is not None:
                body += (
                    '<div class="gallery">'
                    + "".join(_figure(test_images, i, f"#{i}: score {float(scores[i]):.3g}") for i in order)
                    + "</div>"
                )
            else:
                body += _table(["test row", "novelty score"], [[str(i), f"{float(scores[i]):.4g}"] for i in order])
                missing.append("test_images: thumbnails of the most novel test inputs and of the leaks")
            sections.append(
                _section(
                    "novelty",
                    "Most novel inputs",
                    body,
                    "these inputs are unlike anything in training: label a selection of them "
                    '(bt.quality.select_for_labeling(..., strategy="novelty")) and retrain.',
                )
            )
            summary.append(f"{flagged / t.shape[0]:.0%} of the test rows novel")
        else:
            missing.append("test_features: train/test leakage pairs and the most novel test inputs")
    else:
        missing.append("features: near-duplicate groups; with test_features, leakage and the most novel inputs")

    # coverage
    if groups is not None:
        body = ""
        if y is not None:
            report = coverage_report(y, groups, num_classes=K, class_names=names)
            for attribute, entry in report.items():
                kinds = {(f["value"], f["class"]): f["reason"] for f in entry["flags"]}
                rows, classes = [], []
                for v, value in enumerate(entry["values"]):
                    rows.append([_e(value)] + [str(int(entry["counts"][v, k])) for k in range(K)])
                    classes.append([""] + [kinds.get((value, k), "").split("-")[0] for k in range(K)])
                body += f"<h3>{_e(attribute)}</h3>" + _table([_e(attribute)] + [_e(c) for c in names], rows, classes)
            flags = report.flags
            body = (
                f"<p>{len(flags)} slice × class cells are empty, rare (&lt; 5) or under-represented (&lt; 25% of "
                "the count expected if slice and class were independent): coloured red, orange and yellow.</p>" + body
            )
            summary.append(f"{len(flags)} coverage gaps")
        else:
            for attribute, values in groups.items():
                array = np.asarray(values.cpu() if isinstance(values, Tensor) else values)
                uniques, counts = np.unique(array, return_counts=True)
                body += f"<h3>{_e(attribute)}</h3>" + _table(
                    [_e(attribute), "samples"], [[_e(u), str(int(c))] for u, c in zip(uniques.tolist(), counts.tolist())]
                )
            missing.append("labels with groups: coverage of each class per slice")
        sections.append(
            _section(
                "coverage",
                "Coverage per slice",
                body,
                "collect samples for the flagged slice × class cells; until then report the metrics per slice.",
            )
        )
    else:
        missing.append("groups: coverage of each class per slice (e.g. groups={'orientation': ...})")

    # drift
    if prod is not None:
        reference = p if p is not None else y
        monitor = DriftMonitor(reference, num_classes=K)
        monitor.update(prod)
        s = monitor.status(distributed=False)
        verdict = "<b>drift</b>" if s["drift"] else "no drift"
        body = (
            f"<p>{s['num_samples']} production predictions against {s['reference_size']} reference "
            f"{'predictions' if p is not None else 'labels'}: PSI {s['psi']:.3f}, chi-square p-value "
            f"{s['p_value']:.3g}: {verdict}.</p>"
            + _bars(
                names,
                [
                    ("reference", s["reference_share"].tolist(), "#4a7ab5"),
                    ("production", s["current_share"].tolist(), "#d9822b"),
                ],
                unit="%",
            )
        )
        sections.append(
            _section(
                "drift",
                "Prediction drift",
                body,
                "the production classes moved: look at the novel inputs, label a selection of production data and retrain"
                if s["drift"]
                else "keep monitoring (bt.quality.DriftMonitor(reference, window=...) on the live stream).",
            )
        )
        summary.append("drift" if s["drift"] else "no drift")
    else:
        missing.append("production_preds: drift of the predicted classes between reference and production")

    if missing:
        items = "".join(f"<li>{_e(m)}</li>" for m in dict.fromkeys(missing))
        sections.append(f'<div class="more"><h2>With more inputs this report would show</h2><ul>{items}</ul></div>')
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)} — balancedtorch</title><style>{_STYLE}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="summary">{_e("; ".join(summary))}</p>' + "".join(sections) + "</body></html>\n"
    )

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".audit-", suffix=".html", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the report unreadable to others
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
