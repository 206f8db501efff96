// CUDA kernels of balancedtorch::affine_color and affine_mask.
//
// One thread per output pixel: source position, all channels sampled (the
// taps of neighbouring threads share cache lines), colour chain, normalise,
// one write per channel (coalesced along the output row). Contrast's mean
// grey per image comes from a pre-pass that reads the same taps and reduces
// per block into one double atomic per block; no host synchronisation.
#include <limits>

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "augment/affine_color.h"
#include "augment/affine_color_args.h"
#include "cuda/device_info.h"

namespace balancedtorch {
namespace augment {
namespace {

constexpr int kThreads = 256;

struct OutLayout {
  int64_t sB, sC, sH, sW;
};

// Output pixel (x, y) of one image: the warp of the input, or of its resized crop.
template <int C, typename in_t, bool U8 = std::is_same_v<in_t, uint8_t>>
__device__ __forceinline__ void warp_sample(
    const Loader<in_t>& load,
    const Frame& fr,
    const float* t,
    const float* box,
    int oh,
    int ow,
    int x,
    int y,
    int64_t mode,
    bool has_fill,
    float fill,
    float* v) {
  float ix, iy;
  if (box != nullptr) {
    const Frame fr2 = make_frame(oh, ow, oh, ow);
    source_position(t, fr2, x, y, ix, iy);
    sample<C>(resized_crop(load, box, fr.H, fr.W, oh, ow, mode, U8), fr2, ix, iy, mode, has_fill, fill, v);
  } else {
    source_position(t, fr, x, y, ix, iy);
    sample<C>(load, fr, ix, iy, mode, has_fill, fill, v);
  }
}

template <typename in_t, int C>
__global__ void contrast_sum_kernel(
    const in_t* __restrict__ in,
    int64_t sB,
    int64_t sC,
    int64_t sH,
    int64_t sW,
    int oh,
    int ow,
    Frame fr,
    const float* __restrict__ theta,
    const float* __restrict__ crop,
    const float* __restrict__ colour,
    int64_t mode,
    float fill,
    double* __restrict__ sums) {
  const int b = blockIdx.y;
  const bool has_fill = !isnan(fill);
  if (colour[6 * b + 1] == 1.f) {
    return;
  }
  const Loader<in_t> load{in + b * sB, sC, sH, sW};
  const float* t = theta + 6 * b;
  const int64_t n = static_cast<int64_t>(oh) * ow;
  float s = 0.f;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < n;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int y = static_cast<int>(p / ow), x = static_cast<int>(p % ow);
    float v[C];
    warp_sample<C>(load, fr, t, crop == nullptr ? nullptr : crop + 4 * b, oh, ow, x, y, mode, has_fill, fill, v);
    s += contrast_grey<C, std::is_same_v<in_t, uint8_t>>(v, colour + 6 * b);
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    s += __shfl_down_sync(0xffffffffu, s, offset);
  }
  __shared__ float warp_sums[kThreads / 32];
  if ((threadIdx.x & 31) == 0) {
    warp_sums[threadIdx.x >> 5] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int w = 0; w < kThreads / 32; ++w) {
      total += warp_sums[w];
    }
    atomicAdd(sums + b, total);
  }
}

template <typename in_t, typename out_t, int C>
__global__ void affine_color_kernel(
    const in_t* __restrict__ in,
    int64_t sB,
    int64_t sC,
    int64_t sH,
    int64_t sW,
    out_t* __restrict__ out,
    OutLayout ol,
    int64_t B,
    int oh,
    int ow,
    Frame fr,
    const float* __restrict__ theta,
    const float* __restrict__ crop,
    const float* __restrict__ colour,
    const double* __restrict__ sums,
    const float* __restrict__ mean,
    const float* __restrict__ inv_std,
    int64_t mode,
    float fill) {
  const int64_t per_image = static_cast<int64_t>(oh) * ow;
  const int64_t total = B * per_image;
  const bool has_fill = !isnan(fill);
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < total;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = p / per_image;
    const int64_t r = p - b * per_image;
    const int y = static_cast<int>(r / ow), x = static_cast<int>(r % ow);
    const Loader<in_t> load{in + b * sB, sC, sH, sW};
    float v[C];
    warp_sample<C>(
        load, fr, theta + 6 * b, crop == nullptr ? nullptr : crop + 4 * b, oh, ow, x, y, mode, has_fill, fill, v);
    const float cm = colour != nullptr ? static_cast<float>(sums[b]) / static_cast<float>(per_image) : 0.f;
    finish_pixel<C, std::is_same_v<in_t, uint8_t>>(v, colour == nullptr ? nullptr : colour + 6 * b, cm);
    out_t* dst = out + b * ol.sB + y * ol.sH + x * ol.sW;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      dst[c * ol.sC] = static_cast<out_t>((v[c] - mean[c]) * inv_std[c]);
    }
  }
}

