// CUDA kernels of balancedtorch::region_loss_stats and region_loss_grad.
//
// Stats: one block per (chunk of kChunk pixels, sample); each thread owns
// kPixelsPerThread pixels, computes their softmax normalisers and CE terms,
// then for every class the block reduces the three sums (warp shuffles, then
// the warps in a fixed order) and writes one partial per block; the partials
// are added by at::sum. No atomics on the sums: results are deterministic.
// Grad: one thread per pixel (softmax) or element (sigmoid), recomputing the
// softmax instead of storing it. The per-pixel math is region_loss.h, the
// same as the CPU kernels'.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/_assert_async.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/eq.h>
#include <ATen/ops/full.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/device_info.h"
#include "loss/region_loss.h"
#include "loss/region_loss_args.h"

namespace balancedtorch {
namespace loss {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kPixelsPerThread = 4;
constexpr int64_t kChunk = static_cast<int64_t>(kThreads) * kPixelsPerThread;

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

// Sums a, b and c over the block in a fixed order (warp shuffles, then the
// warps in order); the results are valid in thread 0. smem: 3 * kWarps.
template <typename acc_t>
__device__ __forceinline__ void block_sum3(acc_t& a, acc_t& b, acc_t& c, acc_t* smem) {
  a = warp_sum(a);
  b = warp_sum(b);
  c = warp_sum(c);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // smem is reused across calls
  if (lane == 0) {
    smem[warp] = a;
    smem[kWarps + warp] = b;
    smem[2 * kWarps + warp] = c;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    a = b = c = acc_t(0);
    for (int w = 0; w < kWarps; ++w) {
      a += smem[w];
      b += smem[kWarps + w];
      c += smem[2 * kWarps + w];
    }
  }
}

template <typename target_t>
__device__ __forceinline__ int64_t read_target(const target_t* t, int64_t i) {
  return static_cast<int64_t>(t[i]);
}

template <typename scalar_t, typename acc_t, typename target_t>
__global__ void stats_kernel(
    const RegionParams<acc_t> P,
    const scalar_t* __restrict__ x,
    const scalar_t* __restrict__ dense_t,
    const target_t* __restrict__ tgt,
    bool class_last,
    int64_t S,
    int64_t chunks,
    acc_t* __restrict__ partial,  // [N * chunks, 3C + 2]
    unsigned long long* __restrict__ first_bad) {
  __shared__ acc_t smem[3 * kWarps];
  const int64_t n = blockIdx.y;
  const int64_t chunk = blockIdx.x;
  const int64_t C = P.C;
  const int64_t s_begin = chunk * kChunk;
  int64_t off[kPixelsPerThread], t[kPixelsPerThread];
  bool valid[kPixelsPerThread];
  acc_t m[kPixelsPerThread], Ssum[kPixelsPerThread];
  acc_t ce_sum = 0, ce_den = 0;
  for (int k = 0; k < kPixelsPerThread; ++k) {
    const int64_t s = s_begin + static_cast<int64_t>(k) * kThreads + threadIdx.x;
    valid[k] = s < S;
    t[k] = -1;
    off[k] = valid[k] ? region_pixel_offset(class_last, n, s, C, S) : 0;
    m[k] = acc_t(0);
    Ssum[k] = acc_t(1);
    if (!valid[k]) {
      continue;
    }
    if (!P.dense && !P.sigmoid) {
      const int64_t tk = read_target(tgt, n * S + s);
      if (tk == P.ignore_index) {
        valid[k] = false;
        continue;
      }
      if (tk < 0 || tk >= C) {
        atomicMin(first_bad, static_cast<unsigned long long>(n * S + s));
        valid[k] = false;
        continue;
      }
      t[k] = tk;
    }
    if (P.sigmoid || (P.none && P.ce_kind == kRegionFocal)) {
      // sigmoid CE/focal per element (activation "none": MONAI's sigmoid focal on the input taken as logits)
      if (P.ce_kind != kRegionNoCe) {
        for (int64_t c = 0; c < C; ++c) {
          const acc_t y = P.dense ? static_cast<acc_t>(dense_t[off[k] + c * P.cs]) : (t[k] == c ? acc_t(1) : acc_t(0));
          acc_t d;
          ce_sum += region_sigmoid_ce(P, c, static_cast<acc_t>(x[off[k] + c * P.cs]), y, d);
        }
        ce_den += static_cast<acc_t>(P.ce_kind == kRegionFocal ? C - P.ce_first_class : C);
      }
    } else {
      acc_t so;
      region_softmax_norm(x + off[k], P.cs, C, t[k], m[k], Ssum[k], so);
      if (P.ce_kind != kRegionNoCe) {
        acc_t H, hh, den;
        ce_sum += region_softmax_ce(
            P, x + off[k], P.dense ? dense_t + off[k] : x + off[k], t[k], m[k], Ssum[k], so, H, hh, den);
        ce_den += den;
      }
    }
  }
  acc_t* out = partial + (n * chunks + chunk) * (3 * C + 2);
  for (int64_t c = 0; c < C; ++c) {
    acc_t si = 0, sp = 0, st = 0;
    for (int k = 0; k < kPixelsPerThread; ++k) {
      if (!valid[k]) {
        continue;
      }
      const acc_t z = static_cast<acc_t>(x[off[k] + c * P.cs]);
      const acc_t p = P.sigmoid ? region_sigmoid(z) : (P.none ? z : math_exp(z - m[k]) / Ssum[k]);
      const acc_t tt = P.dense ? static_cast<acc_t>(dense_t[off[k] + c * P.cs]) : (t[k] == c ? acc_t(1) : acc_t(0));
      acc_t ei, ep, et;
      region_dice_terms(P.squared, P.soft, p, tt, ei, ep, et);
      si += ei;
      sp += ep;
      st += et;
    }
    block_sum3(si, sp, st, smem);
    if (threadIdx.x == 0) {
      out[c] = si;
      out[C + c] = sp;
      out[2 * C + c] = st;
    }
  }
  acc_t unused = 0;
  block_sum3(ce_sum, ce_den, unused, smem);
  if (threadIdx.x == 0) {
    out[3 * C] = ce_sum;
    out[3 * C + 1] = ce_den;
  }
}

template <typename scalar_t, typename acc_t, typename target_t>
__global__ void softmax_grad_kernel(
    const RegionParams<acc_t> P,
    const scalar_t* __restrict__ x,
    const scalar_t* __restrict__ dense_t,
    const target_t* __restrict__ tgt,
    bool class_last,
    int64_t N,
    int64_t S,
    const acc_t* __restrict__ coef,
    const acc_t* __restrict__ ce_coef,
    scalar_t* __restrict__ grad) {
  const int64_t C = P.C;
  const int64_t total = N * S;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i / S, s = i % S;
    const int64_t off = region_pixel_offset(class_last, n, s, C, S);
    const scalar_t* xp = x + off;
    scalar_t* gp = grad + off;
    int64_t t = -1;
    if (!P.dense) {
      t = read_target(tgt, i);
      if (t == P.ignore_index || t < 0 || t >= C) {  // invalid ones were rejected by the stats pass
        for (int64_t c = 0; c < C; ++c) {
          gp[c * P.cs] = scalar_t(0);
        }
        continue;
      }
    }
    const scalar_t* qp = P.dense ? dense_t + off : xp;
    const acc_t* cI = coef + n * 2 * C;
    const acc_t* cP = cI + C;
    const acc_t ce = ce_coef[n];
    acc_t m, Ssum, so;
    region_softmax_norm(xp, P.cs, C, t, m, Ssum, so);
    const acc_t inv_S = acc_t(1) / Ssum;
    acc_t H = 0, hh = 0;
    // with_ce: a softmax CE/focal part; with_fs: MONAI's sigmoid focal part of activation "none"
    const bool focal_sig = P.none && P.ce_kind == kRegionFocal;
    const bool with_ce = P.ce_kind != kRegionNoCe && ce != acc_t(0) && !focal_sig;
    const bool with_fs = focal_sig && ce != acc_t(0);
    if (with_ce) {
      acc_t den;
      region_softmax_ce(P, xp, qp, t, m, Ssum, so, H, hh, den);
    }
    acc_t B = 0;
    if (!P.none) {
      for (int64_t c = 0; c < C; ++c) {
        const acc_t p = math_exp(static_cast<acc_t>(xp[c * P.cs]) - m) * inv_S;
        const acc_t tt = P.dense ? static_cast<acc_t>(qp[c * P.cs]) : (c == t ? acc_t(1) : acc_t(0));
        B += region_dice_a(P.squared, P.soft, p, tt, cI[c], cP[c]) * p;
      }
    }
    const acc_t logS = math_log(Ssum);
    for (int64_t c = 0; c < C; ++c) {
      const acc_t z = static_cast<acc_t>(xp[c * P.cs]);
      const acc_t p = math_exp(z - m) * inv_S;  // softmax p (the CE part's)
      const acc_t tt = P.dense ? static_cast<acc_t>(qp[c * P.cs]) : (c == t ? acc_t(1) : acc_t(0));
      // activation "none": the Dice part's p is the input itself and dp/dz = 1
      const acc_t a = region_dice_a(P.squared, P.soft, P.none ? z : p, tt, cI[c], cP[c]);
      acc_t g = P.none ? a : p * (a - B);
      if (with_fs) {
        acc_t d;
        region_sigmoid_ce(P, c, z, tt, d);
        g += ce * d;
      }
      if (with_ce) {
        acc_t h;
        if (P.smoothing_mode) {
          acc_t unused = 0;
          h = region_ce_h(P, c, t, xp, qp, m, logS, unused);
        } else {
          h = c == t ? hh : acc_t(0);
        }
        g += ce * (h - p * H);
      }
      gp[c * P.cs] = static_cast<scalar_t>(g);
    }
  }
}

template <typename scalar_t, typename acc_t>
__global__ void sigmoid_grad_kernel(
    const RegionParams<acc_t> P,
    const scalar_t* __restrict__ x,
    const scalar_t* __restrict__ y,
    bool class_last,
    int64_t N,
    int64_t S,
    const acc_t* __restrict__ coef,
    const acc_t* __restrict__ ce_coef,
    scalar_t* __restrict__ grad) {
  const int64_t C = P.C;
  const int64_t total = N * C * S;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // i indexes memory: (n, c, s) for NC..., (n, s, c) for channels-last
    const int64_t n = i / (C * S);
    const int64_t r = i % (C * S);
    const int64_t c = class_last ? r % C : r / S;
    const acc_t xv = static_cast<acc_t>(x[i]), yv = static_cast<acc_t>(y[i]);
    const acc_t p = region_sigmoid(xv);
    const acc_t a = region_dice_a(P.squared, P.soft, p, yv, coef[n * 2 * C + c], coef[n * 2 * C + C + c]);
    acc_t g = a * p * (acc_t(1) - p);
    if (P.ce_kind != kRegionNoCe) {
      acc_t d;
      region_sigmoid_ce(P, c, xv, yv, d);
      g += ce_coef[n] * d;
    }
    grad[i] = static_cast<scalar_t>(g);
  }
}

