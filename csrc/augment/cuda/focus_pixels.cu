// CUDA kernels of balancedtorch::focus_pixels (see csrc/augment/focus_pixels.h).
//
// Pass 1: a 2-D grid (blocks along the pixels, one row of blocks per sample)
// counts into a per-block shared-memory histogram; each thread keeps a run
// (slot, length) and adds it when the slot changes, so long runs of one class
// (the background) cost one atomic per run rather than one per pixel. Pass 2:
// one block per sample draws the class and rank (thread 0, the same double
// arithmetic as the CPU) and walks the mask in tiles, a block-wide exclusive
// sum of the matches per thread locating the tile and then the thread that
// holds the wanted pixel; the block stops at that tile. No host
// synchronisation after the argument checks.
#include <algorithm>
#include <tuple>

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "augment/focus_pixels.h"
#include "cuda/device_info.h"

namespace balancedtorch {
namespace augment {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Consecutive pixels per thread in a pass-2 tile.
constexpr int kItems = 8;
// 32-bit shared counters: 12K classes use 48 KiB, the default static limit.
constexpr int64_t kMaxSharedClasses = 12 * 1024;
// Pixels per pass-1 block at most, so no 32-bit shared counter can overflow.
constexpr int64_t kMaxPixelsPerBlock = int64_t{1} << 30;
constexpr int64_t kMaxGridY = 65535;

template <typename scalar_t>
__global__ void focus_count_kernel(
    const scalar_t* __restrict__ masks,
    int64_t HW,
    ClassLookup look,
    bool shared_hist,
    unsigned long long* __restrict__ counts) {
  extern __shared__ unsigned int hist[];
  const int64_t b = blockIdx.y;
  const int64_t K = look.K;
  if (shared_hist) {
    for (int64_t c = threadIdx.x; c < K; c += blockDim.x) {
      hist[c] = 0;
    }
    __syncthreads();
  }
  const scalar_t* p = masks + b * HW;
  unsigned long long* out = counts + b * K;
  auto add = [&](int64_t slot, unsigned int n) {
    if (shared_hist) {
      atomicAdd(hist + slot, n);
    } else {
      atomicAdd(out + slot, static_cast<unsigned long long>(n));
    }
  };
  int64_t cur = -1;
  unsigned int run = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < HW; i += stride) {
    const int64_t s = look.slot_of(static_cast<int64_t>(p[i]));
    if (s != cur) {
      if (cur >= 0) {
        add(cur, run);
      }
      cur = s;
      run = 0;
    }
    ++run;
  }
  if (cur >= 0) {
    add(cur, run);
  }
  if (shared_hist) {
    __syncthreads();
    for (int64_t c = threadIdx.x; c < K; c += blockDim.x) {
      if (hist[c] != 0) {
        atomicAdd(out + c, static_cast<unsigned long long>(hist[c]));
      }
    }
  }
}

// Exclusive prefix sum of x over the block (kThreads threads) and the block total.
__device__ __forceinline__ int block_exclusive_sum(int x, int* warp_sums, int& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int incl = x;
  for (int d = 1; d < 32; d <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, incl, d);
    if (lane >= d) {
      incl += y;
    }
  }
  if (lane == 31) {
    warp_sums[warp] = incl;
  }
  __syncthreads();
  int offset = 0;
  total = 0;
  for (int w = 0; w < kWarps; ++w) {
    const int s = warp_sums[w];
    offset += w < warp ? s : 0;
    total += s;
  }
  __syncthreads();  // warp_sums is rewritten by the next call
  return offset + incl - x;
}

