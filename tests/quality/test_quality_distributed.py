"""The quality tools on (labels, pred_probs) sharded across torch.distributed ranks (gloo, CPU).

Each spawned group runs many cases at once (spawning is the slow part); the
parent compares every rank's answer with the single-process answer on the
concatenation of the shards (rank 0's rows first): flag for flag, rank for
rank, bit for bit.
"""

import os
import warnings

import numpy as np
import pytest
import torch

import balancedtorch as bt

from _distributed import close_gloo, init_gloo, run_ranks, save_rank

FILTERS = [
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
]
PRUNING = FILTERS[:3]
RANKS = [None, "self_confidence", "normalized_margin", "confidence_weighted_entropy"]


def make_case(name):
    """(labels, pred_probs, shard sizes) of a named case; the same arrays in every process."""
    seed = sum(map(ord, name))
    rng = np.random.default_rng(seed)
    if name == "plain":  # float32, unequal shards, 20% injected label noise
        sizes, K = (230, 171), 5
        logits = rng.normal(size=(sum(sizes), K)) * 2.5
        p = torch.softmax(torch.from_numpy(logits), 1).float()
    elif name == "empty_rank":  # rank 1 holds no rows
        sizes, K = (230, 0), 4
        p = torch.softmax(torch.from_numpy(rng.normal(size=(230, K)) * 2), 1)
    elif name == "ties":  # a few distinct rows: margins and scores tie across the cuts and across ranks
        sizes, K = (300, 257), 3
        rows = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.45, 0.45, 0.1], [0.3, 0.3, 0.4]])
        p = torch.from_numpy(rows[rng.integers(0, len(rows), sum(sizes))])
    elif name == "rounded":  # coarse float32 logits, one class absent from the labels
        sizes, K = (190, 233), 6
        p = torch.softmax(torch.from_numpy(np.round(rng.normal(size=(sum(sizes), K)) * 2)), 1).float()
    else:
        raise ValueError(name)
    y = np.where(rng.random(p.shape[0]) < 0.8, p.argmax(1).numpy(), rng.integers(0, K, p.shape[0]))
    if name == "rounded":
        y[y == K - 1] = 0
    if name == "plain":
        # adversarial: a row whose probability of class k is exactly class k's confident cut
        # (cleanlab's numpy-mean threshold - 1e-6 in float32, as cleanlab compares), for a class
        # whose numpy mean differs from the exactly rounded mean: a reduce of per-rank partial
        # sums (in any order) instead of numpy's mean over the concatenation flips it
        from balancedtorch.quality._exact_sums import exact_group_sums, round_ratio
        from balancedtorch.quality.label_issues import _thresholds_of

        counts = np.bincount(y, minlength=K)
        sums = exact_group_sums(p.gather(1, torch.from_numpy(y)[:, None]).squeeze(1), torch.from_numpy(y), K)
        exact = np.array([round_ratio(s, int(n), np.float32) for s, n in zip(sums, counts)])
        numpy_mean = _thresholds_of(y, p.numpy())
        k = int(np.flatnonzero(exact != numpy_mean)[0])
        cut = np.float32(numpy_mean[k] - 1e-6)
        row = int(np.flatnonzero(y == (k + 1) % K)[5])
        p[row] = torch.full((K,), (1 - float(cut)) / (K - 1), dtype=torch.float32)
        p[row, k] = float(cut)
        new = _thresholds_of(y, p.numpy())
        assert new[k] == numpy_mean[k] and np.float32(new[k] - 1e-6) == p[row, k].item()
        assert np.float32(exact[k] - 1e-6) != p[row, k].item()
    return torch.from_numpy(y), p, sizes


CASES = ["plain", "empty_rank", "ties", "rounded"]


def calls(name):
    """Every (key, kwargs) run on a case."""
    out = []
    for f in FILTERS:
        for r in RANKS:
            out.append(((f, r), dict(filter_by=f, return_indices_ranked_by=r)))
    K = make_case(name)[1].shape[1]
    remove = np.arange(K) % 4 + 1
    for f in PRUNING:
        out.append(((f, "remove"), dict(filter_by=f, num_to_remove_per_class=remove.tolist())))
        out.append(
            (
                (f, "frac"),
                dict(filter_by=f, frac_noise=0.6, min_examples_per_class=3, return_indices_ranked_by="normalized_margin"),
            )
        )
        out.append(
            (
                (f, "adjust"),
                dict(filter_by=f, return_indices_ranked_by="self_confidence", rank_by_kwargs={"adjust_pred_probs": True}),
            )
        )
        joint = (np.eye(K, dtype=np.int64) * 40 + 3).tolist()
        out.append(((f, "joint"), dict(filter_by=f, confident_joint=joint)))
    return out


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def shard(t, sizes, rank):
    start = sum(sizes[:rank])
    return t[start : start + sizes[rank]]