std::tuple<at::Tensor, at::Tensor> region_loss_stats_cuda(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    int64_t activation,
    bool squared_pred,
    int64_t ignore_index,
    int64_t ce_kind,
    double gamma,
    double label_smoothing,
    int64_t ce_first_class,
    bool soft_label,
    double alpha) {
  const RegionLossArgs a = check_region_loss_args(
      "region_loss_stats", input, target, weight, activation, ce_kind, gamma, label_smoothing, ce_first_class, alpha);
  TORCH_CHECK(input.is_cuda(), "region_loss_stats: expected input on a CUDA device, got ", input.device());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const RegionLossLayout l = region_loss_layout(input, target, a);
  if (a.N * a.S == 0) {
    return {
        at::zeros({a.N, 3, a.C}, l.x.options().dtype(l.acc_type)),
        at::zeros({a.N, 2}, l.x.options().dtype(l.acc_type))};
  }
  TORCH_CHECK(a.N <= 65535, "region_loss_stats: at most 65535 samples per call on CUDA, got ", a.N);
  const int64_t chunks = (a.S + kChunk - 1) / kChunk;
  at::Tensor partial = at::empty({a.N, chunks, 3 * a.C + 2}, l.x.options().dtype(l.acc_type));
  at::Tensor first_bad = at::full({1}, a.N * a.S, l.x.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, l.x.scalar_type(), "region_loss_stats_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor w = weight.has_value() ? weight->to(l.acc_type).contiguous() : at::Tensor();
    const RegionParams<acc_t> P = make_region_params<acc_t>(
        a,
        l,
        w.defined() ? w.const_data_ptr<acc_t>() : nullptr,
        ignore_index,
        gamma,
        label_smoothing,
        squared_pred,
        ce_first_class,
        soft_label,
        alpha);
    dispatch_target(a, l.target, [&](auto* tptr) {
      using target_t = std::remove_const_t<std::remove_pointer_t<decltype(tptr)>>;
      const dim3 grid(static_cast<unsigned int>(chunks), static_cast<unsigned int>(a.N));
      stats_kernel<scalar_t, acc_t, target_t><<<grid, kThreads, 0, stream>>>(
          P,
          l.x.const_data_ptr<scalar_t>(),
          a.dense ? l.target.const_data_ptr<scalar_t>() : nullptr,
          tptr,
          a.class_last,
          a.S,
          chunks,
          partial.mutable_data_ptr<acc_t>(),
          reinterpret_cast<unsigned long long*>(first_bad.mutable_data_ptr<int64_t>()));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  if (!a.dense && activation != kActivationSigmoid) {
    // No host synchronisation in a per-step path: an out-of-range class index
    // fails a device-side assertion, as torch's CUDA cross_entropy does (the
    // kernels treat it as ignored meanwhile; the CPU kernel names it).
    at::_assert_async(
        at::eq(first_bad, a.N * a.S).all(),
        "region_loss: target must hold class indices in [0, C) or ignore_index (device-side check; the CPU "
        "kernel names the index and value)");
  }
  const at::Tensor summed = at::sum(partial, at::IntArrayRef{1});
  at::Tensor sums = summed.narrow(1, 0, 3 * a.C).reshape({a.N, 3, a.C}).contiguous();
  at::Tensor ce = summed.narrow(1, 3 * a.C, 2).contiguous();
  return {sums, ce};
}

at::Tensor region_loss_grad_cuda(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    int64_t activation,
    bool squared_pred,
    int64_t ignore_index,
    int64_t ce_kind,
    double gamma,
    double label_smoothing,
    int64_t ce_first_class,
    const at::Tensor& coef,
    const at::Tensor& ce_coef,
    bool soft_label,
    double alpha) {
  const RegionLossArgs a = check_region_loss_args(
      "region_loss_grad", input, target, weight, activation, ce_kind, gamma, label_smoothing, ce_first_class, alpha);
  TORCH_CHECK(input.is_cuda(), "region_loss_grad: expected input on a CUDA device, got ", input.device());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const RegionLossLayout l = region_loss_layout(input, target, a);
  check_region_coef("region_loss_grad", coef, ce_coef, a, l);
  at::Tensor grad = at::empty_like(l.x);
  const int64_t work = a.activation == kActivationSigmoid ? a.N * a.C * a.S : a.N * a.S;
  if (work == 0) {
    return grad;
  }
  const at::Tensor cf = coef.contiguous(), cc = ce_coef.contiguous();
  const int64_t blocks = std::max<int64_t>(
      1, std::min<int64_t>((work + kThreads - 1) / kThreads, 16 * cuda::multiprocessor_count(input.device().index())));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, l.x.scalar_type(), "region_loss_grad_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor w = weight.has_value() ? weight->to(l.acc_type).contiguous() : at::Tensor();
    const RegionParams<acc_t> P = make_region_params<acc_t>(
        a,
        l,
        w.defined() ? w.const_data_ptr<acc_t>() : nullptr,
        ignore_index,
        gamma,
        label_smoothing,
        squared_pred,
        ce_first_class,
        soft_label,
        alpha);
    if (a.activation == kActivationSigmoid) {
      sigmoid_grad_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(
          P,
          l.x.const_data_ptr<scalar_t>(),
          l.target.const_data_ptr<scalar_t>(),
          a.class_last,
          a.N,
          a.S,
          cf.const_data_ptr<acc_t>(),
          cc.const_data_ptr<acc_t>(),
          grad.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      return;
    }
    dispatch_target(a, l.target, [&](auto* tptr) {
      using target_t = std::remove_const_t<std::remove_pointer_t<decltype(tptr)>>;
      softmax_grad_kernel<scalar_t, acc_t, target_t><<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(
          P,
          l.x.const_data_ptr<scalar_t>(),
          a.dense ? l.target.const_data_ptr<scalar_t>() : nullptr,
          tptr,
          a.class_last,
          a.N,
          a.S,
          cf.const_data_ptr<acc_t>(),
          cc.const_data_ptr<acc_t>(),
          grad.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CUDA, m) {
  m.impl("region_loss_stats", &region_loss_stats_cuda);
  m.impl("region_loss_grad", &region_loss_grad_cuda);
}

}  // namespace loss
}  // namespace balancedtorch
