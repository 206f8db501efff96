// Reuse of large CPU output buffers across calls.
//
// glibc serves allocations above its mmap threshold (at most 32 MiB) with a
// fresh mmap each time, so a 38 MB output written every training step pays
// for ~9,000 page faults and the kernel zeroing them (~12 ms on a 2-core VM,
// as long as the kernel itself). Buffers of an exact size are kept after the
// tensor that owned them dies and handed to the next request of that size
// (at most BALANCEDTORCH_CPU_POOL_MB, default 512, kept; 0 disables the pool),
// like the CUDA caching allocator does for device memory.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <c10/util/ArrayRef.h>

namespace balancedtorch {
namespace cpu {

// An uninitialised contiguous CPU tensor; large ones come from the pool.
at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

// Frees every cached block (buffers still owned by tensors are untouched);
// returns the bytes released. Exposed as balancedtorch.empty_cpu_cache().
int64_t release_cached();

// Bytes the pool keeps for reuse now (balancedtorch.cpu_cache_bytes()).
int64_t cached_bytes();

}  // namespace cpu
}  // namespace balancedtorch
