// CUDA kernel of balancedtorch::seesaw_loss (the math: csrc/loss/seesaw_loss.h).
//
// A warp (C <= 1024) or a block of 512 threads (larger C) per row, threads
// striding over the classes, so reads are coalesced. One online pass gives
// the max and the sum of exponentials of the logits (their log-sum-exp); a
// second online pass over the same logits (served from L1/L2) forms the
// shifted logits z' on the fly and their max and sum; a third writes the
// gradient, already scaled for the reduction. No (N, C) or (C, C) temporary.
// Target and cum_samples values are checked on the device and the mean's
// denominator is read through a pointer: no host synchronisation.
#include <algorithm>
#include <limits>
#include <tuple>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/_assert_async.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/reciprocal.h>
#include <ATen/ops/sum.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "loss/seesaw_loss.h"

namespace balancedtorch {
namespace loss {
namespace {

constexpr int kThreads = 256;

template <typename acc_t>
struct Problem {
  int64_t N, C;
  acc_t p, q, log_eps;
  const acc_t* scale;  // device scalar: 1 / denominator for mean (null: 1)
  const acc_t* log_n;  // [C] log max(cum_samples, 1)
  int64_t ignore_index;
  bool grad;
};

// Running max m and sum s of exp(v - m) over the values a thread has seen;
// with `other` the target's value counts towards m only (see target_terms).
template <typename acc_t>
struct Online {
  acc_t m, s;
};

template <typename acc_t>
__device__ __forceinline__ void online_add(Online<acc_t>& st, acc_t v, bool counted) {
  if (v > st.m || v != v) {
    st.s = st.s * math_exp(st.m - v) + (counted ? acc_t(1) : acc_t(0));
    st.m = v;
  } else if (counted && v > -std::numeric_limits<acc_t>::infinity()) {
    st.s += math_exp(v - st.m);
  }
}

template <typename acc_t>
__device__ __forceinline__ Online<acc_t> online_merge(const Online<acc_t>& x, const Online<acc_t>& y) {
  const acc_t neg_inf = -std::numeric_limits<acc_t>::infinity();
  if (x.m == neg_inf) {
    return y;
  }
  if (y.m == neg_inf) {
    return x;
  }
  const acc_t M = (x.m > y.m || x.m != x.m) ? x.m : y.m;
  return {M, x.s * math_exp(x.m - M) + y.s * math_exp(y.m - M)};
}

template <typename acc_t>
__device__ __forceinline__ Online<acc_t> shfl_xor(const Online<acc_t>& st, int offset) {
  return {__shfl_xor_sync(0xffffffffu, st.m, offset), __shfl_xor_sync(0xffffffffu, st.s, offset)};
}

// Merge over a group of TPR threads (a warp, or the block through smem of
// TPR / 32 slots), broadcast to every thread of it.
template <int TPR, typename acc_t>
__device__ __forceinline__ Online<acc_t> group_merge(Online<acc_t> v, Online<acc_t>* smem) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    v = online_merge(v, shfl_xor(v, offset));
  }
  if constexpr (TPR > 32) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) {
      smem[warp] = v;
    }
    __syncthreads();
    v = smem[0];
    for (int w = 1; w < TPR / 32; ++w) {
      v = online_merge(v, smem[w]);
    }
  }
  return v;
}

template <int TPR, typename scalar_t, typename acc_t, typename target_t>
__global__ void rows_kernel(
    Problem<acc_t> P,
    const scalar_t* __restrict__ x,
    const target_t* __restrict__ target,
    scalar_t* __restrict__ grad,
    acc_t* __restrict__ losses) {
  __shared__ Online<acc_t> smem[TPR > 32 ? TPR / 32 : 1];
  constexpr int kRowsPerBlock = TPR >= kThreads ? 1 : kThreads / TPR;
  const int lane = threadIdx.x % TPR;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / TPR;
  if (row >= P.N) {
    return;  // whole groups exit together
  }
  const int64_t C = P.C;
  const scalar_t* xr = x + row * C;
  const int64_t t = static_cast<int64_t>(target[row]);
  if (t == P.ignore_index || t < 0 || t >= C) {  // out-of-range ones fail the device-side check
    if (lane == 0) {
      losses[row] = acc_t(0);
    }
    if (P.grad) {
      for (int64_t c = lane; c < C; c += TPR) {
        grad[row * C + c] = scalar_t(0);
      }
    }
    return;
  }
  const acc_t neg_inf = -std::numeric_limits<acc_t>::infinity();
  // pass 1: log-sum-exp of the logits
  Online<acc_t> st{neg_inf, acc_t(0)};
  for (int64_t c = lane; c < C; c += TPR) {
    online_add(st, static_cast<acc_t>(xr[c]), true);
  }
  st = group_merge<TPR>(st, smem);
  // measured from the max m: y = z - m, log s, z' - m (no rounding at the logits' magnitude)
  const acc_t m = st.m;
  const acc_t log_s = math_log(st.s);
  const acc_t y_t = static_cast<acc_t>(xr[t]) - m;
  const acc_t floor_t = seesaw_floor(y_t, log_s, P.log_eps);
  const acc_t log_n_t = P.log_n[t];
  auto shifted = [&](int64_t c) {
    const acc_t y = static_cast<acc_t>(xr[c]) - m;
    return c == t ? y : y + seesaw_shift(y, log_s, floor_t, P.log_n[c], log_n_t, P.p, P.q);
  };
  // pass 2: max of z' and the sum of exp(z' - max) over the other classes
  Online<acc_t> st2{neg_inf, acc_t(0)};
  for (int64_t c = lane; c < C; c += TPR) {
    online_add(st2, shifted(c), c != t);
  }
  st2 = group_merge<TPR>(st2, smem);
  acc_t lp, pw, u;
  const acc_t S = target_terms(y_t - st2.m, st2.s, acc_t(0), lp, pw, u);
  if (lane == 0) {
    losses[row] = -lp;
  }
  if (!P.grad) {
    return;
  }
  // pass 3: the gradient softmax(z') - onehot, scaled
  const acc_t scale = P.scale ? *P.scale : acc_t(1);
  const acc_t coef = scale / S;
  for (int64_t c = lane; c < C; c += TPR) {
    const acc_t g = c == t ? -(st2.s / S) * scale : math_exp(shifted(c) - st2.m) * coef;
    grad[row * C + c] = static_cast<scalar_t>(g);
  }
}

