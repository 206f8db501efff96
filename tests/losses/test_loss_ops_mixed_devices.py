"""Losses and their raw operators with arguments on different devices.

A ValueError naming the argument and both devices, like their other bad
arguments: from the public losses, from the fake kernels (meta), from the CPU
kernels' own check (csrc/device_check.h, reached past the fake) and with CPU
and CUDA tensors mixed.
"""

import pytest
import torch

import balancedtorch.functional as btf

_OPS = torch.ops.balancedtorch


def test_losses_refuse_mixed_devices():
    # a meta target among CPU logits dispatched to the fake kernel, which returned uninitialised memory as the loss
    with pytest.raises(ValueError, match="softmax_loss: target is on meta but input is on cpu"):
        btf.cross_entropy(torch.randn(4, 3), torch.zeros(4, dtype=torch.long, device="meta"))
    with pytest.raises(ValueError, match="softmax_loss: weight is on meta"):
        _OPS.softmax_loss(
            torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.ones(3, device="meta"), None, -100, 0.0, 0.0, 1, True
        )
    with pytest.raises(ValueError, match="sigmoid_focal_loss: target is on meta but input is on cpu"):
        btf.sigmoid_focal_loss(torch.randn(4, 3), torch.zeros(4, 3, device="meta"))


def _raw_loss_calls(dev_a, dev_b, ops=_OPS):
    """Raw loss ops with one argument on dev_b and the others on dev_a: (call, expected message)."""
    a = lambda *s, **k: torch.zeros(*s, device=dev_a, **k)  # noqa: E731
    b = lambda *s, **k: torch.zeros(*s, device=dev_b, **k)  # noqa: E731
    L = torch.long
    return [
        (
            lambda: ops.ohem_prob_weights(a(4) + 0.5, b(4, dtype=L), None, 255, 0.7, 1),
            f"ohem_prob_weights: target is on {dev_b} but probs is on {dev_a}",
        ),
        (
            lambda: ops.ohem_prob_weights(a(4, 3) + 0.5, a(4, 3, dtype=L), b(3) + 1, 255, 0.7, 1),
            f"ohem_prob_weights: weight is on {dev_b} but probs is on {dev_a}",
        ),
        (
            lambda: ops.softmax_loss_target_prob(a(4, 3), b(4, dtype=L), -100, False),
            f"target is on {dev_b} but input is on {dev_a}",
        ),
        (
            lambda: ops.softmax_loss(a(4, 3), b(4, dtype=L), None, None, -100, 0.0, 0.0, 1, False),
            f"softmax_loss: target is on {dev_b} but input is on {dev_a}",
        ),
        (
            lambda: ops.softmax_loss(a(4, 3), a(4, dtype=L), b(3) + 1, None, -100, 0.0, 0.0, 1, False),
            f"softmax_loss: weight is on {dev_b} but input is on {dev_a}",
        ),
        (
            lambda: ops.softmax_loss(a(4, 3), a(4, dtype=L), None, b(3), -100, 0.0, 0.0, 1, False),
            f"softmax_loss: logit_bias is on {dev_b} but input is on {dev_a}",
        ),
        (
            lambda: ops.sigmoid_focal_loss(a(4, 3), a(4, 3), b(3) + 1, 0.25, 2.0, 1, False),
            f"sigmoid_focal_loss: pos_weight is on {dev_b} but input is on {dev_a}",
        ),
    ]


@pytest.mark.parametrize("case", range(7))
def test_raw_loss_ops_report_mixed_devices_as_value_errors(case):
    """Like their other bad arguments (ValueError/TypeError), not a RuntimeError (meta: the fake kernels' check)."""
    call, match = _raw_loss_calls("cpu", "meta")[case]
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("case", range(7))
def test_cpu_kernels_report_mixed_devices_as_value_errors(case):
    """The C++ check itself (csrc/device_check.h), reached by redispatching to the CPU kernel past the fake."""
    cpu = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)

    class ToCPU:  # ops.<name>(...) runs the CPU kernel, whatever the arguments' devices
        def __getattr__(self, name):
            return lambda *args: getattr(_OPS, name).default.redispatch(cpu, *args)

    call, match = _raw_loss_calls("cpu", "meta", ToCPU())[case]
    with pytest.raises(ValueError, match=match):
        call()
    # knn's checks too
    with pytest.raises(ValueError, match="knn: groups is on meta but x is on cpu"):
        torch.ops.balancedtorch.knn.default.redispatch(
            cpu, torch.randn(5, 3), 1, torch.zeros(5, dtype=torch.long, device="meta"), None, None
        )


@pytest.mark.cuda
@pytest.mark.parametrize("case", range(7))
def test_raw_loss_ops_report_mixed_devices_as_value_errors_cuda(case):
    """CPU and CUDA tensors mixed: the kernels' own check (csrc/device_check.h) raises the ValueError."""
    call, match = _raw_loss_calls("cuda:0", "cpu")[case]
    with pytest.raises(ValueError, match=match):
        call()
