// CPU kernels of balancedtorch::region_loss_stats and region_loss_grad.
//
// Work is split into fixed chunks of pixels of one sample (the split depends
// on the shape only, never on the thread count); each chunk accumulates its
// own per-class sums and the sums of a sample are added in chunk order, so
// results are deterministic. Within a chunk a tile of L pixels is copied into
// a lane-contiguous [C][L] scratch (any layout and dtype, accumulation dtype)
// and processed with one vector lane per pixel. Full tiles of the common case
// (plain_softmax: float/double NC[S] softmax logits, class-index targets)
// take a shorter path of their own (Tile::start_full, Tile::softmax_full).
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
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "cpu/buffer_pool.h"
#include "cpu/vec_math.h"
#include "loss/region_loss.h"
#include "loss/region_loss_args.h"

namespace balancedtorch {
namespace loss {
namespace {

// Pixels per chunk: at least this many, and at most kMaxChunksPerSample chunks per sample.
constexpr int64_t kMinChunkPixels = 4096;
constexpr int64_t kMaxChunksPerSample = 64;

struct Chunking {
  int64_t len = 1, per_sample = 1, total = 0;
};

inline Chunking make_chunking(int64_t N, int64_t S) {
  Chunking k;
  k.len = std::max<int64_t>(kMinChunkPixels, (S + kMaxChunksPerSample - 1) / kMaxChunksPerSample);
  k.per_sample = std::max<int64_t>(1, (S + k.len - 1) / k.len);
  k.total = N * k.per_sample;
  return k;
}

// Bytes of each class plane one tile covers (NC[S] layout): whole cache lines,
// each read once. A tile of one vector (32 bytes of float) came back to every
// line a tile later, after the other C - 1 planes, which share its L1 set
// when S is a multiple of 1024, had evicted it.
constexpr int64_t kTileBytes = 128;
constexpr int64_t kCacheLineBytes = 64;
// Tiles ahead of the current one whose logits are prefetched (into L2: see above).
constexpr int64_t kPrefetchTiles = 2;
// Gradients at least this large are written with streaming stores (cpu::store_stream).
constexpr int64_t kStreamBytes = int64_t{32} << 20;

// One tile of up to W = K * L pixels copied into lane-contiguous scratch
// ([C][W]), computed as K vectors of L pixels.
template <typename scalar_t, typename acc_t, typename target_t>
struct Tile {
  using Vec = at::vec::Vectorized<acc_t>;
  static constexpr int64_t L = Vec::size();
  static constexpr int64_t K = std::max<int64_t>(1, kTileBytes / (L * static_cast<int64_t>(sizeof(acc_t))));
  static constexpr int64_t W = K * L;
  std::vector<acc_t> z, q, e;
  int64_t t[W];
  acc_t tf[W];  // t as acc_t (-1: no class), for vector compares (C < 2^24 is checked)
  acc_t valid[W];
  acc_t inv[W];             // 1 / S per lane, set by softmax(normalize = false) only
  int64_t cnt = 0, kn = 0;  // pixels, and vectors holding them
  // each lane's class and its element of the scratch (see load_targets)
  using Int = at::vec::int_same_size_t<acc_t>;
  using IVec = at::vec::Vectorized<Int>;
  Int cls[W], at_target[W];
  bool all_valid = true;

  explicit Tile(int64_t C, bool dense) : z(C * W), q(dense ? C * W : 0), e(C * W) {}

  // Loads pixels [s0, s0 + cnt) of sample n; returns the first invalid target's flat index or -1.
  int64_t load(
      const RegionParams<acc_t>& P,
      const scalar_t* x,
      const scalar_t* dense_t,
      const target_t* tgt,
      bool class_last,
      int64_t n,
      int64_t s0,
      int64_t count,
      int64_t S) {
    cnt = count;
    kn = (cnt + L - 1) / L;
    const int64_t C = P.C;
    if (!class_last) {
      // NC[S]: each class's pixels are contiguous
      const int64_t base = region_pixel_offset(false, n, s0, C, S);
      if (cnt == W) {
        cpu::prefetch_planes(x + base + kPrefetchTiles * W, P.cs, C, W);
      }
      // locals only in the copy: a vector store may alias anything, so what
      // the loop read through P or this would be reloaded after every store
      const int64_t cs = P.cs;
      acc_t* const z0 = z.data();
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* xs = x + base + c * cs;
        acc_t* zd = z0 + c * W;
        if constexpr (std::is_same_v<scalar_t, acc_t>) {
          if (cnt == W) {
            for (int64_t k = 0; k < K; ++k) {
              Vec::loadu(xs + k * L).store(zd + k * L);
            }
          } else {
            for (int64_t j = 0; j < W; ++j) {
              zd[j] = j < cnt ? xs[j] : acc_t(0);
            }
          }
        } else {
          for (int64_t j = 0; j < W; ++j) {
            zd[j] = j < cnt ? static_cast<acc_t>(xs[j]) : acc_t(0);
          }
        }
        if (P.dense) {
          const scalar_t* qs = dense_t + base + c * P.cs;
          acc_t* qd = q.data() + c * W;
          for (int64_t j = 0; j < W; ++j) {
            qd[j] = j < cnt ? static_cast<acc_t>(qs[j]) : acc_t(0);
          }
        }
      }
    } else {
      for (int64_t j = 0; j < W; ++j) {
        const bool in = j < cnt;
        const int64_t off = in ? region_pixel_offset(true, n, s0 + j, C, S) : 0;
        for (int64_t c = 0; c < C; ++c) {
          z[c * W + j] = in ? static_cast<acc_t>(x[off + c]) : acc_t(0);
          if (P.dense) {
            q[c * W + j] = in ? static_cast<acc_t>(dense_t[off + c]) : acc_t(0);
          }
        }
      }
    }
    return load_targets(P, tgt, n, s0, S);
  }

