// CPU kernels of the weighted sampling ops behind the samplers:
//   alias_table / alias_sample   sampling with replacement in O(1) per draw
//   sample_without_replacement   Efraimidis-Spirakis keys + partial selection
// Random numbers come in as tensors drawn from a torch.Generator in Python,
// so the kernels are deterministic.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/topk.h>
#include <torch/library.h>

#include "sampling/weighted_sampling.h"

namespace balancedtorch {
namespace sampling {
namespace {

// Vose's alias method: O(N). prob[i] is the chance of keeping i when cell i is
// picked, alias[i] the index taken otherwise.
std::tuple<at::Tensor, at::Tensor> alias_table_cpu(const at::Tensor& weights) {
  const double total = check_sampling_weights(weights, "alias_table");
  const at::Tensor w = weights.to(at::kDouble).contiguous();
  const int64_t n = w.numel();
  at::Tensor prob = at::empty({n}, w.options());
  at::Tensor alias = at::empty({n}, w.options().dtype(at::kLong));
  const double* wp = w.const_data_ptr<double>();
  double* pp = prob.mutable_data_ptr<double>();
  int64_t* ap = alias.mutable_data_ptr<int64_t>();
  std::vector<int64_t> small, large;
  small.reserve(n);
  large.reserve(n);
  const double scale = static_cast<double>(n) / total;
  for (int64_t i = 0; i < n; ++i) {
    pp[i] = wp[i] * scale;
    ap[i] = i;
    (pp[i] < 1.0 ? small : large).push_back(i);
  }
  while (!small.empty() && !large.empty()) {
    const int64_t s = small.back();
    small.pop_back();
    const int64_t l = large.back();
    ap[s] = l;
    pp[l] -= 1.0 - pp[s];
    if (pp[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // Leftovers are 1 up to rounding; a zero-weight cell must still never be kept.
  for (int64_t i : large) {
    pp[i] = 1.0;
  }
  int64_t positive = -1;
  for (int64_t i : small) {
    if (wp[i] > 0.0) {
      pp[i] = 1.0;
      continue;
    }
    pp[i] = 0.0;
    if (ap[i] == i) {  // only through rounding: send the cell to a positive index
      if (positive < 0) {
        positive = std::find_if(wp, wp + n, [](double v) { return v > 0.0; }) - wp;
      }
      ap[i] = positive;
    }
  }
  return {prob, alias};
}

at::Tensor alias_sample_cpu(const at::Tensor& prob, const at::Tensor& alias, const at::Tensor& uniforms) {
  TORCH_CHECK_VALUE(prob.dim() == 1 && alias.sizes() == prob.sizes(), "alias_sample: prob and alias must be 1-D of equal length");
  TORCH_CHECK_TYPE(prob.scalar_type() == at::kDouble && alias.scalar_type() == at::kLong, "alias_sample: expected float64 prob and int64 alias");
  TORCH_CHECK_VALUE(
      uniforms.dim() == 2 && uniforms.size(1) == 2 && uniforms.scalar_type() == at::kDouble,
      "alias_sample: uniforms must be a float64 tensor of shape (k, 2), got ", uniforms.sizes(), " ", uniforms.scalar_type());
  const int64_t n = prob.numel(), k = uniforms.size(0);
  TORCH_CHECK_VALUE(n > 0 || k == 0, "alias_sample: cannot draw from an empty table");
  const at::Tensor p = prob.contiguous(), a = alias.contiguous(), u = uniforms.contiguous();
  at::Tensor out = at::empty({k}, a.options());
  const double* pp = p.const_data_ptr<double>();
  const int64_t* ap = a.const_data_ptr<int64_t>();
  const double* up = u.const_data_ptr<double>();
  int64_t* op = out.mutable_data_ptr<int64_t>();
  at::parallel_for(0, k, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const int64_t cell = std::min<int64_t>(static_cast<int64_t>(up[2 * j] * static_cast<double>(n)), n - 1);
      op[j] = up[2 * j + 1] < pp[cell] ? cell : ap[cell];
    }
  });
  return out;
}

// k indices without replacement, with P(order) of successive weighted draws:
// key_i = log(u_i) / w_i, the k largest keys in decreasing order
// (Efraimidis & Spirakis 2006). O(N) memory.
at::Tensor sample_without_replacement_cpu(const at::Tensor& weights, const at::Tensor& uniforms, int64_t k) {
  check_sampling_weights(weights, "sample_without_replacement");
  const at::Tensor w = weights.to(at::kDouble).contiguous();
  const int64_t n = w.numel();
  TORCH_CHECK_VALUE(
      uniforms.dim() == 1 && uniforms.numel() == n && uniforms.scalar_type() == at::kDouble,
      "sample_without_replacement: uniforms must be float64 of shape (", n, ",), got ", uniforms.sizes());
  TORCH_CHECK_VALUE(k >= 0, "sample_without_replacement: num_samples must be >= 0, got ", k);
  const double* wp = w.const_data_ptr<double>();
  const at::Tensor u = uniforms.contiguous();
  const double* up = u.const_data_ptr<double>();
  int64_t positive = 0;
  for (int64_t i = 0; i < n; ++i) {
    positive += wp[i] > 0.0;
  }
  TORCH_CHECK_VALUE(
      k <= positive,
      "sample_without_replacement: num_samples=", k, " exceeds the ", positive,
      " indices with positive weight (zero-weight indices are never drawn)");
  at::Tensor keys = at::empty({n}, w.options());
  double* kp = keys.mutable_data_ptr<double>();
  at::parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      // u in (0, 1]: log(u) <= 0; larger weight -> key closer to 0
      kp[i] = wp[i] > 0.0 ? std::log(std::max(up[i], std::numeric_limits<double>::min())) / wp[i]
                          : -std::numeric_limits<double>::infinity();
    }
  });
  // ATen's topk: a parallel partial selection, sorted, with no size limit
  return std::get<1>(at::topk(keys, k, /*dim=*/0, /*largest=*/true, /*sorted=*/true));
}

} // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("alias_table", &alias_table_cpu);
  m.impl("alias_sample", &alias_sample_cpu);
  m.impl("sample_without_replacement", &sample_without_replacement_cpu);
}

} // namespace sampling
} // namespace balancedtorch
