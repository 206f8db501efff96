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
//
// On CPUs with AVX512-BF16 (AMD Zen 4, Intel Cooper Lake / Sapphire Rapids)
// the products run as bfloat16 pairs (vdpbf16ps: two multiply-adds per lane
// and instruction, twice the float32 FMA rate) on data centred on the
// references' mean. Each query's approximate distances are within a proven
// bound E of the true ones (bfloat16 rounding, float32 accumulation), so its
// list keeps every point within 2E of its k-th approximate distance: a
// superset of the exact k nearest, and the float64 re-rank makes the answer
// exact. A row whose window holds more points than its list (near-ties en
// masse) is searched again in float32. BALANCEDTORCH_KNN_BF16=0 turns the
// bfloat16 path off. The float32 search keeps windows too (its bound is
// 2^16 times narrower); rows that overflow even those are returned to the
// caller, which searches them with exact_rows_cpu (float64 differences, end
// of this file).
#include "../distance_topk.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#if defined(CPU_CAPABILITY_AVX2)
#include <immintrin.h>
#endif

#if defined(CPU_CAPABILITY_AVX2) && defined(__GNUC__) && !defined(__clang__) && \
    __GNUC__ >= 12  // avx512bf16 in cpu_supports, __m256bh casts
#define BT_KNN_BF16 1
#else
#define BT_KNN_BF16 0
#endif

namespace balancedtorch {
namespace knn {
namespace {

using Vec = at::vec::Vectorized<float>;
constexpr int64_t W = Vec::size();
constexpr int64_t MR = 6;
constexpr int64_t NR = 2 * W;
constexpr float kInf = std::numeric_limits<float>::infinity();

// One bit per lane of a vector comparison's result (lanes all ones or zeros).
template <typename T>
inline int lane_mask(const at::vec::Vectorized<T>& v) {
#if defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<T, float>) {
    return _mm256_movemask_ps(static_cast<__m256>(v));
  } else {
    return _mm256_movemask_pd(static_cast<__m256d>(v));
  }
#else
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr int64_t lanes = at::vec::Vectorized<T>::size();
  T buf[lanes];
  v.store(buf);
  int m = 0;
  for (int64_t l = 0; l < lanes; ++l) {
    Bits bits;
    std::memcpy(&bits, buf + l, sizeof(bits));
    m |= (bits != 0) << l;
  }
  return m;
#endif
}

// Candidate lists of `rows` points, `cand` slots each: the k best so far,
// sorted (ties in arrival order = lower index first), then, unsorted, the
// others within window[r] of the row's k-th distance. thr[r] = the distance
// a newcomer must beat: inf until k are held, then the k-th plus the window.
// Only the k best are kept in order, so an offer costs a shift within k
// slots, not within the whole list (at k = 50 the window holds ~2k points of
// a 10^6 bank). A full list drops its entries that fell out of the window
// (the k-th only decreases), but no more often than the k-th changes; a
// point it still cannot hold is counted in lost[r] (the smallest such
// distance), and the caller treats the row as unproven if that point is
// inside the row's final window.
struct Lists {
  int64_t cand;
  int64_t k;
  const float* window;
  std::vector<float> d;
  std::vector<int32_t> idx;
  std::vector<int32_t> n;
  std::vector<float> thr;
  std::vector<float> lost;
  std::vector<float> pruned_at;  // the k-th distance at the row's last pruning

  Lists(int64_t rows, int64_t rows_padded, int64_t cand_, int64_t k_, const float* window_)
      : cand(cand_),
        k(k_),
        window(window_),
        d(rows * cand_, kInf),
        idx(rows * cand_, -1),
        n(rows, 0),
        thr(rows_padded, -kInf),
        lost(rows, kInf),
        pruned_at(rows, kInf) {
    std::fill(thr.begin(), thr.begin() + rows, kInf);
  }

  inline void offer(int64_t r, float v, int32_t j) {
    float* dr = d.data() + r * cand;
    int32_t* ir = idx.data() + r * cand;
    int32_t& cnt = n[r];
    if (cnt >= k && !(v < dr[k - 1])) {
      keep_in_window(r, v, j);
      return;
    }
    const bool full = cnt >= k;
    const float out_v = full ? dr[k - 1] : kInf;
    const int32_t out_j = full ? ir[k - 1] : -1;
    int64_t p = full ? k - 1 : cnt++;
    while (p > 0 && dr[p - 1] > v) {
      dr[p] = dr[p - 1];
      ir[p] = ir[p - 1];
      --p;
    }
    dr[p] = v;
    ir[p] = j;
    if (cnt >= k) {
      // rounded up: the float32 sum must not lose the window's reach
      thr[r] = std::nextafter(dr[k - 1] + window[r], kInf);
    }
    if (full) {
      keep_in_window(r, out_v, out_j);  // the former k-th, if still inside the window
    }
  }

