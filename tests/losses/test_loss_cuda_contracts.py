"""CUDA contracts of the fused losses: no host synchronisation per step, CUDA-graph capture, device-side target checks.

Every test here needs a GPU (``cuda`` marker; skipped elsewhere). A per-step
loss must never make the host wait for the device: each loss, functional and
module, runs forward and backward under ``torch.cuda.set_sync_debug_mode("error")``
(which raises on any synchronising call), with weights on the device. An
out-of-range class index fails a device-side assertion there (as torch's own
CUDA cross_entropy): that poisons the CUDA context, so it is checked in a
subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import balancedtorch as bt
import balancedtorch.functional as btf

pytestmark = pytest.mark.cuda

C = 5


def _rows():
    x = torch.randn(64, C, device="cuda", requires_grad=True)
    t = torch.randint(0, C, (64,), device="cuda")
    return x, t


def _seg():
    x = torch.randn(2, C, 16, 16, device="cuda", requires_grad=True)
    t = torch.randint(0, C, (2, 16, 16), device="cuda")
    t[0, 0, :4] = 255  # some ignored pixels
    return x, t


def _multi():
    x = torch.randn(8, C, 6, 6, device="cuda", requires_grad=True)
    return x, (torch.rand(8, C, 6, 6, device="cuda") < 0.2).float()


def _w():
    return torch.rand(C, device="cuda") + 0.5


COUNTS = [50, 20, 10, 5, 1]


def _module(cls, **kwargs):
    """cls(COUNTS, weight=..., **kwargs) on the GPU, built at the first (warm-up) call and kept: a per-step call reuses it."""
    cache = {}

    def run(x, t):
        if "m" not in cache:
            cache["m"] = cls(COUNTS, weight=_w().cpu(), **kwargs).to("cuda")
        return cache["m"](x, t)

    return run


LOSSES = {
    "cross_entropy": (_rows, lambda x, t: btf.cross_entropy(x, t, weight=_w(), label_smoothing=0.1)),
    "cross_entropy_seg": (_seg, lambda x, t: btf.cross_entropy(x, t, ignore_index=255)),
    "focal_loss": (_rows, lambda x, t: btf.focal_loss(x, t, gamma=2.0, weight=_w())),
    "logit_adjusted_loss": (_rows, lambda x, t: btf.logit_adjusted_loss(x, t, [50, 20, 10, 5, 1])),
    "sigmoid_focal_loss": (_multi, lambda x, t: btf.sigmoid_focal_loss(x, t, reduction="mean")),
    "dice_loss": (_seg, lambda x, t: btf.dice_loss(x, t, ignore_index=255, weight=_w())),
    "generalized_dice_loss": (_seg, lambda x, t: btf.generalized_dice_loss(x, t, ignore_index=255)),
    "tversky_loss": (_seg, lambda x, t: btf.tversky_loss(x, t, ignore_index=255)),
    "dice_ce_loss": (_seg, lambda x, t: btf.dice_ce_loss(x, t, ignore_index=255, weight=_w())),
    "dice_focal_loss": (_seg, lambda x, t: btf.dice_focal_loss(x, t, ignore_index=255)),
    "dice_loss_sigmoid": (_multi, lambda x, t: btf.dice_loss(x, t, activation="sigmoid")),
    "ohem_cross_entropy": (_seg, lambda x, t: btf.ohem_cross_entropy(x, t, 0.7, 100)),
    "CrossEntropyLoss": (_rows, lambda x, t: bt.nn.CrossEntropyLoss(weight=_w())(x, t)),
    "FocalLoss": (_rows, lambda x, t: bt.nn.FocalLoss(weight=_w())(x, t)),
    "DiceCELoss": (_seg, lambda x, t: bt.nn.DiceCELoss(ignore_index=255, weight=_w())(x, t)),
    "OhemCrossEntropyLoss": (_seg, lambda x, t: bt.nn.OhemCrossEntropyLoss(min_kept=100)(x, t)),
    "ldam_loss": (_rows, lambda x, t: btf.ldam_loss(x, t, COUNTS, weight=_w())),
    "vs_loss": (_rows, lambda x, t: btf.vs_loss(x, t, COUNTS, label_smoothing=0.1)),
    "balanced_softmax_loss": (_rows, lambda x, t: btf.balanced_softmax_loss(x, t, COUNTS)),
    "LDAMLoss": (_rows, _module(bt.nn.LDAMLoss)),
    "LDAMLoss_seg": (_seg, _module(bt.nn.LDAMLoss, ignore_index=255)),
    "VSLoss_seg": (_seg, _module(bt.nn.VSLoss, ignore_index=255)),
    "BalancedSoftmaxLoss": (_rows, _module(bt.nn.BalancedSoftmaxLoss)),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_forward_and_backward_never_synchronise_with_the_host(name):
    make, loss_fn = LOSSES[name]
    x, t = make()
    loss_fn(x, t).backward()  # warm-up: lazy CUDA initialisation may synchronise once
    x.grad = None
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = loss_fn(x, t)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    torch.cuda.synchronize()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", ["cross_entropy_seg", "dice_ce_loss", "focal_loss"])
def test_forward_and_backward_capture_in_a_cuda_graph(name):
    make, loss_fn = LOSSES[name]
    x, t = make()
    static_x = x.detach().clone().requires_grad_(True)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up on a side stream, as torch.cuda.graphs asks
        for _ in range(2):
            static_x.grad = None
            loss_fn(static_x, t).backward()
    torch.cuda.current_stream().wait_stream(stream)
    static_x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = loss_fn(static_x, t)
        static_loss.backward()
    fresh = torch.randn_like(x)
    with torch.no_grad():
        static_x.copy_(fresh)
    graph.replay()
    torch.cuda.synchronize()
    eager_x = fresh.clone().requires_grad_(True)
    eager_loss = loss_fn(eager_x, t)
    eager_loss.backward()
    torch.testing.assert_close(static_loss, eager_loss)
    torch.testing.assert_close(static_x.grad, eager_x.grad)


@pytest.mark.parametrize("call", ["btf.cross_entropy(x, t)", "btf.dice_ce_loss(x.view(4, 5, 1, 1), t.view(4, 1, 1))"])
def test_an_out_of_range_target_fails_a_device_side_assertion(call):
    script = textwrap.dedent(f"""
        import torch, balancedtorch as bt
        import balancedtorch.functional as btf
        x = torch.randn(4, 5, device="cuda")
        t = torch.tensor([0, 1, 7, 2], device="cuda")
        loss = {call}
        torch.cuda.synchronize()
        print("no error")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "no error" not in run.stdout, run.stdout + run.stderr
    assert "device-side assert" in run.stderr or "CUDA error" in run.stderr, run.stderr[-2000:]
