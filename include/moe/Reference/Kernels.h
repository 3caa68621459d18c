//===- Kernels.h - reference semantics of every moe op ----------*- C++ -*-===//
//
// The reference semantics of the `moe` dialect as plain C++ on host buffers
// (docs/dialect.md is the prose version). No MLIR, no LLVM: these functions
// are meant to be read and trusted, not to be fast. Arithmetic is f32 in and
// out; dot products and reductions accumulate in double so that the reference
// is at least as accurate as anything it checks.
//
// Every function validates its inputs and returns a Status; on error the
// output arguments are left untouched.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_REFERENCE_KERNELS_H
#define MOE_REFERENCE_KERNELS_H

#include "moe/Support/Quant.h"
#include "moe/Support/Tensor.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moe::ref {

// The oracle's API speaks the shared host types of MoeSupport; these names
// keep `ref::Tensor` and friends meaning what they always meant for callers.
using moe::DType;
using moe::dtypeName;
using moe::Status;
using moe::Tensor;

enum class Scoring { Softmax, Sigmoid };
enum class Activation { SwiGLU, GeGLU, GeLU, ReLU, SiLU };
bool isGated(Activation act);
/// The scalar activation function (silu for swiglu, gelu for geglu).
double activate(Activation act, double v);

/// A routing: per token K slots of (expert id, weight); id -1 = unused slot.
struct Routing {
  Tensor ids;     // [T, K] i32
  Tensor weights; // [T, K] f32
};

//===----------------------------------------------------------------------===//
// Routers. x: [T, H], gate: [E, H], bias: [E] or null.
//===----------------------------------------------------------------------===//

Status topkRouter(const Tensor &x, const Tensor &gate, const Tensor *bias,
                  Scoring scoring, int64_t k, bool renormalize,
                  float scalingFactor, Routing &out);
Status groupedTopkRouter(const Tensor &x, const Tensor &gate, const Tensor *bias,
                         Scoring scoring, int64_t k, int64_t numGroups,
                         int64_t topkGroups, bool renormalize,
                         float scalingFactor, Routing &out);
Status toppRouter(const Tensor &x, const Tensor &gate, float threshold,
                  int64_t maxK, bool renormalize, float scalingFactor,
                  Routing &out);
/// K: slots in the result (<= E).
Status reluRouter(const Tensor &x, const Tensor &gate, int64_t slots,
                  float scalingFactor, Routing &out);
Status expertChoiceRouter(const Tensor &x, const Tensor &gate, Scoring scoring,
                          int64_t capacity, float scalingFactor, Routing &out);
Status hashRouter(const Tensor &tokenIds, int64_t numExperts, Routing &out);
/// The expert hash routing picks for one token id.
int64_t hashExpert(int64_t tokenId, int64_t numExperts);
Status capacityDrop(const Routing &in, int64_t numExperts, float capacityFactor,
                    Routing &out);
/// C = ceil(capacity_factor * T * K / E).
int64_t capacityLimit(float capacityFactor, int64_t tokens, int64_t slots,
                      int64_t numExperts);
/// scores [T, E] f32: softmax/sigmoid of gate · x, the scores topkRouter ranks.
Status routerScores(const Tensor &x, const Tensor &gate, Scoring scoring, Tensor &scores);
/// Capacity with re-routing (docs/dialect.md, moe.capacity_reroute): E is
/// the column count of scores [T, E]; over-full pairs move to the token's
/// next-best expert with room, or are dropped.
Status capacityReroute(const Routing &in, const Tensor &scores, float capacityFactor,
                       Routing &out);
/// Compressed experts (docs/dialect.md, moe.compress_slots): E =
/// compressed.size(); per token, used slots of rank >= keep (descending
/// weight, ties: lower slot) take E + compressed[id].
Status compressSlots(const Routing &in, const std::vector<int64_t> &compressed, int64_t keep,
                     Routing &out);
/// paths: [T] i32, argmax of gate · x (ties: lower path).
Status pathRouter(const Tensor &x, const Tensor &gate, Tensor &paths);
/// SkipDecode's linear schedule: exits [T] i32 from positions [T]
/// (docs/dialect.md, moe.exit_layers). A negative position is an error.
Status exitLayers(const Tensor &positions, int64_t maxExit, int64_t minExit,
                  int64_t decayPositions, Tensor &exits);
/// paths[t] = layer < exits[t] ? 1 : 0.
Status exitPaths(const Tensor &exits, int64_t layer, Tensor &paths);

//===----------------------------------------------------------------------===//
// Experts and layer
//===----------------------------------------------------------------------===//

