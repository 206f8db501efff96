// balancedtorch::knn: exact k nearest neighbours (squared Euclidean), chunked.
//
// Exact means a float64 brute force's answer (up to the last-bit rounding
// of float64 sums), ties to the lower index, on every finite input. Each query's candidates come from a fast
// approximate search that carries a proven bound E on its distance error and keeps every point within 2E of the query's
// k-th approximate distance; the candidates are re-ranked with float64 differences. A query whose window holds more
// points than its list is searched by float64 differences against every
// reference instead (exact_rows_cpu, brute_generic).
//
// The approximate searches: on the CPU the fused float32 / bfloat16 kernel
// (cpu/distance_topk.cpp); elsewhere (CUDA) the distance tiles go through the
// backend's GEMM (||q||^2 + ||r||^2 - 2 q.r, one addmm per tile), merged into
// the running candidates with the backend's top-k. All of them run in
// float32, float64 input included (centred in float64 first). Peak extra
// memory is bounded by the tile budget, whatever N and M are.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include "device_check.h"
#include "distance_topk.h"

namespace balancedtorch {
namespace knn {
namespace {

void check_args(
    const at::Tensor& x,
    int64_t k,
    const std::optional<at::Tensor>& groups,
    const std::optional<at::Tensor>& ref,
    const std::optional<at::Tensor>& ref_groups) {
  TORCH_CHECK_TYPE(at::isFloatingType(x.scalar_type()), "knn: x must be a floating tensor, got ", x.scalar_type());
  TORCH_CHECK_VALUE(x.dim() == 2, "knn: x must have shape (N, D), got ", x.sizes());
  TORCH_CHECK_VALUE(x.size(1) >= 1, "knn: x must have at least 1 feature (D >= 1), got shape ", x.sizes());
  TORCH_CHECK_VALUE(k >= 1, "knn: k must be >= 1, got ", k);
  if (ref.has_value()) {
    TORCH_CHECK_VALUE(
        ref->dim() == 2 && ref->size(1) == x.size(1),
        "knn: ref must have shape (M, D) with D = ",
        x.size(1),
        ", got ",
        ref->sizes());
    TORCH_CHECK_TYPE(
        ref->scalar_type() == x.scalar_type(),
        "knn: ref must have x's dtype ",
        x.scalar_type(),
        ", got ",
        ref->scalar_type());
    check_same_device("knn", "ref", *ref, "x", x);
  }
  const int64_t M = ref.has_value() ? ref->size(0) : x.size(0);
  for (const auto* g : {&groups, &ref_groups}) {
    if (!g->has_value()) {
      continue;
    }
    const bool is_ref = g == &ref_groups;
    const char* name = is_ref ? "ref_groups" : "groups";
    const int64_t n = is_ref ? M : x.size(0);
    TORCH_CHECK_TYPE(
        c10::isIntegralType((*g)->scalar_type(), /*includeBool=*/false),
        "knn: ",
        name,
        " must be an integer tensor, got ",
        (*g)->scalar_type());
    TORCH_CHECK_VALUE(
        (*g)->dim() == 1 && (*g)->size(0) == n, "knn: ", name, " must have shape (", n, ",), got ", (*g)->sizes());
    check_same_device("knn", name, **g, "x", x);
  }
  TORCH_CHECK_VALUE(
      !ref_groups.has_value() || groups.has_value(), "knn: ref_groups needs groups (the queries' groups) as well");
}

// t * 2^e in two exact steps (2^e itself may be out of range of t's dtype,
// e.g. 2^132 for float32 data of 1e-40, or of float64 for data of 1e-310).
at::Tensor times_pow2(const at::Tensor& t, int e) {
  const int a = e / 2;
  return t * std::ldexp(1.0, a) * std::ldexp(1.0, e - a);
}

// Squared float64 distances from the originals of the neighbours found
// (rows of xq against xr[idx]), chunked within max_tile_bytes.
void distances_of(
    const at::Tensor& xq, const at::Tensor& xr, const at::Tensor& idx, int64_t max_tile_bytes, at::Tensor& out_d) {
  const int64_t N = xq.size(0), k = idx.size(1), D = xq.size(1);
  const int64_t chunk = std::max<int64_t>(1, max_tile_bytes / (8 * 2 * k * D));
  for (int64_t q0 = 0; q0 < N; q0 += chunk) {
    const int64_t q1 = std::min(N, q0 + chunk);
    const at::Tensor i = idx.slice(0, q0, q1);
    const at::Tensor nb = xr.index_select(0, i.flatten()).to(at::kDouble).view({q1 - q0, k, D});
    out_d.slice(0, q0, q1).copy_((xq.slice(0, q0, q1).to(at::kDouble).unsqueeze(1) - nb).pow(2).sum(2));
  }
}

// max |element| of t; NaN or inf anywhere is an error naming the argument.
// aminmax is one reduction without isfinite's boolean temporary, and its
// min and max propagate NaN.
double finite_max_abs(const at::Tensor& t, const char* name) {
  if (t.numel() == 0) {
    return 0.0;
  }
  const auto [lo_t, hi_t] = at::aminmax(t);
  const double lo = lo_t.item<double>(), hi = hi_t.item<double>();
  TORCH_CHECK_VALUE(std::isfinite(lo) && std::isfinite(hi), "knn: ", name, " contains NaN or inf");
  return std::max(-lo, hi);
}

// Running k-best lists of a block of queries: sorted ascending, ties in
// arrival order (= lower index first, as reference indices only increase).
template <typename scalar_t>
void scan_tile_cpu(
    const scalar_t* tile,
    int64_t Q,
    int64_t R,
    int64_t r0,
    int64_t self_shift,  // query q's own column in this tile is q - self_shift (self search), else none
    bool self,
    int64_t cand,
    scalar_t* best_d,
    int64_t* best_i,
    int64_t* filled) {
  using Vec = at::vec::Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const scalar_t inf = std::numeric_limits<scalar_t>::infinity();
  at::parallel_for(0, Q, 8, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const scalar_t* row = tile + q * R;
      scalar_t* d = best_d + q * cand;
      int64_t* ix = best_i + q * cand;
      int64_t n = filled[q];
      const int64_t own = self ? q - self_shift : -1;
      scalar_t thr = n < cand ? inf : d[cand - 1];
      auto offer = [&](scalar_t v, int64_t j) {
        if (!(v < thr) || j == own) {
          return;
        }
        int64_t p = n < cand ? n++ : cand - 1;
        while (p > 0 && d[p - 1] > v) {
          d[p] = d[p - 1];
          ix[p] = ix[p - 1];
          --p;
        }
        d[p] = v;
        ix[p] = r0 + j;
        thr = n < cand ? inf : d[cand - 1];
      };
      int64_t j = 0;
      constexpr int all_clear = (1 << W) - 1;
      for (; j + W <= R; j += W) {
        const Vec v = Vec::loadu(row + j);
        // most distances are above the current k-th best: one compare per W
        if ((v < Vec(thr)).zero_mask() != all_clear) {
          for (int64_t l = 0; l < W; ++l) {
            offer(row[j + l], j + l);
          }
        }
      }
      for (; j < R; ++j) {
        offer(row[j], j);
      }
      filled[q] = n;
    }
  });
}

// The `cand` best candidates (approximate distances, indices) of queries
// [q0, q1) through backend GEMM tiles (float32): on the CPU (only for N or M
// >= 2^31, beyond the fused kernel) a fused scan of each tile, elsewhere the
// backend's top-k. Not sorted on CUDA.
std::tuple<at::Tensor, at::Tensor> scan_chunk(
    const at::Tensor& qw,
    const at::Tensor& rw,
    const at::Tensor& qsq,
    const at::Tensor& rsq,
    int64_t q0,
    int64_t q1,
    int64_t cand,
    int64_t rchunk,
    bool self,
    bool cpu) {
  const int64_t M = rw.size(0);
  const double inf = std::numeric_limits<double>::infinity();
  const auto idx_opts = qw.options().dtype(at::kLong);
  at::Tensor best_d = at::full({q1 - q0, cpu ? cand : 0}, inf, qw.options());
  at::Tensor best_i = at::full({q1 - q0, cpu ? cand : 0}, -1, idx_opts);
  at::Tensor filled = at::zeros({q1 - q0}, idx_opts.device(at::kCPU));
  for (int64_t r0 = 0; r0 < M; r0 += rchunk) {
    const int64_t r1 = std::min(M, r0 + rchunk);
    // ||q||^2 + ||r||^2 - 2 q.r in one GEMM (addmm onto the broadcast norms)
    at::Tensor tile = at::addmm(
        qsq.slice(0, q0, q1).unsqueeze(1) + rsq.slice(0, r0, r1).unsqueeze(0),
        qw.slice(0, q0, q1),
        rw.slice(0, r0, r1).t(),
        1,
        -2);
    if (cpu) {
      AT_DISPATCH_FLOATING_TYPES(qw.scalar_type(), "knn_scan", [&] {
        scan_tile_cpu<scalar_t>(
            tile.const_data_ptr<scalar_t>(),
            q1 - q0,
            r1 - r0,
            r0,
            r0 - q0,
            self && r0 < q1 && q0 < r1,
            cand,
            best_d.mutable_data_ptr<scalar_t>(),
            best_i.mutable_data_ptr<int64_t>(),
            filled.mutable_data_ptr<int64_t>());
      });
      continue;
    }
    if (self) {
      const int64_t lo = std::max(q0, r0), hi = std::min(q1, r1);
      if (lo < hi) {
        tile.slice(0, lo - q0, hi - q0).slice(1, lo - r0, hi - r0).fill_diagonal_(inf);
      }
    }
    const int64_t take = std::min<int64_t>(cand, r1 - r0);
    auto [td, ti] = at::topk(tile, take, /*dim=*/1, /*largest=*/false, /*sorted=*/false);
    at::Tensor all_d = at::cat({best_d, td}, 1);
    at::Tensor all_i = at::cat({best_i, ti + r0}, 1);
    auto [md, mi] = at::topk(all_d, std::min<int64_t>(cand, all_d.size(1)), 1, /*largest=*/false, /*sorted=*/false);
    best_d = md;
    best_i = all_i.gather(1, mi);
  }
  return {best_d, best_i};
}

// Per-row windows of the GEMM-tile path (float32 tiles; WindowBound in
// distance_topk.h): float32 GEMMs may round their inputs (CUDA TF32, or
// bfloat16 under torch.set_float32_matmul_precision("medium")), taken as
// u_in = 2^-7, a truncating bfloat16 conversion.
at::Tensor gemm_windows(const at::Tensor& qsq, double bmax2, int64_t D) {
  const WindowBound bound = window_bound(D, /*u_in=*/0x1p-7);
  const at::Tensor a2 = qsq.to(at::kDouble).clamp_min(0.0);
  return (a2.sqrt() * (bound.c1 * std::sqrt(bmax2)) + (a2 + bmax2) * bound.c2 + bound.slack) * WindowBound::kScale;
}

// Keeps the candidates within a row's window of its k-th approximate distance
// (others set to -1) and returns the rows whose list may have turned away
// points inside the window (its `cand`-th entry inside it, with more
// references than the list holds): their candidates are not proven.
at::Tensor apply_windows(at::Tensor& best_d, at::Tensor& best_i, const at::Tensor& window, int64_t k, int64_t avail) {
  const int64_t cand = best_d.size(1);
  auto [sd, order] = best_d.to(at::kDouble).sort(/*dim=*/1);
  best_i = best_i.gather(1, order);
  const at::Tensor limit = sd.select(1, k - 1) + window;
  best_i.masked_fill_(sd > limit.unsqueeze(1), -1);
  return cand < avail ? sd.select(1, cand - 1) <= limit : at::zeros_like(limit, limit.options().dtype(at::kBool));
}

// CPU: the exact re-rank row by row, in place, without temporaries: float64
// squared differences of each candidate, then (distance, index) order.
template <typename scalar_t>
void rerank_cpu(
    const at::Tensor& xq,
    const at::Tensor& xr,
    const at::Tensor& best_i,
    int64_t k,
    at::Tensor& out_d,
    at::Tensor& out_i) {
  const int64_t N = xq.size(0), D = xq.size(1), cand = best_i.size(1);
  const at::Tensor q = xq.contiguous(), r = xr.contiguous(), bi = best_i.contiguous();
  const scalar_t* qp = q.const_data_ptr<scalar_t>();
  const scalar_t* rp = r.const_data_ptr<scalar_t>();
  const int64_t* ip = bi.const_data_ptr<int64_t>();
  double* od = out_d.mutable_data_ptr<double>();
  int64_t* oi = out_i.mutable_data_ptr<int64_t>();
  const int64_t sd = out_d.stride(0), si = out_i.stride(0);
  at::parallel_for(0, N, 64, [&](int64_t a, int64_t b) {
    std::vector<std::pair<double, int64_t>> found(cand);
    for (int64_t n = a; n < b; ++n) {
      const scalar_t* x = qp + n * D;
      for (int64_t c = 0; c < cand; ++c) {
        const int64_t j = ip[n * cand + c];
        double acc = std::numeric_limits<double>::infinity();
        if (j >= 0) {
          const scalar_t* y = rp + j * D;
          // four independent sums: the float64 adds are not reordered by the
          // compiler, so one chain would wait on every add
          double part[4] = {0.0, 0.0, 0.0, 0.0};
          int64_t d = 0;
          for (; d + 4 <= D; d += 4) {
            for (int l = 0; l < 4; ++l) {
              const double diff = static_cast<double>(x[d + l]) - static_cast<double>(y[d + l]);
              part[l] += diff * diff;
            }
          }
          for (; d < D; ++d) {
            const double diff = static_cast<double>(x[d]) - static_cast<double>(y[d]);
            part[0] += diff * diff;
          }
          acc = (part[0] + part[1]) + (part[2] + part[3]);
        }
        found[c] = {acc, j < 0 ? std::numeric_limits<int64_t>::max() : j};
      }
      std::partial_sort(found.begin(), found.begin() + k, found.end());
      for (int64_t c = 0; c < k; ++c) {
        od[n * sd + c] = found[c].first;
        oi[n * si + c] = found[c].second == std::numeric_limits<int64_t>::max() ? -1 : found[c].second;
      }
    }
  });
}

// Exact float64 re-rank of candidate indices (-1: none); ties to the lower index.
void rerank(
    const at::Tensor& xq,
    const at::Tensor& xr,
    const at::Tensor& best_i,
    int64_t k,
    at::Tensor out_d,
    at::Tensor out_i,
    bool cpu) {
  if (cpu && out_d.stride(1) == 1 && out_i.stride(1) == 1) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xq.scalar_type(), "knn_rerank", [&] {
      rerank_cpu<scalar_t>(xq, xr, best_i, k, out_d, out_i);
    });
    return;
  }
  const double inf = std::numeric_limits<double>::infinity();
  const at::Tensor safe_i = best_i.clamp_min(0);
  const at::Tensor diff = xq.to(at::kDouble).unsqueeze(1) -
                          xr.index_select(0, safe_i.flatten()).to(at::kDouble).view({xq.size(0), safe_i.size(1), -1});
  at::Tensor exact = diff.pow(2).sum(2).masked_fill_(best_i < 0, inf);
  at::Tensor by_index = std::get<1>(best_i.masked_fill(best_i < 0, xr.size(0)).sort(/*dim=*/1));
  at::Tensor si = best_i.gather(1, by_index);
  at::Tensor sd = exact.gather(1, by_index);
  at::Tensor order = std::get<1>(sd.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false));
  out_d.copy_(sd.gather(1, order).slice(1, 0, k));
  out_i.copy_(si.gather(1, order).slice(1, 0, k));
}

