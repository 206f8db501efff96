"""balancedtorch._validate: the one module of argument checks and its exception policy."""

import math
import re

import numpy as np
import pytest
import torch

from balancedtorch import _validate as v


def test_integer_accepts_python_and_numpy_integers():
    assert v.integer(3, "k") == 3
    assert type(v.integer(np.int32(3), "k", low=1)) is int
    assert v.integer(None, "k", optional=True) is None
    assert v.integer(2**63 - 1, "k") == 2**63 - 1
    assert v.integer(2**80, "seed", int64=False) == 2**80


@pytest.mark.parametrize("bad", [True, np.bool_(False), 2.0, "3", None, np.float64(1.0)])
def test_integer_wrong_type_is_a_type_error_naming_argument_and_value(bad):
    with pytest.raises(TypeError, match=rf"^knn: k must be an int >= 1, got {re.escape(repr(bad))}$"):
        v.integer(bad, "k", low=1, caller="knn")


def test_integer_wrong_value_is_a_value_error():
    with pytest.raises(ValueError, match=r"^knn: k must be an int >= 1, got 0$"):
        v.integer(0, "k", low=1, caller="knn")
    with pytest.raises(ValueError, match=r"^n must be an int in \[0, 5\] or None, got 6$"):
        v.integer(6, "n", low=0, high=5, optional=True)
    with pytest.raises(ValueError, match=r"n must be an int <= 5, got np.int64\(6\)|n must be an int <= 5, got 6"):
        v.integer(np.int64(6), "n", high=5)


@pytest.mark.parametrize("big", [2**63, -(2**63) - 1])
def test_integer_int64_bounds(big):
    assert v.integer(-(2**63), "x") == -(2**63)
    with pytest.raises(ValueError, match=rf"x must fit in int64 .*got {big}"):
        v.integer(big, "x")


def test_real():
    assert v.real(np.float32(0.5), "beta", low=0, high=1) == 0.5
    assert v.real(1, "beta") == 1.0 and type(v.real(1, "beta")) is float
    assert v.real(math.inf, "t", low=0, finite=False) == math.inf
    assert v.real(None, "t", optional=True) is None
    for bad in (True, "0.5", None, torch.tensor(0.5), [0.5]):
        with pytest.raises(TypeError, match=r"f: beta must be a number in \[0, 1\), got "):
            v.real(bad, "beta", low=0, high=1, high_inclusive=False, caller="f")
    with pytest.raises(ValueError, match=r"^f: beta must be a number in \[0, 1\), got 1$"):
        v.real(1, "beta", low=0, high=1, high_inclusive=False, caller="f")
    with pytest.raises(ValueError, match=r"^tpr must be a number in \(0, 1\), got 0.0$"):
        v.real(0.0, "tpr", low=0, high=1, low_inclusive=False, high_inclusive=False)
    with pytest.raises(ValueError, match=r"^t must be a finite number > 0, got inf$"):
        v.real(math.inf, "t", low=0, low_inclusive=False)
    with pytest.raises(ValueError, match=r"t must be a number >= 0, got nan"):
        v.real(math.nan, "t", low=0, finite=False)


def test_flag():
    assert v.flag(True, "sqrt") is True and v.flag(np.bool_(False), "sqrt") is False
    assert v.flag(None, "distributed", optional=True) is None
    for bad in (1, 0, "no", None, np.int64(1)):
        with pytest.raises(TypeError, match=rf"^S: sqrt must be True or False, got {re.escape(repr(bad))}$"):
            v.flag(bad, "sqrt", caller="S")
    with pytest.raises(TypeError, match=r"distributed must be None, True or False, got 'yes'"):
        v.flag("yes", "distributed", optional=True)


def test_choice():
    assert v.choice("sum", "reduction", ("mean", "sum")) == "sum"
    assert v.choice(np.str_("sum"), "reduction", ("mean", "sum")) == "sum"
    assert v.choice(None, "normalize", (None, "true")) is None
    assert v.choice(np.int64(2), "k", (1, 2)) == 2
    for bad in (None, 1, "max", True, ["mean"], np.array(["mean", "sum"])):
        with pytest.raises(ValueError, match=r"^loss: reduction must be one of 'mean', 'sum', got "):
            v.choice(bad, "reduction", ("mean", "sum"), caller="loss")
    with pytest.raises(ValueError, match="got True"):
        v.choice(True, "k", (1, 2))  # True is not 1


def test_num_classes_and_ignore_index():
    assert v.num_classes(1) == 1 and v.num_classes(None, optional=True) is None
    with pytest.raises(ValueError, match=r"^w: num_classes must be an int >= 1, got 0$"):
        v.num_classes(0, caller="w")
    with pytest.raises(TypeError, match=r"num_classes must be an int >= 1, got 3.0"):
        v.num_classes(3.0)
    with pytest.raises(TypeError, match=r"num_classes must be an int >= 1, got None"):
        v.num_classes(None)
    assert v.ignore_index(None) is None and v.ignore_index(-100) == -100 and v.ignore_index(np.uint8(255)) == 255
    with pytest.raises(TypeError, match=r"^w: ignore_index must be an int or None, got 2.5$"):
        v.ignore_index(2.5, caller="w")
    with pytest.raises(ValueError, match="ignore_index must fit in int64"):
        v.ignore_index(2**64)


def test_finite_nonnegative_and_same_device():
    w = torch.tensor([1.0, 0.0])
    assert v.finite_nonnegative(w, "weights") is w
    with pytest.raises(ValueError, match=r"^s: weights must be finite and >= 0, got weights\[1\] = -1.0$"):
        v.finite_nonnegative(torch.tensor([1.0, -1.0]), "weights", caller="s")
    with pytest.raises(ValueError, match=r"weights\[0\] = nan"):
        v.finite_nonnegative(torch.tensor([math.nan]), "weights")
    with pytest.raises(ValueError, match=r"counts\[0\] = -2"):
        v.finite_nonnegative(torch.tensor([-2]), "counts")
    v.same_device("op", "x", torch.zeros(1), y=torch.zeros(1), z=None)
    with pytest.raises(ValueError, match="^op: y is on meta but x is on cpu$"):
        v.same_device("op", "x", torch.zeros(1), y=torch.zeros(1, device="meta"))


def test_long_values_are_cut_in_messages():
    with pytest.raises(TypeError) as info:
        v.integer("x" * 500, "k")
    assert len(str(info.value)) < 120 and str(info.value).endswith("...")
