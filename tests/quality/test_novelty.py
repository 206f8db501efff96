"""bt.quality.NoveltyDetector and bt.quality.embedding_coverage (issue 14 §1-2)."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

import balancedtorch as bt


def _brute_kth(bank, queries, k, normalize, bank_labels=None, query_labels=None):
    """float64 k-th nearest distance by full pairwise differences."""
    b, q = bank.double(), queries.double()
    if normalize:
        b = b / b.norm(dim=1, keepdim=True)
        q = q / q.norm(dim=1, keepdim=True)
    d = (q[:, None, :] - b[None, :, :]).pow(2).sum(-1).sqrt()
    if bank_labels is not None:
        d = torch.where(query_labels[:, None] == bank_labels[None, :], d, torch.inf)
    return d.sort(1)[0][:, k - 1]


def _mixture(n, centers, gen, spread=0.35):
    """n points per center: labels are the center's class, subclusters its index."""
    feats, sub = [], []
    for i, c in enumerate(centers):
        feats.append(c + spread * torch.randn(n, c.numel(), generator=gen, dtype=torch.float64))
        sub.append(torch.full((n,), i))
    return torch.cat(feats).float(), torch.cat(sub)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("normalize", [True, False])
def test_score_matches_brute_force_and_sklearn(dtype, normalize):
    gen = torch.Generator().manual_seed(11)
    bank = torch.randn(700, 24, generator=gen, dtype=dtype) + 0.5
    queries = torch.randn(150, 24, generator=gen, dtype=dtype) * 1.5
    bank_copy, queries_copy = bank.clone(), queries.clone()
    k = 7
    det = bt.quality.NoveltyDetector(k=k, normalize=normalize).fit(bank)
    scores = det.score(queries)
    assert scores.shape == (150,) and scores.dtype == dtype
    ref = _brute_kth(bank, queries, k, normalize)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-6, atol=2e-6)
    # float32 features are normalised in float32 before the (exact) search: compare on those points
    if dtype == torch.float32 and normalize:
        ref = _brute_kth(torch.nn.functional.normalize(bank, dim=1), torch.nn.functional.normalize(queries, dim=1), k, False)
    torch.testing.assert_close(scores.double(), ref, **tol)
    nn_bank, nn_q = det.bank_.double().numpy(), torch.nn.functional.normalize(queries, dim=1) if normalize else queries
    sk = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(nn_bank).kneighbors(nn_q.double().numpy())[0][:, -1]
    np.testing.assert_allclose(scores.double().numpy(), sk, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
    assert torch.equal(bank, bank_copy) and torch.equal(queries, queries_copy)  # inputs untouched


def test_per_class_score_matches_brute_force():
    gen = torch.Generator().manual_seed(3)
    bank = torch.randn(600, 10, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (600,), generator=gen)
    queries = torch.randn(90, 10, generator=gen, dtype=torch.float64)
    predicted = torch.randint(0, 4, (90,), generator=gen)
    det = bt.quality.NoveltyDetector(k=5, per_class=True).fit(bank, labels)
    scores = det.score(queries, labels=predicted)
    ref = _brute_kth(bank, queries, 5, True, labels, predicted)
    torch.testing.assert_close(scores, ref, rtol=1e-12, atol=1e-12)
    # class-conditional differs from the pooled bank
    assert not torch.allclose(scores, bt.quality.NoveltyDetector(k=5).fit(bank).score(queries))


def test_threshold_tpr_on_held_out_in_distribution():
    gen = torch.Generator().manual_seed(5)
    centers = [3 * torch.randn(32, generator=gen, dtype=torch.float64) for _ in range(5)]
    train, _ = _mixture(1000, centers, gen)
    val, _ = _mixture(400, centers, gen)
    test, _ = _mixture(800, centers, gen)
    det = bt.quality.NoveltyDetector(k=20).fit(train)
    for tpr in (0.8, 0.95):
        cut = det.threshold(val, tpr=tpr)
        assert cut == det.threshold_
        val_pass = (det.score(val) <= cut).double().mean().item()
        assert tpr <= val_pass <= tpr + 1 / 2000  # nearest rank on the validation set itself
        test_pass = 1 - det.predict(test).double().mean().item()
        assert abs(test_pass - tpr) <= 0.02, (tpr, test_pass)


@pytest.mark.parametrize("per_class", [False, True])
def test_removed_cluster_is_flagged(per_class):
    """Class 1 has two modes; one (think: horizontal traffic lights) never appears in training."""
    gen = torch.Generator().manual_seed(7)
    centers = [2 * torch.randn(48, generator=gen, dtype=torch.float64) for _ in range(6)]
    classes = torch.tensor([0, 0, 1, 1, 2, 2])  # center -> class
    train, sub = _mixture(300, centers, gen)
    seen = sub != 3  # mode 3 of class 1 is absent from training
    det = bt.quality.NoveltyDetector(k=10, per_class=per_class).fit(train[seen], classes[sub[seen]])
    val, vsub = _mixture(100, centers, gen)
    vkeep = vsub != 3
    det.threshold(val[vkeep], labels=classes[vsub[vkeep]])
    test, tsub = _mixture(200, centers, gen)
    scores = det.score(test, labels=classes[tsub])
    novel = (tsub == 3).numpy()
    auroc = roc_auc_score(novel, scores.numpy())
    assert auroc >= 0.95, auroc
    flagged = det.predict(test, labels=classes[tsub])
    assert flagged[tsub == 3].double().mean() > 0.9
    assert flagged[tsub != 3].double().mean() < 0.1


def test_fraction_subsamples_each_class_uniformly():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 8, generator=gen)
    y = torch.cat([torch.zeros(900, dtype=torch.long), torch.ones(97, dtype=torch.long), torch.full((3,), 2)])
    det = bt.quality.NoveltyDetector(k=2, fraction=0.3, generator=torch.Generator().manual_seed(1)).fit(x, y)
    counts = torch.bincount(det.bank_labels_, minlength=3).tolist()
    assert counts == [270, math.ceil(0.3 * 97), 1]
    assert torch.equal(det.bank_labels_, y[det.bank_indices_])
    torch.testing.assert_close(det.bank_, torch.nn.functional.normalize(x[det.bank_indices_], dim=1))
    again = bt.quality.NoveltyDetector(k=2, fraction=0.3, generator=torch.Generator().manual_seed(1)).fit(x, y)
    other = bt.quality.NoveltyDetector(k=2, fraction=0.3, generator=torch.Generator().manual_seed(2)).fit(x, y)
    assert torch.equal(det.bank_indices_, again.bank_indices_)
    assert not torch.equal(det.bank_indices_, other.bank_indices_)
    # uniform: over many draws every class-0 row is kept about 30% of the time
    g = torch.Generator().manual_seed(9)
    hits = torch.zeros(1000)
    for _ in range(200):
        hits[bt.quality.NoveltyDetector(k=2, fraction=0.3, generator=g).fit(x, y).bank_indices_] += 1
    assert abs(hits[:900].mean().item() / 200 - 0.3) < 1e-6  # exactly 270 per draw
    assert 0.2 < hits[:900].min().item() / 200 and hits[:900].max().item() / 200 < 0.42


