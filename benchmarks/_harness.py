"""Helpers shared by the benchmark files (imported as a plain module)."""

import pytest
import torch

import balancedtorch as bt

CUDA_OK = bt.build_info()["cuda_compiled"] and torch.cuda.is_available()

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not CUDA_OK, reason="no CUDA device or kernels")),
]


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def fwd_bwd(x, t, fn):
    """A timed callable: ``fn(x, t)`` forward and backward, the gradient dropped after each call."""

    def run():
        loss = fn(x, t)
        loss.backward()
        x.grad = None
        return loss

    return run
