// CPU float32 fused distance + top-candidates kernel used by balancedtorch::knn.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace balancedtorch {
namespace knn {

// For every row of xq (float32, [N, D]) the indices of its `cand` nearest rows
// of xr ([M, D]) by float32 squared distance, ascending; -1 pads rows with
// fewer candidates. self: xr is xq and a row is not its own candidate; the
// pair work is then halved when the per-thread lists fit in max_bytes.
at::Tensor candidates_cpu_f32(const at::Tensor& xq, const at::Tensor& xr, int64_t cand, bool self, int64_t max_bytes);

}  // namespace knn
}  // namespace balancedtorch
