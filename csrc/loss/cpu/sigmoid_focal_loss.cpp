// CPU kernel of balancedtorch::sigmoid_focal_loss: one vectorised pass over
// the logits and targets producing the loss and, when wanted, the gradient
// (already scaled for the reduction). The math mirrors
// loss::sigmoid_focal_element in csrc/loss/softmax_loss.h, which handles
// the scalar tails.
#include <algorithm>
#include <optional>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include "cpu/buffer_pool.h"
#include "cpu/vec_math.h"
#include "loss/sigmoid_focal_loss_args.h"
#include "loss/softmax_loss.h"

namespace balancedtorch {
namespace loss {
namespace {

// Elements per block: the unit of parallel work and of the (thread-count
// independent, hence deterministic) partial sums.
constexpr int64_t kBlock = 4096;

template <typename acc_t>
struct SigmoidFocalParams {
  acc_t alpha = 0.25;
  acc_t gamma = 2;
  acc_t scale = 1;  // gradient scale of the reduction
  bool grad = false;
};

// n elements of contiguous x, y (and per-element pos_weight pw, or null).
// Writes scaled gradients to g (when P.grad) and losses to l (when non-null);
// returns the sum of the losses.
template <typename acc_t>
acc_t sigmoid_focal_span(
    const SigmoidFocalParams<acc_t>& P,
    const acc_t* x,
    const acc_t* y,
    const acc_t* pw,
    int64_t n,
    acc_t* g,
    acc_t* l) {
  using Vec = at::vec::Vectorized<acc_t>;
  constexpr int64_t W = Vec::size();
  const Vec zero(0), one(1), two(2), vgamma(P.gamma), vscale(P.scale);
  const bool use_alpha = P.alpha >= acc_t(0);
  const Vec valpha(P.alpha), vone_minus_alpha(acc_t(1) - P.alpha);
  Vec vsum(0);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const Vec xv = Vec::loadu(x + i);
    const Vec yv = Vec::loadu(y + i);
    const Vec e = cpu::exp(xv.abs().neg());
    const Vec sp = cpu::log1p_unit(e);
    const Vec log_p = at::vec::minimum(xv, zero) - sp;
    const Vec log_1mp = at::vec::minimum(xv.neg(), zero) - sp;
    const Vec inv = (one + e).reciprocal();
    const Vec nonneg = xv >= zero;
    const Vec p = Vec::blendv(e * inv, inv, nonneg);
    const Vec omp = Vec::blendv(inv, e * inv, nonneg);
    const Vec a_pos = pw ? Vec::loadu(pw + i) * yv : yv;
    const Vec a_neg = one - yv;
    const Vec ce = (a_pos * log_p + a_neg * log_1mp).neg();
    const Vec dce = a_neg * p - a_pos * omp;
    const Vec alpha_t = use_alpha ? valpha * yv + vone_minus_alpha * a_neg : one;
    Vec loss, grad;
    if (P.gamma == acc_t(0)) {
      loss = alpha_t * ce;
      grad = alpha_t * dce;
    } else {
      const Vec m = p * a_neg + omp * yv;
      const Vec mod = P.gamma == acc_t(2) ? m * m : (P.gamma == acc_t(1) ? m : m.pow(vgamma));
      const Vec dm = p * omp * (one - two * yv);
      // gamma * m^gamma * dm / m; zero where m == 0 (the limit for gamma > 0)
      const Vec dmod = Vec::blendv(vgamma * mod * (dm / m), zero, m == zero);
      loss = alpha_t * ce * mod;
      grad = alpha_t * (dce * mod + ce * dmod);
    }
    if (P.grad) {
      (grad * vscale).store(g + i);
    }
    if (l) {
      loss.store(l + i);
    }
    vsum = vsum + loss;
  }
  acc_t sum = at::vec::vec_reduce_all<acc_t>([](Vec& a, Vec& b) { return a + b; }, vsum);
  for (; i < n; ++i) {
    acc_t gi;
    const acc_t li = sigmoid_focal_element(x[i], y[i], P.alpha, P.gamma, pw ? pw[i] : acc_t(1), gi);
    if (P.grad) {
      g[i] = gi * P.scale;
    }
    if (l) {
      l[i] = li;
    }
    sum += li;
  }
  return sum;
}

// Reads len values as acc_t: in place when the types agree, else through buf.
template <typename acc_t, typename scalar_t>
const acc_t* as_acc(const scalar_t* src, int64_t len, std::vector<acc_t>& buf) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    return src;
  } else {
    at::vec::convert(src, buf.data(), len);
    return buf.data();
  }
}

// Where to write len acc_t results destined for dst (dst itself when the types agree).
template <typename acc_t, typename scalar_t>
acc_t* acc_out(scalar_t* dst, std::vector<acc_t>& buf) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    return dst;
  } else {
    return dst ? buf.data() : nullptr;
  }
}

template <typename acc_t, typename scalar_t>
void flush_acc(const std::vector<acc_t>& buf, scalar_t* dst, int64_t len) {
  if constexpr (!std::is_same_v<scalar_t, acc_t>) {
    if (dst) {
      at::vec::convert(buf.data(), dst, len);
    }
  }
}

