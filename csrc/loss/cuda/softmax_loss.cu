// CUDA kernels of balancedtorch::softmax_loss.
//
// Layout [N, C, inner]. inner == 1: a warp (C <= 1024) or a block (larger C)
// per row, threads striding over the classes, so reads are coalesced. inner
// > 1 (NC... segmentation): a thread per pixel looping over the classes;
// neighbouring threads read neighbouring pixels of the same class plane, so
// reads are coalesced there too, with no permute. One online pass gives the
// max, the sum of exponentials and the linear-mode sums; a second pass over
// the same logits (served from L2/L1) writes the gradient, already scaled for
// the reduction. The mean's denominator is computed on the device and read by
// the kernel through a pointer: no host synchronisation for it.
#include <algorithm>
#include <limits>
#include <optional>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/_assert_async.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/eq.h>
#include <ATen/ops/full.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/reciprocal.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/sum.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/device_info.h"
#include "loss/softmax_loss.h"
#include "loss/softmax_loss_args.h"

namespace balancedtorch {
namespace loss {
namespace {

constexpr int kThreads = 256;

template <typename acc_t>
struct Problem {
  int64_t N, C, inner;
  int mode;
  bool soft, grad;
  const acc_t* weight;      // [C] or null
  const acc_t* bias;        // [C] or null (s * logit_bias on the adjusted path)
  const acc_t* mult;        // [C] s * logit_scale (or s), or null (1)
  const acc_t* margin;      // [C] s * margin at the target class, or null (0)
  const acc_t* weight_sum;  // device scalar, sum_c w_c (null: C)
  const acc_t* scale;       // device scalar, 1 / denominator for mean (null: 1)
  int64_t ignore_index;
  acc_t eps, gamma;
  acc_t* prob;  // [rows] softmax p of the target (class indices; 0 where ignored), or null
};

// Running (max, sum of exp, D = sum a (max - z), A = sum a) over a set of classes.
template <typename acc_t>
struct Online {
  acc_t m, s, d, a, all;
};

// s sums exp(z - m) over the classes other than the target (is_target), so
// that 1 - p_t = s / S needs no cancellation (see target_terms). all sums it
// over every class, in an order that does not depend on the target: the
// target probability p_t = exp(z_t - m) / all is then equal for equal logit
// rows whatever their targets (OHEM decides ties on it).
template <typename acc_t>
__device__ __forceinline__ void online_add(Online<acc_t>& st, acc_t z, acc_t a, bool is_target) {
  const acc_t neg_inf = -std::numeric_limits<acc_t>::infinity();
  if (z > st.m || z != z) {
    const acc_t f = math_exp(st.m - z);
    st.s = st.s * f + (is_target ? acc_t(0) : acc_t(1));
    st.all = st.all * f + acc_t(1);
    if (st.a != acc_t(0)) {
      st.d += st.a * (z - st.m);
    }
    st.m = z;
  } else if (z > neg_inf) {
    const acc_t e = math_exp(z - st.m);
    st.all += e;
    if (!is_target) {
      st.s += e;
    }
  }
  if (a != acc_t(0)) {
    st.d += a * (st.m - z);
    st.a += a;
  }
}

template <typename acc_t>
__device__ __forceinline__ Online<acc_t> online_merge(const Online<acc_t>& x, const Online<acc_t>& y) {
  const acc_t neg_inf = -std::numeric_limits<acc_t>::infinity();
  if (x.m == neg_inf && x.a == acc_t(0)) {
    return y;
  }
  if (y.m == neg_inf && y.a == acc_t(0)) {
    return x;
  }
  const acc_t M = (x.m > y.m || x.m != x.m) ? x.m : y.m;
  Online<acc_t> r;
  r.m = M;
  const acc_t fx = x.m > neg_inf ? math_exp(x.m - M) : acc_t(0);
  const acc_t fy = y.m > neg_inf ? math_exp(y.m - M) : acc_t(0);
  r.s = (x.m > neg_inf ? x.s * fx : acc_t(0)) + (y.m > neg_inf ? y.s * fy : acc_t(0));
  r.all = (x.m > neg_inf ? x.all * fx : acc_t(0)) + (y.m > neg_inf ? y.all * fy : acc_t(0));
  r.d = x.d + y.d + (x.a != acc_t(0) ? x.a * (M - x.m) : acc_t(0)) + (y.a != acc_t(0) ? y.a * (M - y.m) : acc_t(0));
  r.a = x.a + y.a;
  return r;
}

template <typename acc_t>
__device__ __forceinline__ acc_t shfl_xor(acc_t v, int offset) {
  return __shfl_xor_sync(0xffffffffu, v, offset);
}

template <typename acc_t>
__device__ __forceinline__ Online<acc_t> shfl_xor(const Online<acc_t>& st, int offset) {
  return {
      shfl_xor(st.m, offset),
      shfl_xor(st.s, offset),
      shfl_xor(st.d, offset),
      shfl_xor(st.a, offset),
      shfl_xor(st.all, offset)};
}

// Reduce v over a group of TPR threads (a warp, or the whole block, through
// smem of TPR / 32 slots) and broadcast the result to every thread of it.
template <int TPR, typename T, typename Combine>
__device__ __forceinline__ T group_reduce(T v, T* smem, Combine combine) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    v = combine(v, shfl_xor(v, offset));
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
      v = combine(v, smem[w]);
    }
  }
  return v;
}

