"""Fused losses (forward + backward) against what users write instead, in the same run.

CPU: (8192, 1000) fp32 weighted cross-entropy vs F.cross_entropy(weight=w);
focal loss vs the usual eager focal (log_softmax + gather + pow); LDAM and VS
vs the eager forms of the authors' formulas (margin scatter, scale, then
F.cross_entropy; vector scaling, then F.cross_entropy); Seesaw vs MMDetection's
eager recipe; segmentation
(4, 19, 256, 512) vs F.cross_entropy; sigmoid focal vs torchvision.
GPU (when present): (16384, 32768) fp32 / bf16 and segmentation (8, 19, 512, 1024),
with the achieved bandwidth as a fraction of a device-to-device copy.
Peak extra memory of forward + backward is recorded in extra_info.
"""

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt

from _harness import CUDA_OK, copy_floor, sync

torchvision_ops = pytest.importorskip("torchvision.ops")


def _eager_focal(logits, target, gamma=2.0):
    logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    return (-((1 - logp.exp()) ** gamma) * logp).mean()


# a long-tailed profile for (8192, 1000): 5000 samples of the head class down to 50 of the tail
LONG_TAIL_COUNTS = (5000 * 0.01 ** (torch.arange(1000, dtype=torch.float64) / 999)).round()


def _eager_ldam(margins, s=30.0):
    """LDAM as a user writes it from Cao et al.'s code: one-hot mask, per-sample margin, where, scale, CE."""

    def loss(x, t, w):
        onehot = torch.zeros_like(x, dtype=torch.bool).scatter_(1, t[:, None], True)
        per_sample = (margins[None, :].to(x.dtype) @ onehot.to(x.dtype).T).view(-1, 1)
        return F.cross_entropy(s * torch.where(onehot, x - per_sample, x), t, weight=w)

    return loss


def _eager_vs(counts, gamma=0.3, tau=1.0):
    """VS as a user writes it from Kini et al.'s code: divide by Delta, add iota, CE."""
    delta = ((1.0 / counts) ** gamma / ((1.0 / counts) ** gamma).min()).float()
    iota = (tau * torch.log(counts / counts.sum())).float()
    return lambda x, t, w: F.cross_entropy(x / delta + iota, t, weight=w)


def _ldam_margins(counts, max_m=0.5):
    m = counts**-0.25
    return (m * (max_m / m.max())).float()


