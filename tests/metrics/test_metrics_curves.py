"""ClassificationMetrics: PR / ROC curves, AP and ROC AUC, mean IoU, binary and multi-label inputs, figures.

References: scikit-learn (exact state) and torchmetrics (binned state, multi-label semantics).
"""

import math
import warnings

import numpy as np
import pytest
import torch

import balancedtorch as bt

from _distributed import close_gloo, init_gloo, run_ranks, save_rank

# scikit-learn and torchmetrics are imported inside the tests: the DDP test's spawned processes
# import this module, and these imports would cost them several seconds each

CM = bt.metrics.ClassificationMetrics


def probs_case(rng, N, K, tied=False, absent=()):
    logits = torch.tensor(rng.normal(size=(N, K)) * 1.5)
    y = rng.integers(0, K, N)
    logits[np.arange(N), y] += 1.0  # informative scores
    for c in absent:
        y[y == c] = (c + 1) % K
    probs = torch.softmax(logits, 1)
    if tied:
        probs = torch.round(probs * 10) / 10  # heavy ties: 11 distinct values
    return logits, probs, y


def assert_matches_sklearn_ranking(r, probs, y, K):
    """Per-class one-vs-rest AP / ROC AUC equal to scikit-learn, NaN where undefined, macro over defined."""
    from sklearn import metrics as skm

    aps, aucs, pos = [], [], []
    for c in range(K):
        yc = y == c
        pos.append(yc.sum())
        aps.append(skm.average_precision_score(yc, probs[:, c]) if yc.any() else math.nan)
        aucs.append(skm.roc_auc_score(yc, probs[:, c]) if 0 < yc.sum() < len(yc) else math.nan)
    np.testing.assert_allclose(r["average_precision"].cpu().numpy(), aps, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r["roc_auc"].cpu().numpy(), aucs, rtol=1e-12, atol=1e-12)
    aps, aucs, pos = np.array(aps), np.array(aucs), np.array(pos, dtype=float)
    assert r["macro_average_precision"] == pytest.approx(np.nanmean(aps))
    assert r["macro_roc_auc"] == pytest.approx(np.nanmean(aucs))
    d = ~np.isnan(aucs)
    assert r["weighted_roc_auc"] == pytest.approx(np.sum(aucs[d] * pos[d]) / pos[d].sum())


