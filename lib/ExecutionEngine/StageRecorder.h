//===- StageRecorder.h - stage texts from pass instrumentation -*- C++ -*-===//
//
// A whole pipeline runs in one pass manager. The pipelines end each stage a
// user can look at with a `moe-stage-end{stage=NAME}` pass; this
// instrumentation prints the module after each one as that stage's text,
// and knows which stage a failing pass belongs to.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_EXECUTIONENGINE_STAGERECORDER_H
#define MOE_LIB_EXECUTIONENGINE_STAGERECORDER_H

#include "moe/ExecutionEngine/CompiledFunction.h"

#include "mlir/Pass/PassInstrumentation.h"
#include "mlir/Pass/PassManager.h"

#include <string>
#include <vector>

namespace moe {

class StageRecorder : public mlir::PassInstrumentation {
public:
  /// `stages` receives (name, text) after each stage end when `keepTexts`.
  /// The stage names are read from `pm`'s top-level passes, in order.
  StageRecorder(const mlir::OpPassManager &pm, std::vector<Stage> &stages, bool keepTexts);

  void runAfterPass(mlir::Pass *pass, mlir::Operation *op) override;

  /// The stage the pipeline was in when it stopped: the first one not
  /// completed (the last one if all were).
  const std::string &currentStage() const;

private:
  std::vector<std::string> names;
  size_t completed = 0;
  std::vector<Stage> &stages;
  bool keepTexts;
};

/// The module's text, as the stages show it.
std::string printOp(mlir::Operation *op);

} // namespace moe

#endif // MOE_LIB_EXECUTIONENGINE_STAGERECORDER_H
