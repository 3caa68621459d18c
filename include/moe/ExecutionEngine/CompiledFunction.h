//===- CompiledFunction.h - compile a moe function and run it ---*- C++ -*-===//
//
// The compiled path end to end: the CPU pipeline, LLVM's JIT, and a caller
// that checks buffers against the function's signature before anything runs.
// moe-run, the tests and the Python module all go through this class.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_EXECUTIONENGINE_COMPILEDFUNCTION_H
#define MOE_EXECUTIONENGINE_COMPILEDFUNCTION_H

#include "moe/Pipelines/Pipelines.h"
#include "moe/Support/Tensor.h"
#include "moe_runtime.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "mlir/IR/BuiltinOps.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mlir {
class ExecutionEngine;
}

namespace moe {

/// The text of one compiler stage ("moe", "expanded", "loops", "llvm",
/// "llvm-ir").
struct Stage {
  std::string name;
  std::string text;
};

class CompiledFunction {
public:
  ~CompiledFunction();

  /// Compiles function `entry` of `module` (moe dialect, left unchanged) for
  /// the host CPU. Diagnostics (with locations) end up in the Status.
  static Status compile(mlir::ModuleOp module, const std::string &entry,
                             const CpuPipelineOptions &options, bool keepStages,
                             std::unique_ptr<CompiledFunction> &out);

  /// Runs on host tensors. Every argument is checked (dtype, rank, static
  /// dims; all dynamic dims are T and must agree) before the call; run-time
  /// errors of the compiled code (bad expert ids, non-finite scores) come
  /// back as a failed Status naming the problem, and `results` is untouched.
  Status run(const std::vector<Tensor> &args,
                  std::vector<Tensor> &results) const;

  /// Runs on caller-owned buffers (zero copy): one data pointer per argument
  /// and per result, with the shapes given; i32 tensors as int32_t, i64 as
  /// int64_t, f32 as float. Outputs are written only on success.
  Status runBuffers(const std::vector<const void *> &argData,
                         const std::vector<std::vector<int64_t>> &argShapes,
                         const std::vector<void *> &resultData,
                         const std::vector<std::vector<int64_t>> &resultShapes) const;

  const std::vector<TensorSignature> &argumentSignatures() const { return args; }
  const std::vector<TensorSignature> &resultSignatures() const { return results; }
  /// The result shapes for arguments of these shapes (T filled in from the
  /// first dynamic dimension; the arguments are checked when run).
  Status resultShapesFor(const std::vector<std::vector<int64_t>> &argShapes,
                              std::vector<std::vector<int64_t>> &out) const;
  const std::vector<Stage> &stages() const { return stageTexts; }
  double compileSeconds() const { return seconds; }

  /// Runs on runtime tensor descriptors (the runtime checks them).
  Status runTensors(const moe_tensor *args, size_t numArgs, moe_tensor *results,
                         size_t numResults) const;

private:
  friend class PreparedFunction;
  CompiledFunction() = default;

  std::unique_ptr<mlir::ExecutionEngine> engine;
  moe_packed_fn packed = nullptr;
  moe_signature *signature = nullptr;
  std::string entryName;
  std::vector<TensorSignature> args, results;
  std::vector<Stage> stageTexts;
  double seconds = 0.0;
};

/// The signature of one argument/result type; fails, naming `what`, for a
/// type the compiled path does not take (not a ranked f32/i32/i64 tensor).
Status signatureOf(mlir::Type type, TensorSignature &sig, const std::string &what);

/// The result shapes of a function with these signatures called on
/// arguments of these shapes: every dynamic dimension of a result is T, the
/// size of the first dynamic dimension of the arguments (0 if none is
/// given). The CPU and the GPU path share it so their results agree.
std::vector<std::vector<int64_t>>
resultShapesFor(const std::vector<TensorSignature> &args,
                const std::vector<TensorSignature> &results,
                const std::vector<std::vector<int64_t>> &argShapes);

/// The runtime's text form of `func`'s signature (see moe_signature_parse).
std::string signatureText(mlir::func::FuncOp func);

/// Host tensors -> runtime tensors (i32 narrowed), result tensors allocated
/// for the arguments' T, `call` on them; `outputs` set only on success.
Status runOnHostTensors(const std::vector<TensorSignature> &args,
                        const std::vector<TensorSignature> &results,
                        const std::vector<Tensor> &inputs, std::vector<Tensor> &outputs,
                        const std::function<Status(const moe_tensor *, size_t, moe_tensor *, size_t)> &call);

/// The rule of moe-hoist-weight-packing: a weight is an argument of static
/// shape (f32, rank >= 1); the activations carry the token count.
bool isWeightArgument(mlir::Type type);

/// An entry's prepared form (moe-hoist-weight-packing): `<entry>_prepare`
/// and the run entry compiled, and the runtime's prepared object
/// (moe_prepare_packed). `prepare` packs the weights once; `run` takes the
/// activations only.
class PreparedFunction {
public:
  ~PreparedFunction();
  static Status compile(mlir::ModuleOp module, const std::string &entry,
                        const CpuPipelineOptions &options, bool keepStages,
                        std::unique_ptr<PreparedFunction> &out);

  /// Positions of the weights and of the activations among the entry's
  /// arguments.
  const std::vector<size_t> &weightIndices() const { return weights; }
  const std::vector<size_t> &activationIndices() const { return activations; }

  /// Packs `weights` (in weightIndices() order, checked) into a prepared
  /// object this function holds (replacing an earlier one).
  Status prepare(const std::vector<Tensor> &weights);
  /// Runs the held prepared object on the activations.
  Status run(const std::vector<Tensor> &activations, std::vector<Tensor> &results) const;
  /// The runtime level: a new prepared object (the caller frees it), and a
  /// run of one on runtime tensors.
  Status prepareTensors(const moe_tensor *weights, size_t n, moe_prepared **out) const;
  Status runTensors(moe_prepared *prepared, const moe_tensor *activations, size_t numIn,
                    moe_tensor *results, size_t numOut) const;
  const moe_prepared *prepared() const { return held; }
  const CompiledFunction &runFunction() const { return *runFn; }
  double compileSeconds() const;

private:
  PreparedFunction() = default;
  std::unique_ptr<CompiledFunction> prepareFn, runFn;
  std::vector<size_t> weights, activations;
  std::vector<TensorSignature> argSigs;
  std::string name;
  moe_prepared *held = nullptr;
};

} // namespace moe

#endif // MOE_EXECUTIONENGINE_COMPILEDFUNCTION_H
