"""Every fused loss against its memory floor: forward + backward in copies of the logits.

The floor of a fused loss is one pass over its input: read the logits once,
write their gradient once, the traffic of one ``copy_`` of the logits. Each
case records ``copies`` = min(fwd+bwd) / min(copy_), over interleaved runs
(benchmarks/conftest.py), and ``spread`` = max / min of its own runs. The
peers' ratios are in bench_losses.py, bench_seg.py and bench_ohem.py.

CPU: rows (8192, 1000) and segmentation (8, 19, 256, 512), fp32.
CUDA (when present): rows (16384, 32768) and segmentation (8, 19, 512, 1024), fp32.
"""

import pytest
import torch

import balancedtorch as bt

from _harness import CUDA_OK, copy_floor, fwd_bwd

F = bt.functional

ROWS = {
    "cross_entropy": lambda x, t: F.cross_entropy(x, t),
    "focal_loss": lambda x, t: F.focal_loss(x, t, gamma=2.0),
    "sigmoid_focal_loss": lambda x, t: F.sigmoid_focal_loss(x, t, reduction="mean"),
}
SEGMENTATION = {
    "cross_entropy": lambda x, t: F.cross_entropy(x, t),
    "dice_loss": lambda x, t: F.dice_loss(x, t),
    "dice_ce_loss": lambda x, t: F.dice_ce_loss(x, t),
    "dice_focal_loss": lambda x, t: F.dice_focal_loss(x, t),
    "ohem_cross_entropy": lambda x, t: F.ohem_cross_entropy(x, t, 0.7, 100000, ignore_index=255),
}
SHAPES = {
    "cpu": {"rows": (8192, 1000), "segmentation": (8, 19, 256, 512)},
    "cuda": {"rows": (16384, 32768), "segmentation": (8, 19, 512, 1024)},
}
CASES = [(layout, name) for layout, table in (("rows", ROWS), ("segmentation", SEGMENTATION)) for name in table]


def _case(device, layout, name):
    shape = SHAPES[device][layout]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(device).requires_grad_()
    if name == "sigmoid_focal_loss":  # multi-label targets of the logits' shape
        t = (torch.rand(shape, generator=g) < 0.01).float().to(device)
    else:
        t = torch.randint(0, shape[1], (shape[0],) + tuple(shape[2:]), generator=g).to(device)
    return x, t


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA_OK, reason="no CUDA device or kernels"))]
)
@pytest.mark.parametrize("case", CASES, ids=[f"{layout}-{name}" for layout, name in CASES])
def test_loss_against_copy_floor(timed, device, case):
    layout, name = case
    x, t = _case(device, layout, name)
    fn = (ROWS if layout == "rows" else SEGMENTATION)[name]
    shape = tuple(x.shape)
    heavy = device == "cpu" and layout == "segmentation"
    timed(
        fwd_bwd(x, t, fn),
        group=f"floor {name} {shape} fp32 {device}",
        impl="balancedtorch",
        device=device,
        rounds=5 if heavy else None,
        floor=copy_floor(x),
    )
