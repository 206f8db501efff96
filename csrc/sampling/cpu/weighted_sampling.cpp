// CPU kernels of the weighted sampling ops behind the samplers:
//   alias_table / alias_sample   sampling with replacement in O(1) per draw
//   sample_without_replacement   Efraimidis-Spirakis keys + partial selection
// Random numbers come in as tensors drawn from a torch.Generator in Python,
// so the kernels are deterministic.
#include <algorithm>
#include <atomic>
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

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// splitmix64's output function (Steele, Lea & Flood 2014): a strong 64-bit mix.
inline uint64_t splitmix64(uint64_t z) {
  z += kGolden;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Runs draws [0, k) in parallel and in small batches: draw j takes the word
// u = splitmix64(seed + j * golden) (a counter-based stream: the result
// depends on the seed alone, not on the threads), and the 128-bit product
// u * n gives its cell (high half) and an independent 64-bit uniform fraction
// (low half) for the coin. All cells of a batch are prefetched before any is
// read, so the random reads of a large table overlap instead of stalling.
template <typename Prefetch, typename Resolve>
void batched_draws(int64_t k, int64_t n, uint64_t seed, Prefetch prefetch, Resolve resolve) {
  constexpr int64_t kBatch = 32;
  at::parallel_for(0, k, 1 << 14, [&](int64_t begin, int64_t end) {
    uint64_t cell[kBatch];
    uint64_t frac[kBatch];
    for (int64_t j0 = begin; j0 < end; j0 += kBatch) {
      const int64_t len = std::min(kBatch, end - j0);
      for (int64_t l = 0; l < len; ++l) {
        const uint64_t u = splitmix64(seed + static_cast<uint64_t>(j0 + l) * kGolden);
        const unsigned __int128 prod = static_cast<unsigned __int128>(u) * static_cast<uint64_t>(n);
        cell[l] = static_cast<uint64_t>(prod >> 64);
        frac[l] = static_cast<uint64_t>(prod);
        prefetch(cell[l]);
      }
      for (int64_t l = 0; l < len; ++l) {
        resolve(j0 + l, cell[l], frac[l]);
      }
    }
  });
}

// Vose's alias method: O(N). prob[i] is the chance of keeping i when cell i is
// picked, alias[i] the index taken otherwise.
std::tuple<at::Tensor, at::Tensor> alias_table_cpu(const at::Tensor& weights) {
  const auto [w, total] = sampling_weights(weights, "alias_table");
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

// Draws with replacement from the (prob, alias) arrays; see batched_draws.
// No N-sized tensor of random numbers is generated: one seed keys the stream.
at::Tensor alias_sample_cpu(
    const at::Tensor& prob, const at::Tensor& alias, const at::Tensor& seed, int64_t num_samples) {
  TORCH_CHECK_VALUE(
      prob.dim() == 1 && alias.sizes() == prob.sizes(), "alias_sample: prob and alias must be 1-D of equal length");
  TORCH_CHECK_TYPE(
      prob.scalar_type() == at::kDouble && alias.scalar_type() == at::kLong,
      "alias_sample: expected float64 prob and int64 alias");
  TORCH_CHECK_VALUE(
      seed.numel() == 1 && seed.scalar_type() == at::kLong,
      "alias_sample: seed must be a one-element int64 tensor, got ",
      seed.sizes(),
      " ",
      seed.scalar_type());
  TORCH_CHECK_VALUE(num_samples >= 0, "alias_sample: num_samples must be >= 0, got ", num_samples);
  const int64_t n = prob.numel(), k = num_samples;
  TORCH_CHECK_VALUE(n > 0 || k == 0, "alias_sample: cannot draw from an empty table");
  const at::Tensor p = prob.contiguous(), a = alias.contiguous();
  const uint64_t base = static_cast<uint64_t>(seed.item<int64_t>());
  at::Tensor out = at::empty({k}, a.options());
  const double* pp = p.const_data_ptr<double>();
  const int64_t* ap = a.const_data_ptr<int64_t>();
  int64_t* op = out.mutable_data_ptr<int64_t>();
  std::atomic<bool> bad{false};  // a hand-made table may alias outside [0, n): checked per draw, O(1)
  batched_draws(
      k,
      n,
      base,
      [&](uint64_t c) {
        __builtin_prefetch(pp + c);
        __builtin_prefetch(ap + c);
      },
      [&](int64_t j, uint64_t c, uint64_t frac) {
        const int64_t v = static_cast<double>(frac) / 18446744073709551616.0 < pp[c] ? static_cast<int64_t>(c) : ap[c];
        if (C10_UNLIKELY(v < 0 || v >= n)) {
          bad.store(true, std::memory_order_relaxed);
        }
        op[j] = v;
      });
  TORCH_CHECK_VALUE(
      !bad.load(), "alias_sample: alias holds indices outside [0, ", n, "); build the table with alias_table");
  return out;
}

// The alias table as one int64 word per cell: alias << 33 | threshold, with
// threshold = round(prob * 2^32) in [0, 2^32] (33 bits), for N < 2^31. A
// draw then reads one word, half the random memory traffic of two arrays.
at::Tensor alias_pack_cpu(const at::Tensor& prob, const at::Tensor& alias) {
  TORCH_CHECK_VALUE(
      prob.dim() == 1 && alias.sizes() == prob.sizes(), "alias_pack: prob and alias must be 1-D of equal length");
  TORCH_CHECK_TYPE(
      prob.scalar_type() == at::kDouble && alias.scalar_type() == at::kLong,
      "alias_pack: expected float64 prob and int64 alias");
  const int64_t n = prob.numel();
  TORCH_CHECK_VALUE(n < (int64_t{1} << 31), "alias_pack: tables of 2^31 or more cells cannot be packed, got ", n);
  const at::Tensor p = prob.contiguous(), a = alias.contiguous();
  at::Tensor packed = at::empty({n}, a.options());
  const double* pp = p.const_data_ptr<double>();
  const int64_t* ap = a.const_data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK_VALUE(pp[i] >= 0.0 && pp[i] <= 1.0, "alias_pack: prob must be in [0, 1], got prob[", i, "] = ", pp[i]);
    TORCH_CHECK_VALUE(
        ap[i] >= 0 && ap[i] < n, "alias_pack: alias must be in [0, ", n, "), got alias[", i, "] = ", ap[i]);
  }
  int64_t* out = packed.mutable_data_ptr<int64_t>();
  at::parallel_for(0, n, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double scaled = std::nearbyint(std::min(std::max(pp[i], 0.0), 1.0) * 4294967296.0);
      out[i] = static_cast<int64_t>((static_cast<uint64_t>(ap[i]) << 33) | static_cast<uint64_t>(scaled));
    }
  });
  return packed;
}

