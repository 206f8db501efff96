// Fused squared-distance GEMM and per-row top-candidates for float32 on the CPU.
//
// A register-blocked micro-kernel (MR = 6 queries x NR = 2 vectors of
// references, the reference panel packed [D][NR] and kept in L1/L2) computes
// d = |q|^2 + |r|^2 - 2 q.r and compares each 6 x NR block against the
// running candidate thresholds with one vector compare per register; only
// the rare distances below a threshold leave the registers. No distance tile
// is ever written to memory, so the work runs at the speed of the FMA units
// rather than of a GEMM followed by a scan.
//
// Self search is symmetric: every pair (i, j), i < j, is computed once and
// offered to both i's and j's lists (j's through per-thread lists, merged at
// the end), which halves the arithmetic. The caller re-ranks the candidates
// with exact float64 distances.
#include "../distance_topk.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#if defined(CPU_CAPABILITY_AVX2)
#include <immintrin.h>
#endif

namespace balancedtorch {
namespace knn {
namespace {

using Vec = at::vec::Vectorized<float>;
constexpr int64_t W = Vec::size();
constexpr int64_t MR = 6;
constexpr int64_t NR = 2 * W;
constexpr float kInf = std::numeric_limits<float>::infinity();

inline int lane_mask(const Vec& v) {
#if defined(CPU_CAPABILITY_AVX2)
  return _mm256_movemask_ps(static_cast<__m256>(v));
#else
  float buf[W];
  v.store(buf);
  int m = 0;
  for (int64_t l = 0; l < W; ++l) {
    uint32_t bits;
    std::memcpy(&bits, buf + l, sizeof(bits));
    m |= (bits != 0) << l;
  }
  return m;
#endif
}

// Candidate lists of `rows` points: ascending distances, thr[r] = the
// distance a newcomer must beat (inf until the list is full).
struct Lists {
  int64_t cand;
  std::vector<float> d;
  std::vector<int32_t> idx;
  std::vector<int32_t> n;
  std::vector<float> thr;

  Lists(int64_t rows, int64_t rows_padded, int64_t cand_)
      : cand(cand_), d(rows * cand_, kInf), idx(rows * cand_, -1), n(rows, 0), thr(rows_padded, -kInf) {
    std::fill(thr.begin(), thr.begin() + rows, kInf);
  }

