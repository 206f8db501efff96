"""k-center selection: ``bt.quality.select_for_labeling`` against a plain torch greedy, same run.

100,000 x 64 float32 Gaussian pool on the CPU, budget 100, first pick row 0's
draw (the same for both: the plain greedy starts from our first pick). The
plain greedy is the loop a user would write: ``((x - x[c]) ** 2).sum(1)``,
``torch.minimum``, ``argmax``, in float32. Ours returns the picks of a float64
greedy; the plain float32 loop may differ where two rows' distances tie
within float32 rounding, so the picks are compared and the share that agree
is recorded. ``test_kcenter_interleaved`` runs both alternately (3 rounds),
with the same plain loop in float64 (``x.double()`` once: the greedy whose
picks ours are) as a third entry. Ours is one call of the fused
``balancedtorch::kcenter_update`` per pick (distances, minimum and argmax in
one pass over the pool).
"""

import pytest
import torch

import balancedtorch as bt

from _harness import interleaved_times

N, D, BUDGET = 100_000, 64, 100


def _data():
    return torch.randn(N, D, generator=torch.Generator().manual_seed(0))


def _plain(x, budget, first):
    picks = [first]
    mind = ((x - x[first]) ** 2).sum(1)
    for _ in range(budget - 1):
        c = int(mind.argmax())
        picks.append(c)
        mind = torch.minimum(mind, ((x - x[c]) ** 2).sum(1))
    return torch.tensor(picks)


def _plain64(x, budget, first):
    return _plain(x.double(), budget, first)


def _ours(x):
    return bt.quality.select_for_labeling(x, BUDGET, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("impl", ["balancedtorch", "torch"])
def test_kcenter(timed, impl):
    x = _data()
    first = int(torch.randint(N, (1,), generator=torch.Generator().manual_seed(0)))
    fn = (lambda: _ours(x)) if impl == "balancedtorch" else (lambda: _plain(x, BUDGET, first))
    out = timed(fn, group=f"kcenter {N}x{D} float32 budget={BUDGET}", impl=impl, device="cpu", rounds=3)
    assert out.numel() == BUDGET


def test_kcenter_interleaved(benchmark):
    x = _data()
    ours = _ours(x)
    plain = _plain(x, BUDGET, int(ours[0]))
    agree = float((ours == plain).double().mean())
    agree64 = float((ours == _plain64(x, BUDGET, int(ours[0]))).double().mean())
    times = interleaved_times(
        {
            "bt": lambda: _ours(x),
            "plain": lambda: _plain(x, BUDGET, int(ours[0])),
            "plain64": lambda: _plain64(x, BUDGET, int(ours[0])),
        },
        "cpu",
        3,
    )
    benchmark.extra_info.update({k: [round(t, 3) for t in v] for k, v in times.items()})
    benchmark.extra_info["ratio"] = round(min(times["plain"]) / min(times["bt"]), 2)
    benchmark.extra_info["ratio64"] = round(min(times["plain64"]) / min(times["bt"]), 2)
    benchmark.extra_info["agree"] = agree
    benchmark.extra_info["agree64"] = agree64
    benchmark.pedantic(lambda: None, rounds=1)
    print(
        f"\nkcenter {min(times['bt']):.3f} s, plain greedy {min(times['plain']):.3f} s: "
        f"{benchmark.extra_info['ratio']}x; picks agree {agree:.2f}; plain float64 greedy "
        f"{min(times['plain64']):.3f} s: {benchmark.extra_info['ratio64']}x; picks agree {agree64:.2f}"
    )