std::tuple<at::Tensor, at::Tensor> sigmoid_focal_loss_cpu(
    const at::Tensor& input,
    const at::Tensor& target,
    const std::optional<at::Tensor>& pos_weight,
    double alpha,
    double gamma,
    int64_t reduction,
    bool compute_grad) {
  check_sigmoid_focal_loss_args(input, target, pos_weight, alpha, gamma, reduction);
  TORCH_CHECK(input.device().is_cpu(), "sigmoid_focal_loss: expected input on the CPU, got ", input.device());
  const at::MemoryFormat out_format = sigmoid_focal_output_format(input);
  const at::Tensor x = input.contiguous(out_format);
  const at::Tensor y = target.contiguous(out_format);
  const int64_t n = x.numel();
  const int64_t C = sigmoid_focal_classes(x);
  const int64_t inner = sigmoid_focal_pos_weight_inner(x, out_format);
  at::Tensor grad = !compute_grad ? at::empty({0}, x.options())
                    : out_format == at::MemoryFormat::Contiguous
                        ? cpu::pooled_empty(x.sizes(), x.options())  // warm pages across steps
                        : at::empty(x.sizes(), x.options().memory_format(out_format));
  const at::ScalarType acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor losses = reduction == kReductionNone
                          ? at::empty(x.sizes(), x.options().dtype(acc_type).memory_format(out_format))
                          : at::Tensor();
  double total = 0;

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "sigmoid_focal_loss_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr bool direct = std::is_same_v<scalar_t, acc_t>;
    SigmoidFocalParams<acc_t> P;
    P.alpha = static_cast<acc_t>(alpha);
    P.gamma = static_cast<acc_t>(gamma);
    P.scale = reduction == kReductionMean ? static_cast<acc_t>(1.0 / static_cast<double>(n)) : acc_t(1);
    P.grad = compute_grad;
    const at::Tensor pw_acc = pos_weight.has_value() ? pos_weight->to(acc_type).contiguous() : at::Tensor();
    const acc_t* pw = pw_acc.defined() ? pw_acc.const_data_ptr<acc_t>() : nullptr;
    // With the class innermost in memory (inner == 1: (N, C), channels-last),
    // blocks never straddle a row of C when rows are long; short rows are
    // grouped, and pos_weight repeated to the group's length. Otherwise
    // (contiguous (N, C, d1, ...)) each class is a run of `inner` elements and
    // every block expands its own slice of pos_weight (see below).
    const bool rows = pw && inner == 1;
    const int64_t block = rows && C < kBlock ? std::max<int64_t>(1, kBlock / C) * C : kBlock;
    const int64_t blocks_per_row = rows && C >= kBlock ? (C + kBlock - 1) / kBlock : 1;
    const int64_t num_blocks = rows && C >= kBlock ? (n / C) * blocks_per_row : (n + block - 1) / block;
    std::vector<acc_t> pw_tile;
    if (rows && C < kBlock) {
      pw_tile.resize(block);
      for (int64_t k = 0; k < block; ++k) {
        pw_tile[k] = pw[k % C];
      }
    }
    std::vector<double> partial(num_blocks, 0.0);
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* yp = y.const_data_ptr<scalar_t>();
    scalar_t* gp = compute_grad ? grad.mutable_data_ptr<scalar_t>() : nullptr;
    acc_t* lp = losses.defined() ? losses.mutable_data_ptr<acc_t>() : nullptr;

    at::parallel_for(0, num_blocks, /*grain_size=*/1, [&](int64_t b0, int64_t b1) {
      std::vector<acc_t> xs(direct ? 0 : kBlock), ys(direct ? 0 : kBlock), gs(direct ? 0 : kBlock);
      std::vector<acc_t> pws(pw && !rows ? kBlock : 0);
      for (int64_t b = b0; b < b1; ++b) {
        int64_t start, len;
        const acc_t* pwb = nullptr;
        if (rows && C >= kBlock) {
          const int64_t row = b / blocks_per_row, off = (b % blocks_per_row) * kBlock;
          start = row * C + off;
          len = std::min(kBlock, C - off);
          pwb = pw + off;
        } else {
          start = b * block;
          len = std::min(block, n - start);
          pwb = rows ? pw_tile.data() : nullptr;
        }
        if (pw && !rows) {
          // runs of `inner` equal weights: element i has pos_weight[(i / inner) % C]
          int64_t k = 0;
          while (k < len) {
            const int64_t i = start + k;
            const int64_t run = std::min(len - k, inner - i % inner);
            std::fill_n(pws.data() + k, run, pw[(i / inner) % C]);
            k += run;
          }
          pwb = pws.data();
        }
        scalar_t* gdst = gp ? gp + start : nullptr;
        const acc_t* xb = as_acc(xp + start, len, xs);
        const acc_t* yb = as_acc(yp + start, len, ys);
        acc_t* gb = acc_out(gdst, gs);
        partial[b] = static_cast<double>(sigmoid_focal_span(P, xb, yb, pwb, len, gb, lp ? lp + start : nullptr));
        flush_acc(gs, gdst, len);
      }
    });
    for (double v : partial) {
      total += v;
    }
  });

  at::Tensor loss;
  if (reduction == kReductionNone) {
    loss = losses.to(x.scalar_type()).contiguous(out_format);
  } else {
    const double value = reduction == kReductionMean ? total / static_cast<double>(n) : total;
    loss = at::scalar_tensor(value, x.options());
  }
  return {loss, compute_grad ? grad.contiguous(out_format) : grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("sigmoid_focal_loss", &sigmoid_focal_loss_cpu);
}

}  // namespace loss
}  // namespace balancedtorch
