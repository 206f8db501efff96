// CPU kernel of balancedtorch::ohem_prob_weights (see csrc/loss/ohem_weights.h).
//
// One parallel pass counts the valid pixels and those below thresh. When
// more than k are below it, the k-th smallest is too and the threshold is
// thresh itself (the common case: a few hard pixels are enough); otherwise
// the order statistic comes from a two-level radix select: the top
// kRadixBits of the order keys histogrammed, the bucket holding position k
// found from the bottom, and only that bucket's values gathered for
// std::nth_element. A last parallel pass writes the coefficients. No sort,
// no copy of the probabilities.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "loss/ohem_weights.h"
#include "loss/softmax_loss_args.h"

namespace balancedtorch {
namespace loss {
namespace {

constexpr int kRadixBits = 16;
constexpr int64_t kBuckets = int64_t{1} << kRadixBits;

// Pixels per parallel chunk of the counting and writing passes.
constexpr int64_t kGrain = 32768;

[[noreturn]] void raise_bad_target(int64_t t, int64_t i, int64_t num_classes, int64_t ignore_index) {
  TORCH_CHECK_VALUE(
      false,
      "ohem_prob_weights: target must hold class indices in [0, C=",
      num_classes,
      ") or ignore_index=",
      ignore_index,
      ", got target ",
      t,
      " at flat index ",
      i);
}

template <typename scalar_t, typename target_t>
void ohem_weights_kernel(
    const scalar_t* prob,
    const target_t* target,
    const scalar_t* weight,
    int64_t num_classes,
    int64_t M,
    int64_t ignore_index,
    const OhemArgs& a,
    scalar_t* out) {
  using Key = OrderKey<scalar_t>;
  constexpr int shift = Key::kBits - kRadixBits;
  // thresh in the probabilities' dtype
  const scalar_t cap = static_cast<scalar_t>(a.thresh);
  // Pass 1, in parallel: valid pixels, those below cap (kept when the
  // threshold is cap: p < cap, or nan), and the first out-of-range target
  // (with a weight to index). Integer counts: the same for any thread count.
  const int64_t chunks = (M + kGrain - 1) / kGrain;
  std::vector<int64_t> valid_c(chunks, 0), below_c(chunks, 0), kept_c(chunks, 0), bad_c(chunks, -1);
  const bool check = weight != nullptr;
  const uint64_t nc = static_cast<uint64_t>(num_classes);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      // branch-free, and the range check in a loop of its own (only with a
      // weight): whether a pixel is valid or below cap is a coin toss a
      // branch predictor loses. A pixel kept at threshold cap is below it or nan.
      const int64_t lo = ch * kGrain, hi = std::min(M, (ch + 1) * kGrain);
      int32_t nv = 0, nb = 0, nn = 0;
      for (int64_t i = lo; i < hi; ++i) {
        const int32_t valid = static_cast<int64_t>(target[i]) != ignore_index;
        const scalar_t p = prob[i];
        nv += valid;
        nb += valid & static_cast<int32_t>(p < cap);
        nn += valid & static_cast<int32_t>(p != p);
      }
      int64_t bad = -1;
      for (int64_t i = lo; check && i < hi; ++i) {
        const int64_t t = static_cast<int64_t>(target[i]);
        if (t != ignore_index && static_cast<uint64_t>(t) >= nc) {
          bad = i;
          break;
        }
      }
      const int64_t nk = int64_t{nb} + nn;
      valid_c[ch] = nv;
      below_c[ch] = nb;
      kept_c[ch] = nk;
      bad_c[ch] = bad;
    }
  });
  int64_t n_valid = 0, n_below = 0, kept = 0;
  for (int64_t ch = 0; ch < chunks; ++ch) {
    if (bad_c[ch] >= 0) {
      raise_bad_target(static_cast<int64_t>(target[bad_c[ch]]), bad_c[ch], num_classes, ignore_index);
    }
    n_valid += valid_c[ch];
    n_below += below_c[ch];
    kept += kept_c[ch];
  }
  if (n_valid == 0) {
    std::fill(out, out + M, scalar_t(0));
    return;
  }
  // position k of the valid probabilities sorted ascending (nan last)
  const int64_t k = std::min(a.min_kept, n_valid - 1);
  scalar_t threshold = cap;
  if (n_below <= k) {
    // fewer than k + 1 values below cap: s[k] >= cap (or nan), found by a
    // two-level radix select: the top kRadixBits of the order keys
    // histogrammed, the bucket holding position k found from the bottom, and
    // only that bucket's values gathered for std::nth_element
    std::vector<int64_t> hist(kBuckets, 0);
    for (int64_t i = 0; i < M; ++i) {
      if (static_cast<int64_t>(target[i]) != ignore_index) {
        ++hist[static_cast<int64_t>(Key::of(prob[i]) >> shift)];
      }
    }
    int64_t below = 0;
    int64_t bucket = 0;
    for (; bucket < kBuckets - 1 && below + hist[bucket] <= k; ++bucket) {
      below += hist[bucket];
    }
    std::vector<scalar_t> in_bucket;
    in_bucket.reserve(static_cast<size_t>(hist[bucket]));
    for (int64_t i = 0; i < M; ++i) {
      if (static_cast<int64_t>(target[i]) != ignore_index &&
          static_cast<int64_t>(Key::of(prob[i]) >> shift) == bucket) {
        in_bucket.push_back(prob[i]);
      }
    }
    const int64_t rank = k - below;  // within the bucket, ascending
    auto nth = in_bucket.begin() + rank;
    std::nth_element(
        in_bucket.begin(), nth, in_bucket.end(), [](scalar_t x, scalar_t y) { return Key::of(x) < Key::of(y); });
    const scalar_t p_k = *nth;
    // max(thresh, p_k), nan propagating
    threshold = std::isnan(p_k) ? p_k : std::max(p_k, cap);
    kept = 0;
    for (int64_t i = 0; i < M; ++i) {
      kept += static_cast<int64_t>(target[i]) != ignore_index && !(prob[i] >= threshold);
    }
  }
  // else s[k] < cap: the threshold is cap, and kept was counted in pass 1
  const scalar_t inv = scalar_t(1) / static_cast<scalar_t>(std::max<int64_t>(kept, 1));
  at::parallel_for(0, M, kGrain, [&](int64_t begin, int64_t end) {
    // branch-free (see pass 1); p < threshold written so that a nan probability counts as kept
    // (GCC turns a select between two values into branches; the bit mask it cannot)
    using Bits = typename OrderKey<scalar_t>::type;
    auto masked = [](scalar_t v, bool keep) {
      Bits b;
      std::memcpy(&b, &v, sizeof(b));
      b &= Bits(0) - static_cast<Bits>(keep);
      std::memcpy(&v, &b, sizeof(b));
      return v;
    };
    if (weight == nullptr) {
      for (int64_t i = begin; i < end; ++i) {
        const bool keep = (static_cast<int64_t>(target[i]) != ignore_index) & !(prob[i] >= threshold);
        out[i] = masked(inv, keep);
      }
    } else {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t t = static_cast<int64_t>(target[i]);
        const bool keep = (t != ignore_index) & !(prob[i] >= threshold);
        out[i] = masked(weight[keep ? t : 0] * inv, keep);
      }
    }
  });
}