  // The targets of the tile's cnt pixels from s0 of sample n (class indices;
  // none with dense targets or the sigmoid): t, tf and valid, and for vector
  // gathers each lane's class (0 without one) and its element of that class in
  // the scratch. Branch-free; returns the first invalid target's flat index, or -1.
  int64_t load_targets(const RegionParams<acc_t>& P, const target_t* tgt, int64_t n, int64_t s0, int64_t S) {
    const bool indices = !P.dense && !P.sigmoid;
    const target_t* const src = tgt + n * S + s0;
    const int64_t ii = P.ignore_index;
    const uint64_t nc = static_cast<uint64_t>(P.C);
    bool bad = false, all = true;
    for (int64_t j = 0; j < W; ++j) {
      const bool in = j < cnt;
      // padding lanes, and every lane of dense or sigmoid targets, read as ignored
      const int64_t tj = in && indices ? static_cast<int64_t>(src[j]) : ii;
      const bool ignored = tj == ii;
      const bool in_range = static_cast<uint64_t>(tj) < nc;
      const bool ok = !ignored && in_range;
      bad |= !ignored && !in_range;
      const int64_t c = ok ? tj : 0;
      t[j] = ok ? tj : -1;
      tf[j] = ok ? static_cast<acc_t>(c) : acc_t(-1);
      valid[j] = (indices ? ok : in) ? acc_t(1) : acc_t(0);
      all &= valid[j] != acc_t(0);
      cls[j] = static_cast<Int>(c);
      at_target[j] = static_cast<Int>(c * W + j);
    }
    all_valid = all;
    if (bad) {
      for (int64_t j = 0; j < cnt; ++j) {
        const int64_t tj = static_cast<int64_t>(src[j]);
        if (tj != ii && static_cast<uint64_t>(tj) >= nc) {
          return n * S + s0 + j;
        }
      }
    }
    return -1;
  }

  // A full tile for softmax_full: its targets (load_targets' return).
  int64_t start_full(const RegionParams<acc_t>& P, const target_t* tgt, int64_t n, int64_t s0, int64_t S) {
    cnt = W;
    kn = K;
    return load_targets(P, tgt, n, s0, S);
  }

  // Lane j's element at its target class of the [C][W] scratch a (class 0 without one).
  Vec at_target_of(const acc_t* a, int64_t o) const {
    return at::vec::gather<sizeof(acc_t)>(a, IVec::loadu(at_target + o));
  }

  // v[class of lane j] (v[0] without one).
  Vec of_class(const acc_t* v, int64_t o) const {
    return at::vec::gather<sizeof(acc_t)>(v, IVec::loadu(cls + o));
  }

  // The plain softmax of a full tile of an NC[S] float/double input (base:
  // the offset of its first pixel in class 0; cs the class stride), with
  // start_full already run: the C planes are copied into z with each lane's
  // max taken in registers, then e = exp(z - m) and S in one pass, e left
  // unnormalised and inv = 1 / S; on the way, kOther: s_other (the sum
  // without the target, see target_terms) and kDot 1: dot = sum_c cP_c e_c,
  // kDot 2: sum_c cP_c e_c^2. Against load + softmax: one pass over the
  // scratch less.
  template <bool kOther, int kDot>
  void softmax_full(
      const scalar_t* x, int64_t base, int64_t C, int64_t cs, const acc_t* cP, acc_t* m, acc_t* s_other, acc_t* dot) {
    static_assert(std::is_same_v<scalar_t, acc_t>, "softmax_full reads float/double logits in place");
    cpu::prefetch_planes(x + base + kPrefetchTiles * W, cs, C, W);
    acc_t* const z0 = z.data();
    acc_t* const e0 = e.data();
    Vec vmax[K];
    cpu::copy_planes_max<K>(x + base, cs, C, z0, W, static_cast<const acc_t*>(nullptr), vmax);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t o = k * L;
      // an all -inf pixel takes max 0
      const Vec vm = Vec::blendv(vmax[k], Vec(0), vmax[k] == Vec(-std::numeric_limits<acc_t>::infinity()));
      const Vec vt = Vec::loadu(tf + o);
      Vec vs(0), vso(0), vd(0), vc(0);  // vc: the class index, counted in acc_t (exact: C < 2^24)
      const acc_t* zo = z0 + o;
      acc_t* eo = e0 + o;
      for (int64_t c = 0; c < C; ++c, vc = vc + Vec(1), zo += W, eo += W) {
        const Vec ec = cpu::exp(Vec::loadu(zo) - vm);
        ec.store(eo);
        vs = vs + ec;
        if constexpr (kOther) {
          vso = vso + Vec::blendv(ec, Vec(0), vt == vc);
        }
        if constexpr (kDot == 1) {
          vd = at::vec::fmadd(Vec(cP[c]), ec, vd);
        } else if constexpr (kDot == 2) {
          vd = at::vec::fmadd(Vec(cP[c]) * ec, ec, vd);
        }
      }
      vm.store(m + o);
      vs.reciprocal().store(inv + o);
      if constexpr (kOther) {
        vso.store(s_other + o);
      }
      if constexpr (kDot != 0) {
        vd.store(dot + o);
      }
    }
  }

  // One-hot of the targets at class c for the vector at lane o (zero for ignored and padding lanes).
  Vec onehot(int64_t c, int64_t o) const {
    return Vec::blendv(Vec(0), Vec(1), Vec::loadu(tf + o) == Vec(static_cast<acc_t>(c)));
  }

