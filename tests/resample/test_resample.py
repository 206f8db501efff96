"""bt.resample against imbalanced-learn: strategies, counts, selected indices, geometry of new points."""

import warnings
from collections import Counter

import numpy as np
import pytest
import torch

import balancedtorch as bt

imblearn = pytest.importorskip("imblearn")
from imblearn import combine as im_combine  # noqa: E402
from imblearn import over_sampling as im_over  # noqa: E402
from imblearn import under_sampling as im_under  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

OVER = ["RandomOverSampler", "SMOTE", "BorderlineSMOTE", "ADASYN"]
UNDER_SELECT = ["NearMiss", "TomekLinks", "EditedNearestNeighbours"]


def make_data(seed, sizes=(300, 90, 40), d=6, labels=None, dtype=np.float32, overlap=1.5):
    """Gaussian blobs that overlap (so borderline / Tomek / ENN have work), no distance ties."""
    rng = np.random.default_rng(seed)
    labels = list(range(len(sizes))) if labels is None else labels
    X = np.concatenate([rng.normal(loc=i * overlap / np.sqrt(d), size=(n, d)) for i, n in enumerate(sizes)])
    y = np.concatenate([np.full(n, lab) for lab, n in zip(labels, sizes)])
    perm = rng.permutation(len(y))
    return X[perm].astype(dtype), y[perm]


def counts(y):
    return sorted(Counter(np.asarray(y).tolist()).items())


STRATEGIES_OVER = ["auto", "minority", "not minority", "not majority", "all", {1: 120, 2: 300}]
STRATEGIES_UNDER = ["auto", "majority", "not minority", "not majority", "all", {0: 100, 1: 60}]
STRATEGIES_CLEAN = ["auto", "majority", "not minority", "not majority", "all", [0, 2]]


@pytest.mark.parametrize("name", OVER)
@pytest.mark.parametrize("strategy", STRATEGIES_OVER, ids=str)
def test_over_sampler_counts_and_layout_equal_imblearn(name, strategy):
    X, y = make_data(1)
    kw = {"sampling_strategy": strategy, "random_state": 0}
    ours = getattr(bt.resample, name)(**kw)
    theirs = getattr(im_over, name)(**kw)
    Xo, yo = ours.fit_resample(X, y)
    Xt, yt = theirs.fit_resample(X, y)
    assert dict(ours.sampling_strategy_) == {int(k): int(v) for k, v in theirs.sampling_strategy_.items()}
    assert counts(yo) == counts(yt)
    assert isinstance(Xo, np.ndarray) and Xo.dtype == X.dtype and yo.dtype == y.dtype
    # originals first, then each class's new samples in ascending class order
    np.testing.assert_array_equal(Xo[: len(X)], X)
    np.testing.assert_array_equal(yo[: len(y)], y)
    assert np.all(np.diff(yo[len(y) :]) >= 0)


def test_float_strategy_binary_equals_imblearn():
    X, y = make_data(2, sizes=(200, 30))
    for sampler, cls in [(bt.resample.SMOTE, im_over.SMOTE), (bt.resample.RandomUnderSampler, im_under.RandomUnderSampler)]:
        a = sampler(sampling_strategy=0.5, random_state=0).fit_resample(X, y)
        b = cls(sampling_strategy=0.5, random_state=0).fit_resample(X, y)
        assert counts(a[1]) == counts(b[1])


def test_callable_strategy_and_arbitrary_labels():
    X, y = make_data(3, labels=[-4, 7, 30])
    strategy = lambda y: {7: 200, 30: 150}  # noqa: E731
    a = bt.resample.SMOTE(sampling_strategy=strategy, random_state=0).fit_resample(X, y)
    b = im_over.SMOTE(sampling_strategy=strategy, random_state=0).fit_resample(X, y)
    assert counts(a[1]) == counts(b[1]) == [(-4, 300), (7, 200), (30, 150)]


def _on_segment(new, starts_idx, X_from, nbr_sets, X_nbr, max_step=1.0, tol=1e-4):
    """Each new point equals X_from[i] + u (X_nbr[j] - X_from[i]), u in [0, max_step], j in nbr_sets[i], for some i."""
    new = np.asarray(new, dtype=np.float64)
    A = np.asarray(X_from, dtype=np.float64)[starts_idx]  # (P, D) candidate starts
    B = np.asarray(X_nbr, dtype=np.float64)[nbr_sets[starts_idx]]  # (P, k, D)
    seg = B - A[:, None, :]
    for p in new:
        rel = p - A  # (P, D)
        length = (seg**2).sum(2)
        u = np.einsum("pkd,pd->pk", seg, rel) / np.maximum(length, 1e-30)
        resid = np.linalg.norm(rel[:, None, :] - u[..., None] * seg, axis=2)
        ok = (resid < tol * (1 + np.abs(p).max())) & (u >= -1e-6) & (u <= max_step + 1e-6)
        assert ok.any(), "a synthetic point lies on no segment to a k-nearest same-class neighbour"


@pytest.mark.parametrize("k", [1, 3, 5])
def test_smote_points_lie_between_a_sample_and_one_of_its_k_neighbours(k):
    X, y = make_data(4, sizes=(200, 40, 25), d=4)
    Xo, yo = bt.resample.SMOTE(k_neighbors=k, random_state=1).fit_resample(X, y)
    for c in (1, 2):
        Xc = X[y == c]
        nbrs = NearestNeighbors(n_neighbors=k + 1).fit(Xc).kneighbors(Xc, return_distance=False)[:, 1:]
        new = Xo[len(X) :][yo[len(X) :] == c]
        assert len(new) == 200 - len(Xc)
        _on_segment(new, np.arange(len(Xc)), Xc, nbrs, Xc)


