// CPU kernels of balancedtorch::affine_color and affine_mask.
//
// One pass over the output: each output pixel computes its source position,
// samples all channels, applies the colour chain and the normalisation, and
// is written once. Parallel over output rows (at::parallel_for); the source
// position advances by a constant step along a row. Contrast needs the mean
// grey of each image after brightness: a pre-pass computes it (rows in
// parallel, summed in double) only for the images whose contrast factor is not 1.
#include <cmath>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "augment/affine_color.h"
#include "augment/affine_color_args.h"
#include "augment/cpu/affine_color_vec.h"
#include "cpu/buffer_pool.h"

namespace balancedtorch {
namespace augment {
namespace {

template <typename in_t, typename out_t, int C>
void affine_color_kernel(const at::Tensor& images, const ImageArgs& a, at::Tensor& out, int64_t mode, float fill) {
  const int64_t B = images.size(0), oh = out.size(2), ow = out.size(3);
  const Frame fr = make_frame(images.size(2), images.size(3), oh, ow);
  const in_t* in = images.const_data_ptr<in_t>();
  const int64_t sB = images.stride(0), sC = images.stride(1), sH = images.stride(2), sW = images.stride(3);
  out_t* o = out.mutable_data_ptr<out_t>();
  const int64_t oB = out.stride(0), oC = out.stride(1), oH = out.stride(2), oW = out.stride(3);
  constexpr bool u8 = std::is_same_v<in_t, uint8_t>;  // torchvision's uint8 arithmetic, 0-255 units
  const bool has_fill = !std::isnan(fill);            // NaN: no fill given (zeros padding)
  const float fill_s = has_fill ? fill : 0.f;
  const float* theta = a.theta.const_data_ptr<float>();
  const float* colour = a.colour.defined() ? a.colour.const_data_ptr<float>() : nullptr;
  const float* mean = a.mean.const_data_ptr<float>();
  const float* inv_std = a.inv_std.const_data_ptr<float>();

  const float* crop = a.crop.defined() ? a.crop.const_data_ptr<float>() : nullptr;
  // with a crop, the warp samples the resized crop (an oh x ow image of its own)
  const Frame fr2 = make_frame(oh, ow, oh, ow);
  // AVX2: eight pixels at a time through gathers (float and uint8 input, no crop,
  // plane offsets below 2^24, exact in float); uint8 gathers read 4 bytes, so an image whose last
  // plane ends within 3 bytes of the tensor's end takes the scalar path.
  const int64_t max_plane_off = (fr.H - 1) * sH + (fr.W - 1) * sW;
  int64_t extent = 1;
  for (int64_t d = 0; d < images.dim(); ++d) {
    extent += (images.size(d) - 1) * images.stride(d);
  }
  const bool vec_ok = (std::is_same_v<in_t, float> || u8) && crop == nullptr && max_plane_off < (int64_t{1} << 24);
  auto vec_row_ok = [&](int64_t b) { return vec_ok && (!u8 || b * sB + (C - 1) * sC + max_plane_off + 3 < extent); };

  auto for_row = [&](int64_t row, auto&& pixel, auto&& pixel8) {
    const int64_t b = row / oh;
    const int y = static_cast<int>(row % oh);
    const Loader<in_t> load{in + b * sB, sC, sH, sW};
    const float* t = theta + 6 * b;
    if (crop != nullptr) {
      const auto src =
          resized_crop(load, crop + 4 * b, fr.H, fr.W, static_cast<int>(oh), static_cast<int>(ow), mode, u8);
      for (int x = 0; x < ow; ++x) {
        float ix, iy, v[C];
        source_position(t, fr2, x, y, ix, iy);
        sample<C>(src, fr2, ix, iy, mode, has_fill, fill_s, v);
        pixel(b, y, x, v);
      }
      return;
    }
    int x = 0;
#if defined(CPU_CAPABILITY_AVX2)
    if constexpr (std::is_same_v<in_t, float> || std::is_same_v<in_t, uint8_t>) {
      if (vec_row_ok(b)) {
        for (; x + 8 <= ow; x += 8) {
          vec8::V v[C];
          vec8::warp8<in_t, C>(
              in + b * sB,
              sC,
              static_cast<int32_t>(sH),
              static_cast<int32_t>(sW),
              t,
              fr,
              x,
              y,
              mode,
              has_fill,
              fill_s,
              v);
          pixel8(b, y, x, v);
        }
      }
    }
#endif
    for (; x < ow; ++x) {
      float ix, iy, v[C];
      source_position(t, fr, x, y, ix, iy);
      sample<C>(load, fr, ix, iy, mode, has_fill, fill_s, v);
      pixel(b, y, x, v);
    }
  };
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, ow));

