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


def copy_floor(x):
    """The memory floor of a kernel over ``x``: one ``copy_`` of it (read once, write once)."""
    src = x.detach()
    dst = torch.empty_like(src)
    return with_bytes(lambda: dst.copy_(src), 2 * src.numel() * src.element_size())


def with_bytes(floor, nbytes):
    """Tag a floor callable with the bytes it moves (read + write), for the GB/s columns."""
    floor.bytes = int(nbytes)
    return floor


def interleaved_times(fns, device, rounds=9):
    """Seconds of each callable over ``rounds`` rounds, run alternately (a, b, b, a, a, b, ...).

    Alternating puts both under the same machine load, which matters more than
    the number of rounds on a shared machine; the order flips every round so
    neither always runs on the other's warm cache.
    """
    import time

    names = list(fns)
    times = {name: [] for name in names}
    for name in names:  # warm-up: allocator, lazy initialisation
        fns[name]()
    sync(device)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            sync(device)
            start = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times