template <int TPR, typename acc_t>
__device__ __forceinline__ Online<acc_t> group_merge(const Online<acc_t>& st, Online<acc_t>* smem) {
  return group_reduce<TPR>(st, smem, [](const Online<acc_t>& x, const Online<acc_t>& y) { return online_merge(x, y); });
}

template <int TPR, typename acc_t>
__device__ __forceinline__ acc_t group_sum(acc_t v, acc_t* smem) {
  return group_reduce<TPR>(v, smem, [](acc_t x, acc_t y) { return x + y; });
}

template <typename acc_t>
__device__ __forceinline__ acc_t weight_at(const Problem<acc_t>& P, int64_t c) {
  return P.weight ? P.weight[c] : acc_t(1);
}

// a_c = w_c * q_c for linear/general modes (q: smoothed one-hot or given).
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ acc_t
coef_a(const Problem<acc_t>& P, int64_t c, int64_t t, const scalar_t* q, int64_t qoff) {
  const acc_t inv_c = acc_t(1) / acc_t(P.C);
  const acc_t qc =
      P.soft ? (acc_t(1) - P.eps) * static_cast<acc_t>(q[qoff]) + P.eps * inv_c : smoothed_q(c == t, P.eps, inv_c);
  return qc * weight_at(P, c);
}

// Per-sample closing arithmetic shared by the row and column kernels: from
// the merged online state, the loss and the gradient coefficients
//   g_c = exp(z_c - m) * coef_e - a_c * lane_scale   (+ fix at the target)
template <typename acc_t>
struct Closing {
  acc_t loss, coef_e, lane_scale, fix, logS, S, p_t;
};

template <typename acc_t>
__device__ __forceinline__ Closing<acc_t> close_sample(
    const Problem<acc_t>& P, const Online<acc_t>& st, int64_t t, acc_t z_t) {
  Closing<acc_t> r;
  const acc_t scale = P.scale ? *P.scale : acc_t(1);
  // the full softmax denominator: s plus the target's own term
  r.S = P.soft ? st.s : st.s + math_exp(z_t - st.m);
  r.logS = math_log(r.S);
  r.p_t = P.soft ? acc_t(0) : target_prob(z_t - st.m, st.all);
  r.lane_scale = scale;
  r.fix = 0;
  r.coef_e = 0;
  if (P.mode == kModeTarget) {
    const acc_t wt = weight_at(P, t);
    acc_t lp, pw, u;
    target_terms(z_t - st.m, st.s, P.gamma, lp, pw, u);
    const acc_t hh = wt * pw * u;
    r.loss = -wt * pw * lp;
    r.coef_e = -hh * scale / r.S;
    r.fix = hh * scale * (st.s / r.S);  // assigned at the target: hh (1 - p_t)
  } else if (P.mode == kModeLinear) {
    if (P.soft) {
      r.loss = st.a * r.logS + st.d;
      r.coef_e = st.a * scale / r.S;
    } else {
      // online sums hold the smoothing part a = eps/C * w only
      const acc_t wt = weight_at(P, t);
      const acc_t W = P.weight_sum ? *P.weight_sum : acc_t(P.C);
      const acc_t At = (acc_t(1) - P.eps) * wt + P.eps / acc_t(P.C) * W;
      r.loss = At * r.logS + (acc_t(1) - P.eps) * wt * (st.m - z_t) + st.d;
      r.coef_e = At * scale / r.S;
      r.fix = -(acc_t(1) - P.eps) * wt * scale;
    }
  } else {
    r.loss = 0;  // general mode: summed in a separate pass
  }
  return r;
}

