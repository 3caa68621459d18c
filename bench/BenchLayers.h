//===- BenchLayers.h - the layers moe-bench measures ----------------------===//
#ifndef MOE_BENCH_LAYERS_H
#define MOE_BENCH_LAYERS_H

#include "mlir/IR/MLIRContext.h"

#include <cstdint>
#include <string>

/// One benchmark case: a softmax top-k (or Zipf oracle-routed) layer of E
/// SwiGLU experts, hidden size h, intermediate size `inter`, T tokens.
struct Shape {
  std::string name;
  int64_t e, k, h, inter, t;
  bool zipf; // oracle routing drawn from Zipf(1.2) instead of a softmax router
  bool decode() const { return t <= 8; }
};

/// The case's layer as MLIR text (entry @main).
std::string layerText(const Shape &s);

/// moe-bench --contention: the layer time idle and next to CPU hogs.
int runContentionBench(mlir::MLIRContext &ctx, const std::string &pipelineOptions);

#endif // MOE_BENCH_LAYERS_H
