// Vectorised math for the CPU kernels, on at::vec types, and the tile
// helpers the softmax-family kernels share (prefetch and copy of class planes).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <ATen/cpu/vec/vec.h>

#if defined(CPU_CAPABILITY_AVX2)
#include <immintrin.h>
#endif

namespace balancedtorch {
namespace cpu {

// exp(x) for float lanes, about 2 ulp (max relative error < 2.5e-7): Cody-Waite
// range reduction x = n ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial for
// e^r (Cephes' expf coefficients) and 2^n built in the exponent bits. Several
// times cheaper than at::vec's Sleef exp, which is what a softmax over many
// classes spends its time on. For x <= 88 (the callers pass z - max or -|x|,
// never above 0; there is no upper clamp). n comes from the magic-number
// rounding: t = x log2e + 1.5 * 2^23 holds round(x log2e) in its low mantissa
// bits, so t - 1.5 * 2^23 is n as a float and t's bits give 2^n directly (no
// round and convert). x below -87.68 gives n = -127, an exponent field of 0:
// an exact +0 with no compare (exp(-inf) = 0); between -87.68 and
// ln(FLT_MIN) = -87.34 the result is the subnormal y 2^-126 (0 where the
// process flushes subnormals). nan propagates (the clamp keeps it, and it
// poisons the polynomial). 17 instructions on AVX2 against the 22 of the
// round-and-convert form with a flush compare; 0.27 against 0.38 ns per
// element on one core here (benchmarks/compute_floor.py).
inline at::vec::Vectorized<float> exp(const at::vec::Vectorized<float>& x) {
  using Vec = at::vec::Vectorized<float>;
  using IVec = at::vec::Vectorized<int32_t>;
  const Vec lo(-88.0f);
#if defined(CPU_CAPABILITY_AVX2)
  const Vec xc = _mm256_max_ps(lo, x);  // a nan x: max_ps returns its second operand, x
#else
  const Vec xc = at::vec::maximum(x, lo);  // propagates nan
#endif
  // -ln2 in two parts (hi exact in few bits); negated here as scalars, since
  // the at::vec of older torch (2.4) has no unary minus on Vectorized
  const Vec log2e(1.44269504088896341f), neg_ln2_hi(-0.693359375f), neg_ln2_lo(2.12194440e-4f);
  const Vec magic(12582912.0f);  // 1.5 * 2^23
  const Vec t = at::vec::fmadd(xc, log2e, magic);
  const Vec n = t - magic;
  Vec r = at::vec::fmadd(n, neg_ln2_hi, xc);
  r = at::vec::fmadd(n, neg_ln2_lo, r);
  Vec y(1.9875691500e-4f);
  y = at::vec::fmadd(y, r, Vec(1.3981999507e-3f));
  y = at::vec::fmadd(y, r, Vec(8.3334519073e-3f));
  y = at::vec::fmadd(y, r, Vec(4.1665795894e-2f));
  y = at::vec::fmadd(y, r, Vec(1.6666665459e-1f));
  y = at::vec::fmadd(y, r, Vec(5.0000001201e-1f));
  y = at::vec::fmadd(y, r * r, r + Vec(1.0f));
  // t's bits are 0x4B400000 + n, so (t's bits - 0x4B400000 + 127) << 23 is 2^n
  const IVec bits = (at::vec::cast<int32_t>(t) - IVec(0x4B400000 - 127)) << IVec(23);
  return y * at::vec::cast<float>(bits);
}

// Double lanes keep at::vec's (Sleef, 1 ulp) exp: float64 is for accuracy.
inline at::vec::Vectorized<double> exp(const at::vec::Vectorized<double>& x) {
  return x.exp();
}

// log(1 + e) for e in [0, 1] (the softplus tail log(1 + exp(-|x|))), float
// lanes, relative error < 2e-7: with s = e / (2 + e), log(1 + e) =
// 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s in [0, 1/3], to s^15.
inline at::vec::Vectorized<float> log1p_unit(const at::vec::Vectorized<float>& e) {
  using Vec = at::vec::Vectorized<float>;
  const Vec s = e / (Vec(2.0f) + e);
  const Vec s2 = s * s;
  Vec y(1.0f / 15.0f);
  y = at::vec::fmadd(y, s2, Vec(1.0f / 13.0f));
  y = at::vec::fmadd(y, s2, Vec(1.0f / 11.0f));
  y = at::vec::fmadd(y, s2, Vec(1.0f / 9.0f));
  y = at::vec::fmadd(y, s2, Vec(1.0f / 7.0f));
  y = at::vec::fmadd(y, s2, Vec(1.0f / 5.0f));
  y = at::vec::fmadd(y, s2, Vec(1.0f / 3.0f));
  y = at::vec::fmadd(y, s2, Vec(1.0f));
  return Vec(2.0f) * s * y;
}

inline at::vec::Vectorized<double> log1p_unit(const at::vec::Vectorized<double>& e) {
  return e.log1p();
}

// log(x) for float lanes, about 1 ulp for normal positive x: x = 2^k m with
// m in [sqrt(1/2), sqrt(2)) taken from the bits, log m = 2 atanh(s) with
// s = (m - 1) / (m + 1), |s| <= 0.172, summed to s^11 (truncation below
// 1e-10 relative), plus k ln2 in two parts. 0 gives -inf, +inf gives +inf,
// nan and negative x give nan; subnormal x are not reduced (the callers pass
// softmax sums, 0 or >= 1). Inlined, one division, against a call of
// at::vec's Sleef log. Builds without AVX2 keep at::vec's log.
inline at::vec::Vectorized<float> log(const at::vec::Vectorized<float>& x) {
#if defined(CPU_CAPABILITY_AVX2)
  using Vec = at::vec::Vectorized<float>;
  const __m256 xv = x;
  const __m256i bits = _mm256_castps_si256(xv);
  // k = the exponent that brings m into [sqrt(1/2), sqrt(2)) (0x3f3504f3: sqrt(1/2)'s bits)
  const __m256i k = _mm256_srai_epi32(_mm256_sub_epi32(bits, _mm256_set1_epi32(0x3f3504f3)), 23);
  const Vec m = _mm256_castsi256_ps(_mm256_sub_epi32(bits, _mm256_slli_epi32(k, 23)));
  const Vec kf = _mm256_cvtepi32_ps(k);
  const Vec f = m - Vec(1.0f);  // exact (Sterbenz)
  const Vec s = f / (m + Vec(1.0f));
  const Vec z = s * s;
  Vec r(2.0f / 11.0f);
  r = at::vec::fmadd(r, z, Vec(2.0f / 9.0f));
  r = at::vec::fmadd(r, z, Vec(2.0f / 7.0f));
  r = at::vec::fmadd(r, z, Vec(2.0f / 5.0f));
  r = at::vec::fmadd(r, z, Vec(2.0f / 3.0f));
  // log m = 2 s + s R with R = z r; as 2 s = f - s f, log m = f - (h - s (h + R)), h = f^2 / 2: the
  // leading f is exact and the rounding of s only reaches the O(f^2) correction. Then + k ln2
  // (hi exact in few bits, plus lo).
  const Vec h = Vec(0.5f) * f * f;
  Vec y = f - at::vec::fmadd(s.neg(), at::vec::fmadd(z, r, h), h);
  y = at::vec::fmadd(kf, Vec(-2.12194440e-4f), y);
  y = at::vec::fmadd(kf, Vec(0.693359375f), y);
  // 0 -> -inf, +inf -> +inf, negative or nan -> nan
  const __m256 special = _mm256_cmp_ps(xv, _mm256_set1_ps(std::numeric_limits<float>::infinity()), _CMP_NLT_UQ);
  y = _mm256_blendv_ps(y, _mm256_mul_ps(xv, xv), special);  // +inf and nan (nan * nan = nan)
  const __m256 nonpos = _mm256_cmp_ps(xv, _mm256_setzero_ps(), _CMP_LE_OQ);
  const __m256 at_zero = _mm256_cmp_ps(xv, _mm256_setzero_ps(), _CMP_EQ_OQ);
  y = _mm256_blendv_ps(y, _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()), nonpos);
  return _mm256_blendv_ps(y, _mm256_set1_ps(-std::numeric_limits<float>::infinity()), at_zero);
#else
  return x.log();
#endif
}

inline at::vec::Vectorized<double> log(const at::vec::Vectorized<double>& x) {
  return x.log();
}

// The log-probability of the target class of a softmax, lp = log(e_t / S),
// from dz = z_t - m (<= 0, m the max), S = e_t + s_other and s_other (the sum
// without the target): dz - log S, and where the target holds the max (dz
// >= 0, so e_t = 1 and S = 1 + s_other rounded) -log1p(s_other), exact as
// p_t -> 1, formed as -(log S + (s_other - (S - 1)) / S) (S - 1 is exact
// there): one log for both kinds of lane. inv_S = 1 / S, which the callers
// need anyway (the correction is below an ulp of log S, so its own rounding
// does not show).
template <typename T>
inline at::vec::Vectorized<T> target_log_prob(
    const at::vec::Vectorized<T>& dz,
    const at::vec::Vectorized<T>& S,
    const at::vec::Vectorized<T>& s_other,
    const at::vec::Vectorized<T>& inv_S) {
  using Vec = at::vec::Vectorized<T>;
  const Vec corr = (s_other - (S - Vec(T(1)))) * inv_S;
  return dz - log(S) - Vec::blendv(Vec(T(0)), corr, dz >= Vec(T(0)));
}

// Class-index targets as float lanes, for n (a multiple of 8) int64 targets
// already validated (each is ignore or a class below 2^24, so its low 32 bits
// are the class and convert exactly): cls[j] = t_j, or -1 where t_j equals
// ignore (compared on all 64 bits); valid[j] = 1, or 0 there. Eight targets in
// a handful of instructions, where a scalar loop converted and stored each.
// Returns false, writing nothing, where the build has no AVX2.
inline bool class_targets_as_float(const int64_t* t, int64_t n, int64_t ignore, float* cls, float* valid) {
#if defined(CPU_CAPABILITY_AVX2)
  const __m256i ig = _mm256_set1_epi64x(ignore);
  const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const __m256 minus_one = _mm256_set1_ps(-1.0f), one = _mm256_set1_ps(1.0f);
  for (int64_t j = 0; j < n; j += 8) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + j));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + j + 4));
    // each 64-bit lane's low 32 bits (the class) into one vector, in order
    const __m256i a32 = _mm256_permutevar8x32_epi32(a, low_halves);
    const __m256i b32 = _mm256_permutevar8x32_epi32(b, low_halves);
    const __m256i c32 = _mm256_permute2x128_si256(a32, b32, 0x20);
    const __m256i ia = _mm256_permutevar8x32_epi32(_mm256_cmpeq_epi64(a, ig), low_halves);
    const __m256i ib = _mm256_permutevar8x32_epi32(_mm256_cmpeq_epi64(b, ig), low_halves);
    const __m256 ignored = _mm256_castsi256_ps(_mm256_permute2x128_si256(ia, ib, 0x20));
    _mm256_storeu_ps(cls + j, _mm256_blendv_ps(_mm256_cvtepi32_ps(c32), minus_one, ignored));
    _mm256_storeu_ps(valid + j, _mm256_andnot_ps(ignored, one));
  }
  return true;