  // Contrast blends with the mean grey of the image after stage 1 (warp,
  // brightness). float32 output: pass 1 writes the stage-1 values and sums
  // their grey per row, pass 2 finishes those images in place (one warp).
  // Other outputs: a pre-pass repeats the warp to sum the grey.
  std::vector<char> needs(B, 0);
  bool any = false;
  for (int64_t b = 0; colour != nullptr && b < B; ++b) {
    needs[b] = colour[6 * b + 1] != 1.f;
    any = any || needs[b];
  }
  constexpr bool in_place = std::is_same_v<out_t, float>;
  std::vector<double> row_sum(any ? B * oh : 0, 0.0);
  std::vector<float> contrast_mean(B, 0.f);
  auto reduce_means = [&] {
    for (int64_t b = 0; b < B; ++b) {
      if (!needs[b]) {
        continue;
      }
      double s = 0.0;
      for (int64_t y = 0; y < oh; ++y) {
        s += row_sum[b * oh + y];
      }
      // torch.mean in float32 of the grey image: the (exact for uint8) sum over the count
      contrast_mean[b] = static_cast<float>(s) / static_cast<float>(oh * ow);
    }
  };
  auto grey_pixel = [&](int64_t b, double& s, float* v) {
    colour_stage1<C, u8>(v, colour + 6 * b);
    s += stage1_grey<C, u8>(v);
  };
#if defined(CPU_CAPABILITY_AVX2)
  auto grey8 = [&](int64_t b, double& s, vec8::V* v) {
    vec8::stage1<C, u8>(v, colour + 6 * b);
    float lanes[8];
    vec8::stage1_grey<C, u8>(v).store(lanes);
    for (int l = 0; l < 8; ++l) {
      s += lanes[l];
    }
  };
#endif
  if (any && !in_place) {
    at::parallel_for(0, B * oh, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        if (!needs[row / oh]) {
          continue;
        }
        double s = 0.0;
        for_row(
            row,
            [&](int64_t b, int, int, float* v) { grey_pixel(b, s, v); },
            [&](int64_t b, int, int, auto* v) {
#if defined(CPU_CAPABILITY_AVX2)
              grey8(b, s, v);
#endif
            });
        row_sum[row] = s;
      }
    });
    reduce_means();
  }

  auto store = [&](int64_t b, int y, int x, const float* v, bool raw) {
    out_t* dst = o + b * oB + y * oH + x * oW;
    for (int c = 0; c < C; ++c) {
      dst[c * oC] = static_cast<out_t>(raw ? v[c] : (v[c] - mean[c]) * inv_std[c]);
    }
  };
#if defined(CPU_CAPABILITY_AVX2)
  auto store8 = [&](int64_t b, int y, int x, const vec8::V* v, bool raw) {
    out_t* dst = o + b * oB + y * oH + x * oW;
    for (int c = 0; c < C; ++c) {
      const vec8::V n = raw ? v[c] : (v[c] - vec8::V(mean[c])) * vec8::V(inv_std[c]);
      if constexpr (std::is_same_v<out_t, float>) {
        if (oW == 1) {
          n.store(dst + c * oC);
          continue;
        }
      }
      float lanes[8];
      n.store(lanes);
      for (int l = 0; l < 8; ++l) {
        dst[c * oC + l * oW] = static_cast<out_t>(lanes[l]);
      }
    }
  };
#endif

  at::parallel_for(0, B * oh, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t b = row / oh;
      const float* col = colour == nullptr ? nullptr : colour + 6 * b;
      if (in_place && needs[b]) {  // pass 1: stage-1 values, grey summed
        double s = 0.0;
        for_row(
            row,
            [&](int64_t, int y, int x, float* v) {
              grey_pixel(b, s, v);
              store(b, y, x, v, true);
            },
            [&](int64_t, int y, int x, auto* v) {
#if defined(CPU_CAPABILITY_AVX2)
              grey8(b, s, v);
              store8(b, y, x, v, true);
#endif
            });
        row_sum[row] = s;
        continue;
      }
      for_row(
          row,
          [&](int64_t, int y, int x, float* v) {
            finish_pixel<C, u8>(v, col, contrast_mean[b]);
            store(b, y, x, v, false);
          },
          [&](int64_t, int y, int x, auto* v) {
#if defined(CPU_CAPABILITY_AVX2)
            vec8::stage1<C, u8>(v, col);
            vec8::stage2<C, u8>(v, col, contrast_mean[b]);
            store8(b, y, x, v, false);
#endif
          });
    }
  });
  if constexpr (!in_place) {
    return;
  } else {
    if (!any) {
      return;
    }
    reduce_means();
    // pass 2: contrast, saturation, hue and normalisation of the stored stage-1 values
    at::parallel_for(0, B * oh, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t b = row / oh;
        if (!needs[b]) {
          continue;
        }
        const int y = static_cast<int>(row % oh);
        const float* col = colour + 6 * b;
        int x = 0;
#if defined(CPU_CAPABILITY_AVX2)
        if (oW == 1) {
          for (; x + 8 <= ow; x += 8) {
            vec8::V v[C];
            const out_t* src = o + b * oB + y * oH + x;
            for (int c = 0; c < C; ++c) {
              v[c] = vec8::V::loadu(src + c * oC);
            }
            vec8::stage2<C, u8>(v, col, contrast_mean[b]);
            store8(b, y, x, v, false);
          }
        }
#endif
        for (; x < ow; ++x) {
          float v[C];
          const out_t* src = o + b * oB + y * oH + x * oW;
          for (int c = 0; c < C; ++c) {
            v[c] = static_cast<float>(src[c * oC]);
          }
          colour_stage2<C, u8>(v, col, contrast_mean[b]);
          store(b, y, x, v, false);
        }
      }
    });
  }
}