  inline void offer(int64_t r, float v, int32_t j) {
    float* dr = d.data() + r * cand;
    int32_t* ir = idx.data() + r * cand;
    int32_t& cnt = n[r];
    int64_t p = cnt < cand ? cnt++ : cand - 1;
    while (p > 0 && dr[p - 1] > v) {
      dr[p] = dr[p - 1];
      ir[p] = ir[p - 1];
      --p;
    }
    dr[p] = v;
    ir[p] = j;
    thr[r] = cnt < cand ? kInf : dr[cand - 1];
  }
};

enum class Mode { Ref, SelfExclude, Symmetric };

// Pack references [c0, c1) into panels of NR columns, [D][NR] each; padded
// columns get norm +inf so their distances never qualify.
void pack_panels(const float* r, const float* rn, int64_t c0, int64_t c1, int64_t D, float* panels, float* pnorm) {
  const int64_t np = (c1 - c0 + NR - 1) / NR;
  at::parallel_for(0, np, 16, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* dst = panels + p * D * NR;
      for (int64_t c = 0; c < NR; ++c) {
        const int64_t j = c0 + p * NR + c;
        if (j < c1) {
          const float* src = r + j * D;
          for (int64_t d = 0; d < D; ++d) {
            dst[d * NR + c] = src[d];
          }
          pnorm[p * NR + c] = rn[j];
        } else {
          for (int64_t d = 0; d < D; ++d) {
            dst[d * NR + c] = 0.f;
          }
          pnorm[p * NR + c] = kInf;
        }
      }
    }
  });
}

template <Mode mode>
inline void micro_tile(
    const float* const* qrow,
    const float* qn,  // MR norms (+inf for padded rows)
    int64_t i0,
    int64_t rows_real,
    const float* panel,
    const float* pn,
    int64_t j0,
    int64_t D,
    Lists& rl,
    Lists* cl) {
  // twelve named accumulators: an array of vectors would live on the stack
  Vec c00(0.f), c01(0.f), c10(0.f), c11(0.f), c20(0.f), c21(0.f);
  Vec c30(0.f), c31(0.f), c40(0.f), c41(0.f), c50(0.f), c51(0.f);
  const float *a0 = qrow[0], *a1 = qrow[1], *a2 = qrow[2], *a3 = qrow[3], *a4 = qrow[4], *a5 = qrow[5];
#pragma GCC unroll 4
  for (int64_t d = 0; d < D; ++d) {
    const Vec b0 = Vec::loadu(panel + d * NR);
    const Vec b1 = Vec::loadu(panel + d * NR + W);
    Vec a(a0[d]);
    c00 = at::vec::fmadd(a, b0, c00);
    c01 = at::vec::fmadd(a, b1, c01);
    a = Vec(a1[d]);
    c10 = at::vec::fmadd(a, b0, c10);
    c11 = at::vec::fmadd(a, b1, c11);
    a = Vec(a2[d]);
    c20 = at::vec::fmadd(a, b0, c20);
    c21 = at::vec::fmadd(a, b1, c21);
    a = Vec(a3[d]);
    c30 = at::vec::fmadd(a, b0, c30);
    c31 = at::vec::fmadd(a, b1, c31);
    a = Vec(a4[d]);
    c40 = at::vec::fmadd(a, b0, c40);
    c41 = at::vec::fmadd(a, b1, c41);
    a = Vec(a5[d]);
    c50 = at::vec::fmadd(a, b0, c50);
    c51 = at::vec::fmadd(a, b1, c51);
  }
  const Vec acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  const Vec m2(-2.f);
  const Vec n0 = Vec::loadu(pn), n1 = Vec::loadu(pn + W);
  for (int64_t r = 0; r < rows_real; ++r) {
    const Vec q(qn[r]);
    const Vec d0 = at::vec::fmadd(acc[r][0], m2, n0 + q);
    const Vec d1 = at::vec::fmadd(acc[r][1], m2, n1 + q);
    const int64_t i = i0 + r;
    const Vec rt(rl.thr[i]);
    int row_bits = lane_mask(d0 < rt) | (lane_mask(d1 < rt) << W);
    int col_bits = 0;
    if constexpr (mode == Mode::Symmetric) {
      const float* ct = cl->thr.data() + j0;
      col_bits = lane_mask(d0 < Vec::loadu(ct)) | (lane_mask(d1 < Vec::loadu(ct + W)) << W);
    }
    if ((row_bits | col_bits) == 0) {
      continue;
    }
    float dist[NR];
    d0.store(dist);
    d1.store(dist + W);
    for (int bits = row_bits; bits; bits &= bits - 1) {
      const int l = __builtin_ctz(bits);
      const int64_t j = j0 + l;
      if constexpr (mode == Mode::SelfExclude) {
        if (j == i) {
          continue;
        }
      } else if constexpr (mode == Mode::Symmetric) {
        if (j <= i) {
          continue;
        }
      }
      if (dist[l] < rl.thr[i]) {
        rl.offer(i, dist[l], static_cast<int32_t>(j));
      }
    }
    if constexpr (mode == Mode::Symmetric) {
      for (int bits = col_bits; bits; bits &= bits - 1) {
        const int l = __builtin_ctz(bits);
        const int64_t j = j0 + l;
        if (j > i && dist[l] < cl->thr[j]) {
          cl->offer(j, dist[l], static_cast<int32_t>(i));
        }
      }
    }
  }
}

template <Mode mode>
void run(const float* q, const float* qn, int64_t N, const float* r, const float* rn, int64_t M, int64_t D, Lists& rows, std::vector<Lists>& cols) {
  // a reference super-block (packed panels) sized for the L2 cache
  const int64_t nc = std::max<int64_t>(NR, ((256 * 1024) / (D * 4)) / NR * NR);
  std::vector<float> panels(((nc + NR - 1) / NR) * NR * D);
  std::vector<float> pnorm(((nc + NR - 1) / NR) * NR);
  for (int64_t c0 = 0; c0 < M; c0 += nc) {
    const int64_t c1 = std::min(M, c0 + nc);
    pack_panels(r, rn, c0, c1, D, panels.data(), pnorm.data());
    const int64_t np = (c1 - c0 + NR - 1) / NR;
    // symmetric: only rows below the block's end have pairs with j > i in it
    const int64_t row_end = mode == Mode::Symmetric ? std::min(N, c1) : N;
    const int64_t nblocks = (row_end + MR - 1) / MR;
    at::parallel_for(0, nblocks, 4, [&](int64_t b0, int64_t b1) {
      Lists* cl = mode == Mode::Symmetric ? &cols[at::get_thread_num()] : nullptr;
      std::vector<float> pad(MR * D, 0.f);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t i0 = b * MR;
        const int64_t real = std::min<int64_t>(MR, row_end - i0);
        const float* rowp[MR];
        float norms[MR];
        for (int64_t t = 0; t < MR; ++t) {
          rowp[t] = t < real ? q + (i0 + t) * D : pad.data();
          norms[t] = t < real ? qn[i0 + t] : kInf;
        }
        for (int64_t p = 0; p < np; ++p) {
          const int64_t j0 = c0 + p * NR;
          if constexpr (mode == Mode::Symmetric) {
            if (j0 + NR - 1 <= i0) {
              continue;  // every pair has j <= i: computed from the other side
            }
          }
          micro_tile<mode>(rowp, norms, i0, real, panels.data() + p * D * NR, pnorm.data() + p * NR, j0, D, rows, cl);
        }
      }
    });
  }
}

}  // namespace

