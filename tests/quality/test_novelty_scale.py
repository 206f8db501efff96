"""NoveltyDetector at scale (issue 14 §1 "Scale"): a bank sharded across torch.distributed ranks, and banks
searched in chunks (numpy arrays and np.memmap kept by reference). Both must equal one process searching the
whole bank, bit for bit."""

import tracemalloc
import warnings

import numpy as np
import pytest
import torch

import balancedtorch as bt
from balancedtorch.quality.novelty import _merge

from _distributed import close_gloo, init_gloo, run_ranks, save_rank

Det = bt.quality.NoveltyDetector
K = 7
D = 12


# -- data ------------------------------------------------------------------------------------------------------------


def _case(name):
    """(kwargs, bank slices, bank label slices, query slices, query label slices, val slices, val label slices)."""
    spec = dict(_CASES[name])
    dtype = spec.pop("dtype", torch.float64)
    split = spec.pop("bank_split", (300, 170))
    q_split = spec.pop("q_split", (25, 33))
    v_split = spec.pop("v_split", (30, 17))
    offset = spec.pop("offset", 0.0)
    ties = spec.pop("ties", False)
    gen = torch.Generator().manual_seed(spec.pop("seed", 0))
    n = sum(split)
    if ties:  # duplicated rows: masses of exact ties, and knn's exact-row search
        base = torch.randn(6, D, generator=gen, dtype=torch.float64)
        bank = torch.cat(
            [base[torch.randint(0, 6, (n - n // 6,), generator=gen)], torch.randn(n // 6, D, generator=gen, dtype=torch.float64)]
        )
    else:
        bank = torch.randn(n, D, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 2, (n,), generator=gen)
    # class 2: fewer than k rows on each rank (4 and 6, or all 10 on one), >= k over all
    labels[torch.randperm(split[0], generator=gen)[: min(4, split[0])]] = 2
    if split[1]:
        labels[split[0] + torch.randperm(split[1], generator=gen)[:6]] = 2
    queries = torch.randn(sum(q_split), D, generator=gen, dtype=torch.float64) * 1.3
    val = torch.randn(sum(v_split), D, generator=gen, dtype=torch.float64) * 1.3
    if ties:
        queries[: len(queries) // 2] = bank[: len(queries) // 2]
        val[: len(val) // 2] = bank[-(len(val) // 2) :]
    q_labels = torch.randint(0, 3, (len(queries),), generator=gen)
    v_labels = torch.randint(0, 3, (len(val),), generator=gen)
    bank, queries, val = ((t + offset).to(dtype) for t in (bank, queries, val))
    return (
        spec,
        bank.split(list(split)),
        labels.split(list(split)),
        queries.split(list(q_split)),
        q_labels.split(list(q_split)),
        val.split(list(v_split)),
        v_labels.split(list(v_split)),
    )


_CASES = {}
for _pc in (False, True):
    for _norm in (True, False):
        for _dt in (torch.float32, torch.float64):
            _CASES[f"pc{int(_pc)}-norm{int(_norm)}-{str(_dt)[6:]}"] = dict(
                per_class=_pc, normalize=_norm, dtype=_dt, q_split=(40, 0) if _norm else (25, 33), seed=len(_CASES)
            )
_CASES.update(
    {
        "ties-f64": dict(ties=True, normalize=False, seed=20),
        "ties-f64-pc": dict(ties=True, normalize=False, per_class=True, seed=21),
        "ties-f32-norm": dict(ties=True, dtype=torch.float32, seed=22),
        "offset-f64": dict(offset=1000.0, normalize=False, seed=23),
        "offset-f32": dict(offset=1000.0, normalize=False, dtype=torch.float32, seed=24),
        "offset-ties-f64": dict(offset=1000.0, normalize=False, ties=True, seed=25),
        "empty-rank-bank": dict(bank_split=(470, 0), q_split=(0, 31), v_split=(0, 20), seed=26),
        "chunked": dict(bank_chunk_size=5, per_class=True, seed=27),
        "chunked-ties": dict(bank_chunk_size=K - 1, ties=True, normalize=False, seed=28),
        "chunked-array": dict(bank_chunk_size=64, array=True, seed=29),
    }
)


def _single(name):
    """The single-process detector on the whole bank, its scores of all queries, its threshold on all val rows."""
    spec, banks, labels, queries, q_labels, val, v_labels = _case(name)
    spec.pop("bank_chunk_size", None)
    spec.pop("array", None)
    det = Det(k=K, **spec).fit(torch.cat(banks), torch.cat(labels))
    pc = spec.get("per_class", False)
    scores = det.score(torch.cat(queries), torch.cat(q_labels) if pc else None)
    cut = det.threshold(torch.cat(val), 0.9, torch.cat(v_labels) if pc else None)
    return scores, cut


# -- distributed -----------------------------------------------------------------------------------------------------


def _expect_error(fn):
    try:
        fn()
    except ValueError as e:
        return str(e)
    return None


def _ddp_worker(rank, world_size, init_file, out_dir):
    init_gloo(rank, world_size, init_file, timeout=60)
    try:
        out = {}
        for name in _CASES:
            spec, banks, labels, queries, q_labels, val, v_labels = _case(name)
            bank = banks[rank].numpy() if spec.pop("array", False) else banks[rank]
            det = Det(k=K, **spec).fit(bank, labels[rank])
            assert det.distributed_ and det.bank_offset_ == (0 if rank == 0 else len(banks[0]))
            pc = spec.get("per_class", False)
            scores = det.score(queries[rank], q_labels[rank] if pc else None)
            cut = det.threshold(val[rank], 0.9, v_labels[rank] if pc else None)
            flags = det.predict(queries[rank], q_labels[rank] if pc else None)
            out[name] = (scores, cut, flags)
            if name == "pc1-norm0-float64":  # report: collective (it scores), this rank's inputs only
                rep = det.report(queries[rank], labels=q_labels[rank], top_n=5)
                out["report"] = (rep["flagged"], rep["share"], rep["threshold"])
        # bad input raises on every rank, and the ranks stay in step
        x = torch.randn(4 if rank == 0 else 3, D)
        out["small"] = _expect_error(lambda: Det(k=10).fit(x))
        bad = torch.randn(50, D)
        if rank == 1:
            bad[7, 3] = float("nan")
        out["nan"] = _expect_error(lambda: Det(k=5).fit(bad))
        y = torch.tensor([0] * 48 + [1] * 2)
        out["class"] = _expect_error(lambda: Det(k=5, per_class=True).fit(torch.randn(50, D), y))
        det = Det(k=5).fit(torch.randn(50, D))
        out["dim"] = _expect_error(lambda: det.score(torch.randn(3, D if rank == 0 else D + 1)))
        out["after"] = det.score(torch.ones(2, D))
        save_rank(out, out_dir, rank)
    finally:
        close_gloo()


@pytest.mark.slow
@pytest.mark.distributed
def test_sharded_bank_equals_single_process_two_gloo_processes(tmp_path):
    parts = run_ranks(_ddp_worker, 2, tmp_path)
    for name in _CASES:
        scores, cut = _single(name)
        got = torch.cat([p[name][0] for p in parts])
        assert got.dtype == scores.dtype and torch.equal(got, scores), name
        assert parts[0][name][1] == parts[1][name][1] == cut, name
        assert torch.equal(torch.cat([p[name][2] for p in parts]), scores > cut), name
    for p in parts:
        flagged, share, cut = p["report"]
        assert torch.equal(flagged, p["pc1-norm0-float64"][2]) and share == flagged.double().mean().item()
        assert cut == p["pc1-norm0-float64"][1]
    assert "the bank has 7 samples over all ranks: [4, 3], fewer than k=10" in parts[0]["small"] == parts[1]["small"]
    assert "train_features must be finite, got train_features[7, 3] = nan" in parts[1]["nan"]
    assert "invalid input on rank(s) [1]" in parts[0]["nan"]
    assert "class 1 has 4 samples in the bank over all ranks, fewer than k=5" in parts[0]["class"] == parts[1]["class"]
    assert "features has 13 features but the training features have 12" in parts[1]["dim"]
    assert "invalid input on rank(s) [1]" in parts[0]["dim"]
    assert parts[0]["after"].shape == parts[1]["after"].shape == (2,)


def test_merging_slices_is_exact_where_knn_distances_alone_are_not():
    """The reason candidates' distances are recomputed: knn's own float64 sums differ between its paths (re-rank,
    exact row search), so on tie-heavy float64 data far from the origin a slice's distance of a pair can differ in
    the last bit from the whole bank's, and merging knn's distances would not equal one search."""
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(6, 24, generator=gen, dtype=torch.float64)
    bank = torch.cat([base[torch.randint(0, 6, (400,), generator=gen)], torch.randn(70, 24, generator=gen, dtype=torch.float64)])
    bank += 1000.0
    q = torch.randn(300, 24, generator=gen, dtype=torch.float64) * 1.2 + 1000.0
    whole = bt.ops.knn(q, K, ref=bank)[0]
    found = [bt.ops.knn(q, K, ref=b) for b in (bank[:300], bank[300:])]
    d, _ = _merge(torch.cat([f[0] for f in found], 1), torch.cat([found[0][1], found[1][1] + 300], 1), K)
    assert not torch.equal(d[:, -1], whole[:, -1])  # the naive merge is off in the last bit somewhere
    # the detector, slice by slice (chunks of the same two slices), equals it searching the whole bank
    one = Det(k=K, normalize=False).fit(bank).score(q)
    split = Det(k=K, normalize=False, bank_chunk_size=300).fit(bank).score(q)
    assert torch.equal(one, split)
    torch.testing.assert_close(one, whole[:, -1].sqrt(), rtol=1e-14, atol=0)  # knn's distances, up to rounding


# -- chunks ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pc0-norm1-float32", "pc1-norm0-float64", "ties-f64", "ties-f64-pc", "offset-f32"])
@pytest.mark.parametrize("chunk", [1, 7, K - 1, 10_000])
def test_chunked_search_equals_whole_bank(name, chunk):
    spec, banks, labels, queries, q_labels, _, _ = _case(name)
    bank, y = torch.cat(banks), torch.cat(labels)
    q, qy = torch.cat(queries), torch.cat(q_labels)
    copy = bank.clone()
    whole = Det(k=K, **spec).fit(bank, y)
    chunked = Det(k=K, bank_chunk_size=chunk, **spec).fit(bank, y)
    assert chunked.bank_.data_ptr() == bank.data_ptr()  # a float tensor is kept as given: normalised chunk by chunk
    got = chunked.score(q, qy)
    assert torch.equal(got, whole.score(q, qy))
    assert torch.equal(bank, copy)


def test_memmap_bank_kept_by_reference_and_equal_to_in_memory(tmp_path):
    gen = torch.Generator().manual_seed(5)
    bank = torch.randn(2000, 16, generator=gen).numpy()
    labels = torch.randint(0, 4, (2000,), generator=gen)
    path = tmp_path / "bank.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=bank.shape)
    mm[:] = bank
    mm.flush()
    del mm
    ro = np.memmap(path, dtype=np.float32, mode="r", shape=bank.shape)
    q = torch.randn(60, 16, generator=gen)
    qy = torch.randint(0, 4, (60,), generator=gen)
    for per_class in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's "non-writable array" warning among others
            tracemalloc.start()
            det = Det(k=9, per_class=per_class, bank_chunk_size=128).fit(ro, labels)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            got = det.score(q, qy)
        assert det.bank_ is ro and np.shares_memory(det.bank_, ro)  # no copy, no normalised copy
        assert peak < ro.nbytes / 8, peak  # fit checks finiteness one chunk at a time
        assert got.dtype == torch.float32
        assert torch.equal(got, Det(k=9, per_class=per_class).fit(torch.from_numpy(bank), labels).score(q, qy))
        assert torch.equal(got, Det(k=9, per_class=per_class, bank_chunk_size=128).fit(bank, labels).score(q, qy))


def test_chunked_fit_checks_each_chunk_and_other_dtypes():
    gen = torch.Generator().manual_seed(6)
    bank = torch.randn(300, 5, generator=gen).numpy()
    bank[257, 4] = np.inf
    with pytest.raises(ValueError, match=r"train_features must be finite, got train_features\[257, 4\] = inf"):
        Det(k=3, bank_chunk_size=16).fit(bank)
    ints = (torch.randn(300, 5, generator=gen) * 10).round().numpy().astype(np.int16)
    q = torch.randn(20, 5, generator=gen)
    got = Det(k=3, bank_chunk_size=16).fit(ints).score(q)
    assert got.dtype == torch.float32
    assert torch.equal(got, Det(k=3).fit(torch.from_numpy(ints)).score(q))
    f64 = torch.randn(300, 5, generator=gen, dtype=torch.float64)
    got = Det(k=3, bank_chunk_size=16, fraction=0.5, generator=torch.Generator().manual_seed(1)).fit(f64.numpy())
    ref = Det(k=3, fraction=0.5, generator=torch.Generator().manual_seed(1)).fit(f64)
    assert torch.equal(got.bank_indices_, ref.bank_indices_)
    assert torch.equal(got.score(f64[:10]), ref.score(f64[:10]))


def test_bank_chunk_size_and_distributed_arguments():
    for bad in (0, -3, 2.5, "8", True):
        error = ValueError if bad in (0, -3) else TypeError  # a wrong value, or a wrong type
        with pytest.raises(error, match=rf"bank_chunk_size must be an int >= 1 or None, got {bad!r}"):
            Det(bank_chunk_size=bad)
    for bad in (1, "yes"):
        with pytest.raises(TypeError, match=rf"distributed must be None, True or False, got {bad!r}"):
            Det(distributed=bad)
    x = torch.randn(40, 3)
    if not torch.distributed.is_initialized():
        with pytest.raises(ValueError, match="distributed=True needs an initialised torch.distributed process group"):
            Det(k=3, distributed=True).fit(x)
        det = Det(k=3).fit(x)
        assert not det.distributed_ and det.bank_offset_ == 0 and det.bank_sizes_ == [40]
        assert not Det(k=3, distributed=False).fit(x).distributed_


def test_repr_shows_new_arguments_when_set():
    assert repr(Det()) == "NoveltyDetector(k=50, normalize=True, fraction=1.0, device=None, per_class=False)"
    text = repr(Det(k=5, distributed=False, bank_chunk_size=4096))
    assert text.endswith("per_class=False, distributed=False, bank_chunk_size=4096)"), text


def test_normalisation_does_not_depend_on_the_rows_around():
    """The bank is normalised row by row with elementwise adds: a slice normalises to the same bits as the whole."""
    gen = torch.Generator().manual_seed(9)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(257, 37, generator=gen, dtype=dtype) * 3
        whole = Det(k=2).fit(x).bank_
        for a, b in ((0, 1), (5, 12), (100, 257)):
            assert torch.equal(Det(k=1).fit(x[a:b]).bank_, whole[a:b])
        torch.testing.assert_close(whole, torch.nn.functional.normalize(x, dim=1))