 private:
  inline void keep_in_window(int64_t r, float v, int32_t j) {
    if (!(v < thr[r])) {
      return;
    }
    float* dr = d.data() + r * cand;
    int32_t* ir = idx.data() + r * cand;
    int32_t& cnt = n[r];
    if (cnt == cand && dr[k - 1] < pruned_at[r]) {
      int64_t w = k;
      for (int64_t c = k; c < cand; ++c) {
        if (dr[c] < thr[r]) {
          dr[w] = dr[c];
          ir[w] = ir[c];
          ++w;
        }
      }
      cnt = static_cast<int32_t>(w);
      pruned_at[r] = dr[k - 1];
    }
    if (cnt == cand) {
      lost[r] = std::min(lost[r], v);
      return;
    }
    dr[cnt] = v;
    ir[cnt] = j;
    ++cnt;
  }
};

enum class Mode { Ref, SelfExclude, Symmetric };

// Pack references [c0, c1) into panels of NR columns, [dims][NR] each; padded
// columns get norm +inf so their distances never qualify.
template <typename T>
void pack_panels(const T* r, const float* rn, int64_t c0, int64_t c1, int64_t dims, T* panels, float* pnorm) {
  const int64_t np = (c1 - c0 + NR - 1) / NR;
  at::parallel_for(0, np, 16, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* dst = panels + p * dims * NR;
      for (int64_t c = 0; c < NR; ++c) {
        const int64_t j = c0 + p * NR + c;
        const bool real = j < c1;
        for (int64_t d = 0; d < dims; ++d) {
          dst[d * NR + c] = real ? r[j * dims + d] : T(0);
        }
        pnorm[p * NR + c] = real ? rn[j] : kInf;
      }
    }
  });
}

// Distances of a 6 x NR block from its dot products, and the offers of those
// below a row's (or, symmetric, a column's) threshold.
template <Mode mode>
inline void tile_epilogue(
    const Vec (&acc)[MR][2],
    const float* qn,  // MR norms (+inf for padded rows)
    int64_t i0,
    int64_t rows_real,
    const float* pn,
    int64_t j0,
    Lists& rl,
    Lists* cl) {
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
inline void micro_tile_f32(
    const float* const* qrow,
    const float* qn,
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
  tile_epilogue<mode>(acc, qn, i0, rows_real, pn, j0, rl, cl);
}

#if BT_KNN_BF16
// The same block with bfloat16 pairs: each 32-bit element holds dimensions
// (2t, 2t + 1) of a point, and vdpbf16ps adds both products to a float32 lane.
template <Mode mode>
__attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512bf16"))) void micro_tile_bf16(
    const uint32_t* const* qrow,
    const float* qn,
    int64_t i0,
    int64_t rows_real,
    const uint32_t* panel,
    const float* pn,
    int64_t j0,
    int64_t D2,
    Lists& rl,
    Lists* cl) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const uint32_t *a0 = qrow[0], *a1 = qrow[1], *a2 = qrow[2], *a3 = qrow[3], *a4 = qrow[4], *a5 = qrow[5];
#pragma GCC unroll 4
  for (int64_t t = 0; t < D2; ++t) {
    const __m256bh b0 = (__m256bh)_mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + t * NR));
    const __m256bh b1 = (__m256bh)_mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + t * NR + W));
    __m256bh a = (__m256bh)_mm256_set1_epi32(static_cast<int>(a0[t]));
    c00 = _mm256_dpbf16_ps(c00, a, b0);
    c01 = _mm256_dpbf16_ps(c01, a, b1);
    a = (__m256bh)_mm256_set1_epi32(static_cast<int>(a1[t]));
    c10 = _mm256_dpbf16_ps(c10, a, b0);
    c11 = _mm256_dpbf16_ps(c11, a, b1);
    a = (__m256bh)_mm256_set1_epi32(static_cast<int>(a2[t]));
    c20 = _mm256_dpbf16_ps(c20, a, b0);
    c21 = _mm256_dpbf16_ps(c21, a, b1);
    a = (__m256bh)_mm256_set1_epi32(static_cast<int>(a3[t]));
    c30 = _mm256_dpbf16_ps(c30, a, b0);
    c31 = _mm256_dpbf16_ps(c31, a, b1);
    a = (__m256bh)_mm256_set1_epi32(static_cast<int>(a4[t]));
    c40 = _mm256_dpbf16_ps(c40, a, b0);
    c41 = _mm256_dpbf16_ps(c41, a, b1);
    a = (__m256bh)_mm256_set1_epi32(static_cast<int>(a5[t]));
    c50 = _mm256_dpbf16_ps(c50, a, b0);
    c51 = _mm256_dpbf16_ps(c51, a, b1);
  }
  const Vec acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  tile_epilogue<mode>(acc, qn, i0, rows_real, pn, j0, rl, cl);
}

