//===- StageRecorder.cpp - stage texts from pass instrumentation ----------===//

#include "StageRecorder.h"

#include "moe/Transforms/Passes.h"

#include "llvm/Support/raw_ostream.h"

namespace moe {

std::string printOp(mlir::Operation *op) {
  std::string s;
  llvm::raw_string_ostream os(s);
  op->print(os);
  return s;
}

StageRecorder::StageRecorder(const mlir::OpPassManager &pm, std::vector<Stage> &stages,
                             bool keepTexts)
    : stages(stages), keepTexts(keepTexts) {
  for (const mlir::Pass &pass : pm.getPasses())
    if (std::optional<std::string> name = mlir::moe::stageEndName(pass))
      names.push_back(*name);
}

void StageRecorder::runAfterPass(mlir::Pass *pass, mlir::Operation *op) {
  std::optional<std::string> name = mlir::moe::stageEndName(*pass);
  if (!name)
    return;
  ++completed;
  if (keepTexts)
    stages.push_back({*name, printOp(op)});
}

const std::string &StageRecorder::currentStage() const {
  static const std::string none = "pipeline";
  if (names.empty())
    return none;
  return names[std::min(completed, names.size() - 1)];
}

} // namespace moe
