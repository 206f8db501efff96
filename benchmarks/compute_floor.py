"""Is a fused loss held back by memory or by arithmetic? Its cost per element in cache and in DRAM, on one core.

Run by hand (not a pytest-benchmark case)::

    python benchmarks/compute_floor.py [--rounds 15]

Two measurements, one thread, CPU time (``time.thread_time``, so another
process on the machine moves them less than wall time):

1. **Each loss of bench_floor.py, forward + backward, in ns per element**, on
   a tensor that fits in the L2 cache (about 0.6 MB of logits, the call's fixed
   cost subtracted) and on the bench_floor.py shape (far beyond the last-level
   cache), next to ``copy_`` of the large tensor. A kernel that costs as much
   per element in cache as in DRAM is bound by its arithmetic, not by memory
   traffic: no memory layout can bring it to the copy floor.
2. **The arithmetic it cannot avoid**, from a small C++ program built against
   the kernels' own ``csrc/cpu/vec_math.h`` with the extension's flags (AVX2
   where the build has it): the throughput of the float exp the softmax and
   sigmoid kernels use, of ``log1p_unit``, of a vector division, and of a
   minimal softmax over 19 classes (max, exp and sum, then p = e / S written),
   all on L1-resident data.

The minimal softmax is the floor of any exact softmax-family loss (CE, focal,
OHEM, the Dice family's softmax): it has no target term, no weight and no
loss, and it already costs about 2 copies per element on one core here.
"""

import argparse
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

_CPP = r"""
#include <torch/extension.h>
#include <chrono>
#include "cpu/vec_math.h"

namespace {
using Vec = at::vec::Vectorized<float>;
constexpr int kC = 19, kW = 64;  // one tile: 19 class planes of 64 pixels (L1-resident)

double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename F>
double ns_per_element(F&& body, int64_t reps) {
  double best = 1e30;
  for (int round = 0; round < 5; ++round) {
    const double t0 = seconds();
    for (int64_t r = 0; r < reps; ++r) {
      body();
      asm volatile("" ::: "memory");
    }
    best = std::min(best, seconds() - t0);
  }
  return best * 1e9 / (static_cast<double>(reps) * kC * kW);
}
}  // namespace

std::vector<std::pair<std::string, double>> run(int64_t reps) {
  std::vector<float> z(kC * kW), e(kC * kW), g(kC * kW), u(kC * kW);
  for (int i = 0; i < kC * kW; ++i) {
    z[i] = static_cast<float>((i * 7919) % 1000) / 100.0f - 5.0f;  // logits in [-5, 5)
    u[i] = 0.05f + static_cast<float>(i % 17) / 20.0f;             // e in (0, 1]
  }
  constexpr int L = Vec::size();
  std::vector<std::pair<std::string, double>> out;
  out.emplace_back("exp (cpu::exp, z - 1)", ns_per_element([&] {
    for (int i = 0; i < kC * kW; i += L) {
      balancedtorch::cpu::exp(Vec::loadu(z.data() + i) - Vec(1.0f)).store(e.data() + i);
    }
  }, reps));
  out.emplace_back("log1p_unit (softplus tail)", ns_per_element([&] {
    for (int i = 0; i < kC * kW; i += L) {
      balancedtorch::cpu::log1p_unit(Vec::loadu(u.data() + i)).store(e.data() + i);
    }
  }, reps));
  out.emplace_back("division a / b", ns_per_element([&] {
    for (int i = 0; i < kC * kW; i += L) {
      (Vec::loadu(z.data() + i) / (Vec::loadu(u.data() + i) + Vec(7.0f))).store(e.data() + i);
    }
  }, reps));
  out.emplace_back("load + store (L1)", ns_per_element([&] {
    for (int i = 0; i < kC * kW; i += L) {
      Vec::loadu(z.data() + i).store(e.data() + i);
    }
  }, reps));
  out.emplace_back("minimal softmax, 19 classes", ns_per_element([&] {
    for (int k = 0; k < kW; k += L) {
      Vec m = Vec::loadu(z.data() + k), s(0.0f);
      for (int c = 1; c < kC; ++c) {
        m = at::vec::maximum(m, Vec::loadu(z.data() + c * kW + k));
      }
      for (int c = 0; c < kC; ++c) {
        const Vec ec = balancedtorch::cpu::exp(Vec::loadu(z.data() + c * kW + k) - m);
        ec.store(e.data() + c * kW + k);
        s = s + ec;
      }
      const Vec inv = s.reciprocal();
      for (int c = 0; c < kC; ++c) {
        (Vec::loadu(e.data() + c * kW + k) * inv).store(g.data() + c * kW + k);
      }
    }
  }, reps));
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("run", &run);
}
"""


