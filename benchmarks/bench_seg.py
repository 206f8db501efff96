"""Segmentation losses (issue 13): fused DiceCE against what users write instead, in the same run.

CPU: DiceCE forward + backward on (8, 19, 256, 512) fp32 logits against
``monai.losses.DiceCELoss(softmax=True, to_onehot_y=True)`` and against an eager
soft Dice (softmax + one-hot + sums) plus ``F.cross_entropy``. Peak extra memory
is the growth of the process's peak RSS (``VmHWM``) over one forward +
backward, measured in a fresh subprocess per implementation (the CPU allocator
keeps no statistics, and the profiler misses transient peaks inside ops).
GPU (when present): (8, 19, 512, 1024) fp32 / bf16, with the achieved bandwidth
as a fraction of a device-to-device copy, and the caching allocator's peak.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt

from _harness import CUDA_OK, copy_floor, fwd_bwd, sync

CPU_SHAPE = (8, 19, 256, 512)
GPU_SHAPE = (8, 19, 512, 1024)


def eager_dice_ce(x, t):
    """The plain soft Dice + cross-entropy a user writes (MONAI's formula with its defaults)."""
    p = torch.softmax(x, 1)
    y = F.one_hot(t, x.shape[1]).movedim(-1, 1).to(x.dtype)
    dims = list(range(2, x.dim()))
    inter = (p * y).sum(dims)
    dice = 1 - (2 * inter + 1e-5) / (p.sum(dims) + y.sum(dims) + 1e-5)
    return dice.mean() + F.cross_entropy(x, t)


def _impls():
    impls = {
        "balancedtorch": lambda: lambda x, t: bt.functional.dice_ce_loss(x, t),
        "eager dice + F.cross_entropy": lambda: eager_dice_ce,
    }
    try:
        import monai.losses  # noqa: F401

        def monai_fn():
            loss = monai.losses.DiceCELoss(softmax=True, to_onehot_y=True)
            return lambda x, t: loss(x, t.unsqueeze(1))

        impls["monai DiceCELoss"] = monai_fn
    except ImportError:  # pragma: no cover
        pass
    return impls


IMPLS = _impls()


def _case(device, shape, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(device=device, dtype=dtype).requires_grad_()
    t = torch.randint(0, shape[1], (shape[0],) + tuple(shape[2:]), generator=g).to(device)
    return x, t


_RSS_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import torch

    def peak_kib():
        # VmHWM: this process image's peak RSS (ru_maxrss carries the parent's peak over fork + exec)
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    sys.path.insert(0, {bench_dir!r})
    import bench_seg
    torch.set_num_threads({threads})
    shape = {shape}
    x = torch.empty(shape).normal_().requires_grad_()
    t = torch.empty(shape[:1] + shape[2:], dtype=torch.long).random_(0, shape[1])
    fn = bench_seg.IMPLS[{impl!r}]()
    # a small call first: lazy initialisation is not the loss's memory
    fn(torch.randn(2, shape[1], 8, 8, requires_grad=True), torch.randint(0, shape[1], (2, 8, 8))).backward()
    before = peak_kib()
    loss = fn(x, t)
    loss.backward()
    after = peak_kib()
    # x.grad is output, not scratch: it is counted (one logits-sized buffer)
    print(json.dumps({{"peak_extra_KiB": after - before, "logits_KiB": x.numel() * 4 // 1024}}))
    """
)


def peak_extra_rss(impl, shape=CPU_SHAPE):
    """Peak RSS growth (KiB) over one forward + backward of impl, in a fresh process; and the logits' size."""
    script = _RSS_SCRIPT.format(
        bench_dir=os.path.dirname(os.path.abspath(__file__)), threads=torch.get_num_threads(), shape=tuple(shape), impl=impl
    )
    # the child imports the same balancedtorch as this process
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(bt.__file__)), os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("impl", list(IMPLS))
def test_cpu_dice_ce(timed, benchmark, impl):
    x, t = _case("cpu", CPU_SHAPE)
    run = fwd_bwd(x, t, IMPLS[impl]())
    floor = copy_floor(x) if impl == "balancedtorch" else None
    timed(run, group=f"dice_ce fwd+bwd {CPU_SHAPE} fp32 cpu", impl=impl, device="cpu", rounds=3, floor=floor)
    mem = peak_extra_rss(impl)
    benchmark.extra_info["peak_extra_MiB"] = round(mem["peak_extra_KiB"] / 1024, 1)
    benchmark.extra_info["peak_extra_logits_copies"] = round(mem["peak_extra_KiB"] / mem["logits_KiB"], 2)


GPU_CASES = [("fp32", torch.float32), ("bf16", torch.bfloat16)]


@pytest.mark.skipif(not CUDA_OK, reason="no CUDA device or kernels")
@pytest.mark.parametrize("case", GPU_CASES, ids=[c[0] for c in GPU_CASES])
@pytest.mark.parametrize("impl", list(IMPLS) + ["copy"])
def test_gpu_dice_ce(timed, benchmark, case, impl):
    label, dtype = case
    x, t = _case("cuda", GPU_SHAPE, dtype)
    group = f"dice_ce fwd+bwd {GPU_SHAPE} {label} cuda"
    if impl == "copy":
        # the bandwidth yardstick: read the logits once, write a tensor of their size once
        timed(copy_floor(x), group=group, impl="d2d copy (yardstick)", device="cuda")
        return
    run = fwd_bwd(x, t, IMPLS[impl]())
    timed(run, group=group, impl=impl, device="cuda", floor=copy_floor(x) if impl == "balancedtorch" else None)
    # the fused kernels read the logits twice and write the gradient once
    moved = 3 * x.numel() * x.element_size() + t.numel() * t.element_size()
    benchmark.extra_info["GB_per_s"] = round(moved / benchmark.stats.stats.median / 1e9, 1)
    sync("cuda")
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    run()
    sync("cuda")
    benchmark.extra_info["peak_extra_MiB"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)
