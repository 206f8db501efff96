// Argument checks of the weighted sampling ops (CPU kernels; the samplers
// run in the data-loading process).
#pragma once

#include <algorithm>
#include <cmath>
#include <utility>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace balancedtorch {
namespace sampling {

// weights: 1-D, floating, finite, >= 0, positive sum. Returns the sum.
inline double check_sampling_weights(const at::Tensor& weights, const char* op) {
  TORCH_CHECK_TYPE(
      at::isFloatingType(weights.scalar_type()) || c10::isIntegralType(weights.scalar_type(), false),
      op,
      ": weights must be a real tensor, got ",
      weights.scalar_type());
  TORCH_CHECK_VALUE(weights.dim() == 1, op, ": weights must be 1-D, got shape ", weights.sizes());
  TORCH_CHECK_VALUE(weights.numel() > 0, op, ": weights is empty");
  TORCH_CHECK(weights.device().is_cpu(), op, ": weights must be on the CPU, got ", weights.device());
  const at::Tensor w = weights.to(at::kDouble).contiguous();
  const double* p = w.const_data_ptr<double>();
  double total = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    TORCH_CHECK_VALUE(
        std::isfinite(p[i]) && p[i] >= 0.0, op, ": weights must be finite and >= 0, got weights[", i, "] = ", p[i]);
    total += p[i];
  }
  TORCH_CHECK_VALUE(total > 0.0, op, ": weights sum to zero; nothing can be drawn");
  return total;
}

// The weights as a contiguous float64 tensor, checked, and their sum. When
// the sum overflows (e.g. [1e308, 1e308, 1]) or is so small that n / sum or
// log(u) / w overflow (subnormal weights), they are first multiplied by the
// power of two that brings their maximum into [0.5, 1): exact, and no ratio
// between weights changes (weights 2^1000 times below the largest may round
// to subnormals or zero, as in any float64 normalisation).
inline std::pair<at::Tensor, double> sampling_weights(const at::Tensor& weights, const char* op) {
  const double total = check_sampling_weights(weights, op);
  at::Tensor w = weights.to(at::kDouble).contiguous();
  if (std::isfinite(total) && total >= 0x1p-960) {
    return {w, total};
  }
  if (w.data_ptr() == weights.data_ptr()) {
    w = w.clone();  // never scale the caller's tensor
  }
  double* p = w.mutable_data_ptr<double>();
  double top = 0.0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    top = std::max(top, p[i]);
  }
  int exponent = 0;
  std::frexp(top, &exponent);
  double sum = 0.0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    p[i] = std::ldexp(p[i], -exponent);
    sum += p[i];
  }
  return {w, sum};
}

}  // namespace sampling
}  // namespace balancedtorch