def test_borderline_smote_uses_the_danger_set_of_imblearn():
    X, y = make_data(5, sizes=(200, 50), d=3, overlap=2.0)
    for kind in ("borderline-1", "borderline-2"):
        ours = bt.resample.BorderlineSMOTE(kind=kind, random_state=0)
        theirs = im_over.BorderlineSMOTE(kind=kind, random_state=0)
        Xo, yo = ours.fit_resample(X, y)
        theirs.fit_resample(X, y)
        np.testing.assert_array_equal(ours.in_danger_indices[1], theirs.in_danger_indices[1])
        danger = ours.in_danger_indices[1]
        new = Xo[len(X) :]
        if kind == "borderline-1":
            Xc = X[y == 1]
            nbrs = NearestNeighbors(n_neighbors=6).fit(Xc).kneighbors(X[danger], return_distance=False)[:, 1:]
            _on_segment(new, np.arange(len(danger)), X[danger], nbrs, Xc)
        else:
            nbrs = NearestNeighbors(n_neighbors=6).fit(X).kneighbors(X[danger], return_distance=False)[:, 1:]
            _on_segment(new, np.arange(len(danger)), X[danger], nbrs, X)


def test_adasyn_points_and_counts():
    X, y = make_data(6, sizes=(150, 40), d=3, overlap=2.0)
    Xo, yo = bt.resample.ADASYN(n_neighbors=4, random_state=0).fit_resample(X, y)
    _, yt = im_over.ADASYN(n_neighbors=4, random_state=0).fit_resample(X, y)
    assert counts(yo) == counts(yt)
    Xc = X[y == 1]
    nbrs = NearestNeighbors(n_neighbors=5).fit(Xc).kneighbors(Xc, return_distance=False)[:, 1:]
    _on_segment(Xo[len(X) :], np.arange(len(Xc)), Xc, nbrs, Xc)


def test_random_over_sampler_indices_and_shrinkage():
    X, y = make_data(7)
    ros = bt.resample.RandomOverSampler(random_state=0)
    Xo, yo = ros.fit_resample(X, y)
    np.testing.assert_array_equal(Xo, X[ros.sample_indices_])
    np.testing.assert_array_equal(yo, y[ros.sample_indices_])
    smooth = bt.resample.RandomOverSampler(random_state=0, shrinkage=1.0)
    Xs, ys = smooth.fit_resample(X, y)
    assert counts(ys) == counts(yo)
    new = Xs[len(X) :]
    assert not np.isin(new, X).all()  # smoothed: not copies
    with pytest.raises(ValueError, match="shrinkage"):
        bt.resample.RandomOverSampler(shrinkage={1: 1.0}).fit_resample(X, y)


@pytest.mark.parametrize("strategy", STRATEGIES_UNDER, ids=str)
@pytest.mark.parametrize("version", [1, 2, 3])
def test_nearmiss_selects_the_same_indices(version, strategy):
    X, y = make_data(8, d=5)
    ours = bt.resample.NearMiss(version=version, sampling_strategy=strategy)
    theirs = im_under.NearMiss(version=version, sampling_strategy=strategy)
    with warnings.catch_warnings(record=True) as ours_warned:
        warnings.simplefilter("always")
        Xo, yo = ours.fit_resample(X, y)
    with warnings.catch_warnings(record=True) as theirs_warned:
        warnings.simplefilter("always")
        Xt, yt = theirs.fit_resample(X, y)
    assert bool(ours_warned) == bool(theirs_warned)  # too few candidates: both warn
    np.testing.assert_array_equal(ours.sample_indices_, theirs.sample_indices_)
    np.testing.assert_array_equal(Xo, Xt)
    np.testing.assert_array_equal(yo, yt)


@pytest.mark.parametrize("strategy", STRATEGIES_CLEAN, ids=str)
def test_tomek_links_select_the_same_indices(strategy):
    X, y = make_data(9, d=3, overlap=1.0)
    ours = bt.resample.TomekLinks(sampling_strategy=strategy)
    theirs = im_under.TomekLinks(sampling_strategy=strategy)
    Xo, yo = ours.fit_resample(X, y)
    theirs.fit_resample(X, y)
    assert len(ours.sample_indices_) < len(y)  # the data has links
    np.testing.assert_array_equal(ours.sample_indices_, theirs.sample_indices_)
    np.testing.assert_array_equal(Xo, X[ours.sample_indices_])


@pytest.mark.parametrize("strategy", STRATEGIES_CLEAN, ids=str)
@pytest.mark.parametrize("kind_sel", ["all", "mode"])
@pytest.mark.parametrize("n_neighbors", [1, 3, 4])
def test_enn_selects_the_same_indices(strategy, kind_sel, n_neighbors):
    X, y = make_data(10, d=3, overlap=1.0)
    kw = dict(sampling_strategy=strategy, kind_sel=kind_sel, n_neighbors=n_neighbors)
    ours = bt.resample.EditedNearestNeighbours(**kw)
    theirs = im_under.EditedNearestNeighbours(**kw)
    _, yo = ours.fit_resample(X, y)
    _, yt = theirs.fit_resample(X, y)
    np.testing.assert_array_equal(ours.sample_indices_, theirs.sample_indices_)
    np.testing.assert_array_equal(yo, yt)


@pytest.mark.parametrize("replacement", [False, True])
@pytest.mark.parametrize("strategy", STRATEGIES_UNDER, ids=str)
def test_random_under_sampler(strategy, replacement):
    X, y = make_data(11)
    ours = bt.resample.RandomUnderSampler(sampling_strategy=strategy, replacement=replacement, random_state=3)
    theirs = im_under.RandomUnderSampler(sampling_strategy=strategy, replacement=replacement, random_state=3)
    Xo, yo = ours.fit_resample(X, y)
    _, yt = theirs.fit_resample(X, y)
    assert counts(yo) == counts(yt)
    idx = ours.sample_indices_
    np.testing.assert_array_equal(Xo, X[idx])
    assert np.all(np.diff(yo) >= 0)  # imbalanced-learn's class-ordered output
    if not replacement:
        assert len(np.unique(idx)) == len(idx)
    again = bt.resample.RandomUnderSampler(sampling_strategy=strategy, replacement=replacement, random_state=3)
    again.fit_resample(X, y)
    np.testing.assert_array_equal(again.sample_indices_, idx)


