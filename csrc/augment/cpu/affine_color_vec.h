// AVX2 path of the CPU affine_color kernel: eight output pixels of a row at
// a time. Source positions, bilinear weights and the colour chain run in
// vector registers with the same operations, in the same order, as the
// scalar code in augment/affine_color.h (so both paths give the same bits);
// the input taps are read with AVX2 gathers at any strides.
#pragma once

#if defined(CPU_CAPABILITY_AVX2)

#include <immintrin.h>

#include <ATen/cpu/vec/vec.h>

#include "augment/affine_color.h"

namespace balancedtorch {
namespace augment {
namespace vec8 {

// everything here is inlined into the row loop, so the vectors stay in registers
#define BT_VEC_INLINE inline __attribute__((always_inline))

using V = at::vec::Vectorized<float>;

BT_VEC_INLINE V select(const V& mask, const V& if_true, const V& if_false) {
  return _mm256_blendv_ps(if_false, if_true, mask);
}

// min / max with fminf / fmaxf's NaN rule (the other operand wins), one instruction each
// (at::vec::minimum / maximum propagate NaN at three instructions each)
BT_VEC_INLINE V vmin(const V& a, const V& b) {
  return _mm256_min_ps(a, b);
}

BT_VEC_INLINE V vmax(const V& a, const V& b) {
  return _mm256_max_ps(a, b);
}

BT_VEC_INLINE V clamp(const V& v, float lo, float hi) {
  return vmin(vmax(v, V(lo)), V(hi));
}

BT_VEC_INLINE V clamp01(const V& v) {
  return clamp(v, 0.f, 1.f);
}

BT_VEC_INLINE V floor(const V& v) {
  return _mm256_floor_ps(v);
}

BT_VEC_INLINE V rint(const V& v) {
  return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

BT_VEC_INLINE V fma(const V& a, const V& b, const V& c) {
  return _mm256_fmadd_ps(a, b, c);
}

BT_VEC_INLINE V gray(const V& r, const V& g, const V& b) {
  return fma(b, V(0.114f), fma(g, V(0.587f), r * V(0.2989f)));
}

template <typename in_t>
BT_VEC_INLINE V gather(const in_t* base, __m256i off) {
  if constexpr (std::is_same_v<in_t, float>) {
    return _mm256_i32gather_ps(base, off, 4);
  } else {
    // 4 bytes read at each byte offset: the caller guarantees 3 readable bytes after the plane
    const __m256i raw = _mm256_i32gather_epi32(reinterpret_cast<const int*>(base), off, 1);
    return _mm256_cvtepi32_ps(_mm256_and_si256(raw, _mm256_set1_epi32(0xFF)));
  }
}

// y * sH + x * sW for integer-valued y, x: the caller keeps every plane offset
// below 2^24, so the float arithmetic is exact and saves the slow 32-bit multiplies.
BT_VEC_INLINE __m256i offsets(const V& y, const V& x, int32_t sH, int32_t sW) {
  return _mm256_cvttps_epi32(fma(y, V(static_cast<float>(sH)), x * V(static_cast<float>(sW))));
}

// Channels of eight output pixels (x, ..., x + 7) of row y; mirrors
// source_position() and sample() (input values in their own units).
template <typename in_t, int C>
BT_VEC_INLINE void warp8(
    const in_t* base,
    int64_t sC,
    int32_t sH,
    int32_t sW,
    const float* t,
    const Frame& f,
    int x,
    int y,
    int64_t mode,
    bool has_fill,
    float fill,
    V* v) {
  const V lane(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f);
  const V xo = (V(static_cast<float>(x)) + lane) + V(0.5f) - V(f.half_ow);
  const float yo = static_cast<float>(y) + 0.5f - f.half_oh;
  V ix = V(t[0]) * xo + V(t[1] * yo) + V(t[2]) + V(f.half_w) - V(0.5f);
  V iy = V(t[3]) * xo + V(t[4] * yo) + V(t[5]) + V(f.half_h) - V(0.5f);
  const float Wf = static_cast<float>(f.W), Hf = static_cast<float>(f.H);
  ix = clamp(ix, -2.f, Wf + 1.f);
  iy = clamp(iy, -2.f, Hf + 1.f);
  if (mode == kNearest) {
    const V rx = rint(ix), ry = rint(iy);
    const V in = (rx >= V(0.f)) & (rx < V(Wf)) & (ry >= V(0.f)) & (ry < V(Hf));
    const __m256i off = offsets(clamp(ry, 0.f, Hf - 1.f), clamp(rx, 0.f, Wf - 1.f), sH, sW);
    const V outside(has_fill ? fill : 0.f);
    for (int c = 0; c < C; ++c) {
      v[c] = select(in, gather(base + c * sC, off), outside);
    }
    return;
  }
  const V fx = floor(ix), fy = floor(iy);
  const V wx = ix - fx, wy = iy - fy;
  const V zero(0.f), one(1.f);
  const V inx0 = (fx >= zero) & (fx < V(Wf)), inx1 = (fx + one >= zero) & (fx + one < V(Wf));
  const V iny0 = (fy >= zero) & (fy < V(Hf)), iny1 = (fy + one >= zero) & (fy + one < V(Hf));
  const V w00 = select(inx0 & iny0, (one - wx) * (one - wy), zero);
  const V w01 = select(inx1 & iny0, wx * (one - wy), zero);
  const V w10 = select(inx0 & iny1, (one - wx) * wy, zero);
  const V w11 = select(inx1 & iny1, wx * wy, zero);
  const V xa = clamp(fx, 0.f, Wf - 1.f), xb = clamp(fx + one, 0.f, Wf - 1.f);
  const V ya = clamp(fy, 0.f, Hf - 1.f), yb = clamp(fy + one, 0.f, Hf - 1.f);
  const V m = w00 + w01 + w10 + w11;
  if constexpr (std::is_same_v<in_t, uint8_t>) {
    if (sW == 1 && f.W >= 2) {
      // both horizontal taps of a row come from one 4-byte gather at x = clamp(fx, 0, W - 2):
      // its low byte is pixel x, the next byte pixel x + 1 (taps with weight 0 may read either)
      const V x_pair = clamp(fx, 0.f, Wf - 2.f);
      const __m256i oa = offsets(ya, x_pair, sH, 1), ob = offsets(yb, x_pair, sH, 1);
      const V left_high = fx >= V(Wf - 1.f);
      const V right_high = (fx >= zero) & (fx <= V(Wf - 2.f));
      const __m256i low = _mm256_set1_epi32(0xFF);
      for (int c = 0; c < C; ++c) {
        const int* p = reinterpret_cast<const int*>(base + c * sC);
        const __m256i wa = _mm256_i32gather_epi32(p, oa, 1), wb = _mm256_i32gather_epi32(p, ob, 1);
        const V a0 = _mm256_cvtepi32_ps(_mm256_and_si256(wa, low)),
                a1 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(wa, 8), low));
        const V b0 = _mm256_cvtepi32_ps(_mm256_and_si256(wb, low)),
                b1 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(wb, 8), low));
        V s = w00 * select(left_high, a1, a0);
        s = s + w01 * select(right_high, a1, a0);
        s = s + w10 * select(left_high, b1, b0);
        s = s + w11 * select(right_high, b1, b0);
        v[c] = has_fill ? (s - V(fill)) * m + V(fill) : s;
      }
      return;
    }
  }
  const __m256i o00 = offsets(ya, xa, sH, sW), o01 = offsets(ya, xb, sH, sW), o10 = offsets(yb, xa, sH, sW),
                o11 = offsets(yb, xb, sH, sW);
  for (int c = 0; c < C; ++c) {
    const in_t* p = base + c * sC;
    V s = w00 * gather(p, o00);
    s = s + w01 * gather(p, o01);
    s = s + w10 * gather(p, o10);
    s = s + w11 * gather(p, o11);
    v[c] = has_fill ? (s - V(fill)) * m + V(fill) : s;
  }
}

