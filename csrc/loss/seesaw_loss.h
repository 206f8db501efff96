// seesaw_loss: the Seesaw loss (Wang et al., CVPR 2021) over C logits per
// sample, with the gradient produced in the same pass. Math shared by the CPU
// and CUDA kernels, and their host-side argument checks.
//
// For one sample with target t, logits z, cumulative class counts n (read as
// max(n_c, 1), as MMDetection clamps them), lse = log sum_c exp(z_c) and
// lp_c = z_c - lse = log sigma_c (sigma: the softmax of the detached logits):
//
//   mitigation   M_c = (n_c / n_t)^p           where n_c < n_t, else 1
//   compensation K_c = (sigma_c / s_t)^q       where sigma_c > s_t, else 1,
//                s_t = max(sigma_t, eps)
//   z'_c = z_c + log M_c + log K_c (c != t),   z'_t = z_t
//   loss = log sum_c exp(z'_c) - z_t           (cross-entropy of z')
//
// Both factors are computed in the log domain, never as ratios and powers:
//   log M_c = p * min(0, log n_c - log n_t)
//   log K_c = q * max(0, lp_c - max(lp_t, log eps))
// which equals MMDetection's values where those are finite and stays finite
// where its powers under/overflow (a tiny sigma_c, a huge p). At c = t both
// logs are exactly 0, so no case is needed for the target.
//
// M and K are constants of the backward pass (detached, as in MMDetection):
// dloss/dz_c = softmax(z')_c - [c == t]. That is the gradient the kernels
// write, scaled for the reduction.
#pragma once

#include <cmath>
#include <cstdint>

#include <c10/macros/Macros.h>

#include <ATen/core/Tensor.h>
#include <ATen/ops/div.h>
#include <ATen/ops/sum.h>
#include <c10/util/Exception.h>

#include "device_check.h"
#include "loss/softmax_loss.h"

namespace balancedtorch {
namespace loss {

// log K_c + log M_c, the shift of a non-target logit z (see above).
// lse: log sum exp of the row's logits; floor_t = max(lp_t, log eps);
// log_n_c, log_n_t: log max(n, 1) of class c and of the target. z and lse
// may be measured from any common origin: the kernels pass z - max and
// log sum exp(z - max), so logits of large magnitude (a row offset by 1e5)
// are never rounded at that magnitude, and neither is z' (kept as z' - max).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t seesaw_shift(
    acc_t z, acc_t lse, acc_t floor_t, acc_t log_n_c, acc_t log_n_t, acc_t p, acc_t q) {
  const acc_t dn = log_n_c - log_n_t;
  const acc_t dl = (z - lse) - floor_t;
  return p * (dn < acc_t(0) ? dn : acc_t(0)) + q * (dl > acc_t(0) ? dl : acc_t(0));
}

// max(lp_t, log eps): the log of the compensation factor's divisor.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t seesaw_floor(acc_t z_t, acc_t lse, acc_t log_eps) {
  const acc_t lp_t = z_t - lse;
  return lp_t > log_eps ? lp_t : log_eps;
}

// Host-side checks shared by both backends: shapes, dtypes, devices, options
// (values of cum_samples and target are checked by each backend: on the CPU
// naming the index, on CUDA on the device).
inline void check_seesaw_loss_args(
    const at::Tensor& input,
    const at::Tensor& target,
    const at::Tensor& cum_samples,
    double p,
    double q,
    double eps,
    int64_t reduction) {
  TORCH_CHECK_TYPE(
      at::isFloatingType(input.scalar_type()),
      "seesaw_loss: input must be a floating tensor (float16, bfloat16, float32 or float64), got ",
      input.scalar_type());
  TORCH_CHECK_VALUE(input.dim() == 2, "seesaw_loss: input must have shape (N, C), got ", input.sizes());
  TORCH_CHECK_VALUE(input.size(1) >= 1, "seesaw_loss: input must have at least one class (C = input.size(1) = 0)");
  check_same_device("seesaw_loss", "target", target, "input", input);
  check_same_device("seesaw_loss", "cum_samples", cum_samples, "input", input);
  const auto tt = target.scalar_type();
  TORCH_CHECK_TYPE(
      tt == c10::ScalarType::Long || tt == c10::ScalarType::Int || tt == c10::ScalarType::Byte,
      "seesaw_loss: target must hold class indices (int64, int32 or uint8), got ",
      tt);
  TORCH_CHECK_VALUE(
      target.dim() == 1 && target.size(0) == input.size(0),
      "seesaw_loss: target must have shape (N,) = (",
      input.size(0),
      ",) for input of shape ",
      input.sizes(),
      ", got ",
      target.sizes());
  TORCH_CHECK_TYPE(
      at::isFloatingType(cum_samples.scalar_type()) ||
          (at::isIntegralType(cum_samples.scalar_type(), /*includeBool=*/false)),
      "seesaw_loss: cum_samples must be a floating or integer tensor, got ",
      cum_samples.scalar_type());
  TORCH_CHECK_VALUE(
      cum_samples.dim() == 1 && cum_samples.size(0) == input.size(1),
      "seesaw_loss: cum_samples must have shape (C,) = (",
      input.size(1),
      ",), got ",
      cum_samples.sizes());
  TORCH_CHECK_VALUE(std::isfinite(p) && p >= 0.0, "seesaw_loss: p must be a finite number >= 0, got ", p);
  TORCH_CHECK_VALUE(std::isfinite(q) && q >= 0.0, "seesaw_loss: q must be a finite number >= 0, got ", q);
  TORCH_CHECK_VALUE(std::isfinite(eps) && eps > 0.0, "seesaw_loss: eps must be a finite number > 0, got ", eps);
  TORCH_CHECK_VALUE(
      reduction == kReductionNone || reduction == kReductionMean || reduction == kReductionSum,
      "seesaw_loss: reduction must be 0 (none), 1 (mean) or 2 (sum), got ",
      reduction);
}

// Calls f with a null pointer of the target's C++ type (int64, int32, uint8).
template <typename F>
void dispatch_seesaw_target(c10::ScalarType t, F&& f) {
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
      TORCH_CHECK_TYPE(false, "seesaw_loss: target must hold class indices (int64, int32 or uint8), got ", t);
  }
}

// Per-sample losses (N,) in the accumulation dtype -> the loss the user sees.
// denominator: the number of non-ignored targets (nan when there is none, as
// torch's mean of nothing), a 0-d tensor of the losses' dtype and device.
inline at::Tensor reduce_seesaw_losses(
    const at::Tensor& losses, int64_t reduction, const at::Tensor& denominator, c10::ScalarType dtype) {
  if (reduction == kReductionNone) {
    return losses.to(dtype);
  }
  at::Tensor total = at::sum(losses);
  if (reduction == kReductionMean) {
    total = at::div(total, denominator);
  }
  return total.to(dtype);
}

}  // namespace loss
}  // namespace balancedtorch