#else
  (void)t, (void)n, (void)ignore, (void)cls, (void)valid;
  return false;
#endif
}

// Stores v to p (aligned to the vector's width) with a streaming
// (non-temporal) store where the build has one (AVX2): the line goes to memory
// without first being read into the caches, a third of the traffic of a
// normal store for an output far larger than the caches. Other builds store
// normally. A thread that streams calls stream_fence before others read.
template <typename T>
inline void store_stream(T* p, const at::vec::Vectorized<T>& v) {
#if defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<T, float>) {
    _mm256_stream_ps(p, v);
    return;
  } else if constexpr (std::is_same_v<T, double>) {
    _mm256_stream_pd(p, v);
    return;
  }
#endif
  v.store(p);
}

// max(a, b) lane by lane where a nan need not propagate (the caller's later
// terms make it nan anyway): one instruction on AVX2 instead of
// at::vec::maximum's three.
template <typename T>
inline at::vec::Vectorized<T> max_no_nan(const at::vec::Vectorized<T>& a, const at::vec::Vectorized<T>& b) {
#if defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<T, float>) {
    return _mm256_max_ps(a, b);
  } else if constexpr (std::is_same_v<T, double>) {
    return _mm256_max_pd(a, b);
  } else {
    return at::vec::maximum(a, b);
  }