bool cpu_has_bf16() {
  static const bool has = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vl");
  return has;
}
#endif

template <typename T, Mode mode>
using TileFn =
    void (*)(const T* const*, const float*, int64_t, int64_t, const T*, const float*, int64_t, int64_t, Lists&, Lists*);

// The MR query rows of a register block starting at row i0 (`real` of them
// exist): row pointers and norms, the missing rows pointing at zero padding
// with an infinite norm so that they never become candidates.
template <typename T>
inline void block_rows(
    const T* q, const float* qn, int64_t i0, int64_t real, int64_t dims, const T* pad, const T** rowp, float* norms) {
  for (int64_t t = 0; t < MR; ++t) {
    rowp[t] = t < real ? q + (i0 + t) * dims : pad;
    norms[t] = t < real ? qn[i0 + t] : kInf;
  }
}

// All query rows against all references, reference super-block by super-block.
// `dims`: elements of T per point (D floats, or D / 2 rounded up bfloat16 pairs).
template <typename T, Mode mode, TileFn<T, mode> tile>
void run(
    const T* q,
    const float* qn,
    int64_t N,
    const T* r,
    const float* rn,
    int64_t M,
    int64_t dims,
    Lists& rows,
    std::vector<Lists>& cols) {
  // a reference super-block (packed panels) sized for the L2 cache
  const int64_t nc = std::max<int64_t>(NR, ((256 * 1024) / (dims * 4)) / NR * NR);
  std::vector<T> panels(((nc + NR - 1) / NR) * NR * dims);
  std::vector<float> pnorm(((nc + NR - 1) / NR) * NR);
  for (int64_t c0 = 0; c0 < M; c0 += nc) {
    const int64_t c1 = std::min(M, c0 + nc);
    pack_panels(r, rn, c0, c1, dims, panels.data(), pnorm.data());
    const int64_t np = (c1 - c0 + NR - 1) / NR;
    // symmetric: only rows below the block's end have pairs with j > i in it
    const int64_t row_end = mode == Mode::Symmetric ? std::min(N, c1) : N;
    const int64_t nblocks = (row_end + MR - 1) / MR;
    at::parallel_for(0, nblocks, 4, [&](int64_t b0, int64_t b1) {
      Lists* cl = mode == Mode::Symmetric ? &cols[at::get_thread_num()] : nullptr;
      std::vector<T> pad(MR * dims, T(0));
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t i0 = b * MR;
        const int64_t real = std::min<int64_t>(MR, row_end - i0);
        const T* rowp[MR];
        float norms[MR];
        block_rows(q, qn, i0, real, dims, pad.data(), rowp, norms);
        for (int64_t p = 0; p < np; ++p) {
          const int64_t j0 = c0 + p * NR;
          if constexpr (mode == Mode::Symmetric) {
            if (j0 + NR - 1 <= i0) {
              continue;  // every pair has j <= i: computed from the other side
            }
          }
          tile(rowp, norms, i0, real, panels.data() + p * dims * NR, pnorm.data() + p * NR, j0, dims, rows, cl);
        }
      }
    });
  }
}

