// CUDA kernel of balancedtorch::kcenter_update (see knn/kcenter.h for the
// order of the float64 sum and the argmax's tie rule).
//
// One pass over x, a thread per row (grid-stride): the row's kKCenterLanes
// partial sums with explicitly rounded float64 operations (__dsub_rn,
// __dmul_rn, __dadd_rn: never contracted into an FMA, so the CPU's value bit
// for bit), the new minimum written, and the thread's (max, index) reduced
// over its block in shared memory. A second, one-block kernel reduces the
// blocks' winners into the 0-d index tensor: no host synchronisation.
#include <algorithm>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "knn/kcenter.h"

namespace balancedtorch {
namespace knn {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

__device__ inline void block_argmax(double& v, int64_t& i, double* sv, int64_t* si) {
  const int t = threadIdx.x;
  sv[t] = v;
  si[t] = i;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s && kcenter_better(sv[t + s], si[t + s], sv[t], si[t])) {
      sv[t] = sv[t + s];
      si[t] = si[t + s];
    }
    __syncthreads();
  }
  v = sv[0];
  i = si[0];
}

template <typename scalar_t>
__global__ void kcenter_rows_kernel(
    const scalar_t* __restrict__ x,
    int64_t N,
    int64_t D,
    const double* __restrict__ c,
    const double* __restrict__ old,
    double* __restrict__ out,
    double* __restrict__ block_v,
    int64_t* __restrict__ block_i) {
  __shared__ double sv[kThreads];
  __shared__ int64_t si[kThreads];
  double best = -std::numeric_limits<double>::infinity();
  int64_t bi = kKCenterNone;
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; row < N;
       row += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const scalar_t* p = x + row * D;
    double acc[kKCenterLanes] = {0.0, 0.0, 0.0, 0.0};
    for (int64_t j = 0; j < D; j += kKCenterLanes) {
#pragma unroll
      for (int l = 0; l < kKCenterLanes; ++l) {
        // a missing column of the last group adds 0 on the CPU: skipping it is the same sum
        if (j + l < D) {
          const double diff = __dsub_rn(static_cast<double>(p[j + l]), c[j + l]);
          acc[l] = __dadd_rn(acc[l], __dmul_rn(diff, diff));
        }
      }
    }
    const double d = __dadd_rn(__dadd_rn(acc[0], acc[1]), __dadd_rn(acc[2], acc[3]));
    const double m = kcenter_min(old[row], d);
    out[row] = m;
    if (kcenter_better(m, row, best, bi)) {
      best = m;
      bi = row;
    }
  }
  block_argmax(best, bi, sv, si);
  if (threadIdx.x == 0) {
    block_v[blockIdx.x] = best;
    block_i[blockIdx.x] = bi;
  }
}

__global__ void kcenter_final_kernel(
    const double* __restrict__ block_v, const int64_t* __restrict__ block_i, int blocks, int64_t* __restrict__ index) {
  __shared__ double sv[kThreads];
  __shared__ int64_t si[kThreads];
  double best = -std::numeric_limits<double>::infinity();
  int64_t bi = kKCenterNone;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
    if (kcenter_better(block_v[b], block_i[b], best, bi)) {
      best = block_v[b];
      bi = block_i[b];
    }
  }
  block_argmax(best, bi, sv, si);
  if (threadIdx.x == 0) {
    *index = bi == kKCenterNone ? -1 : bi;
  }
}

std::tuple<at::Tensor, at::Tensor> kcenter_update_cuda(
    const at::Tensor& x, const at::Tensor& center, const at::Tensor& min_dist) {
  check_kcenter_args(x, center, min_dist);
  TORCH_CHECK_VALUE(x.is_cuda(), "kcenter_update: expected x on a CUDA device, got ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  const at::Tensor old = min_dist.contiguous();
  const at::Tensor c = center.to(at::kDouble).contiguous();
  const int64_t N = x.size(0), D = x.size(1);
  at::Tensor out = at::empty({N}, min_dist.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor index = at::empty({}, x.options().dtype(at::kLong));
  const int blocks =
      static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(kMaxBlocks, (N + kThreads - 1) / kThreads)));
  at::Tensor block_v = at::empty({blocks}, x.options().dtype(at::kDouble));
  at::Tensor block_i = at::empty({blocks}, x.options().dtype(at::kLong));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "kcenter_update_cuda", [&] {
    kcenter_rows_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(
        xc.const_data_ptr<scalar_t>(),
        N,
        D,
        c.const_data_ptr<double>(),
        old.const_data_ptr<double>(),
        out.data_ptr<double>(),
        block_v.data_ptr<double>(),
        block_i.data_ptr<int64_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  kcenter_final_kernel<<<1, kThreads, 0, stream>>>(
      block_v.const_data_ptr<double>(), block_i.const_data_ptr<int64_t>(), blocks, index.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out, index};
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CUDA, m) {
  m.impl("kcenter_update", &kcenter_update_cuda);
}

}  // namespace knn
}  // namespace balancedtorch