template <typename scalar_t>
__global__ void focus_select_kernel(
    const scalar_t* __restrict__ masks,
    int64_t HW,
    const int64_t* __restrict__ classes,
    int64_t K,
    const double* __restrict__ weights,
    const int64_t* __restrict__ counts,
    const double* __restrict__ uniforms,
    const bool* __restrict__ active,
    int64_t* __restrict__ index) {
  __shared__ int warp_sums[kWarps];
  __shared__ int64_t s_slot, s_rank;
  const int64_t b = blockIdx.x;
  if (threadIdx.x == 0) {
    int64_t slot = -1, r = 0;
    if (active[b]) {
      slot = focus_pick_slot(counts + b * K, weights, K, uniforms[2 * b]);
      if (slot >= 0) {
        r = focus_pick_rank(counts[b * K + slot], uniforms[2 * b + 1]);
      }
    }
    s_slot = slot;
    s_rank = r;
    index[b] = -1;
  }
  __syncthreads();
  const int64_t slot = s_slot;
  if (slot < 0) {
    return;
  }
  const scalar_t v = static_cast<scalar_t>(classes[slot]);
  const scalar_t* p = masks + b * HW;
  int64_t remaining = s_rank;  // the same in every thread
  for (int64_t base = 0; base < HW; base += static_cast<int64_t>(kThreads) * kItems) {
    const int64_t first = base + static_cast<int64_t>(threadIdx.x) * kItems;
    int mine = 0;
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      mine += (first + j < HW && p[first + j] == v) ? 1 : 0;
    }
    int total = 0;
    const int before = block_exclusive_sum(mine, warp_sums, total);
    if (remaining < total) {  // uniform: the wanted pixel is in this tile
      if (before <= remaining && remaining < before + mine) {
        int64_t want = remaining - before;
        for (int j = 0; j < kItems; ++j) {
          if (first + j < HW && p[first + j] == v) {
            if (want == 0) {
              index[b] = first + j;
              break;
            }
            --want;
          }
        }
      }
      return;
    }
    remaining -= total;
  }
}

std::tuple<at::Tensor, at::Tensor> focus_pixels_cuda(
    const at::Tensor& masks,
    const at::Tensor& classes,
    const std::optional<at::Tensor>& weights,
    const at::Tensor& uniforms,
    const std::optional<at::Tensor>& active) {
  TORCH_CHECK(masks.is_cuda(), "focus_pixels: expected masks on a CUDA device, got ", masks.device());
  const c10::cuda::CUDAGuard device_guard(masks.device());
  const FocusArgs a = check_focus_args(masks, classes, weights, uniforms, active);
  const int64_t B = a.masks.size(0);
  const int64_t HW = a.masks.size(1) * a.masks.size(2);
  const int64_t K = a.classes.numel();
  at::Tensor counts = at::zeros({B, K}, masks.options().dtype(at::kLong));
  at::Tensor index = at::full({B}, -1, masks.options().dtype(at::kLong));
  if (B == 0 || HW == 0) {
    return {index, counts};
  }
  const ClassLookup look{
      a.lut.defined() ? a.lut.const_data_ptr<int32_t>() : nullptr,
      a.lut_lo,
      a.lut_span,
      a.classes.const_data_ptr<int64_t>(),
      K};
  const bool shared_hist = K <= kMaxSharedClasses;
  const size_t smem = shared_hist ? static_cast<size_t>(K) * sizeof(unsigned int) : 0;
  const int64_t sms = cuda::multiprocessor_count(masks.device().index());
  int64_t bx = std::max<int64_t>((4 * sms + B - 1) / B, (HW + kMaxPixelsPerBlock - 1) / kMaxPixelsPerBlock);
  bx = std::max<int64_t>(1, std::min<int64_t>(bx, (HW + kThreads - 1) / kThreads));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  auto run = [&](auto tag) {
    using scalar_t = decltype(tag);
    const scalar_t* m = a.masks.const_data_ptr<scalar_t>();
    for (int64_t b0 = 0; b0 < B; b0 += kMaxGridY) {
      const int64_t nb = std::min(kMaxGridY, B - b0);
      const dim3 grid(static_cast<unsigned int>(bx), static_cast<unsigned int>(nb));
      focus_count_kernel<scalar_t><<<grid, kThreads, smem, stream>>>(
          m + b0 * HW,
          HW,
          look,
          shared_hist,
          reinterpret_cast<unsigned long long*>(counts.data_ptr<int64_t>() + b0 * K));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    const at::Tensor w = a.weights.defined() ? a.weights : rare_weights(counts);
    focus_select_kernel<scalar_t><<<static_cast<unsigned int>(B), kThreads, 0, stream>>>(
        m,
        HW,
        a.classes.const_data_ptr<int64_t>(),
        K,
        w.const_data_ptr<double>(),
        counts.const_data_ptr<int64_t>(),
        a.uniforms.const_data_ptr<double>(),
        a.active.const_data_ptr<bool>(),
        index.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  switch (a.masks.scalar_type()) {
    case at::kByte:
      run(uint8_t{});
      break;
    case at::kInt:
      run(int32_t{});
      break;
    default:
      run(int64_t{});
      break;
  }
  return {index, counts};
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CUDA, m) {
  m.impl("focus_pixels", &focus_pixels_cuda);
}

}  // namespace augment
}  // namespace balancedtorch