at::Tensor ohem_prob_weights_cpu(
    const at::Tensor& probs,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    int64_t ignore_index,
    double thresh,
    int64_t min_kept) {
  const OhemArgs args = check_ohem_args(probs, target, weight, thresh, min_kept);
  TORCH_CHECK(probs.is_cpu(), "ohem_prob_weights: expected probs on the CPU, got ", probs.device());
  const at::Tensor p = probs.contiguous();
  const at::Tensor tgt = target.contiguous();
  const at::Tensor w = weight.has_value() ? weight->contiguous() : at::Tensor();
  at::Tensor out = at::empty(probs.sizes(), probs.options());
  const int64_t M = p.numel();
  if (M == 0) {
    return out;
  }
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "ohem_prob_weights_cpu", [&] {
    dispatch_target_type(tgt.scalar_type(), [&](auto* tag) {
      using target_t = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
      ohem_weights_kernel<scalar_t, target_t>(
          p.const_data_ptr<scalar_t>(),
          tgt.const_data_ptr<target_t>(),
          w.defined() ? w.const_data_ptr<scalar_t>() : nullptr,
          w.defined() ? w.numel() : 0,
          M,
          ignore_index,
          args,
          out.mutable_data_ptr<scalar_t>());
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("ohem_prob_weights", &ohem_prob_weights_cpu);
}

}  // namespace loss
}  // namespace balancedtorch
