// Host-side argument checks and memory layout shared by the CPU and CUDA
// region_loss kernels (see region_loss.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <c10/util/Exception.h>

#include "device_check.h"
#include "loss/region_loss.h"
#include "loss/softmax_loss_args.h"

namespace balancedtorch {
namespace loss {

struct RegionLossArgs {
  int64_t N = 0;
  int64_t C = 0;
  int64_t S = 1;       // pixels per sample (product of d1, ...)
  bool dense = false;  // target (N, C, ...) in the input's dtype
  bool class_last = false;
  int64_t activation = kActivationSoftmax;
  int64_t ce_kind = kRegionNoCe;
};

// Calls f with a null pointer of the class-index target's C++ type.
template <typename F>
void dispatch_region_target(c10::ScalarType t, F&& f) {
  switch (t) {
    case c10::ScalarType::Long:
      f(static_cast<const int64_t*>(nullptr));
      break;
    case c10::ScalarType::Int:
      f(static_cast<const int32_t*>(nullptr));
      break;
    case c10::ScalarType::Short:
      f(static_cast<const int16_t*>(nullptr));
      break;
    case c10::ScalarType::Char:
      f(static_cast<const int8_t*>(nullptr));
      break;
    case c10::ScalarType::Byte:
      f(static_cast<const uint8_t*>(nullptr));
      break;
    default:
      TORCH_CHECK_TYPE(
          false,
          "region_loss: target: class indices must be an integer tensor (int64, int32, int16, int8 or uint8), got ",
          t);
  }
}

// Calls f with the target's data pointer in its C++ type: class indices of
// any supported integer dtype, or a null int64 pointer for dense
// (probability / multi-label) targets, which the kernels read as input.
template <typename F>
void dispatch_target(const RegionLossArgs& a, const at::Tensor& tgt, F&& f) {
  if (a.dense) {
    f(static_cast<const int64_t*>(nullptr));
  } else {
    dispatch_region_target(tgt.scalar_type(), [&](auto* tag) {
      using target_t = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
      f(tgt.const_data_ptr<target_t>());
    });
  }
}

inline RegionLossArgs check_region_loss_args(
    const char* op,
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    int64_t activation,
    int64_t ce_kind,
    double gamma,
    double label_smoothing,
    int64_t ce_first_class,
    double alpha) {
  TORCH_CHECK_TYPE(
      at::isFloatingType(input.scalar_type()),
      op,
      ": input must be a floating tensor (float16, bfloat16, float32 or float64), got ",
      input.scalar_type());
  TORCH_CHECK_VALUE(input.dim() >= 2, op, ": input must have shape (N, C, d1, ...), got ", input.sizes());
  check_same_device(op, "target", target, "input", input);
  TORCH_CHECK_VALUE(
      activation == kActivationSoftmax || activation == kActivationSigmoid || activation == kActivationNone,
      op,
      ": activation must be 0 (softmax), 1 (sigmoid) or 2 (none), got ",
      activation);
  TORCH_CHECK_VALUE(
      ce_kind == kRegionNoCe || ce_kind == kRegionCe || ce_kind == kRegionFocal,
      op,
      ": ce_kind must be 0 (none), 1 (cross-entropy) or 2 (focal), got ",
      ce_kind);
  RegionLossArgs a;
  a.activation = activation;
  a.ce_kind = ce_kind;
  a.N = input.size(0);
  a.C = input.size(1);
  for (int64_t d = 2; d < input.dim(); ++d) {
    a.S *= input.size(d);
  }
  TORCH_CHECK_VALUE(a.C >= 1, op, ": input must have at least one class (C = input.size(1) = 0)");
  // class indices are compared as float32 lanes in the CPU kernels
  TORCH_CHECK_VALUE(a.C < (int64_t{1} << 24), op, ": at most 2^24 - 1 classes, got C = ", a.C);
  TORCH_CHECK_VALUE(
      activation == kActivationSigmoid || a.C >= 2 || (activation == kActivationNone && ce_kind != kRegionCe),
      op,
      ": softmax (and the cross-entropy part of activation 'none') needs at least 2 classes, got C = ",
      a.C,
      " (use the sigmoid activation for one channel)");
  a.dense = at::isFloatingType(target.scalar_type());
  if (a.dense) {
    TORCH_CHECK_VALUE(
        target.sizes() == input.sizes(),
        op,
        ": target of probabilities must have the input's shape ",
        input.sizes(),
        ", got ",
        target.sizes());
    TORCH_CHECK_TYPE(
        target.scalar_type() == input.scalar_type(),
        op,
        ": target of probabilities must have the input's dtype ",
        input.scalar_type(),
        ", got ",
        target.scalar_type());
  } else {
    TORCH_CHECK_VALUE(
        activation != kActivationSigmoid,
        op,
        ": the sigmoid activation needs a target of shape (N, C, ...) in the input's dtype, got ",
        target.scalar_type(),
        " target of shape ",
        target.sizes());
    dispatch_region_target(target.scalar_type(), [](auto*) {});
    std::vector<int64_t> expected(input.sizes().begin(), input.sizes().end());
    expected.erase(expected.begin() + 1);
    TORCH_CHECK_VALUE(
        target.sizes() == at::IntArrayRef(expected),
        op,
        ": target of class indices must have shape ",
        at::IntArrayRef(expected),
        " for input of shape ",
        input.sizes(),
        ", got ",
        target.sizes());
  }
  if (weight.has_value()) {
    const at::Tensor& w = *weight;
    TORCH_CHECK_TYPE(
        at::isFloatingType(w.scalar_type()), op, ": weight must be a floating tensor, got ", w.scalar_type());
    TORCH_CHECK_VALUE(
        w.dim() == 1 && w.size(0) == a.C, op, ": weight must have shape (C,) = (", a.C, ",), got ", w.sizes());
    check_same_device(op, "weight", w, "input", input);
  }
  TORCH_CHECK_VALUE(std::isfinite(gamma) && gamma >= 0.0, op, ": gamma must be a finite number >= 0, got ", gamma);
  TORCH_CHECK_VALUE(
      label_smoothing >= 0.0 && label_smoothing <= 1.0,
      op,
      ": label_smoothing must be in [0, 1], got ",
      label_smoothing);
  TORCH_CHECK_VALUE(
      label_smoothing == 0.0 || activation == kActivationSoftmax ||
          (activation == kActivationNone && ce_kind == kRegionCe),
      op,
      ": label_smoothing applies to a softmax cross-entropy part only, got ",
      label_smoothing);
  TORCH_CHECK_VALUE(
      std::isfinite(alpha) && alpha <= 1.0, op, ": alpha must be a finite number <= 1 (negative: none), got ", alpha);
  TORCH_CHECK_VALUE(
      ce_first_class >= 0 && ce_first_class <= 1, op, ": ce_first_class must be 0 or 1, got ", ce_first_class);
  a.class_last = class_last_format(input).has_value();
  return a;
}

// Logits read in place when contiguous or channels-last (classes innermost),
// else made contiguous; a dense target in the same layout.
struct RegionLossLayout {
  at::Tensor x, target;
  int64_t cs = 1;  // class stride
  at::ScalarType acc_type = at::kFloat;
};

inline RegionLossLayout region_loss_layout(const at::Tensor& input, const at::Tensor& target, const RegionLossArgs& a) {
  RegionLossLayout l;
  const std::optional<at::MemoryFormat> class_last = class_last_format(input);
  l.x = class_last ? input : input.contiguous();
  l.target = a.dense && class_last ? target.contiguous(*class_last) : target.contiguous();
  l.cs = class_last ? 1 : a.S;
  l.acc_type = input.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return l;
}

inline void check_region_coef(
    const char* op,
    const at::Tensor& coef,
    const at::Tensor& ce_coef,
    const RegionLossArgs& a,
    const RegionLossLayout& l) {
  TORCH_CHECK_VALUE(
      coef.dim() == 3 && coef.size(0) == a.N && coef.size(1) == 2 && coef.size(2) == a.C,
      op,
      ": coef must have shape (N, 2, C) = (",
      a.N,
      ", 2, ",
      a.C,
      "), got ",
      coef.sizes());
  TORCH_CHECK_VALUE(
      ce_coef.dim() == 1 && ce_coef.size(0) == a.N,
      op,
      ": ce_coef must have shape (N,) = (",
      a.N,
      ",), got ",
      ce_coef.sizes());
  TORCH_CHECK_TYPE(
      coef.scalar_type() == l.acc_type && ce_coef.scalar_type() == l.acc_type,
      op,
      ": coef and ce_coef must be ",
      l.acc_type,
      " (the accumulation dtype), got ",
      coef.scalar_type(),
      " and ",
      ce_coef.scalar_type());
  check_same_device(op, "coef", coef, "input", l.x);
  check_same_device(op, "ce_coef", ce_coef, "input", l.x);
}

inline void raise_invalid_region_target(int64_t index, int64_t value, int64_t num_classes, int64_t ignore_index) {
  TORCH_CHECK_VALUE(
      false,
      "region_loss: target must hold class indices in [0, C=",
      num_classes,
      ") or ignore_index=",
      ignore_index,
      ", got target ",
      value,
      " at flat index ",
      index);
}

template <typename acc_t>
RegionParams<acc_t> make_region_params(
    const RegionLossArgs& a,
    const RegionLossLayout& l,
    const acc_t* weight,
    int64_t ignore_index,
    double gamma,
    double label_smoothing,
    bool squared,
    int64_t ce_first_class,
    bool soft_label,
    double alpha) {
  RegionParams<acc_t> P;
  P.C = a.C;
  P.cs = l.cs;
  P.sigmoid = a.activation == kActivationSigmoid;
  P.none = a.activation == kActivationNone;
  P.soft = soft_label;
  P.alpha = static_cast<acc_t>(alpha);
  P.squared = squared;
  P.dense = a.dense;
  P.ignore_index = ignore_index;
  P.ce_kind = a.ce_kind;
  P.ce_first_class = ce_first_class;
  P.smoothing_mode = a.dense || label_smoothing > 0.0;
  P.gamma = static_cast<acc_t>(gamma);
  P.eps = static_cast<acc_t>(label_smoothing);
  P.weight = weight;
  return P;
}

}  // namespace loss
}  // namespace balancedtorch