// Rows of q against all references without the symmetric halving (Mode::Ref,
// Mode::SelfExclude). The references are packed once per macro-block (as
// many L2-sized super-blocks as max_bytes holds: all of them for most banks),
// and the query rows are handed out in chunks that each thread takes from a
// shared counter and runs through every super-block on its own. No thread
// waits for another until the macro-block ends: a barrier per super-block
// (one every ~1,000 references) cost most of the time when the queries are
// few against a large bank, or when another process took a core.
template <typename T, Mode mode, TileFn<T, mode> tile>
void run_rows(
    const T* q,
    const float* qn,
    int64_t N,
    const T* r,
    const float* rn,
    int64_t M,
    int64_t dims,
    int64_t max_bytes,
    Lists& rows) {
  const int64_t nc = std::max<int64_t>(NR, ((256 * 1024) / (dims * 4)) / NR * NR);
  const int64_t macro = nc * std::max<int64_t>(1, max_bytes / (nc * dims * static_cast<int64_t>(sizeof(T))));
  const int64_t mcols = ((std::min(M, macro) + NR - 1) / NR) * NR;
  std::vector<T> panels(mcols * dims);
  std::vector<float> pnorm(mcols);
  const int64_t threads = at::get_num_threads();
  const int64_t nblocks = (N + MR - 1) / MR;
  // ~8 chunks per thread balance the load; 16 blocks (96 rows) or more keep
  // each pass over the packed references worth its memory traffic
  const int64_t chunk = std::max<int64_t>(16, nblocks / (8 * threads));
  const int64_t nchunks = (nblocks + chunk - 1) / chunk;
  for (int64_t m0 = 0; m0 < M; m0 += macro) {
    const int64_t m1 = std::min(M, m0 + macro);
    pack_panels(r, rn, m0, m1, dims, panels.data(), pnorm.data());
    std::atomic<int64_t> next{0};
    at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
      std::vector<T> pad(MR * dims, T(0));
      for (int64_t c = next++; c < nchunks; c = next++) {
        const int64_t b1 = std::min(nblocks, (c + 1) * chunk);
        for (int64_t c0 = m0; c0 < m1; c0 += nc) {
          const int64_t np = (std::min(m1, c0 + nc) - c0 + NR - 1) / NR;
          const T* panel0 = panels.data() + (c0 - m0) * dims;
          const float* pn0 = pnorm.data() + (c0 - m0);
          for (int64_t b = c * chunk; b < b1; ++b) {
            const int64_t i0 = b * MR;
            const int64_t real = std::min<int64_t>(MR, N - i0);
            const T* rowp[MR];
            float norms[MR];
            block_rows(q, qn, i0, real, dims, pad.data(), rowp, norms);
            for (int64_t p = 0; p < np; ++p) {
              tile(rowp, norms, i0, real, panel0 + p * dims * NR, pn0 + p * NR, c0 + p * NR, dims, rows, nullptr);
            }
          }
        }
      }
    });
  }
}

// One search in the given element type: the row lists and (symmetric) the
// per-thread column lists, to be merged.
template <typename T, template <Mode> class Tile>
void search(
    const T* q,
    const float* qn,
    int64_t N,
    const T* r,
    const float* rn,
    int64_t M,
    int64_t dims,
    bool self,
    int64_t max_bytes,
    Lists& rows,
    std::vector<Lists>& cols) {
  const int64_t threads = at::get_num_threads();
  if (self && threads * N * rows.cand * 8 <= max_bytes) {
    const int64_t padded = ((M + NR - 1) / NR) * NR + NR;
    cols.reserve(threads);
    for (int64_t t = 0; t < threads; ++t) {
      cols.emplace_back(N, padded, rows.cand, rows.k, rows.window);
    }
    run<T, Mode::Symmetric, Tile<Mode::Symmetric>::fn>(q, qn, N, r, rn, M, dims, rows, cols);
  } else if (self) {
    run_rows<T, Mode::SelfExclude, Tile<Mode::SelfExclude>::fn>(q, qn, N, r, rn, M, dims, max_bytes, rows);
  } else {
    run_rows<T, Mode::Ref, Tile<Mode::Ref>::fn>(q, qn, N, r, rn, M, dims, max_bytes, rows);
  }
}

template <Mode mode>
struct F32Tile {
  static constexpr TileFn<float, mode> fn = &micro_tile_f32<mode>;
};

// Row i's entries of the row lists and of every column list.
void gather(
    const Lists& rows, const std::vector<Lists>& cols, int64_t i, std::vector<std::pair<float, int32_t>>& merged) {
  merged.clear();
  const int64_t cand = rows.cand;
  for (int64_t c = 0; c < rows.n[i]; ++c) {
    merged.emplace_back(rows.d[i * cand + c], rows.idx[i * cand + c]);
  }
  for (const Lists& l : cols) {
    for (int64_t c = 0; c < l.n[i]; ++c) {
      merged.emplace_back(l.d[i * cand + c], l.idx[i * cand + c]);
    }
  }
}

