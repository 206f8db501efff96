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
#include <cstdint>
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
#include <ATen/ops/full.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include "cpu/vec_math.h"
#include "loss/softmax_loss.h"
#include "loss/softmax_loss_args.h"

namespace balancedtorch {
namespace loss {
namespace {

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
  const acc_t* bias = nullptr;    // [C] or null (plain path: logit_bias as given)
  // The adjusted path (args.adjusted, the kernels' kAdjusted; bias is null there): each row is formed
  // as z_c = x_c * mult_c + add_c - margin_c [c == y] before the plain maths,
  // and the gradient multiplied by mult_c after it (softmax_loss.h).
  const acc_t* mult = nullptr;    // [C] s * logit_scale (or s), or null (1)
  const acc_t* add = nullptr;     // [C] s * logit_bias, or null (0)
  const acc_t* margin = nullptr;  // [C] s * margin, or null (0)
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

// The adjusted path: out = x * mult + add, and the margin taken off at the
// target (target < 0: probability targets, no margin). out may alias x.
template <typename acc_t>
void adjust_row(const Problem<acc_t>& P, const acc_t* x, acc_t* out, int64_t target) {
  using Vec = at::vec::Vectorized<acc_t>;
  constexpr int64_t W = Vec::size();
  const int64_t C = P.C;
  const acc_t* mu = P.mult;
  const acc_t* ad = P.add;
  int64_t c = 0;
  if (mu && ad) {
    for (; c + W <= C; c += W) {
      at::vec::fmadd(Vec::loadu(x + c), Vec::loadu(mu + c), Vec::loadu(ad + c)).store(out + c);
    }
  } else if (mu) {
    for (; c + W <= C; c += W) {
      (Vec::loadu(x + c) * Vec::loadu(mu + c)).store(out + c);
    }
  } else if (ad) {
    for (; c + W <= C; c += W) {
      (Vec::loadu(x + c) + Vec::loadu(ad + c)).store(out + c);
    }
  } else if (out != x) {
    for (; c + W <= C; c += W) {
      Vec::loadu(x + c).store(out + c);
    }
  }
  for (; c < C; ++c) {
    out[c] = x[c] * (mu ? mu[c] : acc_t(1)) + (ad ? ad[c] : acc_t(0));
  }
  if (P.margin && target >= 0) {
    out[target] -= P.margin[target];
  }
}

// g *= mult (the chain rule through z = x * mult + ...), in place.
template <typename acc_t>
void scale_row_grad(const Problem<acc_t>& P, acc_t* g) {
  using Vec = at::vec::Vectorized<acc_t>;
  constexpr int64_t W = Vec::size();
  const acc_t* mu = P.mult;
  if (!mu) {
    return;
  }
  int64_t c = 0;
  for (; c + W <= P.C; c += W) {
    (Vec::loadu(g + c) * Vec::loadu(mu + c)).store(g + c);
  }
  for (; c < P.C; ++c) {
    g[c] *= mu[c];
  }
}

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

// kAdjusted: the adjusted path (args.adjusted), a separate instantiation so that
// the plain path compiles to exactly the code it had before the adjustment.
template <bool kAdjusted, typename scalar_t, typename acc_t, typename target_t>
void rows_kernel(
    const Problem<acc_t>& P,
    const scalar_t* x,
    const target_t* target,
    const scalar_t* soft,
    scalar_t* grad,
    acc_t* losses) {
  constexpr bool direct = std::is_same_v<scalar_t, acc_t>;
  const int64_t C = P.C;
  constexpr bool adjusted = kAdjusted;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1));
  at::parallel_for(0, P.N, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> zbuf(direct && !adjusted ? 0 : C), qbuf(direct || !P.soft ? 0 : C);
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
        if constexpr (adjusted) {
          adjust_row(P, xr, zbuf.data(), t);
          z = zbuf.data();
        }
        q = P.soft ? soft + i * C : nullptr;
        g = gr;
        e = gr ? gr : ebuf.data();
      } else {
        at::vec::convert(xr, zbuf.data(), C);
        if constexpr (adjusted) {
          adjust_row(P, zbuf.data(), zbuf.data(), t);
        }
        z = zbuf.data();
        if (P.soft) {
          at::vec::convert(soft + i * C, qbuf.data(), C);
          q = qbuf.data();
        }
        g = gbuf.data();
        e = ebuf.data();
      }
      losses[i] = row_loss(P, z, t, q, e, g, hbuf.data(), P.prob && !P.soft ? P.prob + i : nullptr);
      if constexpr (adjusted) {
        if (gr) {
          scale_row_grad(P, g);
        }
      }
      if constexpr (!direct) {
        if (gr) {
          at::vec::convert(gbuf.data(), gr, C);
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------
// Columns: inner > 1, [N, C, inner]. A tile is W consecutive pixels of one
// sample, computed as K vectors of L pixels with one vector lane per pixel:
// for each class the tile's pixels are contiguous, so classes are read with
// their stride and never gathered per pixel.
// ---------------------------------------------------------------------------

// Bytes of each class plane one tile covers: whole cache lines, each read
// once and written once. (A tile of one vector, 32 bytes of float, came back
// to every line a tile later, after the other C - 1 planes had evicted it.)
constexpr int64_t kTileBytes = 128;
constexpr int64_t kCacheLineBytes = 64;
// Tiles ahead of the current one whose logits are prefetched (into L2).
constexpr int64_t kPrefetchTiles = 2;
// Gradients at least this large are written with streaming stores (see
// cpu::store_stream): far beyond the last-level cache, a gradient is not read
// back from the cache anyway, and the stores skip reading each line first.
constexpr int64_t kStreamBytes = int64_t{32} << 20;

template <bool kAdjusted, typename scalar_t, typename acc_t, typename target_t>
void columns_kernel(
    const Problem<acc_t>& P,
    const scalar_t* x,
    const target_t* target,
    const scalar_t* soft,
    scalar_t* grad,
    acc_t* losses) {
  using Vec = at::vec::Vectorized<acc_t>;
  constexpr int64_t L = Vec::size();
  constexpr int64_t K = std::max<int64_t>(1, kTileBytes / (L * static_cast<int64_t>(sizeof(acc_t))));
  constexpr int64_t W = K * L;
  constexpr bool direct = std::is_same_v<scalar_t, acc_t>;
  const int64_t C = P.C, inner = P.inner;
  const int64_t tiles_per_sample = (inner + W - 1) / W;
  const int64_t num_tiles = P.N * tiles_per_sample;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(C * W, 1));
  const acc_t inv_c = acc_t(1) / acc_t(C);
  const bool linear = P.mode == kModeLinear;
  const bool general = P.mode == kModeGeneral;
  const bool target_mode = P.mode == kModeTarget;
  const bool hard = !P.soft;
  // Class indices are compared in acc_t; only C above 2^24 needs both parts.
  const bool split_classes = C - 1 > kClassSplitMask;
  // the common case (class-index targets, no logit bias) has loops of its own
  const bool fast = target_mode && !P.bias && !split_classes;
  // streaming stores need every plane's lines whole and aligned
  const bool stream = direct && P.grad && P.N * C * inner * static_cast<int64_t>(sizeof(acc_t)) >= kStreamBytes &&
                      reinterpret_cast<uintptr_t>(grad) % kCacheLineBytes == 0 &&
                      (inner * static_cast<int64_t>(sizeof(acc_t))) % kCacheLineBytes == 0;

  at::parallel_for(0, num_tiles, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> zt(C * W), et(C * W), qt(P.soft ? C * W : 0), ht(general ? C * W : 0);
    int64_t t[W];
    acc_t validf[W], wt[W], t_hi[W], t_lo[W], m[W], logS[W];
    Vec coef_e[K], fix[K], lane_scale[K], valid_mask[K];
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t n = tile / tiles_per_sample;
      const int64_t i0 = (tile % tiles_per_sample) * W;
      const int64_t cnt = std::min(W, inner - i0);
      const int64_t kn = (cnt + L - 1) / L;  // vectors holding pixels
      const int64_t base = n * C * inner + i0;
      const int64_t pix = n * inner + i0;  // flat index of the tile's first pixel
      // Full tiles of float/double are read from and written to memory
      // directly; partial tiles and half types are converted through scratch.
      const bool in_place = direct && cnt == W;
      if (in_place) {
        // a later tile's lines, by hand (cpu::prefetch_planes). (Prefetching
        // the gradient's lines for writing, into L1, was slower: the planes
        // share L1 sets.)
        cpu::prefetch_planes(x + base + kPrefetchTiles * W, inner, C, W);
      }

      // targets and valid lanes (padding lanes count as ignored). The target
      // class of each lane is kept in acc_t as (c >> 24, c & (2^24 - 1)), both
      // exact: one float per class index would make classes 2^24 and 2^24 + 1
      // compare equal. Invalid lanes match no class. Read before pass A on
      // the adjusted path (whose margin needs them), after it otherwise.
      auto read_targets = [&]() {
        if (fast) {
          // the common case in a branch-free loop: no split classes, t and
          // t_hi unused (target mode only)
          const acc_t* const w = P.weight;
          const int64_t ii = P.ignore_index;
          if constexpr (std::is_same_v<target_t, int64_t> && std::is_same_v<acc_t, float> && W % 8 == 0) {
            if (cnt == W && cpu::class_targets_as_float(target + pix, W, ii, t_lo, validf)) {
              for (int64_t j = 0; j < W; ++j) {
                wt[j] = w ? (validf[j] != acc_t(0) ? w[static_cast<int64_t>(t_lo[j])] : acc_t(0)) : validf[j];
              }
              return;
            }
          }
          for (int64_t j = 0; j < cnt; ++j) {
            const int64_t tj = target_at(target, pix + j);
            const bool valid = tj != ii;
            t_lo[j] = valid ? static_cast<acc_t>(tj) : acc_t(-1);
            validf[j] = valid ? acc_t(1) : acc_t(0);
            wt[j] = valid ? (w ? w[tj] : acc_t(1)) : acc_t(0);
          }
          for (int64_t j = cnt; j < W; ++j) {
            t_lo[j] = acc_t(-1);
            validf[j] = wt[j] = acc_t(0);
          }
          return;
        }
        for (int64_t j = 0; j < W; ++j) {
          bool valid = j < cnt;
          int64_t tj = 0;
          if (valid && hard) {
            tj = target_at(target, pix + j);
            valid = tj != P.ignore_index;
            tj = valid ? tj : 0;
          }
          t[j] = tj;
          validf[j] = valid ? acc_t(1) : acc_t(0);
          wt[j] = valid ? weight_of(P, tj) : acc_t(0);
          t_hi[j] = valid && hard ? static_cast<acc_t>(tj >> kClassSplitBits) : acc_t(-1);
          t_lo[j] = valid && hard ? static_cast<acc_t>(tj & kClassSplitMask) : acc_t(-1);
        }
      };
      if constexpr (kAdjusted) {
        read_targets();
      }
      auto is_target = [&](int64_t c, int64_t o) {
        const Vec lo = Vec::loadu(t_lo + o) == Vec(static_cast<acc_t>(c & kClassSplitMask));
        return split_classes ? lo & (Vec::loadu(t_hi + o) == Vec(static_cast<acc_t>(c >> kClassSplitBits))) : lo;
      };

      // pass A: the tile into lane-contiguous scratch (stride W) and the
      // per-lane max; the later passes read the scratch, which no plane evicts
      // (the adjusted path stores the adjusted logits there)
      Vec vmax[K];
      for (int64_t k = 0; k < K; ++k) {
        vmax[k] = Vec(-std::numeric_limits<acc_t>::infinity());
      }
      bool copied = false;
      if constexpr (direct && !kAdjusted) {
        if (in_place && !P.soft) {
          // The plain full tile: every plane's lines copied and the max (over
          // z + bias) taken in registers; the scratch keeps z.
          cpu::copy_planes_max<K>(x + base, inner, C, zt.data(), W, P.bias, vmax);
          copied = true;
        }
      }
      for (int64_t c = 0; c < (copied ? 0 : C); ++c) {
        acc_t* const zd = zt.data() + c * W;
        bool loaded = false;
        if constexpr (direct) {
          if (in_place) {
            const acc_t* const src = x + base + c * inner;
            for (int64_t k = 0; k < K; ++k) {
              Vec::loadu(src + k * L).store(zd + k * L);
            }
            if (P.soft) {
              const acc_t* const qsrc = soft + base + c * inner;
              for (int64_t k = 0; k < K; ++k) {
                Vec::loadu(qsrc + k * L).store(qt.data() + c * W + k * L);
              }
            }
            loaded = true;
          }
        }
        if (!loaded) {
          for (int64_t j = 0; j < W; ++j) {
            zd[j] = j < cnt ? static_cast<acc_t>(x[base + c * inner + j]) : acc_t(0);
            if (P.soft) {
              qt[c * W + j] = j < cnt ? static_cast<acc_t>(soft[base + c * inner + j]) : acc_t(0);
            }
          }
        }
        if constexpr (kAdjusted) {
          const Vec mu(P.mult ? P.mult[c] : acc_t(1)), ad(P.add ? P.add[c] : acc_t(0));
          const Vec mg(P.margin ? P.margin[c] : acc_t(0));
          for (int64_t k = 0; k < K; ++k) {
            Vec v = Vec::loadu(zd + k * L);
            v = P.mult ? (P.add ? at::vec::fmadd(v, mu, ad) : v * mu) : (P.add ? v + ad : v);
            if (P.margin) {
              v = Vec::blendv(v, v - mg, is_target(c, k * L));
            }
            v.store(zd + k * L);
            vmax[k] = at::vec::maximum(vmax[k], v);
          }
          continue;
        }
        const Vec b(P.bias ? P.bias[c] : acc_t(0));
        for (int64_t k = 0; k < K; ++k) {
          const Vec v = Vec::loadu(zd + k * L);
          vmax[k] = at::vec::maximum(vmax[k], P.bias ? v + b : v);
        }
      }
      const acc_t* const zp = zt.data();
      const acc_t* const qp = P.soft ? qt.data() : nullptr;
      // e stays in L1 scratch; the gradient is written once, in pass C
      acc_t* const ep = et.data();
      if constexpr (!kAdjusted) {
        read_targets();
      }

      const Vec one_minus_eps(acc_t(1) - P.eps), eps_c(P.eps * inv_c), vscale(P.scale);
      auto coef_a = [&](int64_t c, int64_t o) {
        Vec a = P.soft ? at::vec::fmadd(one_minus_eps, Vec::loadu(qp + c * W + o), eps_c) : eps_c;
        return P.weight ? a * Vec(P.weight[c]) : a;
      };

      // pass B for every vector of the tile first, then the per-pixel terms of
      // every vector: the terms are a long dependent chain (a log, divisions)
      // per vector, and K independent chains in a row overlap where one
      // between two class loops waited on its own latency
      Vec b_s[K], b_d[K], b_a[K], b_all[K], b_zt[K], b_et[K], b_m[K];
      for (int64_t k = 0; k < kn; ++k) {
        const int64_t o = k * L;  // the vector's first lane in the tile
        // an all -inf column takes max 0 (nan and +inf stay)
        const Vec vm = Vec::blendv(vmax[k], Vec(0), vmax[k] == Vec(-std::numeric_limits<acc_t>::infinity()));

        // pass B: e, S (and D = sum a (m - z), A = sum a in linear mode). The
        // target's logit and e are picked up on the way (no gather over C).
        Vec vs(0), vd(0), va(0), vall(0), vzt(vm), vet(0);  // vall: over every class in class order, for p_t
        if (fast) {
          // target mode, no bias, C <= 2^24: one compare per class, state in registers
          auto run = [&, nc = C, zo = zp + o, eo = ep + o](auto with_prob) {
            const Vec vt = Vec::loadu(t_lo + o);
            Vec s(0), all(0), zt_(vm), et_(0), vc(0);  // vc: the class index, counted in acc_t (exact below 2^24)
            for (int64_t c = 0; c < nc; ++c, vc = vc + Vec(1)) {
              const Vec zc = Vec::loadu(zo + c * W);
              const Vec ec = cpu::exp(zc - vm);
              ec.store(eo + c * W);
              if constexpr (decltype(with_prob)::value) {
                all = all + ec;
              }
              const Vec hit = vt == vc;
              zt_ = Vec::blendv(zt_, zc, hit);
              et_ = Vec::blendv(et_, ec, hit);
              s = s + Vec::blendv(ec, Vec(0), hit);
            }
            vs = s;
            vall = all;
            vzt = zt_;
            vet = et_;
          };
          if (P.prob) {
            run(std::true_type{});
          } else {
            run(std::false_type{});
          }
        } else {
          for (int64_t c = 0; c < C; ++c) {
            const Vec z = Vec::loadu(zp + c * W + o);
            const Vec zc = P.bias ? z + Vec(P.bias[c]) : z;
            const Vec ec = cpu::exp(zc - vm);
            ec.store(ep + c * W + o);
            if (P.prob) {
              vall = vall + ec;
            }
            if (hard) {
              const Vec hit = is_target(c, o);
              vzt = Vec::blendv(vzt, zc, hit);
              if (target_mode) {
                // vs = s_other, the sum without the target (see target_terms)
                vet = Vec::blendv(vet, ec, hit);
                vs = vs + Vec::blendv(ec, Vec(0), hit);
              } else {
                vs = vs + ec;
              }
            } else {
              vs = vs + ec;
            }
            if (linear) {
              const Vec a = coef_a(c, o);
              va = va + a;
              vd = at::vec::fmadd(a, vm - zc, vd);
            }
          }
        }
        b_s[k] = vs;
        b_d[k] = vd;
        b_a[k] = va;
        b_all[k] = vall;
        b_zt[k] = vzt;
        b_et[k] = vet;
        b_m[k] = vm;
      }
      for (int64_t k = 0; k < kn; ++k) {
        const int64_t o = k * L;
        const Vec vs = b_s[k], vd = b_d[k], va = b_a[k], vall = b_all[k], vzt = b_zt[k], vet = b_et[k], vm = b_m[k];
        const Vec vvalid = Vec::loadu(validf + o), vwt = Vec::loadu(wt + o);
        Vec loss(0);
        coef_e[k] = Vec(0);
        fix[k] = Vec(0);
        lane_scale[k] = vvalid * vscale;
        valid_mask[k] = vvalid != Vec(0);

        if (target_mode) {
          const Vec dz = vzt - vm;
          Vec lp, pw(1), u(-1), S, inv_S, pt;
          if (P.gamma == acc_t(0)) {
            S = vet + vs;
            inv_S = Vec(acc_t(1)) / S;
            // lanes whose target is the max take -log1p(s_other), the others dz - log S
            lp = at::vec::minimum(cpu::target_log_prob(dz, S, vs, inv_S), Vec(0));
            if (P.prob) {
              // as softmax forms it (see target_prob), over a sum that does not
              // depend on where the target sits: equal logit columns, equal p
              pt = vet / vall;
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
            inv_S = Vec(acc_t(1)) / S;
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
            Vec::blendv(Vec(0), pt, valid_mask[k]).store(P.prob + pix + o, std::min(L, cnt - o));
          }
          const Vec hh = vwt * pw * u;
          loss = (vwt * pw * lp).neg();
          const Vec hs = hh * vscale * inv_S;
          coef_e[k] = hs.neg();
          fix[k] = hs * vs;  // assigned at the target: hh (1 - p_t), no cancellation
        } else if (linear) {
          const Vec vlogS = vs.log();
          const Vec inv_s = vs.reciprocal();
          if (P.soft) {
            loss = (va * vlogS + vd) * vvalid;
            coef_e[k] = va * vscale * inv_s * vvalid;
          } else {
            const Vec at_ = one_minus_eps * vwt + Vec(P.eps * inv_c * P.weight_sum) * vvalid;
            loss = at_ * vlogS + one_minus_eps * vwt * (vm - vzt) + vd * vvalid;
            coef_e[k] = at_ * vscale * inv_s;
            fix[k] = (one_minus_eps * vwt * vscale).neg();
          }
        } else {
          // general mode: scalar over classes for each lane
          vm.store(m + o);
          vs.log().store(logS + o);
          acc_t la[L], ca[L];
          for (int64_t l = 0; l < L; ++l) {
            const int64_t j = o + l;
            la[l] = ca[l] = acc_t(0);
            if (validf[j] == acc_t(0)) {
              for (int64_t c = 0; c < C; ++c) {
                ht[c * W + j] = acc_t(0);
              }
              continue;
            }
            acc_t H = 0, S = 0;
            for (int64_t c = 0; c < C; ++c) {
              S += ep[c * W + j];
            }
            for (int64_t c = 0; c < C; ++c) {
              const acc_t zc = zp[c * W + j] + (P.bias ? P.bias[c] : acc_t(0));
              const acc_t qc =
                  P.soft ? (acc_t(1) - P.eps) * qp[c * W + j] + P.eps * inv_c : smoothed_q(c == t[j], P.eps, inv_c);
              const acc_t a = qc * weight_of(P, c);
              const acc_t lp = std::min((zc - m[j]) - logS[j], acc_t(0));
              acc_t pw, u;
              focal_terms(lp, P.gamma, pw, u);
              la[l] -= a * pw * lp;
              ht[c * W + j] = a * pw * u;
              H += ht[c * W + j];
            }
            ca[l] = -H * P.scale / S;
          }
          loss = Vec::loadu(la);
          coef_e[k] = Vec::loadu(ca);
        }
        // Ignored and padding lanes give exactly 0, even for non-finite logits (as torch).
        Vec::blendv(Vec(0), loss, valid_mask[k]).store(losses + pix + o, std::min(L, cnt - o));
      }
      if (!P.grad) {
        continue;
      }

      // pass C: the gradient, one class plane's whole lines after another, in
      // place (full float tiles) or via scratch (the logits' scratch is free)
      scalar_t* const gdst = grad + base;
      acc_t* gp = zt.data();
      int64_t gs = W;
      bool via_scratch = true;
      if constexpr (direct) {
        if (in_place) {
          gp = gdst;
          gs = inner;
          via_scratch = false;
        }
      }
      const bool streaming = stream && in_place;
      auto put = [&](acc_t* dst, const Vec& v) {
        if (streaming) {
          cpu::store_stream(dst, v);
        } else {
          v.store(dst);
        }
      };
      if (fast && !kAdjusted && !via_scratch && kn == K) {
        // a full plain tile: one compare and blend per vector, the store
        // chosen once; lanes are masked only where the tile has ignored ones
        Vec vt[K];
        bool masked = false;
        for (int64_t k = 0; k < K; ++k) {
          vt[k] = Vec::loadu(t_lo + k * L);
          masked = masked || valid_mask[k].zero_mask() != 0;
        }
        // locals only (see pass A)
        auto write = [&, e_src = static_cast<const acc_t*>(ep), g_dst = gp, g_stride = gs, nc = C](
                         auto with_mask, auto store) {
          Vec t_[K], ce_[K], fx_[K], ok_[K];
          for (int64_t k = 0; k < K; ++k) {
            t_[k] = vt[k];
            ce_[k] = coef_e[k];
            fx_[k] = fix[k];
            ok_[k] = valid_mask[k];
          }
          const acc_t* e = e_src;
          acc_t* g = g_dst;
          Vec vc(0);
          for (int64_t c = 0; c < nc; ++c, vc = vc + Vec(1), e += W, g += g_stride) {
            for (int64_t k = 0; k < K; ++k) {
              Vec gc = Vec::loadu(e + k * L) * ce_[k];
              if constexpr (decltype(with_mask)::value) {
                gc = Vec::blendv(Vec(0), gc, ok_[k]);
              }
              store(g + k * L, Vec::blendv(gc, fx_[k], t_[k] == vc));
            }
          }
        };
        auto plain = [](acc_t* d, const Vec& v) { v.store(d); };
        auto streamed = [](acc_t* d, const Vec& v) { cpu::store_stream(d, v); };
        if (streaming) {
          masked ? write(std::true_type{}, streamed) : write(std::false_type{}, streamed);
        } else {
          masked ? write(std::true_type{}, plain) : write(std::false_type{}, plain);
        }
      } else if (fast) {
        Vec vt[K];
        for (int64_t k = 0; k < kn; ++k) {
          vt[k] = Vec::loadu(t_lo + k * L);
        }
        for (int64_t c = 0; c < C; ++c) {
          const Vec vc(static_cast<acc_t>(c));
          if (kAdjusted && P.mult) {
            const Vec mu(P.mult[c]);
            for (int64_t k = 0; k < kn; ++k) {
              const int64_t o = k * L;
              const Vec gc = Vec::blendv(Vec(0), Vec::loadu(ep + c * W + o) * coef_e[k], valid_mask[k]);
              put(gp + c * gs + o, Vec::blendv(gc, fix[k], vt[k] == vc) * mu);
            }
            continue;
          }
          for (int64_t k = 0; k < kn; ++k) {
            const int64_t o = k * L;
            const Vec gc = Vec::blendv(Vec(0), Vec::loadu(ep + c * W + o) * coef_e[k], valid_mask[k]);
            put(gp + c * gs + o, Vec::blendv(gc, fix[k], vt[k] == vc));
          }
        }
      } else {
        const bool fix_target = !general && hard;
        for (int64_t c = 0; c < C; ++c) {
          for (int64_t k = 0; k < kn; ++k) {
            const int64_t o = k * L;
            Vec gc = Vec::loadu(ep + c * W + o) * coef_e[k];
            if (linear) {
              gc = gc - coef_a(c, o) * lane_scale[k];
            } else if (general) {
              gc = gc + Vec::loadu(ht.data() + c * W + o) * lane_scale[k];
            }
            gc = Vec::blendv(Vec(0), gc, valid_mask[k]);
            if (fix_target) {
              // at the target: hh (1 - p_t) in target mode, added in linear mode
              const Vec hit = is_target(c, o);
              gc = target_mode ? Vec::blendv(gc, fix[k], hit) : Vec::blendv(gc, gc + fix[k], hit);
            }
            if constexpr (kAdjusted) {
              if (P.mult) {
                gc = gc * Vec(P.mult[c]);
              }
            }
            put(gp + c * gs + o, gc);
          }
        }
      }
      if (via_scratch) {
        for (int64_t c = 0; c < C; ++c) {
          for (int64_t j = 0; j < cnt; ++j) {
            gdst[c * inner + j] = static_cast<scalar_t>(zt[c * W + j]);
          }
        }
      }
    }
    if (stream) {
      cpu::stream_fence();  // the streamed gradient is visible to whoever joins this thread
    }
  });
}

// Sum of n values in double, in fixed blocks (each summed in 8 lanes, the
// lanes and then the blocks added in order): the same bits for any thread
// count, where at::sum splits the range by thread.
template <typename T>
double fixed_block_sum(const T* v, int64_t n) {
  constexpr int64_t kBlock = 16384, kLanes = 8;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks, 0.0);
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
      double lane[kLanes] = {};
      int64_t i = lo;
      for (; i + kLanes <= hi; i += kLanes) {
        for (int64_t l = 0; l < kLanes; ++l) {
          lane[l] += static_cast<double>(v[i + l]);
        }
      }
      for (; i < hi; ++i) {
        lane[(i - lo) % kLanes] += static_cast<double>(v[i]);
      }
      double s = 0;
      for (int64_t l = 0; l < kLanes; ++l) {
        s += lane[l];
      }
      partial[b] = s;
    }
  });
  double total = 0;
  for (const double p : partial) {
    total += p;
  }
  return total;
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
    bool want_prob,
    const std::optional<at::Tensor>& logit_scale,
    const std::optional<at::Tensor>& margin,
    double scale) {
  const SoftmaxLossArgs args = check_softmax_loss_args(
      input, target, weight, logit_bias, ignore_index, label_smoothing, gamma, reduction, logit_scale, margin, scale);
  TORCH_CHECK(input.device().is_cpu(), "softmax_loss: expected input on the CPU, got ", input.device());
  // before any allocation; a ValueError naming the argument (probabilities have no "target class")
  TORCH_CHECK_VALUE(
      !want_prob || !args.soft,
      "softmax_loss_target_prob: target must hold class indices (p_t is the probability of each "
      "sample's class), got probabilities of dtype ",
      target.scalar_type());
  SoftmaxLossLayout layout = softmax_loss_layout(input, target, args, compute_grad);
  const at::Tensor& x = layout.x;
  const at::Tensor& tgt = layout.target;
  const bool row_layout = layout.row_layout;
  at::Tensor& grad = layout.grad;
  at::Tensor& losses = layout.losses;
  const at::ScalarType acc_type = layout.acc_type;
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
    // The adjusted path's vectors, with s folded in (in double, then acc_t).
    at::Tensor mult, add, marg;
    if (args.adjusted) {
      if (logit_scale.has_value()) {
        mult = at::mul(logit_scale->to(at::kDouble), scale).to(acc_type).contiguous();
      } else if (scale != 1.0) {
        mult = at::full({args.C}, scale, x.options().dtype(acc_type));
      }
      if (logit_bias.has_value()) {
        add = at::mul(logit_bias->to(at::kDouble), scale).to(acc_type).contiguous();
      }
      if (margin.has_value()) {
        marg = at::mul(margin->to(at::kDouble), scale).to(acc_type).contiguous();
      }
    }
    Problem<acc_t> P;
    P.N = layout.kernel_n;
    P.C = args.C;
    P.inner = layout.kernel_inner;
    P.mode = args.mode;
    P.soft = args.soft;
    P.grad = compute_grad;
    P.weight = wacc.defined() ? wacc.const_data_ptr<acc_t>() : nullptr;
    P.bias = bacc.defined() && !args.adjusted ? bacc.const_data_ptr<acc_t>() : nullptr;
    P.mult = mult.defined() ? mult.const_data_ptr<acc_t>() : nullptr;
    P.add = add.defined() ? add.const_data_ptr<acc_t>() : nullptr;
    P.margin = marg.defined() ? marg.const_data_ptr<acc_t>() : nullptr;
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
      const scalar_t* x_ptr = x.const_data_ptr<scalar_t>();
      acc_t* loss_ptr = losses.mutable_data_ptr<acc_t>();
      if (row_layout) {
        if (args.adjusted) {
          rows_kernel<true, scalar_t, acc_t>(P, x_ptr, target_ptr, soft_ptr, grad_ptr, loss_ptr);
        } else {
          rows_kernel<false, scalar_t, acc_t>(P, x_ptr, target_ptr, soft_ptr, grad_ptr, loss_ptr);
        }
      } else if (args.adjusted) {
        columns_kernel<true, scalar_t, acc_t>(P, x_ptr, target_ptr, soft_ptr, grad_ptr, loss_ptr);
      } else {
        columns_kernel<false, scalar_t, acc_t>(P, x_ptr, target_ptr, soft_ptr, grad_ptr, loss_ptr);
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
  at::Tensor total;
  if (reduction != kReductionNone) {
    AT_DISPATCH_FLOATING_TYPES(losses.scalar_type(), "softmax_loss_cpu_sum", [&] {
      total = at::scalar_tensor(
          static_cast<scalar_t>(fixed_block_sum(losses.const_data_ptr<scalar_t>(), losses.numel())), losses.options());
    });
  }
  return {reduce_losses(losses, args, reduction, den, input, total), grad, prob};
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
    bool compute_grad,
    const std::optional<at::Tensor>& logit_scale,
    const std::optional<at::Tensor>& margin,
    double scale) {
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
      /*want_prob=*/false,
      logit_scale,
      margin,
      scale);
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
      /*want_prob=*/true,
      /*logit_scale=*/std::nullopt,
      /*margin=*/std::nullopt,
      /*scale=*/1.0);
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("softmax_loss", &softmax_loss_cpu);
  m.impl("softmax_loss_target_prob", &softmax_loss_target_prob_cpu);
}

}  // namespace loss
}  // namespace balancedtorch