@pytest.mark.parametrize("voting", ["soft", "hard"])
def test_cluster_centroids(voting):
    X, y = make_data(12, sizes=(200, 60, 30), d=4)
    ours = bt.resample.ClusterCentroids(voting=voting, random_state=0)
    Xo, yo = ours.fit_resample(X, y)
    _, yt = im_under.ClusterCentroids(voting=voting, random_state=0).fit_resample(X, y)
    assert counts(yo) == counts(yt)
    cent = Xo[yo == 0]
    if voting == "hard":
        assert all((X[y == 0] == c).all(1).any() for c in cent)
    else:
        # each centroid is the mean of the class samples nearest to it (a k-means fixed point)
        Xc = X[y == 0].astype(np.float64)
        assign = ((Xc[:, None, :] - cent[None].astype(np.float64)) ** 2).sum(2).argmin(1)
        means = np.stack([Xc[assign == j].mean(0) for j in range(len(cent)) if (assign == j).any()])
        used = np.stack([cent[j] for j in range(len(cent)) if (assign == j).any()])
        np.testing.assert_allclose(means, used, atol=1e-3)
        # and k-means beats random representatives on within-cluster distance
        inertia = ((Xc - cent[assign]) ** 2).sum()
        rand = Xc[np.random.default_rng(0).choice(len(Xc), len(cent), replace=False)]
        inertia_rand = ((Xc[:, None, :] - rand[None]) ** 2).sum(2).min(1).sum()
        assert inertia < inertia_rand
    np.testing.assert_array_equal(Xo[yo == 2], X[y == 2])  # the minority is kept as is


@pytest.mark.parametrize("name, cleaner", [("SMOTETomek", "TomekLinks"), ("SMOTEENN", "EditedNearestNeighbours")])
def test_combined_equal_smote_then_imblearn_cleaner(name, cleaner):
    X, y = make_data(13, d=3, overlap=1.0)
    Xs, ys = bt.resample.SMOTE(random_state=5).fit_resample(X, y)
    Xc, yc = getattr(im_under, cleaner)(sampling_strategy="all").fit_resample(Xs, ys)
    Xo, yo = getattr(bt.resample, name)(random_state=5).fit_resample(X, y)
    np.testing.assert_array_equal(Xo, Xc)
    np.testing.assert_array_equal(yo, yc)
    _, yt = getattr(im_combine, name)(random_state=5).fit_resample(X, y)
    assert abs(len(yo) - len(yt)) < 0.05 * len(yt)


def test_tensor_in_tensor_out_and_dtypes(device):
    X, y = make_data(14)
    Xt, yt = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    Xo, yo = bt.resample.SMOTE(random_state=0).fit_resample(Xt, yt)
    assert isinstance(Xo, torch.Tensor) and Xo.device == Xt.device and Xo.dtype == Xt.dtype and yo.dtype == yt.dtype
    assert counts(yo.cpu().numpy()) == [(0, 300), (1, 300), (2, 300)]
    tl = bt.resample.TomekLinks()
    tl.fit_resample(Xt, yt)
    assert isinstance(tl.sample_indices_, torch.Tensor) and tl.sample_indices_.device == Xt.device
    np.testing.assert_array_equal(tl.sample_indices_.cpu().numpy(), _tomek_idx(X, y))
    # numpy input run on another device comes back as numpy
    Xn, yn = bt.resample.SMOTE(random_state=0, device=device).fit_resample(X, y)
    assert isinstance(Xn, np.ndarray) and counts(yn) == counts(yo.cpu().numpy())


def _tomek_idx(X, y):
    t = im_under.TomekLinks()
    t.fit_resample(X, y)
    return t.sample_indices_


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_x_dtypes(dtype):
    X, y = make_data(15, dtype=np.float64)
    X = (X * 10).astype(dtype)
    Xo, yo = bt.resample.SMOTE(random_state=0).fit_resample(X, y)
    _, yt = im_over.SMOTE(random_state=0).fit_resample(X, y)
    assert Xo.dtype == X.dtype and counts(yo) == counts(yt)
    np.testing.assert_array_equal(Xo[: len(X)], X)


def test_deterministic_and_input_untouched():
    X, y = make_data(16)
    X0, y0 = X.copy(), y.copy()
    a = bt.resample.SMOTE(random_state=7).fit_resample(X, y)
    b = bt.resample.SMOTE(random_state=7).fit_resample(X, y)
    c = bt.resample.SMOTE(random_state=8).fit_resample(X, y)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    g = torch.Generator().manual_seed(3)
    d = bt.resample.SMOTE(random_state=g).fit_resample(X, y)
    e = bt.resample.SMOTE(random_state=torch.Generator().manual_seed(3)).fit_resample(X, y)
    np.testing.assert_array_equal(d[0], e[0])


@pytest.mark.parametrize(
    "make, X_fn, y_fn, match",
    [
        (lambda: bt.resample.SMOTE(k_neighbors=50), None, None, "k_neighbors=50"),
        (lambda: bt.resample.SMOTE(), lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), None, "NaN"),
        (lambda: bt.resample.SMOTE(), None, lambda y: y[:-1], "labels"),
        (lambda: bt.resample.SMOTE(), None, lambda y: y + 0.5, "integer class labels"),
        (lambda: bt.resample.SMOTE(), None, lambda y: np.zeros_like(y), "more than 1 class"),
        (lambda: bt.resample.SMOTE(sampling_strategy="most"), None, None, "sampling_strategy"),
        (lambda: bt.resample.SMOTE(sampling_strategy=0.5), None, None, "two classes"),
        (lambda: bt.resample.SMOTE(sampling_strategy={1: 10}), None, None, r"sampling_strategy\[1\]"),
        (lambda: bt.resample.SMOTE(sampling_strategy={9: 10}), None, None, "not present"),
        (lambda: bt.resample.SMOTE(sampling_strategy="majority"), None, None, "majority"),
        (lambda: bt.resample.RandomUnderSampler(sampling_strategy={0: 400}), None, None, r"sampling_strategy\[0\]"),
        (lambda: bt.resample.TomekLinks(sampling_strategy={0: 4}), None, None, "list of classes"),
        (lambda: bt.resample.NearMiss(version=4), None, None, "version"),
        (lambda: bt.resample.EditedNearestNeighbours(kind_sel="vote"), None, None, "kind_sel"),
        (lambda: bt.resample.SMOTE(k_neighbors=0), None, None, "k_neighbors"),
        (lambda: bt.resample.SMOTE(), lambda X: X[:, :, None], None, "2-D"),
    ],
)
def test_bad_input(make, X_fn, y_fn, match):
    X, y = make_data(17, sizes=(100, 40, 30))
    X = X_fn(X) if X_fn else X
    y = y_fn(y) if y_fn else y
    with pytest.raises(ValueError, match=match):
        make().fit_resample(X, y)


