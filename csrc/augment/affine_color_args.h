// Argument checks shared by the CPU and CUDA launchers of affine_color / affine_mask.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>

#include <ATen/Dispatch.h>

#include <ATen/ATen.h>

#include "augment/affine_color.h"

namespace balancedtorch {
namespace augment {

inline void check_theta(const at::Tensor& theta, int64_t B, const at::Tensor& like) {
  TORCH_CHECK_VALUE(
      theta.dim() == 3 && theta.size(0) == B && theta.size(1) == 2 && theta.size(2) == 3,
      "affine_color: theta must have shape (B, 2, 3) with B = ",
      B,
      ", got ",
      theta.sizes());
  TORCH_CHECK_TYPE(
      at::isFloatingType(theta.scalar_type()), "affine_color: theta must be floating point, got ", theta.scalar_type());
  TORCH_CHECK_VALUE(
      theta.device() == like.device(),
      "affine_color: theta is on ",
      theta.device(),
      " but the images are on ",
      like.device());
}

// Pixel coordinates are float32 (as torchvision's affine grid): below 2^24
// every pixel position is exact, and the kernels keep rows and columns in
// 32-bit ints (offsets into the image are 64-bit).
constexpr int64_t kMaxSide = int64_t{1} << 24;

inline void check_size(int64_t out_h, int64_t out_w) {
  TORCH_CHECK_VALUE(
      out_h > 0 && out_w > 0 && out_h < kMaxSide && out_w < kMaxSide,
      "affine_color: output size must be positive and below 2^24 = ",
      kMaxSide,
      " per side, got (",
      out_h,
      ", ",
      out_w,
      ")");
}

// An input side of 2^24 or more can neither be addressed exactly by float32
// pixel coordinates nor held in the kernels' 32-bit rows and columns.
inline void check_input_sides(const char* op, const char* name, int64_t H, int64_t W) {
  TORCH_CHECK_VALUE(
      H < kMaxSide && W < kMaxSide,
      op,
      ": ",
      name,
      " height and width must be below 2^24 = ",
      kMaxSide,
      " (pixel coordinates are float32), got H = ",
      H,
      ", W = ",
      W);
}

struct ImageArgs {
  at::Tensor theta;    // float32 [B, 6]
  at::Tensor colour;   // float32 [B, 6] (b, c, 1 - c, s, 1 - s, h), or undefined
  at::Tensor crop;     // float32 [B, 4] (top, left, height, width) or undefined
  at::Tensor mean;     // float32 [C] (zeros when none)
  at::Tensor inv_std;  // float32 [C] (ones when none)
};

inline ImageArgs check_image_args(
    const at::Tensor& images,
    const at::Tensor& theta,
    const std::optional<at::Tensor>& colour,
    const std::optional<at::Tensor>& crop,
    const std::optional<at::Tensor>& mean,
    const std::optional<at::Tensor>& std_,
    int64_t out_h,
    int64_t out_w,
    int64_t interpolation,
    at::ScalarType out_dtype) {
  TORCH_CHECK_VALUE(images.dim() == 4, "affine_color: images must have shape (B, C, H, W), got ", images.sizes());
  const int64_t B = images.size(0), C = images.size(1);
  TORCH_CHECK_VALUE(C == 1 || C == 3, "affine_color: images must have C = 1 or 3 channels, got ", C);
  TORCH_CHECK_VALUE(
      images.size(2) > 0 && images.size(3) > 0, "affine_color: images must not be empty, got ", images.sizes());
  check_input_sides("affine_color", "images", images.size(2), images.size(3));
  const auto dt = images.scalar_type();
  TORCH_CHECK_TYPE(
      dt == at::kByte || dt == at::kHalf || dt == at::kBFloat16 || dt == at::kFloat,
      "affine_color: images must be uint8, float16, bfloat16 or float32, got ",
      dt);
  TORCH_CHECK_TYPE(
      out_dtype == at::kFloat || out_dtype == at::kHalf || out_dtype == at::kBFloat16,
      "affine_color: out_dtype must be float32, float16 or bfloat16, got ",
      out_dtype);
  TORCH_CHECK_VALUE(
      interpolation == kBilinear || interpolation == kNearest,
      "affine_color: interpolation must be 0 (bilinear) or 1 (nearest), got ",
      interpolation);
  check_size(out_h, out_w);
  check_theta(theta, B, images);
  ImageArgs a;
  a.theta = theta.to(at::kFloat).reshape({B, 6}).contiguous();
  const auto fopts = images.options().dtype(at::kFloat);
  if (colour.has_value()) {
    TORCH_CHECK_VALUE(
        colour->dim() == 2 && colour->size(0) == B && colour->size(1) == 4,
        "affine_color: colour must have shape (B, 4) with B = ",
        B,
        ", got ",
        colour->sizes());
    TORCH_CHECK_VALUE(
        colour->device() == images.device(),
        "affine_color: colour is on ",
        colour->device(),
        " but the images are on ",
        images.device());
    // the blend complements 1 - c and 1 - s are rounded from double, as torchvision's Python floats
    const at::Tensor d = colour->to(at::kDouble);
    a.colour = at::stack(
                   {d.select(1, 0),
                    d.select(1, 1),
                    1.0 - d.select(1, 1),
                    d.select(1, 2),
                    1.0 - d.select(1, 2),
                    d.select(1, 3)},
                   1)
                   .to(at::kFloat)
                   .contiguous();
  }
  if (crop.has_value()) {
    TORCH_CHECK_VALUE(
        crop->dim() == 2 && crop->size(0) == B && crop->size(1) == 4,
        "affine_color: crop must have shape (B, 4) with B = ",
        B,
        ", got ",
        crop->sizes());
    TORCH_CHECK_VALUE(
        crop->device() == images.device(),
        "affine_color: crop is on ",
        crop->device(),
        " but the images are on ",
        images.device());
    a.crop = crop->to(at::kFloat).contiguous();
  }
  for (const auto* p : {&mean, &std_}) {
    if (p->has_value()) {
      const char* name = p == &mean ? "mean" : "std";
      TORCH_CHECK_VALUE(
          (*p)->numel() == C, "affine_color: ", name, " must have C = ", C, " values, got ", (*p)->numel());
      TORCH_CHECK_VALUE(
          (*p)->device() == images.device(),
          "affine_color: ",
          name,
          " is on ",
          (*p)->device(),
          " but the images are on ",
          images.device());
    }
  }
  a.mean = mean.has_value() ? mean->to(at::kFloat).reshape({C}).contiguous() : at::zeros({C}, fopts);
  a.inv_std = std_.has_value() ? std_->to(at::kFloat).reshape({C}).reciprocal() : at::ones({C}, fopts);
  return a;
}

// Returns the crop boxes as contiguous float32 (undefined without a crop).
// The fill must be a value of the masks' dtype: a cast would wrap it (256 -> 0
// for uint8, -1 -> 255), silently labelling the padding as a real class.
inline void check_mask_fill(at::ScalarType dt, int64_t fill) {
  int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  if (dt == at::kByte) {
    lo = 0;
    hi = 255;
  } else if (dt == at::kInt) {
    lo = std::numeric_limits<int32_t>::min();
    hi = std::numeric_limits<int32_t>::max();
  } else if (dt == at::kBool) {
    lo = 0;
    hi = 1;
  }
  TORCH_CHECK_VALUE(
      lo <= fill && fill <= hi,
      "affine_mask: fill must be a value of the masks' dtype ",
      dt,
      " (",
      lo,
      " to ",
      hi,
      "), got ",
      fill);
}

inline at::Tensor check_mask_args(
    const at::Tensor& masks,
    const at::Tensor& theta,
    const std::optional<at::Tensor>& crop,
    int64_t out_h,
    int64_t out_w,
    int64_t fill) {
  TORCH_CHECK_VALUE(masks.dim() == 3, "affine_mask: masks must have shape (B, H, W), got ", masks.sizes());
  const auto dt = masks.scalar_type();
  TORCH_CHECK_TYPE(
      dt == at::kByte || dt == at::kInt || dt == at::kLong || dt == at::kBool,
      "affine_mask: masks must be uint8, int32, int64 or bool, got ",
      dt);
  check_mask_fill(dt, fill);
  TORCH_CHECK_VALUE(
      masks.size(1) > 0 && masks.size(2) > 0, "affine_mask: masks must not be empty, got ", masks.sizes());
  check_input_sides("affine_mask", "masks", masks.size(1), masks.size(2));
  check_size(out_h, out_w);
  check_theta(theta, masks.size(0), masks);
  if (!crop.has_value()) {
    return at::Tensor();
  }
  TORCH_CHECK_VALUE(
      crop->dim() == 2 && crop->size(0) == masks.size(0) && crop->size(1) == 4,
      "affine_mask: crop must have shape (B, 4) with B = ",
      masks.size(0),
      ", got ",
      crop->sizes());
  TORCH_CHECK_VALUE(
      crop->device() == masks.device(),
      "affine_mask: crop is on ",
      crop->device(),
      " but the masks are on ",
      masks.device());
  return crop->to(at::kFloat).contiguous();
}

// Calls fn(in_t{}, out_t{}, std::integral_constant<int, C>{}) for the images'
// dtype (uint8, float16, bfloat16, float32), out_dtype and C (1 or 3).
template <typename Fn>
void dispatch_affine_color(at::ScalarType in_dtype, at::ScalarType out_dtype, int64_t C, const Fn& fn) {
  auto with_out = [&](auto in_tag) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out_dtype, "affine_color_out", [&] {
      if (C == 3) {
        fn(in_tag, scalar_t{}, std::integral_constant<int, 3>{});
      } else {
        fn(in_tag, scalar_t{}, std::integral_constant<int, 1>{});
      }
    });
  };
  AT_DISPATCH_SWITCH(in_dtype, "affine_color", AT_DISPATCH_CASE(at::kByte, [&] {
                       with_out(scalar_t{});
                     }) AT_DISPATCH_CASE_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, [&] { with_out(scalar_t{}); }));
}

// Calls fn(scalar_t{}) for the masks' dtype (uint8, int32, int64 or bool).
template <typename Fn>
void dispatch_mask(at::ScalarType dtype, const Fn& fn) {
  switch (dtype) {
    case at::kByte:
      fn(uint8_t{});
      break;
    case at::kInt:
      fn(int32_t{});
      break;
    case at::kLong:
      fn(int64_t{});
      break;
    default:
      fn(bool{});
      break;
  }
}

}  // namespace augment
}  // namespace balancedtorch