def _case(device, shape, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(device=device, dtype=dtype).requires_grad_()
    C = shape[1]
    tshape = (shape[0],) + tuple(shape[2:])
    t = torch.randint(0, C, tshape, generator=g).to(device)
    w = (torch.rand(C, generator=g) + 0.5).to(device)
    return x, t, w


def _fwd_bwd(x, loss_fn):
    def run():
        loss = loss_fn()
        loss.backward()
        # balancedtorch's large CPU gradients come from its buffer pool, outside torch's
        # allocator, so the profiler does not see them: remember their size for the peak
        storage = x.grad.untyped_storage()
        run.unseen_bytes = 0 if storage.resizable() else storage.nbytes()
        x.grad = None
        return loss

    run.unseen_bytes = 0
    return run


def _peak_extra_bytes(device, fn):
    """Peak memory above what was allocated before fn.

    CUDA: the caching allocator's peak. CPU: the running sum of the
    profiler's per-op allocations and frees, in time order (an op's own
    transient peak is not seen, so this is a lower bound of the true peak),
    plus pooled gradient buffers the profiler cannot see.
    """
    if torch.device(device).type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak + getattr(fn, "unseen_bytes", 0)


def _record(benchmark, device, fn):
    peak = _peak_extra_bytes(device, fn)
    if peak is not None:
        benchmark.extra_info["peak_extra_MiB"] = round(peak / 2**20, 1)


ROW_IMPLS = {
    "ce": {
        "balancedtorch": lambda x, t, w: bt.functional.cross_entropy(x, t, weight=w),
        "F.cross_entropy": lambda x, t, w: F.cross_entropy(x, t, weight=w),
    },
    "focal": {
        "balancedtorch": lambda x, t, w: bt.functional.focal_loss(x, t, gamma=2.0),
        "eager focal": lambda x, t, w: _eager_focal(x, t, 2.0),
    },
    "ldam": {
        "balancedtorch": lambda x, t, w: bt.functional.ldam_loss(x, t, LONG_TAIL_COUNTS, weight=w),
        "eager LDAM": _eager_ldam(_ldam_margins(LONG_TAIL_COUNTS)),
    },
    "vs": {
        "balancedtorch": lambda x, t, w: bt.functional.vs_loss(x, t, LONG_TAIL_COUNTS, weight=w),
        "eager VS": _eager_vs(LONG_TAIL_COUNTS),
    },
}


@pytest.mark.parametrize("loss", ["ce", "focal", "ldam", "vs"])
@pytest.mark.parametrize("impl", ["balancedtorch", "baseline"])
def test_cpu_rows(timed, benchmark, loss, impl):
    x, t, w = _case("cpu", (8192, 1000))
    if loss == "ldam":
        # LDAM is made for cosine logits (a normalised last layer) in [-1, 1]; s * randn would
        # make most exp(z - max) subnormal, which slows every implementation alike
        x = (torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1).requires_grad_()
    name = "balancedtorch" if impl == "balancedtorch" else [k for k in ROW_IMPLS[loss] if k != "balancedtorch"][0]
    fn = ROW_IMPLS[loss][name]
    run = _fwd_bwd(x, lambda: fn(x, t, w))
    floor = copy_floor(x) if name == "balancedtorch" else None
    timed(run, group=f"{loss} fwd+bwd (8192, 1000) fp32 cpu", impl=name, device="cpu", floor=floor)
    _record(benchmark, "cpu", run)


@pytest.mark.parametrize("impl", ["balancedtorch", "F.cross_entropy"])
def test_cpu_segmentation(timed, benchmark, impl):
    x, t, _ = _case("cpu", (4, 19, 256, 512))
    fn = bt.functional.cross_entropy if impl == "balancedtorch" else F.cross_entropy
    run = _fwd_bwd(x, lambda: fn(x, t))
    floor = copy_floor(x) if impl == "balancedtorch" else None
    timed(run, group="ce fwd+bwd (4, 19, 256, 512) fp32 cpu", impl=impl, device="cpu", floor=floor)
    _record(benchmark, "cpu", run)


@pytest.mark.parametrize("impl", ["balancedtorch", "torchvision"])
def test_cpu_sigmoid_focal(timed, benchmark, impl):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(8192, 1000, generator=g) * 3).requires_grad_()
    y = (torch.rand(8192, 1000, generator=g) < 0.01).float()
    fn = bt.functional.sigmoid_focal_loss if impl == "balancedtorch" else torchvision_ops.sigmoid_focal_loss
    run = _fwd_bwd(x, lambda: fn(x, y, reduction="mean"))
    floor = copy_floor(x) if impl == "balancedtorch" else None
    timed(run, group="sigmoid focal fwd+bwd (8192, 1000) fp32 cpu", impl=impl, device="cpu", floor=floor)
    _record(benchmark, "cpu", run)


def _eager_seesaw(logits, target, cum_samples, p=0.8, q=2.0, eps=1e-2):
    """The Seesaw loss as users write it (MMDetection's recipe): (C, C) count ratios, (N, C) factors, CE."""
    onehot = F.one_hot(target, logits.shape[1])
    n = cum_samples.clamp(min=1)
    ratio = n[None, :] / n[:, None]
    below = (ratio < 1).float()
    factors = (ratio.pow(p) * below + (1 - below))[target]
    scores = F.softmax(logits.detach(), dim=1)
    own = scores.gather(1, target[:, None]).clamp(min=eps)
    score_ratio = scores / own
    above = (score_ratio > 1).float()
    factors = factors * (score_ratio.pow(q) * above + (1 - above))
    return F.cross_entropy(logits + factors.log() * (1 - onehot), target)


@pytest.mark.parametrize("impl", ["balancedtorch", "eager seesaw"])
def test_cpu_seesaw(timed, benchmark, impl):
    x, t, _ = _case("cpu", (8192, 1000))
    cum = torch.randint(0, 100000, (1000,), generator=torch.Generator().manual_seed(1)).float()
    fn = bt.functional.seesaw_loss if impl == "balancedtorch" else _eager_seesaw
    run = _fwd_bwd(x, lambda: fn(x, t, cum))
    floor = copy_floor(x) if impl == "balancedtorch" else None
    timed(run, group="seesaw fwd+bwd (8192, 1000) fp32 cpu", impl=impl, device="cpu", floor=floor)
    _record(benchmark, "cpu", run)


