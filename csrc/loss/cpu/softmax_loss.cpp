// CPU kernels of balancedtorch::softmax_loss.
//
// The input is viewed as [N, C, inner]. With inner == 1 every sample is a
// contiguous row, vectorised over classes. With inner > 1 (segmentation,
// NC...) a tile of pixels is vectorised over pixels: for each class the
// tile's pixels are contiguous, so the class dimension is read with its
// stride and never permuted. Each sample's logits are read from memory once
// (later passes hit L1) and, when a gradient is wanted, the gradient is
// written once, already scaled for the reduction.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include "cpu/vec_math.h"
#include "loss/softmax_loss.h"
#include "loss/softmax_loss_args.h"

namespace balancedtorch {
namespace loss {
namespace {

// Elements ahead of the current tile that the column kernel prefetches.
constexpr int64_t kPrefetchAhead = 64;
// Class indices are compared in the vector type as (c >> 24, c & (2^24 - 1)):
// both parts are exact in float32 for any C below 2^48.
constexpr int kClassSplitBits = 24;
constexpr int64_t kClassSplitMask = (int64_t{1} << kClassSplitBits) - 1;

template <typename acc_t>
struct Problem {
  int64_t N = 0, C = 0, inner = 0;
  int mode = kModeTarget;
  bool soft = false;
  bool grad = false;
  const acc_t* weight = nullptr;  // [C] or null
  const acc_t* bias = nullptr;    // [C] or null
  acc_t weight_sum = 0;           // sum_c w_c (C without weights)
  int64_t ignore_index = -100;
  acc_t eps = 0;  // label smoothing
  acc_t gamma = 0;
  acc_t scale = 1;        // gradient scale of the reduction (1 / denominator for mean)
  acc_t* prob = nullptr;  // [N * inner] softmax p of the target (class indices; 0 where ignored), or null
};

template <typename acc_t>
inline acc_t weight_of(const Problem<acc_t>& P, int64_t c) {
  return P.weight ? P.weight[c] : acc_t(1);
}

// Reads a target as int64 (validated before the kernel runs).
template <typename target_t>
inline int64_t target_at(const target_t* t, int64_t i) {
  return static_cast<int64_t>(t[i]);
}

// ---------------------------------------------------------------------------
// Rows: inner == 1, one contiguous row of C logits per sample.
// ---------------------------------------------------------------------------

// Loss of one row; writes the scaled gradient of the row to g when P.grad.
// z: the row's logits (acc_t, contiguous); e: scratch of C (may alias g);
// q: the row's probability target (soft) or null; h: scratch of C (general mode);
// p_t: where the target's softmax probability goes (class indices), or null.
template <typename acc_t>
acc_t row_loss(
    const Problem<acc_t>& P, const acc_t* z, int64_t target, const acc_t* q, acc_t* e, acc_t* g, acc_t* h, acc_t* p_t) {
  using Vec = at::vec::Vectorized<acc_t>;
  constexpr int64_t W = Vec::size();
  const int64_t C = P.C;
  const acc_t* b = P.bias;
  const acc_t* w = P.weight;
  const acc_t inv_c = acc_t(1) / acc_t(C);
  auto zv = [&](int64_t c) { return b ? Vec::loadu(z + c) + Vec::loadu(b + c) : Vec::loadu(z + c); };
  auto zs = [&](int64_t c) { return b ? z[c] + b[c] : z[c]; };

  // pass A: max
  acc_t m = -std::numeric_limits<acc_t>::infinity();
  {
    Vec vm(m);
    int64_t c = 0;
    for (; c + W <= C; c += W) {
      vm = at::vec::maximum(vm, zv(c));
    }
    m = at::vec::vec_reduce_all<acc_t>([](Vec& x, Vec& y) { return at::vec::maximum(x, y); }, vm);
    for (; c < C; ++c) {
      m = std::max(m, zs(c));
    }
  }
  if (!std::isfinite(m)) {
    // +inf / nan logits: let the scalar formulas propagate nan as torch does.
    m = std::isnan(m) || m > 0 ? m : acc_t(0);
  }

  // pass B: e = exp(z - m), S = sum e; linear mode also D = sum a_c (m - z_c), A = sum a_c
  const bool linear = P.mode == kModeLinear;
  const bool target_mode = P.mode == kModeTarget;
  const bool soft_linear = linear && P.soft;
  const acc_t smooth = linear && !P.soft ? P.eps * inv_c : acc_t(0);
  acc_t S = 0, D = 0, A = 0, S_every = 0;  // S_every: over every class, for p_t
  {
    const Vec vmv(m);
    Vec vs(0), vd(0), va(0), vall(0);
    const Vec one_minus_eps(acc_t(1) - P.eps), eps_c(P.eps * inv_c);
    int64_t c = 0;
    for (; c + W <= C; c += W) {
      const Vec zc = zv(c);
      const Vec ec = cpu::exp(zc - vmv);
      ec.store(e + c);
      if (p_t != nullptr) {
        vall = vall + ec;
      }
      if (target_mode && target >= c && target < c + W) {
        // s_other excludes the target (see target_terms)
        const acc_t saved = e[target];
        e[target] = acc_t(0);
        vs = vs + Vec::loadu(e + c);
        e[target] = saved;
      } else {
        vs = vs + ec;
      }
      if (soft_linear) {
        Vec a = at::vec::fmadd(one_minus_eps, Vec::loadu(q + c), eps_c);
        if (w) {
          a = a * Vec::loadu(w + c);
        }
        va = va + a;
        vd = at::vec::fmadd(a, vmv - zc, vd);
      } else if (linear && smooth != acc_t(0)) {
        vd = w ? at::vec::fmadd(Vec::loadu(w + c), vmv - zc, vd) : vd + (vmv - zc);
      }
    }
    auto sum = [](Vec& x, Vec& y) { return x + y; };
    S = at::vec::vec_reduce_all<acc_t>(sum, vs);
    D = at::vec::vec_reduce_all<acc_t>(sum, vd);
    A = at::vec::vec_reduce_all<acc_t>(sum, va);
    S_every = at::vec::vec_reduce_all<acc_t>(sum, vall);
    for (; c < C; ++c) {
      const acc_t zc = zs(c);
      const acc_t ec = std::exp(zc - m);
      e[c] = ec;
      S_every += ec;
      if (!(target_mode && c == target)) {
        S += ec;
      }
      if (soft_linear) {
        const acc_t a = ((acc_t(1) - P.eps) * q[c] + P.eps * inv_c) * weight_of(P, c);
        A += a;
        D += a * (m - zc);
      } else if (linear && smooth != acc_t(0)) {
        D += weight_of(P, c) * (m - zc);
      }
    }
  }
  const acc_t logS = std::log(S);
  const acc_t scale = P.scale;
  const acc_t inv_S = acc_t(1) / S;

  if (P.mode == kModeTarget) {
    const acc_t wt = weight_of(P, target);
    acc_t lp, pw, u;
    const acc_t S_all = target_terms(zs(target) - m, S, P.gamma, lp, pw, u);
    if (p_t != nullptr) {
      // the denominator summed over every class in one order, not S_all (the
      // others, then the target): p must not depend on where the target sits,
      // so equal logit rows give equal p whatever their targets (OHEM's ties)
      *p_t = target_prob(zs(target) - m, S_every);
    }
    const acc_t hh = wt * pw * u;
    if (P.grad) {
      const acc_t inv_S = acc_t(1) / S_all;
      const Vec coef(-hh * scale * inv_S);
      int64_t c = 0;
      for (; c + W <= C; c += W) {
        (Vec::loadu(e + c) * coef).store(g + c);
      }
      for (; c < C; ++c) {
        g[c] = e[c] * (-hh * scale * inv_S);
      }
      // hh (1 - p_t) without the cancellation of hh - hh p_t
      g[target] = hh * scale * (S * inv_S);
    }
    return -wt * pw * lp;
  }

  if (linear) {
    acc_t loss;
    if (P.soft) {
      loss = A * logS + D;
    } else {
      const acc_t wt = weight_of(P, target);
      A = (acc_t(1) - P.eps) * wt + smooth * P.weight_sum;
      loss = A * logS + (acc_t(1) - P.eps) * wt * (m - zs(target)) + smooth * D;
    }
    if (P.grad) {
      const acc_t ce = A * scale * inv_S;
      const Vec vce(ce), one_minus_eps(acc_t(1) - P.eps), eps_c(P.eps * inv_c), vscale(scale);
      int64_t c = 0;
      for (; c + W <= C; c += W) {
        Vec a;
        if (P.soft) {
          a = at::vec::fmadd(one_minus_eps, Vec::loadu(q + c), eps_c);
        } else {
          a = eps_c;
        }
        if (w) {
          a = a * Vec::loadu(w + c);
        }
        (Vec::loadu(e + c) * vce - a * vscale).store(g + c);
      }
      for (; c < C; ++c) {
        const acc_t qc = P.soft ? (acc_t(1) - P.eps) * q[c] + P.eps * inv_c : P.eps * inv_c;
        g[c] = e[c] * ce - qc * weight_of(P, c) * scale;
      }
      if (!P.soft) {
        g[target] -= (acc_t(1) - P.eps) * weight_of(P, target) * scale;
      }
    }
    return loss;
  }

  // general: gamma > 0 with smoothing or probability targets (scalar; rare)
  acc_t loss = 0, H = 0;
  for (int64_t c = 0; c < C; ++c) {
    const acc_t qc = P.soft ? (acc_t(1) - P.eps) * q[c] + P.eps * inv_c : smoothed_q(c == target, P.eps, inv_c);
    const acc_t a = qc * weight_of(P, c);
    const acc_t lp = (zs(c) - m) - logS;
    acc_t pw, u;
    focal_terms(lp, P.gamma, pw, u);
    loss -= a * pw * lp;
    h[c] = a * pw * u;
    H += h[c];
  }
  if (P.grad) {
    for (int64_t c = 0; c < C; ++c) {
      g[c] = (h[c] - e[c] * inv_S * H) * scale;
    }
  }
  return loss;
}

template <typename scalar_t, typename acc_t, typename target_t>
void rows_kernel(
    const Problem<acc_t>& P,
    const scalar_t* x,
    const target_t* target,
    const scalar_t* soft,
    scalar_t* grad,
    acc_t* losses) {
  constexpr bool direct = std::is_same_v<scalar_t, acc_t>;
  const int64_t C = P.C;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1));
  at::parallel_for(0, P.N, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> zbuf(direct ? 0 : C), qbuf(direct || !P.soft ? 0 : C);
    std::vector<acc_t> ebuf(direct && P.grad ? 0 : C), gbuf(direct || !P.grad ? 0 : C);
    std::vector<acc_t> hbuf(P.mode == kModeGeneral ? C : 0);
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t* xr = x + i * C;
      scalar_t* gr = P.grad ? grad + i * C : nullptr;
      int64_t t = -1;
      if (!P.soft) {
        t = target_at(target, i);
        if (t == P.ignore_index) {
          losses[i] = acc_t(0);
          if (P.prob) {
            P.prob[i] = acc_t(0);
          }
          if (gr) {
            std::fill(gr, gr + C, scalar_t(0));
          }
          continue;
        }
      }
      const acc_t* z;
      const acc_t* q = nullptr;
      acc_t* g;
      acc_t* e;
      if constexpr (direct) {
        z = xr;
        q = P.soft ? soft + i * C : nullptr;
        g = gr;
        e = gr ? gr : ebuf.data();
      } else {
        at::vec::convert(xr, zbuf.data(), C);
        z = zbuf.data();
        if (P.soft) {
          at::vec::convert(soft + i * C, qbuf.data(), C);
          q = qbuf.data();
        }
        g = gbuf.data();
        e = ebuf.data();
      }
      losses[i] = row_loss(P, z, t, q, e, g, hbuf.data(), P.prob && !P.soft ? P.prob + i : nullptr);
      if constexpr (!direct) {
        if (gr) {
          at::vec::convert(gbuf.data(), gr, C);
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------
// Columns: inner > 1, [N, C, inner]; a tile of L consecutive pixels of one
// sample is processed with one vector lane per pixel.
// ---------------------------------------------------------------------------

template <typename scalar_t, typename acc_t, typename target_t>
void columns_kernel(
    const Problem<acc_t>& P,
    const scalar_t* x,
    const target_t* target,
    const scalar_t* soft,
    scalar_t* grad,
    acc_t* losses) {
  using Vec = at::vec::Vectorized<acc_t>;
  constexpr int64_t L = Vec::size();
  constexpr bool direct = std::is_same_v<scalar_t, acc_t>;
  const int64_t C = P.C, inner = P.inner;
  const int64_t tiles_per_sample = (inner + L - 1) / L;
  const int64_t num_tiles = P.N * tiles_per_sample;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(C * L, 1));
  const acc_t inv_c = acc_t(1) / acc_t(C);
  const bool linear = P.mode == kModeLinear;
  const bool general = P.mode == kModeGeneral;

  at::parallel_for(0, num_tiles, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> zt(C * L), et(C * L), qt(P.soft ? C * L : 0), ht(general ? C * L : 0);
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t n = tile / tiles_per_sample;
      const int64_t i0 = (tile % tiles_per_sample) * L;
      const int64_t cnt = std::min(L, inner - i0);
      const int64_t base = n * C * inner + i0;
      // Full tiles of float/double read and write memory in place (stride
      // `inner` between classes); partial tiles and half types go through
      // lane-contiguous scratch (stride L).
      const bool in_place = direct && cnt == L;
      const acc_t* zp;
      const acc_t* qp = nullptr;
      int64_t zs;
      if constexpr (direct) {
        if (in_place) {
          zp = x + base;
          qp = P.soft ? soft + base : nullptr;
          zs = inner;
        }
      }
      if (!in_place) {
        for (int64_t c = 0; c < C; ++c) {
          for (int64_t j = 0; j < L; ++j) {
            zt[c * L + j] = j < cnt ? static_cast<acc_t>(x[base + c * inner + j]) : acc_t(0);
            if (P.soft) {
              qt[c * L + j] = j < cnt ? static_cast<acc_t>(soft[base + c * inner + j]) : acc_t(0);
            }
          }
        }
        zp = zt.data();
        qp = P.soft ? qt.data() : nullptr;
        zs = L;
      }
      // e stays in L1 scratch; the gradient is written once, in pass C
      acc_t* ep = et.data();
      const int64_t es = L;
      scalar_t* const gdst = P.grad ? grad + base : nullptr;
      auto zv = [&](int64_t c) {
        const Vec v = Vec::loadu(zp + c * zs);
        return P.bias ? v + Vec(P.bias[c]) : v;
      };
      auto zs_at = [&](int64_t c, int64_t j) { return zp[c * zs + j] + (P.bias ? P.bias[c] : acc_t(0)); };

      // targets and valid lanes (padding lanes count as ignored)
      int64_t t[L];
      acc_t validf[L], wt[L], zt_t[L];
      for (int64_t j = 0; j < L; ++j) {
        bool valid = j < cnt;
        t[j] = 0;
        if (valid && !P.soft) {
          const int64_t tj = target_at(target, n * inner + i0 + j);
          valid = tj != P.ignore_index;
          t[j] = valid ? tj : 0;
        }
        validf[j] = valid ? acc_t(1) : acc_t(0);
        wt[j] = valid ? weight_of(P, t[j]) : acc_t(0);
        zt_t[j] = P.soft ? acc_t(0) : zs_at(t[j], j);
      }

      // pass A: per-lane max. The C class planes are C concurrent streams,
      // more than the hardware prefetchers follow: fetch the next tile's
      // lines (and the gradient's, about to be written) ahead by hand.
      Vec vm(-std::numeric_limits<acc_t>::infinity());
      for (int64_t c = 0; c < C; ++c) {
        if (in_place) {
          __builtin_prefetch(zp + c * zs + kPrefetchAhead);
          if (gdst) {
            __builtin_prefetch(gdst + c * inner + kPrefetchAhead, 1);
          }
        }
        vm = at::vec::maximum(vm, zv(c));
      }
      acc_t m[L];
      vm.store(m);
      for (int64_t j = 0; j < L; ++j) {
        if (!std::isfinite(m[j])) {
          m[j] = std::isnan(m[j]) || m[j] > 0 ? m[j] : acc_t(0);
        }
      }
      vm = Vec::loadu(m);

      // pass B: e, S (and D = sum a (m - z), A = sum a in linear mode)
      Vec vs(0), vd(0), va(0), vall(0);  // vall: over every class in class order, for p_t
      const Vec one_minus_eps(acc_t(1) - P.eps), eps_c(P.eps * inv_c);
      auto coef_a = [&](int64_t c) {
        Vec a = P.soft ? at::vec::fmadd(one_minus_eps, Vec::loadu(qp + c * zs), eps_c) : eps_c;
        return P.weight ? a * Vec(P.weight[c]) : a;
      };
      const bool target_mode = P.mode == kModeTarget;
      // The target class of each lane, split into two parts below 2^24 that
      // acc_t holds exactly: one float per class index would make classes
      // 2^24 and 2^24 + 1 compare equal. Invalid lanes match no class.
      acc_t t_hi[L], t_lo[L];
      for (int64_t j = 0; j < L; ++j) {
        const bool valid = validf[j] != acc_t(0);
        t_hi[j] = valid ? static_cast<acc_t>(t[j] >> kClassSplitBits) : acc_t(-1);
        t_lo[j] = valid ? static_cast<acc_t>(t[j] & kClassSplitMask) : acc_t(-1);
      }
      const Vec vt_hi = Vec::loadu(t_hi), vt_lo = Vec::loadu(t_lo);
      for (int64_t c = 0; c < C; ++c) {
        const Vec zc = zv(c);
        const Vec ec = cpu::exp(zc - vm);
        ec.store(ep + c * es);
        if (P.prob) {
          vall = vall + ec;
        }
        // class-index targets: vs = s_other, the sum without the target (see target_terms)
        if (target_mode) {
          const Vec is_target = (vt_hi == Vec(static_cast<acc_t>(c >> kClassSplitBits))) &
                                (vt_lo == Vec(static_cast<acc_t>(c & kClassSplitMask)));
          vs = vs + Vec::blendv(ec, Vec(0), is_target);
        } else {
          vs = vs + ec;
        }
        if (linear) {
          const Vec a = coef_a(c);
          va = va + a;
          vd = at::vec::fmadd(a, vm - zc, vd);
        }
      }
      const Vec vlogS = vs.log();
      const Vec vvalid = Vec::loadu(validf), vwt = Vec::loadu(wt), vzt = Vec::loadu(zt_t), vscale(P.scale);
      const Vec inv_s = vs.reciprocal();
      Vec loss(0), coef_e(0), fix(0), lane_scale = vvalid * vscale, hvec(0);

      if (target_mode) {
        const Vec dz = vzt - vm;
        Vec lp, pw(1), u(-1), S, pt;
        if (P.gamma == acc_t(0)) {
          const Vec et = cpu::exp(dz);
          S = et + vs;
          lp = Vec::blendv(dz - S.log(), vs.log1p().neg(), dz >= Vec(0));
          lp = at::vec::minimum(lp, Vec(0));
          if (P.prob) {
            // as softmax forms it (see target_prob), over a sum that does not
            // depend on where the target sits: equal logit columns, equal p
            pt = et / vall;
          }
        } else {
          acc_t dza[L], so[L], lpa[L], pwa[L], ua[L], sa[L];
          dz.store(dza);
          vs.store(so);
          for (int64_t j = 0; j < L; ++j) {
            sa[j] = target_terms(dza[j], so[j], P.gamma, lpa[j], pwa[j], ua[j]);
          }
          lp = Vec::loadu(lpa);
          pw = Vec::loadu(pwa);
          u = Vec::loadu(ua);
          S = Vec::loadu(sa);
          if (P.prob) {
            acc_t pa[L], alla[L];
            vall.store(alla);
            for (int64_t j = 0; j < L; ++j) {
              pa[j] = target_prob(dza[j], alla[j]);
            }
            pt = Vec::loadu(pa);
          }
        }
        if (P.prob) {
          acc_t pa[L];
          Vec::blendv(Vec(0), pt, vvalid != Vec(0)).store(pa);
          for (int64_t j = 0; j < cnt; ++j) {
            P.prob[n * inner + i0 + j] = pa[j];
          }
        }
        const Vec hh = vwt * pw * u;
        loss = (vwt * pw * lp).neg();
        coef_e = (hh * vscale / S).neg();
        fix = hh * vscale * vs / S;  // assigned at the target: hh (1 - p_t), no cancellation
      } else if (linear) {
        if (P.soft) {
          loss = (va * vlogS + vd) * vvalid;
          coef_e = va * vscale * inv_s * vvalid;
        } else {
          const Vec at_ = one_minus_eps * vwt + Vec(P.eps * inv_c * P.weight_sum) * vvalid;
          loss = at_ * vlogS + one_minus_eps * vwt * (vm - vzt) + vd * vvalid;
          coef_e = at_ * vscale * inv_s;
          fix = (one_minus_eps * vwt * vscale).neg();
        }
      } else {
        // general mode: scalar over classes for each lane
        acc_t la[L], ca[L], logS[L];
        vlogS.store(logS);
        for (int64_t j = 0; j < L; ++j) {
          la[j] = ca[j] = acc_t(0);
          if (validf[j] == acc_t(0)) {
            for (int64_t c = 0; c < C; ++c) {
              ht[c * L + j] = acc_t(0);
            }
            continue;
          }
          acc_t H = 0, S = 0;
          for (int64_t c = 0; c < C; ++c) {
            S += ep[c * es + j];
          }
          for (int64_t c = 0; c < C; ++c) {
            const acc_t qc =
                P.soft ? (acc_t(1) - P.eps) * qp[c * zs + j] + P.eps * inv_c : smoothed_q(c == t[j], P.eps, inv_c);
            const acc_t a = qc * weight_of(P, c);
            const acc_t lp = std::min((zs_at(c, j) - m[j]) - logS[j], acc_t(0));
            acc_t pw, u;
            focal_terms(lp, P.gamma, pw, u);
            la[j] -= a * pw * lp;
            ht[c * L + j] = a * pw * u;
            H += ht[c * L + j];
          }
          ca[j] = -H * P.scale / S;
        }
        loss = Vec::loadu(la);
        coef_e = Vec::loadu(ca);
      }
      // Ignored and padding lanes give exactly 0, even for non-finite logits (as torch).
      const Vec valid_mask = vvalid != Vec(0);
      loss = Vec::blendv(Vec(0), loss, valid_mask);
      {
        acc_t la[L];
        loss.store(la);
        for (int64_t j = 0; j < cnt; ++j) {
          losses[n * inner + i0 + j] = la[j];
        }
      }
      if (!P.grad) {
        continue;
      }

      // pass C: the gradient, in place (full float tiles) or via scratch
      acc_t* gp;
      int64_t gs = L;
      if constexpr (direct) {
        gp = in_place ? gdst : zt.data();
        gs = in_place ? inner : L;
      } else {
        gp = zt.data();
      }
      for (int64_t c = 0; c < C; ++c) {
        Vec gc = Vec::loadu(ep + c * es) * coef_e;
        if (linear) {
          gc = gc - coef_a(c) * lane_scale;
        } else if (general) {
          gc = gc + Vec::loadu(ht.data() + c * L) * lane_scale;
        }
        Vec::blendv(Vec(0), gc, valid_mask).store(gp + c * gs);
      }
      if (!general && !P.soft) {
        acc_t fa[L];
        fix.store(fa);
        for (int64_t j = 0; j < cnt; ++j) {
          if (validf[j] != acc_t(0)) {
            acc_t& gt = gp[t[j] * gs + j];
            gt = target_mode ? fa[j] : gt + fa[j];
          }
        }
      }
      if (!in_place) {
        for (int64_t c = 0; c < C; ++c) {
          for (int64_t j = 0; j < cnt; ++j) {
            grad[base + c * inner + j] = static_cast<scalar_t>(zt[c * L + j]);
          }
        }
      }
    }
  });
}

// Sum of w[target] over non-ignored targets (the mean's denominator), and
// validation: returns the first flat index of an out-of-range target, or -1.
template <typename target_t>
int64_t target_denominator(
    const target_t* target, int64_t count, int64_t C, int64_t ignore_index, const double* weight, double& denominator) {
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), count / 65536));
  const int64_t len = (count + chunks - 1) / chunks;
  std::vector<double> partial(chunks, 0.0);
  std::vector<int64_t> bad(chunks, -1);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t k = c0; k < c1; ++k) {
      double acc = 0;
      for (int64_t i = k * len; i < std::min(count, (k + 1) * len); ++i) {
        const int64_t t = static_cast<int64_t>(target[i]);
        if (t == ignore_index) {
          continue;
        }
        if (t < 0 || t >= C) {
          bad[k] = i;
          break;
        }
        acc += weight ? weight[t] : 1.0;
      }
      partial[k] = acc;
    }
  });
  denominator = 0;
  for (int64_t k = 0; k < chunks; ++k) {
    if (bad[k] >= 0) {
      return bad[k];
    }
    denominator += partial[k];
  }
  return -1;
}