def test_report():
    gen = torch.Generator().manual_seed(2)
    train = torch.randn(500, 6, generator=gen, dtype=torch.float64)
    det = bt.quality.NoveltyDetector(k=5, normalize=False).fit(train)
    det.threshold(torch.randn(300, 6, generator=gen, dtype=torch.float64), tpr=0.9)
    feats = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    feats[:10] += 6.0  # far away: novel
    site = ["far"] * 10 + ["near"] * 30
    pred = torch.randint(0, 3, (40,), generator=gen)
    rep = det.report(feats, groups={"site": site}, labels=pred, top_n=10)
    assert rep["per_group"]["site"]["far"] == 1.0 and rep["per_group"]["site"]["near"] < 0.5
    assert sorted(rep["most_novel"].tolist()) == list(range(10))
    assert rep["share"] == pytest.approx(rep["flagged"].double().mean().item())
    expected = {int(c): rep["flagged"][pred == c].double().mean().item() for c in pred.unique()}
    assert rep["per_class"] == pytest.approx(expected)
    assert torch.equal(rep["flagged"], det.predict(feats))


def test_bad_input():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(50, 4, generator=gen)
    Det = bt.quality.NoveltyDetector
    for fraction in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="fraction"):
            Det(fraction=fraction)
    with pytest.raises(ValueError, match="k must"):
        Det(k=0)
    with pytest.raises(ValueError, match="fewer than k=60"):
        Det(k=60).fit(x)
    with pytest.raises(ValueError, match="fewer than k=10"):
        Det(k=10, fraction=0.1).fit(x)
    with pytest.raises(ValueError, match="class 1 has 3 samples"):
        Det(k=5, per_class=True).fit(x, torch.tensor([0] * 47 + [1] * 3))
    with pytest.raises(ValueError, match="per_class=True needs labels"):
        Det(k=5, per_class=True).fit(x)
    for bad in (float("nan"), float("inf")):
        y = x.clone()
        y[3, 2] = bad
        with pytest.raises(ValueError, match=r"train_features must be finite.*\[3, 2\]"):
            Det(k=5).fit(y)
        det = Det(k=5).fit(x)
        with pytest.raises(ValueError, match="features must be finite"):
            det.score(y)
    det = Det(k=5).fit(x)
    with pytest.raises(ValueError, match="features has 5 features but the training features have 4"):
        det.score(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        det.score(torch.randn(4))
    for tpr in (0, 1, 1.2, -0.5):
        with pytest.raises(ValueError, match="tpr"):
            det.threshold(x, tpr=tpr)
    with pytest.raises(RuntimeError, match="threshold"):
        det.predict(x)
    with pytest.raises(ValueError, match="labels has 3 entries"):
        Det(k=5).fit(x, torch.tensor([0, 1, 0]))
    pc = Det(k=5, per_class=True).fit(x, torch.tensor([0, 1] * 25))
    with pytest.raises(ValueError, match="needs labels"):
        pc.score(x)
    with pytest.raises(ValueError, match=r"labels\[1\] = 2 is a class absent"):
        pc.score(x[:3], labels=torch.tensor([0, 2, 1]))
    det.threshold(torch.randn(30, 4, generator=gen))
    with pytest.raises(ValueError, match=r"groups\['x'\] must have one value per sample"):
        det.report(x, groups={"x": [1, 2]})


def test_embedding_coverage_finds_the_uncovered_region():
    gen = torch.Generator().manual_seed(8)
    centers = [2 * torch.randn(16, generator=gen, dtype=torch.float64) for _ in range(4)]
    train, sub = _mixture(250, centers, gen, spread=0.3)
    labels = torch.tensor([0, 1, 1, 2])[sub]
    keep = sub != 2
    queries, qsub = _mixture(60, centers, gen, spread=0.3)
    train_copy = train.clone()
    cov = bt.quality.embedding_coverage(train[keep], queries, labels[keep], k=10, normalize=False, n_regions=2)
    # exact distances, and ratio / percentile relative to the training set's own k-th distances
    ref = _brute_kth(train[keep], queries, 10, False)
    torch.testing.assert_close(cov["distance"], ref, rtol=2e-6, atol=2e-6)
    own = (train[keep].double()[:, None] - train[keep].double()[None]).pow(2).sum(-1).sqrt().sort(1)[0][:, 10]
    torch.testing.assert_close(cov["ratio"], cov["distance"] / own.median(), rtol=1e-5, atol=0)
    assert cov["cut"] == pytest.approx(own.sort()[0][math.ceil(0.99 * own.numel()) - 1].item(), rel=1e-5)
    missing = qsub == 2
    assert cov["uncovered"][missing].all() and cov["uncovered"][~missing].double().mean() < 0.05
    assert cov["percentile"][missing].min() == 1.0
    top = cov["regions"][0]
    assert top["count"] >= 55 and missing[top["indices"]].all()
    assert missing[top["representatives"]].all() and len(top["representatives"]) == 5
    assert top["nearest_classes"] and top["mean_ratio"] > 1
    assert torch.equal(train, train_copy)


def test_embedding_coverage_everything_covered_and_bad_input():
    gen = torch.Generator().manual_seed(1)
    train = torch.randn(400, 8, generator=gen)
    cov = bt.quality.embedding_coverage(train, train[:50] * 0.5, k=5)
    assert not cov["uncovered"].any() and cov["regions"] == []
    with pytest.raises(ValueError, match="query_features has 7 features"):
        bt.quality.embedding_coverage(train, torch.randn(3, 7))
    with pytest.raises(ValueError, match="more than k=10"):
        bt.quality.embedding_coverage(train[:10], train)
    bad = train.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="query_features must be finite"):
        bt.quality.embedding_coverage(train, bad)
    with pytest.raises(ValueError, match="train_labels has 3 entries"):
        bt.quality.embedding_coverage(train, train, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="quantile"):
        bt.quality.embedding_coverage(train, train, quantile=1.0)
