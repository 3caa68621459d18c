//===- Stats.cpp - the routing statistics a compiled call recorded --------===//
//
// Compiled code built with the `stats` pipeline option hands its counters
// to moe_rt_record_stats before returning (the layout is written down in
// lib/Conversion/MoeToLoops/RecordRoutingStats.cpp, which makes them); this
// file keeps this thread's copy and turns each record into a
// moe_layer_stats, deriving the skipped tokens, dropped pairs and FLOPs
// (definitions: docs/routing-stats.md).
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"
#include "RuntimeInternal.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace moe::rt {
namespace {
constexpr int64_t kStatsMagic = 0x4D4F4553; // "MOES"
constexpr int64_t kStatsVersion = 1;
constexpr int64_t kRecordHeader = 10;

/// The counters of this thread's last successful call, and where each
/// layer's record starts in them.
thread_local std::vector<int64_t> lastCounters;
thread_local std::vector<size_t> recordStarts;

/// Splits the counters into records; false (and no records) when they are
/// not what the compiler writes.
bool indexRecords() {
  recordStarts.clear();
  const std::vector<int64_t> &c = lastCounters;
  if (c.size() < 3 || c[0] != kStatsMagic || c[1] != kStatsVersion || c[2] < 0)
    return false;
  size_t at = 3;
  for (int64_t r = 0; r < c[2]; ++r) {
    if (at + kRecordHeader > c.size())
      return false;
    int64_t e = c[at + 3], k = c[at + 4];
    if (e < 0 || k < 0 || c[at] != kRecordHeader + 2 * e + k + 1 ||
        at + size_t(c[at]) > c.size())
      return false;
    recordStarts.push_back(at);
    at += size_t(c[at]);
  }
  return true;
}
} // namespace

void clearStats() {
  lastCounters.clear();
  recordStarts.clear();
}
} // namespace moe::rt

using namespace moe::rt;

extern "C" {

void moe_rt_record_stats(int64_t address, int64_t count) {
  const auto *counters = reinterpret_cast<const int64_t *>(static_cast<intptr_t>(address));
  if (!counters || count <= 0) {
    clearStats();
    return;
  }
  lastCounters.assign(counters, counters + count);
  if (!indexRecords())
    clearStats();
}

int moe_last_stats_count(void) { return int(recordStarts.size()); }

int moe_last_stats(int index, moe_layer_stats *out) {
  if (!out)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_last_stats: null output pointer");
  if (index < 0 || size_t(index) >= recordStarts.size())
    return fail(MOE_ERR_INVALID_ARGUMENT,
                "moe_last_stats: layer index " + std::to_string(index) + " is outside [0, " +
                    std::to_string(recordStarts.size()) +
                    ") (the last call on this thread recorded that many layers; compile "
                    "with stats to record them)");
  const int64_t *r = lastCounters.data() + recordStarts[size_t(index)];
  moe_layer_stats s;
  std::memset(&s, 0, sizeof s);
  s.layer = int32_t(r[1]);
  s.line = int32_t(r[2]);
  s.num_experts = int32_t(r[3]);
  s.k = int32_t(r[4]);
  s.tokens = r[5];
  s.tokens_routed = r[6];
  s.tokens_skipped = r[5] - r[6];
  s.routed_pairs = r[8];
  s.dropped_pairs = r[7] < 0 ? -1 : r[7] - r[8];
  s.shared_flops = r[9];
  int64_t e = r[3];
  s.expert_flops = r + kRecordHeader;
  s.tokens_per_expert = r + kRecordHeader + e;
  s.slots_per_token = r + kRecordHeader + 2 * e;
  double flops = double(s.tokens_routed) * double(s.shared_flops);
  int64_t maxExpert = 0;
  for (int64_t i = 0; i < e; ++i) {
    flops += double(s.tokens_per_expert[i]) * double(s.expert_flops[i]);
    maxExpert = std::max(maxExpert, s.expert_flops[i]);
  }
  s.flops = flops;
  s.flops_full = double(s.tokens) * (double(s.k) * double(maxExpert) + double(s.shared_flops));
  s.flops_saved_fraction = s.flops_full > 0 ? 1.0 - s.flops / s.flops_full : 0.0;
  *out = s;
  return MOE_OK;
}

} // extern "C"