GPU_CASES = [
    ("rows fp32", (16384, 32768), torch.float32),
    ("rows bf16", (16384, 32768), torch.bfloat16),
    ("segmentation fp32", (8, 19, 512, 1024), torch.float32),
]


@pytest.mark.skipif(not CUDA_OK, reason="no CUDA device or kernels")
@pytest.mark.parametrize("case", GPU_CASES, ids=[c[0] for c in GPU_CASES])
@pytest.mark.parametrize("impl", ["balancedtorch", "F.cross_entropy", "copy"])
def test_gpu_cross_entropy(timed, benchmark, case, impl):
    label, shape, dtype = case
    x, t, w = _case("cuda", shape, dtype)
    group = f"ce fwd+bwd {shape} {str(dtype).replace('torch.', '')} cuda"
    if impl == "copy":
        # the bandwidth yardstick: read the logits once, write a tensor of their size once
        timed(copy_floor(x), group=group, impl="d2d copy (yardstick)", device="cuda")
        return
    fn = bt.functional.cross_entropy if impl == "balancedtorch" else F.cross_entropy
    run = _fwd_bwd(x, lambda: fn(x, t, weight=w))
    timed(run, group=group, impl=impl, device="cuda", floor=copy_floor(x) if impl == "balancedtorch" else None)
    # bytes that must move: logits read once + gradient written once (+ targets)
    moved = 2 * x.numel() * x.element_size() + t.numel() * t.element_size()
    benchmark.extra_info["GB_per_s"] = round(moved / benchmark.stats.stats.median / 1e9, 1)
    _record(benchmark, "cuda", run)


@pytest.mark.skipif(not CUDA_OK, reason="no CUDA device or kernels")
@pytest.mark.parametrize("impl", ["balancedtorch", "torchvision"])
def test_gpu_sigmoid_focal(timed, impl):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(16384, 4096, generator=g) * 3).cuda().requires_grad_()
    y = (torch.rand(16384, 4096, generator=g) < 0.01).float().cuda()
    fn = bt.functional.sigmoid_focal_loss if impl == "balancedtorch" else torchvision_ops.sigmoid_focal_loss
    timed(
        _fwd_bwd(x, lambda: fn(x, y, reduction="mean")),
        group="sigmoid focal fwd+bwd (16384, 4096) fp32 cuda",
        impl=impl,
        device="cuda",
        floor=copy_floor(x) if impl == "balancedtorch" else None,
    )


GPU_LONG_TAIL = {
    "ldam": (
        lambda x, t, cum: bt.functional.ldam_loss(x, t, LONG_TAIL_COUNTS),
        lambda x, t, cum: _eager_ldam(_ldam_margins(LONG_TAIL_COUNTS).to(x.device))(x, t, None),
    ),
    "vs": (
        lambda x, t, cum: bt.functional.vs_loss(x, t, LONG_TAIL_COUNTS),
        lambda x, t, cum: _eager_vs(LONG_TAIL_COUNTS.to(x.device))(x, t, None),
    ),
    "seesaw": (
        lambda x, t, cum: bt.functional.seesaw_loss(x, t, cum),
        lambda x, t, cum: _eager_seesaw(x, t, cum),
    ),
}


@pytest.mark.skipif(not CUDA_OK, reason="no CUDA device or kernels")
@pytest.mark.parametrize("loss", list(GPU_LONG_TAIL))
@pytest.mark.parametrize("impl", ["balancedtorch", "eager"])
def test_gpu_long_tail(timed, benchmark, loss, impl):
    """LDAM, VS and Seesaw fwd+bwd at (16384, 1000) fp32 on the GPU against their eager forms; GB/s vs copy_."""
    x, t, _ = _case("cuda", (16384, 1000))
    if loss == "ldam":  # cosine logits, as in bench_losses' CPU case
        x = (torch.rand(x.shape, device="cuda") * 2 - 1).requires_grad_()
    cum = torch.randint(0, 100000, (1000,), generator=torch.Generator().manual_seed(1)).float().cuda()
    fn = GPU_LONG_TAIL[loss][0 if impl == "balancedtorch" else 1]
    run = _fwd_bwd(x, lambda: fn(x, t, cum))
    group = f"{loss} fwd+bwd (16384, 1000) fp32 cuda"
    timed(run, group=group, impl=impl, device="cuda", floor=copy_floor(x) if impl == "balancedtorch" else None)
    _record(benchmark, "cuda", run)