BT_VEC_INLINE void shift_hue(V* v, float hue) {
  const V r = v[0], g = v[1], b = v[2];
  const V one(1.f);
  const V maxc = vmax(r, vmax(g, b)), minc = vmin(r, vmin(g, b));
  const V eqc = maxc == minc;
  const V range = maxc - minc;
  const V s = range / select(eqc, one, maxc);
  const V div = select(eqc, one, range);
  // torchvision's hr = bc - gc, hg = (2 + rc) - bc, hb = (4 + gc) - rc with c* = (maxc - c) / div:
  // only the two quotients of each lane's case are computed (same roundings, 2 divisions not 3)
  const V is_r = maxc == r, is_g = maxc == g;
  const V first = select(is_r, maxc - b, select(is_g, maxc - r, maxc - g));
  const V second = select(is_r, maxc - g, select(is_g, maxc - b, maxc - r));
  const V offset = select(is_r, V(0.f), select(is_g, V(2.f), V(4.f)));
  V h = (offset + first / div) - second / div;
  h = h * V(1.f / 6.f) + one;
  h = h - floor(h);  // fmodf(h, 1) for h > 0
  h = h + V(hue);
  h = h - floor(h);
  const V h6 = h * V(6.f);
  V sector = floor(h6);
  const V fr = h6 - sector;
  sector = select(sector == V(6.f), V(0.f), sector);
  const V sf = s * fr;
  const V q = clamp01((one - sf) * maxc);
  const V tt = clamp01((sf + (one - s)) * maxc);
  const V p = clamp01((one - s) * maxc);
  const V s0 = sector == V(0.f), s1 = sector == V(1.f), s2 = sector == V(2.f), s3 = sector == V(3.f),
          s4 = sector == V(4.f);
  v[0] = select(s0, maxc, select(s1, q, select(s2, p, select(s3, p, select(s4, tt, maxc)))));
  v[1] = select(s0, tt, select(s1, maxc, select(s2, maxc, select(s3, q, select(s4, p, p)))));
  v[2] = select(s0, p, select(s1, p, select(s2, tt, select(s3, maxc, select(s4, maxc, q)))));
}