def _arithmetic(reps):
    from torch.utils.cpp_extension import load_inline

    from balancedtorch import _build_config

    flags = ["-O3", "-ffp-contract=off"]
    if _build_config.CPU_CAPABILITY == "avx2":
        flags += ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    mod = load_inline(
        "bt_compute_floor",
        cpp_sources=[_CPP],
        extra_cflags=flags,
        extra_include_paths=[os.path.join(ROOT, "csrc")],
        verbose=False,
    )
    return mod.run(reps)


LOSSES = {
    "cross_entropy (rows)": ("rows", lambda F, x, t: F.cross_entropy(x, t)),
    "focal_loss (rows)": ("rows", lambda F, x, t: F.focal_loss(x, t, gamma=2.0)),
    "sigmoid_focal_loss (rows)": ("multilabel", lambda F, x, t: F.sigmoid_focal_loss(x, t, reduction="mean")),
    "cross_entropy (segmentation)": ("seg", lambda F, x, t: F.cross_entropy(x, t)),
    "dice_loss": ("seg", lambda F, x, t: F.dice_loss(x, t)),
    "dice_ce_loss": ("seg", lambda F, x, t: F.dice_ce_loss(x, t)),
    "dice_focal_loss": ("seg", lambda F, x, t: F.dice_focal_loss(x, t)),
    "ohem_cross_entropy": ("seg", lambda F, x, t: F.ohem_cross_entropy(x, t, 0.7, 100000, ignore_index=255)),
}
SHAPES = {  # (in cache, in DRAM): the large ones are bench_floor.py's
    "rows": ((160, 1000), (8192, 1000)),
    "multilabel": ((160, 1000), (8192, 1000)),
    "seg": ((1, 19, 32, 256), (8, 19, 256, 512)),
}


def _data(kind, shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).requires_grad_()
    if kind == "multilabel":
        t = (torch.rand(shape, generator=g) < 0.01).float()
    else:
        t = torch.randint(0, shape[1], (shape[0],) + tuple(shape[2:]), generator=g)
    return x, t


def _cpu_ms(fn, rounds):
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return best * 1e3


def _step(F, fn, x, t):
    def run():
        loss = fn(F, x, t)
        loss.backward()
        x.grad = None

    return run


def _copy(src):
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=100000, help="repetitions of the C++ tile loops")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    import balancedtorch as bt

    F = bt.functional
    print(f"one thread; load average {os.getloadavg()[0]:.2f}; {torch.__version__}")
    print(f"{'loss (fwd + bwd)':<30} {'in cache ns/el':>15} {'in DRAM ns/el':>14} {'copy_ ns/el':>12} {'DRAM / cache':>13}")
    for name, (kind, fn) in LOSSES.items():
        small_shape, large_shape = SHAPES[kind]
        xs, ts = _data(kind, small_shape)
        # the call's fixed cost (validation, dispatch, autograd): the same call on one pixel / row
        x1, t1 = _data(kind, (1,) + small_shape[1:2] + (1,) * (len(small_shape) - 2))
        overhead = _cpu_ms(_step(F, fn, x1, t1), args.rounds * 20)
        small = (_cpu_ms(_step(F, fn, xs, ts), args.rounds * 20) - overhead) * 1e6 / xs.numel()
        xl, tl = _data(kind, large_shape)
        large = _cpu_ms(_step(F, fn, xl, tl), args.rounds) * 1e6 / xl.numel()
        copy = _cpu_ms(_copy(xl.detach()), args.rounds) * 1e6 / xl.numel()
        print(f"{name:<30} {small:>15.3f} {large:>14.3f} {copy:>12.3f} {large / small:>13.2f}")
    print()
    print("arithmetic on L1-resident data (csrc/cpu/vec_math.h, the extension's flags), ns per element:")
    for name, ns in _arithmetic(args.reps):
        print(f"  {name:<30} {ns:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