// Any device: the exact search of single rows (exact_rows_cpu) with tensor ops, reference chunk by chunk
// (a stable sort of [best so far, chunk] keeps ties on the lower index).
void brute_generic(
    const at::Tensor& xq,
    const at::Tensor& xr,
    const at::Tensor& rows,
    int64_t k,
    bool self,
    int64_t max_tile_bytes,
    at::Tensor& out_d,
    at::Tensor& out_i) {
  const int64_t D = xq.size(1), M = xr.size(0), R = rows.size(0);
  const double inf = std::numeric_limits<double>::infinity();
  const at::Tensor r = xr.to(at::kDouble);
  const int64_t qchunk = std::min<int64_t>(R, 256);
  const int64_t rchunk = std::max<int64_t>(k, max_tile_bytes / (8 * 3 * D * qchunk));
  for (int64_t t0 = 0; t0 < R; t0 += qchunk) {
    const at::Tensor rr = rows.slice(0, t0, std::min(R, t0 + qchunk));
    const at::Tensor q = xq.index_select(0, rr).to(at::kDouble);
    at::Tensor best_d = at::empty({rr.size(0), 0}, q.options());
    at::Tensor best_i = at::empty({rr.size(0), 0}, rr.options());
    for (int64_t r0 = 0; r0 < M; r0 += rchunk) {
      const int64_t r1 = std::min(M, r0 + rchunk);
      at::Tensor d = (q.unsqueeze(1) - r.slice(0, r0, r1).unsqueeze(0)).pow(2).sum(2);
      const at::Tensor j = at::arange(r0, r1, rr.options()).unsqueeze(0).expand({rr.size(0), r1 - r0});
      if (self) {
        // NaN sorts after every distance, inf included: the row itself is never taken
        d.masked_fill_(j == rr.unsqueeze(1), std::numeric_limits<double>::quiet_NaN());
      }
      const at::Tensor all_d = at::cat({best_d, d}, 1), all_i = at::cat({best_i, j}, 1);
      const at::Tensor order = std::get<1>(all_d.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false)).slice(1, 0, k);
      best_d = all_d.gather(1, order);
      best_i = all_i.gather(1, order);
    }
    out_d.index_copy_(0, rr, best_d);
    out_i.index_copy_(0, rr, best_i);
  }
}