std::tuple<at::Tensor, at::Tensor> seesaw_loss_cuda(
    const at::Tensor& input,
    const at::Tensor& target,
    const at::Tensor& cum_samples,
    double p,
    double q,
    double eps,
    int64_t ignore_index,
    int64_t reduction,
    bool compute_grad) {
  check_seesaw_loss_args(input, target, cum_samples, p, q, eps, reduction);
  TORCH_CHECK(input.is_cuda(), "seesaw_loss: expected input on a CUDA device, got ", input.device());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t N = input.size(0), C = input.size(1);
  const at::Tensor x = input.contiguous();
  const at::Tensor tgt = target.contiguous();
  const at::ScalarType acc_type = input.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;

  // Value checks on the device (no host synchronisation in a per-step path);
  // the CPU kernel names the index and the value.
  const at::Tensor counts = cum_samples.to(at::kDouble);
  at::_assert_async(
      at::isfinite(counts).logical_and(counts.ge(0.0)).all(),
      "seesaw_loss: cum_samples must be finite and >= 0 (device-side check; the CPU kernel names the index)");
  const at::Tensor log_n = counts.clamp_min(1.0).log().to(acc_type);
  const at::Tensor t64 = tgt.to(at::kLong);
  const at::Tensor valid = t64.ne(ignore_index);
  at::_assert_async(
      valid.logical_not().logical_or(t64.ge(0).logical_and(t64.lt(C))).all(),
      "seesaw_loss: target must hold class indices in [0, C) or ignore_index (device-side check; the CPU kernel "
      "names the index and value)");
  at::Tensor denominator = at::sum(valid, at::kLong).to(acc_type);
  denominator = denominator.masked_fill(denominator.eq(0), std::numeric_limits<double>::quiet_NaN());
  const at::Tensor scale = reduction == kReductionMean ? at::reciprocal(denominator) : at::Tensor();

  at::Tensor grad = compute_grad ? at::empty_like(x) : at::empty({0}, x.options());
  at::Tensor losses = at::empty({N}, x.options().dtype(acc_type));
  if (N > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "seesaw_loss_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      Problem<acc_t> P;
      P.C = C;
      P.p = static_cast<acc_t>(p);
      P.q = static_cast<acc_t>(q);
      P.log_eps = static_cast<acc_t>(std::log(eps));
      P.scale = scale.defined() ? scale.const_data_ptr<acc_t>() : nullptr;
      P.log_n = log_n.const_data_ptr<acc_t>();
      P.ignore_index = ignore_index;
      P.grad = compute_grad;
      const scalar_t* x_ptr = x.const_data_ptr<scalar_t>();
      scalar_t* grad_ptr = compute_grad ? grad.mutable_data_ptr<scalar_t>() : nullptr;
      acc_t* loss_ptr = losses.mutable_data_ptr<acc_t>();
      dispatch_seesaw_target(tgt.scalar_type(), [&](auto* tag) {
        using target_t = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
        const target_t* t_ptr = tgt.const_data_ptr<target_t>();
        // a grid has at most 2^31 - 1 blocks: more rows take several launches
        const int64_t rows_per_block = C <= 1024 ? kThreads / 32 : 1;
        const int64_t rows_per_launch = static_cast<int64_t>(std::numeric_limits<int>::max()) * rows_per_block;
        for (int64_t r0 = 0; r0 < N; r0 += rows_per_launch) {
          Problem<acc_t> Q = P;
          Q.N = std::min(rows_per_launch, N - r0);
          const int64_t off = r0 * C;
          scalar_t* grad_r = grad_ptr != nullptr ? grad_ptr + off : nullptr;
          const auto blocks = static_cast<unsigned int>((Q.N + rows_per_block - 1) / rows_per_block);
          if (C <= 1024) {
            rows_kernel<32, scalar_t, acc_t, target_t>
                <<<blocks, kThreads, 0, stream>>>(Q, x_ptr + off, t_ptr + r0, grad_r, loss_ptr + r0);
          } else {
            rows_kernel<512, scalar_t, acc_t, target_t>
                <<<blocks, 512, 0, stream>>>(Q, x_ptr + off, t_ptr + r0, grad_r, loss_ptr + r0);
          }
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        }
      });
    });
  }
  return {reduce_seesaw_losses(losses, reduction, denominator, input.scalar_type()), grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CUDA, m) {
  m.impl("seesaw_loss", &seesaw_loss_cuda);
}

}  // namespace loss
}  // namespace balancedtorch
