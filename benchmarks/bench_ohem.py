"""OHEM cross-entropy (forward + backward) against the sort-based eager version users write, in the same run.

CPU: (8, 19, 256, 512) fp32, thresh 0.7, min_kept 100000, 10% ignored pixels.
The baseline is HRNet/OCR's OhemCrossEntropy as written in that repository:
softmax + gather of every pixel, a full sort of the valid probabilities, a
Python-side threshold and boolean-mask indexing (host synchronisations).
GPU (when present): (8, 19, 512, 1024) fp32 / bf16, with the bandwidth as a
fraction of a device-to-device copy of the logits.
"""

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt

from _harness import CUDA_OK, copy_floor, fwd_bwd

THRESH, MIN_KEPT, IGNORE = 0.7, 100000, 255


def sort_based_ohem(score, target, thresh=THRESH, min_kept=MIN_KEPT, ignore_index=IGNORE):
    """The eager reference (HRNet-Semantic-Segmentation lib/core/criterion.py, OhemCrossEntropy)."""
    min_kept = max(1, min_kept)
    pred = F.softmax(score, dim=1)
    pixel_losses = F.cross_entropy(score, target, ignore_index=ignore_index, reduction="none").contiguous().view(-1)
    mask = target.contiguous().view(-1) != ignore_index
    tmp_target = target.clone()
    tmp_target[tmp_target == ignore_index] = 0
    pred = pred.gather(1, tmp_target.unsqueeze(1))
    pred, ind = pred.contiguous().view(-1)[mask].contiguous().sort()
    min_value = pred[min(min_kept, pred.numel() - 1)]
    threshold = max(min_value, thresh)
    pixel_losses = pixel_losses[mask][ind]
    pixel_losses = pixel_losses[pred < threshold]
    return pixel_losses.mean()


def _case(device, shape, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g) * 2).to(device=device, dtype=dtype).requires_grad_()
    tshape = (shape[0],) + tuple(shape[2:])
    t = torch.randint(0, shape[1], tshape, generator=g)
    t[torch.rand(tshape, generator=g) < 0.1] = IGNORE
    return x, t.to(device)


IMPLS = {
    "balancedtorch": lambda x, t: bt.functional.ohem_cross_entropy(x, t, THRESH, MIN_KEPT, ignore_index=IGNORE),
    "sort-based eager": sort_based_ohem,
}


@pytest.mark.parametrize("impl", list(IMPLS))
def test_cpu_ohem(timed, impl):
    x, t = _case("cpu", (8, 19, 256, 512))
    floor = copy_floor(x) if impl == "balancedtorch" else None
    timed(fwd_bwd(x, t, IMPLS[impl]), group="ohem fwd+bwd (8, 19, 256, 512) fp32 cpu", impl=impl, device="cpu", floor=floor)


GPU_CASES = [("fp32", torch.float32), ("bf16", torch.bfloat16)]


@pytest.mark.skipif(not CUDA_OK, reason="no CUDA device or kernels")
@pytest.mark.parametrize("case", GPU_CASES, ids=[c[0] for c in GPU_CASES])
@pytest.mark.parametrize("impl", list(IMPLS) + ["copy"])
def test_gpu_ohem(timed, benchmark, case, impl):
    label, dtype = case
    shape = (8, 19, 512, 1024)
    x, t = _case("cuda", shape, dtype)
    group = f"ohem fwd+bwd {shape} {label} cuda"
    if impl == "copy":
        # the bandwidth yardstick: read the logits once, write a tensor of their size once
        timed(copy_floor(x), group=group, impl="d2d copy (yardstick)", device="cuda")
        return
    timed(
        fwd_bwd(x, t, IMPLS[impl]),
        group=group,
        impl=impl,
        device="cuda",
        floor=copy_floor(x) if impl == "balancedtorch" else None,
    )
    # bytes that must move at least: logits read once + gradient written once (+ targets)
    moved = 2 * x.numel() * x.element_size() + t.numel() * t.element_size()
    benchmark.extra_info["GB_per_s"] = round(moved / benchmark.stats.stats.median / 1e9, 1)