@pytest.mark.parametrize("tied", [False, True], ids=["random", "tied"])
@pytest.mark.parametrize("given", ["logits", "probabilities"])
def test_exact_multiclass_equals_sklearn(tied, given, device):
    from sklearn import metrics as skm

    rng = np.random.default_rng(3 + tied)
    K, N = 4, 700
    logits, probs, y = probs_case(rng, N, K, tied=tied)
    m = CM(K, curves=True)
    inputs = probs if (tied or given == "probabilities") else logits
    for s in range(0, N, 150):  # streaming
        m.update(inputs[s : s + 150].to(device), torch.tensor(y[s : s + 150], device=device))
    r = m.compute()
    assert r["average_precision"].device.type == torch.device(device).type
    p = probs.numpy()  # what a scikit-learn user passes: softmax of the logits
    assert_matches_sklearn_ranking(r, p, y, K)
    if not tied:  # every class present and rows summing to 1: sklearn's multiclass ovr call itself
        assert r["macro_roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr"))
        assert r["weighted_roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="weighted"))
        onehot = np.eye(K)[y]
        assert r["macro_average_precision"] == pytest.approx(skm.average_precision_score(onehot, p))
        assert r["weighted_average_precision"] == pytest.approx(skm.average_precision_score(onehot, p, average="weighted"))
    for c, (prec, rec, thr) in enumerate(m.pr_curves()):
        sp, sr, st = skm.precision_recall_curve(y == c, p[:, c])
        np.testing.assert_allclose(prec.cpu().numpy(), sp, rtol=1e-12)
        np.testing.assert_allclose(rec.cpu().numpy(), sr, rtol=1e-12)
        np.testing.assert_allclose(thr.cpu().numpy(), st, rtol=1e-6)
    for c, (fpr, tpr, thr) in enumerate(m.roc_curves()):
        sf, stp, st = skm.roc_curve(y == c, p[:, c], drop_intermediate=False)
        np.testing.assert_allclose(fpr.cpu().numpy(), sf, rtol=1e-12)
        np.testing.assert_allclose(tpr.cpu().numpy(), stp, rtol=1e-12)
        np.testing.assert_allclose(thr.cpu().numpy(), st, rtol=1e-6)


def test_logits_and_their_softmax_give_the_same_curves():
    rng = np.random.default_rng(1)
    logits, probs, y = probs_case(rng, 300, 3)
    results = []
    for inputs, fmt in ((logits, "auto"), (probs, "auto"), (logits, "logits"), (probs, "probabilities")):
        m = CM(3, curves=True, input_format=fmt)
        m.update(inputs, torch.tensor(y))
        results.append(m.compute())
    for r in results[1:]:
        torch.testing.assert_close(r["average_precision"], results[0]["average_precision"])
        torch.testing.assert_close(r["roc_auc"], results[0]["roc_auc"])
    # softmax applied to probabilities would change the per-class ranking: the format matters
    wrong = CM(3, curves=True, input_format="logits")
    wrong.update(probs, torch.tensor(y))
    assert not torch.allclose(wrong.compute()["average_precision"], results[0]["average_precision"])


def test_absent_classes_are_nan_and_left_out_of_the_averages():
    from sklearn import metrics as skm

    rng = np.random.default_rng(7)
    K = 5
    _, probs, y = probs_case(rng, 400, K, absent=(1, 3))
    m = CM(K, curves=True)
    m.update(probs, torch.tensor(y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from us
        r = m.compute()
    assert torch.isnan(r["average_precision"][[1, 3]]).all() and torch.isnan(r["roc_auc"][[1, 3]]).all()
    assert not torch.isnan(r["average_precision"][[0, 2, 4]]).any()
    assert_matches_sklearn_ranking(r, probs.numpy(), y, K)
    present = [0, 2, 4]
    sub = probs.numpy()[:, present]
    assert r["macro_roc_auc"] == pytest.approx(np.mean([skm.roc_auc_score(y == c, probs.numpy()[:, c]) for c in present]))
    assert r["macro_average_precision"] == pytest.approx(skm.average_precision_score(np.eye(K)[y][:, present], sub))
    # nothing at all: every ranking metric undefined, no crash
    empty = CM(K, curves=True).compute()
    assert math.isnan(empty["macro_average_precision"]) and math.isnan(empty["macro_roc_auc"])


@pytest.mark.parametrize(
    "kwargs, preds, target",
    [
        (dict(task="binary", curves=True), torch.rand(0), torch.zeros(0, dtype=torch.long)),
        (dict(num_classes=3, curves=True), torch.rand(0, 3), torch.zeros(0, dtype=torch.long)),
        (dict(num_classes=3, task="multilabel", curves=True), torch.rand(0, 3), torch.zeros(0, 3, dtype=torch.long)),
        (dict(num_classes=3, curves=True, thresholds=11), torch.rand(0, 3), torch.zeros(0, dtype=torch.long)),
    ],
)
def test_empty_update_adds_nothing_and_ranking_metrics_are_nan_without_warning(kwargs, preds, target):
    fresh = CM(**kwargs).compute()
    m = CM(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.update(preds, target)
        r = m.compute()
    assert r.keys() == fresh.keys()
    for key in ("macro_average_precision", "weighted_average_precision", "macro_roc_auc", "weighted_roc_auc"):
        assert math.isnan(r[key]) and math.isnan(fresh[key])
    assert torch.isnan(r["per_class_average_precision"]).all() and torch.isnan(r["per_class_roc_auc"]).all()
    assert int(r["confusion_matrix"].sum()) == 0 and r["accuracy"] == 0.0
    # a later non-empty batch gives the numbers of that batch alone
    m.update(torch.rand((6,) + tuple(preds.shape[1:])), torch.randint(0, 2, (6,) + tuple(target.shape[1:])))
    assert int(m.compute()["confusion_matrix"].sum()) == 6 * (3 if kwargs.get("task") == "multilabel" else 1)


def test_mean_iou_equals_sklearn_macro_jaccard():
    from sklearn import metrics as skm

    rng = np.random.default_rng(11)
    for K, absent in ((4, ()), (5, (2,))):
        _, probs, y = probs_case(rng, 300, K, absent=absent)
        m = CM(K)  # mean_iou without curves
        m.update(probs, torch.tensor(y))
        p = probs.argmax(1).numpy()
        assert m.compute()["mean_iou"] == pytest.approx(skm.jaccard_score(y, p, average="macro", zero_division=0))


def test_segmentation_with_channel_targets_and_ignore_index(device):
    from sklearn import metrics as skm

    g = torch.Generator().manual_seed(5)
    K = 3
    logits = torch.randn(2, K, 12, 10, generator=g)
    target = torch.randint(0, K, (2, 1, 12, 10), generator=g)
    target[:, :, :2] = 255
    m = CM(K, ignore_index=255, curves=True)
    m.update(logits.to(device), target.to(device))
    r = m.compute()
    keep = (target != 255).reshape(-1).numpy()
    y = target.reshape(-1).numpy()[keep]
    probs = torch.softmax(logits, 1).movedim(1, -1).reshape(-1, K).numpy()[keep]
    np.testing.assert_array_equal(r["confusion_matrix"].cpu().numpy(), skm.confusion_matrix(y, probs.argmax(1), labels=range(K)))
    assert_matches_sklearn_ranking(r, probs, y, K)


@pytest.mark.parametrize("form", ["scores_N", "logits_N1", "masks_N1HW", "two_columns"])
def test_binary_inputs(form, device):
    from sklearn import metrics as skm

    tmf = pytest.importorskip("torchmetrics.functional.classification")
    g = torch.Generator().manual_seed(9)
    if form == "masks_N1HW":
        logits = torch.randn(3, 1, 8, 8, generator=g) * 2
        target = (torch.rand(3, 1, 8, 8, generator=g) < torch.sigmoid(logits)).long()
        target[0, 0, 0] = 255
        m = CM(2, ignore_index=255, curves=True)
    else:
        logits = torch.randn(400, generator=g) * 2
        target = (torch.rand(400, generator=g) < torch.sigmoid(logits)).long()
        m = CM(task="binary", curves=True) if form == "two_columns" else CM(2, curves=True)
    inputs = {
        "scores_N": torch.sigmoid(logits),
        "logits_N1": logits.unsqueeze(1),
        "masks_N1HW": logits,
        "two_columns": torch.stack([torch.zeros_like(logits), logits], 1),  # softmax column 1 = sigmoid
    }[form]
    m.update(inputs.to(device), target.to(device))
    r = m.compute()
    assert m._task == "binary"
    keep = (target != 255).reshape(-1).numpy()
    y = target.reshape(-1).numpy()[keep]
    p = torch.sigmoid(logits.double()).reshape(-1).numpy()[keep]
    pred = (p > 0.5).astype(int)  # torchmetrics' binary rule
    np.testing.assert_array_equal(r["confusion_matrix"].cpu().numpy(), skm.confusion_matrix(y, pred, labels=[0, 1]))
    tm_f1 = tmf.binary_f1_score(torch.sigmoid(logits).reshape(-1)[keep], torch.tensor(y))
    assert float(r["f1"][1]) == pytest.approx(float(tm_f1), abs=1e-6)
    # binary: the positive class headlines (floats, as scikit-learn's binary scores); both classes per class
    assert isinstance(r["average_precision"], float) and isinstance(r["roc_auc"], float)
    assert r["average_precision"] == pytest.approx(skm.average_precision_score(y, p), abs=1e-6)
    assert r["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-6)
    assert r["per_class_average_precision"].shape == (2,)
    assert float(r["per_class_average_precision"][1]) == r["average_precision"]
    assert float(r["per_class_average_precision"][0]) == pytest.approx(skm.average_precision_score(1 - y, 1 - p), abs=1e-6)
    assert float(r["per_class_roc_auc"][0]) == pytest.approx(r["roc_auc"])
    # the same numbers as bt.metrics' scikit-learn functions on the same samples
    assert r["average_precision"] == pytest.approx(bt.metrics.average_precision_score(y, p), abs=1e-6)


@pytest.mark.parametrize("scores", [True, False], ids=["scores", "labels"])
def test_multilabel_matches_torchmetrics_and_sklearn(scores, device):
    from sklearn import metrics as skm

    tmf = pytest.importorskip("torchmetrics.functional.classification")
    g = torch.Generator().manual_seed(13)
    C = 4
    logits = torch.randn(250, C, generator=g) * 2
    target = (torch.rand(250, C, generator=g) < torch.sigmoid(logits)).long()
    target[:, 3] = 0  # a label with no positives
    target[5, 1] = -1  # one ignored entry
    m = CM(C, task="multilabel", ignore_index=-1, curves=scores)
    preds = logits if scores else (logits > 0).long()
    m.update(preds.to(device), target.to(device))
    r = m.compute()
    tm_preds = torch.sigmoid(logits) if scores else preds
    kw = dict(num_labels=C, ignore_index=-1)
    torch.testing.assert_close(r["confusion_matrix"].cpu(), tmf.multilabel_confusion_matrix(tm_preds, target, **kw))
    for key, fn in (
        ("precision", tmf.multilabel_precision),
        ("recall", tmf.multilabel_recall),
        ("f1", tmf.multilabel_f1_score),
        ("iou", tmf.multilabel_jaccard_index),
    ):
        np.testing.assert_allclose(r[key].cpu().numpy(), fn(tm_preds, target, average="none", **kw).numpy(), atol=1e-6)
        if key != "iou":
            assert r[f"macro_{key}"] == pytest.approx(float(fn(tm_preds, target, average="macro", **kw)), abs=1e-6)
            assert r[f"weighted_{key}"] == pytest.approx(float(fn(tm_preds, target, average="weighted", **kw)), abs=1e-6)
    assert r["mean_iou"] == pytest.approx(float(tmf.multilabel_jaccard_index(tm_preds, target, average="macro", **kw)), abs=1e-6)
    assert r["accuracy"] == pytest.approx(float(tmf.multilabel_accuracy(tm_preds, target, average="micro", **kw)), abs=1e-6)
    if scores:
        p = torch.sigmoid(logits.double()).numpy()
        for c in range(C):
            keep = target[:, c].numpy() >= 0
            yc, pc = target[keep, c].numpy(), p[keep, c]
            if yc.any():
                assert float(r["average_precision"][c]) == pytest.approx(skm.average_precision_score(yc, pc), abs=1e-9)
                assert float(r["roc_auc"][c]) == pytest.approx(skm.roc_auc_score(yc, pc), abs=1e-9)
            else:
                assert math.isnan(float(r["average_precision"][c])) and math.isnan(float(r["roc_auc"][c]))
        assert m.report().count("\n") > C


@pytest.mark.parametrize(
    "thresholds", [11, [0.0, 0.1, 0.25, 0.5, 0.75, 1.0], torch.linspace(0, 1, 64)], ids=["int", "list", "tensor"]
)
@pytest.mark.parametrize("tied", [False, True], ids=["random", "tied"])
def test_binned_equals_torchmetrics(thresholds, tied):
    tmf = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(17)
    K = 4
    _, probs, y = probs_case(rng, 600, K, tied=tied)
    probs = probs.float()
    target = torch.tensor(y)
    m = CM(K, curves=True, thresholds=thresholds)
    for s in range(0, 600, 200):
        m.update(probs[s : s + 200], target[s : s + 200])
    assert m._binned and not m._scores
    r = m.compute()
    kw = dict(num_classes=K, thresholds=thresholds)
    np.testing.assert_allclose(
        r["average_precision"].numpy(), tmf.multiclass_average_precision(probs, target, average="none", **kw).numpy(), atol=1e-6
    )
    np.testing.assert_allclose(r["roc_auc"].numpy(), tmf.multiclass_auroc(probs, target, average="none", **kw).numpy(), atol=1e-6)
    tm_prec, tm_rec, tm_thr = tmf.multiclass_precision_recall_curve(probs, target, **kw)
    for c, (prec, rec, thr) in enumerate(m.pr_curves()):
        np.testing.assert_allclose(prec.numpy(), tm_prec[c].numpy(), atol=1e-6)
        np.testing.assert_allclose(rec.numpy(), tm_rec[c].numpy(), atol=1e-6)
        np.testing.assert_allclose(thr.numpy(), tm_thr.numpy(), atol=1e-7)
    tm_fpr, tm_tpr, _ = tmf.multiclass_roc(probs, target, **kw)
    for c, (fpr, tpr, _) in enumerate(m.roc_curves()):
        np.testing.assert_allclose(fpr.numpy(), tm_fpr[c].numpy(), atol=1e-6)
        np.testing.assert_allclose(tpr.numpy(), tm_tpr[c].numpy(), atol=1e-6)
    # binary and multi-label binned states too
    p1 = probs[:, 1]
    b = CM(task="binary", curves=True, thresholds=thresholds)
    b.update(p1, (target == 1).long())
    rb = b.compute()
    assert rb["average_precision"] == pytest.approx(
        float(tmf.binary_average_precision(p1, (target == 1).long(), thresholds=thresholds)), abs=1e-6
    )
    assert rb["roc_auc"] == pytest.approx(float(tmf.binary_auroc(p1, (target == 1).long(), thresholds=thresholds)), abs=1e-6)
    multi = torch.nn.functional.one_hot(target, K)
    ml = CM(K, task="multilabel", curves=True, thresholds=thresholds)
    ml.update(probs, multi)
    np.testing.assert_allclose(
        ml.compute()["average_precision"].numpy(),
        tmf.multilabel_average_precision(probs, multi, num_labels=K, average="none", thresholds=thresholds).numpy(),
        atol=1e-6,
    )


def test_exact_switches_to_binned_beyond_exact_max_samples():
    tmf = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(19)
    K = 3
    _, probs, y = probs_case(rng, 500, K)
    probs = probs.float()
    target = torch.tensor(y)
    switching = CM(K, curves=True, thresholds=21, exact_max_samples=250)
    binned = CM(K, curves=True, thresholds=21)
    exact = CM(K, curves=True)
    for s in range(0, 500, 100):
        for m in (switching, binned, exact):
            m.update(probs[s : s + 100], target[s : s + 100])
        if s + 100 <= 250:  # still exact: the scikit-learn numbers
            assert not switching._binned
            torch.testing.assert_close(switching.compute()["average_precision"], exact.compute()["average_precision"])
    assert switching._binned and not switching._scores
    torch.testing.assert_close(switching.compute()["average_precision"], binned.compute()["average_precision"])
    torch.testing.assert_close(switching.compute()["roc_auc"], binned.compute()["roc_auc"])
    assert_matches_sklearn_ranking(exact.compute(), probs.double().numpy(), y, K)
    # default grid: 1001 thresholds
    default = CM(K, curves=True, exact_max_samples=50)
    default.update(probs, target)
    r = default.compute()
    kw = dict(num_classes=K, thresholds=1001, average="none")
    np.testing.assert_allclose(
        r["average_precision"].numpy(), tmf.multiclass_average_precision(probs, target, **kw).numpy(), atol=1e-6
    )


def test_validate_args_false_gives_the_same_numbers():
    rng = np.random.default_rng(23)
    logits, _, y = probs_case(rng, 300, 3)
    a = CM(3, curves=True, input_format="logits")
    b = CM(3, curves=True, input_format="logits", validate_args=False)
    for m in (a, b):
        m.update(logits.float(), torch.tensor(y))
    ra, rb = a.compute(), b.compute()
    torch.testing.assert_close(ra["confusion_matrix"], rb["confusion_matrix"])
    torch.testing.assert_close(ra["average_precision"], rb["average_precision"])


def test_every_plot_returns_a_figure_and_leaks_nothing_into_pyplot(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    rng = np.random.default_rng(29)
    _, probs, y = probs_case(rng, 200, 3, absent=(2,))
    m = CM(3, class_names=["a", "b", "c"], curves=True)
    m.update(probs, torch.tensor(y))
    ml = CM(3, task="multilabel", curves=True)
    ml.update(probs, torch.nn.functional.one_hot(torch.tensor(y), 3))
    before = plt.get_fignums()
    plots = [
        m.plot_confusion_matrix,
        m.plot_per_class,
        m.plot_pr_curves,
        m.plot_roc_curves,
        ml.plot_confusion_matrix,
        ml.plot_pr_curves,
    ]
    for i, plot in enumerate(plots):
        fig = plot()
        assert isinstance(fig, Figure) and fig.axes
        path = tmp_path / f"plot{i}.png"
        assert isinstance(plot(str(path)), Figure)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == before
    labels = [t.get_text() for t in m.plot_pr_curves().axes[0].get_legend().get_texts()]
    assert (
        labels == [f"a (AP {float(m.compute()['average_precision'][0]):.3f})", labels[1]] and len(labels) == 2
    )  # c has no positives
    with pytest.raises(RuntimeError, match="needs curves=True"):
        CM(3).plot_pr_curves()


def test_binary_plots_and_report_headline_the_positive_class():
    pytest.importorskip("matplotlib")
    from sklearn import metrics as skm

    rng = np.random.default_rng(5)
    y = (rng.random(300) < 0.1).astype(int)  # 10% positives: the two classes' APs differ a lot
    p = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
    m = CM(task="binary", class_names=["benign", "tumour"], curves=True)
    m.update(torch.tensor(p), torch.tensor(y))
    r = m.compute()
    ap = skm.average_precision_score(y, p)
    assert r["average_precision"] == pytest.approx(ap, abs=1e-12)
    assert r["macro_average_precision"] != pytest.approx(ap, abs=1e-3)  # what the title used to show
    pr = m.plot_pr_curves().axes[0]
    assert pr.get_title() == f"precision-recall of tumour (AP {ap:.3f})"
    assert [t.get_text() for t in pr.get_legend().get_texts()] == [f"tumour (AP {ap:.3f})"]
    roc = m.plot_roc_curves().axes[0]
    assert roc.get_title() == f"ROC of tumour (AUC {skm.roc_auc_score(y, p):.3f})"
    # the report keeps one row per class
    rows = {line.split()[0]: line.split() for line in m.report(digits=4).splitlines() if line.strip()}
    assert float(rows["tumour"][6]) == pytest.approx(ap, abs=1e-4)
    assert float(rows["benign"][6]) == pytest.approx(float(r["per_class_average_precision"][0]), abs=1e-4)


def test_repr_shows_every_non_default_argument():
    assert repr(CM(3)) == "ClassificationMetrics(num_classes=3, samples=0)"
    m = CM(
        3,
        class_names=["a", "b", "c"],
        ignore_index=255,
        device="cpu",
        task="multiclass",
        curves=True,
        thresholds=[0.2, 0.5],
        exact_max_samples=10,
        input_format="logits",
        validate_args=False,
    )
    text = repr(m)
    for part in (
        "num_classes=3",
        "class_names=['a', 'b', 'c']",
        "ignore_index=255",
        "device=device(type='cpu')",
        "task='multiclass'",
        "curves=True",
        "thresholds=[0.2, 0.5]",
        "exact_max_samples=10",
        "input_format='logits'",
        "validate_args=False",
    ):
        assert part in text, (part, text)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_classes=3, task="binary"), ValueError, r"task='binary' needs num_classes=2 \(or None\), got num_classes=3"),
        (
            dict(num_classes=3, task="multi"),
            ValueError,
            r"task must be one of None, 'multiclass', 'binary', 'multilabel', got 'multi'",
        ),
        (dict(num_classes=None), TypeError, r"num_classes must be an int >= 2, got None"),
        (dict(num_classes=3, thresholds=10), ValueError, r"thresholds=10 needs curves=True"),
        (dict(num_classes=3, curves=True, thresholds=1), ValueError, r"thresholds must be an int >= 2"),
        (
            dict(num_classes=3, curves=True, thresholds=[0.5, 1.5]),
            ValueError,
            r"thresholds must lie in \[0, 1\], got thresholds\[1\] = 1.5",
        ),
        (dict(num_classes=3, curves=True, thresholds="10"), TypeError, r"thresholds must be None, an int >= 2"),
        (
            dict(num_classes=3, curves=True, exact_max_samples=-1),
            ValueError,
            r"exact_max_samples must be an int >= 0 or None, got -1",
        ),
        (
            dict(num_classes=3, input_format="probs"),
            ValueError,
            r"input_format must be one of 'auto', 'logits', 'probabilities', got 'probs'",
        ),
        (dict(num_classes=3, curves="yes"), TypeError, r"curves must be True or False, got 'yes'"),
        (dict(num_classes=3, device="meta"), ValueError, r"device='meta' holds no values"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        CM(**kwargs)


@pytest.mark.parametrize(
    "kwargs, preds, target, match",
    [
        (
            dict(num_classes=3, curves=True),
            torch.tensor([0, 1, 2]),
            torch.tensor([0, 1, 2]),
            r"curves=True needs scores .* got integer labels",
        ),
        (
            dict(num_classes=3),
            torch.rand(4, 3),
            torch.tensor([[0, 1, 1], [1, 0, 1], [0, 0, 1], [1, 1, 0]]),
            r"multi-hot .*task='multilabel'",
        ),
        (
            dict(num_classes=3),
            torch.rand(4, 5),
            torch.randint(0, 2, (4, 5)),
            r"has the target's shape but holds floats.*task='multilabel'",
        ),
        (
            dict(num_classes=3, task="multilabel"),
            torch.rand(4, 2),
            torch.randint(0, 2, (4, 2)),
            r"task='multilabel' takes .* \(N, num_classes=3, \.\.\.\), got preds_or_logits \(4, 2\)",
        ),
        (
            dict(num_classes=3, task="multilabel"),
            torch.rand(4, 3),
            torch.full((4, 3), 2),
            r"target must be >= 0 and < num_classes=2",
        ),
        (
            dict(task="binary"),
            torch.rand(4, 3),
            torch.tensor([0, 1, 1, 0]),
            r"task='binary' takes preds_or_logits of the target's shape \(4,\)",
        ),
        (
            dict(task="binary", curves=True, input_format="probabilities"),
            torch.tensor([0.2, 1.5]),
            torch.tensor([0, 1]),
            r"input_format='probabilities' but preds_or_logits.flatten\(\)\[1\] = 1.5 is outside \[0, 1\]",
        ),
        (
            dict(task="binary", curves=True),
            torch.tensor([0.2, float("nan")]),
            torch.tensor([0, 1]),
            r"holds NaN scores \(element 1",
        ),
        (
            dict(num_classes=3, curves=True),
            torch.tensor([[0.2, 0.3, float("nan")]]),
            torch.tensor([0]),
            r"holds NaN scores \(element 2",
        ),
        (
            dict(task="binary", curves=True),
            torch.rand(4, device="meta"),
            torch.tensor([0, 1, 0, 1]),
            r"update: preds_or_logits is on the meta device, which holds no values",
        ),
        (
            dict(task="binary", curves=True),
            torch.rand(4),
            torch.tensor([0, 1, 0, 1], device="meta"),
            r"update: target is on the meta device, which holds no values",
        ),
        (
            dict(num_classes=3),
            torch.rand(2, 3, device="meta"),
            torch.tensor([0, 1], device="meta"),
            r"update: preds_or_logits is on the meta device",
        ),
    ],
)
def test_bad_updates(kwargs, preds, target, match):
    with pytest.raises(ValueError, match=match):
        CM(**kwargs).update(preds, target)


@pytest.mark.parametrize("kwargs", [dict(task="binary"), dict(task="binary", curves=True), dict(num_classes=3, curves=True)])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_scores_are_refused_as_complex(kwargs, dtype):
    # not "needs scores ... got integer labels", and never a silent cast that drops the imaginary part
    shape = (4, 3) if "num_classes" in kwargs else (4,)
    m = CM(**kwargs)
    with pytest.raises(
        TypeError, match=rf"preds_or_logits must hold real scores .*complex numbers are not supported, got dtype {dtype}"
    ):
        m.update(torch.rand(shape).to(dtype), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(TypeError, match=r"complex numbers are not supported"):
        m.update(np.ones(shape, dtype=np.complex64), [0, 1, 0, 1])
    assert int(m.compute()["confusion_matrix"].sum()) == 0


def _ddp_curves_worker(rank, world_size, init_file, out_dir):
    init_gloo(rank, world_size, init_file)
    try:
        rng = np.random.default_rng(200 + rank)
        n = 150 if rank == 0 else 260  # unequal: the all-gather pads
        _, probs, y = probs_case(rng, n, 3, tied=rank == 1)
        out = {"probs": probs, "y": y}
        configs = {
            "exact": dict(curves=True),
            "binned": dict(curves=True, thresholds=17),
            "mixed": dict(curves=True, thresholds=17, exact_max_samples=200),  # rank 1 switches, rank 0 does not
        }
        for name, kw in configs.items():
            m = CM(3, **kw)
            m.update(probs, torch.tensor(y))
            out[name] = m.compute()
            out[name + "_pr"] = m.pr_curves()  # after compute, any rank: the reduced state
            out[name + "_binned"] = m._binned
        save_rank(out, out_dir, rank)
    finally:
        close_gloo()


@pytest.mark.slow
@pytest.mark.distributed
def test_distributed_curves_two_gloo_processes(tmp_path):
    parts = run_ranks(_ddp_curves_worker, 2, tmp_path)
    assert parts[0]["mixed_binned"] is False and parts[1]["mixed_binned"] is True
    probs = torch.cat([p["probs"] for p in parts])
    y = np.concatenate([p["y"] for p in parts])
    single = {}
    for name, kw in (("exact", dict(curves=True)), ("binned", dict(curves=True, thresholds=17))):
        m = CM(3, **kw)
        m.update(probs, torch.tensor(y))
        single[name] = (m.compute(), m.pr_curves())
    single["mixed"] = single["binned"]  # one rank beyond the limit: everyone bins
    for part in parts:
        for name in ("exact", "binned", "mixed"):
            expected, expected_pr = single[name]
            got = part[name]
            torch.testing.assert_close(got["confusion_matrix"], expected["confusion_matrix"])
            torch.testing.assert_close(got["average_precision"], expected["average_precision"])
            torch.testing.assert_close(got["roc_auc"], expected["roc_auc"])
            for (a, b, _c), (x, yy, _z) in zip(part[name + "_pr"], expected_pr):
                torch.testing.assert_close(a, x, equal_nan=True)
                torch.testing.assert_close(b, yy, equal_nan=True)
        assert_matches_sklearn_ranking(part["exact"], probs.numpy(), y, 3)


# --- ax=: draw into an Axes of the caller's ------------------------------------------------


def _drawn(ax):
    """What a plot put on an Axes: texts, data of its lines, images and bars, its legend."""
    legend = ax.get_legend()
    return {
        "title": ax.get_title(),
        "labels": (ax.get_xlabel(), ax.get_ylabel()),
        "ticks": [  # the tick labels a plot sets (automatic ones follow the Axes' size)
            [t.get_text() for t in axis.get_ticklabels()] if type(axis.get_major_locator()).__name__ == "FixedLocator" else None
            for axis in (ax.xaxis, ax.yaxis)
        ],
        "limits": (ax.get_xlim(), ax.get_ylim()),
        "lines": [line.get_xydata().tolist() for line in ax.get_lines()],
        "images": [np.asarray(im.get_array()).tolist() for im in ax.images],
        "texts": [t.get_text() for t in ax.texts],
        "bars": [(p.get_x(), p.get_width(), p.get_height()) for p in ax.patches],
        "legend": None if legend is None else [t.get_text() for t in legend.get_texts()],
    }


def _fitted_metrics():
    rng = np.random.default_rng(31)
    _, probs, y = probs_case(rng, 150, 3, absent=(2,))
    m = CM(3, class_names=["a", "b", "c"], curves=True)
    m.update(probs, torch.tensor(y))
    return m


_ONE_AXES = ["plot_confusion_matrix", "plot_per_class", "plot_pr_curves", "plot_roc_curves"]


_CASES = [(method, {}) for method in _ONE_AXES] + [("plot_confusion_matrix", {"normalize": "true"})]


@pytest.mark.parametrize("method, kwargs", _CASES, ids=_ONE_AXES + ["plot_confusion_matrix-normalized"])
def test_plot_draws_into_a_given_axes_what_it_draws_into_its_own(method, kwargs):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = _fitted_metrics()
    own = getattr(m, method)(**kwargs)
    fig, (other, ax) = plt.subplots(1, 2, layout="constrained")
    try:
        other.plot([0, 1], [1, 0])
        before = _drawn(other)
        assert getattr(m, method)(ax=ax, **kwargs) is fig
        assert _drawn(ax) == _drawn(own.axes[0])  # same title, labels, ticks and data as in a Figure of its own
        assert _drawn(other) == before  # the neighbour is untouched
        assert ax.get_title() and len(ax.get_children()) == len(own.axes[0].get_children())  # as many artists
        assert len(ax.get_children()) > len(other.get_children())  # more than an Axes with one line: not vacuous
        # the colorbar of the matrix joins the caller's figure, beside ax; the other plots add no Axes
        assert len(fig.axes) == len(own.axes) + 1
        assert isinstance(fig.get_layout_engine(), matplotlib.layout_engine.ConstrainedLayoutEngine)  # layout kept
    finally:
        plt.close("all")


@pytest.mark.parametrize("method", _ONE_AXES)
def test_plot_into_an_axes_of_a_bare_figure_or_a_subfigure(method, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    m = _fitted_metrics()
    before = plt.get_fignums()
    fig = Figure(figsize=(5, 4), dpi=50)
    ax = fig.add_subplot()
    path = tmp_path / "in_ax.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "layout has changed" warning: the caller's layout is left alone
        assert getattr(m, method)(str(path), ax=ax) is fig
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(path.read_bytes()[16:20], "big"), int.from_bytes(path.read_bytes()[20:24], "big")) == (250, 200)
    assert fig.get_layout_engine() is None  # no tight_layout on a figure of the caller's
    assert plt.get_fignums() == before  # a bare figure stays out of pyplot
    root = Figure()
    left, right = root.subfigures(1, 2)
    sub_ax = right.add_subplot()
    assert getattr(m, method)(ax=sub_ax) is root  # the top-level figure
    assert _drawn(sub_ax) == _drawn(ax) and not left.axes


@pytest.mark.parametrize("method", _ONE_AXES)
@pytest.mark.parametrize("bad", ["ax", 3, "figure", "list"])
def test_plot_ax_of_the_wrong_type_is_a_type_error_naming_ax(method, bad):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    m = _fitted_metrics()
    fig = Figure()
    value = {"ax": "ax", 3: 3, "figure": fig, "list": [fig.add_subplot()]}[bad]
    with pytest.raises(TypeError, match=rf"ClassificationMetrics.{method}: ax must be a matplotlib.axes.Axes.*got"):
        getattr(m, method)(ax=value)


@pytest.mark.parametrize("method", _ONE_AXES)
def test_plot_into_3d_axes_is_a_type_error_naming_ax(method):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    ax = Figure().add_subplot(projection="3d")  # its text() and bar() take other arguments
    with pytest.raises(TypeError, match=rf"ClassificationMetrics.{method}: ax must be a 2-D matplotlib Axes, got a 3-D one"):
        getattr(_fitted_metrics(), method)(ax=ax)
    assert not ax.texts and not ax.patches  # refused before anything is drawn


def test_multilabel_confusion_matrix_takes_one_axes_per_label():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    rng = np.random.default_rng(32)
    _, probs, y = probs_case(rng, 120, 3)
    ml = CM(3, task="multilabel", class_names=["x", "y", "z"])
    ml.update(probs, torch.nn.functional.one_hot(torch.tensor(y), 3))
    own = ml.plot_confusion_matrix(normalize="pred")
    fig = Figure()
    grid = fig.subplots(2, 2)
    assert ml.plot_confusion_matrix(normalize="pred", ax=grid.flat[:3]) is fig  # an array, as plt.subplots gives
    assert [_drawn(a) for a in grid.flat[:3]] == [_drawn(a) for a in own.axes[:3]]
    assert [a.get_title() for a in grid.flat[:3]] == ["x", "y", "z"]
    assert _drawn(grid.flat[3])["images"] == [] and fig.get_suptitle() == ""  # the rest of the caller's figure
    assert ml.plot_confusion_matrix(ax=list(Figure().subplots(1, 3))).axes[0].get_title() == "x"  # a list
    axes = list(Figure().subplots(1, 4))
    with pytest.raises(ValueError, match=r"ax must be a sequence of 3 Axes .*got one Axes"):
        ml.plot_confusion_matrix(ax=axes[0])
    with pytest.raises(ValueError, match="ax must hold 3 Axes .*got 4"):
        ml.plot_confusion_matrix(ax=axes)
    with pytest.raises(ValueError, match="3 distinct Axes"):
        ml.plot_confusion_matrix(ax=[axes[0], axes[1], axes[0]])
    with pytest.raises(ValueError, match="belong to one figure"):
        ml.plot_confusion_matrix(ax=axes[:2] + [Figure().add_subplot()])
    with pytest.raises(TypeError, match=r"ax must hold matplotlib Axes only, got ax\[1\] = 'b'"):
        ml.plot_confusion_matrix(ax=[axes[0], "b", axes[2]])
    with pytest.raises(TypeError, match="ax must be a sequence of 3 matplotlib Axes .*got str"):
        ml.plot_confusion_matrix(ax="abc")
