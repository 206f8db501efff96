// focus_pixels: the pixel each crop of BatchAugment(crop_focus=...) is centred on.
//
// Per sample b of a batch of label masks (B, H, W) and K focus classes
// (sorted, distinct): pass 1 counts the pixels of every focus class,
// counts[b, k]; then, for the samples that ask for a focus, a class k is drawn
// with probability weight[k] * [counts[b, k] > 0] / (sum over the present
// classes), a rank r = floor(u * counts[b, k]) (at most counts - 1), and pass 2
// returns the flat index (row * W + col) of the r-th pixel of class k in
// raster order, -1 when the sample asks for none or holds no focus class of
// positive weight. The draws come from two uniforms per sample, so the CPU and
// CUDA kernels choose the same pixel (the selection below is the one both run,
// in double precision and the same order of additions).
#pragma once

#include <cstdint>
#include <optional>

#include <ATen/ATen.h>
#include <c10/macros/Macros.h>
#include <c10/util/Exception.h>

namespace balancedtorch {
namespace augment {

// How a pixel value finds its focus slot: a table over [lut_lo, lut_lo +
// lut_span) when the classes span at most kMaxLutSpan values, else a binary
// search in the sorted classes.
struct ClassLookup {
  const int32_t* lut;  // nullptr: binary search
  int64_t lut_lo;
  int64_t lut_span;
  const int64_t* classes;  // sorted, distinct, K of them
  int64_t K;

