// softmax_loss: fused cross-entropy / focal / logit-adjusted loss over a class
// dimension, with the gradient produced in the same pass.
//
// The logits are adjusted first, per class c and for the sample's target y:
//
//     z_c = s * (x_c * delta_c + bias_c - margin_c * [c == y])
//
// (delta: logit_scale, default 1; bias: logit_bias, default 0; margin, default
// 0, class-index targets only; s: scale > 0, default 1), and dz_c / dx_c =
// s * delta_c multiplies the gradient below. LDAM is delta = 1, bias = 0 and
// margin_c = C n_c^(-1/4); VS is delta_c = (n_c / n_max)^g and bias = tau log pi;
// logit adjustment and Balanced Softmax are bias = tau log pi alone. With
// delta, margin absent and s = 1 the kernels take their plain paths, as
// before the adjustment existed.
//
// For one sample with (adjusted) logits z_c, log-probabilities
// lp_c = z_c - lse, probabilities p_c and per-class coefficients
// a_c = w_c * q_c (q: the target distribution, one-hot or smoothed or given),
//
//     loss = sum_c a_c * (1 - p_c)^gamma * (-lp_c)
//     dloss/dz_c = h_c - p_c * H,   h_c = a_c * (1 - p_c)^gamma * u_c,  H = sum_k h_k
//     u_c = gamma * p_c * lp_c / (1 - p_c) - 1
//
// gamma = 0 is cross-entropy (u = -1); q one-hot with weight w is torch's
// weighted NLL; q = (1 - eps) * onehot + eps / C is torch's label smoothing
// (its smoothing term sum_c w_c * (-lp_c) is exactly this with q = eps / C).
// 1 - p is computed as -expm1(lp), and lp / (1 - p) -> -1 as p -> 1, so the
// focal gradient stays finite for p -> 1 and for 0 < gamma < 1.
#pragma once

#include <cmath>
#include <cstdint>

#include <c10/macros/Macros.h>

namespace balancedtorch {
namespace loss {

enum Reduction : int64_t { kReductionNone = 0, kReductionMean = 1, kReductionSum = 2 };

// Which closed form a call uses; chosen once per call on the host.
enum SoftmaxLossMode : int {
  // class-index targets without label smoothing: only p_target matters (any gamma)
  kModeTarget = 0,
  // gamma == 0 with label smoothing or probability targets: linear in lp
  kModeLinear = 1,
  // gamma > 0 with label smoothing or probability targets
  kModeGeneral = 2,
};

C10_HOST_DEVICE inline float math_exp(float x) {
  return ::expf(x);
}
C10_HOST_DEVICE inline double math_exp(double x) {
  return ::exp(x);
}
C10_HOST_DEVICE inline float math_expm1(float x) {
  return ::expm1f(x);
}
C10_HOST_DEVICE inline double math_expm1(double x) {
  return ::expm1(x);
}
C10_HOST_DEVICE inline float math_log(float x) {
  return ::logf(x);
}
C10_HOST_DEVICE inline double math_log(double x) {
  return ::log(x);
}
C10_HOST_DEVICE inline float math_pow(float x, float y) {
  return ::powf(x, y);
}
C10_HOST_DEVICE inline double math_pow(double x, double y) {
  return ::pow(x, y);
}
C10_HOST_DEVICE inline float math_log1p(float x) {
  return ::log1pf(x);
}
C10_HOST_DEVICE inline double math_log1p(double x) {
  return ::log1p(x);
}

// (1 - p)^gamma and u = gamma * p * lp / (1 - p) - 1 for one class with
// log-probability lp <= 0.
template <typename acc_t>
C10_HOST_DEVICE inline void focal_terms(acc_t lp, acc_t gamma, acc_t& pw, acc_t& u) {
  if (gamma == acc_t(0)) {
    pw = acc_t(1);
    u = acc_t(-1);
    return;
  }
  const acc_t p = math_exp(lp);
  const acc_t omp = -math_expm1(lp);
  pw = gamma == acc_t(2) ? omp * omp : (gamma == acc_t(1) ? omp : math_pow(omp, gamma));
  const acc_t ratio = omp > acc_t(0) ? lp / omp : acc_t(-1);
  u = gamma * p * ratio - acc_t(1);
}

// Target-class terms from the split of the softmax denominator
// S = e_t + s_other, e_c = exp(z_c - m) (m: the row max), for class-index
// targets: 1 - p_t = s_other / S keeps full relative precision as p_t -> 1,
// and so does log p_t = -log1p(s_other) when the target holds the max
// (e_t = 1); 1 - p_t is never formed by cancellation. Writes log p_t, the
// focal factor (1 - p_t)^gamma and u (see the top of this file); returns S.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t target_terms(
    acc_t zt_minus_m, acc_t s_other, acc_t gamma, acc_t& lp, acc_t& pw, acc_t& u) {
  const acc_t et = math_exp(zt_minus_m);
  const acc_t S = et + s_other;
  lp = zt_minus_m >= acc_t(0) ? -math_log1p(s_other) : zt_minus_m - math_log(S);
  lp = lp > acc_t(0) ? acc_t(0) : lp;
  if (gamma == acc_t(0)) {
    pw = acc_t(1);
    u = acc_t(-1);
    return S;
  }
  const acc_t omp = s_other / S;
  const acc_t p = et / S;
  pw = gamma == acc_t(2) ? omp * omp : (gamma == acc_t(1) ? omp : math_pow(omp, gamma));
  const acc_t ratio = omp > acc_t(0) ? lp / omp : acc_t(-1);
  u = gamma * p * ratio - acc_t(1);
  return S;
}

// The softmax probability of the target, p_t = e_t / S (e_t = exp(z_t - m),
// S the full denominator), formed as softmax forms it rather than as
// exp(log p_t): equal logits give exactly 1 / C, and equal rows equal values,
// so a comparison of p_t with a threshold (OHEM) ties exactly where softmax's
// does.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t target_prob(acc_t zt_minus_m, acc_t S) {
  return math_exp(zt_minus_m) / S;
}