#else
  return at::vec::maximum(a, b);
#endif
}

// Prefetches into L2 the cache lines of `count` elements at p + c * stride
// for each of C planes. Class planes are C concurrent streams, more than the
// hardware prefetchers follow. Into L2, not L1: planes a multiple of 4 KiB
// apart share one L1 set, where C lines would evict each other before use.
template <typename T>
inline void prefetch_planes(const T* p, int64_t stride, int64_t C, int64_t count) {
  constexpr int64_t kLine = std::max<int64_t>(1, 64 / static_cast<int64_t>(sizeof(T)));
  for (int64_t c = 0; c < C; ++c, p += stride) {
    for (int64_t l = 0; l < count; l += kLine) {
      __builtin_prefetch(p + l, 0, 2);
    }
  }
}

// Copies C planes of K vectors (src + c * stride) into dst + c * dst_stride
// and writes to vmax each lane's max over the planes, of z + bias[c] where
// bias is given (dst keeps z). A nan need not propagate through the max (the
// callers' exp of a nan logit makes the lane's sum nan). Locals only: a vector
// store may alias anything, so a value read through a reference in the loop
// would be reloaded after every store.
template <int64_t K, typename T>
inline void copy_planes_max(
    const T* src, int64_t stride, int64_t C, T* dst, int64_t dst_stride, const T* bias, at::vec::Vectorized<T>* vmax) {
  using Vec = at::vec::Vectorized<T>;
  constexpr int64_t L = Vec::size();
  auto run = [&](auto with_bias) {
    Vec acc[K];
    for (int64_t k = 0; k < K; ++k) {
      acc[k] = Vec(-std::numeric_limits<T>::infinity());
    }
    const T* s = src;
    T* d = dst;
    for (int64_t c = 0; c < C; ++c, s += stride, d += dst_stride) {
      for (int64_t k = 0; k < K; ++k) {
        const Vec v = Vec::loadu(s + k * L);
        v.store(d + k * L);
        if constexpr (decltype(with_bias)::value) {
          acc[k] = max_no_nan(acc[k], v + Vec(bias[c]));
        } else {
          acc[k] = max_no_nan(acc[k], v);
        }
      }
    }
    for (int64_t k = 0; k < K; ++k) {
      vmax[k] = acc[k];
    }
  };
  if (bias) {
    run(std::true_type{});
  } else {
    run(std::false_type{});
  }
}

inline void stream_fence() {
#if defined(CPU_CAPABILITY_AVX2)
  _mm_sfence();
#endif
}

}  // namespace cpu
}  // namespace balancedtorch
