// Vectorised math for the CPU kernels, on at::vec types.
#pragma once

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

inline void stream_fence() {
#if defined(CPU_CAPABILITY_AVX2)
  _mm_sfence();
#endif
}

}  // namespace cpu
}  // namespace balancedtorch
