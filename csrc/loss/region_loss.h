// region_loss: per-pixel math of the fused Dice / Tversky / generalised Dice
// losses and their cross-entropy / focal companions (DiceCE, DiceFocal),
// shared by the CPU and CUDA kernels.
//
// Forward accumulates, per (sample n, class c) and over the valid pixels,
//     I_nc = sum p * t,   P_nc = sum p (or p^2),   T_nc = sum t (or t^2)
// with p = softmax over classes (or sigmoid per element) of the logits and t
// the target (one-hot of a class index, or the given probabilities), plus the
// CE/focal term and its mean's denominator per sample. The loss itself is a
// small function of these sums, evaluated on the host side in Python; its
// derivatives cI = dL/dI, cP = dL/dP (per (n, c)) and ce = dL/d(CE sum) come
// back to the gradient pass, which per pixel writes
//     softmax: g_c = p_c (a_c - sum_k a_k p_k) + ce (h_c - p_c H)
//     sigmoid: g_c = a_c p_c (1 - p_c) + ce w'_c dce_c
// with a_c = cI_c t_c + cP_c (1 or 2 p_c) and dCE/dz_c = h_c - p_c H the
// softmax-loss gradient of softmax_loss.h (h_c = a'_c (1 - p_c)^gamma u_c).
//
// activation "none" (probabilities in, MONAI without an activation): p = the
// input itself, so g_c = a_c; the CE part still takes the input as logits
// (softmax CE, or MONAI's sigmoid focal loss for the focal part).
// soft_label (MONAI >= 1.4, first-order sums only): I, P, T are
// (|p| + |t| - |p - t|) / 2, |p| and |t| per element, so a_c uses
// dI/dp = (sgn p - sgn(p - t)) / 2 and dP/dp = sgn p (region_dice_terms).
#pragma once

#include <cstdint>
#include <limits>

#include <c10/macros/Macros.h>

#include "loss/softmax_loss.h"

