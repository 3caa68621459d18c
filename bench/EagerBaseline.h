//===- EagerBaseline.h - the cases' inputs and the eager OpenBLAS loop -----===//
//
// What moe-bench compares against: the eager per-expert loop users run
// today (router GEMM, softmax, top-k, then per expert: gather, three GEMMs,
// SwiGLU, weighted scatter-add). The router and the grouping of tokens by
// expert are shared with the oneDNN baseline (DnnlBaseline.h).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BENCH_EAGER_BASELINE_H
#define MOE_BENCH_EAGER_BASELINE_H

#include "BenchLayers.h"
#include "moe/Support/Tensor.h"

#include <cstdint>
#include <vector>

namespace moe::bench {

/// Every case moe-bench knows, in the order it runs them.
std::vector<Shape> benchShapes();

/// A case's inputs, the same in every process (fixed seeds): x, the router
/// gate (softmax cases), the expert weights, and for Zipf cases the oracle
/// routing (ids32 the same ids as int32).
struct CaseInputs {
  Tensor x, gate, w1, w3, w2, ids, w;
  std::vector<int32_t> ids32;
};
CaseInputs makeCaseInputs(const Shape &s);

/// Softmax over each token's `logits` (T x E, overwritten with the
/// probabilities), the top k (ties to the lower id), renormalized.
void softmaxTopK(const Shape &s, float *logits, int32_t *ids, float *wts);

/// The tokens routed to each expert and their combine weights.
struct ExpertGroups {
  std::vector<std::vector<int64_t>> tokensOf;
  std::vector<std::vector<float>> weightOf;
  void build(const Shape &s, const int32_t *ids, const float *wts);
};

/// out[token] += weight * ye[row] for every row of an expert's group.
void scatterAdd(const Shape &s, const std::vector<int64_t> &tokens,
                const std::vector<float> &weights, const float *ye, float *out);

/// The eager per-expert loop with OpenBLAS (cblas_sgemm per GEMM).
struct OpenBlasBaseline {
  const Shape &s;
  std::vector<float> logits, xe, g, u, ye;
  std::vector<int32_t> ids; // the last call's routing (softmax cases)
  std::vector<float> wts;
  ExpertGroups groups;

  explicit OpenBlasBaseline(const Shape &shape) : s(shape) {}
  void route(const float *x, const float *gate);
  /// gate null: route by givenIds/givenW (Zipf cases).
  void run(const float *x, const float *gate, const int32_t *givenIds, const float *givenW,
           const float *w1, const float *w3, const float *w2, float *out);
  void run(const CaseInputs &in, float *out) {
    run(in.x.f.data(), s.zipf ? nullptr : in.gate.f.data(), in.ids32.data(), in.w.f.data(),
        in.w1.f.data(), in.w3.f.data(), in.w2.f.data(), out);
  }
};

} // namespace moe::bench

#endif // MOE_BENCH_EAGER_BASELINE_H
