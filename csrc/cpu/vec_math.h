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
// classes spends its time on. Meant for x <= 88 (the callers pass z - max or
// -|x|): larger x is clamped. exp(-inf) = 0, results below FLT_MIN flush to
// 0, nan propagates (clamp keeps it, and it poisons the polynomial).
inline at::vec::Vectorized<float> exp(const at::vec::Vectorized<float>& x) {
  using Vec = at::vec::Vectorized<float>;
  using IVec = at::vec::Vectorized<int32_t>;
  const Vec hi(88.0f), lo(-87.3365447504019f);
  // -ln2 in two parts (hi exact in few bits); negated here as scalars, since
  // the at::vec of older torch (2.4) has no unary minus on Vectorized
  const Vec log2e(1.44269504088896341f), neg_ln2_hi(-0.693359375f), neg_ln2_lo(2.12194440e-4f);
  const Vec one(1.0f);
  const Vec xc = at::vec::clamp(x, lo, hi);
  const Vec n = (xc * log2e).round();
  Vec r = at::vec::fmadd(n, neg_ln2_hi, xc);
  r = at::vec::fmadd(n, neg_ln2_lo, r);
  Vec y(1.9875691500e-4f);
  y = at::vec::fmadd(y, r, Vec(1.3981999507e-3f));
  y = at::vec::fmadd(y, r, Vec(8.3334519073e-3f));
  y = at::vec::fmadd(y, r, Vec(4.1665795894e-2f));
  y = at::vec::fmadd(y, r, Vec(1.6666665459e-1f));
  y = at::vec::fmadd(y, r, Vec(5.0000001201e-1f));
  y = at::vec::fmadd(y, r * r, r + one);
  const IVec bits = (at::vec::convert_to_int_of_same_size(n) + IVec(127)) << IVec(23);
  // below ln(FLT_MIN) the exponent trick would wrap: flush to an exact 0
  return Vec::blendv(y * at::vec::cast<float>(bits), Vec(0.0f), x < lo);
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

inline void stream_fence() {
#if defined(CPU_CAPABILITY_AVX2)
  _mm_sfence();
#endif
}

}  // namespace cpu
}  // namespace balancedtorch