def test_adasyn_without_other_class_neighbours_raises():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(50, 2)), rng.normal(size=(10, 2)) + 100]).astype(np.float32)
    y = np.array([0] * 50 + [1] * 10)
    with pytest.raises(RuntimeError, match="SMOTE"):
        bt.resample.ADASYN().fit_resample(X, y)


# ----------------------------------------------------------------------------- FeatureSMOTE


def _batch(device, B=64, D=8, sizes=(40, 16, 6, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    y = y[torch.randperm(B, generator=g)]
    f = torch.randn(B, D, generator=g) + y.unsqueeze(1).float()
    return f.to(device).requires_grad_(), y.to(device)


def test_feature_smote_balances_the_batch_on_segments(device):
    f, y = _batch(device)
    smote = bt.resample.FeatureSMOTE(k_neighbors=3).train()
    out, out_y = smote(f, y, generator=torch.Generator(device=device).manual_seed(0))
    assert out.shape[0] == out_y.shape[0] == 4 * 40
    assert torch.equal(out[:64], f) and torch.equal(out_y[:64], y)
    assert torch.bincount(out_y).tolist() == [40, 40, 40, 40]
    fd, yd = f.detach().cpu().numpy(), y.cpu().numpy()
    new, new_y = out[64:].detach().cpu().numpy(), out_y[64:].cpu().numpy()
    for c in range(4):
        Xc = fd[yd == c]
        k = min(3, len(Xc) - 1)
        nbrs = NearestNeighbors(n_neighbors=k + 1).fit(Xc).kneighbors(Xc, return_distance=False)[:, 1:]
        _on_segment(new[new_y == c], np.arange(len(Xc)), Xc, nbrs, Xc)
    # differentiable with respect to the batch
    out.pow(2).sum().backward()
    assert f.grad is not None and bool((f.grad[y == 3].abs().sum(1) > 0).all())


def test_feature_smote_deterministic_eval_and_strategies(device):
    f, y = _batch(device)
    smote = bt.resample.FeatureSMOTE(generator=torch.Generator(device=device).manual_seed(1))
    a = smote(f, y, generator=torch.Generator(device=device).manual_seed(5))[0]
    b = smote(f, y, generator=torch.Generator(device=device).manual_seed(5))[0]
    assert torch.equal(a, b)
    smote.eval()
    same, same_y = smote(f, y)
    assert same is f and same_y is y
    half = bt.resample.FeatureSMOTE(sampling_strategy=0.5)
    assert torch.bincount(half(f, y)[1]).tolist() == [40, 20, 20, 20]
    fixed = bt.resample.FeatureSMOTE(sampling_strategy={3: 10})
    assert torch.bincount(fixed(f, y)[1]).tolist() == [40, 16, 6, 10]
    prior = bt.resample.FeatureSMOTE(sampling_strategy="prior", num_classes=4, momentum=1.0)
    counts_prior = torch.bincount(prior(f, y)[1]).tolist()
    assert counts_prior == [40, 40, 40, 40]  # momentum 1: the prior is this batch's shares


def test_feature_smote_memory_gives_singletons_neighbours(device):
    smote = bt.resample.FeatureSMOTE(k_neighbors=2, memory_size=8, num_classes=3)
    g = torch.Generator().manual_seed(0)
    warm_y = torch.tensor([0] * 10 + [1] * 10 + [2] * 3, device=device)
    warm = torch.randn(23, 4, generator=g).to(device)
    smote(warm, warm_y)
    assert smote.memory_filled.tolist() == [8, 8, 3]
    assert torch.equal(smote.memory[2, :3], warm[20:])
    y = torch.tensor([0] * 10 + [1] * 10 + [2], device=device)  # class 2 alone in the batch
    f = torch.randn(21, 4, generator=g).to(device)
    out, out_y = smote(f, y)
    new2 = out[21:][out_y[21:] == 2]
    assert new2.shape[0] == 9
    # class 2's points lie between its only batch sample and remembered class-2 features
    _on_segment(new2.cpu().numpy(), np.array([0]), f[20:].cpu().numpy(), np.array([[0, 1, 2]]), warm[20:].cpu().numpy())
    without = bt.resample.FeatureSMOTE(k_neighbors=2)
    assert (without(f, y)[1] == 2).sum() == 1  # no neighbour, no synthetic point


@pytest.mark.parametrize("memory_size", [0, 6])
def test_feature_smote_many_classes_with_memory(device, memory_size):
    """Classes of every size bucket (1 to 40 rows) in one batch, with and without memory: the counts,
    the class order of the new rows, and every new point on a segment to one of its k nearest
    same-class candidates (batch rows, then the remembered features)."""
    C, D, k = 60, 5, 3
    g = torch.Generator().manual_seed(3)
    sizes = [40] + [int(s) for s in torch.randint(1, 20, (C - 1,), generator=g)]
    sizes[1:4] = [1, 2, 1]
    smote = bt.resample.FeatureSMOTE(
        k_neighbors=k, memory_size=memory_size, num_classes=C, generator=torch.Generator(device=device).manual_seed(0)
    )
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    if memory_size:
        warm = torch.randn(2 * len(y), D, generator=g)
        smote(warm.to(device), y.repeat(2).to(device))
        mem = smote.memory.cpu().clone().numpy()
    y = y[torch.randperm(len(y), generator=g)]
    f = torch.randn(len(y), D, generator=g) * 3 + y.unsqueeze(1).float()
    out, out_y = smote(f.to(device), y.to(device))
    new_y = out_y[len(y) :].cpu()
    assert torch.equal(new_y, new_y.sort().values)  # synthetic rows in class order
    counts = torch.bincount(out_y.cpu(), minlength=C)
    if memory_size:
        assert (counts == 40).all()
    else:  # a class with one row and no memory has no neighbour
        assert counts.tolist() == [40 if n > 1 else n for n in sizes]
    new = out[len(y) :].cpu().numpy()
    fd, yd = f.numpy(), y.numpy()
    for c in range(1, C):
        Xc = fd[yd == c]
        cand = np.concatenate([Xc, mem[c, : min(memory_size, 2 * sizes[c])]]) if memory_size else Xc
        if len(cand) < 2:
            continue
        kk = min(k, len(cand) - 1)
        nbrs = NearestNeighbors(n_neighbors=kk + 1).fit(cand).kneighbors(Xc, return_distance=False)
        nbrs = np.array([[j for j in row if j != i][:kk] for i, row in enumerate(nbrs)])
        _on_segment(new[new_y.numpy() == c], np.arange(len(Xc)), Xc, nbrs, cand)


def test_feature_smote_bad_input():
    with pytest.raises(ValueError, match="num_classes"):
        bt.resample.FeatureSMOTE(memory_size=4)
    with pytest.raises(ValueError, match="k_neighbors"):
        bt.resample.FeatureSMOTE(k_neighbors=0)
    with pytest.raises(ValueError, match="sampling_strategy"):
        bt.resample.FeatureSMOTE(sampling_strategy="auto")
    smote = bt.resample.FeatureSMOTE(num_classes=3)
    with pytest.raises(ValueError, match="labels"):
        smote(torch.randn(4, 2), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"FeatureSMOTE: labels must hold integer class labels.*labels\[1\] = 1.5"):
        smote(torch.randn(4, 2), torch.tensor([0.0, 1.5, 2, 1]))
    # the one label rule of balancedtorch: integral floats are labels (as in class_weights, the samplers, bt.resample)
    feats = torch.randn(6, 2)
    g = torch.Generator().manual_seed(0)
    out_f, y_f = smote(feats, torch.tensor([0.0, 0, 0, 1, 1, 2]), generator=g)
    g = torch.Generator().manual_seed(0)
    out_i, y_i = smote(feats, torch.tensor([0, 0, 0, 1, 1, 2]), generator=g)
    torch.testing.assert_close(out_f, out_i)
    assert y_f.dtype == torch.float32 and torch.equal(y_f.long(), y_i)
    with pytest.raises(ValueError, match="NaN"):
        smote(torch.tensor([[float("nan"), 0.0], [1.0, 1.0]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="features"):
        smote(torch.randn(4), torch.tensor([0, 1, 2, 1]))


def test_neighbour_estimators_and_n_jobs_as_imblearn():
    """imbalanced-learn also takes a NearestNeighbors object (used as is: its
    n_neighbors includes the sample itself where an int would get +1) and n_jobs."""
    X, y = make_data(18, d=3, overlap=1.0)
    ours = bt.resample.EditedNearestNeighbours(n_neighbors=NearestNeighbors(n_neighbors=4), n_jobs=2)
    theirs = im_under.EditedNearestNeighbours(n_neighbors=NearestNeighbors(n_neighbors=4), n_jobs=2)
    ours.fit_resample(X, y)
    theirs.fit_resample(X, y)
    np.testing.assert_array_equal(ours.sample_indices_, theirs.sample_indices_)
    as_int = bt.resample.EditedNearestNeighbours(n_neighbors=3)
    as_int.fit_resample(X, y)
    np.testing.assert_array_equal(as_int.sample_indices_, ours.sample_indices_)  # object with 4 == int 3
    nm = bt.resample.NearMiss(n_neighbors=NearestNeighbors(n_neighbors=2), n_jobs=-1)
    nm_ref = im_under.NearMiss(n_neighbors=NearestNeighbors(n_neighbors=2))
    nm.fit_resample(X, y)
    nm_ref.fit_resample(X, y)
    np.testing.assert_array_equal(nm.sample_indices_, nm_ref.sample_indices_)
    a = bt.resample.SMOTE(k_neighbors=NearestNeighbors(n_neighbors=4), random_state=0).fit_resample(X, y)
    b = bt.resample.SMOTE(k_neighbors=3, random_state=0).fit_resample(X, y)
    np.testing.assert_array_equal(a[0], b[0])
    bt.resample.TomekLinks(n_jobs=2).fit_resample(X, y)
    bt.resample.SMOTETomek(n_jobs=2, random_state=0).fit_resample(X, y)
    with pytest.raises(ValueError, match="n_neighbors"):
        bt.resample.EditedNearestNeighbours(n_neighbors=NearestNeighbors(n_neighbors=1)).fit_resample(X, y)


def test_pandas_in_pandas_out():
    pd = pytest.importorskip("pandas")
    X, y = make_data(19)
    Xdf = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    ys = pd.Series(y, name="target")
    Xo, yo = bt.resample.SMOTE(random_state=0).fit_resample(Xdf, ys)
    Xt, yt = im_over.SMOTE(random_state=0).fit_resample(Xdf, ys)
    assert isinstance(Xo, pd.DataFrame) and list(Xo.columns) == list(Xdf.columns)
    assert isinstance(yo, pd.Series) and yo.name == "target"
    assert counts(yo) == counts(yt) and Xo.shape == Xt.shape
    tl = bt.resample.TomekLinks()
    Xu, yu = tl.fit_resample(Xdf, ys)
    np.testing.assert_array_equal(Xu.to_numpy(), X[tl.sample_indices_])


# --- issue 15: scikit-learn estimators, labels of any kind, containers -------------------------------------------


def _xy(seed=0, n0=150, n1=50, d=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n0 + n1, d))
    y = np.r_[np.zeros(n0, np.int64), np.ones(n1, np.int64)]
    perm = rng.permutation(n0 + n1)
    return X[perm], y[perm]


@pytest.mark.parametrize("name", [n for n in bt.resample.__all__ if n != "FeatureSMOTE"])
def test_samplers_are_sklearn_estimators(name):
    from sklearn.base import clone

    cls = getattr(bt.resample, name)
    required = {"categorical_features": [0]} if name == "SMOTENC" else {}  # imbalanced-learn's required parameter
    est = cls(**required)
    params = est.get_params()
    assert "sampling_strategy" in params and "device" in params
    twin = clone(est.set_params(sampling_strategy="all" if name in ("TomekLinks", "EditedNearestNeighbours") else "auto"))
    assert type(twin) is cls and twin.get_params() == est.get_params()
    # scikit-learn's repr: only the parameters changed from their defaults
    assert repr(cls(**required)) == f"{name}({', '.join(f'{k}={v!r}' for k, v in required.items())})"
    X, y = _xy(1)
    if name == "SMOTEN":
        X = (X > 0).astype(np.int64)
    assert est.fit(X, y) is est and est.n_features_in_ == 4


def test_gridsearch_over_smote_in_an_imblearn_pipeline():
    from imblearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, cross_val_score

    X, y = _xy(2)
    search = GridSearchCV(
        make_pipeline(bt.resample.SMOTE(random_state=0), LogisticRegression()), {"smote__k_neighbors": [3, 5]}, cv=3
    )
    search.fit(X, y)
    assert search.best_params_["smote__k_neighbors"] in (3, 5)
    assert len(search.cv_results_["params"]) == 2
    pipe = make_pipeline(bt.resample.SMOTETomek(smote=bt.resample.SMOTE(k_neighbors=3), random_state=0), LogisticRegression())
    pipe.set_params(smotetomek__smote__k_neighbors=4)
    assert pipe.get_params()["smotetomek__smote__k_neighbors"] == 4
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


@pytest.mark.parametrize("name,cleaner_arg", [("SMOTETomek", "tomek"), ("SMOTEENN", "enn")])
def test_combined_fit_does_not_resample_and_clones_its_parts(name, cleaner_arg):
    cls = getattr(bt.resample, name)
    smote = bt.resample.SMOTE(k_neighbors=3, random_state=0)
    cleaner = (
        bt.resample.TomekLinks(sampling_strategy="all")
        if cleaner_arg == "tomek"
        else bt.resample.EditedNearestNeighbours(sampling_strategy="all")
    )
    est = cls(smote=smote, **{cleaner_arg: cleaner})
    X, y = _xy(3)
    assert est.fit(X, y) is est
    assert not hasattr(est, "smote_")  # fit checks the data; it does not resample
    assert dict(est.sampling_strategy_) == {1: 100}
    X_res, y_res = est.fit_resample(X, y)
    assert est.smote_ is not smote and getattr(est, cleaner_arg + "_") is not cleaner
    assert est.smote_.k_neighbors == 3
    assert not hasattr(smote, "sampling_strategy_") and not hasattr(cleaner, "sampling_strategy_")  # never fitted
    X_ref, y_ref = bt.resample.SMOTE(k_neighbors=3, random_state=0).fit_resample(X, y)
    X_ref, y_ref = cleaner.fit_resample(X_ref, y_ref)
    np.testing.assert_array_equal(X_res, X_ref)
    np.testing.assert_array_equal(y_res, y_ref)


@pytest.mark.parametrize(
    "name", ["SMOTE", "RandomOverSampler", "RandomUnderSampler", "TomekLinks", "ClusterCentroids", "SMOTEENN"]
)
def test_labels_of_any_kind_round_trip(name):
    pd = pytest.importorskip("pandas")
    X, y = _xy(4)
    kw = {} if name == "TomekLinks" else {"random_state": 0}
    ref_X, ref_y = getattr(bt.resample, name)(**kw).fit_resample(X, y)
    names = np.array(["a_dog", "b_cat"], dtype=object)  # sorted as the ints they stand for: same class order
    cases = {
        "str list": (names[y].tolist(), lambda r: isinstance(r, list) and r == names[ref_y].tolist()),
        "bool": (y == 1, lambda r: r.dtype == bool and np.array_equal(r, ref_y == 1)),
        "negative sparse ints": (np.where(y == 1, 7, -3), lambda r: np.array_equal(r, np.where(ref_y == 1, 7, -3))),
        "integral float": (y.astype(np.float32), lambda r: r.dtype == np.float32 and np.array_equal(r, ref_y)),
        "(n, 1)": (y.reshape(-1, 1), lambda r: np.array_equal(np.ravel(r), ref_y)),
        "one-column frame": (
            pd.DataFrame({"t": names[y]}),
            lambda r: list(r.columns) == ["t"] and r["t"].tolist() == names[ref_y].tolist(),
        ),
        "named series": (
            pd.Series(names[y], name="animal"),
            lambda r: r.name == "animal" and r.tolist() == names[ref_y].tolist(),
        ),
    }
    for label, (labels, ok) in cases.items():
        X_res, y_res = getattr(bt.resample, name)(**kw).fit_resample(X, labels)
        np.testing.assert_array_equal(np.asarray(X_res), np.asarray(ref_X), err_msg=label)
        assert ok(y_res), label


def test_string_labels_in_sampling_strategy_and_object_mixes():
    X, y = _xy(5)
    labels = np.where(y == 1, "rare", "common")
    X_res, y_res = bt.resample.RandomOverSampler(sampling_strategy={"rare": 120}, random_state=0).fit_resample(X, labels)
    assert Counter(y_res) == {"common": 150, "rare": 120}
    mixed = labels.astype(object)
    mixed[0] = 3
    with pytest.raises(ValueError, match="y mixes label types"):
        bt.resample.SMOTE().fit_resample(X, mixed)
    with pytest.raises(ValueError, match=r"integer class labels.*y\[\d+\] = 0.5"):
        bt.resample.RandomUnderSampler().fit_resample(X, np.where(y == 1, 0.5, 2.0))


def test_dataframe_column_dtypes_kept():
    pd = pytest.importorskip("pandas")
    X, y = _xy(6)
    df = pd.DataFrame({"f32": X[:, 0].astype(np.float32), "f64": X[:, 1], "i64": (X[:, 2] * 100).astype(np.int64)})
    for est in (
        bt.resample.SMOTE(random_state=0),
        bt.resample.TomekLinks(),
        bt.resample.NearMiss(),
        bt.resample.RandomOverSampler(random_state=0),
    ):
        X_res, _ = est.fit_resample(df, y)
        assert X_res.dtypes.to_dict() == df.dtypes.to_dict(), type(est).__name__
        assert list(X_res.columns) == ["f32", "f64", "i64"]
        assert est.get_feature_names_out().tolist() == ["f32", "f64", "i64"]


def test_cluster_centroids_float_centroids_of_int_x_and_cloned_estimator():
    from sklearn.cluster import KMeans

    X, y = _xy(7)
    Xi = np.round(X * 100).astype(np.int64)
    km = KMeans(n_init=1, random_state=0)
    cc = bt.resample.ClusterCentroids(estimator=km, random_state=0)
    X_res, y_res = cc.fit_resample(Xi, y)
    assert X_res.dtype == np.float64 and not np.allclose(X_res, np.round(X_res))  # centroids, not truncated
    assert not hasattr(km, "cluster_centers_")  # the user's estimator is cloned, never fitted in place
    assert cc.estimator_ is not km and hasattr(cc.estimator_, "cluster_centers_")
    im = im_under.ClusterCentroids(estimator=KMeans(n_init=1, random_state=0), random_state=0).fit_resample(Xi, y)[0]
    assert im.dtype == X_res.dtype
    X_hard, _ = bt.resample.ClusterCentroids(voting="hard", random_state=0).fit_resample(Xi, y)
    assert X_hard.dtype == np.int64  # hard voting returns samples of X


@pytest.mark.parametrize("name", ["RandomOverSampler", "RandomUnderSampler"])
def test_random_samplers_take_nan_and_any_x(name):
    X, y = _xy(8)
    Xn = X.copy()
    rows = np.flatnonzero(y == 1)[:3]
    Xn[rows, 1] = np.nan
    Xn[rows[0], 2] = np.inf
    before = Xn.copy()
    est = getattr(bt.resample, name)(random_state=0)
    X_res, y_res = est.fit_resample(Xn, y)
    np.testing.assert_array_equal(X_res, Xn[est.sample_indices_])  # NaN compare equal positionally
    assert np.isnan(X_res).any()
    np.testing.assert_array_equal(Xn, before)
    Xs = np.array([["a", 1], ["b", 2]] * 100, dtype=object)
    X_res, _ = getattr(bt.resample, name)(random_state=0).fit_resample(Xs, y)
    assert X_res.dtype == object and set(X_res[:, 0]) == {"a", "b"}


@pytest.mark.parametrize(
    "name", ["SMOTE", "ADASYN", "BorderlineSMOTE", "NearMiss", "TomekLinks", "EditedNearestNeighbours", "ClusterCentroids"]
)
def test_distance_samplers_refuse_nan_clearly(name):
    X, y = _xy(9)
    X[5, 2] = np.nan
    with pytest.raises(ValueError, match=rf"{name}: X contains NaN or inf \(X\[5, 2\] = nan\)"):
        getattr(bt.resample, name)().fit_resample(X, y)


@pytest.mark.parametrize(
    "name,arg", [("EditedNearestNeighbours", "n_neighbors"), ("NearMiss", "n_neighbors"), ("SMOTE", "k_neighbors")]
)
def test_non_euclidean_neighbour_estimator_is_used_not_replaced(name, arg):
    X, y = _xy(10)
    nn = NearestNeighbors(n_neighbors=4, metric="chebyshev")
    ours = getattr(bt.resample, name)(**{arg: nn})
    theirs = getattr(im_under if hasattr(im_under, name) else im_over, name)(**{arg: nn})
    if name == "SMOTE":  # random points: check that every new point lies towards a Chebyshev neighbour
        X_res, y_res = ours.set_params(random_state=0).fit_resample(X, y)
        X_min = X[y == 1]
        cheb = NearestNeighbors(n_neighbors=4, metric="chebyshev").fit(X_min).kneighbors(X_min)[1][:, 1:]
        _on_segment(X_res[len(X) :], np.arange(len(X_min)), X_min, cheb, X_min)
        return
    ours.fit_resample(X, y)
    theirs.fit_resample(X, y)
    np.testing.assert_array_equal(ours.sample_indices_, theirs.sample_indices_)
    euclid = getattr(bt.resample, name)(**{arg: 4 if name == "NearMiss" else 3})
    euclid.fit_resample(X, y)
    assert not np.array_equal(euclid.sample_indices_, ours.sample_indices_)  # the metric mattered
    assert not hasattr(nn, "_fit_X")  # the user's estimator is cloned, never fitted


@pytest.mark.slow
def test_estimators_without_sklearn():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import numpy as np, balancedtorch as bt\n"
        "s = bt.resample.SMOTE(k_neighbors=3)\n"
        "assert s.get_params() == {'device': None, 'k_neighbors': 3, 'random_state': None, 'sampling_strategy': 'auto'}\n"
        "assert repr(s) == 'SMOTE(k_neighbors=3)', repr(s)\n"
        "t = bt.resample.SMOTETomek(smote=s).set_params(smote__k_neighbors=4)\n"
        "assert s.k_neighbors == 4 and t.get_params()['smote__k_neighbors'] == 4\n"
        "rng = np.random.default_rng(0); X = rng.normal(size=(60, 3)); y = np.r_[np.zeros(45, int), np.ones(15, int)]\n"
        "Xr, yr = t.fit_resample(X, np.where(y == 1, 'b', 'a'))\n"
        "assert set(yr) == {'a', 'b'} and t.smote_ is not s\n"
        # SMOTENC / SMOTEN encode with np.unique; InvalidParameterError is the fallback class
        "Xc = np.empty((60, 2), dtype=object); Xc[:, 0] = X[:, 0]; Xc[:, 1] = np.where(X[:, 1] > 0, 'u', 'v')\n"
        "nc = bt.resample.SMOTENC(categorical_features=[1], random_state=0)\n"
        "Xr, yr = nc.fit_resample(Xc, y); assert Xr.shape == (90, 2) and set(Xr[:, 1]) == {'u', 'v'}\n"
        "assert nc.categorical_encoder_ is None\n"
        "Xr, yr = bt.resample.SMOTEN(random_state=0).fit_resample(Xc[:, 1:], y); assert set(Xr[:, 0]) == {'u', 'v'}\n"
        "from balancedtorch.resample._base import InvalidParameterError\n"
        "try: bt.resample.RandomOverSampler(shrinkage=-1).fit_resample(X, y)\n"
        "except InvalidParameterError as e: assert isinstance(e, ValueError) and isinstance(e, TypeError)\n"
        "else: raise AssertionError('no error')\n"
        "print('ok')\n"
    )
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


@pytest.mark.slow
def test_import_does_not_load_sklearn_until_a_resampler_is_used():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, balancedtorch as bt\n"
        "assert 'sklearn' not in sys.modules, 'import balancedtorch loaded scikit-learn'\n"
        "bt.resample.FeatureSMOTE\n"
        "assert 'sklearn' not in sys.modules\n"
        "from balancedtorch.resample import SMOTE\n"
        "assert 'sklearn' in sys.modules and SMOTE.__module__ == 'balancedtorch.resample.over'\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


_BAD_PARAMS = [
    ("RandomOverSampler", dict(shrinkage=-1)),
    ("RandomOverSampler", dict(shrinkage="x")),
    ("RandomOverSampler", dict(sampling_strategy="majority")),
    ("RandomOverSampler", dict(sampling_strategy=1.5)),
    ("RandomOverSampler", dict(sampling_strategy=[0])),
    ("RandomOverSampler", dict(random_state="seed")),
    ("SMOTE", dict(k_neighbors=0)),
    ("SMOTE", dict(k_neighbors=2.5)),
    ("SMOTE", dict(sampling_strategy="bogus")),
    ("BorderlineSMOTE", dict(kind="borderline-3")),
    ("BorderlineSMOTE", dict(m_neighbors=0)),
    ("ADASYN", dict(n_neighbors=-1)),
    ("ADASYN", dict(n_neighbors="five")),
    ("RandomUnderSampler", dict(replacement="yes")),
    ("RandomUnderSampler", dict(sampling_strategy="minority")),
    ("RandomUnderSampler", dict(sampling_strategy=0.0)),
    ("NearMiss", dict(version=4)),
    ("NearMiss", dict(n_neighbors_ver3=0, version=3)),
    ("TomekLinks", dict(sampling_strategy={0: 1})),
    ("TomekLinks", dict(n_jobs=1.5)),
    ("EditedNearestNeighbours", dict(kind_sel="any")),
    ("ClusterCentroids", dict(voting="majority")),
    ("ClusterCentroids", dict(estimator="kmeans")),
    ("SMOTEENN", dict(smote="smote")),
    ("SMOTETomek", dict(tomek=1)),
    ("SMOTEN", dict(categorical_encoder="ordinal")),
    ("SMOTENC", dict(categorical_features="all")),
]


@pytest.mark.parametrize("name, params", _BAD_PARAMS, ids=[f"{n}-{sorted(p)[0]}={p[sorted(p)[0]]!r}" for n, p in _BAD_PARAMS])
def test_bad_parameters_raise_sklearns_invalid_parameter_error_as_imblearn(name, params):
    param_validation = pytest.importorskip("sklearn.utils._param_validation")
    imblearn = pytest.importorskip("imblearn")
    import imblearn.combine  # noqa: F811  (the submodule of the module skipped for above)
    import imblearn.over_sampling
    import imblearn.under_sampling

    g = torch.Generator().manual_seed(0)
    X = torch.randn(60, 3, generator=g, dtype=torch.float64).numpy()
    y = np.array([0] * 40 + [1] * 20)
    if name == "SMOTEN":
        X = (X > 0).astype(np.int64)
    module = next(m for m in (imblearn.over_sampling, imblearn.under_sampling, imblearn.combine) if hasattr(m, name))
    extra = {"categorical_features": [0]} if name == "SMOTENC" and "categorical_features" not in params else {}
    with pytest.raises(param_validation.InvalidParameterError):
        getattr(module, name)(**params, **extra).fit_resample(X, y)
    with pytest.raises(param_validation.InvalidParameterError) as ours:
        getattr(bt.resample, name)(**params, **extra).fit_resample(X, y)
    assert isinstance(ours.value, ValueError) and isinstance(ours.value, TypeError)
    assert name in str(ours.value) and sorted(params)[0] in str(ours.value)


@pytest.mark.parametrize("name", ["SMOTE", "RandomOverSampler", "TomekLinks"])
@pytest.mark.parametrize("tensor", [False, True])
def test_complex_x_uses_sklearns_wording(name, tensor):
    X = np.ones((20, 2), dtype=np.complex128)
    X = torch.as_tensor(X) if tensor else X
    y = np.array([0] * 12 + [1] * 8)
    with pytest.raises(ValueError, match="Complex data not supported"):
        getattr(bt.resample, name)().fit_resample(X, y)