  // Softmax: e <- p (probabilities), per lane m, S, s_other, in acc_t ([W] each);
  // s_other or null (no CE part needs it). normalize false: e is left as exp(z - m) and inv holds 1 / S, for a
  // caller that scales e as it reads it (one pass over the scratch less).
  void softmax(const RegionParams<acc_t>& P, acc_t* m, acc_t* Ssum, acc_t* s_other, bool normalize = true) {
    const int64_t C = P.C;
    for (int64_t k = 0; k < kn; ++k) {
      const int64_t o = k * L;
      const acc_t* zo = z.data() + o;
      acc_t* eo = e.data() + o;
      // a nan logit need not propagate through the max: its e makes S, and so
      // every p and term of the pixel, nan
      Vec vm(-std::numeric_limits<acc_t>::infinity());
      for (int64_t c = 0; c < C; ++c) {
        vm = cpu::max_no_nan(vm, Vec::loadu(zo + c * W));
      }
      // an all -inf pixel takes max 0
      vm = Vec::blendv(vm, Vec(0), vm == Vec(-std::numeric_limits<acc_t>::infinity()));
      vm.store(m + o);
      Vec vs(0), vso(0);
      const Vec vt = Vec::loadu(tf + o);
      for (int64_t c = 0; c < C; ++c) {
        const Vec z = Vec::loadu(zo + c * W);
        const Vec ec = cpu::exp(z - vm);
        ec.store(eo + c * W);
        vs = vs + ec;
        // s_other: the sum without the target, never formed by cancellation (see target_terms)
        if (s_other) {
          vso = vso + Vec::blendv(ec, Vec(0), vt == Vec(static_cast<acc_t>(c)));
        }
      }
      vs.store(Ssum + o);
      if (s_other) {
        vso.store(s_other + o);
      }
      const Vec vinv = vs.reciprocal();
      if (!normalize) {
        vinv.store(inv + o);
        continue;
      }
      for (int64_t c = 0; c < C; ++c) {
        (Vec::loadu(eo + c * W) * vinv).store(eo + c * W);
      }
    }
  }
};

// The common case, with full tiles of its own (Tile::softmax_full): float or
// double NC[S] logits, the softmax activation, class-index targets, no
// soft_label, and the CE/focal part absent or in the target mode.
template <typename scalar_t, typename acc_t>
inline bool plain_softmax(const RegionParams<acc_t>& P, bool class_last) {
  return std::is_same_v<scalar_t, acc_t> && !class_last && !P.sigmoid && !P.none && !P.dense && !P.soft &&
         (P.ce_kind == kRegionNoCe || !P.smoothing_mode);
}

// target_terms (softmax_loss.h) for a vector of pixels, from dz = z_t - m and
// s_other: the target-mode CE/focal loss -w pw lp and h = w pw u. The scalar
// form (a libm exp and log per pixel) cost as much as the softmax of all C
// classes, in each of the two passes.
template <typename acc_t>
inline void target_terms_vec(
    acc_t gamma,
    const at::vec::Vectorized<acc_t>& dz,
    const at::vec::Vectorized<acc_t>& s_other,
    const at::vec::Vectorized<acc_t>& wt,
    at::vec::Vectorized<acc_t>& loss,
    at::vec::Vectorized<acc_t>& h) {
  using Vec = at::vec::Vectorized<acc_t>;
  const Vec et = cpu::exp(dz);
  const Vec S = et + s_other;
  const Vec inv_S = Vec(acc_t(1)) / S;
  // lanes whose target is the max take -log1p(s_other), the others dz - log S
  const Vec lp = at::vec::minimum(cpu::target_log_prob(dz, S, s_other, inv_S), Vec(0));
  Vec pw(1), u(-1);
  if (gamma != acc_t(0)) {
    const Vec omp = s_other * inv_S;
    const Vec p = et * inv_S;
    pw = gamma == acc_t(2) ? omp * omp : (gamma == acc_t(1) ? omp : omp.pow(Vec(gamma)));
    const Vec ratio = Vec::blendv(Vec(-1), lp / omp, omp > Vec(0));
    u = Vec(gamma) * p * ratio - Vec(1);
  }
  loss = (wt * pw * lp).neg();
  h = wt * pw * u;
}

// The target-mode CE/focal terms of the tile vector at lane o, from its m and
// s_other: the class weight w of each lane's target (0 for lanes without a
// class), and with_loss: the loss l; and h = w pw u (target_terms_vec), zero
// for lanes without a class. The target's logit and weight are gathered from
// the tile. Without the loss and at gamma = 0, h = -w with no logs.
template <typename TileT, typename acc_t>
inline void tile_target_terms(
    const RegionParams<acc_t>& P,
    const TileT& tl,
    int64_t o,
    const acc_t* m,
    const acc_t* so,
    bool with_loss,
    at::vec::Vectorized<acc_t>& w,
    at::vec::Vectorized<acc_t>& l,
    at::vec::Vectorized<acc_t>& h) {
  using Vec = at::vec::Vectorized<acc_t>;
  const Vec ok = Vec::loadu(tl.valid + o);
  const Vec ok_mask = ok != Vec(0);
  w = P.weight ? tl.of_class(P.weight, o) * ok : ok;
  if (!with_loss && P.gamma == acc_t(0)) {
    l = Vec(0);
    h = w.neg();  // target_terms' w pw u with pw = 1, u = -1
    return;
  }
  const Vec vm = Vec::loadu(m + o);
  target_terms_vec(
      P.gamma, Vec::blendv(vm, tl.at_target_of(tl.z.data(), o), ok_mask) - vm, Vec::loadu(so + o), w, l, h);
  l = Vec::blendv(Vec(0), l, ok_mask);
  h = Vec::blendv(Vec(0), h, ok_mask);
}

// Whether the gradient pass's softmax CE/focal part reads s_other: the
// label-smoothed form does, and the target mode's h does for gamma > 0; at
// gamma = 0 it is -w (tile_target_terms), so the softmax need not form it.
template <typename acc_t>
inline bool grad_needs_s_other(const RegionParams<acc_t>& P) {
  return P.smoothing_mode || P.gamma != acc_t(0);
}

// The sigmoid element terms of region_loss.h (region_sigmoid, region_sigmoid_ce)
// for a vector of elements of class c: p, 1 - p and, when with_ce, the CE/focal
// loss and its derivative (stable softplus forms, as sigmoid_focal_element).
template <typename acc_t>
inline void sigmoid_terms(
    const RegionParams<acc_t>& P,
    int64_t c,
    const at::vec::Vectorized<acc_t>& x,
    const at::vec::Vectorized<acc_t>& y,
    bool with_ce,
    at::vec::Vectorized<acc_t>& p,
    at::vec::Vectorized<acc_t>& omp,
    at::vec::Vectorized<acc_t>& loss,
    at::vec::Vectorized<acc_t>& d) {
  using Vec = at::vec::Vectorized<acc_t>;
  const Vec zero(0), one(1);
  const Vec e = cpu::exp(x.abs().neg());
  const Vec inv = (one + e).reciprocal();
  const Vec pos = x >= zero;
  p = Vec::blendv(e * inv, inv, pos);
  omp = Vec::blendv(inv, e * inv, pos);
  if (!with_ce) {
    return;
  }
  const Vec sp = e.log1p();
  const Vec log_p = at::vec::minimum(x, zero) - sp;
  const Vec log_1mp = at::vec::minimum(x.neg(), zero) - sp;
  const bool focal = P.ce_kind == kRegionFocal;
  const Vec a_pos = focal ? y : Vec(region_weight(P, c)) * y;
  const Vec a_neg = one - y;
  Vec l = (a_pos * log_p + a_neg * log_1mp).neg();
  Vec dl = a_neg * p - a_pos * omp;
  if (focal) {
    const acc_t gamma = P.gamma;
    if (gamma != acc_t(0)) {
      const Vec m = p * a_neg + omp * y;
      const Vec mod = gamma == acc_t(2) ? m * m : (gamma == acc_t(1) ? m : m.pow(Vec(gamma)));
      const Vec dm = p * omp * (one - Vec(2) * y);
      const Vec dmod = Vec::blendv(zero, Vec(gamma) * mod * (dm / m), m > zero);
      dl = dl * mod + l * dmod;
      l = l * mod;
    }
    Vec cw(c < P.ce_first_class ? acc_t(0) : region_weight(P, c));
    if (P.alpha >= acc_t(0)) {  // alpha_t = alpha y + (1 - alpha) (1 - y), as sigmoid_focal_element
      cw = cw * (Vec(P.alpha) * y + Vec(acc_t(1) - P.alpha) * a_neg);
    }
    l = l * cw;
    dl = dl * cw;
  }
  loss = l;
  d = dl;
}

// Vector forms of region_dice_terms / region_dice_a (region_loss.h).
template <typename acc_t>
inline at::vec::Vectorized<acc_t> vsign(const at::vec::Vectorized<acc_t>& v) {
  using Vec = at::vec::Vectorized<acc_t>;
  return Vec::blendv(Vec(0), Vec(1), v > Vec(0)) - Vec::blendv(Vec(0), Vec(1), v < Vec(0));
}

template <typename acc_t>
inline void dice_terms(
    const RegionParams<acc_t>& P,
    const at::vec::Vectorized<acc_t>& p,
    const at::vec::Vectorized<acc_t>& t,
    at::vec::Vectorized<acc_t>& vi,
    at::vec::Vectorized<acc_t>& vp,
    at::vec::Vectorized<acc_t>& vt) {
  if (P.soft && !P.squared) {
    const at::vec::Vectorized<acc_t> ap = p.abs(), at_ = t.abs();
    vi = vi + (ap + at_ - (p - t).abs()) * at::vec::Vectorized<acc_t>(acc_t(0.5));
    vp = vp + ap;
    vt = vt + at_;
    return;
  }
  vi = at::vec::fmadd(p, t, vi);
  vp = P.squared ? at::vec::fmadd(p, p, vp) : vp + p;
  vt = P.squared ? at::vec::fmadd(t, t, vt) : vt + t;
}

template <typename acc_t>
inline at::vec::Vectorized<acc_t> dice_a(
    const RegionParams<acc_t>& P,
    const at::vec::Vectorized<acc_t>& p,
    const at::vec::Vectorized<acc_t>& t,
    acc_t cI,
    acc_t cP) {
  using Vec = at::vec::Vectorized<acc_t>;
  if (P.soft && !P.squared) {
    const Vec sp = vsign(p);
    return Vec(cI) * (sp - vsign(p - t)) * Vec(acc_t(0.5)) + Vec(cP) * sp;
  }
  return at::vec::fmadd(Vec(cI), t, P.squared ? Vec(acc_t(2) * cP) * p : Vec(cP));
}

template <typename scalar_t, typename acc_t, typename target_t>
void stats_kernel(
    const RegionParams<acc_t>& P,
    const scalar_t* x,
    const scalar_t* dense_t,
    const target_t* tgt,
    bool class_last,
    int64_t N,
    int64_t S,
    acc_t* sums /* [N, 3, C] */,
    acc_t* ce /* [N, 2] */,
    int64_t& first_bad) {
  using T = Tile<scalar_t, acc_t, target_t>;
  using Vec = typename T::Vec;
  constexpr int64_t L = T::L;
  constexpr int64_t W = T::W;
  const int64_t C = P.C;
  const Chunking k = make_chunking(N, S);
  const int64_t width = 3 * C;
  std::vector<acc_t> partial(k.total * width, acc_t(0));
  // the CE/focal sums in double: a float running sum of 10^5 weights drifts by 1e-5 relative
  std::vector<double> ce_partial(k.total * 2, 0.0);
  std::vector<int64_t> bad(k.total, -1);
  const bool plain = plain_softmax<scalar_t>(P, class_last);
  at::parallel_for(0, k.total, 1, [&](int64_t begin, int64_t end) {
    T tile(C, P.dense);
    // per-(class, lane) sums of the chunk: lane j adds pixels j, j + L, ... in order
    // (I and T have a spare class C: see the full tiles)
    std::vector<acc_t> vI((C + 1) * L), vP(C * L), vT((C + 1) * L);
    acc_t m[W], Ssum[W], so[W], wt[W], la[W];
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t n = chunk / k.per_sample;
      const int64_t s_begin = (chunk % k.per_sample) * k.len;
      const int64_t s_end = std::min(S, s_begin + k.len);
      std::fill(vI.begin(), vI.end(), acc_t(0));
      std::fill(vP.begin(), vP.end(), acc_t(0));
      std::fill(vT.begin(), vT.end(), acc_t(0));
      double ce_sum = 0, ce_den = 0;
      // target mode CE/focal from m and so: vector terms per lane, each tile's lanes added
      // to the chunk's double sums in lane order
      auto add_ce = [&](const T& tl) {
        Vec tile_l(0), tile_w(0);
        for (int64_t kv = 0; kv < tl.kn; ++kv) {
          Vec w, l, h;
          tile_target_terms(P, tl, kv * L, m, so, true, w, l, h);
          tile_l = tile_l + l;
          tile_w = tile_w + w;
        }
        tile_l.store(la);
        tile_w.store(wt);
        for (int64_t j = 0; j < L; ++j) {
          ce_sum += la[j];
          ce_den += wt[j];
        }
      };
      for (int64_t s0 = s_begin; s0 < s_end; s0 += W) {
        const bool full_plain = plain && s_end - s0 >= W;
        const int64_t b = full_plain ? tile.start_full(P, tgt, n, s0, S)
                                     : tile.load(P, x, dense_t, tgt, class_last, n, s0, std::min(W, s_end - s0), S);
        if (b >= 0) {
          bad[chunk] = b;
          break;
        }
        if constexpr (std::is_same_v<scalar_t, acc_t>) {
          if (full_plain) {
            const int64_t base = region_pixel_offset(false, n, s0, C, S);
            const acc_t* const e0 = tile.e.data();
            if (P.ce_kind != kRegionNoCe) {
              tile.template softmax_full<true, 0>(x, base, C, P.cs, nullptr, m, so, nullptr);
              add_ce(tile);
            } else {
              tile.template softmax_full<false, 0>(x, base, C, P.cs, nullptr, m, so, nullptr);
            }
            // P from the unnormalised e scaled by pscale = (1 / S) valid, as below; I and T
            // only at each pixel's target class, added to the same (class, lane) sums in the
            // same order as the vector form adds them (the other classes add exact zeros;
            // lanes without a class add to the spare class C)
            acc_t pscale[W], pt[W];
            for (int64_t kv = 0; kv < T::K; ++kv) {
              const int64_t o = kv * L;
              const Vec ps = Vec::loadu(tile.inv + o) * Vec::loadu(tile.valid + o);
              ps.store(pscale + o);
              (tile.at_target_of(e0, o) * ps).store(pt + o);
            }
            for (int64_t c = 0; c < C; ++c) {
              Vec vp = Vec::loadu(vP.data() + c * L);
              for (int64_t kv = 0; kv < T::K; ++kv) {
                const Vec p = Vec::loadu(e0 + c * W + kv * L) * Vec::loadu(pscale + kv * L);
                vp = P.squared ? at::vec::fmadd(p, p, vp) : vp + p;
              }
              vp.store(vP.data() + c * L);
            }
            for (int64_t j = 0; j < W; ++j) {
              const int64_t slot = (tile.t[j] >= 0 ? tile.t[j] : C) * L + j % L;
              vI[slot] += pt[j];
              vT[slot] += acc_t(1);
            }
            continue;
          }
        }
        if (P.sigmoid) {
          const bool with_ce = P.ce_kind != kRegionNoCe;
          for (int64_t kv = 0; kv < tile.kn; ++kv) {
            const int64_t o = kv * L;
            const Vec vvalid = Vec::loadu(tile.valid + o);
            Vec vce(0);
            for (int64_t c = 0; c < C; ++c) {
              Vec p, omp, l, d;
              sigmoid_terms(
                  P,
                  c,
                  Vec::loadu(tile.z.data() + c * W + o),
                  Vec::loadu(tile.q.data() + c * W + o),
                  with_ce,
                  p,
                  omp,
                  l,
                  d);
              p.store(tile.e.data() + c * W + o);
              if (with_ce) {
                vce = at::vec::fmadd(l, vvalid, vce);
              }
            }
            ce_sum += at::vec::vec_reduce_all<acc_t>([](Vec& a, Vec& b) { return a + b; }, vce);
          }
        } else if (P.none && P.ce_kind == kRegionFocal) {
          // activation "none": MONAI's sigmoid focal loss on the input taken as logits
          for (int64_t kv = 0; kv < tile.kn; ++kv) {
            const int64_t o = kv * L;
            const Vec vvalid = Vec::loadu(tile.valid + o);
            Vec vce(0);
            for (int64_t c = 0; c < C; ++c) {
              const Vec tt = P.dense ? Vec::loadu(tile.q.data() + c * W + o) : tile.onehot(c, o);
              Vec p, omp, l, d;
              sigmoid_terms(P, c, Vec::loadu(tile.z.data() + c * W + o), tt, true, p, omp, l, d);
              vce = at::vec::fmadd(l, vvalid, vce);
            }
            ce_sum += at::vec::vec_reduce_all<acc_t>([](Vec& a, Vec& b) { return a + b; }, vce);
            acc_t nvalid = 0;
            for (int64_t j = 0; j < L; ++j) {
              nvalid += tile.valid[o + j];
            }
            ce_den += nvalid * static_cast<acc_t>(C - P.ce_first_class);
          }
        } else if (!P.none || P.ce_kind != kRegionNoCe) {
          const bool vec_ce = P.ce_kind != kRegionNoCe && !P.smoothing_mode;
          tile.softmax(P, m, Ssum, P.ce_kind != kRegionNoCe ? so : nullptr, false);
          if (vec_ce) {
            add_ce(tile);
          } else if (P.ce_kind != kRegionNoCe) {
            // CE/focal per lane from the shared scalar math (reads the scratch logits, class stride W)
            RegionParams<acc_t> Q = P;
            Q.cs = W;
            for (int64_t j = 0; j < tile.cnt; ++j) {
              if (tile.valid[j] == acc_t(0)) {
                continue;
              }
              acc_t H, hh, den;
              ce_sum += region_softmax_ce(
                  Q,
                  tile.z.data() + j,
                  P.dense ? tile.q.data() + j : tile.z.data() + j,
                  tile.t[j],
                  m[j],
                  Ssum[j],
                  so[j],
                  H,
                  hh,
                  den);
              ce_den += den;
            }
          }
        }
        // stats: p (masked), p*t, t; activation "none": p is the input itself.
        // p = e (1 / S) valid: the mask and softmax's normalisation in one
        // factor per lane (valid is 0 or 1, so e (1 / S) rounds as before)
        // (the softmax branch above ran, leaving tile.inv, exactly when neither sigmoid nor "none")
        const acc_t* pd = P.none ? tile.z.data() : tile.e.data();
        const bool softmax_p = !P.sigmoid && !P.none;
        acc_t pscale[W];
        for (int64_t j = 0; j < tile.kn * L; ++j) {
          pscale[j] = softmax_p ? tile.inv[j] * tile.valid[j] : tile.valid[j];
        }
        for (int64_t c = 0; c < C; ++c) {
          // the class's sums stay in registers over the tile's vectors (each lane still adds its pixels in order)
          Vec vi = Vec::loadu(vI.data() + c * L), vp = Vec::loadu(vP.data() + c * L),
              vt = Vec::loadu(vT.data() + c * L);
          for (int64_t kv = 0; kv < tile.kn; ++kv) {
            const int64_t o = kv * L;
            const Vec vvalid = Vec::loadu(tile.valid + o);
            const Vec p = Vec::loadu(pd + c * W + o) * Vec::loadu(pscale + o);
            const Vec tt = P.dense ? Vec::loadu(tile.q.data() + c * W + o) * vvalid : tile.onehot(c, o);
            dice_terms(P, p, tt, vi, vp, vt);
          }
          vi.store(vI.data() + c * L);
          vp.store(vP.data() + c * L);
          vt.store(vT.data() + c * L);
        }
      }
      acc_t* out = partial.data() + chunk * width;
      for (int64_t c = 0; c < C; ++c) {
        acc_t si = 0, sp = 0, st = 0;
        for (int64_t j = 0; j < L; ++j) {
          si += vI[c * L + j];
          sp += vP[c * L + j];
          st += vT[c * L + j];
        }
        out[c] = si;
        out[C + c] = sp;
        out[2 * C + c] = st;
      }
      if (P.sigmoid) {
        ce_den = static_cast<double>((s_end - s_begin) * (P.ce_kind == kRegionFocal ? C - P.ce_first_class : C));
      }
      ce_partial[2 * chunk] = ce_sum;
      ce_partial[2 * chunk + 1] = ce_den;
    }
  });
  first_bad = -1;
  for (int64_t chunk = 0; chunk < k.total; ++chunk) {
    if (bad[chunk] >= 0) {
      first_bad = bad[chunk];
      return;
    }
  }
  // a sample's chunks added in chunk order, in double
  std::vector<double> acc(3 * C);
  for (int64_t n = 0; n < N; ++n) {
    std::fill(acc.begin(), acc.end(), 0.0);
    double ce_s = 0, ce_d = 0;
    for (int64_t i = 0; i < k.per_sample; ++i) {
      const int64_t chunk = n * k.per_sample + i;
      const acc_t* src = partial.data() + chunk * width;
      for (int64_t c = 0; c < 3 * C; ++c) {
        acc[c] += static_cast<double>(src[c]);
      }
      ce_s += ce_partial[2 * chunk];
      ce_d += ce_partial[2 * chunk + 1];
    }
    acc_t* dst = sums + n * 3 * C;
    for (int64_t c = 0; c < 3 * C; ++c) {
      dst[c] = static_cast<acc_t>(acc[c]);
    }
    ce[2 * n] = static_cast<acc_t>(ce_s);
    ce[2 * n + 1] = static_cast<acc_t>(ce_d);
  }
}

