//===- GpuToHost.cpp - run the block/thread-mapped stage on the CPU -------===//
//
// The host execution of the mapped stage, to test the GPU tiling, indexing,
// ragged bounds and early exits without a GPU:
//   - a block forall becomes a sequential loop nest over the grid;
//   - a thread forall is cut at its barriers into phases and each phase
//     becomes `for tid in [0, threads)`: all threads finish a phase before
//     any starts the next, which is what the barrier guarantees. A loop
//     containing barriers (uniform bounds) becomes a loop around its phases.
//     This is only valid because no SSA value crosses a barrier (see
//     GpuMapping.h); a value that does is reported, not miscompiled;
//   - workgroup and per-thread buffers, and stack scratch inside kernels,
//     become stack buffers at the function entry (blocks and phases run one
//     at a time, so one copy serves them all);
//   - atomics stay memref.atomic_rmw (LLVM atomics on the host).
// The CPU tail of moe-to-cpu then takes the loops to LLVM.
//
//===----------------------------------------------------------------------===//

#include "GpuMapping.h"

#include "mlir/IR/IRMapping.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUTOHOST
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
using namespace mlir::moe::gpumap;

namespace {

bool containsBarrier(Operation *op) {
  return op->walk([](gpu::BarrierOp) { return WalkResult::interrupt(); }).wasInterrupted();
}

struct GpuToHostPass : public mlir::moe::impl::MoeGpuToHostBase<GpuToHostPass> {
  using Base::Base;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      SmallVector<scf::ForallOp> blocks;
      func.walk([&](scf::ForallOp op) {
        if (isBlockForall(op))
          blocks.push_back(op);
      });
      for (scf::ForallOp k : blocks)
        blocksToLoops(k);
      SmallVector<scf::ForallOp> threads;
      func.walk([&](scf::ForallOp op) {
        if (isThreadForall(op))
          threads.push_back(op);
      });
      for (scf::ForallOp t : threads)
        if (failed(threadsToPhases(t)))
          return signalPassFailure();
      hoistBuffers(func);
      WalkResult left = func.walk([&](Operation *op) {
        if (isa<gpu::BarrierOp>(op) || isa<scf::ForallOp>(op)) {
          op->emitOpError() << "is left after moe-gpu-to-host: a barrier must be at the top level "
                               "of a thread forall or inside a loop there";
          return WalkResult::interrupt();
        }
        return WalkResult::advance();
      });
      if (left.wasInterrupted())
        return signalPassFailure();
    }
  }

  void blocksToLoops(scf::ForallOp k) {
    OpBuilder b(k);
    Location loc = k.getLoc();
    SmallVector<Value> ivs;
    Block *inner = nullptr;
    for (OpFoldResult ub : k.getMixedUpperBound()) {
      Value ubv = getValueOrCreateConstantIndexOp(b, loc, ub);
      auto loop = scf::ForOp::create(b, loc, cIndex(b, loc, 0), ubv, cIndex(b, loc, 1));
      ivs.push_back(loop.getInductionVar());
      inner = loop.getBody();
      b.setInsertionPoint(inner->getTerminator());
    }
    Block *body = k.getBody();
    for (auto [arg, iv] : llvm::zip(body->getArguments(), ivs))
      arg.replaceAllUsesWith(iv);
    inner->getOperations().splice(inner->getTerminator()->getIterator(), body->getOperations(),
                                  body->begin(), body->getTerminator()->getIterator());
    k.erase();
  }

  /// Emits `ops` as phases of `threads` sequential threads; `map` holds the
  /// values the phases see (loop ivs of enclosing barrier loops).
  LogicalResult emitPhases(OpBuilder &b, Location loc, Block::OpListType::iterator begin,
                           Block::OpListType::iterator end, int64_t threads, Value tid,
                           IRMapping map, Operation *forall) {
    SmallVector<Operation *> phase;
    auto emit = [&]() -> LogicalResult {
      if (phase.empty())
        return success();
      auto loop = scf::ForOp::create(b, loc, cIndex(b, loc, 0), cIndex(b, loc, threads),
                                     cIndex(b, loc, 1));
      OpBuilder lb = OpBuilder::atBlockTerminator(loop.getBody());
      IRMapping local = map;
      local.map(tid, loop.getInductionVar());
      for (Operation *op : phase) {
        // A value from an earlier phase would be one thread's value seen by
        // all: the mapped stage must keep such values in per-thread buffers.
        WalkResult crossing = op->walk([&](Operation *nested) {
          for (Value v : nested->getOperands()) {
            Operation *def = v.getDefiningOp();
            Region *owner = def ? def->getParentRegion() : cast<BlockArgument>(v).getOwner()->getParent();
            if (!forall->getRegion(0).isAncestor(owner) || local.contains(v))
              continue;
            if (def && llvm::is_contained(phase, op->getBlock()->findAncestorOpInBlock(*def)))
              continue;
            if (def && def->hasTrait<OpTrait::ConstantLike>()) {
              // Constants are the same in every phase: rematerialized.
              local.map(v, lb.clone(*def)->getResult(0));
              continue;
            }
            if (def && op->isAncestor(def))
              continue;
            if (!def && op->isAncestor(cast<BlockArgument>(v).getOwner()->getParentOp()))
              continue;
            nested->emitOpError() << "uses a value computed before a barrier; the mapped stage "
                                     "must keep values that cross barriers in per-thread buffers";
            return WalkResult::interrupt();
          }
          return WalkResult::advance();
        });
        if (crossing.wasInterrupted())
          return failure();
        lb.clone(*op, local);
      }
      phase.clear();
      return success();
    };
    for (auto it = begin; it != end; ++it) {
      Operation *op = &*it;
      if (isa<gpu::BarrierOp>(op)) {
        if (failed(emit()))
          return failure();
        continue;
      }
      if (!containsBarrier(op)) {
        phase.push_back(op);
        continue;
      }
      auto loop = dyn_cast<scf::ForOp>(op);
      if (!loop || loop.getNumResults() != 0)
        return op->emitOpError() << "contains a barrier: only loops without results may hold "
                                    "barriers inside a thread forall";
      if (failed(emit()))
        return failure();
      // Uniform bounds: clone what computes them (pure, thread-independent).
      SmallVector<Value> bounds;
      for (Value v : {loop.getLowerBound(), loop.getUpperBound(), loop.getStep()}) {
        if (map.contains(v)) {
          bounds.push_back(map.lookup(v));
          continue;
        }
        Operation *def = v.getDefiningOp();
        if (def && forall->isAncestor(def)) {
          if (def->getNumOperands() != 0 || def->getNumRegions() != 0)
            return loop.emitOpError() << "has thread-dependent bounds around a barrier";
          bounds.push_back(b.clone(*def)->getResult(0));
          continue;
        }
        bounds.push_back(v);
      }
      auto outer = scf::ForOp::create(b, loc, bounds[0], bounds[1], bounds[2]);
      OpBuilder ib = OpBuilder::atBlockTerminator(outer.getBody());
      IRMapping inner = map;
      inner.map(loop.getInductionVar(), outer.getInductionVar());
      Block *body = loop.getBody();
      if (failed(emitPhases(ib, loc, body->begin(), body->getTerminator()->getIterator(), threads,
                            tid, inner, forall)))
        return failure();
    }
    return emit();
  }

  LogicalResult threadsToPhases(scf::ForallOp t) {
    auto count = getConstantIntValue(t.getMixedUpperBound()[0]);
    if (t.getRank() != 1 || !count)
      return t.emitOpError() << "thread forall must be one-dimensional with a constant size";
    OpBuilder b(t);
    Block *body = t.getBody();
    if (failed(emitPhases(b, t.getLoc(), body->begin(), body->getTerminator()->getIterator(), *count,
                          body->getArgument(0), IRMapping(), t)))
      return failure();
    t.erase();
    return success();
  }

  /// GPU-space buffers and stack scratch inside loops: one stack buffer at
  /// the function entry each.
  void hoistBuffers(func::FuncOp func) {
    SmallVector<Operation *> allocs;
    func.walk([&](Operation *op) {
      if (auto a = dyn_cast<memref::AllocOp>(op); a && a.getType().getMemorySpace())
        allocs.push_back(op);
      else if (auto s = dyn_cast<memref::AllocaOp>(op);
               s && s->getParentOp() != func && s.getType().hasStaticShape())
        allocs.push_back(op);
    });
    OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
    for (Operation *op : allocs) {
      auto type = cast<MemRefType>(op->getResult(0).getType());
      auto plain = MemRefType::get(type.getShape(), type.getElementType(), type.getLayout());
      Value stack = memref::AllocaOp::create(b, op->getLoc(), plain, ValueRange{}, b.getI64IntegerAttr(64));
      op->getResult(0).replaceAllUsesWith(stack);
      op->erase();
    }
  }
};
} // namespace
