// Host-side argument checks and reduction shared by the CPU and CUDA
// softmax_loss kernels.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>
#include "cpu/buffer_pool.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/_assert_async.h>
#include <ATen/ops/div.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/eq.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/masked_fill.h>
#include <ATen/ops/sum.h>
#include <c10/util/Exception.h>

#include "device_check.h"
#include "loss/softmax_loss.h"

namespace balancedtorch {
namespace loss {

struct SoftmaxLossArgs {
  int64_t N = 0;      // batch
  int64_t C = 0;      // classes
  int64_t inner = 1;  // product of the dimensions after the class dimension
  bool soft = false;  // probability targets
  int mode = kModeTarget;
  // logit_scale or margin given, or scale != 1: the kernels adjust each row
  // as a whole (csrc/loss/softmax_loss.h); otherwise the plain paths
  bool adjusted = false;
};

inline bool is_hard_target_dtype(c10::ScalarType t) {
  return t == c10::ScalarType::Long || t == c10::ScalarType::Int || t == c10::ScalarType::Byte;
}

// Calls f with a null pointer of the target's C++ type (int64, int32, uint8).
template <typename F>
void dispatch_target_type(c10::ScalarType t, F&& f) {
  switch (t) {
    case c10::ScalarType::Long:
      f(static_cast<const int64_t*>(nullptr));
      break;
    case c10::ScalarType::Int:
      f(static_cast<const int32_t*>(nullptr));
      break;
    case c10::ScalarType::Byte:
      f(static_cast<const uint8_t*>(nullptr));
      break;
    default:
      TORCH_CHECK_TYPE(false, "target: class indices must be int64, int32 or uint8, got ", t);
  }
}

// Values of a per-class adjustment: finite. On the CPU the first bad entry is
// named; on CUDA a device-side assertion (no host synchronisation per step).
inline void check_finite_class_vector(const char* name, const at::Tensor& t) {
  if (t.is_cpu()) {
    const at::Tensor d = t.to(at::kDouble).contiguous();
    const double* p = d.const_data_ptr<double>();
    for (int64_t i = 0; i < d.numel(); ++i) {
      TORCH_CHECK_VALUE(
          std::isfinite(p[i]), "softmax_loss: ", name, " must be finite, got ", name, "[", i, "] = ", p[i]);
    }
  } else if (t.is_cuda()) {
    at::_assert_async(at::isfinite(t).all(), "softmax_loss: logit_scale and margin must be finite (device-side check)");
  }
}

inline SoftmaxLossArgs check_softmax_loss_args(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& logit_bias,
    int64_t ignore_index,
    double label_smoothing,
    double gamma,
    int64_t reduction,
    const std::optional<at::Tensor>& logit_scale = std::nullopt,
    const std::optional<at::Tensor>& margin = std::nullopt,
    double scale = 1.0) {
  TORCH_CHECK_TYPE(
      at::isFloatingType(input.scalar_type()),
      "softmax_loss: input must be a floating tensor (float16, bfloat16, float32 or float64), got ",
      input.scalar_type());
  TORCH_CHECK_VALUE(
      input.dim() >= 2, "softmax_loss: input must have shape (N, C) or (N, C, d1, ...), got ", input.sizes());
  check_same_device("softmax_loss", "target", target, "input", input);
  SoftmaxLossArgs a;
  a.N = input.size(0);
  a.C = input.size(1);
  a.inner = 1;
  for (int64_t d = 2; d < input.dim(); ++d) {
    a.inner *= input.size(d);
  }
  TORCH_CHECK_VALUE(a.C >= 1, "softmax_loss: input must have at least one class (C = input.size(1) = 0)");
  a.soft = at::isFloatingType(target.scalar_type());
  if (a.soft) {
    TORCH_CHECK_VALUE(
        target.sizes() == input.sizes(),
        "softmax_loss: probability target must have the input's shape ",
        input.sizes(),
        ", got ",
        target.sizes());
    TORCH_CHECK_TYPE(
        target.scalar_type() == input.scalar_type(),
        "softmax_loss: probability target must have the input's dtype ",
        input.scalar_type(),
        ", got ",
        target.scalar_type());
  } else {
    TORCH_CHECK_TYPE(
        is_hard_target_dtype(target.scalar_type()),
        "softmax_loss: target must hold class indices (int64, int32 or uint8) or probabilities (the input's dtype), "
        "got ",
        target.scalar_type());
    std::vector<int64_t> expected(input.sizes().begin(), input.sizes().end());
    expected.erase(expected.begin() + 1);
    TORCH_CHECK_VALUE(
        target.sizes() == at::IntArrayRef(expected),
        "softmax_loss: target of class indices must have shape ",
        at::IntArrayRef(expected),
        " for input of shape ",
        input.sizes(),
        ", got ",
        target.sizes());
  }
  for (const auto* opt : {&weight, &logit_bias, &logit_scale, &margin}) {
    if (!opt->has_value()) {
      continue;
    }
    const char* name = opt == &weight        ? "weight"
                       : opt == &logit_bias  ? "logit_bias"
                       : opt == &logit_scale ? "logit_scale"
                                             : "margin";
    const at::Tensor& t = opt->value();
    TORCH_CHECK_TYPE(
        at::isFloatingType(t.scalar_type()),
        "softmax_loss: ",
        name,
        " must be a floating tensor, got ",
        t.scalar_type());
    TORCH_CHECK_VALUE(
        t.dim() == 1 && t.size(0) == a.C,
        "softmax_loss: ",
        name,
        " must have shape (C,) = (",
        a.C,
        ",), got ",
        t.sizes());
    check_same_device("softmax_loss", name, t, "input", input);
  }
  TORCH_CHECK_VALUE(
      label_smoothing >= 0.0 && label_smoothing <= 1.0,
      "softmax_loss: label_smoothing must be in [0, 1], got ",
      label_smoothing);
  TORCH_CHECK_VALUE(
      std::isfinite(gamma) && gamma >= 0.0, "softmax_loss: gamma must be a finite number >= 0, got ", gamma);
  TORCH_CHECK_VALUE(
      reduction == kReductionNone || reduction == kReductionMean || reduction == kReductionSum,
      "softmax_loss: reduction must be 0 (none), 1 (mean) or 2 (sum), got ",
      reduction);
  TORCH_CHECK_VALUE(
      std::isfinite(scale) && scale > 0.0, "softmax_loss: scale must be a finite number > 0, got ", scale);
  TORCH_CHECK_VALUE(
      !(margin.has_value() && a.soft),
      "softmax_loss: margin needs class-index targets (it is subtracted at each sample's target class), got "
      "probability targets of dtype ",
      target.scalar_type());
  for (const auto* opt : {&logit_scale, &margin}) {
    if (opt->has_value()) {
      check_finite_class_vector(opt == &logit_scale ? "logit_scale" : "margin", opt->value());
    }
  }
  a.adjusted = logit_scale.has_value() || margin.has_value() || scale != 1.0;
  const bool spread = a.soft || label_smoothing > 0.0;
  a.mode = !spread ? kModeTarget : (gamma == 0.0 ? kModeLinear : kModeGeneral);
  return a;
}

// A channels-last input (N, C, d1, ...) keeps the classes innermost: every
// pixel is then a contiguous row of C logits and the row kernels apply as is,
// with no layout copy. Returns that memory format, or nullopt.
inline std::optional<at::MemoryFormat> class_last_format(const at::Tensor& input) {
  if (input.is_contiguous()) {
    return std::nullopt;
  }
  if (input.dim() == 4 && input.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    return at::MemoryFormat::ChannelsLast;
  }
  if (input.dim() == 5 && input.is_contiguous(at::MemoryFormat::ChannelsLast3d)) {
    return at::MemoryFormat::ChannelsLast3d;
  }
  return std::nullopt;
}

// The memory a call works on, decided once for both backends: contiguous
// [N, C, inner] logits (column kernels), or rows of C classes (inner == 1 or
// channels-last logits, read in place); the gradient in the logits' memory
// format; per-sample losses in the accumulation dtype.
struct SoftmaxLossLayout {
  at::Tensor x, target, grad, losses;
  at::ScalarType acc_type;
  bool row_layout;
  int64_t rows;          // N * inner: one loss each
  int64_t kernel_n;      // samples as the kernels see them
  int64_t kernel_inner;  // 1 for the row kernels
};

inline SoftmaxLossLayout softmax_loss_layout(
    const at::Tensor& input, const at::Tensor& target, const SoftmaxLossArgs& args, bool compute_grad) {
  SoftmaxLossLayout l;
  const std::optional<at::MemoryFormat> class_last = class_last_format(input);
  l.x = class_last ? input : input.contiguous();
  l.target = class_last && args.soft ? target.contiguous(*class_last) : target.contiguous();
  l.row_layout = args.inner == 1 || class_last.has_value();
  l.rows = args.N * args.inner;
  l.kernel_n = l.row_layout ? l.rows : args.N;
  l.kernel_inner = l.row_layout ? 1 : args.inner;
  // CPU: a large contiguous gradient comes from the buffer pool (warm pages, no
  // page faults per step; see cpu/buffer_pool.h)
  l.grad = !compute_grad                         ? at::empty({0}, l.x.options())
           : l.x.is_cpu() && l.x.is_contiguous() ? cpu::pooled_empty(l.x.sizes(), l.x.options())
                                                 : at::empty_like(l.x);
  l.acc_type = input.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  l.losses = at::empty({l.rows}, l.x.options().dtype(l.acc_type));
  return l;
}

inline void raise_invalid_target(int64_t index, int64_t value, int64_t num_classes, int64_t ignore_index) {
  TORCH_CHECK_VALUE(
      false,
      "softmax_loss: target must hold class indices in [0, C=",
      num_classes,
      ") or ignore_index=",
      ignore_index,
      ", got target ",
      value,
      " at flat index ",
      index);
}

// The mean's denominator as torch treats it: targets whose weights sum to zero
// (all ignored, or only zero-weight classes) give nan, 0 / 0 in torch, also
// when label smoothing makes the summed loss nonzero, where sum / 0 would be
// inf. A nan denominator makes the loss and the gradient scale nan alike.
inline double mean_denominator(double denominator) {
  return denominator == 0.0 ? std::numeric_limits<double>::quiet_NaN() : denominator;
}

// The same on the device (no host synchronisation).
inline at::Tensor mean_denominator(const at::Tensor& denominator) {
  return denominator.masked_fill(at::eq(denominator, 0), std::numeric_limits<double>::quiet_NaN());
}

// The shape of per-sample values of input (N, C, d1, ..., dk): (N, d1, ..., dk).
inline std::vector<int64_t> per_sample_shape(const at::Tensor& input) {
  std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
  shape.erase(shape.begin() + 1);
  return shape;
}

// Per-sample losses (acc dtype, flat [N * inner]) -> the loss the user sees.
// total: the sum of losses when the caller formed it (the CPU kernels' sum
// that does not depend on the thread count), or undefined for at::sum.
inline at::Tensor reduce_losses(
    const at::Tensor& losses,
    const SoftmaxLossArgs& a,
    int64_t reduction,
    const at::Tensor& denominator,
    const at::Tensor& input,
    at::Tensor total = at::Tensor()) {
  if (reduction == kReductionNone) {
    return losses.view(per_sample_shape(input)).to(input.scalar_type());
  }
  if (!total.defined()) {
    total = at::sum(losses);
  }
  if (reduction == kReductionMean) {
    total = at::div(total, denominator);
  }
  return total.to(input.scalar_type());
}

}  // namespace loss
}  // namespace balancedtorch