template <typename scalar_t>
__global__ void affine_mask_kernel(
    const scalar_t* __restrict__ in,
    int64_t sB,
    int64_t sH,
    int64_t sW,
    scalar_t* __restrict__ out,
    int64_t B,
    int oh,
    int ow,
    Frame fr,
    const float* __restrict__ theta,
    const float* __restrict__ boxes,
    scalar_t fill) {
  const int64_t per_image = static_cast<int64_t>(oh) * ow;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < B * per_image;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = p / per_image;
    const int64_t r = p - b * per_image;
    float ix, iy;
    int64_t src;
    if (boxes != nullptr) {
      const Frame fr2 = make_frame(oh, ow, oh, ow);
      source_position(theta + 6 * b, fr2, static_cast<int>(r % ow), static_cast<int>(r / ow), ix, iy);
      src = nearest_offset_crop(fr2, ix, iy, boxes + 4 * b, fr.H, fr.W, sH, sW);
    } else {
      source_position(theta + 6 * b, fr, static_cast<int>(r % ow), static_cast<int>(r / ow), ix, iy);
      src = nearest_offset(fr, ix, iy, sH, sW);
    }
    out[p] = src >= 0 ? in[b * sB + src] : fill;
  }
}

int blocks_for(int64_t work, c10::DeviceIndex device) {
  const int64_t max_blocks = static_cast<int64_t>(cuda::multiprocessor_count(device)) * 16;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((work + kThreads - 1) / kThreads, max_blocks)));
}

