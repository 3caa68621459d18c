//===- StageEnd.cpp - a named stage boundary in a pipeline ----------------===//

#include "moe/Transforms/Passes.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOESTAGEEND
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

namespace {
struct StageEndPass : public mlir::moe::impl::MoeStageEndBase<StageEndPass> {
  using MoeStageEndBase::MoeStageEndBase;
  void runOnOperation() override { markAllAnalysesPreserved(); }
  const std::string &stageName() const { return stage.getValue(); }
};
} // namespace

std::optional<std::string> mlir::moe::stageEndName(const Pass &pass) {
  if (pass.getTypeID() != TypeID::get<StageEndPass>())
    return std::nullopt;
  return static_cast<const StageEndPass &>(pass).stageName();
}

void mlir::moe::addStageEnd(OpPassManager &pm, llvm::StringRef stage) {
  pm.addPass(createMoeStageEnd({stage.str()}));
}