// softmax_loss, and with want_prob (class-index targets) also the softmax
// probability of each sample's target, in the accumulation dtype, shaped as
// the per-sample losses (an empty tensor otherwise).
std::tuple<at::Tensor, at::Tensor, at::Tensor> softmax_loss_cpu_impl(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& logit_bias,
    int64_t ignore_index,
    double label_smoothing,
    double gamma,
    int64_t reduction,
    bool compute_grad,
    bool want_prob) {
  const SoftmaxLossArgs args =
      check_softmax_loss_args(input, target, weight, logit_bias, ignore_index, label_smoothing, gamma, reduction);
  TORCH_CHECK(input.device().is_cpu(), "softmax_loss: expected input on the CPU, got ", input.device());
  SoftmaxLossLayout layout = softmax_loss_layout(input, target, args, compute_grad);
  const at::Tensor& x = layout.x;
  const at::Tensor& tgt = layout.target;
  const bool row_layout = layout.row_layout;
  at::Tensor& grad = layout.grad;
  at::Tensor& losses = layout.losses;
  const at::ScalarType acc_type = layout.acc_type;
  TORCH_CHECK(!want_prob || !args.soft, "softmax_loss: the target probability needs class-index targets");
  at::Tensor prob = at::empty({want_prob ? layout.rows : 0}, losses.options());

  // Weights in double for the denominator, in acc_t for the kernels.
  const at::Tensor w64 = weight.has_value() ? weight->to(at::kDouble).contiguous() : at::Tensor();
  double denominator = static_cast<double>(args.N * args.inner);
  if (!args.soft && args.N * args.inner > 0) {
    dispatch_target_type(tgt.scalar_type(), [&](auto* tag) {
      using target_t = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
      const target_t* t = tgt.const_data_ptr<target_t>();
      const int64_t bad = target_denominator(
          t, tgt.numel(), args.C, ignore_index, w64.defined() ? w64.const_data_ptr<double>() : nullptr, denominator);
      if (bad >= 0) {
        raise_invalid_target(bad, static_cast<int64_t>(t[bad]), args.C, ignore_index);
      }
    });
  } else if (!args.soft) {
    denominator = 0;
  }
  if (!args.soft) {
    denominator = mean_denominator(denominator);
  }

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softmax_loss_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor wacc = weight.has_value() ? weight->to(acc_type).contiguous() : at::Tensor();
    const at::Tensor bacc = logit_bias.has_value() ? logit_bias->to(acc_type).contiguous() : at::Tensor();
    Problem<acc_t> P;
    P.N = layout.kernel_n;
    P.C = args.C;
    P.inner = layout.kernel_inner;
    P.mode = args.mode;
    P.soft = args.soft;
    P.grad = compute_grad;
    P.weight = wacc.defined() ? wacc.const_data_ptr<acc_t>() : nullptr;
    P.bias = bacc.defined() ? bacc.const_data_ptr<acc_t>() : nullptr;
    P.weight_sum = w64.defined() ? static_cast<acc_t>(w64.sum().item<double>()) : static_cast<acc_t>(args.C);
    P.ignore_index = ignore_index;
    P.eps = static_cast<acc_t>(label_smoothing);
    P.gamma = static_cast<acc_t>(gamma);
    P.scale = reduction == kReductionMean ? static_cast<acc_t>(1.0 / denominator) : acc_t(1);
    P.prob = want_prob ? prob.mutable_data_ptr<acc_t>() : nullptr;
    if (args.N * args.inner == 0) {
      return;
    }
    auto launch = [&](auto* target_ptr) {
      const scalar_t* soft_ptr = args.soft ? tgt.const_data_ptr<scalar_t>() : nullptr;
      scalar_t* grad_ptr = compute_grad ? grad.mutable_data_ptr<scalar_t>() : nullptr;
      if (row_layout) {
        rows_kernel<scalar_t, acc_t>(
            P, x.const_data_ptr<scalar_t>(), target_ptr, soft_ptr, grad_ptr, losses.mutable_data_ptr<acc_t>());
      } else {
        columns_kernel<scalar_t, acc_t>(
            P, x.const_data_ptr<scalar_t>(), target_ptr, soft_ptr, grad_ptr, losses.mutable_data_ptr<acc_t>());
      }
    };
    if (args.soft) {
      launch(static_cast<const int64_t*>(nullptr));
    } else {
      dispatch_target_type(tgt.scalar_type(), [&](auto* tag) {
        using target_t = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
        launch(tgt.const_data_ptr<target_t>());
      });
    }
  });

  const at::Tensor den = at::scalar_tensor(denominator, losses.options());
  if (want_prob) {
    prob = prob.view(per_sample_shape(input));
  }
  return {reduce_losses(losses, args, reduction, den, input), grad, prob};
}

std::tuple<at::Tensor, at::Tensor> softmax_loss_cpu(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& logit_bias,
    int64_t ignore_index,
    double label_smoothing,
    double gamma,
    int64_t reduction,
    bool compute_grad) {
  auto [loss, grad, prob] = softmax_loss_cpu_impl(
      input,
      target,
      weight,
      logit_bias,
      ignore_index,
      label_smoothing,
      gamma,
      reduction,
      compute_grad,
      /*want_prob=*/false);
  return {loss, grad};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> softmax_loss_target_prob_cpu(
    const at::Tensor& input, const at::Tensor& target, int64_t ignore_index, bool compute_grad) {
  return softmax_loss_cpu_impl(
      input,
      target,
      std::nullopt,
      std::nullopt,
      ignore_index,
      0.0,
      0.0,
      kReductionNone,
      compute_grad,
      /*want_prob=*/true);
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("softmax_loss", &softmax_loss_cpu);
  m.impl("softmax_loss_target_prob", &softmax_loss_target_prob_cpu);
}

}  // namespace loss
}  // namespace balancedtorch
