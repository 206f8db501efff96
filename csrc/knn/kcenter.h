// kcenter_update: one step of the greedy farthest-first traversal (k-center),
// fused: the squared distances of every row of x to a new centre, the running
// minimum with the old minimum distances, and the argmax of the result.
// Shared by the CPU and CUDA kernels: the argument checks (host), the order
// of the float64 sum and the argmax's comparison (host and device).
//
// d_i = sum_j (x_ij - c_j)^2 in float64 (x and c converted exactly), in one
// fixed order on every backend and build: kKCenterLanes partial sums, lane l
// adding the squares of the columns j = l (mod kKCenterLanes) in increasing
// j (a missing column of the last group adds 0, which changes nothing), then
// (s0 + s1) + (s2 + s3). Every product and sum rounds on its own (no fused
// multiply-add), so the Python reference in tests/ops/test_kcenter_op.py
// reproduces d bit for bit. new_min = torch.minimum(old, d) (NaN propagates);
// the index is that of torch.argmax(new_min): the largest value, NaN above
// everything, ties to the lowest index; -1 when x has no rows.
#pragma once

#include <cstdint>
#include <limits>

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>
#include <c10/util/Exception.h>

#include "device_check.h"

namespace balancedtorch {
namespace knn {

constexpr int kKCenterLanes = 4;
// The "no row yet" index of the argmax (any row beats it).
constexpr int64_t kKCenterNone = std::numeric_limits<int64_t>::max();

// Whether (v, i) comes before (best, bi) in the argmax's order: NaN first,
// then larger values, then the lower index. A total order, so per-thread or
// per-block winners merge into the same answer in any order.
C10_HOST_DEVICE inline bool kcenter_better(double v, int64_t i, double best, int64_t bi) {
  const bool v_nan = v != v;
  const bool b_nan = best != best;
  if (v_nan || b_nan) {
    return v_nan && (!b_nan || i < bi);
  }
  return v > best || (v == best && i < bi);
}

// torch.minimum's value: NaN when either is NaN.
C10_HOST_DEVICE inline double kcenter_min(double old, double d) {
  if (old != old || d != d) {
    return old != old ? old : d;
  }
  return d < old ? d : old;
}

inline void check_kcenter_args(const at::Tensor& x, const at::Tensor& center, const at::Tensor& min_dist) {
  TORCH_CHECK_TYPE(
      x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
      "kcenter_update: x must be float32 or float64, got ",
      x.scalar_type());
  TORCH_CHECK_VALUE(x.dim() == 2, "kcenter_update: x must have shape (N, D), got ", x.sizes());
  TORCH_CHECK_TYPE(
      center.scalar_type() == at::kFloat || center.scalar_type() == at::kDouble,
      "kcenter_update: center must be float32 or float64, got ",
      center.scalar_type());
  TORCH_CHECK_VALUE(
      center.dim() == 1 && center.size(0) == x.size(1),
      "kcenter_update: center must have shape (D,) with D = ",
      x.size(1),
      ", got ",
      center.sizes());
  TORCH_CHECK_TYPE(
      min_dist.scalar_type() == at::kDouble, "kcenter_update: min_dist must be float64, got ", min_dist.scalar_type());
  TORCH_CHECK_VALUE(
      min_dist.dim() == 1 && min_dist.size(0) == x.size(0),
      "kcenter_update: min_dist must have shape (N,) with N = ",
      x.size(0),
      ", got ",
      min_dist.sizes());
  check_same_device("kcenter_update", "center", center, "x", x);
  check_same_device("kcenter_update", "min_dist", min_dist, "x", x);
}

}  // namespace knn
}  // namespace balancedtorch
