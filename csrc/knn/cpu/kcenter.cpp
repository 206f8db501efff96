// CPU kernel of balancedtorch::kcenter_update (see knn/kcenter.h for the
// order of the float64 sum and the argmax's tie rule).
//
// One pass over x: at::parallel_for over blocks of rows, four rows at a time
// (four independent chains of float64 vector adds, one vector of
// kKCenterLanes partial sums per row); each thread keeps its own (max,
// index) and the threads' winners are merged at the end in kcenter_better's
// total order, so the answer does not depend on the split.
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#if defined(CPU_CAPABILITY_AVX2)
#include <immintrin.h>
#endif

#include "knn/kcenter.h"

namespace balancedtorch {
namespace knn {
namespace {

using Vec = at::vec::Vectorized<double>;
static_assert(Vec::size() == kKCenterLanes, "kcenter_update: the lanes of the sum are one Vectorized<double>");

inline Vec load_lanes(const double* p) {
  return Vec::loadu(p);
}

inline Vec load_lanes(const float* p) {
#if defined(CPU_CAPABILITY_AVX2)
  return Vec(_mm256_cvtps_pd(_mm_loadu_ps(p)));
#else
  return Vec(p[0], p[1], p[2], p[3]);
#endif
}

// The last, partial group of columns, zero-filled.
template <typename scalar_t>
inline Vec load_tail(const scalar_t* p, int64_t count) {
  double buf[kKCenterLanes] = {0.0, 0.0, 0.0, 0.0};
  for (int64_t l = 0; l < count; ++l) {
    buf[l] = static_cast<double>(p[l]);
  }
  return Vec::loadu(buf);
}

inline double lanes_sum(const Vec& acc) {
  double s[kKCenterLanes];
  acc.store(s);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// Squared distances of R consecutive rows to the (zero-padded) centre.
template <int R, typename scalar_t>
inline void row_distances(const scalar_t* x, int64_t D, const double* c, double* d) {
  Vec acc[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = Vec(0.0);
  }
  const int64_t full = D - D % kKCenterLanes;
  for (int64_t j = 0; j < full; j += kKCenterLanes) {
    const Vec cj = Vec::loadu(c + j);
    for (int r = 0; r < R; ++r) {
      const Vec diff = load_lanes(x + r * D + j) - cj;
      acc[r] = acc[r] + diff * diff;
    }
  }
  if (full < D) {
    const Vec cj = Vec::loadu(c + full);
    for (int r = 0; r < R; ++r) {
      const Vec diff = load_tail(x + r * D + full, D - full) - cj;
      acc[r] = acc[r] + diff * diff;
    }
  }
  for (int r = 0; r < R; ++r) {
    d[r] = lanes_sum(acc[r]);
  }
}

struct Best {
  double value = -std::numeric_limits<double>::infinity();
  int64_t index = kKCenterNone;
  void offer(double v, int64_t i) {
    if (kcenter_better(v, i, value, index)) {
      value = v;
      index = i;
    }
  }
};

template <typename scalar_t>
int64_t kcenter_kernel(const scalar_t* x, int64_t N, int64_t D, const double* c, const double* old, double* out) {
  constexpr int R = 4;
  const int64_t grain = std::max<int64_t>(64, (int64_t{1} << 15) / std::max<int64_t>(1, D));
  std::vector<Best> per_thread(at::get_num_threads());
  at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) {
    Best best;
    double d[R];
    int64_t i = begin;
    for (; i + R <= end; i += R) {
      row_distances<R>(x + i * D, D, c, d);
      for (int r = 0; r < R; ++r) {
        out[i + r] = kcenter_min(old[i + r], d[r]);
        best.offer(out[i + r], i + r);
      }
    }
    for (; i < end; ++i) {
      row_distances<1>(x + i * D, D, c, d);
      out[i] = kcenter_min(old[i], d[0]);
      best.offer(out[i], i);
    }
    per_thread[at::get_thread_num()].offer(best.value, best.index);
  });
  Best best;
  for (const Best& b : per_thread) {
    best.offer(b.value, b.index);
  }
  return best.index == kKCenterNone ? -1 : best.index;
}

std::tuple<at::Tensor, at::Tensor> kcenter_update_cpu(
    const at::Tensor& x, const at::Tensor& center, const at::Tensor& min_dist) {
  check_kcenter_args(x, center, min_dist);
  TORCH_CHECK_VALUE(x.device().is_cpu(), "kcenter_update: expected x on the CPU, got ", x.device());
  const at::Tensor xc = x.contiguous();
  const at::Tensor old = min_dist.contiguous();
  const int64_t N = x.size(0), D = x.size(1);
  // the centre in float64, zero-padded to whole groups of lanes
  const int64_t padded = (D + kKCenterLanes - 1) / kKCenterLanes * kKCenterLanes;
  at::Tensor c = at::zeros({padded}, x.options().dtype(at::kDouble));
  c.narrow(0, 0, D).copy_(center);
  at::Tensor out = at::empty({N}, min_dist.options().memory_format(at::MemoryFormat::Contiguous));
  int64_t index = -1;
  if (N > 0) {
    AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "kcenter_update_cpu", [&] {
      index = kcenter_kernel<scalar_t>(
          xc.const_data_ptr<scalar_t>(),
          N,
          D,
          c.const_data_ptr<double>(),
          old.const_data_ptr<double>(),
          out.data_ptr<double>());
    });
  }
  return {out, at::scalar_tensor(index, x.options().dtype(at::kLong))};
}

}  // namespace

TORCH_LIBRARY_IMPL(balancedtorch, CPU, m) {
  m.impl("kcenter_update", &kcenter_update_cpu);
}

}  // namespace knn
}  // namespace balancedtorch
