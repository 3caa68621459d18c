//===- OutlineParallel.cpp - parallel loops -> outlined bodies + markers --===//
//
// The thread pool lives in the runtime (plain C++), so a parallel loop must
// become "a function pointer plus a context". The body is outlined here, on
// buffers, where upstream's region outlining captures the free values; the
// pointer/context plumbing happens in the LLVM dialect
// (moe-lower-parallel-calls), where a function address is a value.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "mlir/Dialect/SCF/Utils/Utils.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEOUTLINEPARALLEL
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;

namespace {

/// Clones the constants `region` uses from outside into its entry block, so
/// the outlined body keeps them as constants (LLVM folds them into its
/// code) instead of capturing them as context values it must load. The
/// canonicalizations before this pass hoist constants to the function entry.
void sinkConstantsInto(Region &region) {
  OpBuilder b = OpBuilder::atBlockBegin(&region.front());
  DenseMap<Value, Value> clones;
  region.walk([&](Operation *user) {
    for (OpOperand &use : user->getOpOperands()) {
      Operation *def = use.get().getDefiningOp();
      if (!def || !def->hasTrait<OpTrait::ConstantLike>() ||
          region.isAncestor(def->getParentRegion()))
        continue;
      Value &clone = clones[use.get()];
      if (!clone)
        clone = b.clone(*def)->getResult(0);
      use.set(clone);
    }
  });
}

struct OutlineParallelPass
    : public mlir::moe::impl::MoeOutlineParallelBase<OutlineParallelPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<scf::ForOp> loops;
    module.walk([&](scf::ForOp loop) {
      if (isThreadPoolLoop(loop))
        loops.push_back(loop);
    });
    IRRewriter rewriter(&getContext());
    int64_t counter = 0;
    for (scf::ForOp loop : loops) {
      auto func = loop->getParentOfType<func::FuncOp>();
      if (!matchPattern(loop.getLowerBound(), m_Zero()) ||
          !matchPattern(loop.getStep(), m_One()) || loop.getNumResults() != 0) {
        loop.emitOpError() << "moe.parallel loops must run [0, n) by 1 without results";
        return signalPassFailure();
      }
      sinkConstantsInto(loop.getRegion());
      std::string name = (func.getSymName() + "_par" + Twine(counter++)).str();
      func::CallOp call;
      FailureOr<func::FuncOp> body =
          outlineSingleBlockRegion(rewriter, loop.getLoc(), loop.getRegion(), name, &call);
      if (failed(body)) {
        loop.emitOpError() << "cannot outline the parallel loop body";
        return signalPassFailure();
      }
      body->setPrivate();
      if (call.getNumOperands() == 0 || call.getOperand(0) != loop.getInductionVar()) {
        loop.emitOpError() << "outlined body does not take the induction variable first";
        return signalPassFailure();
      }
      // Marker: (n, captured...) -> (), declared once per body.
      SmallVector<Value> operands{loop.getUpperBound()};
      SmallVector<Type> types{loop.getUpperBound().getType()};
      for (Value v : call.getOperands().drop_front()) {
        operands.push_back(v);
        types.push_back(v.getType());
      }
      OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
      auto marker = func::FuncOp::create(mb, loop.getLoc(), (kParallelMarkerPrefix + name).str(),
                                         FunctionType::get(&getContext(), types, {}));
      marker.setPrivate();
      OpBuilder b(loop);
      func::CallOp::create(b, loop.getLoc(), marker, operands);
      loop.erase();
      ++numOutlined;
    }
  }
};
} // namespace