def multilabel_case():
    rng = np.random.default_rng(7)
    p = np.round(rng.uniform(size=(301, 4)), 1)  # ties
    hot = ((p > 0.5) ^ (rng.random(p.shape) < 0.15)).astype(np.int64)
    return hot, p, (180, 121)


def _worker(rank, world_size, init_file, out_dir, case_names, extras):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    init_gloo(rank, world_size, init_file, timeout=60)
    try:
        out = {}
        for name in case_names:
            y, p, sizes = make_case(name)
            sizes = sizes if world_size == 2 else _three(sizes)
            ys, ps = shard(y, sizes, rank), shard(p, sizes, rank)
            for key, kw in calls(name):
                out[(name,) + key] = quiet(bt.quality.find_label_issues, ys, ps, **kw)
            out[(name, "numpy")] = quiet(bt.quality.find_label_issues, ys.numpy(), ps.numpy(), distributed=True)
            if ps.shape[0]:  # distributed=False: this rank's rows alone (0 rows are refused then)
                out[(name, "local")] = quiet(
                    bt.quality.find_label_issues, ys, ps, distributed=False, return_indices_ranked_by="self_confidence"
                )
                out[(name, "local_mistakes")] = bt.quality.rank_mistakes(ys, ps, distributed=False)
            out[(name, "mistakes")] = bt.quality.rank_mistakes(ys, ps)
            out[(name, "per_class")] = bt.quality.mistakes_per_class(ys, ps, class_names=[f"c{k}" for k in range(p.shape[1])])
            K = p.shape[1]
            out[(name, "shift_soft")] = bt.quality.LabelShiftEstimator(K).fit(ys, ps)
            out[(name, "shift_hard")] = bt.quality.LabelShiftEstimator(K).fit(ys, ps.argmax(1))
        if "multilabel" in extras:
            hot, p, sizes = multilabel_case()
            hs, ps = shard(hot, sizes, rank), shard(p, sizes, rank)
            for f in FILTERS:
                for r in RANKS:
                    out[("multilabel", f, r)] = quiet(
                        bt.quality.find_label_issues, hs, ps, filter_by=f, multi_label=True, return_indices_ranked_by=r
                    )
        if "errors" in extras:
            y, p, sizes = make_case("plain")
            ys, ps = shard(y, sizes, rank), shard(p, sizes, rank)
            bad = {
                "label_out_of_range": (ys.clone().fill_(9) if rank == 1 else ys, ps, {}),
                "classes_differ": (ys.clamp_max(3), ps[:, :4] / ps[:, :4].sum(1, keepdim=True) if rank == 1 else ps, {}),
                "options_differ": (ys, ps, dict(filter_by="both" if rank == 1 else "prune_by_class")),
                "logits": (ys, ps.log() if rank == 0 else ps, {}),
            }
            for key, (yy, pp, kw) in bad.items():
                for fn in (bt.quality.find_label_issues, bt.quality.rank_mistakes, bt.quality.mistakes_per_class):
                    if key == "options_differ" and fn is not bt.quality.find_label_issues:
                        continue
                    try:
                        quiet(fn, yy, pp, **kw)
                        out[("error", key, fn.__name__)] = None
                    except ValueError as err:
                        out[("error", key, fn.__name__)] = str(err)
                try:
                    bt.quality.LabelShiftEstimator(5).fit(yy, pp)
                    out[("error", key, "fit")] = None
                except ValueError as err:
                    out[("error", key, "fit")] = str(err)
            # still in step after the errors: a correct call works
            out[("error", "after")] = bt.quality.find_label_issues(ys, ps)
        save_rank(out, out_dir, rank)
    finally:
        close_gloo()