template <typename scalar_t, typename acc_t, typename target_t>
void grad_kernel(
    const RegionParams<acc_t>& P,
    const scalar_t* x,
    const scalar_t* dense_t,
    const target_t* tgt,
    bool class_last,
    int64_t N,
    int64_t S,
    const acc_t* coef /* [N, 2, C] */,
    const acc_t* ce_coef /* [N] */,
    scalar_t* grad) {
  using T = Tile<scalar_t, acc_t, target_t>;
  using Vec = typename T::Vec;
  constexpr int64_t L = T::L;
  constexpr int64_t W = T::W;
  const int64_t C = P.C;
  const Chunking k = make_chunking(N, S);
  // streaming stores need whole, aligned lines of every plane (checked per tile for its start)
  const bool stream = std::is_same_v<scalar_t, acc_t> && !class_last &&
                      N * C * S * static_cast<int64_t>(sizeof(acc_t)) >= kStreamBytes &&
                      (S * static_cast<int64_t>(sizeof(acc_t))) % kCacheLineBytes == 0;
  const bool plain = plain_softmax<scalar_t>(P, class_last);
  at::parallel_for(0, k.total, 1, [&](int64_t begin, int64_t end) {
    T tile(C, P.dense);
    std::vector<acc_t> g(C * W), hbuf(C * W);
    acc_t m[W], Ssum[W], so[W], Hs[W], hh[W];
    // The plain case (plain_softmax) on a full tile, written straight to the
    // gradient. With B = sum_k a_k p_k and the CE part's H = hh folded in,
    //   g_c = p_c (cP_c - B - ce hh) + [c = t] (cI_t p_t + ce hh)
    // (squared: p_c (2 cP_c p_c - B - ce hh) + ...), where B = cI_t p_t plus
    // the dot softmax_full forms as it goes, times 1 / S (squared: 2 / S^2).
    auto plain_tile = [&](auto& tl, int64_t n, int64_t s0, const acc_t* cI, const acc_t* cP, acc_t ce) {
      const int64_t base = region_pixel_offset(false, n, s0, C, S);
      const bool with_ce = P.ce_kind != kRegionNoCe && ce != acc_t(0);
      acc_t dot[W];
      if (with_ce && grad_needs_s_other(P)) {
        P.squared ? tl.template softmax_full<true, 2>(x, base, C, P.cs, cP, m, so, dot)
                  : tl.template softmax_full<true, 1>(x, base, C, P.cs, cP, m, so, dot);
      } else {
        P.squared ? tl.template softmax_full<false, 2>(x, base, C, P.cs, cP, m, so, dot)
                  : tl.template softmax_full<false, 1>(x, base, C, P.cs, cP, m, so, dot);
      }
      // per lane: -(B + ce hh) and the target's extra term, the target's values gathered
      acc_t nb[W], fx[W];
      const acc_t* const e0 = tl.e.data();
      for (int64_t kv = 0; kv < T::K; ++kv) {
        const int64_t o = kv * L;
        const Vec ok = Vec::loadu(tl.valid + o), inv = Vec::loadu(tl.inv + o), d = Vec::loadu(dot + o);
        const Vec pt = tl.at_target_of(e0, o) * inv * ok;
        const Vec cit = tl.of_class(cI, o) * ok;
        Vec ch(0);
        if (with_ce) {
          Vec w, l, h;
          tile_target_terms(P, tl, o, m, so, false, w, l, h);
          ch = Vec(ce) * h;
        }
        const Vec b = (P.squared ? Vec(2) * d * inv * inv : d * inv) + cit * pt;
        (b + ch).neg().store(nb + o);
        (cit * pt + ch).store(fx + o);
      }
      const bool masked = !tl.all_valid;
      acc_t* const gd = reinterpret_cast<acc_t*>(grad) + base;
      // locals only (see Tile::load)
      auto write = [&, e_src = e0, g_dst = gd, cs = P.cs, nc = C, cp_src = cP](
                       auto squared, auto with_mask, auto store) {
        Vec inv_[T::K], nb_[T::K], fx_[T::K], t_[T::K], ok_[T::K];
        for (int64_t kv = 0; kv < T::K; ++kv) {
          inv_[kv] = Vec::loadu(tl.inv + kv * L);
          nb_[kv] = Vec::loadu(nb + kv * L);
          fx_[kv] = Vec::loadu(fx + kv * L);
          t_[kv] = Vec::loadu(tl.tf + kv * L);
          ok_[kv] = Vec::loadu(tl.valid + kv * L);
        }
        const acc_t* e = e_src;
        acc_t* g = g_dst;
        Vec vc(0);
        for (int64_t c = 0; c < nc; ++c, vc = vc + Vec(1), e += W, g += cs) {
          const Vec cp(decltype(squared)::value ? acc_t(2) * cp_src[c] : cp_src[c]);
          for (int64_t kv = 0; kv < T::K; ++kv) {
            const Vec p = Vec::loadu(e + kv * L) * inv_[kv];
            Vec gc = decltype(squared)::value ? p * at::vec::fmadd(cp, p, nb_[kv]) : p * (cp + nb_[kv]);
            gc = gc + Vec::blendv(Vec(0), fx_[kv], t_[kv] == vc);
            if constexpr (decltype(with_mask)::value) {
              gc = gc * ok_[kv];  // as the general path: an ignored pixel's nan logit stays nan
            }
            store(g + kv * L, gc);
          }
        }
      };
      auto plain_store = [](acc_t* d, const Vec& v) { v.store(d); };
      auto streamed = [](acc_t* d, const Vec& v) { cpu::store_stream(d, v); };
      const bool streaming = stream && reinterpret_cast<uintptr_t>(gd) % kCacheLineBytes == 0;
      auto run = [&](auto squared) {
        if (streaming) {
          masked ? write(squared, std::true_type{}, streamed) : write(squared, std::false_type{}, streamed);
        } else {
          masked ? write(squared, std::true_type{}, plain_store) : write(squared, std::false_type{}, plain_store);
        }
      };
      P.squared ? run(std::true_type{}) : run(std::false_type{});
    };
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t n = chunk / k.per_sample;
      const int64_t s_begin = (chunk % k.per_sample) * k.len;
      const int64_t s_end = std::min(S, s_begin + k.len);
      const acc_t* cI = coef + n * 2 * C;
      const acc_t* cP = cI + C;
      const acc_t ce = ce_coef[n];
      for (int64_t s0 = s_begin; s0 < s_end; s0 += W) {
        // targets validated by the stats pass
        const bool full_plain = plain && s_end - s0 >= W;
        if (full_plain) {
          tile.start_full(P, tgt, n, s0, S);
        } else {
          tile.load(P, x, dense_t, tgt, class_last, n, s0, std::min(W, s_end - s0), S);
        }
        if constexpr (std::is_same_v<scalar_t, acc_t>) {
          if (full_plain) {
            plain_tile(tile, n, s0, cI, cP, ce);
            continue;
          }
        }
        if (P.sigmoid) {
          const bool with_ce = P.ce_kind != kRegionNoCe;
          const Vec vce(ce);
          for (int64_t kv = 0; kv < tile.kn; ++kv) {
            const int64_t o = kv * L;
            for (int64_t c = 0; c < C; ++c) {
              const Vec y = Vec::loadu(tile.q.data() + c * W + o);
              Vec p, omp, l, d;
              sigmoid_terms(P, c, Vec::loadu(tile.z.data() + c * W + o), y, with_ce, p, omp, l, d);
              const Vec a = dice_a(P, p, y, cI[c], cP[c]);
              Vec gv = a * p * omp;
              if (with_ce) {
                gv = at::vec::fmadd(vce, d, gv);
              }
              gv.store(g.data() + c * W + o);
            }
          }
        } else {
          // with_ce: a softmax CE/focal part; with_fs: MONAI's sigmoid focal part of activation "none"
          const bool focal_sig = P.none && P.ce_kind == kRegionFocal;
          const bool with_ce = P.ce_kind != kRegionNoCe && ce != acc_t(0) && !focal_sig;
          const bool with_fs = focal_sig && ce != acc_t(0);
          const bool vec_ce = with_ce && !P.smoothing_mode;
          if (!P.none || with_ce) {
            tile.softmax(P, m, Ssum, with_ce && grad_needs_s_other(P) ? so : nullptr);
          }
          if (vec_ce) {
            // target mode: H = hh = w pw u, zero for ignored and padding lanes
            for (int64_t kv = 0; kv < tile.kn; ++kv) {
              Vec w, l, h;
              tile_target_terms(P, tile, kv * L, m, so, false, w, l, h);
              h.store(Hs + kv * L);
              h.store(hh + kv * L);
            }
          } else if (with_ce) {
            RegionParams<acc_t> Q = P;
            Q.cs = W;
            for (int64_t j = 0; j < tile.kn * L; ++j) {
              Hs[j] = hh[j] = acc_t(0);
              if (j >= tile.cnt || tile.valid[j] == acc_t(0)) {
                for (int64_t c = 0; c < C; ++c) {
                  hbuf[c * W + j] = acc_t(0);
                }
                continue;
              }
              const acc_t* zj = tile.z.data() + j;
              const acc_t* qj = P.dense ? tile.q.data() + j : zj;
              acc_t den;
              region_softmax_ce(Q, zj, qj, tile.t[j], m[j], Ssum[j], so[j], Hs[j], hh[j], den);
              if (Q.smoothing_mode) {
                const acc_t logS = std::log(Ssum[j]);
                acc_t dummy = 0;
                for (int64_t c = 0; c < C; ++c) {
                  hbuf[c * W + j] = region_ce_h(Q, c, tile.t[j], zj, qj, m[j], logS, dummy);
                }
              }
            }
          }
          // a_c = cI_c t_c + cP_c (1 or 2 p_c) (soft_label: region_dice_a); B = sum_c a_c p_c
          const acc_t* pd = P.none ? tile.z.data() : tile.e.data();
          for (int64_t kv = 0; kv < tile.kn; ++kv) {
            const int64_t o = kv * L;
            Vec B(0);
            for (int64_t c = 0; c < C; ++c) {
              const Vec p = Vec::loadu(pd + c * W + o);
              const Vec tt = P.dense ? Vec::loadu(tile.q.data() + c * W + o) : tile.onehot(c, o);
              const Vec a = dice_a(P, p, tt, cI[c], cP[c]);
              a.store(g.data() + c * W + o);
              B = at::vec::fmadd(a, p, B);
            }
            const Vec vce(ce), vH = with_ce ? Vec::loadu(Hs + o) : Vec(0), vvalid = Vec::loadu(tile.valid + o);
            for (int64_t c = 0; c < C; ++c) {
              const Vec gcur = Vec::loadu(g.data() + c * W + o);
              Vec gc = P.none ? gcur : Vec::loadu(pd + c * W + o) * (gcur - B);
              if (with_ce) {
                // the CE part's softmax p: the tile holds it only when there is a CE part
                const Vec p = Vec::loadu(tile.e.data() + c * W + o);
                gc = P.smoothing_mode ? gc + vce * (Vec::loadu(hbuf.data() + c * W + o) - p * vH) : gc - vce * p * vH;
              }
              if (with_fs) {
                const Vec tt = P.dense ? Vec::loadu(tile.q.data() + c * W + o) : tile.onehot(c, o);
                Vec sp, somp, sl, sd;
                sigmoid_terms(P, c, Vec::loadu(tile.z.data() + c * W + o), tt, true, sp, somp, sl, sd);
                gc = at::vec::fmadd(vce, sd, gc);
              }
              (gc * vvalid).store(g.data() + c * W + o);
            }
          }
          if (with_ce && !P.smoothing_mode) {
            // target mode: h is hh at the target class only
            for (int64_t j = 0; j < tile.cnt; ++j) {
              if (tile.valid[j] != acc_t(0)) {
                g[tile.t[j] * W + j] += ce * hh[j];
              }
            }
          }
        }
        if (!class_last) {
          scalar_t* gd = grad + region_pixel_offset(false, n, s0, C, S);
          if (std::is_same_v<scalar_t, acc_t> && tile.cnt == W) {
            // locals only (see Tile::load)
            acc_t* ga = reinterpret_cast<acc_t*>(gd);
            const acc_t* gs = g.data();
            const int64_t cs = P.cs;
            if (stream && reinterpret_cast<uintptr_t>(ga) % kCacheLineBytes == 0) {
              for (int64_t c = 0; c < C; ++c, ga += cs, gs += W) {
                for (int64_t kv = 0; kv < T::K; ++kv) {
                  cpu::store_stream(ga + kv * L, Vec::loadu(gs + kv * L));
                }
              }
            } else {
              for (int64_t c = 0; c < C; ++c, ga += cs, gs += W) {
                for (int64_t kv = 0; kv < T::K; ++kv) {
                  Vec::loadu(gs + kv * L).store(ga + kv * L);
                }
              }
            }
          } else {
            for (int64_t c = 0; c < C; ++c) {
              for (int64_t j = 0; j < tile.cnt; ++j) {
                gd[c * P.cs + j] = static_cast<scalar_t>(g[c * W + j]);
              }
            }
          }
        } else {
          for (int64_t j = 0; j < tile.cnt; ++j) {
            scalar_t* gd = grad + region_pixel_offset(true, n, s0 + j, C, S);
            for (int64_t c = 0; c < C; ++c) {
              gd[c] = static_cast<scalar_t>(g[c * W + j]);
            }
          }
        }
      }
    }
    if (stream) {
      cpu::stream_fence();  // the streamed gradient is visible to whoever joins this thread
    }
  });
}