/// A bank of `count` consecutive experts of one kind. Tensors are borrowed.
struct ExpertBank {
  enum class Kind { Ffn, Lora, Zero, Copy, Const };
  Kind kind = Kind::Zero;
  int64_t count = 0;
  int64_t hidden = 0;
  Activation activation = Activation::SwiGLU;
  // Ffn: w1, w3 [N, I, H], w2 [N, H, I]. Lora: base w1, w3 [I, H], w2 [H, I].
  const Tensor *w1 = nullptr, *w3 = nullptr, *w2 = nullptr;
  // Lora adapters: a1 [N, r, H], b1 [N, I, r], a3/b3 likewise, a2 [N, r, I],
  // b2 [N, H, r]; scale alpha / r.
  const Tensor *a1 = nullptr, *b1 = nullptr, *a3 = nullptr, *b3 = nullptr,
               *a2 = nullptr, *b2 = nullptr;
  float alpha = 1.0f;
  // Const: values [N, H].
  const Tensor *values = nullptr;
  // Ffn: what the products see of their inputs (x for w1/w3, the
  // activation output for w2). The weights above are already dequantized
  // (dequantizeWeights) when the bank's format is not f32.
  ActivationPrecision activations = ActivationPrecision::F32;
};

/// A bank's weights [N, R, stored(K)] (or a dense FFN's [R, stored(K)]) in
/// `format` (raw values as Tensor holds them; `scales` [N, R] or [R] for
/// int8, else null) as f32 [N, R, K] (or [R, K]), dequantized exactly as
/// Quant.h's dequantizeRow.
Tensor dequantizeWeights(WeightFormat format, const Tensor &stored, const Tensor *scales,
                         int64_t k);

/// out[0..H) = expert `n` of `bank` applied to x[0..H), in double.
void applyExpert(const ExpertBank &bank, int64_t n, const float *x,
                 std::vector<double> &out);

/// y[t] = sum over used slots (slot order) of w * expert_id(x[t]), then + each
/// shared expert's output. Fails on an id outside [-1, E).
Status layer(const Tensor &x, const Routing &routing,
             const std::vector<ExpertBank> &experts,
             const std::vector<ExpertBank> &shared, Tensor &y);

/// Dense FFN on every token: w1, w3 [I, H], w2 [H, I] (f32, dequantized
/// when stored in another format); w3 null for plain. `precision`: what the
/// products see of their inputs, as for a bank.
Status ffn(const Tensor &x, Activation act, const Tensor &w1, const Tensor *w3,
           const Tensor &w2, Tensor &y,
           ActivationPrecision precision = ActivationPrecision::F32);

//===----------------------------------------------------------------------===//
// Per-token skips: selection, compaction and the residual merge.
//===----------------------------------------------------------------------===//

/// Scores r[t] = router · x[t] and the selected tokens in ascending order:
/// the ceil(fraction * T) best (ties: lower index), or r > threshold.
Status skipSelect(const Tensor &x, const Tensor &router,
                  std::optional<float> capacityFraction,
                  std::optional<float> threshold, std::vector<int64_t> &selected,
                  std::vector<float> &scores);
/// rows of x at `tokens`, in that order: [tokens.size(), H].
Tensor gatherRows(const Tensor &x, const std::vector<int64_t> &tokens);
/// y[tokens[j]] += scale[j] * f[j] (scale empty = 1). Checks f's shape.
Status addRows(Tensor &y, const std::vector<int64_t> &tokens, const Tensor &f,
               const std::vector<float> &scale);
/// ACT (moe.halting_stack) across the layers: the cumulative halting and
/// the weighted output of each token, and how many layers it ran.
struct HaltingState {
  std::vector<float> cumulative; // [T], f32 as an implementation keeps it
  std::vector<double> out;       // [T * H], the halting-weighted states
  Tensor steps;                  // [T] i32
  explicit HaltingState(int64_t t, int64_t h);
};
/// After layer `layer` ran on `active` (the state `s` holds its output):
/// each active token's halting probability, its weight (h, or the
/// remainder when it halts), and the tokens still running afterwards
/// (ascending). docs/dialect.md §4.22.
Status haltingUpdate(const Tensor &s, const Tensor &haltWeights, const Tensor &haltBias,
                     int64_t layer, bool lastLayer, float epsilon,
                     std::vector<int64_t> &active, HaltingState &state);
/// Tokens whose path is p, per p in 0..numPaths-1; fails on a path outside.
Status groupByPath(const Tensor &paths, int64_t numPaths,
                   std::vector<std::vector<int64_t>> &groups);

} // namespace moe::ref

#endif // MOE_REFERENCE_KERNELS_H
