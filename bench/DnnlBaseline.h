//===- DnnlBaseline.h - the oneDNN per-expert baseline ----------------------===//
//
// The same MoE layer as our cases, the way an engine on oneDNN runs it (the
// library under PyTorch's CPU BF16/INT8 paths): the router as a oneDNN
// matmul plus softmax/top-k, then per expert a gather, two matmuls, SwiGLU,
// a third matmul and the weighted scatter-add. What our prepare does, this
// does once, untimed: every expert weight is reordered into the layout
// oneDNN prefers for it (format_tag::any, then a reorder), in the weight
// format measured. Matmul primitives are created once per distinct row
// count (the first, untimed call creates them all: the routing is the same
// on every call); a timed call only executes them.
//
// Formats: F32; BF16 (bf16 weights and activations converted to bf16 on
// the gather, f32 accumulation and output, as PyTorch's BF16 path);
// Int8 (s8 weights with one f32 scale per output channel, activations
// quantized per row to s8 with one f32 scale per row, s8 x s8 -> f32
// matmul; both scales applied in the f32 epilogue, where the SwiGLU and
// the combine already read every output). Others are not supported.
//
// Built only when CMake finds oneDNN (MOE_BENCH_HAVE_DNNL).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BENCH_DNNL_BASELINE_H
#define MOE_BENCH_DNNL_BASELINE_H

#include "BenchReport.h"
#include "EagerBaseline.h"

#include <memory>
#include <string>

namespace moe::bench {

class DnnlBaseline {
public:
  /// oneDNN's version and the ISA its kernels use here, e.g.
  /// "oneDNN 2.6.3, avx512_core_amx".
  static std::string describe();
  static bool supports(WeightFormat format);

  /// Reorders (and for Int8 quantizes) the weights of `in`; not timed.
  /// Null with `error` set when the format is not supported.
  static std::unique_ptr<DnnlBaseline> create(const Shape &s, WeightFormat format,
                                              const CaseInputs &in, std::string &error);
  ~DnnlBaseline();

  /// One layer call: out (T x h) = the layer on in.x (weights as prepared).
  /// False with `error` set when oneDNN refuses a primitive (created on a
  /// call that meets a new row count).
  bool run(const CaseInputs &in, float *out, std::string &error);

  double prepareMs() const;
  double preparedBytes() const;

  struct Impl;

private:
  explicit DnnlBaseline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

} // namespace moe::bench

#endif // MOE_BENCH_DNNL_BASELINE_H
