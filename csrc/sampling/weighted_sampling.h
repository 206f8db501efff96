// Argument checks of the weighted sampling ops (CPU kernels; the samplers
// run in the data-loading process).
#pragma once

#include <cmath>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace balancedtorch {
namespace sampling {

// weights: 1-D, floating, finite, >= 0, positive sum. Returns the sum.
inline double check_sampling_weights(const at::Tensor& weights, const char* op) {
  TORCH_CHECK_TYPE(
      at::isFloatingType(weights.scalar_type()) || c10::isIntegralType(weights.scalar_type(), false),
      op, ": weights must be a real tensor, got ", weights.scalar_type());
  TORCH_CHECK_VALUE(weights.dim() == 1, op, ": weights must be 1-D, got shape ", weights.sizes());
  TORCH_CHECK_VALUE(weights.numel() > 0, op, ": weights is empty");
  TORCH_CHECK(weights.device().is_cpu(), op, ": weights must be on the CPU, got ", weights.device());
  const at::Tensor w = weights.to(at::kDouble).contiguous();
  const double* p = w.const_data_ptr<double>();
  double total = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    TORCH_CHECK_VALUE(std::isfinite(p[i]) && p[i] >= 0.0, op, ": weights must be finite and >= 0, got weights[", i, "] = ", p[i]);
    total += p[i];
  }
  TORCH_CHECK_VALUE(total > 0.0, op, ": weights sum to zero; nothing can be drawn");
  return total;
}

} // namespace sampling
} // namespace balancedtorch