at::Tensor alias_sample_packed_cpu(const at::Tensor& packed, const at::Tensor& seed, int64_t num_samples) {
  TORCH_CHECK_VALUE(
      packed.dim() == 1 && packed.scalar_type() == at::kLong, "alias_sample_packed: packed must be a 1-D int64 table");
  TORCH_CHECK_VALUE(
      seed.numel() == 1 && seed.scalar_type() == at::kLong,
      "alias_sample_packed: seed must be a one-element int64 tensor");
  TORCH_CHECK_VALUE(num_samples >= 0, "alias_sample_packed: num_samples must be >= 0, got ", num_samples);
  const int64_t n = packed.numel(), k = num_samples;
  TORCH_CHECK_VALUE(n > 0 || k == 0, "alias_sample_packed: cannot draw from an empty table");
  const at::Tensor t = packed.contiguous();
  const uint64_t base = static_cast<uint64_t>(seed.item<int64_t>());
  at::Tensor out = at::empty({k}, t.options());
  const uint64_t* tp = reinterpret_cast<const uint64_t*>(t.const_data_ptr<int64_t>());
  int64_t* op = out.mutable_data_ptr<int64_t>();
  constexpr uint64_t kThresholdMask = (uint64_t{1} << 33) - 1;
  std::atomic<bool> bad{false};  // a hand-made table may alias outside [0, n): checked per draw, O(1)
  batched_draws(
      k,
      n,
      base,
      [&](uint64_t c) { __builtin_prefetch(tp + c); },
      [&](int64_t j, uint64_t c, uint64_t frac) {
        const uint64_t word = tp[c];
        const uint64_t v = (frac >> 32) < (word & kThresholdMask) ? c : word >> 33;
        if (C10_UNLIKELY(v >= static_cast<uint64_t>(n))) {
          bad.store(true, std::memory_order_relaxed);
        }
        op[j] = static_cast<int64_t>(v);
      });
  TORCH_CHECK_VALUE(
      !bad.load(), "alias_sample_packed: the table holds indices outside [0, ", n, "); build it with alias_pack");
  return out;
}

// k indices without replacement, with P(order) of successive weighted draws:
// key_i = log(u_i) / w_i, the k largest keys in decreasing order
// (Efraimidis & Spirakis 2006). O(N) memory.
at::Tensor sample_without_replacement_cpu(const at::Tensor& weights, const at::Tensor& uniforms, int64_t k) {
  const at::Tensor w = sampling_weights(weights, "sample_without_replacement").first;
  const int64_t n = w.numel();
  TORCH_CHECK_VALUE(
      uniforms.dim() == 1 && uniforms.numel() == n && uniforms.scalar_type() == at::kDouble,
      "sample_without_replacement: uniforms must be float64 of shape (",
      n,
      ",), got ",
      uniforms.sizes());
  TORCH_CHECK_VALUE(k >= 0, "sample_without_replacement: num_samples must be >= 0, got ", k);
  const double* wp = w.const_data_ptr<double>();
  const at::Tensor u = uniforms.contiguous();
  const double* up = u.const_data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK_VALUE(
        up[i] >= 0.0 && up[i] <= 1.0,
        "sample_without_replacement: uniforms must be in [0, 1], got uniforms[",
        i,
        "] = ",
        up[i]);
  }
  int64_t positive = 0;
  for (int64_t i = 0; i < n; ++i) {
    positive += wp[i] > 0.0;
  }
  TORCH_CHECK_VALUE(
      k <= positive,
      "sample_without_replacement: num_samples=",
      k,
      " exceeds the ",
      positive,
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

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("alias_table", &alias_table_cpu);
  m.impl("alias_sample", &alias_sample_cpu);
  m.impl("alias_pack", &alias_pack_cpu);
  m.impl("alias_sample_packed", &alias_sample_packed_cpu);
  m.impl("sample_without_replacement", &sample_without_replacement_cpu);
}

}  // namespace sampling
}  // namespace balancedtorch
