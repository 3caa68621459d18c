//===- Scratch.cpp - the allocator compiled code uses for temporaries -----===//
//
// A layer call allocates the same temporaries (routing, dispatch metadata,
// sorted expert rows) every time it runs at a given T. Freed blocks are kept
// in a per-thread cache keyed by size and handed out again, so a serving
// loop stops calling malloc after the first call.
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"

#include <cstdlib>
#include <unordered_map>
#include <vector>

namespace {
/// Header in front of every block: its size class (the requested size).
/// 64 bytes, and blocks come from aligned_alloc(64), so every pointer handed
/// out is 64-byte aligned (a cache line, and enough for any vector load).
struct alignas(64) Header {
  size_t size;
};
constexpr size_t kAlign = 64;

struct Cache {
  std::unordered_map<size_t, std::vector<Header *>> free;
  moe_scratch_stats stats{0, 0, 0};
  ~Cache() { release(); }
  void release() {
    for (auto &[size, blocks] : free)
      for (Header *h : blocks)
        std::free(h);
    free.clear();
  }
};

thread_local Cache cache;
} // namespace

extern "C" {

void *_mlir_memref_to_llvm_alloc(size_t size) {
  ++cache.stats.allocations;
  auto it = cache.free.find(size);
  if (it != cache.free.end() && !it->second.empty()) {
    Header *h = it->second.back();
    it->second.pop_back();
    ++cache.stats.allocations_reused;
    return h + 1;
  }
  size_t bytes = (sizeof(Header) + size + kAlign - 1) / kAlign * kAlign;
  auto *h = static_cast<Header *>(std::aligned_alloc(kAlign, bytes));
  if (!h)
    return nullptr;
  h->size = size;
  cache.stats.bytes_from_system += size;
  return h + 1;
}

void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment, size_t size) {
  // Every block is 64-byte aligned already; larger alignments are not
  // requested by the moe pipeline.
  return alignment <= kAlign ? _mlir_memref_to_llvm_alloc(size) : nullptr;
}

void _mlir_memref_to_llvm_free(void *ptr) {
  if (!ptr)
    return;
  Header *h = static_cast<Header *>(ptr) - 1;
  cache.free[h->size].push_back(h);
}

moe_scratch_stats moe_scratch_get_stats(void) { return cache.stats; }

void moe_scratch_release(void) { cache.release(); }

} // extern "C"
