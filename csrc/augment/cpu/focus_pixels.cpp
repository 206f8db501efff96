// CPU kernel of balancedtorch::focus_pixels (see csrc/augment/focus_pixels.h).
//
// Pass 1 splits every mask into chunks (enough tasks for all threads even for
// a small batch); each task counts into interleaved private sub-histograms
// (one extra bin for "not a focus class"), so runs of background pixels do
// not serialise on one counter, and no atomics are needed. uint8 masks skip
// the lookup: a few focus classes are counted by a vectorised compare per
// class, more by a plain 256-bin histogram. Pass 2, one task
// per sample, counts matches of the drawn class block by block (a loop the
// compiler vectorises) and scans only the block that holds the wanted rank.
#include <algorithm>
#include <tuple>
#include <type_traits>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/library.h>

#include "augment/focus_pixels.h"

namespace balancedtorch {
namespace augment {
namespace {

// Pixels per pass-1 task: big enough to amortise the histogram merge.
constexpr int64_t kMinChunk = int64_t{1} << 16;
// Interleaved sub-histograms (see above).
constexpr int kSubHistograms = 4;
// Pixels per pass-2 block: counted with a vectorised compare, stays in L1.
constexpr int64_t kScanBlock = 4096;

template <typename scalar_t>
void count_chunk(const scalar_t* p, int64_t n, const ClassLookup& look, int64_t* sub) {
  const int64_t K1 = look.K + 1;  // bin K: not a focus class
  auto bin = [&](scalar_t v) {
    const int64_t s = look.slot_of(static_cast<int64_t>(v));
    return s < 0 ? look.K : s;
  };
  int64_t i = 0;
  for (; i + kSubHistograms <= n; i += kSubHistograms) {
    for (int s = 0; s < kSubHistograms; ++s) {
      ++sub[s * K1 + bin(p[i + s])];
    }
  }
  for (; i < n; ++i) {
    ++sub[bin(p[i])];
  }
}

// uint8 masks with at most this many focus classes count each by compare-and-add.
constexpr int64_t kFewClasses = 4;
// Pixels per inner block of the uint8 counts: 32-bit lane counters cannot overflow.
constexpr int64_t kCountBlock = int64_t{1} << 20;

int64_t count_equal(const uint8_t* p, int64_t n, uint8_t v) {
  int64_t total = 0;
  for (int64_t b = 0; b < n; b += kCountBlock) {
    const int64_t len = std::min(kCountBlock, n - b);
    uint32_t c = 0;
    for (int64_t i = 0; i < len; ++i) {
      c += p[b + i] == v;
    }
    total += c;
  }
  return total;
}

// Counts of the focus classes of a uint8 chunk into out[K].
void count_chunk_u8(const uint8_t* p, int64_t n, const ClassLookup& look, int64_t* out, uint32_t* sub) {
  int64_t in_range = 0;
  for (int64_t k = 0; k < look.K; ++k) {
    out[k] = 0;
    in_range += look.classes[k] >= 0 && look.classes[k] <= 255;
  }
  if (in_range <= kFewClasses) {
    for (int64_t k = 0; k < look.K; ++k) {
      if (look.classes[k] >= 0 && look.classes[k] <= 255) {
        out[k] = count_equal(p, n, static_cast<uint8_t>(look.classes[k]));
      }
    }
    return;
  }
  for (int64_t b = 0; b < n; b += kCountBlock) {
    const int64_t len = std::min(kCountBlock, n - b);
    const uint8_t* q = p + b;
    std::fill(sub, sub + kSubHistograms * 256, 0u);
    int64_t i = 0;
    for (; i + kSubHistograms <= len; i += kSubHistograms) {
      for (int s = 0; s < kSubHistograms; ++s) {
        ++sub[s * 256 + q[i + s]];
      }
    }
    for (; i < len; ++i) {
      ++sub[q[i]];
    }
    for (int64_t k = 0; k < look.K; ++k) {
      const int64_t c = look.classes[k];
      if (c >= 0 && c <= 255) {
        for (int s = 0; s < kSubHistograms; ++s) {
          out[k] += sub[s * 256 + c];
        }
      }
    }
  }
}

// Flat index of the r-th (0-based) pixel equal to v, or -1 if there are fewer.
template <typename scalar_t>
int64_t find_rank(const scalar_t* p, int64_t n, scalar_t v, int64_t r) {
  int64_t seen = 0;
  for (int64_t b = 0; b < n; b += kScanBlock) {
    const int64_t len = std::min(kScanBlock, n - b);
    const scalar_t* q = p + b;
    uint32_t c = 0;  // 32-bit lanes: a faster vectorised count than 64-bit
    for (int64_t i = 0; i < len; ++i) {
      c += q[i] == v;
    }
    if (seen + c > r) {
      for (int64_t i = 0; i < len; ++i) {
        if (q[i] == v) {
          if (seen == r) {
            return b + i;
          }
          ++seen;
        }
      }
    }
    seen += c;
  }
  return -1;
}

template <typename scalar_t>
void count_all(const FocusArgs& a, const ClassLookup& look, int64_t* counts) {
  const int64_t B = a.masks.size(0);
  const int64_t HW = a.masks.size(1) * a.masks.size(2);
  const int64_t K = look.K;
  const scalar_t* masks = a.masks.const_data_ptr<scalar_t>();
  // chunks per sample: enough for every thread, none smaller than kMinChunk
  const int64_t threads = at::get_num_threads();
  const int64_t max_chunks = std::max<int64_t>(1, HW / kMinChunk);
  const int64_t per_sample = std::min(max_chunks, std::max<int64_t>(1, (threads + B - 1) / B));
  const int64_t chunk_len = (HW + per_sample - 1) / per_sample;
  std::vector<int64_t> partial(per_sample > 1 ? B * per_sample * K : 0, 0);
  constexpr bool kU8 = std::is_same_v<scalar_t, uint8_t>;
  at::parallel_for(0, B * per_sample, /*grain_size=*/1, [&](int64_t t0, int64_t t1) {
    std::vector<int64_t> sub(kU8 ? 0 : kSubHistograms * (K + 1));
    std::vector<uint32_t> sub8(kU8 ? kSubHistograms * 256 : 0);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / per_sample, chunk = t % per_sample;
      const int64_t begin = chunk * chunk_len;
      const int64_t end = std::min(HW, begin + chunk_len);
      int64_t* out = partial.empty() ? counts + b * K : partial.data() + t * K;
      if constexpr (kU8) {
        count_chunk_u8(masks + b * HW + begin, std::max<int64_t>(0, end - begin), look, out, sub8.data());
        continue;
      }
      std::fill(sub.begin(), sub.end(), 0);
      if (begin < end) {
        count_chunk(masks + b * HW + begin, end - begin, look, sub.data());
      }
      for (int64_t k = 0; k < K; ++k) {
        int64_t s = 0;
        for (int j = 0; j < kSubHistograms; ++j) {
          s += sub[j * (K + 1) + k];
        }
        out[k] = s;
      }
    }
  });
  if (!partial.empty()) {
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t chunk = 0; chunk < per_sample; ++chunk) {
        const int64_t* src = partial.data() + (b * per_sample + chunk) * K;
        for (int64_t k = 0; k < K; ++k) {
          counts[b * K + k] += src[k];
        }
      }
    }
  }
}