// k nearest of every row of xq among the rows of xr (self: xq is xr, and a
// row is not its own neighbour). Returns exact float64 distances and indices.
//
// Exactness: every approximate search (bfloat16 / float32 fused kernel, GEMM
// tiles) carries a per-row bound E on its distance error and keeps every
// point within 2E of the row's k-th approximate distance, a proven superset
// of the exact k nearest, which the float64 re-rank orders. Where a row's
// window holds more points than its list (tight clusters far from the
// centre, masses of near-ties), the row is searched by exact float64
// differences instead.
std::tuple<at::Tensor, at::Tensor> dense_knn(
    const at::Tensor& xq,
    const at::Tensor& xr,
    int64_t k,
    bool self,
    int64_t max_tile_bytes,
    int scale_exp,
    bool rscaled) {
  const int64_t N = xq.size(0), M = xr.size(0), D = xq.size(1);
  const auto idx_opts = xq.options().dtype(at::kLong);
  // BALANCEDTORCH_KNN_GENERIC=1 runs the device-generic path (the one CUDA
  // takes) on the CPU too, so that the tests exercise it without a GPU
  const char* generic_env = std::getenv("BALANCEDTORCH_KNN_GENERIC");
  const bool cpu = xq.is_cpu() && !(generic_env != nullptr && std::strcmp(generic_env, "1") == 0);
  // The search runs in float32 whatever the input (float64 too: its bound
  // covers the rounding of the centred points to float32, and the re-rank
  // and the exact search use the originals); `prec` is the precision the
  // data are scaled and centred in before that rounding.
  const bool scaled = scale_exp != 0;
  const at::ScalarType prec = xq.scalar_type() == at::kDouble || scaled ? at::kDouble : at::kFloat;
  const at::ScalarType work = at::kFloat;
  // Power-of-two scalings are exact and change no order: the search runs on
  // data scaled into [2^-40, 2^40] (float32 squares neither overflow nor
  // underflow), the re-rank and the exact search on the originals unless
  // their float64 squares could (rscale; see knn_impl).
  const at::Tensor q_exact = rscaled ? times_pow2(xq.to(at::kDouble), scale_exp) : xq;
  const at::Tensor r_exact = self ? q_exact : (rscaled ? times_pow2(xr.to(at::kDouble), scale_exp) : xr);
  at::Tensor qp = scaled ? times_pow2(xq.to(prec), scale_exp) : xq.to(prec);
  at::Tensor rp = self ? qp : (scaled ? times_pow2(xr.to(prec), scale_exp) : xr.to(prec));
  // |q|^2 + |r|^2 - 2 q.r cancels for points far from the origin compared
  // with their spread, and the error bounds grow with the norms: the search
  // then runs on copies centred on the references' mean, which changes no
  // distance (and is exact where the points are within a factor 2 of it).
  // float64 input is always centred before its rounding to float32, so that
  // only the centred values are rounded (the bound's terms).
  const at::Tensor mu = rp.mean(0);
  const double mu2 = mu.square().sum().item<double>();
  const double spread = std::pow(rp.norm().item<double>(), 2) / static_cast<double>(M) - mu2;
  const bool centred = mu2 > 0.25 * spread || prec == at::kDouble;
  if (centred) {
    qp = qp - mu;
    rp = self ? qp : rp - mu;
  }
  const at::Tensor qw = qp.to(work), rw = self ? qw : rp.to(work);

  at::Tensor out_d = at::empty({N, k}, xq.options().dtype(at::kDouble));
  at::Tensor out_i = at::empty({N, k}, idx_opts);
  std::vector<at::Tensor> unproven;  // rows for the exact search
  // CPU float32: the fused register-blocked kernel finds all candidates at once
  const bool fused = cpu && N < (int64_t{1} << 31) && M < (int64_t{1} << 31);
  if (fused) {
    auto [cands, rows] =
        candidates_cpu_f32(qw, rw, centred ? at::zeros_like(qw[0]) : mu.to(work), k, self, max_tile_bytes);
    const int64_t qchunk = std::max<int64_t>(1, max_tile_bytes / (8 * 4 * cands.size(1)));
    for (int64_t q0 = 0; q0 < N; q0 += qchunk) {
      const int64_t q1 = std::min(N, q0 + qchunk);
      rerank(
          q_exact.slice(0, q0, q1),
          r_exact,
          cands.slice(0, q0, q1),
          k,
          out_d.slice(0, q0, q1),
          out_i.slice(0, q0, q1),
          cpu);
    }
    unproven.push_back(rows);
  } else {
    const int64_t cand = f32_list_size(k, M, self);
    const int64_t elt = at::elementSize(work);
    const int64_t rchunk =
        std::max<int64_t>(std::min<int64_t>(M, max_tile_bytes / (elt * 256)), std::min<int64_t>(M, 4 * cand));
    const int64_t qchunk = std::max<int64_t>(1, std::min<int64_t>(N, max_tile_bytes / (elt * (rchunk + 2 * cand))));
    const at::Tensor qsq = qw.pow(2).sum(1);
    const at::Tensor rsq = self ? qsq : rw.pow(2).sum(1);
    const double bmax2 = rsq.max().item<double>();
    const at::Tensor windows = gemm_windows(qsq, bmax2, D);
    for (int64_t q0 = 0; q0 < N; q0 += qchunk) {
      const int64_t q1 = std::min(N, q0 + qchunk);
      auto [best_d, best_i] = scan_chunk(qw, rw, qsq, rsq, q0, q1, cand, rchunk, self, cpu);
      const at::Tensor open = apply_windows(best_d, best_i, windows.slice(0, q0, q1), k, M - (self ? 1 : 0));
      rerank(q_exact.slice(0, q0, q1), r_exact, best_i, k, out_d.slice(0, q0, q1), out_i.slice(0, q0, q1), cpu);
      unproven.push_back(open);  // masks: one nonzero (host sync) after the loop
    }
    unproven = {at::cat(unproven).nonzero().squeeze(1)};
  }
  const at::Tensor rows = at::cat(unproven);
  if (rows.numel() > 0) {
    if (cpu) {
      exact_rows_cpu(q_exact, r_exact, rows, k, self, out_d, out_i);
    } else {
      brute_generic(q_exact, r_exact, rows, k, self, max_tile_bytes, out_d, out_i);
    }
  }
  if (rscaled) {
    // ranked on scaled copies (the true order); the distances themselves from
    // the originals, so that small ones do not round to 0 (large ones are inf)
    distances_of(xq, xr, out_i, max_tile_bytes, out_d);
  }
  return {out_d, out_i};
}

