"""Data-quality tools: label issues against cleanlab, mistakes, coverage, label shift, drift."""

import warnings

import numpy as np
import pytest
import torch
from scipy import stats

import balancedtorch as bt

cleanlab_filter = pytest.importorskip("cleanlab.filter")

FILTERS = ["prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given"]
RANKS = ["self_confidence", "normalized_margin", "confidence_weighted_entropy"]


def noisy_case(seed, N=None, K=None, dtype=np.float64):
    rng = np.random.default_rng(seed)
    N = N or int(rng.integers(50, 2500))
    K = K or int(rng.integers(2, 12))
    logits = rng.normal(size=(N, K)) * rng.uniform(0.5, 4)
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    p = p.astype(dtype)
    p /= p.sum(1, keepdims=True)
    y = np.where(rng.random(N) < 0.7, p.argmax(1), rng.integers(0, K, N))
    return y, p


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("filter_by", FILTERS)
def test_find_label_issues_equals_cleanlab(seed, filter_by):
    y, p = noisy_case(seed, dtype=np.float32 if seed % 2 else np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = cleanlab_filter.find_label_issues(y, p, filter_by=filter_by, n_jobs=1)
        ours_mask = bt.quality.find_label_issues(y, p, filter_by=filter_by)
        np.testing.assert_array_equal(ours_mask, mask)
        for rank_by in RANKS:
            ranked = cleanlab_filter.find_label_issues(y, p, filter_by=filter_by, return_indices_ranked_by=rank_by, n_jobs=1)
            ours = bt.quality.find_label_issues(
                torch.tensor(y), torch.tensor(p), filter_by=filter_by, return_indices_ranked_by=rank_by
            )
            np.testing.assert_array_equal(ours.numpy(), ranked)


@pytest.mark.parametrize("frac_noise", [0.3, 1.0])
@pytest.mark.parametrize("min_examples_per_class", [0, 1, 40])
def test_find_label_issues_options_equal_cleanlab(frac_noise, min_examples_per_class):
    y, p = noisy_case(99, N=1500, K=6)
    y[:30] = 5  # a small class is affected by min_examples_per_class
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for filter_by in ("prune_by_noise_rate", "prune_by_class", "both"):
            ref = cleanlab_filter.find_label_issues(
                y, p, filter_by=filter_by, frac_noise=frac_noise, min_examples_per_class=min_examples_per_class, n_jobs=1
            )
            ours = bt.quality.find_label_issues(
                y, p, filter_by=filter_by, frac_noise=frac_noise, min_examples_per_class=min_examples_per_class
            )
            np.testing.assert_array_equal(ours, ref)


def test_find_label_issues_finds_injected_flips():
    rng = np.random.default_rng(3)
    N, K = 3000, 4
    true = rng.integers(0, K, N)
    logits = rng.normal(size=(N, K))
    logits[np.arange(N), true] += 4
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = true.copy()
    flipped = rng.choice(N, 90, replace=False)
    given[flipped] = (true[flipped] + rng.integers(1, K, 90)) % K
    issues = set(bt.quality.find_label_issues(given, p, return_indices_ranked_by="self_confidence").tolist())
    precision = len(issues & set(flipped.tolist())) / len(issues)
    recall = len(issues & set(flipped.tolist())) / 90
    assert precision > 0.8 and recall > 0.8


def test_device_and_mask_outputs(device):
    y, p = noisy_case(7)
    yt, pt = torch.tensor(y, device=device), torch.tensor(p, device=device)
    ranked = bt.quality.find_label_issues(yt, pt, return_indices_ranked_by="self_confidence")
    mask = bt.quality.find_label_issues(yt, pt)
    assert ranked.device.type == torch.device(device).type and mask.dtype == torch.bool
    assert sorted(ranked.tolist()) == torch.nonzero(mask).flatten().tolist()


@pytest.mark.parametrize(
    "labels, pred_probs, match",
    [
        ([0, 1, 3], [[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]], r"labels must be >= 0 and < num_classes=2, got labels\[2\] = 3"),
        ([0, 1], [[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]], "labels has 2 entries but pred_probs has 3 rows"),
        ([0, 1], [[0.5, 0.6], [0.2, 0.8]], "rows must sum to 1.*row 0 sums to 1.1"),
        ([0, 1], [0.5, 0.5], r"must have shape \(N, K\)"),
        ([], np.zeros((0, 2)), "empty"),
        ([0.5, 1], [[0.5, 0.5], [0.2, 0.8]], "must hold integer class labels"),
        ([0, 1], [[1.5, -0.5], [0.2, 0.8]], r"probabilities in \[0, 1\]"),
    ],
)
def test_bad_inputs(labels, pred_probs, match):
    with pytest.raises(ValueError, match=match):
        bt.quality.find_label_issues(labels, np.asarray(pred_probs, dtype=np.float64))


def test_bad_options():
    y, p = noisy_case(1)
    with pytest.raises(ValueError, match="filter_by must be one of"):
        bt.quality.find_label_issues(y, p, filter_by="magic")
    with pytest.raises(ValueError, match="return_indices_ranked_by must be one of"):
        bt.quality.find_label_issues(y, p, rank_by="entropy")
    with pytest.raises(ValueError, match=r"frac_noise must be a number in \(0, 1\]"):
        bt.quality.find_label_issues(y, p, frac_noise=0)


def test_rank_mistakes_and_mistakes_per_class():
    y, p = noisy_case(11, N=500, K=5)
    out = bt.quality.rank_mistakes(y, p)
    pred, conf = p.argmax(1), p.max(1)
    wrong = [i for i in range(len(y)) if pred[i] != y[i]]
    expected = sorted(wrong, key=lambda i: (-conf[i], i))
    assert out["index"].tolist() == expected
    assert out["target"].tolist() == [int(y[i]) for i in expected]
    assert out["prediction"].tolist() == [int(pred[i]) for i in expected]
    np.testing.assert_allclose(out["confidence"].numpy(), conf[expected])
    per = bt.quality.mistakes_per_class(y, p)
    rates = per["rate"].tolist()
    assert rates == sorted(rates, reverse=True)
    for c, count, support, pairs in zip(
        per["class"].tolist(), per["count"].tolist(), per["support"].tolist(), per["confused_with"]
    ):
        members = y == c
        assert support == members.sum() and count == (pred[members] != c).sum()
        assert sum(n for _, n in pairs) == count
        assert [n for _, n in pairs] == sorted((n for _, n in pairs), reverse=True)
        for j, n in pairs:
            assert n == ((pred == j) & members).sum()


def test_coverage_report():
    y = np.array([0] * 50 + [1] * 50 + [2] * 50)
    orientation = np.array(["vertical"] * 150, dtype=object)
    orientation[:45] = "horizontal"  # class 0 is mostly horizontal
    orientation[50:52] = "horizontal"  # class 1: only two
    report = bt.quality.coverage_report(y, {"orientation": orientation}, min_count=5, class_names=["r", "y", "g"])
    entry = report["orientation"]
    assert entry["values"] == ["horizontal", "vertical"]
    assert entry["counts"].tolist() == [[45, 2, 0], [5, 48, 50]]
    reasons = {(f["value"], f["class"]): f["reason"] for f in entry["flags"]}
    assert reasons[("horizontal", 2)] == "empty"
    assert reasons[("horizontal", 1)] == "rare"
    assert reasons[("vertical", 0)] == "under-represented"  # 5 against 34.3 expected
    assert len(report.flags) == 3
    text = str(report)
    assert "horizontal" in text and "empty" in text and "0e" in text
    with pytest.raises(ValueError, match="must have one value per sample"):
        bt.quality.coverage_report(y, {"orientation": orientation[:10]})


def test_label_shift_estimator_recovers_the_prior():
    rng = np.random.default_rng(0)
    K = 4
    confusion = np.array([[0.8, 0.1, 0.05, 0.05], [0.1, 0.7, 0.1, 0.1], [0.05, 0.1, 0.8, 0.05], [0.05, 0.05, 0.1, 0.8]])
    source, target = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.1, 0.2, 0.3, 0.4])

    def sample(prior, n):
        y = rng.choice(K, n, p=prior)
        u = rng.random(n)[:, None]
        pred = (u > confusion[y].cumsum(1)).sum(1)
        return y, pred

    yv, pv = sample(source, 60_000)
    _, pt = sample(target, 60_000)
    estimator = bt.quality.LabelShiftEstimator(K)
    assert estimator.fit(yv, pv) is estimator
    shift = estimator.estimate(pt)
    np.testing.assert_allclose(shift["prior"].numpy(), target, atol=0.02)
    np.testing.assert_allclose(shift["weights"].numpy(), target / source, rtol=0.1)
    # soft predictions: one-hot probabilities give the same answer
    soft = estimator.fit(yv, np.eye(K)[pv]).estimate(np.eye(K)[pt])
    np.testing.assert_allclose(soft["prior"].numpy(), shift["prior"].numpy())