def _three(sizes):
    n = sum(sizes)
    return (n // 2, 0, n - n // 2) if sizes[1] == 0 else (n // 3, n // 3 + 17, n - 2 * (n // 3) - 17)


def _spawn(tmp_path, world_size, case_names, extras=()):
    return run_ranks(_worker, world_size, tmp_path, case_names, tuple(extras))


def _restricted(ranked, sizes, rank):
    """The single-process ranking restricted to one rank's rows, as indices into that rank's rows."""
    start = sum(sizes[:rank])
    ranked = np.asarray(ranked)
    return ranked[(ranked >= start) & (ranked < start + sizes[rank])] - start


def _check_cases(parts, case_names):
    world = len(parts)
    for name in case_names:
        y, p, sizes = make_case(name)
        sizes = sizes if world == 2 else _three(sizes)
        for key, kw in calls(name) + [(("numpy",), dict())]:
            k = (name,) + key
            single = quiet(bt.quality.find_label_issues, y, p, **kw)
            got = [part[k] for part in parts]
            if key == ("numpy",):
                assert all(isinstance(g, np.ndarray) for g in got)
                got = [torch.from_numpy(g) for g in got]
            if single.dtype == torch.bool:
                assert all(g.dtype == torch.bool and g.shape == (n,) for g, n in zip(got, sizes)), k
                assert torch.equal(torch.cat(got), single), k
            else:
                assert single.dtype == torch.int64 and all(g.dtype == torch.int64 for g in got)
                for r, g in enumerate(got):
                    np.testing.assert_array_equal(g.numpy(), _restricted(single, sizes, r), err_msg=str(k))
                assert sum(g.numel() for g in got) == single.numel()
        # distributed=False on an initialised group: the rank's own rows alone
        for r in range(world):
            ys, ps = shard(y, sizes, r), shard(p, sizes, r)
            if ps.shape[0] == 0:
                continue
            local = quiet(bt.quality.find_label_issues, ys, ps, return_indices_ranked_by="self_confidence")
            assert torch.equal(parts[r][(name, "local")], local)
            assert parts[r][(name, "local_mistakes")]["index"].tolist() == bt.quality.rank_mistakes(ys, ps)["index"].tolist()
        # rank_mistakes: each rank's mistakes in the global order, indices into its rows
        single = bt.quality.rank_mistakes(y, p)
        position = {int(i): j for j, i in enumerate(single["index"].tolist())}
        for r, part in enumerate(parts):
            m = part[(name, "mistakes")]
            start = sum(sizes[:r])
            mine = single["index"][(single["index"] >= start) & (single["index"] < start + sizes[r])] - start
            assert m["index"].tolist() == mine.tolist()
            assert m["global_rank"].tolist() == [position[int(i) + start] for i in m["index"]]
            for col in ("target", "prediction", "confidence"):
                assert torch.equal(
                    m[col], shard(p if col == "confidence" else y, sizes, r)[m["index"]] if col == "target" else m[col]
                )
            assert torch.equal(m["confidence"], p[m["index"] + start].max(1).values)
            assert m.num_samples == sizes[r] and str(m)  # prints
        assert sum(part[(name, "mistakes")].num_rows for part in parts) == single.num_rows
        per = bt.quality.mistakes_per_class(y, p, class_names=[f"c{k}" for k in range(p.shape[1])])
        for part in parts:
            got = part[(name, "per_class")]
            assert got.keys() == per.keys() and got.num_samples == per.num_samples and str(got) == str(per)
            for key in ("class", "count", "support", "rate"):
                assert torch.equal(got[key], per[key]), key
            assert got["confused_with"] == per["confused_with"]
        K = p.shape[1]
        for key, preds in (("shift_soft", p), ("shift_hard", p.argmax(1))):
            est = bt.quality.LabelShiftEstimator(K).fit(y, preds)
            for part in parts:
                assert torch.equal(part[(name, key)].confusion_, est.confusion_), (name, key)
                assert torch.equal(part[(name, key)].source_prior_, est.source_prior_)


@pytest.mark.slow
@pytest.mark.distributed
def test_two_ranks_equal_one_process(tmp_path):
    parts = _spawn(tmp_path, 2, CASES, extras=("multilabel", "errors"))
    _check_cases(parts, CASES)
    # multi-label: one-vs-rest per class, every filter and ranking
    hot, p, sizes = multilabel_case()
    for f in FILTERS:
        for r in RANKS:
            single = quiet(bt.quality.find_label_issues, hot, p, filter_by=f, multi_label=True, return_indices_ranked_by=r)
            got = [part[("multilabel", f, r)] for part in parts]
            if r is None:
                np.testing.assert_array_equal(np.concatenate(got), single)
            else:
                for rank, g in enumerate(got):
                    np.testing.assert_array_equal(g, _restricted(single, sizes, rank))
    # bad input on one rank: every rank raises (no hang), and they stay in step
    for part, _other in ((parts[0], 1), (parts[1], 0)):
        for fn in ("find_label_issues", "rank_mistakes", "mistakes_per_class", "fit"):
            assert "same number of classes" in part[("error", "classes_differ", fn)] or (
                fn == "fit"
                and "columns" in part[("error", "classes_differ", fn)]
                or "rank(s) [1]" in part[("error", "classes_differ", fn)]
            )
        assert "same options" in part[("error", "options_differ", "find_label_issues")]
    assert (
        "must be < 5" in parts[1][("error", "label_out_of_range", "find_label_issues")]
        or "labels" in parts[1][("error", "label_out_of_range", "find_label_issues")]
    )
    assert "rank(s) [1]" in parts[0][("error", "label_out_of_range", "find_label_issues")]
    assert "rank(s) [1]" in parts[0][("error", "label_out_of_range", "fit")]
    assert "logits" in parts[0][("error", "logits", "rank_mistakes")]
    assert "rank(s) [0]" in parts[1][("error", "logits", "rank_mistakes")]
    y, p, sizes = make_case("plain")
    assert torch.equal(torch.cat([part[("error", "after")] for part in parts]), bt.quality.find_label_issues(y, p))


@pytest.mark.slow
@pytest.mark.distributed
def test_three_ranks_equal_one_process(tmp_path):
    parts = _spawn(tmp_path, 3, ["ties"])  # sizes 185, 202, 170
    _check_cases(parts, ["ties"])


def test_distributed_argument():
    y, p, _ = make_case("plain")
    # no process group: None is single-process, False too, True is an error
    assert torch.equal(bt.quality.find_label_issues(y, p, distributed=None), bt.quality.find_label_issues(y, p))
    assert torch.equal(bt.quality.find_label_issues(y, p, distributed=False), bt.quality.find_label_issues(y, p))
    with pytest.raises(ValueError, match="distributed=True needs an initialised"):
        bt.quality.find_label_issues(y, p, distributed=True)
    with pytest.raises(ValueError, match="distributed=True needs an initialised"):
        bt.quality.rank_mistakes(y, p, distributed=True)
    with pytest.raises(ValueError, match="distributed=True needs an initialised"):
        bt.quality.LabelShiftEstimator(5).fit(y, p, distributed=True)
    with pytest.raises(TypeError, match="distributed must be True, False or None"):
        bt.quality.mistakes_per_class(y, p, distributed="yes")


@pytest.mark.parametrize("chunk", [1 << 20, 64])
def test_exact_group_sums_and_rounding(monkeypatch, chunk):
    from fractions import Fraction

    from balancedtorch.quality import _exact_sums
    from balancedtorch.quality._exact_sums import exact_group_sums, round_ratio

    monkeypatch.setattr(_exact_sums, "_CHUNK", chunk)  # 64: the sums run over several chunks

    rng = np.random.default_rng(3)
    for dtype in (np.float64, np.float32, np.float16):
        v = (rng.random(500) ** rng.uniform(1, 40, 500)).astype(dtype)
        v[:3] = [0, np.finfo(dtype).smallest_subnormal, 1]
        g = rng.integers(0, 3, 500)
        sums = exact_group_sums(torch.from_numpy(v), torch.from_numpy(g), 3)
        perm = rng.permutation(500)
        assert exact_group_sums(torch.from_numpy(v[perm]), torch.from_numpy(g[perm]), 3) == sums  # order-free
        for k in range(3):
            exact = sum(Fraction(float(x)) for x in v[g == k])
            assert Fraction(sums[k], 1 << 1074) == exact
            n = int((g == k).sum())
            m = round_ratio(sums[k], n, dtype)
            assert m.dtype == dtype
            for other in (np.nextafter(m, dtype(-1)), np.nextafter(m, dtype(2))):  # nothing nearer
                assert abs(Fraction(float(m)) - exact / n) <= abs(Fraction(float(other)) - exact / n)


def test_label_shift_fit_does_not_depend_on_row_order():
    """confusion_ is an exact sum rounded once: a permutation of the rows gives the same bits."""
    rng = np.random.default_rng(11)
    N = 20000  # (a float sum of this many rows in another order differs in the last bits)
    p = torch.softmax(torch.from_numpy(rng.normal(size=(N, 7)) * 3), 1).float()
    y = torch.from_numpy(rng.integers(0, 7, N))
    est = bt.quality.LabelShiftEstimator(7).fit(y, p)
    perm = torch.from_numpy(rng.permutation(N))
    again = bt.quality.LabelShiftEstimator(7).fit(y[perm], p[perm])
    assert torch.equal(est.confusion_, again.confusion_) and torch.equal(est.source_prior_, again.source_prior_)
    ref = (p.double().T @ torch.nn.functional.one_hot(y, 7).double()) / N
    torch.testing.assert_close(est.confusion_, ref, rtol=1e-12, atol=0)


def test_confident_thresholds_are_cleanlabs_bit_for_bit():
    """The confident joint's thresholds are cleanlab's numpy means, in any row order, ties and cuts included."""
    cleanlab_count = pytest.importorskip("cleanlab.count")
    from balancedtorch.quality.label_issues import _confident_thresholds

    rng = np.random.default_rng(5)
    N, K = 20000, 5
    for dtype in (torch.float32, torch.float64):
        p = torch.softmax(torch.from_numpy(rng.normal(size=(N, K)) * 2), 1).to(dtype)
        y = p.argmax(1).numpy()
        y[rng.random(N) < 0.1] = 1
        for order in (np.arange(N), rng.permutation(N)):
            yo, po = y[order], p[order]
            ours = _confident_thresholds(torch.from_numpy(yo), po, np.bincount(yo, minlength=K).tolist())
            theirs = cleanlab_count.get_confident_thresholds(yo, po.numpy())
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
