// CUDA kernel of balancedtorch::class_counts.
//
// One pass over the labels: each block counts into a shared-memory histogram
// (global atomics when the classes do not fit) and flushes it once. Invalid
// labels are reported through the smallest offending flat index, read back
// with one small device-to-host copy so the error can name the value.
#include <algorithm>
#include <optional>

#include <ATen/Dispatch.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/device_info.h"
#include "sampling/class_counts.h"

namespace balancedtorch {
namespace sampling {
namespace {

constexpr int kThreads = 256;
// 32-bit shared counters: 12K classes use 48 KiB, the default static limit.
constexpr int64_t kMaxSharedClasses = 12 * 1024;

template <typename scalar_t>
__global__ void class_counts_kernel(
    const scalar_t* __restrict__ labels,
    int64_t n,
    int64_t num_classes,
    bool has_ignore,
    int64_t ignore_index,
    bool shared_hist,
    unsigned long long* __restrict__ out,
    unsigned long long* __restrict__ first_bad) {
  extern __shared__ unsigned int hist[];
  if (shared_hist) {
    for (int64_t c = threadIdx.x; c < num_classes; c += blockDim.x) {
      hist[c] = 0;
    }
    __syncthreads();
  }
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const scalar_t label = labels[i];
    const LabelKind kind = classify_label(label, num_classes, has_ignore, ignore_index);
    if (kind == LabelKind::kCount) {
      const int64_t c = static_cast<int64_t>(label);
      if (shared_hist) {
        atomicAdd(hist + c, 1u);
      } else {
        atomicAdd(out + c, 1ull);
      }
    } else if (kind == LabelKind::kInvalid) {
      atomicMin(first_bad, static_cast<unsigned long long>(i));
    }
  }
  if (shared_hist) {
    __syncthreads();
    for (int64_t c = threadIdx.x; c < num_classes; c += blockDim.x) {
      if (hist[c] != 0) {
        atomicAdd(out + c, static_cast<unsigned long long>(hist[c]));
      }
    }
  }
}

at::Tensor class_counts_cuda(const at::Tensor& labels, int64_t num_classes, std::optional<int64_t> ignore_index) {
  check_class_counts_args(labels, num_classes);
  TORCH_CHECK(labels.is_cuda(), "class_counts: expected labels on a CUDA device, got ", labels.device());
  const c10::cuda::CUDAGuard device_guard(labels.device());
  at::Tensor out = at::zeros({num_classes}, labels.options().dtype(at::kLong));
  const at::Tensor flat = labels.contiguous();
  const int64_t n = flat.numel();
  if (n == 0) {
    return out;
  }
  const bool check = !labels_always_valid(flat.scalar_type(), num_classes) || ignore_index.has_value();
  at::Tensor first_bad = at::full({1}, n, flat.options().dtype(at::kLong));

  const bool shared_hist = num_classes <= kMaxSharedClasses;
  const size_t smem = shared_hist ? static_cast<size_t>(num_classes) * sizeof(unsigned int) : 0;
  // Enough blocks to fill the device, and enough that no block's 32-bit
  // shared counters can overflow.
  const int64_t per_block_cap = int64_t{1} << 30;
  int64_t blocks = std::max<int64_t>(
      4 * cuda::multiprocessor_count(labels.device().index()), (n + per_block_cap - 1) / per_block_cap);
  blocks = std::min<int64_t>(blocks, (n + kThreads - 1) / kThreads);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_INTEGRAL_TYPES(flat.scalar_type(), "class_counts_cuda", [&] {
    class_counts_kernel<scalar_t><<<static_cast<unsigned int>(blocks), kThreads, smem, stream>>>(
        flat.const_data_ptr<scalar_t>(),
        n,
        num_classes,
        ignore_index.has_value(),
        ignore_index.value_or(0),
        shared_hist,
        reinterpret_cast<unsigned long long*>(out.data_ptr<int64_t>()),
        reinterpret_cast<unsigned long long*>(first_bad.data_ptr<int64_t>()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });

  if (check) {
    // The only host synchronisation: needed to raise on invalid labels.
    const int64_t bad = first_bad.item<int64_t>();
    if (bad < n) {
      raise_invalid_label(bad, flat.view(-1)[bad].item<int64_t>(), num_classes, ignore_index);
    }
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CUDA, m) {
  m.impl("class_counts", &class_counts_cuda);
}

}  // namespace sampling
}  // namespace balancedtorch
