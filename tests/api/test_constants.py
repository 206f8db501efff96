"""The enum codes the kernels take are declared once, in C++, and Python reads them (balancedtorch._constants)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import balancedtorch.augment.functional as AF
from balancedtorch import _constants
from balancedtorch.losses import _common, _region_op, region


def test_every_group_is_read_from_the_extension():
    raw = torch.ops.balancedtorch._constants()
    pairs = dict(item.split("=") for item in raw.split(";"))
    assert {k.split(".")[0] for k in pairs} == {"reduction", "activation", "ce_kind", "interpolation"}
    for key, value in pairs.items():
        group, name = key.split(".")
        table = {
            "reduction": _constants.REDUCTIONS,
            "activation": _constants.ACTIVATIONS,
            "ce_kind": _constants.CE_KINDS,
            "interpolation": _constants.INTERPOLATIONS,
        }[group]
        assert table[name] == int(value)
    for table in (_constants.REDUCTIONS, _constants.ACTIVATIONS, _constants.CE_KINDS, _constants.INTERPOLATIONS):
        assert len(set(table.values())) == len(table)  # distinct codes


def test_the_python_tables_are_the_constants():
    assert _common._REDUCTIONS is _constants.REDUCTIONS
    assert region._REDUCTIONS is _constants.REDUCTIONS and region._ACTIVATIONS is _constants.ACTIVATIONS
    assert region._W_TYPES is _constants.W_TYPES
    assert AF._INTERPOLATION is _constants.INTERPOLATIONS
    assert (_region_op.R_NONE, _region_op.R_MEAN, _region_op.R_SUM) == tuple(
        _constants.REDUCTIONS[k] for k in ("none", "mean", "sum")
    )
    assert _region_op.CE_FOCAL == _constants.CE_KINDS["focal"] and _region_op.SIGMOID == _constants.ACTIVATIONS["sigmoid"]


@pytest.mark.parametrize("name", ["none", "mean", "sum"])
def test_each_reduction_code_means_its_name_in_the_kernel(name):
    x, t = torch.randn(6, 4), torch.randint(0, 4, (6,))
    loss, _ = torch.ops.balancedtorch.softmax_loss(x, t, None, None, -100, 0.0, 0.0, _constants.REDUCTIONS[name], False)
    torch.testing.assert_close(loss, F.cross_entropy(x, t, reduction=name))


def test_codes_outside_the_enums_are_refused_by_the_kernels():
    x, t = torch.randn(6, 4), torch.randint(0, 4, (6,))
    bad = max(_constants.REDUCTIONS.values()) + 1
    with pytest.raises(ValueError, match="reduction"):
        torch.ops.balancedtorch.softmax_loss(x, t, None, None, -100, 0.0, 0.0, bad, False)
    xs, ts = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    dense = (torch.rand(2, 3, 4, 4) < 0.5).float()
    for name, code in _constants.ACTIVATIONS.items():  # every declared activation is accepted
        target = dense if name == "sigmoid" else ts
        torch.ops.balancedtorch.region_loss_stats(xs, target, None, code, False, -100, 0, 0.0, 0.0, 0)
    with pytest.raises(ValueError, match="activation"):
        torch.ops.balancedtorch.region_loss_stats(
            xs, ts, None, max(_constants.ACTIVATIONS.values()) + 1, False, -100, 0, 0.0, 0.0, 0
        )
    with pytest.raises(ValueError, match="ce_kind"):
        torch.ops.balancedtorch.region_loss_stats(
            xs, ts, None, 0, False, -100, max(_constants.CE_KINDS.values()) + 1, 0.0, 0.0, 0
        )


def test_interpolation_codes_mean_their_names():
    torch.manual_seed(0)
    img = torch.rand(1, 1, 8, 8, dtype=torch.float64).float()
    theta = torch.tensor([[[0.9, 0.1, 0.13], [-0.1, 0.9, 0.07]]])  # a small rotation and shift: sub-pixel positions
    near = AF.affine_color(img, theta, interpolation="nearest")
    bil = AF.affine_color(img, theta, interpolation="bilinear")
    values = set(img.flatten().tolist()) | {0.0}  # nearest only copies pixels (or the fill)
    assert set(near.flatten().tolist()) <= values
    assert not set(bil.flatten().tolist()) <= values  # bilinear blends them
