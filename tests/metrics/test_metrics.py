"""ClassificationMetrics against scikit-learn and imbalanced-learn."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

import balancedtorch as bt

from _distributed import close_gloo, init_gloo, run_ranks, save_rank

imblearn_metrics = pytest.importorskip("imblearn.metrics")


def random_case(rng, K, N, absent_target=False, absent_pred=False):
    y = rng.integers(0, K, N)
    p = np.where(rng.random(N) < 0.6, y, rng.integers(0, K, N))
    if absent_target:
        y[y == K - 1] = 0
    if absent_pred:
        p[p == 1] = 0
    return y, p


def assert_matches_sklearn(r, y, p, K):
    P, R, F, S = skm.precision_recall_fscore_support(y, p, labels=range(K), zero_division=0)
    np.testing.assert_allclose(r["precision"].cpu().numpy(), P)
    np.testing.assert_allclose(r["recall"].cpu().numpy(), R)
    np.testing.assert_allclose(r["f1"].cpu().numpy(), F)
    np.testing.assert_array_equal(r["support"].cpu().numpy(), S)
    np.testing.assert_array_equal(r["confusion_matrix"].cpu().numpy(), skm.confusion_matrix(y, p, labels=range(K)))
    for avg in ("macro", "weighted"):
        P, R, F, _ = skm.precision_recall_fscore_support(y, p, average=avg, zero_division=0)
        assert r[f"{avg}_precision"] == pytest.approx(P)
        assert r[f"{avg}_recall"] == pytest.approx(R)
        assert r[f"{avg}_f1"] == pytest.approx(F)
    assert r["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    with np.errstate(all="ignore"):
        assert r["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    assert r["mcc"] == pytest.approx(skm.matthews_corrcoef(y, p), abs=1e-12)
    np.testing.assert_allclose(r["iou"].cpu().numpy(), skm.jaccard_score(y, p, labels=range(K), average=None, zero_division=0))
    present = np.unique(np.concatenate([y, p]))
    spec = imblearn_metrics.specificity_score(y, p, labels=present, average=None)
    np.testing.assert_allclose(r["specificity"].cpu().numpy()[present], spec)
    with np.errstate(all="ignore"):
        assert r["gmean"] == pytest.approx(imblearn_metrics.geometric_mean_score(y, p), abs=1e-12)


@pytest.mark.parametrize("trial", range(12))
def test_labels_match_sklearn_and_imblearn(trial, device):
    rng = np.random.default_rng(trial)
    K = int(rng.integers(2, 9))
    y, p = random_case(rng, K, int(rng.integers(1, 400)), absent_target=trial % 3 == 0, absent_pred=trial % 4 == 1)
    m = bt.metrics.ClassificationMetrics(K)
    m.update(torch.tensor(p, device=device), torch.tensor(y, device=device))
    r = m.compute()
    assert r["precision"].device.type == torch.device(device).type
    assert_matches_sklearn(r, y, p, K)


def test_traffic_light_pixels_with_logits_and_ignore_index(device):
    # 800:1 background:light pixels; predicting background everywhere is 99.9% accurate and useless
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(4, 64, 100, generator=g) < 1 / 800).long()
    target[:, :2] = 255  # void rows
    logits = torch.zeros(4, 2, 64, 100)
    logits[:, 0] = 1.0  # always background
    m = bt.metrics.ClassificationMetrics(2, class_names=["background", "light"], ignore_index=255, device=device)
    m.update(logits.to(device), target.to(device))
    r = m.compute()
    keep = target != 255
    y = target[keep].numpy()
    p = np.zeros_like(y)
    assert r["accuracy"] > 0.99 and r["recall"][1] == 0 and r["balanced_accuracy"] == pytest.approx(0.5)
    assert_matches_sklearn(r, y, p, 2)


def _adversarial_scores(kind, shape, dtype, g):
    """Scores with the ties, signed zeros, infinities and NaNs a first-maximum search must get right."""
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    if kind == "ties":  # few distinct values: most pixels have tied maxima
        x = torch.randint(-2, 3, shape, generator=g).double()
    elif kind == "signed zeros":  # -0.0 == 0.0: the first of them is the maximum
        x = torch.where(torch.rand(shape, generator=g) < 0.5, -0.0, 0.0).double()
    elif kind == "infinities":
        r = torch.rand(shape, generator=g, dtype=torch.float64)
        x = torch.where(r < 0.3, float("-inf"), torch.where(r > 0.8, float("inf"), x))
        x[:, :, :1] = float("-inf")  # whole pixels of -inf: class 0
    elif kind == "nan":
        x = torch.where(torch.rand(shape, generator=g) < 0.05, float("nan"), x)
        x.view(-1)[:1] = float("nan")  # at least one
    elif kind == "large offset":  # neighbours one ulp apart
        x = 1e6 + torch.randint(0, 3, shape, generator=g).double() * 0.0625
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", ["gaussian", "ties", "signed zeros", "infinities", "nan", "large offset"])
@pytest.mark.parametrize("shape", [(4, 19, 9, 13), (3, 2, 7), (1, 255, 2, 3), (2, 5, 1, 1, 6), (0, 4, 3), (2, 3, 0)])
def test_first_max_equals_max_over_the_class_dimension(shape, kind, dtype):
    # the fast path for strided (NCHW) class dimensions: the same first positions as max(dim=1)
    from balancedtorch.metrics._confusion import _first_max

    g = torch.Generator().manual_seed(sum(shape) + len(kind))
    x = _adversarial_scores(kind, shape, dtype, g)
    before = x.clone()
    indices = _first_max(x)
    torch.testing.assert_close(x, before, rtol=0, atol=0, equal_nan=True)  # the input is left as it was
    want_indices = x.max(dim=1).indices
    if kind == "nan" or not x.numel():
        assert indices is None  # max(dim=1) answers: the first NaN is the maximum there
        return
    assert indices is not None and indices.dtype == torch.long and torch.equal(indices, want_indices)
    if kind in ("ties", "signed zeros"):
        assert int(want_indices.count_nonzero()) < want_indices.numel()  # ties really resolved to an early class


def test_segmentation_logits_count_the_first_maximum():
    # NCHW logits with tied maxima, counted by update: the confusion matrix of argmax (first maximum) labels
    g = torch.Generator().manual_seed(3)
    K = 6
    logits = torch.randint(0, 3, (3, K, 17, 23), generator=g).float()
    target = torch.randint(0, K, (3, 17, 23), generator=g)
    target[0, :2] = 255
    kept = logits.clone()
    m = bt.metrics.ClassificationMetrics(K, ignore_index=255)
    m.update(logits, target)
    assert torch.equal(logits, kept)
    keep = target != 255
    pred = logits.argmax(1)
    want = torch.bincount(target[keep] * K + pred[keep], minlength=K * K).view(K, K)
    assert torch.equal(m.confmat.cpu().long(), want)
    nan_logits = logits.clone()
    nan_logits[1, 2, 5, 7] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        bt.metrics.ClassificationMetrics(K).update(nan_logits, target.clamp_max(K - 1))
    loose = bt.metrics.ClassificationMetrics(K, validate_args=False)
    loose.update(nan_logits, target.clamp_max(K - 1))  # unvalidated: NaN is the maximum, as in max(dim=1)
    pred = nan_logits.max(1).indices
    assert int(pred[1, 5, 7]) == 2
    assert torch.equal(
        loose.confmat.cpu().long(), torch.bincount((target.clamp_max(K - 1) * K + pred).flatten(), minlength=K * K).view(K, K)
    )


def test_streaming_probabilities_equal_one_shot():
    rng = np.random.default_rng(5)
    K, N = 5, 1000
    probs = torch.softmax(torch.tensor(rng.normal(size=(N, K))), 1)
    y = torch.tensor(rng.integers(0, K, N))
    streamed = bt.metrics.ClassificationMetrics(K)
    for chunk in range(0, N, 137):
        streamed.update(probs[chunk : chunk + 137], y[chunk : chunk + 137])
    assert_matches_sklearn(streamed.compute(), y.numpy(), probs.argmax(1).numpy(), K)
    streamed.reset()
    assert int(streamed.confmat.sum()) == 0


def test_report_layout():
    m = bt.metrics.ClassificationMetrics(3, class_names=["red", "yellow", "green"])
    m.update(torch.tensor([0, 1, 2, 2, 0, 1]), torch.tensor([0, 1, 2, 0, 0, 2]))
    text = m.report()
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "specificity", "iou", "support"]
    red = lines[2].split()
    assert red[0] == "red" and red[1:4] == ["1.00", "0.67", "0.80"] and red[-1] == "3"
    assert any(line.split()[:2] == ["accuracy", "0.67"] for line in lines)
    sk = skm.classification_report([0, 1, 2, 0, 0, 2], [0, 1, 2, 2, 0, 1], target_names=["red", "yellow", "green"])
    for name in ("red", "yellow", "green", "macro avg", "weighted avg"):
        ours = next(line for line in lines if line.strip().startswith(name)).split()
        theirs = next(line for line in sk.splitlines() if line.strip().startswith(name)).split()
        n = len(name.split())
        assert ours[n : n + 3] == theirs[n : n + 3] and ours[-1] == theirs[-1]


def test_plots_written(tmp_path):
    pytest.importorskip("matplotlib")
    m = bt.metrics.ClassificationMetrics(4)
    m.update(torch.randint(0, 4, (200,)), torch.randint(0, 4, (200,)))
    for normalize in (None, "true", "pred", "all"):
        path = str(tmp_path / f"cm_{normalize}.png")
        m.plot_confusion_matrix(path, normalize=normalize)
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    m.plot_per_class(str(tmp_path / "per_class.png"))
    assert open(tmp_path / "per_class.png", "rb").read(4) == b"\x89PNG"
    with pytest.raises(ValueError, match="normalize must be"):
        m.plot_confusion_matrix(str(tmp_path / "x.png"), normalize="rows")


@pytest.mark.parametrize(
    "preds, target, match",
    [
        (torch.tensor([0, 1, 5]), torch.tensor([0, 1, 2]), r"predicted label 5 is outside \[0, num_classes=3\)"),
        (torch.tensor([0, 1, 2]), torch.tensor([0, -1, 2]), r"target must be >= 0 and < num_classes=3, got target\[1\] = -1"),
        (torch.randn(3, 4), torch.tensor([0, 1, 2]), r"must have the target's shape \(3,\) \(labels\) or \(3, 3\)"),
        (torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0, 1, 2]), "holds floats"),
        (torch.tensor([0, 1, 2]), torch.tensor([0.0, 1.5, 2.0]), r"target must hold integer class labels.*target\[1\] = 1.5"),
        (torch.tensor([0, 1, 2]), torch.eye(3, dtype=torch.long), "target looks like one-hot"),
    ],
)
def test_bad_updates(preds, target, match):
    with pytest.raises(ValueError, match=match):
        bt.metrics.ClassificationMetrics(3).update(preds, target)


def test_bad_construction():
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        bt.metrics.ClassificationMetrics(1)
    with pytest.raises(ValueError, match="class_names has 2 names for num_classes=3"):
        bt.metrics.ClassificationMetrics(3, class_names=["a", "b"])


def _ddp_metrics_worker(rank, world_size, init_file, out_dir):
    init_gloo(rank, world_size, init_file)
    try:
        rng = np.random.default_rng(100 + rank)
        y, p = random_case(rng, 4, 300)
        m = bt.metrics.ClassificationMetrics(4)
        m.update(torch.tensor(p), torch.tensor(y))
        monitor = bt.quality.DriftMonitor(torch.tensor([0, 1, 2, 3] * 10))
        monitor.update(torch.tensor(p))
        save_rank({"y": y, "p": p, "result": m.compute(), "drift": monitor.status()}, out_dir, rank)
    finally:
        close_gloo()


@pytest.mark.slow
@pytest.mark.distributed
def test_distributed_reduction_two_gloo_processes(tmp_path):
    parts = run_ranks(_ddp_metrics_worker, 2, tmp_path)
    y = np.concatenate([part["y"] for part in parts])
    p = np.concatenate([part["p"] for part in parts])
    for part in parts:  # every rank sees the metrics of all samples
        assert_matches_sklearn(part["result"], y, p, 4)
        assert part["drift"]["num_samples"] == 600
