// CPU kernel of balancedtorch::seesaw_loss (the math: csrc/loss/seesaw_loss.h).
//
// One contiguous row of C logits per sample, vectorised over the classes,
// rows in parallel. Per row: the max and the sum of exponentials of the
// logits (their log-sum-exp gives every class's log-probability), then the
// shifted logits z' (the mitigation factor depends on (target, class) only
// through log cum_samples, a (C,) vector; the compensation factor on the
// class's own log-probability), then their softmax. The row is read from
// memory once (later passes hit L1); z' and its exponentials live in the
// gradient row itself (float32/float64) or in a per-thread scratch row, so
// no (N, C) or (C, C) temporary is ever made.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/sum.h>
#include <torch/library.h>

#include "cpu/buffer_pool.h"
#include "cpu/vec_math.h"
#include "loss/seesaw_loss.h"

namespace balancedtorch {
namespace loss {
namespace {

template <typename acc_t>
struct Problem {
  int64_t N = 0, C = 0;
  acc_t p = 0, q = 0, log_eps = 0;
  acc_t scale = 1;               // gradient scale of the reduction
  const acc_t* log_n = nullptr;  // [C] log max(cum_samples, 1)
  int64_t ignore_index = -100;
  bool grad = false;
};

// Loss of one row with target t; when P.grad writes the scaled gradient to g.
// e: a row of C scratch values (may alias g).
template <typename acc_t>
acc_t row_loss(const Problem<acc_t>& P, const acc_t* z, int64_t t, acc_t* e, acc_t* g) {
  using Vec = at::vec::Vectorized<acc_t>;
  constexpr int64_t W = Vec::size();
  const int64_t C = P.C;
  auto vmax = [](Vec& a, Vec& b) { return at::vec::maximum(a, b); };
  auto vsum = [](Vec& a, Vec& b) { return a + b; };

  // pass A: max of the logits
  acc_t m = -std::numeric_limits<acc_t>::infinity();
  {
    Vec vm(m);
    int64_t c = 0;
    for (; c + W <= C; c += W) {
      vm = at::vec::maximum(vm, Vec::loadu(z + c));
    }
    m = at::vec::vec_reduce_all<acc_t>(vmax, vm);
    for (; c < C; ++c) {
      m = std::max(m, z[c]);
    }
  }
  if (!std::isfinite(m)) {
    m = std::isnan(m) || m > 0 ? m : acc_t(0);  // nan / +inf propagate as in torch
  }
  // pass B: log-sum-exp of the logits (the detached softmax's normaliser)
  acc_t s = 0;
  {
    const Vec vm(m);
    Vec vs(0);
    int64_t c = 0;
    for (; c + W <= C; c += W) {
      vs = vs + cpu::exp(Vec::loadu(z + c) - vm);
    }
    s = at::vec::vec_reduce_all<acc_t>(vsum, vs);
    for (; c < C; ++c) {
      s += std::exp(z[c] - m);
    }
  }
  // everything from here on is measured from m: y = z - m, log s, z' - m
  const acc_t log_s = std::log(s);
  const acc_t y_t = z[t] - m;
  const acc_t floor_t = seesaw_floor(y_t, log_s, P.log_eps);
  const acc_t log_n_t = P.log_n[t];

  // pass C: e = z' - m (the target's shift is exactly 0), and its max m2
  acc_t m2 = -std::numeric_limits<acc_t>::infinity();
  {
    const Vec vm0(m), vlog_s(log_s), vfloor(floor_t), vlnt(log_n_t), vp(P.p), vq(P.q), zero(0);
    Vec vm(m2);
    int64_t c = 0;
    for (; c + W <= C; c += W) {
      const Vec yc = Vec::loadu(z + c) - vm0;
      const Vec mit = vp * at::vec::minimum(Vec::loadu(P.log_n + c) - vlnt, zero);
      const Vec comp = vq * at::vec::maximum((yc - vlog_s) - vfloor, zero);
      const Vec ys = yc + mit + comp;
      ys.store(e + c);
      vm = at::vec::maximum(vm, ys);
    }
    m2 = at::vec::vec_reduce_all<acc_t>(vmax, vm);
    for (; c < C; ++c) {
      const acc_t yc = z[c] - m;
      e[c] = yc + seesaw_shift(yc, log_s, floor_t, P.log_n[c], log_n_t, P.p, P.q);
      m2 = std::max(m2, e[c]);
    }
    e[t] = y_t;
  }
  if (!std::isfinite(m2)) {
    m2 = std::isnan(m2) || m2 > 0 ? m2 : acc_t(0);
  }
  // pass D: e = exp(z' - m2); s_other sums the classes other than the target,
  // so that 1 - p'_t = s_other / S needs no cancellation (target_terms)
  acc_t s_other = 0;
  {
    const Vec vm(m2);
    Vec vs(0);
    int64_t c = 0;
    for (; c + W <= C; c += W) {
      const Vec ec = cpu::exp(Vec::loadu(e + c) - vm);
      ec.store(e + c);
      if (t >= c && t < c + W) {
        const acc_t saved = e[t];
        e[t] = acc_t(0);
        vs = vs + Vec::loadu(e + c);
        e[t] = saved;
      } else {
        vs = vs + ec;
      }
    }
    s_other = at::vec::vec_reduce_all<acc_t>(vsum, vs);
    for (; c < C; ++c) {
      e[c] = std::exp(e[c] - m2);
      if (c != t) {
        s_other += e[c];
      }
    }
  }
  acc_t lp, pw, u;
  const acc_t S = target_terms(y_t - m2, s_other, acc_t(0), lp, pw, u);
  if (P.grad) {
    const acc_t coef = P.scale / S;
    const Vec vcoef(coef);
    int64_t c = 0;
    for (; c + W <= C; c += W) {
      (Vec::loadu(e + c) * vcoef).store(g + c);
    }
    for (; c < C; ++c) {
      g[c] = e[c] * coef;
    }
    g[t] = -(s_other / S) * P.scale;  // p'_t - 1 without cancellation
  }
  return -lp;
}

template <typename scalar_t, typename acc_t, typename target_t>
void rows_kernel(const Problem<acc_t>& P, const scalar_t* x, const target_t* target, scalar_t* grad, acc_t* losses) {
  constexpr bool direct = std::is_same_v<scalar_t, acc_t>;
  const int64_t C = P.C;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1));
  at::parallel_for(0, P.N, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> zbuf(direct ? 0 : C), ebuf(direct && P.grad ? 0 : C), gbuf(direct || !P.grad ? 0 : C);
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t* xr = x + i * C;
      scalar_t* gr = P.grad ? grad + i * C : nullptr;
      const int64_t t = static_cast<int64_t>(target[i]);
      if (t == P.ignore_index) {
        losses[i] = acc_t(0);
        if (gr) {
          std::fill(gr, gr + C, scalar_t(0));
        }
        continue;
      }
      if constexpr (direct) {
        losses[i] = row_loss(P, xr, t, gr ? gr : ebuf.data(), gr);
      } else {
        at::vec::convert(xr, zbuf.data(), C);
        losses[i] = row_loss(P, zbuf.data(), t, ebuf.data(), gbuf.data());
        if (gr) {
          at::vec::convert(gbuf.data(), gr, C);
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> seesaw_loss_cpu(
    const at::Tensor& input,
    const at::Tensor& target,
    const at::Tensor& cum_samples,
    double p,
    double q,
    double eps,
    int64_t ignore_index,
    int64_t reduction,
    bool compute_grad) {
  check_seesaw_loss_args(input, target, cum_samples, p, q, eps, reduction);
  TORCH_CHECK(input.device().is_cpu(), "seesaw_loss: expected input on the CPU, got ", input.device());
  const int64_t N = input.size(0), C = input.size(1);
  const at::Tensor x = input.contiguous();
  const at::Tensor tgt = target.contiguous();

  // cum_samples: finite and >= 0, read as max(n, 1) (MMDetection's clamp)
  const at::Tensor counts = cum_samples.to(at::kDouble).contiguous();
  {
    const double* n = counts.const_data_ptr<double>();
    for (int64_t c = 0; c < C; ++c) {
      TORCH_CHECK_VALUE(
          std::isfinite(n[c]) && n[c] >= 0.0,
          "seesaw_loss: cum_samples must be finite and >= 0, got cum_samples[",
          c,
          "] = ",
          n[c]);
    }
  }
  const at::Tensor log_n64 = counts.clamp_min(1.0).log();

  // targets in [0, C) or ignore_index; the mean's denominator counts the others
  int64_t valid = 0;
  dispatch_seesaw_target(tgt.scalar_type(), [&](auto* tag) {
    using target_t = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    const target_t* t = tgt.const_data_ptr<target_t>();
    for (int64_t i = 0; i < N; ++i) {
      const int64_t v = static_cast<int64_t>(t[i]);
      if (v == ignore_index) {
        continue;
      }
      TORCH_CHECK_VALUE(
          v >= 0 && v < C,
          "seesaw_loss: target must hold class indices in [0, C=",
          C,
          ") or ignore_index=",
          ignore_index,
          ", got target ",
          v,
          " at index ",
          i);
      ++valid;
    }
  });
  const double denominator = valid == 0 ? std::numeric_limits<double>::quiet_NaN() : static_cast<double>(valid);

  const at::ScalarType acc_type = input.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  // a large gradient comes from the buffer pool: warm pages, no page faults per step (cpu/buffer_pool.h)
  at::Tensor grad = compute_grad ? cpu::pooled_empty(x.sizes(), x.options()) : at::empty({0}, x.options());
  at::Tensor losses = at::empty({N}, x.options().dtype(acc_type));
  if (N > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "seesaw_loss_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const at::Tensor log_n = log_n64.to(acc_type);
      Problem<acc_t> P;
      P.N = N;
      P.C = C;
      P.p = static_cast<acc_t>(p);
      P.q = static_cast<acc_t>(q);
      P.log_eps = static_cast<acc_t>(std::log(eps));
      P.scale = reduction == kReductionMean ? static_cast<acc_t>(1.0 / denominator) : acc_t(1);
      P.log_n = log_n.const_data_ptr<acc_t>();
      P.ignore_index = ignore_index;
      P.grad = compute_grad;
      dispatch_seesaw_target(tgt.scalar_type(), [&](auto* tag) {
        using target_t = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
        rows_kernel<scalar_t, acc_t>(
            P,
            x.const_data_ptr<scalar_t>(),
            tgt.const_data_ptr<target_t>(),
            compute_grad ? grad.mutable_data_ptr<scalar_t>() : nullptr,
            losses.mutable_data_ptr<acc_t>());
      });
    });
  }
  const at::Tensor den = at::scalar_tensor(denominator, losses.options());
  return {reduce_seesaw_losses(losses, reduction, den, input.scalar_type()), grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("seesaw_loss", &seesaw_loss_cpu);
}

}  // namespace loss
}  // namespace balancedtorch