// A search whose approximate distances are within window[i] / 2 of the true
// ones for every pair of row i: each row keeps every point within window[i]
// of its k-th approximate distance, which holds every point of its exact k
// nearest (ties at the k-th distance included). Writes those indices into
// out [N][C] (-1 padded) and flags the rows whose window held more points
// than a list of C could keep (overflow[i] = 1): their lists are not proven.
template <typename T, template <Mode> class Tile>
void windowed_search(
    const T* q,
    const float* qn,
    int64_t N,
    const T* r,
    const float* rn,
    int64_t M,
    int64_t dims,
    bool self,
    int64_t k,
    int64_t C,
    const float* window,
    int64_t max_bytes,
    int64_t* out,
    uint8_t* overflow) {
  const int64_t padded = ((M + NR - 1) / NR) * NR + NR;
  Lists rows(N, std::max(padded, N + NR), C, k, window);
  std::vector<Lists> cols;
  search<T, Tile>(q, qn, N, r, rn, M, dims, self, max_bytes, rows, cols);
  at::parallel_for(0, N, 256, [&](int64_t a, int64_t b) {
    std::vector<std::pair<float, int32_t>> merged;
    for (int64_t i = a; i < b; ++i) {
      gather(rows, cols, i, merged);
      std::sort(merged.begin(), merged.end());
      const int64_t n = merged.size();
      const float T_i = n >= k ? std::nextafter(merged[k - 1].first + window[i], kInf) : kInf;
      int64_t within = 0;
      while (within < n && merged[within].first <= T_i) {
        ++within;
      }
      // a list that had to turn away a point inside the final window
      bool full = rows.lost[i] <= T_i;
      for (const Lists& l : cols) {
        full = full || l.lost[i] <= T_i;
      }
      overflow[i] = full || within > C || within < k;
      for (int64_t c = 0; c < C; ++c) {
        out[i * C + c] = c < within && !overflow[i] ? merged[c].second : -1;
      }
    }
  });
}

// The windows of rows [0, N) from their centred squared norms (see
// WindowBound in the header).
std::vector<float> windows_f32(const float* qn, int64_t N, double bmax2, int64_t D, double u_in) {
  const WindowBound bound = window_bound(D, u_in);
  std::vector<float> window(N);
  for (int64_t i = 0; i < N; ++i) {
    window[i] = static_cast<float>(bound.window(qn[i], bmax2));
  }
  return window;
}

// Largest squared norm of the references, or -1 when the float32 bound does
// not apply (norms so large that float32 squares or sums could overflow).
double max_norm2(const float* rn, int64_t M) {
  const float m = *std::max_element(rn, rn + M);
  return m < 0x1p100f ? static_cast<double>(m) : -1.0;
}

// float32 windowed candidates of rows [0, N) of q (searched against r; self:
// r is q) into out [N][C] with C = f32_list_size; overflowing rows flagged.
void f32_candidates(
    const at::Tensor& q,
    const at::Tensor& r,
    int64_t k,
    bool self,
    int64_t max_bytes,
    int64_t* out,
    uint8_t* overflow) {
  const int64_t N = q.size(0), M = r.size(0), D = q.size(1);
  const int64_t C = f32_list_size(k, M, self);
  const at::Tensor qn_t = q.pow(2).sum(1), rn_t = self ? qn_t : r.pow(2).sum(1);
  const double bmax2 = max_norm2(rn_t.const_data_ptr<float>(), M);
  if (bmax2 < 0.0) {
    std::fill(overflow, overflow + N, uint8_t{1});
    std::fill(out, out + N * C, int64_t{-1});
    return;
  }
  const std::vector<float> window = windows_f32(qn_t.const_data_ptr<float>(), N, bmax2, D, /*u_in=*/0.0);
  windowed_search<float, F32Tile>(
      q.const_data_ptr<float>(),
      qn_t.const_data_ptr<float>(),
      N,
      r.const_data_ptr<float>(),
      rn_t.const_data_ptr<float>(),
      M,
      D,
      self,
      k,
      C,
      window.data(),
      max_bytes,
      out,
      overflow);
}

// The float32 search of some rows of q (their indices: rows) against all of
// r, written into those rows of out [N][C]: a self search asks for one more
// neighbour (the row itself, at distance ~0, whose window then covers the k
// nearest other points too) and drops the row from its list. Rows whose
// window still overflows stay flagged.
void f32_candidates_of_rows(
    const at::Tensor& q,
    const at::Tensor& r,
    const std::vector<int64_t>& rows,
    int64_t k,
    bool self,
    int64_t max_bytes,
    int64_t* out,
    int64_t C,
    uint8_t* overflow) {
  const int64_t nr = rows.size(), M = r.size(0);
  const at::Tensor idx = at::from_blob(const_cast<int64_t*>(rows.data()), {nr}, at::kLong).clone();
  const int64_t k1 = k + (self ? 1 : 0), C1 = f32_list_size(k1, M, /*self=*/false);
  std::vector<int64_t> tmp(nr * C1);
  std::vector<uint8_t> of(nr);
  f32_candidates(q.index_select(0, idx).contiguous(), r, k1, /*self=*/false, max_bytes, tmp.data(), of.data());
  for (int64_t t = 0; t < nr; ++t) {
    int64_t* row = out + rows[t] * C;
    std::fill(row, row + C, int64_t{-1});
    int64_t c = 0;
    for (int64_t w = 0; w < C1; ++w) {
      const int64_t j = tmp[t * C1 + w];
      if (j >= 0 && !(self && j == rows[t]) && c < C + 1) {
        if (c < C) {
          row[c] = j;
        }
        ++c;
      }
    }
    overflow[rows[t]] = of[t] || c > C;
  }
}
#if BT_KNN_BF16
template <Mode mode>
struct Bf16Tile {
  static constexpr TileFn<uint32_t, mode> fn = &micro_tile_bf16<mode>;
};