def test_label_shift_singular_and_unfitted():
    estimator = bt.quality.LabelShiftEstimator(3)
    with pytest.raises(RuntimeError, match="call fit"):
        estimator.estimate([0, 1])
    estimator.fit([0, 1, 2, 0], [0, 0, 0, 0])  # never predicts 1 or 2
    with pytest.raises(ValueError, match="singular"):
        estimator.estimate([0, 1, 2])


def test_drift_monitor():
    rng = np.random.default_rng(1)
    reference = rng.choice(3, 5000, p=[0.5, 0.3, 0.2])
    monitor = bt.quality.DriftMonitor(reference)
    monitor.update(rng.choice(3, 4000, p=[0.5, 0.3, 0.2]))
    calm = monitor.status()
    assert not calm["drift"] and calm["psi"] < 0.01
    monitor.reset()
    shifted = rng.choice(3, 4000, p=[0.2, 0.3, 0.5])
    monitor.update(torch.tensor(shifted))
    status = monitor.status()
    assert status["drift"] and status["psi"] > 0.2
    counts = np.bincount(shifted, minlength=3)
    ref_share = np.bincount(reference, minlength=3) / len(reference)
    # two-sample test of homogeneity: the reference is a sample too
    expected = stats.chi2_contingency(np.stack([np.bincount(reference, minlength=3), counts]), correction=False)
    assert status["chi2"] == pytest.approx(expected.statistic)
    assert status["p_value"] == pytest.approx(expected.pvalue, abs=1e-12)
    np.testing.assert_allclose(status["share_change"].numpy(), counts / counts.sum() - ref_share)
    hist = bt.quality.DriftMonitor.from_histogram(np.bincount(reference, minlength=3))
    hist.update(torch.softmax(torch.randn(100, 3), 1))  # probabilities: argmax taken
    assert hist.status()["num_samples"] == 100
    with pytest.raises(ValueError, match="no predictions yet"):
        bt.quality.DriftMonitor(reference).status()
    with pytest.raises(ValueError, match="histogram"):
        bt.quality.DriftMonitor.from_histogram([1.0, -1.0])


@pytest.mark.parametrize("names", [[1, 2, 3], ["a", 2, "c"], [b"a", b"b", b"c"], [None, "b", "c"]])
def test_rank_mistakes_class_names_must_be_strings(names):
    y = torch.tensor([0, 1, 2, 1])
    p = torch.tensor([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    with pytest.raises(TypeError, match=r"rank_mistakes: class_names must be strings .* got class_names\[\d\] = "):
        bt.quality.rank_mistakes(y, p, class_names=names)
    # numpy strings are strings, and an iterator of names is read once
    import numpy as np

    ranked = bt.quality.rank_mistakes(y, p, class_names=np.array(["r", "y", "g"]))
    assert "r" in str(ranked)
    assert str(bt.quality.rank_mistakes(y, p, class_names=iter(["r", "y", "g"]))) == str(ranked)