namespace balancedtorch {
namespace loss {

enum RegionActivation : int64_t { kActivationSoftmax = 0, kActivationSigmoid = 1, kActivationNone = 2 };
enum RegionCeKind : int64_t { kRegionNoCe = 0, kRegionCe = 1, kRegionFocal = 2 };

// One call's parameters, identical on host and device.
template <typename acc_t>
struct RegionParams {
  int64_t C = 0;
  int64_t cs = 1;        // elements between two classes of one pixel
  bool sigmoid = false;  // elementwise path (sigmoid activation)
  bool none = false;     // activation "none": the Dice part reads the input as probabilities
  bool soft = false;     // MONAI's soft_label formulation of I, P, T
  bool squared = false;  // P and T sum squares (MONAI's squared_pred)
  bool dense = false;    // target (N, C, ...) of probabilities / multi-label
  int64_t ignore_index = -100;
  int64_t ce_kind = kRegionNoCe;
  int64_t ce_first_class = 0;   // sigmoid focal: classes below it are left out
  bool smoothing_mode = false;  // softmax CE over all classes (label smoothing or dense target)
  acc_t gamma = 0;              // focal exponent of the CE part
  acc_t eps = 0;                // label smoothing
  acc_t alpha = -1;             // sigmoid focal alpha (< 0: none), MONAI's / torchvision's alpha_t
  const acc_t* weight = nullptr;
};

// Offset of pixel s of sample n (class 0): channels-last (classes innermost) or NC[S].
C10_HOST_DEVICE inline int64_t region_pixel_offset(bool class_last, int64_t n, int64_t s, int64_t C, int64_t S) {
  return class_last ? (n * S + s) * C : n * C * S + s;
}

template <typename acc_t>
C10_HOST_DEVICE inline acc_t region_weight(const RegionParams<acc_t>& P, int64_t c) {
  return P.weight ? P.weight[c] : acc_t(1);
}

// Softmax normaliser of one pixel: m = max_c z_c, S = sum_c exp(z_c - m) and
// s_other = the same sum without class t (t < 0: no class left out), which
// keeps 1 - p_t exact as p_t -> 1 (see target_terms).
template <typename acc_t, typename scalar_t>
C10_HOST_DEVICE inline void region_softmax_norm(
    const scalar_t* x, int64_t cs, int64_t C, int64_t t, acc_t& m, acc_t& S, acc_t& s_other) {
  m = -std::numeric_limits<acc_t>::infinity();
  for (int64_t c = 0; c < C; ++c) {
    const acc_t z = static_cast<acc_t>(x[c * cs]);
    m = (z > m || z != z) ? z : m;
  }
  if (m == -std::numeric_limits<acc_t>::infinity()) {
    m = acc_t(0);
  }
  S = acc_t(0);
  s_other = acc_t(0);
  for (int64_t c = 0; c < C; ++c) {
    const acc_t e = math_exp(static_cast<acc_t>(x[c * cs]) - m);
    S += e;
    s_other += c == t ? acc_t(0) : e;
  }
}

// Target coefficient of class c for the CE part: (smoothed) one-hot or the
// smoothed probability target, times the class weight.
template <typename acc_t, typename scalar_t>
C10_HOST_DEVICE inline acc_t region_ce_a(const RegionParams<acc_t>& P, int64_t c, int64_t t, const scalar_t* q) {
  const acc_t inv_c = acc_t(1) / static_cast<acc_t>(P.C);
  const acc_t qc =
      P.dense ? (acc_t(1) - P.eps) * static_cast<acc_t>(q[c * P.cs]) + P.eps * inv_c : smoothed_q(c == t, P.eps, inv_c);
  return qc * region_weight(P, c);
}

// h_c of dCE/dz_c = h_c - p_c H in the smoothing/dense mode; adds the loss of
// class c to loss.
template <typename acc_t, typename scalar_t>
C10_HOST_DEVICE inline acc_t region_ce_h(
    const RegionParams<acc_t>& P,
    int64_t c,
    int64_t t,
    const scalar_t* x,
    const scalar_t* q,
    acc_t m,
    acc_t logS,
    acc_t& loss) {
  const acc_t a = region_ce_a(P, c, t, q);
  acc_t lp = static_cast<acc_t>(x[c * P.cs]) - m - logS;
  lp = lp > acc_t(0) ? acc_t(0) : lp;
  acc_t pw, u;
  focal_terms(lp, P.gamma, pw, u);
  loss -= a * pw * lp;
  return a * pw * u;
}

// Softmax CE/focal part of one valid pixel: returns its loss, writes H and,
// in the target mode, hh (h at the target class; zero elsewhere), and the
// pixel's share of the mean's denominator.
template <typename acc_t, typename scalar_t>
C10_HOST_DEVICE inline acc_t region_softmax_ce(
    const RegionParams<acc_t>& P,
    const scalar_t* x,
    const scalar_t* q,
    int64_t t,
    acc_t m,
    acc_t S,
    acc_t s_other,
    acc_t& H,
    acc_t& hh,
    acc_t& den) {
  if (!P.smoothing_mode) {
    const acc_t wt = region_weight(P, t);
    acc_t lp, pw, u;
    target_terms(static_cast<acc_t>(x[t * P.cs]) - m, s_other, P.gamma, lp, pw, u);
    hh = wt * pw * u;
    H = hh;
    den = wt;
    return -wt * pw * lp;
  }
  const acc_t logS = math_log(S);
  acc_t loss = acc_t(0);
  H = acc_t(0);
  hh = acc_t(0);
  for (int64_t c = 0; c < P.C; ++c) {
    H += region_ce_h(P, c, t, x, q, m, logS, loss);
  }
  den = P.dense ? acc_t(1) : region_weight(P, t);
  return loss;
}

template <typename acc_t>
C10_HOST_DEVICE inline acc_t region_sign(acc_t v) {
  return v > acc_t(0) ? acc_t(1) : (v < acc_t(0) ? acc_t(-1) : acc_t(0));
}

// One element's contributions (i, pp, tt) to I, P, T for probability p and
// target t: p t, p (p^2), t (t^2); soft_label (first order only):
// (|p| + |t| - |p - t|) / 2, |p|, |t|.
template <typename acc_t>
C10_HOST_DEVICE inline void region_dice_terms(
    bool squared, bool soft, acc_t p, acc_t t, acc_t& i, acc_t& pp, acc_t& tt) {
  if (soft && !squared) {
    const acc_t ap = p < acc_t(0) ? -p : p, at = t < acc_t(0) ? -t : t, d = p - t;
    i = (ap + at - (d < acc_t(0) ? -d : d)) * acc_t(0.5);
    pp = ap;
    tt = at;
    return;
  }
  i = p * t;
  pp = squared ? p * p : p;
  tt = squared ? t * t : t;
}

// d(cI I + cP P)/dp of one element (a_c of the header comment).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t region_dice_a(bool squared, bool soft, acc_t p, acc_t t, acc_t cI, acc_t cP) {
  if (soft && !squared) {
    const acc_t sp = region_sign(p);
    return cI * (sp - region_sign(p - t)) * acc_t(0.5) + cP * sp;
  }
  return cI * t + cP * (squared ? acc_t(2) * p : acc_t(1));
}

// Numerically stable sigmoid.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t region_sigmoid(acc_t x) {
  const acc_t e = math_exp(x >= acc_t(0) ? -x : x);
  const acc_t inv = acc_t(1) / (acc_t(1) + e);
  return x >= acc_t(0) ? inv : e * inv;
}

// Sigmoid CE/focal part of one element of class c: returns the loss and writes
// its derivative. CE: BCE with pos_weight = weight (torch's
// BCEWithLogitsLoss); focal: sigmoid focal loss (alpha_t of P.alpha) times
// weight, classes below ce_first_class left out (MONAI's FocalLoss without
// background).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t region_sigmoid_ce(const RegionParams<acc_t>& P, int64_t c, acc_t x, acc_t y, acc_t& d) {
  if (P.ce_kind == kRegionCe) {
    return sigmoid_focal_element(x, y, acc_t(-1), acc_t(0), region_weight(P, c), d);
  }
  if (c < P.ce_first_class) {
    d = acc_t(0);
    return acc_t(0);
  }
  const acc_t w = region_weight(P, c);
  const acc_t l = sigmoid_focal_element(x, y, P.alpha, P.gamma, acc_t(1), d);
  d *= w;
  return l * w;
}

}  // namespace loss
}  // namespace balancedtorch
