"""The raw sampling operators at their limits and on tables they did not make.

alias_table / alias_sample / sample_without_replacement with weight sums past
float64's range and subnormal weights; alias_sample, alias_sample_packed,
alias_pack and sample_without_replacement refuse hand-made tables and
arguments on different devices.
"""

import pytest
import torch

import balancedtorch  # noqa: F401  (registers torch.ops.balancedtorch)

_OPS = torch.ops.balancedtorch


@pytest.mark.parametrize("weights, shares", [([1e308, 1e308, 1.0], [0.5, 0.5, 0.0]), ([1e-320, 1e-320, 3e-320], [0.2, 0.2, 0.6])])
def test_raw_alias_table_with_extreme_weight_sums(weights, shares):
    # the raw op (not only the Python wrapper) rescales: its sum overflowed to inf (uniform draws) or n / sum did
    w = torch.tensor(weights, dtype=torch.float64)
    kept = w.clone()
    prob, alias = torch.ops.balancedtorch.alias_table(w)
    assert torch.equal(w, kept)
    draws = torch.ops.balancedtorch.alias_sample(prob, alias, torch.tensor([7]), 200_000)
    freq = torch.bincount(draws, minlength=3).double() / draws.numel()
    torch.testing.assert_close(freq, torch.tensor(shares, dtype=torch.float64), atol=0.01, rtol=0)


def test_raw_sample_without_replacement_with_subnormal_weights():
    w = torch.tensor([1e-320, 1e-320, 3e-320], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    first = [
        int(torch.ops.balancedtorch.sample_without_replacement(w, torch.rand(3, dtype=torch.float64, generator=g), 1))
        for _ in range(3000)
    ]
    share = torch.bincount(torch.tensor(first), minlength=3).double() / 3000
    torch.testing.assert_close(share, torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64), atol=0.03, rtol=0)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: _OPS.alias_sample(
                torch.zeros(3, dtype=torch.float64), torch.tensor([10**9, -5, 2**40]), torch.tensor([1]), 1000
            ),
            r"alias holds indices outside \[0, 3\)",
        ),
        (
            lambda: _OPS.alias_sample_packed(torch.tensor([-1, 2**62, 2**63 - 1, -(2**63)]), torch.tensor([1]), 1000),
            r"outside \[0, 4\)",
        ),
        (
            lambda: _OPS.alias_pack(torch.tensor([float("nan"), 0.5], dtype=torch.float64), torch.tensor([0, 1])),
            r"prob\[0\] = nan",
        ),
        (lambda: _OPS.alias_pack(torch.tensor([1.0, 0.5], dtype=torch.float64), torch.tensor([0, 7])), r"alias\[1\] = 7"),
        (
            lambda: _OPS.sample_without_replacement(
                torch.rand(3, dtype=torch.float64), torch.tensor([0.5, float("nan"), 0.1], dtype=torch.float64), 2
            ),
            r"uniforms\[1\] = nan",
        ),
        (
            lambda: _OPS.sample_without_replacement(
                torch.rand(3, dtype=torch.float64), torch.tensor([0.5, 1.5, 0.1], dtype=torch.float64), 2
            ),
            r"uniforms\[1\] = 1.5",
        ),
    ],
)
def test_raw_sampling_ops_refuse_hand_made_tables(call, match):
    # they returned indices outside the table (e.g. -5, 2**40) for tables not made by alias_table / alias_pack
    with pytest.raises(ValueError, match=match):
        call()


def test_raw_sampling_ops_refuse_mixed_devices():
    prob, alias = _OPS.alias_table(torch.rand(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="alias_sample: seed is on meta but prob is on cpu"):
        _OPS.alias_sample(prob, alias, torch.tensor([1], device="meta"), 10)
    with pytest.raises(ValueError, match="uniforms is on meta"):
        _OPS.sample_without_replacement(torch.rand(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64, device="meta"), 2)