std::tuple<at::Tensor, at::Tensor> region_loss_stats_cpu(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    int64_t activation,
    bool squared_pred,
    int64_t ignore_index,
    int64_t ce_kind,
    double gamma,
    double label_smoothing,
    int64_t ce_first_class,
    bool soft_label,
    double alpha) {
  const RegionLossArgs a = check_region_loss_args(
      "region_loss_stats", input, target, weight, activation, ce_kind, gamma, label_smoothing, ce_first_class, alpha);
  TORCH_CHECK(input.device().is_cpu(), "region_loss_stats: expected input on the CPU, got ", input.device());
  const RegionLossLayout l = region_loss_layout(input, target, a);
  at::Tensor sums = at::zeros({a.N, 3, a.C}, l.x.options().dtype(l.acc_type));
  at::Tensor ce = at::zeros({a.N, 2}, l.x.options().dtype(l.acc_type));
  if (a.N * a.S == 0) {
    return {sums, ce};
  }
  int64_t first_bad = -1;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, l.x.scalar_type(), "region_loss_stats_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor w = weight.has_value() ? weight->to(l.acc_type).contiguous() : at::Tensor();
    const RegionParams<acc_t> P = make_region_params<acc_t>(
        a,
        l,
        w.defined() ? w.const_data_ptr<acc_t>() : nullptr,
        ignore_index,
        gamma,
        label_smoothing,
        squared_pred,
        ce_first_class,
        soft_label,
        alpha);
    dispatch_target(a, l.target, [&](auto* tptr) {
      stats_kernel<scalar_t, acc_t>(
          P,
          l.x.const_data_ptr<scalar_t>(),
          a.dense ? l.target.const_data_ptr<scalar_t>() : nullptr,
          tptr,
          a.class_last,
          a.N,
          a.S,
          sums.mutable_data_ptr<acc_t>(),
          ce.mutable_data_ptr<acc_t>(),
          first_bad);
      if (first_bad >= 0) {
        raise_invalid_region_target(first_bad, static_cast<int64_t>(tptr[first_bad]), a.C, ignore_index);
      }
    });
  });
  return {sums, ce};
}