template <typename scalar_t>
void select_all(const FocusArgs& a, const at::Tensor& weights, const int64_t* counts, int64_t* index) {
  const int64_t B = a.masks.size(0);
  const int64_t HW = a.masks.size(1) * a.masks.size(2);
  const int64_t K = a.classes.numel();
  const scalar_t* masks = a.masks.const_data_ptr<scalar_t>();
  const int64_t* classes = a.classes.const_data_ptr<int64_t>();
  const double* w = weights.const_data_ptr<double>();
  const double* u = a.uniforms.const_data_ptr<double>();
  const bool* active = a.active.const_data_ptr<bool>();
  at::parallel_for(0, B, /*grain_size=*/1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      index[b] = -1;
      if (!active[b]) {
        continue;
      }
      const int64_t slot = focus_pick_slot(counts + b * K, w, K, u[2 * b]);
      if (slot < 0) {
        continue;
      }
      const int64_t r = focus_pick_rank(counts[b * K + slot], u[2 * b + 1]);
      index[b] = find_rank(masks + b * HW, HW, static_cast<scalar_t>(classes[slot]), r);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> focus_pixels_cpu(
    const at::Tensor& masks,
    const at::Tensor& classes,
    const std::optional<at::Tensor>& weights,
    const at::Tensor& uniforms,
    const std::optional<at::Tensor>& active) {
  TORCH_CHECK(masks.device().is_cpu(), "focus_pixels: expected masks on the CPU, got ", masks.device());
  const FocusArgs a = check_focus_args(masks, classes, weights, uniforms, active);
  const int64_t B = a.masks.size(0);
  const int64_t K = a.classes.numel();
  at::Tensor counts = at::zeros({B, K}, masks.options().dtype(at::kLong));
  at::Tensor index = at::full({B}, -1, masks.options().dtype(at::kLong));
  if (B == 0) {
    return {index, counts};
  }
  const ClassLookup look{
      a.lut.defined() ? a.lut.const_data_ptr<int32_t>() : nullptr,
      a.lut_lo,
      a.lut_span,
      a.classes.const_data_ptr<int64_t>(),
      K};
  auto run = [&](auto tag) {
    using scalar_t = decltype(tag);
    count_all<scalar_t>(a, look, counts.data_ptr<int64_t>());
    const at::Tensor w = a.weights.defined() ? a.weights : rare_weights(counts);
    select_all<scalar_t>(a, w, counts.const_data_ptr<int64_t>(), index.data_ptr<int64_t>());
  };
  switch (a.masks.scalar_type()) {
    case at::kByte:
      run(uint8_t{});
      break;
    case at::kInt:
      run(int32_t{});
      break;
    default:
      run(int64_t{});
      break;
  }
  return {index, counts};
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("focus_pixels", &focus_pixels_cpu);
}

}  // namespace augment
}  // namespace balancedtorch