at::Tensor candidates_cpu_f32(const at::Tensor& xq, const at::Tensor& xr, int64_t cand, bool self, int64_t max_bytes) {
  const at::Tensor q = xq.contiguous(), r = self ? q : xr.contiguous();
  const int64_t N = q.size(0), M = r.size(0), D = q.size(1);
  const at::Tensor qn_t = q.pow(2).sum(1), rn_t = self ? qn_t : r.pow(2).sum(1);
  const float* qp = q.const_data_ptr<float>();
  const float* rp = r.const_data_ptr<float>();
  const float* qn = qn_t.const_data_ptr<float>();
  const float* rn = rn_t.const_data_ptr<float>();
  const int64_t padded = ((M + NR - 1) / NR) * NR + NR;
  Lists rows(N, std::max(padded, N + NR), cand);
  std::vector<Lists> cols;
  const int64_t threads = at::get_num_threads();
  const bool symmetric = self && threads * N * cand * 8 <= max_bytes;
  if (symmetric) {
    cols.reserve(threads);
    for (int64_t t = 0; t < threads; ++t) {
      cols.emplace_back(N, padded, cand);
    }
    run<Mode::Symmetric>(qp, qn, N, rp, rn, M, D, rows, cols);
  } else if (self) {
    run<Mode::SelfExclude>(qp, qn, N, rp, rn, M, D, rows, cols);
  } else {
    run<Mode::Ref>(qp, qn, N, rp, rn, M, D, rows, cols);
  }
  at::Tensor out = at::empty({N, cand}, q.options().dtype(at::kLong));
  int64_t* o = out.mutable_data_ptr<int64_t>();
  at::parallel_for(0, N, 256, [&](int64_t a, int64_t b) {
    std::vector<std::pair<float, int32_t>> merged;
    for (int64_t i = a; i < b; ++i) {
      merged.clear();
      for (int64_t c = 0; c < rows.n[i]; ++c) {
        merged.emplace_back(rows.d[i * cand + c], rows.idx[i * cand + c]);
      }
      for (const Lists& l : cols) {
        for (int64_t c = 0; c < l.n[i]; ++c) {
          merged.emplace_back(l.d[i * cand + c], l.idx[i * cand + c]);
        }
      }
      const int64_t take = std::min<int64_t>(cand, merged.size());
      std::partial_sort(merged.begin(), merged.begin() + take, merged.end());
      for (int64_t c = 0; c < cand; ++c) {
        o[i * cand + c] = c < take ? merged[c].second : -1;
      }
    }
  });
  return out;
}

}  // namespace knn
}  // namespace balancedtorch