at::Tensor region_loss_grad_cpu(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    int64_t activation,
    bool squared_pred,
    int64_t ignore_index,
    int64_t ce_kind,
    double gamma,
    double label_smoothing,
    int64_t ce_first_class,
    const at::Tensor& coef,
    const at::Tensor& ce_coef,
    bool soft_label,
    double alpha) {
  const RegionLossArgs a = check_region_loss_args(
      "region_loss_grad", input, target, weight, activation, ce_kind, gamma, label_smoothing, ce_first_class, alpha);
  TORCH_CHECK(input.device().is_cpu(), "region_loss_grad: expected input on the CPU, got ", input.device());
  const RegionLossLayout l = region_loss_layout(input, target, a);
  check_region_coef("region_loss_grad", coef, ce_coef, a, l);
  // a large contiguous gradient comes from the buffer pool (warm pages; see cpu/buffer_pool.h)
  at::Tensor grad = l.x.is_contiguous() ? cpu::pooled_empty(l.x.sizes(), l.x.options()) : at::empty_like(l.x);
  if (a.N * a.S * a.C == 0) {
    return grad;
  }
  const at::Tensor cf = coef.contiguous(), cc = ce_coef.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, l.x.scalar_type(), "region_loss_grad_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor w = weight.has_value() ? weight->to(l.acc_type).contiguous() : at::Tensor();
    const RegionParams<acc_t> P = make_region_params<acc_t>(
        a,
        l,
        w.defined() ? w.const_data_ptr<acc_t>() : nullptr,
        ignore_index,
        gamma,
        label_smoothing,
        squared_pred,
        ce_first_class,
        soft_label,
        alpha);
    dispatch_target(a, l.target, [&](auto* tptr) {
      grad_kernel<scalar_t, acc_t>(
          P,
          l.x.const_data_ptr<scalar_t>(),
          a.dense ? l.target.const_data_ptr<scalar_t>() : nullptr,
          tptr,
          a.class_last,
          a.N,
          a.S,
          cf.const_data_ptr<acc_t>(),
          cc.const_data_ptr<acc_t>(),
          grad.mutable_data_ptr<scalar_t>());
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("region_loss_stats", &region_loss_stats_cpu);
  m.impl("region_loss_grad", &region_loss_grad_cpu);
}

}  // namespace loss
}  // namespace balancedtorch