// Target coefficient q_c for class-index targets with label smoothing eps.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t smoothed_q(bool is_target, acc_t eps, acc_t inv_c) {
  return (is_target ? acc_t(1) - eps : acc_t(0)) + eps * inv_c;
}

// Sigmoid focal loss of one element, torchvision's definition plus pos_weight:
//   p = sigmoid(x), ce = -(pw * y * log p + (1 - y) * log(1 - p)),
//   p_t = p * y + (1 - p) * (1 - y), loss = ce * (1 - p_t)^gamma * alpha_t,
//   alpha_t = alpha * y + (1 - alpha) * (1 - y) (when alpha >= 0).
// Returns the loss and writes dloss/dx to grad. log p and log(1 - p) use the
// stable softplus forms, so |x| > 88 neither overflows nor loses the gradient.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t sigmoid_focal_element(
    acc_t x, acc_t y, acc_t alpha, acc_t gamma, acc_t pos_weight, acc_t& grad) {
  // log(1 + exp(-|x|)) shared by both log-sigmoids
  const acc_t ax = x < acc_t(0) ? -x : x;
  const acc_t e = math_exp(-ax);
  const acc_t sp = math_log1p(e);
  const acc_t log_p = (x < acc_t(0) ? x : acc_t(0)) - sp;     // log sigmoid(x)
  const acc_t log_1mp = (x > acc_t(0) ? -x : acc_t(0)) - sp;  // log sigmoid(-x)
  const acc_t inv = acc_t(1) / (acc_t(1) + e);
  const acc_t p = x >= acc_t(0) ? inv : e * inv;            // sigmoid(x)
  const acc_t one_minus_p = x >= acc_t(0) ? e * inv : inv;  // sigmoid(-x)
  const acc_t a_pos = pos_weight * y;
  const acc_t a_neg = acc_t(1) - y;
  const acc_t ce = -(a_pos * log_p + a_neg * log_1mp);
  // d ce / dx = -(a_pos * (1 - p) - a_neg * p)
  const acc_t dce = a_neg * p - a_pos * one_minus_p;
  const acc_t alpha_t = alpha >= acc_t(0) ? alpha * y + (acc_t(1) - alpha) * (acc_t(1) - y) : acc_t(1);
  if (gamma == acc_t(0)) {
    grad = alpha_t * dce;
    return alpha_t * ce;
  }
  // m = 1 - p_t = p + y - 2 p y = p * (1 - y) + (1 - p) * y; dm/dx = p (1 - p) (1 - 2y)
  const acc_t m = p * (acc_t(1) - y) + one_minus_p * y;
  const acc_t mod = gamma == acc_t(2) ? m * m : (gamma == acc_t(1) ? m : math_pow(m, gamma));
  // d m^gamma / dx = gamma * m^(gamma - 1) * dm/dx, written without m^(gamma - 1)
  // (which is infinite at m = 0 for gamma < 1): m^gamma * gamma / m * dm/dx,
  // and dm/dx / m is bounded because m >= min(p, 1 - p) when y is in [0, 1].
  const acc_t dm = p * one_minus_p * (acc_t(1) - acc_t(2) * y);
  const acc_t dmod = m > acc_t(0) ? gamma * mod * (dm / m) : acc_t(0);
  grad = alpha_t * (dce * mod + ce * dmod);
  return alpha_t * ce * mod;
}

}  // namespace loss
}  // namespace balancedtorch