template <typename scalar_t, typename acc_t>
__device__ __forceinline__ acc_t linear_a(const Problem<acc_t>& P, int64_t c, const scalar_t* q, int64_t qoff) {
  // the part of a_c the online pass accumulates: everything for probability
  // targets, the eps/C smoothing share for class indices
  if (P.soft) {
    return coef_a<scalar_t, acc_t>(P, c, -1, q, qoff);
  }
  return P.eps / acc_t(P.C) * weight_at(P, c);
}

// z_c: the logit with its adjustment, x_c * mult_c + bias_c - margin_c [c == t]
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ acc_t
logit_at(const Problem<acc_t>& P, const scalar_t* x, int64_t off, int64_t c, int64_t t) {
  acc_t z = static_cast<acc_t>(x[off]);
  if (P.mult) {
    z *= P.mult[c];
  }
  if (P.bias) {
    z += P.bias[c];
  }
  if (P.margin && c == t) {
    z -= P.margin[c];
  }
  return z;
}

// General mode, one class: returns its loss term and writes h_c = a pw u.
template <typename acc_t>
__device__ __forceinline__ acc_t
general_terms(const Problem<acc_t>& P, acc_t a, acc_t z, acc_t m, acc_t logS, acc_t& h) {
  acc_t lp = (z - m) - logS;
  lp = lp > acc_t(0) ? acc_t(0) : lp;
  acc_t pw, u;
  focal_terms(lp, P.gamma, pw, u);
  h = a * pw * u;
  return -a * pw * lp;
}

// d loss / d z_c, already scaled for the reduction.
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ acc_t class_grad(
    const Problem<acc_t>& P,
    const Closing<acc_t>& cl,
    acc_t m,
    acc_t z,
    int64_t c,
    int64_t t,
    const scalar_t* q,
    int64_t qoff) {
  acc_t g = math_exp(z - m) * cl.coef_e;
  if (P.mode == kModeLinear) {
    g -= linear_a<scalar_t, acc_t>(P, c, q, qoff) * cl.lane_scale;
    if (c == t) {
      g += cl.fix;
    }
  } else if (P.mode == kModeGeneral) {
    acc_t h;
    general_terms(P, coef_a<scalar_t, acc_t>(P, c, t, q, qoff), z, m, cl.logS, h);
    g += h * cl.lane_scale;
  } else if (c == t) {
    g = cl.fix;  // hh (1 - p_t), formed without cancellation
  }
  return P.mult ? g * P.mult[c] : g;  // dz_c / dx_c = mult_c
}

