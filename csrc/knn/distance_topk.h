// CPU float32 fused distance + top-candidates kernel used by balancedtorch::knn.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>

#include <ATen/ATen.h>

namespace balancedtorch {
namespace knn {

// The per-row error bound every approximate search carries: for centred
// points a (the query) and b, |approximate - true squared distance| <=
// c1 |a| max|b| + c2 (|a|^2 + max|b|^2) + slack, where
//   c2: float32 (u = 2^-24) dot products, norms, their sums, the final FMA
//       and the rounding of the centred points (centring in float32, or
//       float64 input rounded to float32): (D + 16) 2^-23;
//   c1: the products' inputs rounded to u_in (bfloat16 pairs: 2^-8; GEMMs
//       that may use TF32 or bfloat16: 2^-7): 2 (2 u_in + u_in^2);
//   slack: denormals flushed (vdpbf16ps, a flush-to-zero FPU), values being
//       scaled into [2^-40, 2^40]: D 2^-80.
// 1% margin on c1, c2. A row keeps every point within window() = twice the
// bound (2^-20 more for the window's own rounding) of its k-th distance.
struct WindowBound {
  double c1, c2, slack;
  static constexpr double kScale = 2.0 * (1.0 + 0x1p-20);
  double window(double a2, double bmax2) const {
    return kScale * (c1 * std::sqrt(a2) * std::sqrt(bmax2) + c2 * (a2 + bmax2) + slack);
  }
};

inline WindowBound window_bound(int64_t D, double u_in) {
  return {
      2.0 * (2.0 * u_in + u_in * u_in) * 1.01,
      static_cast<double>(D + 16) * 0x1p-23 * 1.01,
      static_cast<double>(D) * 0x1p-80};
}

// Candidates kept per row by the float32 searches (fused kernel and GEMM
// tiles): their windows are narrow (a few ulps of the norms), so they hold
// little beyond the exact k nearest unless points tie.
inline int64_t f32_list_size(int64_t k, int64_t M, bool self) {
  return std::min<int64_t>(k + std::clamp<int64_t>(2 * k, 8, 32), M - (self ? 1 : 0));
}

// For every row of xq (float32, [N, D]) candidate indices into xr ([M, D]),
// -1 padded: a proven superset of its exact k nearest (ties at the k-th
// distance included) for the caller's float64 re-rank. Each search (float32,
// or bfloat16 pairs on CPUs with AVX512-BF16) bounds its distance error per
// row and keeps every point within twice that bound of the row's k-th
// approximate distance. Returns (candidates [N, C], rows): `rows` (int64) are
// the rows whose window held more points than a list keeps; their candidates
// are not proven and the caller must search them exactly.
// self: xr is xq and a row is not its own candidate; the pair work is then
// halved when the per-thread lists fit in max_bytes. centre ([D]): the point
// the bfloat16 search subtracts from both sides (the references' mean, or
// zeros for data already centred), which keeps its error bound small.
std::tuple<at::Tensor, at::Tensor> candidates_cpu_f32(
    const at::Tensor& xq, const at::Tensor& xr, const at::Tensor& centre, int64_t k, bool self, int64_t max_bytes);

// Exact k nearest of the query rows `rows` (int64 indices into xq) among all
// rows of xr by float64 differences, ties to the lower index (self: xr is xq
// and a row is not its own neighbour), written into those rows of out_d
// (float64) and out_i. The search of rows whose candidates are not proven.
void exact_rows_cpu(
    const at::Tensor& xq,
    const at::Tensor& xr,
    const at::Tensor& rows,
    int64_t k,
    bool self,
    at::Tensor& out_d,
    at::Tensor& out_i);

// Whether the bfloat16 search runs here: compiled in, the CPU has
// AVX512-BF16, and BALANCEDTORCH_KNN_BF16 is not "0".
bool bf16_search_enabled();

}  // namespace knn
}  // namespace balancedtorch