  // The slot of value v in [0, K), or -1 when v is not a focus class.
  C10_HOST_DEVICE inline int64_t slot_of(int64_t v) const {
    if (lut != nullptr) {
      // unsigned difference: values far below lut_lo wrap to large offsets, no overflow
      const uint64_t off = static_cast<uint64_t>(v) - static_cast<uint64_t>(lut_lo);
      return off < static_cast<uint64_t>(lut_span) ? lut[off] : -1;
    }
    int64_t lo = 0, hi = K;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (classes[mid] < v) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return (lo < K && classes[lo] == v) ? lo : -1;
  }
};

constexpr int64_t kMaxLutSpan = int64_t{1} << 16;

// The class slot drawn for one sample from its counts (K), the class weights
// (K) and a uniform u in [0, 1]; -1 when no class of positive weight is present.
C10_HOST_DEVICE inline int64_t focus_pick_slot(const int64_t* counts, const double* weights, int64_t K, double u) {
  double total = 0.0;
  for (int64_t k = 0; k < K; ++k) {
    if (counts[k] > 0 && weights[k] > 0.0) {
      total += weights[k];
    }
  }
  if (!(total > 0.0)) {
    return -1;
  }
  const double t = u * total;
  double acc = 0.0;
  int64_t last = -1;
  for (int64_t k = 0; k < K; ++k) {
    if (counts[k] > 0 && weights[k] > 0.0) {
      acc += weights[k];
      last = k;
      if (t < acc) {
        return k;
      }
    }
  }
  return last;  // u = 1 (or rounding at the top end): the last present class
}

// Rank in [0, count) from a uniform u in [0, 1]: floor(u * count), u = 1 -> count - 1.
C10_HOST_DEVICE inline int64_t focus_pick_rank(int64_t count, double u) {
  const int64_t r = static_cast<int64_t>(u * static_cast<double>(count));
  return r < count ? r : count - 1;
}

// Host-side arguments, checked once for both backends.
struct FocusArgs {
  at::Tensor masks;    // (B, H, W) contiguous; bool masks viewed as uint8
  at::Tensor classes;  // (K,) int64 contiguous, on the masks' device
  at::Tensor lut;      // (span + 1,) int32 on the masks' device, or undefined (binary search)
  int64_t lut_lo = 0;
  int64_t lut_span = 0;
  at::Tensor weights;   // (K,) float64 contiguous, or undefined ("rare": from the counts)
  at::Tensor uniforms;  // (B, 2) float64 contiguous
  at::Tensor active;    // (B,) bool contiguous
};

inline FocusArgs check_focus_args(
    const at::Tensor& masks,
    const at::Tensor& classes,
    const std::optional<at::Tensor>& weights,
    const at::Tensor& uniforms,
    const std::optional<at::Tensor>& active) {
  TORCH_CHECK_VALUE(masks.dim() == 3, "focus_pixels: masks must have shape (B, H, W), got ", masks.sizes());
  const auto dt = masks.scalar_type();
  TORCH_CHECK_TYPE(
      dt == at::kByte || dt == at::kInt || dt == at::kLong || dt == at::kBool,
      "focus_pixels: masks must be uint8, int32, int64 or bool, got ",
      dt);
  const int64_t B = masks.size(0);
  const auto dev = masks.device();
  TORCH_CHECK_TYPE(
      classes.scalar_type() == at::kLong, "focus_pixels: classes must be int64, got ", classes.scalar_type());
  TORCH_CHECK_VALUE(
      classes.dim() == 1 && classes.numel() >= 1,
      "focus_pixels: classes must have shape (K,) with K >= 1, got ",
      classes.sizes());
  TORCH_CHECK_VALUE(
      classes.device() == dev, "focus_pixels: classes is on ", classes.device(), " but the masks are on ", dev);
  const int64_t K = classes.numel();
  TORCH_CHECK_VALUE(
      uniforms.dim() == 2 && uniforms.size(0) == B && uniforms.size(1) == 2,
      "focus_pixels: uniforms must have shape (B, 2) with B = ",
      B,
      ", got ",
      uniforms.sizes());
  TORCH_CHECK_TYPE(
      at::isFloatingType(uniforms.scalar_type()),
      "focus_pixels: uniforms must be floating point, got ",
      uniforms.scalar_type());
  TORCH_CHECK_VALUE(
      uniforms.device() == dev, "focus_pixels: uniforms is on ", uniforms.device(), " but the masks are on ", dev);
  if (weights.has_value()) {
    TORCH_CHECK_VALUE(
        weights->dim() == 1 && weights->numel() == K,
        "focus_pixels: weights must have shape (K,) = (",
        K,
        ",), got ",
        weights->sizes());
    TORCH_CHECK_TYPE(
        at::isFloatingType(weights->scalar_type()),
        "focus_pixels: weights must be floating point, got ",
        weights->scalar_type());
    TORCH_CHECK_VALUE(
        weights->device() == dev, "focus_pixels: weights is on ", weights->device(), " but the masks are on ", dev);
  }
  if (active.has_value()) {
    TORCH_CHECK_VALUE(
        active->dim() == 1 && active->numel() == B,
        "focus_pixels: active must have shape (B,) = (",
        B,
        ",), got ",
        active->sizes());
    TORCH_CHECK_TYPE(
        active->scalar_type() == at::kBool, "focus_pixels: active must be bool, got ", active->scalar_type());
    TORCH_CHECK_VALUE(
        active->device() == dev, "focus_pixels: active is on ", active->device(), " but the masks are on ", dev);
  }

  FocusArgs a;
  a.masks = (dt == at::kBool ? masks.view(at::kByte) : masks).contiguous();
  a.classes = classes.contiguous();
  a.uniforms = uniforms.to(at::kDouble).contiguous();
  if (weights.has_value()) {
    a.weights = weights->to(at::kDouble).contiguous();
  }
  // Every value check and the classes' range in one small device-to-host copy
  // (the only synchronisation on CUDA): sorted, weights ok, uniforms ok, min, max.
  const auto lopts = a.classes.options();
  const at::Tensor yes = at::scalar_tensor(1, lopts);
  const at::Tensor sorted_ok = K > 1 ? (a.classes.slice(0, 1) > a.classes.slice(0, 0, K - 1)).all().to(at::kLong) : yes;
  const at::Tensor weights_ok =
      a.weights.defined() ? at::logical_and(a.weights >= 0, at::isfinite(a.weights)).all().to(at::kLong) : yes;
  const at::Tensor uniforms_ok = at::logical_and(a.uniforms >= 0, a.uniforms <= 1).all().to(at::kLong);
  const at::Tensor info = at::stack({sorted_ok, weights_ok, uniforms_ok, a.classes[0], a.classes[K - 1]}).to(at::kCPU);
  const int64_t* f = info.const_data_ptr<int64_t>();
  if (f[0] == 0) {
    const at::Tensor cls = a.classes.to(at::kCPU);
    const int64_t* c = cls.const_data_ptr<int64_t>();
    for (int64_t k = 1; k < K; ++k) {
      TORCH_CHECK_VALUE(
          c[k - 1] < c[k],
          "focus_pixels: classes must be sorted and distinct, got ",
          c[k - 1],
          " before ",
          c[k],
          " at index ",
          k);
    }
  }
  TORCH_CHECK_VALUE(f[1] != 0, "focus_pixels: weights must be finite and >= 0, got ", a.weights.cpu());
  TORCH_CHECK_VALUE(f[2] != 0, "focus_pixels: uniforms must lie in [0, 1] (no NaN)");
  int64_t lo = f[3], hi = f[4];
  if (a.masks.scalar_type() == at::kByte) {
    lo = 0;
    hi = 255;  // a uint8 value indexes the table directly; classes outside 0-255 never match
  }
  if (static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) < static_cast<uint64_t>(kMaxLutSpan)) {
    // built where the masks are: classes outside [lo, hi] go to a spare last entry
    const int64_t span = hi - lo + 1;
    const at::Tensor inside = at::logical_and(a.classes >= lo, a.classes <= hi);
    const at::Tensor pos = at::where(inside, a.classes - lo, at::scalar_tensor(span, lopts));
    a.lut = at::full({span + 1}, -1, lopts.dtype(at::kInt));
    a.lut.scatter_(0, pos, at::arange(K, lopts).to(at::kInt));
    a.lut_lo = lo;
    a.lut_span = span;
  }
  a.active = active.has_value() ? active->contiguous() : at::ones({B}, masks.options().dtype(at::kBool));
  return a;
}

// "rare" weights from the per-sample counts (B, K): 1 / (pixels of the class
// in the whole batch) for the classes present in the batch, except the most
// frequent one (the first, i.e. smallest class, on ties), which gets 0.
inline at::Tensor rare_weights(const at::Tensor& counts) {
  const at::Tensor batch = counts.sum(0);
  at::Tensor w = batch.to(at::kDouble).reciprocal();
  w.masked_fill_(batch == 0, 0.0);
  w.index_fill_(0, batch.argmax().reshape({1}), 0.0);
  return w.contiguous();
}

}  // namespace augment
}  // namespace balancedtorch