template <int C>
BT_VEC_INLINE V grey_of(const V* v) {
  if constexpr (C == 3) {
    return gray(v[0], v[1], v[2]);
  } else {
    return v[0];
  }
}

BT_VEC_INLINE V trunc_u8(const V& v) {
  return floor(clamp(v, 0.f, 255.f));
}

// colour_stage1<C, U8>() on eight pixels.
template <int C, bool U8>
BT_VEC_INLINE void stage1(V* v, const float* colour) {
  if constexpr (U8) {
    for (int c = 0; c < C; ++c) {
      v[c] = clamp(rint(v[c]), 0.f, 255.f);
    }
  }
  if (colour != nullptr && colour[0] != 1.f) {
    for (int c = 0; c < C; ++c) {
      v[c] = U8 ? trunc_u8(v[c] * V(colour[0])) : clamp01(v[c] * V(colour[0]));
    }
  }
}

// colour_stage2<C, U8>() on eight pixels.
template <int C, bool U8>
BT_VEC_INLINE void stage2(V* v, const float* colour, float contrast_mean) {
  if (colour != nullptr) {
    if (colour[1] != 1.f) {
      for (int c = 0; c < C; ++c) {
        const V blended = fma(V(contrast_mean), V(colour[2]), v[c] * V(colour[1]));
        v[c] = U8 ? trunc_u8(blended) : clamp01(blended);
      }
    }
    if constexpr (C == 3) {
      if (colour[3] != 1.f) {
        const V gr = U8 ? floor(gray(v[0], v[1], v[2])) : gray(v[0], v[1], v[2]);
        for (int c = 0; c < 3; ++c) {
          const V blended = fma(gr, V(colour[4]), v[c] * V(colour[3]));
          v[c] = U8 ? trunc_u8(blended) : clamp01(blended);
        }
      }
      if (colour[5] != 0.f) {
        if constexpr (U8) {
          for (int c = 0; c < 3; ++c) {
            v[c] = v[c] * V(1.f / 255.f);
          }
          shift_hue(v, colour[5]);
          for (int c = 0; c < 3; ++c) {
            v[c] = floor(v[c] * V(255.999f));
          }
        } else {
          shift_hue(v, colour[5]);
        }
      }
    }
  }
  if constexpr (U8) {
    for (int c = 0; c < C; ++c) {
      v[c] = v[c] * V(1.f / 255.f);
    }
  }
}

// stage1_grey<C, U8>() on eight pixels.
template <int C, bool U8>
BT_VEC_INLINE V stage1_grey(const V* v) {
  if constexpr (U8 && C == 3) {
    return floor(grey_of<C>(v));
  } else {
    return grey_of<C>(v);
  }
}

}  // namespace vec8
}  // namespace augment
}  // namespace balancedtorch

#undef BT_VEC_INLINE

#endif  // CPU_CAPABILITY_AVX2
