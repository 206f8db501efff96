// CPU kernel of balancedtorch::ohem_prob_weights (see csrc/loss/ohem_weights.h).
//
// The order statistic is a two-level radix select: one pass counts the valid
// pixels and histograms the top kRadixBits of their order keys, the bucket
// holding position k is found from the top, and only that bucket's values
// are gathered for std::nth_element. Pixels are visited three times in all,
// with no sort and no copy of the probabilities.
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include <ATen/Dispatch.h>
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
  std::vector<int64_t> hist(kBuckets, 0);
  int64_t n_valid = 0;
  for (int64_t i = 0; i < M; ++i) {
    const int64_t t = static_cast<int64_t>(target[i]);
    if (t == ignore_index) {
      continue;
    }
    if (weight != nullptr && (t < 0 || t >= num_classes)) {
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
    ++n_valid;
    ++hist[static_cast<int64_t>(Key::of(prob[i]) >> shift)];
  }
  if (n_valid == 0) {
    std::fill(out, out + M, scalar_t(0));
    return;
  }
  // position k of the valid probabilities sorted ascending (nan last): bucket from the bottom
  const int64_t k = std::min(a.min_kept, n_valid - 1);
  int64_t below = 0;
  int64_t bucket = 0;
  for (; bucket < kBuckets - 1 && below + hist[bucket] <= k; ++bucket) {
    below += hist[bucket];
  }
  std::vector<scalar_t> in_bucket;
  in_bucket.reserve(static_cast<size_t>(hist[bucket]));
  for (int64_t i = 0; i < M; ++i) {
    if (static_cast<int64_t>(target[i]) != ignore_index && static_cast<int64_t>(Key::of(prob[i]) >> shift) == bucket) {
      in_bucket.push_back(prob[i]);
    }
  }
  const int64_t rank = k - below;  // within the bucket, ascending
  auto nth = in_bucket.begin() + rank;
  std::nth_element(
      in_bucket.begin(), nth, in_bucket.end(), [](scalar_t x, scalar_t y) { return Key::of(x) < Key::of(y); });
  const scalar_t p_k = *nth;
  // max(thresh, p_k) in the probabilities' dtype, nan propagating
  const scalar_t cap = static_cast<scalar_t>(a.thresh);
  const scalar_t threshold = std::isnan(p_k) ? p_k : std::max(p_k, cap);
  int64_t kept = 0;
  for (int64_t i = 0; i < M; ++i) {
    const int64_t t = static_cast<int64_t>(target[i]);
    // p < threshold, written so that a nan probability counts as kept
    const bool keep = t != ignore_index && !(prob[i] >= threshold);
    kept += keep;
    out[i] = keep ? (weight != nullptr ? weight[t] : scalar_t(1)) : scalar_t(0);
  }
  const scalar_t inv = scalar_t(1) / static_cast<scalar_t>(std::max<int64_t>(kept, 1));
  for (int64_t i = 0; i < M; ++i) {
    out[i] *= inv;
  }
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