template <int TPR, typename scalar_t, typename acc_t, typename target_t>
__global__ void rows_kernel(
    Problem<acc_t> P,
    const scalar_t* __restrict__ x,
    const target_t* __restrict__ target,
    const scalar_t* __restrict__ soft,
    scalar_t* __restrict__ grad,
    acc_t* __restrict__ losses) {
  __shared__ Online<acc_t> smem_state[TPR > 32 ? TPR / 32 : 1];
  __shared__ acc_t smem_sum[TPR > 32 ? TPR / 32 : 1];
  constexpr int kRowsPerBlock = TPR >= kThreads ? 1 : kThreads / TPR;
  const int lane = threadIdx.x % TPR;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / TPR;
  if (row >= P.N) {
    return;  // whole groups exit together (TPR > 32 means one row per block)
  }
  const int64_t C = P.C;
  const scalar_t* xr = x + row * C;
  const scalar_t* qr = P.soft ? soft + row * C : nullptr;
  int64_t t = -1;
  if (!P.soft) {
    t = static_cast<int64_t>(target[row]);
    if (t == P.ignore_index || t < 0 || t >= C) {  // invalid ones were rejected on the host
      if (lane == 0) {
        losses[row] = acc_t(0);
        if (P.prob) {
          P.prob[row] = acc_t(0);
        }
      }
      if (P.grad) {
        for (int64_t c = lane; c < C; c += TPR) {
          grad[row * C + c] = scalar_t(0);
        }
      }
      return;
    }
  }
  const bool linear = P.mode == kModeLinear;
  Online<acc_t> st{-std::numeric_limits<acc_t>::infinity(), acc_t(0), acc_t(0), acc_t(0), acc_t(0)};
  for (int64_t c = lane; c < C; c += TPR) {
    online_add(st, logit_at(P, xr, c, c, t), linear ? linear_a<scalar_t, acc_t>(P, c, qr, c) : acc_t(0), c == t);
  }
  st = group_merge<TPR>(st, smem_state);
  const acc_t z_t = P.soft ? acc_t(0) : logit_at(P, xr, t, t, t);
  Closing<acc_t> cl = close_sample(P, st, t, z_t);
  if (P.mode == kModeGeneral) {
    acc_t loss_part = 0, h_part = 0;
    for (int64_t c = lane; c < C; c += TPR) {
      acc_t h;
      loss_part +=
          general_terms(P, coef_a<scalar_t, acc_t>(P, c, t, qr, c), logit_at(P, xr, c, c, t), st.m, cl.logS, h);
      h_part += h;
    }
    cl.loss = group_sum<TPR>(loss_part, smem_sum);
    cl.coef_e = -group_sum<TPR>(h_part, smem_sum) * cl.lane_scale / cl.S;
  }
  if (lane == 0) {
    losses[row] = cl.loss;
    if (P.prob) {
      P.prob[row] = cl.p_t;
    }
  }
  if (!P.grad) {
    return;
  }
  for (int64_t c = lane; c < C; c += TPR) {
    grad[row * C + c] = static_cast<scalar_t>(class_grad(P, cl, st.m, logit_at(P, xr, c, c, t), c, t, qr, c));
  }
}

template <typename scalar_t, typename acc_t, typename target_t>
__global__ void columns_kernel(
    Problem<acc_t> P,
    const scalar_t* __restrict__ x,
    const target_t* __restrict__ target,
    const scalar_t* __restrict__ soft,
    scalar_t* __restrict__ grad,
    acc_t* __restrict__ losses) {
  const int64_t pix = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t inner = P.inner, C = P.C;
  if (pix >= P.N * inner) {
    return;
  }
  const int64_t n = pix / inner, i = pix % inner;
  const int64_t base = n * C * inner + i;
  int64_t t = -1;
  if (!P.soft) {
    t = static_cast<int64_t>(target[pix]);
    if (t == P.ignore_index || t < 0 || t >= C) {
      losses[pix] = acc_t(0);
      if (P.prob) {
        P.prob[pix] = acc_t(0);
      }
      if (P.grad) {
        for (int64_t c = 0; c < C; ++c) {
          grad[base + c * inner] = scalar_t(0);
        }
      }
      return;
    }
  }
  const bool linear = P.mode == kModeLinear;
  Online<acc_t> st{-std::numeric_limits<acc_t>::infinity(), acc_t(0), acc_t(0), acc_t(0), acc_t(0)};
  for (int64_t c = 0; c < C; ++c) {
    const int64_t off = base + c * inner;
    online_add(st, logit_at(P, x, off, c, t), linear ? linear_a<scalar_t, acc_t>(P, c, soft, off) : acc_t(0), c == t);
  }
  const acc_t z_t = P.soft ? acc_t(0) : logit_at(P, x, base + t * inner, t, t);
  Closing<acc_t> cl = close_sample(P, st, t, z_t);
  if (P.mode == kModeGeneral) {
    acc_t H = 0, loss = 0;
    for (int64_t c = 0; c < C; ++c) {
      const int64_t off = base + c * inner;
      acc_t h;
      loss +=
          general_terms(P, coef_a<scalar_t, acc_t>(P, c, t, soft, off), logit_at(P, x, off, c, t), st.m, cl.logS, h);
      H += h;
    }
    cl.loss = loss;
    cl.coef_e = -H * cl.lane_scale / cl.S;
  }
  losses[pix] = cl.loss;
  if (P.prob) {
    P.prob[pix] = cl.p_t;
  }
  if (!P.grad) {
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    const int64_t off = base + c * inner;
    grad[off] = static_cast<scalar_t>(class_grad(P, cl, st.m, logit_at(P, x, off, c, t), c, t, soft, off));
  }
}