bool bf16_enabled() {
  const char* env = std::getenv("BALANCEDTORCH_KNN_BF16");
  return cpu_has_bf16() && !(env != nullptr && std::strcmp(env, "0") == 0);
}

// Candidates kept per row on the bfloat16 path: the points inside the window
// grow with k and with the bank (~2k on the long-tail benchmark sets; on
// 10^6 normalised Gaussian points in 128-D at k = 50, 2.2k on average and
// over k + 64 for 30% of the queries, which then had to be searched again in
// float32). A bank search keeps up to 5k; a self search at most k + 64, as
// its symmetric halving holds a copy of the lists per thread.
int64_t bf16_list_size(int64_t k, int64_t M, bool self) {
  const int64_t extra = self ? std::clamp<int64_t>(4 * k, 12, 64) : std::max<int64_t>(4 * k, 12);
  return std::min<int64_t>(k + extra, M - (self ? 1 : 0));
}

// Rows [0, n) of x centred on c: bfloat16 pairs (round to nearest even) into
// out [n][D2], and the float32 centred values' squared norms (float32 sums,
// within the bound's (D + 16) 2^-23 term) and norms.
void to_bf16_pairs(const float* x, int64_t n, int64_t D, const float* c, uint32_t* out, float* norm2, float* norm) {
  const int64_t D2 = (D + 1) / 2;
  at::parallel_for(0, n, 512, [&](int64_t a, int64_t b) {
    std::vector<float> v(2 * D2, 0.f);  // the centred row, even length
    std::vector<uint16_t> h(2 * D2, 0);
    for (int64_t i = a; i < b; ++i) {
      const float* xi = x + i * D;
      Vec acc(0.f);
      int64_t d = 0;
      for (; d + W <= D; d += W) {
        const Vec t = Vec::loadu(xi + d) - Vec::loadu(c + d);
        t.store(v.data() + d);
        acc = at::vec::fmadd(t, t, acc);
      }
      float lanes[W];
      acc.store(lanes);
      float s = 0.f;
      for (int64_t l = 0; l < W; ++l) {
        s += lanes[l];
      }
      for (; d < D; ++d) {
        v[d] = xi[d] - c[d];
        s += v[d] * v[d];
      }
      // round to nearest even, as c10::BFloat16 (the values are finite)
      for (int64_t e = 0; e < 2 * D2; ++e) {
        uint32_t bits;
        std::memcpy(&bits, &v[e], sizeof(bits));
        h[e] = static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
      }
      std::memcpy(out + i * D2, h.data(), D2 * sizeof(uint32_t));  // little endian: dimension 2t low, 2t + 1 high
      norm2[i] = s;
      norm[i] = std::sqrt(s);
    }
  });
}

// bfloat16 candidates (see the top of the file), or an undefined tensor when
// the data's scale is outside the range the error bound is written for.
// bfloat16 candidates (see the top of the file) into out [N][C] with
// C = bf16_list_size; rows whose window overflows are searched again in
// float32 and stay flagged when that overflows too. False when the data's
// scale is outside the range the error bound is written for (nothing done).
bool bf16_candidates(
    const at::Tensor& q,
    const at::Tensor& r,
    const at::Tensor& centre,
    int64_t k,
    bool self,
    int64_t max_bytes,
    int64_t* out,
    uint8_t* overflow) {
  const int64_t N = q.size(0), M = r.size(0), D = q.size(1), D2 = (D + 1) / 2;
  const at::Tensor centre_t = centre.to(at::kFloat).contiguous();
  std::vector<uint32_t> qb(N * D2), rb(self ? 0 : M * D2);
  std::vector<float> qn(N), ql(N), rn(self ? 0 : M), rl(self ? 0 : M);
  to_bf16_pairs(q.const_data_ptr<float>(), N, D, centre_t.const_data_ptr<float>(), qb.data(), qn.data(), ql.data());
  if (!self) {
    to_bf16_pairs(r.const_data_ptr<float>(), M, D, centre_t.const_data_ptr<float>(), rb.data(), rn.data(), rl.data());
  }
  const std::vector<float>& ref_len = self ? ql : rl;
  const float bmax = *std::max_element(ref_len.begin(), ref_len.end());
  const float amax = *std::max_element(ql.begin(), ql.end());
  if (!(bmax > 0x1p-30f && bmax < 0x1p30f && amax < 0x1p30f)) {
    return false;
  }
  const std::vector<float> window = windows_f32(qn.data(), N, static_cast<double>(bmax) * bmax, D, /*u_in=*/0x1p-8);
  const int64_t C = bf16_list_size(k, M, self);
  windowed_search<uint32_t, Bf16Tile>(
      qb.data(),
      qn.data(),
      N,
      self ? qb.data() : rb.data(),
      self ? qn.data() : rn.data(),
      M,
      D2,
      self,
      k,
      C,
      window.data(),
      max_bytes,
      out,
      overflow);
  std::vector<int64_t> redo;
  for (int64_t i = 0; i < N; ++i) {
    if (overflow[i]) {
      redo.push_back(i);
    }
  }
  if (!redo.empty()) {
    f32_candidates_of_rows(q, r, redo, k, self, max_bytes, out, C, overflow);
  }
  return true;
}
#endif
// -- exact search of single rows: float64 differences -------------------------