at::Tensor affine_color_cpu(
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
  const ImageArgs a = check_image_args(images, theta, colour, crop, mean, std_, out_h, out_w, interpolation, out_dtype);
  const int64_t B = images.size(0), C = images.size(1);
  const auto fmt = images.suggest_memory_format();
  const auto out_opts = images.options().dtype(out_dtype);
  at::Tensor out = fmt == at::MemoryFormat::Contiguous ? cpu::pooled_empty({B, C, out_h, out_w}, out_opts)
                                                       : at::empty({B, C, out_h, out_w}, out_opts.memory_format(fmt));
  if (B == 0) {
    return out;
  }
  const float f = fill.has_value() ? static_cast<float>(*fill) : std::numeric_limits<float>::quiet_NaN();
  dispatch_affine_color(images.scalar_type(), out_dtype, C, [&](auto in_tag, auto out_tag, auto channels) {
    affine_color_kernel<decltype(in_tag), decltype(out_tag), decltype(channels)::value>(
        images, a, out, interpolation, f);
  });
  return out;
}

template <typename scalar_t>
void affine_mask_kernel(
    const at::Tensor& masks, const at::Tensor& t, const at::Tensor& crop, at::Tensor& out, int64_t fill) {
  const int64_t B = masks.size(0), out_h = out.size(1), out_w = out.size(2);
  const Frame fr = make_frame(masks.size(1), masks.size(2), out_h, out_w);
  const scalar_t* in = masks.const_data_ptr<scalar_t>();
  const int64_t sB = masks.stride(0), sH = masks.stride(1), sW = masks.stride(2);
  scalar_t* o = out.mutable_data_ptr<scalar_t>();
  const scalar_t fill_v = static_cast<scalar_t>(fill);
  const float* th = t.const_data_ptr<float>();
  const float* boxes = crop.defined() ? crop.const_data_ptr<float>() : nullptr;
  const Frame fr2 = make_frame(out_h, out_w, out_h, out_w);
  at::parallel_for(0, B * out_h, std::max<int64_t>(1, 16384 / out_w), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t b = row / out_h;
      const int y = static_cast<int>(row % out_h);
      for (int x = 0; x < out_w; ++x) {
        float ix, iy;
        int64_t src;
        if (boxes != nullptr) {
          source_position(th + 6 * b, fr2, x, y, ix, iy);
          src = nearest_offset_crop(fr2, ix, iy, boxes + 4 * b, fr.H, fr.W, sH, sW);
        } else {
          source_position(th + 6 * b, fr, x, y, ix, iy);
          src = nearest_offset(fr, ix, iy, sH, sW);
        }
        o[row * out_w + x] = src >= 0 ? in[b * sB + src] : fill_v;
      }
    }
  });
}

at::Tensor affine_mask_cpu(
    const at::Tensor& masks,
    const at::Tensor& theta,
    const std::optional<at::Tensor>& crop_in,
    int64_t out_h,
    int64_t out_w,
    int64_t fill) {
  const at::Tensor crop = check_mask_args(masks, theta, crop_in, out_h, out_w, fill);
  const at::Tensor t = theta.to(at::kFloat).reshape({masks.size(0), 6}).contiguous();
  at::Tensor out = at::empty({masks.size(0), out_h, out_w}, masks.options());
  dispatch_mask(masks.scalar_type(), [&](auto tag) { affine_mask_kernel<decltype(tag)>(masks, t, crop, out, fill); });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("affine_color", &affine_color_cpu);
  m.impl("affine_mask", &affine_mask_cpu);
}

}  // namespace augment
}  // namespace balancedtorch
