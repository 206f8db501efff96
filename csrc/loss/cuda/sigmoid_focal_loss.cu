// CUDA kernel of balancedtorch::sigmoid_focal_loss: one grid-stride pass
// reading the logits and targets once and writing the gradient once (scaled
// for the reduction); reduced losses go through per-block partial sums, so
// the result is deterministic.
#include <algorithm>
#include <optional>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/div.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/device_info.h"
#include "loss/sigmoid_focal_loss_args.h"
#include "loss/softmax_loss.h"

namespace balancedtorch {
namespace loss {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t, typename acc_t>
__global__ void sigmoid_focal_loss_kernel(
    const scalar_t* __restrict__ x,
    const scalar_t* __restrict__ y,
    const acc_t* __restrict__ pos_weight,
    int64_t n,
    int64_t C,
    int64_t inner,
    acc_t alpha,
    acc_t gamma,
    acc_t scale,
    scalar_t* __restrict__ grad,
    scalar_t* __restrict__ losses,
    acc_t* __restrict__ partial) {
  __shared__ acc_t smem[kThreads / 32];
  acc_t sum = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    acc_t g;
    // element i (memory order) has pos_weight[(i / inner) % C] (see sigmoid_focal_pos_weight_inner)
    const acc_t pw = pos_weight ? pos_weight[(inner == 1 ? i : i / inner) % C] : acc_t(1);
    const acc_t l = sigmoid_focal_element(static_cast<acc_t>(x[i]), static_cast<acc_t>(y[i]), alpha, gamma, pw, g);
    if (grad) {
      grad[i] = static_cast<scalar_t>(g * scale);
    }
    if (losses) {
      losses[i] = static_cast<scalar_t>(l);
    }
    sum += l;
  }
  if (partial) {
    for (int offset = 16; offset > 0; offset >>= 1) {
      sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
      smem[warp] = sum;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      acc_t total = 0;
      for (int w = 0; w < kThreads / 32; ++w) {
        total += smem[w];
      }
      partial[blockIdx.x] = total;
    }
  }
}

std::tuple<at::Tensor, at::Tensor> sigmoid_focal_loss_cuda(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& pos_weight,
    double alpha,
    double gamma,
    int64_t reduction,
    bool compute_grad) {
  check_sigmoid_focal_loss_args(input, target, pos_weight, alpha, gamma, reduction);
  TORCH_CHECK(input.is_cuda(), "sigmoid_focal_loss: expected input on a CUDA device, got ", input.device());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const at::MemoryFormat out_format = sigmoid_focal_output_format(input);
  const at::Tensor x = input.contiguous(out_format);
  const at::Tensor y = target.contiguous(out_format);
  const int64_t n = x.numel();
  const int64_t C = sigmoid_focal_classes(x);
  const int64_t inner = sigmoid_focal_pos_weight_inner(x, out_format);
  const auto out_opts = x.options().memory_format(out_format);
  at::Tensor grad = compute_grad ? at::empty(x.sizes(), out_opts) : at::empty({0}, x.options());
  const at::ScalarType acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const bool none = reduction == kReductionNone;
  at::Tensor losses = none ? at::empty(x.sizes(), out_opts) : at::Tensor();
  const int64_t blocks = std::max<int64_t>(
      1, std::min<int64_t>((n + kThreads - 1) / kThreads, 8 * cuda::multiprocessor_count(input.device().index())));
  at::Tensor partial = none ? at::Tensor() : at::zeros({blocks}, x.options().dtype(acc_type));
  const at::Tensor pw = pos_weight.has_value() ? pos_weight->to(acc_type).contiguous() : at::Tensor();

  if (n > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "sigmoid_focal_loss_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const acc_t scale = reduction == kReductionMean ? static_cast<acc_t>(1.0 / static_cast<double>(n)) : acc_t(1);
      sigmoid_focal_loss_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(),
          y.const_data_ptr<scalar_t>(),
          pw.defined() ? pw.const_data_ptr<acc_t>() : nullptr,
          n,
          C,
          inner,
          static_cast<acc_t>(alpha),
          static_cast<acc_t>(gamma),
          scale,
          compute_grad ? grad.mutable_data_ptr<scalar_t>() : nullptr,
          none ? losses.mutable_data_ptr<scalar_t>() : nullptr,
          none ? nullptr : partial.mutable_data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  if (compute_grad) {
    grad = grad.contiguous(out_format);
  }
  if (none) {
    return {losses.contiguous(out_format), grad};
  }
  at::Tensor total = at::sum(partial);
  if (reduction == kReductionMean) {
    total = at::div(total, static_cast<double>(n));
  }
  return {total.to(x.scalar_type()), grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CUDA, m) {
  m.impl("sigmoid_focal_loss", &sigmoid_focal_loss_cuda);
}

}  // namespace loss
}  // namespace balancedtorch
