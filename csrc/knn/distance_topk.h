// CPU float32 fused distance + top-candidates kernel used by balancedtorch::knn.
#pragma once

#include <cstdint>
#include <tuple>

#include <ATen/ATen.h>

namespace balancedtorch {
namespace knn {

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
    const at::Tensor& xq,
    const at::Tensor& xr,
    const at::Tensor& centre,
    int64_t k,
    bool self,
    int64_t max_bytes);

// Exact k nearest of the query rows `rows` (int64 indices into xq) among all
// rows of xr by float64 differences, ties to the lower index (self: xr is xq
// and a row is not its own neighbour), written into those rows of out_d
// (float64) and out_i. The search of rows whose candidates are not proven.
void exact_rows_cpu(const at::Tensor& xq, const at::Tensor& xr, const at::Tensor& rows, int64_t k, bool self, at::Tensor& out_d, at::Tensor& out_i);

// Whether the bfloat16 search runs here: compiled in, the CPU has
// AVX512-BF16, and BALANCEDTORCH_KNN_BF16 is not "0".
bool bf16_search_enabled();

}  // namespace knn
}  // namespace balancedtorch