using VecD = at::vec::Vectorized<double>;
constexpr int64_t WD = VecD::size();
constexpr int64_t RBD = 2 * WD;  // references per float64 panel

// k nearest of the query rows `rows` of q among all of r by float64
// differences (sum of (q_d - r_d)^2), ties to the lower index, into od/oi
// [R][k]. Four rows x RBD references per register block, references packed
// [D][RBD] in float64 per L2-sized super-block.
template <typename scalar_t>
void exact_rows_impl(
    const scalar_t* q,
    const scalar_t* r,
    int64_t M,
    int64_t D,
    const int64_t* rows,
    int64_t R,
    int64_t k,
    bool self,
    double* od,
    int64_t* oi) {
  constexpr int64_t QB = 4;
  const double inf = std::numeric_limits<double>::infinity();
  std::fill(od, od + R * k, inf);
  std::fill(oi, oi + R * k, int64_t{-1});
  std::vector<double> qd((R + QB) * D, 0.0);
  at::parallel_for(0, R, 64, [&](int64_t a, int64_t b) {
    for (int64_t t = a; t < b; ++t) {
      for (int64_t d = 0; d < D; ++d) {
        qd[t * D + d] = static_cast<double>(q[rows[t] * D + d]);
      }
    }
  });
  const int64_t nc = std::max<int64_t>(RBD, ((256 * 1024) / (D * 8)) / RBD * RBD);
  std::vector<double> panels(((nc + RBD - 1) / RBD) * RBD * D);
  const int64_t nblocks = (R + QB - 1) / QB;
  for (int64_t c0 = 0; c0 < M; c0 += nc) {
    const int64_t c1 = std::min(M, c0 + nc), np = (c1 - c0 + RBD - 1) / RBD;
    at::parallel_for(0, np, 16, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        double* dst = panels.data() + p * D * RBD;
        for (int64_t l = 0; l < RBD; ++l) {
          const int64_t j = c0 + p * RBD + l;
          for (int64_t d = 0; d < D; ++d) {
            dst[d * RBD + l] = j < c1 ? static_cast<double>(r[j * D + d]) : 0.0;
          }
        }
      }
    });
    at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t t0 = b * QB, real = std::min<int64_t>(QB, R - t0);
        const double *x0 = qd.data() + t0 * D, *x1 = x0 + D, *x2 = x1 + D, *x3 = x2 + D;
        for (int64_t p = 0; p < np; ++p) {
          const double* panel = panels.data() + p * D * RBD;
          VecD s00(0.0), s01(0.0), s10(0.0), s11(0.0), s20(0.0), s21(0.0), s30(0.0), s31(0.0);
          for (int64_t d = 0; d < D; ++d) {
            const VecD b0v = VecD::loadu(panel + d * RBD), b1v = VecD::loadu(panel + d * RBD + WD);
            VecD a(x0[d]), e0 = b0v - a, e1 = b1v - a;
            s00 = at::vec::fmadd(e0, e0, s00);
            s01 = at::vec::fmadd(e1, e1, s01);
            a = VecD(x1[d]), e0 = b0v - a, e1 = b1v - a;
            s10 = at::vec::fmadd(e0, e0, s10);
            s11 = at::vec::fmadd(e1, e1, s11);
            a = VecD(x2[d]), e0 = b0v - a, e1 = b1v - a;
            s20 = at::vec::fmadd(e0, e0, s20);
            s21 = at::vec::fmadd(e1, e1, s21);
            a = VecD(x3[d]), e0 = b0v - a, e1 = b1v - a;
            s30 = at::vec::fmadd(e0, e0, s30);
            s31 = at::vec::fmadd(e1, e1, s31);
          }
          const VecD acc[QB][2] = {{s00, s01}, {s10, s11}, {s20, s21}, {s30, s31}};
          for (int64_t t = 0; t < real; ++t) {
            double* bd = od + (t0 + t) * k;
            int64_t* bi = oi + (t0 + t) * k;
            // until the list holds k points every reference enters (an inf distance too: float64
            // overflow of huge inputs), in index order
            const bool filling = bi[k - 1] < 0;
            const VecD thr(bd[k - 1]);
            int bits = filling ? (1 << RBD) - 1 : lane_mask(acc[t][0] < thr) | (lane_mask(acc[t][1] < thr) << WD);
            if (bits == 0) {
              continue;
            }
            double dist[RBD];
            acc[t][0].store(dist);
            acc[t][1].store(dist + WD);
            const int64_t own = self ? rows[t0 + t] : -1;
            for (; bits; bits &= bits - 1) {
              const int l = __builtin_ctz(bits);
              const int64_t j = c0 + p * RBD + l;
              const double v = dist[l];
              if (j >= c1 || j == own || !(bi[k - 1] < 0 || v < bd[k - 1])) {
                continue;  // padding, the row itself, or a tie (the earlier, lower index stays)
              }
              int64_t pos = k - 1;
              while (pos > 0 && bd[pos - 1] > v) {
                bd[pos] = bd[pos - 1];
                bi[pos] = bi[pos - 1];
                --pos;
              }
              bd[pos] = v;
              bi[pos] = j;
            }
          }
        }
      }
    });
  }
}

}  // namespace

