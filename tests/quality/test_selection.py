"""bt.quality.select_for_labeling: k-center greedy against a float64 greedy, the score strategies
against their definitions, the same picks across torch.distributed ranks (gloo), and every bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import balancedtorch as bt

from _distributed import close_gloo, init_gloo, run_ranks, save_rank

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

select = bt.quality.select_for_labeling


def _greedy(pool, budget, labeled=None, first=None):
    """Farthest-first in float64 by explicit differences; ties to the lowest index."""
    x = pool.double()
    taken = torch.zeros(x.shape[0], dtype=torch.bool)
    picks = []
    if labeled is not None:
        mind = torch.stack([(x - row).square().sum(1) for row in labeled.double()]).min(0).values
    else:
        picks, mind = [first], (x - x[first]).square().sum(1)
        taken[first] = True
    while len(picks) < budget:
        c = int(torch.argmax(mind.masked_fill(taken, -torch.inf)))
        picks.append(c)
        taken[c] = True
        mind = torch.minimum(mind, (x - x[c]).square().sum(1))
    return picks


def _pool(rng, n, dim, kind):
    x = rng.normal(size=(n, dim))
    if kind == "grid":  # masses of exact ties
        x = rng.integers(-2, 3, size=(n, dim)).astype(float)
    elif kind == "offset":  # far from the origin: the product form cancels, the centred one does not
        x = 1e6 + x * 1e-3
    elif kind == "copies":  # a few distinct rows: later picks tie at distance 0
        x = x[rng.integers(0, max(1, n // 8), n)]
    elif kind == "clustered":
        centers = rng.normal(size=(3, dim)) * 20
        x = centers[rng.integers(0, 3, n)] + x * 0.01
    return x


@st.composite
def _kcenter_problem(draw):
    kind = draw(st.sampled_from(["plain", "grid", "offset", "copies", "clustered"]))
    n = draw(st.integers(1, 150))
    dim = draw(st.integers(1, 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x = _pool(rng, n, dim, kind)
    labeled = None
    if draw(st.booleans()):
        labeled = x[rng.integers(0, n, draw(st.integers(1, 5)))] + rng.normal(size=(1, dim)) * draw(st.sampled_from([0.0, 0.5]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    budget = draw(st.integers(1, n))
    return torch.from_numpy(x).to(dtype), budget, None if labeled is None else torch.from_numpy(labeled).to(dtype)


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_kcenter_problem(), st.integers(0, 2**31 - 1))
def test_kcenter_equals_float64_greedy(problem, seed):
    x, budget, labeled = problem
    before = x.clone()
    got = select(x, budget, labeled_features=labeled, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(x, before)
    assert got.dtype == torch.long and got.shape == (budget,)
    assert len(set(got.tolist())) == budget
    first = None
    if labeled is None:
        first = int(torch.randint(x.shape[0], (1,), generator=torch.Generator().manual_seed(seed)))
    assert got.tolist() == _greedy(x, budget, labeled, first)


def test_kcenter_first_pick_follows_the_generator():
    x = torch.randn(50, 3)
    a = select(x, 5, generator=torch.Generator().manual_seed(1))
    b = select(x, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert int(a[0]) == int(torch.randint(50, (1,), generator=torch.Generator().manual_seed(1)))


def test_kcenter_whole_pool_and_large_labelled_set():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(40, 4, generator=gen)
    assert sorted(select(x, 40, generator=gen).tolist()) == list(range(40))
    labeled = torch.randn(3000, 4, generator=gen)  # searched in chunks
    assert select(x, 10, labeled_features=labeled).tolist() == _greedy(x, 10, labeled)


def _probs(rng, n, k, coarse=False):
    logits = rng.normal(size=(n, k)) * 2
    if coarse:  # ties in margins and entropies
        logits = np.round(logits)
    p = np.exp(logits)
    return torch.from_numpy(p / p.sum(1, keepdims=True))


def _stable_first(key, budget):
    return sorted(range(len(key)), key=lambda i: (key[i], i))[:budget]


@pytest.mark.parametrize("coarse", [False, True])
def test_margin_and_entropy_orders(coarse):
    rng = np.random.default_rng(4)
    p = _probs(rng, 300, 5, coarse)
    x = torch.zeros(300, 2)
    top = p.topk(2, 1).values
    margin = (top[:, 0] - top[:, 1]).tolist()
    assert select(x, 40, strategy="margin", pred_probs=p).tolist() == _stable_first(margin, 40)
    ent = (-(p * p.log()).nan_to_num().sum(1)).tolist()
    got = select(x, 40, strategy="entropy", pred_probs=p).tolist()
    # the library sums row by row in its own order: equal up to the last bit, ties included
    want = _stable_first([-e for e in ent], 40)
    assert got == want or np.allclose([ent[i] for i in got], [ent[i] for i in want], rtol=1e-14, atol=0)


def test_balanced_gives_rare_predicted_classes_their_share():
    rng = np.random.default_rng(5)
    p = _probs(rng, 400, 4)
    p[:, 3] *= 0.01  # class 3 is (almost) never predicted
    p /= p.sum(1, keepdim=True)
    pred = p.argmax(1)
    counts = torch.bincount(pred, minlength=4)
    got = select(torch.zeros(400, 1), 40, strategy="balanced", pred_probs=p)
    per = torch.bincount(pred[got], minlength=4)
    rare = int(counts[3])
    assert int(per[3]) == min(rare, 10)  # the rare class gets all it has, up to its even share
    assert per.sum() == 40 and (per[:3] >= 10).all()
    top = p.topk(2, 1).values
    margin = top[:, 0] - top[:, 1]
    for c in range(4):  # inside a class: lowest margin first
        mine = got[pred[got] == c]
        order = _stable_first(margin[pred == c].tolist(), int(per[c]))
        assert sorted(mine.tolist()) == sorted((pred == c).nonzero().squeeze(1)[order].tolist())


def test_balanced_round_robin_exactly():
    p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.55, 0.45], [0.2, 0.8], [0.7, 0.3]], dtype=torch.float64)
    # class 0: rows 2 (margin 0.1), 1 (0.2), 4 (0.4), 0 (0.8); class 1: row 3 (0.6)
    assert select(torch.zeros(5, 1), 3, strategy="balanced", pred_probs=p).tolist() == [2, 3, 1]
    assert select(torch.zeros(5, 1), 5, strategy="balanced", pred_probs=p).tolist() == [2, 3, 1, 4, 0]


def test_novelty_is_the_detectors_score():
    gen = torch.Generator().manual_seed(6)
    labeled = torch.randn(100, 8, generator=gen)
    pool = torch.randn(60, 8, generator=gen) * torch.linspace(0.2, 3, 60)[:, None]
    got = select(pool, 12, strategy="novelty", labeled_features=labeled)
    scores = bt.quality.NoveltyDetector(k=10).fit(labeled).score(pool).double()
    assert got.tolist() == _stable_first((-scores).tolist(), 12)
    few = select(pool, 3, strategy="novelty", labeled_features=labeled[:4])  # k = 4 when 4 rows are labelled
    s4 = bt.quality.NoveltyDetector(k=4).fit(labeled[:4]).score(pool).double()
    assert few.tolist() == _stable_first((-s4).tolist(), 3)


def _kth_distance(pool, labeled, k, normalize):
    """Reference novelty score: float64 Euclidean distance to the k-th nearest labelled row (rows L2-normalised first)."""
    x, lab = pool.double(), labeled.double()
    if normalize:
        x, lab = (t / t.norm(dim=1, keepdim=True).clamp_min(1e-12) for t in (x, lab))
    d = ((x[:, None, :] - lab[None, :, :]) ** 2).sum(2).sqrt()
    return d.sort(1).values[:, k - 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_novelty_normalize_false_finds_a_rare_cluster_in_raw_low_dimensional_data(seed):
    gen = torch.Generator().manual_seed(seed)
    labeled = torch.randn(200, 2, generator=gen, dtype=torch.float64) * 0.5  # around the origin: every direction
    common = torch.randn(300, 2, generator=gen, dtype=torch.float64) * 0.5
    rare = torch.randn(12, 2, generator=gen, dtype=torch.float64) * 0.2 + torch.tensor([5.0, 5.0], dtype=torch.float64)
    order = torch.randperm(312, generator=gen)
    pool = torch.cat([common, rare])[order]
    is_rare = order >= 300
    raw = select(pool, 12, strategy="novelty", labeled_features=labeled, normalize=False)
    assert is_rare[raw].all()  # the whole budget goes to the unlabelled cluster
    assert raw.tolist() == _stable_first((-_kth_distance(pool, labeled, 10, False)).tolist(), 12)
    unit = select(pool, 12, strategy="novelty", labeled_features=labeled, normalize=True)
    assert torch.equal(unit, select(pool, 12, strategy="novelty", labeled_features=labeled))  # the default is unchanged
    assert unit.tolist() == _stable_first((-_kth_distance(pool, labeled, 10, True)).tolist(), 12)
    assert int(is_rare[unit].sum()) < 12  # on the unit circle the cluster is one direction among the labelled ones
    det = bt.quality.NoveltyDetector(k=10, normalize=False).fit(labeled)
    assert raw.tolist() == _stable_first((-det.score(pool).double()).tolist(), 12)


def test_normalize_is_read_by_novelty_only():
    gen = torch.Generator().manual_seed(3)
    pool, labeled = torch.randn(40, 3, generator=gen) * 4, torch.randn(5, 3, generator=gen)
    p = torch.rand(40, 3, generator=gen).softmax(1)
    for kw in (dict(labeled_features=labeled), dict(strategy="margin", pred_probs=p), dict(strategy="balanced", pred_probs=p)):
        assert torch.equal(select(pool, 7, normalize=False, **kw), select(pool, 7, normalize=True, **kw))
    assert select(pool, 7, labeled_features=labeled).tolist() == _greedy(pool, 7, labeled)  # kcenter: raw Euclidean


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(budget=0), ValueError, "budget must be an int >= 1, got 0"),
        (dict(budget=-3), ValueError, "budget"),
        (dict(budget=2.0), TypeError, "budget must be an int"),
        (dict(budget=True), TypeError, "budget"),
        (dict(budget=31), ValueError, r"budget=31 is larger than the pool \(30 rows\)"),
        (dict(strategy="random"), ValueError, "strategy.*random"),
        (dict(strategy=None), ValueError, "strategy"),
        (dict(strategy="margin"), ValueError, "strategy='margin' needs pred_probs"),
        (dict(strategy="entropy"), ValueError, "strategy='entropy' needs pred_probs"),
        (dict(strategy="balanced"), ValueError, "strategy='balanced' needs pred_probs"),
        (dict(strategy="novelty"), ValueError, "strategy='novelty' needs labeled_features"),
        (dict(strategy="margin", pred_probs=torch.full((29, 3), 1 / 3)), ValueError, r"pred_probs must have shape \(30, K\)"),
        (dict(strategy="margin", pred_probs=torch.full((30,), 0.5)), ValueError, "pred_probs must have shape"),
        (dict(strategy="margin", pred_probs=torch.full((30, 3), 0.5)), ValueError, "pred_probs rows must sum to 1"),
        (dict(strategy="entropy", pred_probs=torch.randn(30, 3)), ValueError, "pred_probs"),
        (dict(labeled_features=torch.zeros(4, 3)), ValueError, "labeled_features has 3 features but pool_features has 2"),
        (dict(labeled_features=torch.tensor([[0.0, float("nan")]])), ValueError, r"labeled_features\[0, 1\] = nan"),
        (dict(generator=0), TypeError, "generator must be a torch.Generator"),
        (dict(distributed="yes"), TypeError, "distributed"),
        (dict(normalize=1), TypeError, "normalize must be True or False, got 1"),
        (dict(strategy="novelty", labeled_features=torch.zeros(2, 2), normalize=None), TypeError, "normalize must be True"),
    ],
)
def test_bad_input(kwargs, exc, match):
    pool = torch.randn(30, 2)
    kwargs = dict(kwargs)
    budget = kwargs.pop("budget", 5)
    with pytest.raises(exc, match=match):
        select(pool, budget, **kwargs)


def test_bad_pool():
    x = torch.randn(10, 2)
    nan = x.clone()
    nan[7, 0] = float("nan")
    with pytest.raises(ValueError, match=r"pool_features\[7, 0\] = nan"):
        select(nan, 2)
    with pytest.raises(ValueError, match=r"pool_features must have shape \(N, D\)"):
        select(x[0], 2)
    with pytest.raises(ValueError, match="pool_features must be non-empty"):
        select(x[:0], 1)
    with pytest.raises(ValueError, match="select_for_labeling: pool_features is on the meta device"):
        select(x.to("meta"), 2)
    with pytest.raises(ValueError, match="select_for_labeling: labeled_features is on the meta device"):
        select(x, 2, strategy="novelty", labeled_features=x.to("meta"))


def test_empty_labelled_set_is_no_labelled_set():
    x = torch.randn(20, 3)
    g = torch.Generator().manual_seed(0)
    a = select(x, 4, labeled_features=x[:0], generator=g)
    assert torch.equal(a, select(x, 4, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=pytest.mark.cuda)])
def test_cuda_matches_cpu(device):
    rng = np.random.default_rng(8)
    for kind in ("plain", "offset", "copies"):
        x = torch.from_numpy(_pool(rng, 2000, 16, kind)).float()
        lab = x[:5] + 0.1
        cpu = select(x, 50, labeled_features=lab)
        gpu = select(x.to(device), 50, labeled_features=lab.to(device))
        assert torch.equal(cpu, gpu)
        p = _probs(rng, 2000, 4)
        for s in ("margin", "entropy", "balanced"):
            assert torch.equal(
                select(x, 30, strategy=s, pred_probs=p), select(x.to(device), 30, strategy=s, pred_probs=p.to(device))
            )


# --- torch.distributed (gloo): every rank gets the picks of one process ----------------


def _dist_case():
    rng = np.random.default_rng(9)
    x = torch.from_numpy(_pool(rng, 301, 6, "grid"))  # exact ties across the ranks' slices
    y = torch.from_numpy(_pool(rng, 301, 6, "plain")).float()
    p = _probs(rng, 301, 4, coarse=True)
    return x, y, p


SIZES = {2: (170, 131), 3: (120, 0, 181)}


def _calls(x, y, p):
    lab = x[:3] + 0.5
    return {
        "grid_labeled": dict(pool=x, budget=60, labeled_features=lab),
        "grid_drawn": dict(pool=x, budget=60, seed=3),
        "plain": dict(pool=y, budget=80, seed=4),
        "margin": dict(pool=y, budget=50, strategy="margin", pred_probs=p),
        "entropy": dict(pool=y, budget=50, strategy="entropy", pred_probs=p),
        "balanced": dict(pool=y, budget=50, strategy="balanced", pred_probs=p),
        "novelty": dict(pool=y, budget=50, strategy="novelty", labeled_features=y[:20] * 0.5),
        "novelty_raw": dict(pool=y, budget=50, strategy="novelty", labeled_features=y[:20] * 0.5, normalize=False),
    }


def _run(kw, rows=None):
    kw = dict(kw)
    pool = kw.pop("pool")
    seed = kw.pop("seed", None)
    if rows is not None:
        pool = pool[rows]
        if kw.get("pred_probs") is not None:
            kw["pred_probs"] = kw["pred_probs"][rows]
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return select(pool, kw.pop("budget"), generator=gen, **kw)


def _worker(rank, world_size, init_file, out_dir):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    init_gloo(rank, world_size, init_file, timeout=60)
    try:
        sizes = SIZES[world_size]
        rows = slice(sum(sizes[:rank]), sum(sizes[: rank + 1]))
        out = {name: _run(kw, rows) for name, kw in _calls(*_dist_case()).items()}
        x = _dist_case()[0]
        errors = {}
        for key, bad in {
            "budget": dict(budget=1000),
            "dims": dict(budget=5, pool=x[rows, :5] if rank == 1 else x[rows]),
            "nan": dict(budget=5, pool=x[rows].clone().fill_(float("nan")) if rank == 0 else x[rows]),
            "normalize": dict(budget=5, strategy="novelty", labeled_features=x[:4], normalize=rank == 0),
        }.items():
            bad = dict(bad)
            pool = bad.pop("pool", x[rows])
            try:
                select(pool, bad.pop("budget"), **bad)
                errors[key] = None
            except ValueError as err:
                errors[key] = str(err)
        out["errors"] = errors
        out["after"] = select(x[rows], 7, labeled_features=x[:2])  # still in step after the errors
        save_rank(out, out_dir, rank)
    finally:
        close_gloo()


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("world_size", [2, 3])
def test_distributed_picks_equal_one_process(tmp_path, world_size):
    outs = run_ranks(_worker, world_size, tmp_path)
    for name, kw in _calls(*_dist_case()).items():
        want = _run(kw)
        for r, out in enumerate(outs):
            assert torch.equal(out[name], want), (name, r)
    x = _dist_case()[0]
    for r, out in enumerate(outs):
        assert torch.equal(out["after"], select(x, 7, labeled_features=x[:2]))
        assert "budget=1000 is larger than the pool (301 rows over all ranks" in out["errors"]["budget"]
        assert "disagree on their number of features" in out["errors"]["dims"]
        assert ("pool_features[0, 0] = nan" if r == 0 else "invalid input on rank(s) [0]") in out["errors"]["nan"]
        assert "the ranks disagree on their normalize" in out["errors"]["normalize"]
