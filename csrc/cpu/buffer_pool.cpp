#include "cpu/buffer_pool.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <map>
#include <mutex>

namespace balancedtorch {
namespace cpu {
namespace {

constexpr size_t kMinPooledBytes = size_t{8} << 20;

// BALANCEDTORCH_CPU_POOL_MB (default 512): the most memory kept for reuse; 0 turns the pool off.
size_t max_cached_bytes() {
  static const size_t limit = [] {
    const char* env = std::getenv("BALANCEDTORCH_CPU_POOL_MB");
    if (env == nullptr || *env == '\0') {
      return size_t{512} << 20;
    }
    char* end = nullptr;
    const long long mb = std::strtoll(env, &end, 10);
    return (end != nullptr && *end == '\0' && mb >= 0) ? static_cast<size_t>(mb) << 20 : size_t{512} << 20;
  }();
  return limit;
}
constexpr size_t kAlignment = 64;

struct Pool {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;
  size_t cached = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may outlive static destruction
  return *p;
}

void* take(size_t bytes) {
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    auto it = p.free_blocks.find(bytes);
    if (it != p.free_blocks.end()) {
      void* block = it->second;
      p.free_blocks.erase(it);
      p.cached -= bytes;
      return block;
    }
  }
  void* block = nullptr;
  TORCH_CHECK(
      posix_memalign(&block, kAlignment, bytes) == 0 && block != nullptr,
      "balancedtorch: out of memory allocating ",
      bytes,
      " bytes");
  return block;
}

void give_back(void* block, size_t bytes) {
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    if (p.cached + bytes <= max_cached_bytes()) {
      p.free_blocks.emplace(bytes, block);
      p.cached += bytes;
      return;
    }
  }
  std::free(block);
}

}  // namespace

int64_t release_cached() {
  Pool& p = pool();
  std::multimap<size_t, void*> blocks;
  size_t released = 0;
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    blocks.swap(p.free_blocks);
    released = p.cached;
    p.cached = 0;
  }
  for (const auto& entry : blocks) {
    std::free(entry.second);
  }
  return static_cast<int64_t>(released);
}

int64_t cached_bytes() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  return static_cast<int64_t>(p.cached);
}

at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  int64_t numel = 1;
  for (const int64_t s : sizes) {
    numel *= s;
  }
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(c10::typeMetaToScalarType(options.dtype()));
  if (bytes < kMinPooledBytes || max_cached_bytes() == 0) {
    return at::empty(sizes, options);
  }
  void* block = take(bytes);
  return at::from_blob(block, sizes, [bytes](void* b) { give_back(b, bytes); }, options.device(at::kCPU));
}

}  // namespace cpu
}  // namespace balancedtorch