// Per-block partial sums of w[target] over non-ignored targets, and the
// smallest flat index of an out-of-range target.
template <typename target_t, typename acc_t>
__global__ void target_denominator_kernel(
    const target_t* __restrict__ target,
    int64_t count,
    int64_t C,
    int64_t ignore_index,
    const acc_t* __restrict__ weight,
    acc_t* __restrict__ partial,
    unsigned long long* __restrict__ first_bad) {
  __shared__ acc_t smem[kThreads / 32];
  acc_t sum = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const int64_t t = static_cast<int64_t>(target[i]);
    if (t == ignore_index) {
      continue;
    }
    if (t < 0 || t >= C) {
      atomicMin(first_bad, static_cast<unsigned long long>(i));
      continue;
    }
    sum += weight ? weight[t] : acc_t(1);
  }
  sum = group_sum<kThreads>(sum, smem);
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = sum;
  }
}

// softmax_loss, and with want_prob (class-index targets) also the softmax
// probability of each sample's target (see the CPU file).
std::tuple<at::Tensor, at::Tensor, at::Tensor> softmax_loss_cuda_impl(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& logit_bias,
    int64_t ignore_index,
    double label_smoothing,
    double gamma,
    int64_t reduction,
    bool compute_grad,
    bool want_prob,
    const std::optional<at::Tensor>& logit_scale,
    const std::optional<at::Tensor>& margin,
    double scale) {
  const SoftmaxLossArgs args = check_softmax_loss_args(
      input, target, weight, logit_bias, ignore_index, label_smoothing, gamma, reduction, logit_scale, margin, scale);
  TORCH_CHECK(input.is_cuda(), "softmax_loss: expected input on a CUDA device, got ", input.device());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  // before any allocation; a ValueError naming the argument (probabilities have no "target class")
  TORCH_CHECK_VALUE(
      !want_prob || !args.soft,
      "softmax_loss_target_prob: target must hold class indices (p_t is the probability of each "
      "sample's class), got probabilities of dtype ",
      target.scalar_type());
  SoftmaxLossLayout layout = softmax_loss_layout(input, target, args, compute_grad);
  const at::Tensor& x = layout.x;
  const at::Tensor& tgt = layout.target;
  const bool row_layout = layout.row_layout;
  at::Tensor& grad = layout.grad;
  at::Tensor& losses = layout.losses;
  const at::ScalarType acc_type = layout.acc_type;
  const int64_t rows = layout.rows;
  at::Tensor prob = at::empty({want_prob ? rows : 0}, losses.options());
  const at::Tensor wacc = weight.has_value() ? weight->to(acc_type).contiguous() : at::Tensor();
  // the adjusted path folds s into the per-class vectors (on the device, no sync)
  const double s = args.adjusted ? scale : 1.0;
  const at::Tensor bacc = !logit_bias.has_value() ? at::Tensor()
                          : s == 1.0              ? logit_bias->to(acc_type).contiguous()
                                                  : at::mul(logit_bias->to(at::kDouble), s).to(acc_type).contiguous();
  const at::Tensor macc = logit_scale.has_value() ? at::mul(logit_scale->to(at::kDouble), s).to(acc_type).contiguous()
                          : s != 1.0              ? at::full({args.C}, s, x.options().dtype(acc_type))
                                                  : at::Tensor();
  const at::Tensor gacc =
      margin.has_value() ? at::mul(margin->to(at::kDouble), s).to(acc_type).contiguous() : at::Tensor();
  const at::Tensor wsum = wacc.defined() ? at::sum(wacc) : at::Tensor();

  at::Tensor denominator;
  if (args.soft) {
    denominator = at::scalar_tensor(static_cast<double>(rows), losses.options());
  } else if (rows == 0) {
    denominator = at::scalar_tensor(mean_denominator(0.0), losses.options());
  } else {
    const int64_t blocks =
        std::min<int64_t>((rows + kThreads - 1) / kThreads, 4 * cuda::multiprocessor_count(input.device().index()));
    at::Tensor partial = at::empty({blocks}, losses.options());
    at::Tensor first_bad = at::full({1}, rows, tgt.options().dtype(at::kLong));
    AT_DISPATCH_FLOATING_TYPES(acc_type, "softmax_loss_denominator", [&] {
      dispatch_target_type(tgt.scalar_type(), [&](auto* tag) {
        using target_t = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
        target_denominator_kernel<target_t, scalar_t><<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(
            tgt.const_data_ptr<target_t>(),
            rows,
            args.C,
            ignore_index,
            wacc.defined() ? wacc.const_data_ptr<scalar_t>() : nullptr,
            partial.mutable_data_ptr<scalar_t>(),
            reinterpret_cast<unsigned long long*>(first_bad.mutable_data_ptr<int64_t>()));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
    // No host synchronisation in a per-step path: an out-of-range class index
    // fails a device-side assertion, as torch's own CUDA cross_entropy does
    // (the CPU kernel names the index and value; so does this one under
    // CUDA_LAUNCH_BLOCKING=1 on the CPU copy). The kernels below treat such a
    // target as ignored, so nothing reads outside the logits meanwhile.
    at::_assert_async(
        at::eq(first_bad, rows).all(),
        "softmax_loss: target must hold class indices in [0, C) or ignore_index (device-side check; the CPU "
        "kernel names the index and value)");
    denominator = mean_denominator(at::sum(partial));
  }
  const at::Tensor mean_scale = reduction == kReductionMean ? at::reciprocal(denominator) : at::Tensor();

  if (rows > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softmax_loss_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      Problem<acc_t> P;
      P.N = layout.kernel_n;
      P.C = args.C;
      P.inner = layout.kernel_inner;
      P.mode = args.mode;
      P.soft = args.soft;
      P.grad = compute_grad;
      P.weight = wacc.defined() ? wacc.const_data_ptr<acc_t>() : nullptr;
      P.bias = bacc.defined() ? bacc.const_data_ptr<acc_t>() : nullptr;
      P.mult = macc.defined() ? macc.const_data_ptr<acc_t>() : nullptr;
      P.margin = gacc.defined() ? gacc.const_data_ptr<acc_t>() : nullptr;
      P.weight_sum = wsum.defined() ? wsum.const_data_ptr<acc_t>() : nullptr;
      P.scale = mean_scale.defined() ? mean_scale.const_data_ptr<acc_t>() : nullptr;
      P.ignore_index = ignore_index;
      P.eps = static_cast<acc_t>(label_smoothing);
      P.gamma = static_cast<acc_t>(gamma);
      P.prob = want_prob ? prob.mutable_data_ptr<acc_t>() : nullptr;
      const scalar_t* soft_ptr = args.soft ? tgt.const_data_ptr<scalar_t>() : nullptr;
      scalar_t* grad_ptr = compute_grad ? grad.mutable_data_ptr<scalar_t>() : nullptr;
      acc_t* loss_ptr = losses.mutable_data_ptr<acc_t>();
      auto launch = [&](auto* target_ptr) {
        using target_t = std::remove_const_t<std::remove_pointer_t<decltype(target_ptr)>>;
        if (row_layout) {
          // A block holds kThreads / 32 rows (a warp each, C <= 1024) or one
          // row; a grid has at most 2^31 - 1 blocks, so inputs of more rows
          // than that take several launches.
          const int64_t rows_per_block = args.C <= 1024 ? kThreads / 32 : 1;
          const int64_t rows_per_launch = static_cast<int64_t>(std::numeric_limits<int>::max()) * rows_per_block;
          const scalar_t* x_ptr = x.const_data_ptr<scalar_t>();
          for (int64_t r0 = 0; r0 < layout.kernel_n; r0 += rows_per_launch) {
            Problem<acc_t> Q = P;
            Q.N = std::min(rows_per_launch, layout.kernel_n - r0);
            Q.prob = P.prob != nullptr ? P.prob + r0 : nullptr;
            const int64_t off = r0 * args.C;
            const target_t* t_r = target_ptr != nullptr ? target_ptr + r0 : nullptr;
            const scalar_t* soft_r = soft_ptr != nullptr ? soft_ptr + off : nullptr;
            scalar_t* grad_r = grad_ptr != nullptr ? grad_ptr + off : nullptr;
            const int64_t blocks = (Q.N + rows_per_block - 1) / rows_per_block;
            if (args.C <= 1024) {
              rows_kernel<32, scalar_t, acc_t, target_t><<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(
                  Q, x_ptr + off, t_r, soft_r, grad_r, loss_ptr + r0);
            } else {
              rows_kernel<512, scalar_t, acc_t, target_t><<<static_cast<unsigned int>(blocks), 512, 0, stream>>>(
                  Q, x_ptr + off, t_r, soft_r, grad_r, loss_ptr + r0);
            }
            C10_CUDA_KERNEL_LAUNCH_CHECK();
          }
        } else {
          // a thread per pixel: 2^31 - 1 blocks cover 2^39 pixels, more
          // logits than any device holds
          const int64_t blocks = (rows + kThreads - 1) / kThreads;
          columns_kernel<scalar_t, acc_t, target_t><<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(
              P, x.const_data_ptr<scalar_t>(), target_ptr, soft_ptr, grad_ptr, loss_ptr);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        }
      };
      if (args.soft) {
        launch(static_cast<const int64_t*>(nullptr));
      } else {
        dispatch_target_type(tgt.scalar_type(), [&](auto* tag) {
          using target_t = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
          launch(tgt.const_data_ptr<target_t>());
        });
      }
    });
  }
  if (want_prob) {
    prob = prob.view(per_sample_shape(input));
  }
  return {reduce_losses(losses, args, reduction, denominator, input), grad, prob};
}

std::tuple<at::Tensor, at::Tensor> softmax_loss_cuda(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& logit_bias,
    int64_t ignore_index,
    double label_smoothing,
    double gamma,
    int64_t reduction,
    bool compute_grad,
    const std::optional<at::Tensor>& logit_scale,
    const std::optional<at::Tensor>& margin,
    double scale) {
  auto [loss, grad, prob] = softmax_loss_cuda_impl(
      input,
      target,
      weight,
      logit_bias,
      ignore_index,
      label_smoothing,
      gamma,
      reduction,
      compute_grad,
      /*want_prob=*/false,
      logit_scale,
      margin,
      scale);
  return {loss, grad};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> softmax_loss_target_prob_cuda(
    const at::Tensor& input, const at::Tensor& target, int64_t ignore_index, bool compute_grad) {
  return softmax_loss_cuda_impl(
      input,
      target,
      std::nullopt,
      std::nullopt,
      ignore_index,
      0.0,
      0.0,
      kReductionNone,
      compute_grad,
      /*want_prob=*/true,
      /*logit_scale=*/std::nullopt,
      /*margin=*/std::nullopt,
      /*scale=*/1.0);
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CUDA, m) {
  m.impl("softmax_loss", &softmax_loss_cuda);
  m.impl("softmax_loss_target_prob", &softmax_loss_target_prob_cuda);
}

}  // namespace loss
}  // namespace balancedtorch
