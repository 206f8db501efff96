// balancedtorch::affine_color / affine_mask: per-pixel maths shared by the CPU
// and CUDA kernels, and the argument checks shared by both launchers.
//
// Coordinates follow torchvision (v2 affine / grid_sample, align_corners=False):
// theta maps an output pixel's centred coordinates (x + 0.5 - W_out / 2,
// y + 0.5 - H_out / 2, 1) to the input's centred coordinates; the input is
// sampled at pixel position (x_c + W / 2 - 0.5, y_c + H / 2 - 0.5). Bilinear
// taps outside the image read `fill`; nearest rounds half to even as
// grid_sample does. Colour, in this fixed order on values in [0, 1]:
// brightness, contrast (blend with the mean grey of the whole output image
// after brightness), saturation, hue (torchvision's HSV round trip); then
// (v - mean[c]) / std[c].
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define BT_HD __host__ __device__ __forceinline__
#define BT_UNROLL _Pragma("unroll")
#else
#define BT_HD inline
#define BT_UNROLL _Pragma("GCC unroll 4")
#endif

namespace balancedtorch {
namespace augment {

#if !defined(__CUDACC__)
using std::max;
using std::min;
#endif

constexpr int64_t kBilinear = 0;
constexpr int64_t kNearest = 1;

// Reads channel c of pixel (y, x) of one image as a float, in the input's own
// units (uint8: 0-255, the scale of torchvision's uint8 arithmetic).
template <typename in_t>
struct Loader {
  const in_t* base;
  int64_t sC, sH, sW;
  BT_HD float operator()(int c, int y, int x) const {
    return static_cast<float>(base[c * sC + y * sH + x * sW]);
  }
};

// A resized crop of an image seen as an image of its own (torchvision's
// resized_crop without antialias: F.interpolate's source positions,
// align_corners=False, clamped inside the box; nearest: floor(dst * scale)).
template <typename Base>
struct ResizedCrop {
  Base base;
  int top, left, h, w;
  float sy, sx;  // box size / output size
  int64_t mode;
  bool round_result;  // uint8: torchvision rounds the resized crop
  BT_HD float operator()(int c, int v, int u) const {
    if (mode == kNearest) {
      const int x = min(static_cast<int>(floorf(static_cast<float>(u) * sx)), w - 1);
      const int y = min(static_cast<int>(floorf(static_cast<float>(v) * sy)), h - 1);
      return base(c, top + y, left + x);
    }
    const float fx = fmaxf((static_cast<float>(u) + 0.5f) * sx - 0.5f, 0.f);
    const float fy = fmaxf((static_cast<float>(v) + 0.5f) * sy - 0.5f, 0.f);
    const int x0 = static_cast<int>(fx), y0 = static_cast<int>(fy);
    const int x1 = x0 + (x0 < w - 1 ? 1 : 0), y1 = y0 + (y0 < h - 1 ? 1 : 0);
    const float lx = fx - static_cast<float>(x0), ly = fy - static_cast<float>(y0);
    const float top_row = (1.f - lx) * base(c, top + y0, left + x0) + lx * base(c, top + y0, left + x1);
    const float bottom_row = (1.f - lx) * base(c, top + y1, left + x0) + lx * base(c, top + y1, left + x1);
    const float value = (1.f - ly) * top_row + ly * bottom_row;
    return round_result ? rintf(value) : value;
  }
};

// The box (top, left, height, width) is clamped into the H x W image, so a
// bad box can never read outside it (the Python layer rejects such boxes).
template <typename Base>
BT_HD ResizedCrop<Base> resized_crop(
    const Base& base, const float* box, int H, int W, int out_h, int out_w, int64_t mode, bool round_result) {
  const int top = min(max(static_cast<int>(box[0]), 0), H - 1), left = min(max(static_cast<int>(box[1]), 0), W - 1);
  const int h = min(max(static_cast<int>(box[2]), 1), H - top), w = min(max(static_cast<int>(box[3]), 1), W - left);
  return ResizedCrop<Base>{
      base,
      top,
      left,
      h,
      w,
      static_cast<float>(h) / static_cast<float>(out_h),
      static_cast<float>(w) / static_cast<float>(out_w),
      mode,
      round_result};
}

struct Frame {
  float half_ow, half_oh, half_w, half_h;
  int H, W;
};

BT_HD Frame make_frame(int64_t H, int64_t W, int64_t out_h, int64_t out_w) {
  return Frame{0.5f * out_w, 0.5f * out_h, 0.5f * W, 0.5f * H, static_cast<int>(H), static_cast<int>(W)};
}

// Products and sums that must round on their own, as torch's separate
// element-wise kernels do (never contracted into a fused multiply-add).
#if defined(__CUDA_ARCH__)
BT_HD float mul_rn(float a, float b) {
  return __fmul_rn(a, b);
}
BT_HD float add_rn(float a, float b) {
  return __fadd_rn(a, b);
}
#else
BT_HD float mul_rn(float a, float b) {
  return a * b;
}  // the .cpp is compiled with fp-contract off
BT_HD float add_rn(float a, float b) {
  return a + b;
}
#endif

// torchvision's _blend: image.mul(ratio).add_(other, alpha=1 - ratio), alpha rounded from double.
BT_HD float blend(float v, float ratio, float alpha, float other) {
  return fmaf(other, alpha, mul_rn(v, ratio));
}

BT_HD float clamp01(float v) {
  return fminf(fmaxf(v, 0.f), 1.f);
}

BT_HD float grey(float r, float g, float b) {
  // torch's r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114): fused multiply-adds
  return fmaf(b, 0.114f, fmaf(g, 0.587f, mul_rn(r, 0.2989f)));
}

// Input pixel position of output pixel (x, y).
BT_HD void source_position(const float* t, const Frame& f, int x, int y, float& ix, float& iy) {
  const float xo = static_cast<float>(x) + 0.5f - f.half_ow;
  const float yo = static_cast<float>(y) + 0.5f - f.half_oh;
  ix = t[0] * xo + t[1] * yo + t[2] + f.half_w - 0.5f;
  iy = t[3] * xo + t[4] * yo + t[5] + f.half_h - 0.5f;
}

// C channels at (ix, iy); load(c, y, x) returns the input value in its own units.
// Taps outside the image read 0 (grid_sample's zeros padding, torchvision's
// fill=None); with has_fill, torchvision's fill blend is applied on top:
// v = m * v + (1 - m) * fill, m the interpolated in-image weight.
template <int C, typename Load>
BT_HD void sample(
    const Load& load, const Frame& f, float ix, float iy, int64_t mode, bool has_fill, float fill, float* v) {
  // far outside the image every tap is outside: clamp before converting to int
  ix = fminf(fmaxf(ix, -2.f), static_cast<float>(f.W) + 1.f);
  iy = fminf(fmaxf(iy, -2.f), static_cast<float>(f.H) + 1.f);
  if (mode == kNearest) {
    const int x = static_cast<int>(rintf(ix)), y = static_cast<int>(rintf(iy));
    const bool in = x >= 0 && x < f.W && y >= 0 && y < f.H;
    const float outside = has_fill ? fill : 0.f;
    BT_UNROLL
    for (int c = 0; c < C; ++c) {
      v[c] = in ? load(c, y, x) : outside;
    }
    return;
  }
  const float fx = floorf(ix), fy = floorf(iy);
  const float wx = ix - fx, wy = iy - fy;
  const int x0 = static_cast<int>(fx), y0 = static_cast<int>(fy);
  const bool inx0 = x0 >= 0 && x0 < f.W, inx1 = x0 + 1 >= 0 && x0 + 1 < f.W;
  const bool iny0 = y0 >= 0 && y0 < f.H, iny1 = y0 + 1 >= 0 && y0 + 1 < f.H;
  const float w00 = inx0 && iny0 ? (1.f - wx) * (1.f - wy) : 0.f;
  const float w01 = inx1 && iny0 ? wx * (1.f - wy) : 0.f;
  const float w10 = inx0 && iny1 ? (1.f - wx) * wy : 0.f;
  const float w11 = inx1 && iny1 ? wx * wy : 0.f;
  // clamped indices: a tap with weight 0 still reads inside the image
  const int xa = min(max(x0, 0), f.W - 1), xb = min(max(x0 + 1, 0), f.W - 1);
  const int ya = min(max(y0, 0), f.H - 1), yb = min(max(y0 + 1, 0), f.H - 1);
  const float m = w00 + w01 + w10 + w11;
  BT_UNROLL
  for (int c = 0; c < C; ++c) {
    // zero-weight taps are skipped: on pixel centres (flips, crops) one read instead of four
    float s = w00 != 0.f ? w00 * load(c, ya, xa) : 0.f;
    s += w01 != 0.f ? w01 * load(c, ya, xb) : 0.f;
    s += w10 != 0.f ? w10 * load(c, yb, xa) : 0.f;
    s += w11 != 0.f ? w11 * load(c, yb, xb) : 0.f;
    v[c] = has_fill ? (s - fill) * m + fill : s;
  }
}

// Offset (y * sH + x * sW) of the nearest input pixel, -1 outside the image.
BT_HD int64_t nearest_offset(const Frame& f, float ix, float iy, int64_t sH, int64_t sW) {
  ix = fminf(fmaxf(ix, -2.f), static_cast<float>(f.W) + 1.f);
  iy = fminf(fmaxf(iy, -2.f), static_cast<float>(f.H) + 1.f);
  const int x = static_cast<int>(rintf(ix)), y = static_cast<int>(rintf(iy));
  return x >= 0 && x < f.W && y >= 0 && y < f.H ? y * sH + x * sW : -1;
}

// The same through a resized crop: nearest on the crop's out_h x out_w grid,
// then torch's "nearest" resize (floor(dst * scale)) into the box.
BT_HD int64_t
nearest_offset_crop(const Frame& f2, float ix, float iy, const float* box, int H, int W, int64_t sH, int64_t sW) {
  ix = fminf(fmaxf(ix, -2.f), static_cast<float>(f2.W) + 1.f);
  iy = fminf(fmaxf(iy, -2.f), static_cast<float>(f2.H) + 1.f);
  const int u = static_cast<int>(rintf(ix)), v = static_cast<int>(rintf(iy));
  if (u < 0 || u >= f2.W || v < 0 || v >= f2.H) {
    return -1;
  }
  const int top = min(max(static_cast<int>(box[0]), 0), H - 1), left = min(max(static_cast<int>(box[1]), 0), W - 1);
  const int h = min(max(static_cast<int>(box[2]), 1), H - top), w = min(max(static_cast<int>(box[3]), 1), W - left);
  const int x =
      min(static_cast<int>(floorf(static_cast<float>(u) * (static_cast<float>(w) / static_cast<float>(f2.W)))), w - 1);
  const int y =
      min(static_cast<int>(floorf(static_cast<float>(v) * (static_cast<float>(h) / static_cast<float>(f2.H)))), h - 1);
  return (top + y) * sH + (left + x) * sW;
}

// torchvision's _rgb_to_hsv, hue shift with remainder 1, _hsv_to_rgb.
BT_HD void shift_hue(float* v, float hue) {
  const float r = v[0], g = v[1], b = v[2];
  const float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
  const bool eqc = maxc == minc;
  const float range = maxc - minc;
  const float s = range / (eqc ? 1.f : maxc);
  const float div = eqc ? 1.f : range;
  const float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
  float h;
  if (maxc == r) {
    h = bc - gc;
  } else if (maxc == g) {
    h = 2.f + rc - bc;
  } else {
    h = 4.f + gc - rc;
  }
  h = fmodf(add_rn(mul_rn(h, 1.f / 6.f), 1.f), 1.f);
  h = add_rn(h, hue);
  h = h - floorf(h);
  const float h6 = mul_rn(h, 6.f);
  const float i = floorf(h6);
  const float fr = h6 - i;
  int sector = static_cast<int>(i) % 6;
  sector += sector < 0 ? 6 : 0;
  const float sf = mul_rn(s, fr);
  const float q = clamp01(mul_rn(1.f - sf, maxc));
  const float t = clamp01(mul_rn(add_rn(sf, 1.f - s), maxc));
  const float p = clamp01(mul_rn(1.f - s, maxc));
  switch (sector) {
    case 0:
      v[0] = maxc;
      v[1] = t;
      v[2] = p;
      break;
    case 1:
      v[0] = q;
      v[1] = maxc;
      v[2] = p;
      break;
    case 2:
      v[0] = p;
      v[1] = maxc;
      v[2] = t;
      break;
    case 3:
      v[0] = p;
      v[1] = q;
      v[2] = maxc;
      break;
    case 4:
      v[0] = t;
      v[1] = p;
      v[2] = maxc;
      break;
    default:
      v[0] = maxc;
      v[1] = p;
      v[2] = q;
      break;
  }
}

BT_HD void apply_brightness(float* v, int C, float b) {
  for (int c = 0; c < C; ++c) {
    v[c] = clamp01(mul_rn(v[c], b));
  }
}

template <int C>
BT_HD float grey_of(const float* v) {
  if constexpr (C == 3) {
    return grey(v[0], v[1], v[2]);
  } else {
    return v[0];
  }
}

// uint8 images follow torchvision's uint8 arithmetic, in 0-255 units: the
// warp (and the resize of a crop) rounds to integers, brightness / contrast /
// saturation truncate after clamping to [0, 255] (the grey of contrast and
// saturation floored), hue converts to [0, 1] and back by truncating x * 255.999.
BT_HD float trunc_u8(float v) {
  return floorf(fminf(fmaxf(v, 0.f), 255.f));
}

template <int C>
BT_HD float grey_u8(const float* v) {
  if constexpr (C == 3) {
    return floorf(grey(v[0], v[1], v[2]));
  } else {
    return v[0];
  }
}

template <int C>
BT_HD void apply_brightness_u8(float* v, float b) {
  for (int c = 0; c < C; ++c) {
    v[c] = trunc_u8(mul_rn(v[c], b));
  }
}

// The pixel pipeline after sampling, in two stages so that contrast's mean
// grey can be taken between them: stage 1 (uint8: round the sample; then
// brightness), stage 2 (contrast, saturation, hue; uint8: back to [0, 1]).
template <int C, bool U8>
BT_HD void colour_stage1(float* v, const float* colour) {
  if constexpr (U8) {
    BT_UNROLL
    for (int c = 0; c < C; ++c) {
      v[c] = fminf(fmaxf(rintf(v[c]), 0.f), 255.f);
    }
  }
  if (colour != nullptr && colour[0] != 1.f) {
    if constexpr (U8) {
      apply_brightness_u8<C>(v, colour[0]);
    } else {
      apply_brightness(v, C, colour[0]);
    }
  }
}

// colour = (brightness, contrast, 1 - contrast, saturation, 1 - saturation, hue),
// the complements rounded from double as torchvision's; contrast_mean: the
// image's mean grey after stage 1.
template <int C, bool U8>
BT_HD void colour_stage2(float* v, const float* colour, float contrast_mean) {
  if (colour != nullptr) {
    if (colour[1] != 1.f) {
      BT_UNROLL
      for (int c = 0; c < C; ++c) {
        const float blended = blend(v[c], colour[1], colour[2], contrast_mean);
        v[c] = U8 ? trunc_u8(blended) : clamp01(blended);
      }
    }
    if constexpr (C == 3) {
      if (colour[3] != 1.f) {
        const float gr = U8 ? grey_u8<3>(v) : grey(v[0], v[1], v[2]);
        BT_UNROLL
        for (int c = 0; c < 3; ++c) {
          const float blended = blend(v[c], colour[3], colour[4], gr);
          v[c] = U8 ? trunc_u8(blended) : clamp01(blended);
        }
      }
      if (colour[5] != 0.f) {
        if constexpr (U8) {
          float x[3] = {v[0] * (1.f / 255.f), v[1] * (1.f / 255.f), v[2] * (1.f / 255.f)};
          shift_hue(x, colour[5]);
          BT_UNROLL
          for (int c = 0; c < 3; ++c) {
            v[c] = floorf(x[c] * 255.999f);
          }
        } else {
          shift_hue(v, colour[5]);
        }
      }
    }
  }
  if constexpr (U8) {
    BT_UNROLL
    for (int c = 0; c < C; ++c) {
      v[c] *= 1.f / 255.f;
    }
  }
}

// The grey value contrast averages (after stage 1).
template <int C, bool U8>
BT_HD float stage1_grey(const float* v) {
  if constexpr (U8) {
    return grey_u8<C>(v);
  } else {
    return grey_of<C>(v);
  }
}

template <int C, bool U8>
BT_HD void finish_pixel(float* v, const float* colour, float contrast_mean) {
  colour_stage1<C, U8>(v, colour);
  colour_stage2<C, U8>(v, colour, contrast_mean);
}

// Grey value contrast averages, after the warp and brightness.
template <int C, bool U8>
BT_HD float contrast_grey(float* v, const float* colour) {
  colour_stage1<C, U8>(v, colour);
  return stage1_grey<C, U8>(v);
}

}  // namespace augment
}  // namespace balancedtorch
