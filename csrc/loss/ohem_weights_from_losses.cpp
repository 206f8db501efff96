// balancedtorch::ohem_weights (per-pixel losses in): ohem_prob_weights on
// p = exp(-losses), for every backend at once (CompositeImplicitAutograd: it
// decomposes into exp, neg and ohem_prob_weights, whose kernels and fake do
// the rest). See the schema's comment in csrc/balancedtorch.cpp.
#include <optional>

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/neg.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

namespace balancedtorch {
namespace loss {
namespace {

at::Tensor ohem_weights_from_losses(
    const at::Tensor& losses,
    const at::Tensor& target,
    const std::optional<at::Tensor>& weight,
    int64_t ignore_index,
    double thresh,
    int64_t min_kept) {
  TORCH_CHECK_TYPE(
      losses.scalar_type() == at::kFloat || losses.scalar_type() == at::kDouble,
      "ohem_weights: losses must be float32 or float64, got ",
      losses.scalar_type());
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("balancedtorch::ohem_prob_weights", "")
          .typed<at::Tensor(
              const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, int64_t, double, int64_t)>();
  return op.call(at::exp(at::neg(losses)), target, weight, ignore_index, thresh, min_kept);
}

}  // namespace
}  // namespace loss
}  // namespace balancedtorch

TORCH_LIBRARY_IMPL(balancedtorch, CompositeImplicitAutograd, m) {
  m.impl("ohem_weights", &balancedtorch::loss::ohem_weights_from_losses);
}
