// CUDA kernel of balancedtorch::ohem_prob_weights (see csrc/loss/ohem_weights.h).
//
// Built from ATen's device operators, with no host synchronisation: the
// position k = min(m, n_valid - 1) (m = max(1, min_kept)) depends on n_valid,
// which stays on the device. Whenever n_valid > m, the largest of the m + 1
// smallest probabilities over all pixels with the ignored ones at +inf is the
// k-th smallest valid one; otherwise it is the largest valid one. Both are
// computed (the first by topk's multi-block radix select of m + 1 values,
// unsorted; topk, like sort, orders nan last) and torch.where picks one.
#include <cmath>
#include <limits>
#include <optional>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "loss/ohem_weights.h"

namespace balancedtorch {
namespace loss {
namespace {

at::Tensor ohem_prob_weights_cuda(
    const at::Tensor& probs,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    int64_t ignore_index,
    double thresh,
    int64_t min_kept) {
  const OhemArgs args = check_ohem_args(probs, target, weight, thresh, min_kept);
  TORCH_CHECK(probs.is_cuda(), "ohem_prob_weights: expected probs on a CUDA device, got ", probs.device());
  const c10::cuda::CUDAGuard device_guard(probs.device());
  const int64_t M = probs.numel();
  if (M == 0) {
    return at::empty(probs.sizes(), probs.options());
  }
  const at::Tensor p = probs.reshape({M});
  // widened so that any ignore_index compares exactly, whatever the target dtype
  const at::Tensor tgt = target.reshape({M}).to(at::kLong);
  const at::Tensor valid = tgt.ne(ignore_index);
  const double inf = std::numeric_limits<double>::infinity();
  // nan when a valid probability is nan (amax propagates it, as sorting puts
  // nan last): every valid pixel is kept then
  const at::Tensor largest_valid = at::where(valid, p, -inf).amax();
  at::Tensor order_stat = largest_valid;
  if (args.min_kept < M) {
    const at::Tensor keys = at::where(valid, p, inf);
    const at::Tensor mth =
        std::get<0>(at::topk(keys, args.min_kept + 1, /*dim=*/0, /*largest=*/false, /*sorted=*/false)).amax();
    order_stat = at::where(valid.sum().gt(args.min_kept), mth, largest_valid);
  }
  // max(thresh, s[k]) in the probabilities' dtype (nan propagating); p < threshold with nan kept
  const at::Tensor threshold = order_stat.clamp_min(args.thresh);
  const at::Tensor keep = valid.logical_and(p.ge(threshold).logical_not());
  at::Tensor out = keep.to(probs.scalar_type());
  if (weight.has_value()) {
    // targets were validated by softmax_loss in the Python wrapper; clamped here
    // so that a direct call cannot read outside weight (no host check on the device)
    const at::Tensor cls = tgt.clamp_min(0).clamp_max(weight->numel() - 1);
    out.mul_(weight->index_select(/*dim=*/0, cls));
  }
  out.div_(keep.sum().clamp_min(1).to(probs.scalar_type()));
  return out.view(probs.sizes());
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CUDA, m) {
  m.impl("ohem_prob_weights", &ohem_prob_weights_cuda);
}

}  // namespace loss
}  // namespace balancedtorch
