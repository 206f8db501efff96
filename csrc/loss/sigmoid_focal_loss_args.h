// Host-side argument checks shared by the CPU and CUDA sigmoid_focal_loss kernels.
#pragma once

#include <cmath>
#include <optional>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "device_check.h"
#include "loss/softmax_loss.h"

namespace balancedtorch {
namespace loss {

// The class dimension pos_weight follows: dim 1 of (N, C, d1, ..., dk), as
// the softmax losses and dense BCEWithLogits users' (1, C, 1, ..., 1)
// pos_weight; dim 0 of a 1-D input (C,); one class for a 0-D input.
inline int64_t sigmoid_focal_class_dim(const at::Tensor& input) {
  return input.dim() >= 2 ? 1 : 0;
}

inline int64_t sigmoid_focal_classes(const at::Tensor& input) {
  return input.dim() > 0 ? input.size(sigmoid_focal_class_dim(input)) : 1;
}

inline void check_sigmoid_focal_loss_args(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& pos_weight,
    double alpha,
    double gamma,
    int64_t reduction) {
  TORCH_CHECK_TYPE(
      at::isFloatingType(input.scalar_type()),
      "sigmoid_focal_loss: input must be a floating tensor, got ",
      input.scalar_type());
  TORCH_CHECK_TYPE(
      target.scalar_type() == input.scalar_type(),
      "sigmoid_focal_loss: target must have the input's dtype ",
      input.scalar_type(),
      ", got ",
      target.scalar_type());
  TORCH_CHECK_VALUE(
      target.sizes() == input.sizes(),
      "sigmoid_focal_loss: target must have the input's shape ",
      input.sizes(),
      ", got ",
      target.sizes());
  check_same_device("sigmoid_focal_loss", "target", target, "input", input);
  if (pos_weight.has_value()) {
    const at::Tensor& pw = *pos_weight;
    const int64_t C = sigmoid_focal_classes(input);
    TORCH_CHECK_TYPE(
        at::isFloatingType(pw.scalar_type()),
        "sigmoid_focal_loss: pos_weight must be a floating tensor, got ",
        pw.scalar_type());
    TORCH_CHECK_VALUE(
        pw.dim() == 1 && pw.size(0) == C,
        "sigmoid_focal_loss: pos_weight must have shape (C,) = (",
        C,
        ",) (the input's class dimension: dim 1 of (N, C, ...), ",
        "dim 0 of (C,)), got ",
        pw.sizes());
    check_same_device("sigmoid_focal_loss", "pos_weight", pw, "input", input);
  }
  TORCH_CHECK_VALUE(
      !std::isnan(alpha) && alpha <= 1.0, "sigmoid_focal_loss: alpha must be <= 1 (negative disables it), got ", alpha);
  TORCH_CHECK_VALUE(
      std::isfinite(gamma) && gamma >= 0.0, "sigmoid_focal_loss: gamma must be a finite number >= 0, got ", gamma);
  TORCH_CHECK_VALUE(
      reduction == kReductionNone || reduction == kReductionMean || reduction == kReductionSum,
      "sigmoid_focal_loss: reduction must be 0 (none), 1 (mean) or 2 (sum), got ",
      reduction);
}

// The memory format of the outputs (per-element losses and gradient): the
// input's, as torch's elementwise ops give (channels-last in, channels-last
// out). The loss is elementwise, so the kernels run over memory in that order
// as is; pos_weight follows the class dimension (see
// sigmoid_focal_pos_weight_inner).
inline at::MemoryFormat sigmoid_focal_output_format(const at::Tensor& input) {
  return input.is_contiguous() ? at::MemoryFormat::Contiguous : input.suggest_memory_format();
}

// For x laid out densely in `format` (the output format above): element i in
// memory order has pos_weight[(i / inner) % C]. Contiguous (N, C, d1, ...):
// inner = d1 * ... * dk; channels-last: the class is innermost, inner = 1.
inline int64_t sigmoid_focal_pos_weight_inner(const at::Tensor& x, at::MemoryFormat format) {
  if (x.dim() < 2 || format != at::MemoryFormat::Contiguous) {
    return 1;
  }
  int64_t inner = 1;
  for (int64_t d = 2; d < x.dim(); ++d) {
    inner *= x.size(d);
  }
  return inner;
}

}  // namespace loss
}  // namespace balancedtorch