std::tuple<at::Tensor, at::Tensor> knn_impl(
    const at::Tensor& x_in,
    int64_t k,
    const std::optional<at::Tensor>& groups_in,
    const std::optional<at::Tensor>& ref_in,
    const std::optional<at::Tensor>& ref_groups_in,
    int64_t max_tile_bytes) {
  check_args(x_in, k, groups_in, ref_in, ref_groups_in);
  TORCH_CHECK_VALUE(max_tile_bytes >= (1 << 20), "knn: max_tile_bytes must be >= 1 MiB, got ", max_tile_bytes);
  const bool self = !ref_in.has_value();
  const at::Tensor x = x_in.contiguous();
  const at::Tensor ref = self ? x : ref_in->contiguous();
  const int64_t N = x.size(0), M = ref.size(0);
  const double max_abs = std::max(finite_max_abs(x, "x"), self ? 0.0 : finite_max_abs(ref, "ref"));
  // The candidate search squares the values in float32: far outside
  // [2^-40, 2^40] that over- or underflows, so the search then runs on copies
  // scaled by a power of two (exact; the same order), and the re-rank on the
  // originals in float64.
  const int scale_exp = max_abs > 0.0 && (max_abs > 0x1p40 || max_abs < 0x1p-40) ? -std::ilogb(max_abs) : 0;
  // The float64 re-rank squares differences of the originals. Only float64
  // input beyond 2^509 / sqrt(D) or below 2^-500 could over- or underflow there: it is
  // then ranked on the scaled copies (the true order, where a float64 brute
  // force would see ties at 0 or inf) and its distances taken from the
  // originals (0 or inf where the true value is beyond float64).
  const bool rscaled =
      x.scalar_type() == at::kDouble &&
      (max_abs * std::sqrt(static_cast<double>(x.size(1))) > 0x1p509 || (max_abs > 0.0 && max_abs < 0x1p-500));
  const auto idx_opts = x.options().dtype(at::kLong);
  if (!groups_in.has_value()) {
    TORCH_CHECK_VALUE(
        N == 0 || M - (self ? 1 : 0) >= k,
        "knn: k=",
        k,
        " but a query has only ",
        M - (self ? 1 : 0),
        " candidate neighbours",
        (self ? " (itself excluded)" : ""));
    if (N == 0) {
      return {at::empty({0, k}, x.options()), at::empty({0, k}, idx_opts)};
    }
    auto [d, i] = dense_knn(x, ref, k, self, max_tile_bytes, scale_exp, rscaled);
    return {d.to(x.scalar_type()), i};
  }
  // Groups: each group is searched on its own, so no cross-group distance is
  // ever computed (the bulk of the work when there are many classes).
  at::Tensor qg = groups_in->to(at::kLong).contiguous();
  at::Tensor rg = ref_groups_in.has_value() ? ref_groups_in->to(at::kLong).contiguous() : qg;
  TORCH_CHECK_VALUE(!ref_in.has_value() || ref_groups_in.has_value(), "knn: with ref and groups, give ref_groups too");
  if (N == 0) {
    return {at::empty({0, k}, x.options()), at::empty({0, k}, idx_opts)};
  }
  TORCH_CHECK_VALUE(
      qg.min().item<int64_t>() >= 0 && (rg.numel() == 0 || rg.min().item<int64_t>() >= 0), "knn: groups must be >= 0");
  const int64_t top = std::max(qg.max().item<int64_t>(), rg.numel() ? rg.max().item<int64_t>() : 0);
  int64_t G = top < 2 * (N + M) + 64 ? top + 1 : 0;
  // sparse group values (e.g. hashes or 2^40, up to INT64_MAX): number the
  // groups present instead of counting over every value up to the largest
  at::Tensor values;
  if (G == 0) {
    auto [uniq, inv, counts] =
        at::_unique2(self ? qg : at::cat({qg, rg}), /*sorted=*/true, /*return_inverse=*/true, /*return_counts=*/false);
    qg = inv.slice(0, 0, N).contiguous();
    rg = self ? qg : inv.slice(0, N).contiguous();
    G = uniq.size(0);
    values = uniq.cpu();
  }
  const at::Tensor qorder = std::get<1>(qg.sort(/*stable=*/true, 0, false));
  const at::Tensor rorder = self ? qorder : std::get<1>(rg.sort(/*stable=*/true, 0, false));
  const at::Tensor qcount = at::bincount(qg, {}, G).cpu(), rcount = at::bincount(rg, {}, G).cpu();
  const int64_t* qc = qcount.const_data_ptr<int64_t>();
  const int64_t* rc = rcount.const_data_ptr<int64_t>();
  for (int64_t g = 0; g < G; ++g) {
    TORCH_CHECK_VALUE(
        qc[g] == 0 || rc[g] - (self ? 1 : 0) >= k,
        "knn: k=",
        k,
        " but a query has only ",
        rc[g] - (self ? 1 : 0),
        " candidate neighbours in its group",
        (self ? " (itself excluded)" : ""),
        " (group ",
        values.defined() ? values.const_data_ptr<int64_t>()[g] : g,
        ")");
  }
  at::Tensor out_d = at::empty({N, k}, x.options().dtype(at::kDouble));
  at::Tensor out_i = at::empty({N, k}, idx_opts);
  int64_t qoff = 0, roff = 0;
  for (int64_t g = 0; g < G; ++g) {
    const at::Tensor qi = qorder.slice(0, qoff, qoff + qc[g]);
    const at::Tensor ri = rorder.slice(0, roff, roff + rc[g]);
    qoff += qc[g];
    roff += rc[g];
    if (qi.numel() == 0) {
      continue;
    }
    auto [d, local] =
        dense_knn(x.index_select(0, qi), ref.index_select(0, ri), k, self, max_tile_bytes, scale_exp, rscaled);
    out_d.index_copy_(0, qi, d);
    out_i.index_copy_(0, qi, ri.index_select(0, local.flatten()).view({-1, k}));
  }
  return {out_d.to(x.scalar_type()), out_i};
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CompositeExplicitAutograd, m) {
  m.impl("knn", &knn_impl);
}

}  // namespace knn
}  // namespace balancedtorch
