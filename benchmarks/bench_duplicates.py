"""Near-duplicate groups: ``bt.quality.find_duplicates`` against a chunked ``torch.cdist`` brute force, same run.

20,000 x 64 float32 on the CPU: 18,000 Gaussian rows and 2,000 near-copies of
them in groups of 2 to 9 (noise 1e-3 per coordinate), threshold 0.05. The
brute force is what a user would write: ``torch.cdist`` 2,048 rows at a time,
the pairs ``<= threshold``, and scipy's connected components. Both must give
the same groups. ``test_find_duplicates_interleaved`` runs the two
alternately (3 rounds each) and records the ratio of their best times.
"""

import numpy as np
import pytest
import torch

import balancedtorch as bt

from _harness import interleaved_times

N, D, THRESHOLD, CHUNK = 20_000, 64, 0.05, 2048


def _data():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(18_000, D))
    sizes = rng.integers(2, 10, 1000)
    sizes = sizes[np.cumsum(sizes) <= 2000]
    src = rng.integers(0, 18_000, len(sizes))
    copies = [base[s] + rng.normal(size=(k - 1, D)) * 1e-3 for s, k in zip(src, sizes)]
    extra = [rng.normal(size=(2000 - sum(int(k) - 1 for k in sizes), D))]
    x = np.concatenate([base] + copies + extra)[rng.permutation(N)]
    return torch.from_numpy(x).float()


def _cdist_groups(x, threshold):
    sparse = pytest.importorskip("scipy.sparse")
    csgraph = pytest.importorskip("scipy.sparse.csgraph")
    rows, cols = [], []
    for a in range(0, x.shape[0], CHUNK):
        i, j = (torch.cdist(x[a : a + CHUNK], x) <= threshold).nonzero().unbind(1)
        rows.append(i + a)
        cols.append(j)
    i, j = torch.cat(rows).numpy(), torch.cat(cols).numpy()
    graph = sparse.coo_matrix((np.ones(len(i), dtype=bool), (i, j)), shape=(x.shape[0],) * 2)
    _, label = csgraph.connected_components(graph, directed=False)
    order = np.argsort(label, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(label[order])) + 1)
    groups = [g for g in groups if len(g) > 1]
    return sorted(groups, key=lambda g: g[0])


@pytest.mark.parametrize("impl", ["balancedtorch", "torch.cdist"])
def test_find_duplicates(timed, impl):
    x = _data()
    if impl == "balancedtorch":
        fn = lambda: bt.quality.find_duplicates(x, THRESHOLD)  # noqa: E731
    else:
        fn = lambda: _cdist_groups(x, THRESHOLD)  # noqa: E731
    out = timed(fn, group=f"find_duplicates {N}x{D} float32 threshold={THRESHOLD}", impl=impl, device="cpu", rounds=3)
    assert len(out) > 200


def test_find_duplicates_interleaved(benchmark):
    x = _data()
    ours = bt.quality.find_duplicates(x, THRESHOLD)
    theirs = _cdist_groups(x, THRESHOLD)
    assert [g.tolist() for g in ours] == [g.tolist() for g in theirs]
    times = interleaved_times(
        {"bt": lambda: bt.quality.find_duplicates(x, THRESHOLD), "cdist": lambda: _cdist_groups(x, THRESHOLD)}, "cpu", 3
    )
    benchmark.extra_info.update({k: [round(t, 3) for t in v] for k, v in times.items()})
    benchmark.extra_info["ratio"] = round(min(times["cdist"]) / min(times["bt"]), 2)
    benchmark.pedantic(lambda: None, rounds=1)
    print(
        f"\nfind_duplicates {min(times['bt']):.3f} s, cdist brute force {min(times['cdist']):.3f} s: "
        f"{benchmark.extra_info['ratio']}x"
    )
