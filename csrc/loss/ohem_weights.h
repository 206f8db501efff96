// balancedtorch::ohem_prob_weights: HRNet/OCR's OHEM pixel selection turned into
// per-pixel loss coefficients. Host-side checks shared by the CPU and CUDA
// kernels, and the order-preserving float keys of the CPU radix select.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>
#include <c10/util/Exception.h>

#include "device_check.h"

namespace balancedtorch {
namespace loss {

// Semantics (HRNet-Semantic-Segmentation lib/core/criterion.py, OhemCrossEntropy),
// from the softmax probability p of each pixel's target class (as softmax
// forms it, not exp(-CE), which rounds differently: at equal logits softmax
// gives exactly 1 / C), compared in the dtype of probs: valid pixels are
// those with target != ignore_index; k = min(max(1, min_kept), n_valid - 1);
// s[k] = the k-th smallest valid p (nan sorts last, as torch.sort puts it);
// threshold = max(thresh, s[k]) with thresh rounded to the probs' dtype; a
// valid pixel is kept when p < threshold (nan counts as kept). The result is
// keep * weight[target] / max(1, kept pixels): the OHEM loss is
// sum(result * CE).
struct OhemArgs {
  int64_t min_kept = 1;  // max(1, min_kept)
  double thresh = 1.0;
};

inline OhemArgs check_ohem_args(
    const at::Tensor& probs,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    double thresh,
    int64_t min_kept) {
  TORCH_CHECK_TYPE(
      probs.scalar_type() == at::kFloat || probs.scalar_type() == at::kDouble,
      "ohem_prob_weights: probs must be float32 or float64, got ",
      probs.scalar_type());
  const auto tt = target.scalar_type();
  TORCH_CHECK_TYPE(
      tt == at::kLong || tt == at::kInt || tt == at::kByte,
      "ohem_prob_weights: target must hold class indices (int64, int32 or uint8), got ",
      tt);
  TORCH_CHECK_VALUE(
      target.sizes() == probs.sizes(),
      "ohem_prob_weights: target must have the shape of probs ",
      probs.sizes(),
      ", got ",
      target.sizes());
  check_same_device("ohem_prob_weights", "target", target, "probs", probs);
  if (weight.has_value()) {
    TORCH_CHECK_TYPE(
        weight->scalar_type() == probs.scalar_type(),
        "ohem_prob_weights: weight must have the dtype of probs ",
        probs.scalar_type(),
        ", got ",
        weight->scalar_type());
    TORCH_CHECK_VALUE(
        weight->dim() == 1 && weight->numel() >= 1,
        "ohem_prob_weights: weight must have shape (C,), got ",
        weight->sizes());
    check_same_device("ohem_prob_weights", "weight", *weight, "probs", probs);
  }
  // [0, 1]: a thresh in (0, 1] rounded to float16/bfloat16 by the caller may be 0
  TORCH_CHECK_VALUE(thresh >= 0.0 && thresh <= 1.0, "ohem_prob_weights: thresh must be in [0, 1], got ", thresh);
  TORCH_CHECK_VALUE(min_kept >= 0, "ohem_prob_weights: min_kept must be >= 0, got ", min_kept);
  OhemArgs a;
  a.min_kept = min_kept < 1 ? 1 : min_kept;
  a.thresh = thresh;
  return a;
}

// Unsigned keys in the order of the floats (negative < -0 < +0 < positive <
// inf), nan above everything, so a radix select over the keys is a select
// over the values.
template <typename scalar_t>
struct OrderKey;

template <>
struct OrderKey<float> {
  using type = uint32_t;
  static constexpr int kBits = 32;
  static C10_HOST_DEVICE inline uint32_t of(float v) {
    if (v != v) {
      return 0xFFFFFFFFu;
    }
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  }
};

template <>
struct OrderKey<double> {
  using type = uint64_t;
  static constexpr int kBits = 64;
  static C10_HOST_DEVICE inline uint64_t of(double v) {
    if (v != v) {
      return 0xFFFFFFFFFFFFFFFFull;
    }
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    return (bits & 0x8000000000000000ull) ? ~bits : (bits | 0x8000000000000000ull);
  }
};

}  // namespace loss
}  // namespace balancedtorch