bool bf16_search_enabled() {
#if BT_KNN_BF16
  return bf16_enabled();
#else
  return false;
#endif
}

std::tuple<at::Tensor, at::Tensor> candidates_cpu_f32(
    const at::Tensor& xq, const at::Tensor& xr, const at::Tensor& centre, int64_t k, bool self, int64_t max_bytes) {
  const at::Tensor q = xq.contiguous(), r = self ? q : xr.contiguous();
  const int64_t N = q.size(0), M = r.size(0);
  at::Tensor overflow = at::zeros({N}, q.options().dtype(at::kByte));
  uint8_t* of = overflow.mutable_data_ptr<uint8_t>();
  auto flagged = [&] { return overflow.nonzero().squeeze(1); };
#if BT_KNN_BF16
  // self search: not when the longer lists would cost the symmetric halving
  const int64_t lists = at::get_num_threads() * N * 8;
  const bool halving_kept =
      !self || lists * bf16_list_size(k, M, true) <= max_bytes || lists * f32_list_size(k, M, true) > max_bytes;
  if (halving_kept && bf16_enabled()) {
    at::Tensor out = at::empty({N, bf16_list_size(k, M, self)}, q.options().dtype(at::kLong));
    if (bf16_candidates(q, r, centre, k, self, max_bytes, out.mutable_data_ptr<int64_t>(), of)) {
      return {out, flagged()};
    }
  }
#endif
  at::Tensor out = at::empty({N, f32_list_size(k, M, self)}, q.options().dtype(at::kLong));
  f32_candidates(q, r, k, self, max_bytes, out.mutable_data_ptr<int64_t>(), of);
  return {out, flagged()};
}

void exact_rows_cpu(
    const at::Tensor& xq,
    const at::Tensor& xr,
    const at::Tensor& rows,
    int64_t k,
    bool self,
    at::Tensor& out_d,
    at::Tensor& out_i) {
  const at::Tensor q = xq.contiguous(), r = xr.contiguous(), rw = rows.contiguous();
  const int64_t R = rw.size(0);
  at::Tensor d = at::empty({R, k}, q.options().dtype(at::kDouble));
  at::Tensor i = at::empty({R, k}, q.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "knn_exact_rows", [&] {
    exact_rows_impl<scalar_t>(
        q.const_data_ptr<scalar_t>(),
        r.const_data_ptr<scalar_t>(),
        r.size(0),
        q.size(1),
        rw.const_data_ptr<int64_t>(),
        R,
        k,
        self,
        d.mutable_data_ptr<double>(),
        i.mutable_data_ptr<int64_t>());
  });
  out_d.index_copy_(0, rw, d);
  out_i.index_copy_(0, rw, i);
}

}  // namespace knn
}  // namespace balancedtorch
