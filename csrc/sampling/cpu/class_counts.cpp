// CPU kernel of balancedtorch::class_counts.
//
// Labels are split into one contiguous chunk per thread; each chunk is range
// checked with at::vec min/max (the common, all-valid case) and counted into
// its own histogram, and the histograms are summed at the end. No atomics and
// a deterministic result.
#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "sampling/class_counts.h"

namespace balancedtorch {
namespace sampling {
namespace {

// Labels per range-check block: small enough to stay in L1/L2 between the
// check and the count.
constexpr int64_t kBlock = 4096;
// Below this many labels per thread, threading costs more than it saves.
constexpr int64_t kGrainPerThread = 1 << 15;
// Up to this many classes every chunk keeps a private histogram; above it
// the chunks share the output and add atomically.
constexpr int64_t kMaxPrivateClasses = 1 << 16;
// Interleaved sub-histograms break the store-to-load dependency on runs of
// equal labels (the common case for sorted or very imbalanced data).
constexpr int kSubHistograms = 4;
constexpr int64_t kMaxSubHistClasses = 4096;

template <typename scalar_t>
bool block_in_range(const scalar_t* p, int64_t len, int64_t num_classes) {
  using Vec = at::vec::Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  Vec vmin(std::numeric_limits<scalar_t>::max());
  Vec vmax(std::numeric_limits<scalar_t>::lowest());
  int64_t i = 0;
  for (; i + W <= len; i += W) {
    const Vec v = Vec::loadu(p + i);
    vmin = at::vec::minimum(vmin, v);
    vmax = at::vec::maximum(vmax, v);
  }
  std::array<scalar_t, W> lo{}, hi{};
  vmin.store(lo.data());
  vmax.store(hi.data());
  int64_t mn = *std::min_element(lo.begin(), lo.end());
  int64_t mx = *std::max_element(hi.begin(), hi.end());
  for (; i < len; ++i) {
    mn = std::min<int64_t>(mn, p[i]);
    mx = std::max<int64_t>(mx, p[i]);
  }
  return mn >= 0 && mx < num_classes;
}

// Counts labels already known to be in range.
template <typename scalar_t>
void count_valid(const scalar_t* p, int64_t len, int64_t* hist, int64_t num_classes, int64_t* sub) {
  if (sub == nullptr) {
    for (int64_t i = 0; i < len; ++i) {
      ++hist[static_cast<int64_t>(p[i])];
    }
    return;
  }
  int64_t i = 0;
  for (; i + kSubHistograms <= len; i += kSubHistograms) {
    for (int s = 0; s < kSubHistograms; ++s) {
      ++sub[s * num_classes + static_cast<int64_t>(p[i + s])];
    }
  }
  for (; i < len; ++i) {
    ++sub[static_cast<int64_t>(p[i])];
  }
}

template <typename scalar_t>
void class_counts_kernel(
    const scalar_t* labels, int64_t n, int64_t num_classes, std::optional<int64_t> ignore_index, int64_t* out) {
  const bool has_ignore = ignore_index.has_value();
  const int64_t ignore = ignore_index.value_or(0);
  const int64_t num_chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n / kGrainPerThread));
  const int64_t chunk_len = (n + num_chunks - 1) / num_chunks;
  const bool private_hist = num_chunks == 1 || num_classes <= kMaxPrivateClasses;
  const bool use_sub = num_classes <= kMaxSubHistClasses;

  std::vector<int64_t> partial(private_hist && num_chunks > 1 ? num_chunks * num_classes : 0, 0);
  std::vector<int64_t> first_bad(num_chunks, n);

  at::parallel_for(0, num_chunks, /*grain_size=*/1, [&](int64_t chunk_begin, int64_t chunk_end) {
    std::vector<int64_t> sub(use_sub ? kSubHistograms * num_classes : 0);
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      int64_t* hist = partial.empty() ? out : partial.data() + chunk * num_classes;
      const int64_t begin = chunk * chunk_len;
      const int64_t end = std::min(n, begin + chunk_len);
      std::fill(sub.begin(), sub.end(), 0);
      for (int64_t b = begin; b < end && first_bad[chunk] == n; b += kBlock) {
        const int64_t len = std::min(kBlock, end - b);
        const scalar_t* p = labels + b;
        if (private_hist && block_in_range(p, len, num_classes)) {
          count_valid(p, len, hist, num_classes, use_sub ? sub.data() : nullptr);
          continue;
        }
        // Slow path: ignored or invalid labels in this block, or a shared output.
        for (int64_t i = 0; i < len; ++i) {
          const LabelKind kind = classify_label(p[i], num_classes, has_ignore, ignore);
          if (kind == LabelKind::kCount) {
            const int64_t c = static_cast<int64_t>(p[i]);
            if (private_hist) {
              ++hist[c];
            } else {
              __atomic_fetch_add(hist + c, int64_t{1}, __ATOMIC_RELAXED);
            }
          } else if (kind == LabelKind::kInvalid) {
            first_bad[chunk] = b + i;
            break;
          }
        }
      }
      for (int s = 0; s < (use_sub ? kSubHistograms : 0); ++s) {
        for (int64_t c = 0; c < num_classes; ++c) {
          hist[c] += sub[s * num_classes + c];
        }
      }
    }
  });

  const int64_t bad = *std::min_element(first_bad.begin(), first_bad.end());
  if (bad < n) {
    raise_invalid_label(bad, static_cast<int64_t>(labels[bad]), num_classes, ignore_index);
  }
  if (!partial.empty()) {
    at::parallel_for(0, num_classes, /*grain_size=*/4096, [&](int64_t c0, int64_t c1) {
      for (int64_t chunk = 0; chunk < num_chunks; ++chunk) {
        const int64_t* src = partial.data() + chunk * num_classes;
        for (int64_t c = c0; c < c1; ++c) {
          out[c] += src[c];
        }
      }
    });
  }
  // An ignore_index inside [0, num_classes) passes the range check of the
  // fast path and is counted there like any class; nothing else can land in
  // its bin (the slow path skips it), so dropping the bin drops exactly the
  // ignored labels and keeps the per-label loop free of a second compare.
  if (has_ignore && ignore >= 0 && ignore < num_classes) {
    out[ignore] = 0;
  }
}

at::Tensor class_counts_cpu(const at::Tensor& labels, int64_t num_classes, std::optional<int64_t> ignore_index) {
  check_class_counts_args(labels, num_classes);
  TORCH_CHECK(labels.device().is_cpu(), "class_counts: expected labels on the CPU, got ", labels.device());
  at::Tensor out = at::zeros({num_classes}, labels.options().dtype(at::kLong));
  const at::Tensor flat = labels.contiguous();
  const int64_t n = flat.numel();
  if (n == 0) {
    return out;
  }
  AT_DISPATCH_INTEGRAL_TYPES(flat.scalar_type(), "class_counts_cpu", [&] {
    class_counts_kernel<scalar_t>(
        flat.const_data_ptr<scalar_t>(), n, num_classes, ignore_index, out.data_ptr<int64_t>());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("class_counts", &class_counts_cpu);
}

}  // namespace sampling
}  // namespace balancedtorch