template <typename in_t, typename out_t, int C>
void launch(const at::Tensor& images, const ImageArgs& a, at::Tensor& out, int64_t mode, float fill) {
  const int64_t B = images.size(0);
  const int oh = static_cast<int>(out.size(2)), ow = static_cast<int>(out.size(3));
  const Frame fr = make_frame(images.size(2), images.size(3), oh, ow);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const auto dev = images.device().index();
  const in_t* in = images.const_data_ptr<in_t>();
  at::Tensor sums;
  if (a.colour.defined()) {
    sums = at::zeros({B}, images.options().dtype(at::kDouble));
    const int per_image_blocks = std::max(1, std::min(blocks_for(static_cast<int64_t>(oh) * ow, dev), 65535));
    for (int64_t b0 = 0; b0 < B; b0 += 65535) {
      const int nb = static_cast<int>(std::min<int64_t>(65535, B - b0));
      contrast_sum_kernel<in_t, C><<<dim3(per_image_blocks, nb), kThreads, 0, stream>>>(
          in + b0 * images.stride(0),
          images.stride(0),
          images.stride(1),
          images.stride(2),
          images.stride(3),
          oh,
          ow,
          fr,
          a.theta.const_data_ptr<float>() + 6 * b0,
          a.crop.defined() ? a.crop.const_data_ptr<float>() + 4 * b0 : nullptr,
          a.colour.const_data_ptr<float>() + 6 * b0,
          mode,
          fill,
          sums.mutable_data_ptr<double>() + b0);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  }
  const OutLayout ol{out.stride(0), out.stride(1), out.stride(2), out.stride(3)};
  affine_color_kernel<in_t, out_t, C><<<blocks_for(B * oh * ow, dev), kThreads, 0, stream>>>(
      in,
      images.stride(0),
      images.stride(1),
      images.stride(2),
      images.stride(3),
      out.mutable_data_ptr<out_t>(),
      ol,
      B,
      oh,
      ow,
      fr,
      a.theta.const_data_ptr<float>(),
      a.crop.defined() ? a.crop.const_data_ptr<float>() : nullptr,
      a.colour.defined() ? a.colour.const_data_ptr<float>() : nullptr,
      a.colour.defined() ? sums.const_data_ptr<double>() : nullptr,
      a.mean.const_data_ptr<float>(),
      a.inv_std.const_data_ptr<float>(),
      mode,
      fill);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor affine_color_cuda(
    const at::Tensor& images,
    const at::Tensor& theta,
    const std::optional<at::Tensor>& colour,
    const std::optional<at::Tensor>& crop,
    const std::optional<at::Tensor>& mean,
    const std::optional<at::Tensor>& std_,
    int64_t out_h,
    int64_t out_w,
    int64_t interpolation,
    std::optional<double> fill,
    at::ScalarType out_dtype) {
  const c10::cuda::CUDAGuard guard(images.device());
  const ImageArgs a = check_image_args(images, theta, colour, crop, mean, std_, out_h, out_w, interpolation, out_dtype);
  const int64_t B = images.size(0), C = images.size(1);
  at::Tensor out =
      at::empty({B, C, out_h, out_w}, images.options().dtype(out_dtype).memory_format(images.suggest_memory_format()));
  if (B == 0) {
    return out;
  }
  const float f =
      fill.has_value() ? static_cast<float>(*fill) : std::numeric_limits<float>::quiet_NaN();  // NaN: zeros padding
  dispatch_affine_color(images.scalar_type(), out_dtype, C, [&](auto in_tag, auto out_tag, auto channels) {
    launch<decltype(in_tag), decltype(out_tag), decltype(channels)::value>(images, a, out, interpolation, f);
  });
  return out;
}

template <typename scalar_t>
void launch_mask(const at::Tensor& masks, const at::Tensor& t, const at::Tensor& crop, at::Tensor& out, int64_t fill) {
  const int64_t B = masks.size(0);
  const int oh = static_cast<int>(out.size(1)), ow = static_cast<int>(out.size(2));
  const Frame fr = make_frame(masks.size(1), masks.size(2), oh, ow);
  affine_mask_kernel<scalar_t>
      <<<blocks_for(B * oh * ow, masks.device().index()), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          masks.const_data_ptr<scalar_t>(),
          masks.stride(0),
          masks.stride(1),
          masks.stride(2),
          out.mutable_data_ptr<scalar_t>(),
          B,
          oh,
          ow,
          fr,
          t.const_data_ptr<float>(),
          crop.defined() ? crop.const_data_ptr<float>() : nullptr,
          static_cast<scalar_t>(fill));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor affine_mask_cuda(
    const at::Tensor& masks,
    const at::Tensor& theta,
    const std::optional<at::Tensor>& crop_in,
    int64_t out_h,
    int64_t out_w,
    int64_t fill) {
  const c10::cuda::CUDAGuard guard(masks.device());
  const at::Tensor crop = check_mask_args(masks, theta, crop_in, out_h, out_w, fill);
  const at::Tensor t = theta.to(at::kFloat).reshape({masks.size(0), 6}).contiguous();
  at::Tensor out = at::empty({masks.size(0), out_h, out_w}, masks.options());
  if (masks.size(0) == 0) {
    return out;
  }
  dispatch_mask(masks.scalar_type(), [&](auto tag) { launch_mask<decltype(tag)>(masks, t, crop, out, fill); });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CUDA, m) {
  m.impl("affine_color", &affine_color_cuda);
  m.impl("affine_mask", &affine_mask_cuda);
}

}  // namespace augment
}  // namespace balancedtorch
