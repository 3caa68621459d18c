//===- MapLoops.cpp - the remaining host-level loops become kernels -------===//
//
// After the moe-specific GPU mappings (dispatch, grouped experts) and the
// shared loop lowerings (routers, skips, trivial terms, combine), every
// entry function is a sequence of host-level ops on buffers. This pass makes
// each piece of work a kernel of the mapped stage:
//   - an scf.for marked moe.gpu.parallel (independent iterations: the
//     routers' and combine's per-token loops, the skip gathers) becomes a
//     grid of `block-size`-thread blocks, one iteration per thread, the
//     excess threads of the last block exiting early. Stack scratch used by
//     that loop alone (a router's logits) moves into the thread: private.
//   - a memref.copy becomes an elementwise copy kernel; the final "outputs
//     only when the status is 0" copies keep that check, on the device.
//   - any other run of side-effecting ops becomes a single-thread kernel
//     (capacity drop's token-order admission, expert choice's selection
//     scans): correct, serial, and reported with `report=true`.
// Stack buffers still shared between kernels (the status slot, constant
// tables) become device buffers. A host-level op whose results depend on
// device data (the skip lowering's selected-token counts) stays on the host
// marked moe.gpu.host_sync: host execution runs it, the outliner rejects it.
//
//===----------------------------------------------------------------------===//

#include "GpuMapping.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUMAPLOOPS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
using namespace mlir::moe::gpumap;

namespace {

bool isParallelLoop(Operation *op) {
  auto loop = dyn_cast<scf::ForOp>(op);
  return loop && loop->hasAttr(kGpuParallelAttr) && loop.getNumResults() == 0;
}

/// Host-level ops that stay on the host: buffer management, shape queries,
/// pure scalar arithmetic, the return, and kernels already built.
bool staysOnHost(Operation *op) {
  if (isa<memref::AllocOp, memref::AllocaOp, memref::DeallocOp, memref::DimOp, func::ReturnOp>(op))
    return true;
  if (isBlockForall(op))
    return true;
  return op->getNumRegions() == 0 && isMemoryEffectFree(op);
}

struct MapLoopsPass : public mlir::moe::impl::MoeGpuMapLoopsBase<MapLoopsPass> {
  using Base::Base;

  int64_t serialKernels = 0, parallelKernels = 0, copyKernels = 0;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      if (!func.getBody().hasOneBlock()) {
        func.emitOpError() << "moe-gpu-map-loops expects a single-block function body";
        return signalPassFailure();
      }
      privatizeScratch(func);
      mapBody(func);
      deviceBuffers(func);
      if (report)
        func.emitRemark() << "mapped to the GPU: " << parallelKernels << " parallel loop kernel(s), "
                          << copyKernels << " copy kernel(s), " << serialKernels
                          << " single-thread kernel(s)";
    }
  }

  /// Stack scratch used inside one parallel loop only moves into its body
  /// (each thread gets its own).
  void privatizeScratch(func::FuncOp func) {
    SmallVector<memref::AllocaOp> allocas;
    for (auto a : func.getBody().front().getOps<memref::AllocaOp>())
      allocas.push_back(a);
    for (memref::AllocaOp a : allocas) {
      if (isCallSlot(a) || a->use_empty())
        continue;
      Operation *loop = nullptr;
      bool single = true;
      for (Operation *user : a->getUsers()) {
        Operation *top = func.getBody().front().findAncestorOpInBlock(*user);
        if (!top || !isParallelLoop(top) || (loop && loop != top)) {
          single = false;
          break;
        }
        loop = top;
      }
      if (!single || !loop)
        continue;
      a->moveBefore(&cast<scf::ForOp>(loop).getBody()->front());
    }
  }

  /// Remaining stack buffers are shared between kernels: device memory.
  void deviceBuffers(func::FuncOp func) {
    SmallVector<memref::AllocaOp> allocas;
    for (auto a : func.getBody().front().getOps<memref::AllocaOp>())
      allocas.push_back(a);
    for (memref::AllocaOp a : allocas) {
      OpBuilder b(a);
      auto alloc = memref::AllocOp::create(b, a.getLoc(), a.getType(), a.getDynamicSizes(),
                                           a.getAlignmentAttr());
      if (a->hasAttr(kStatusAttr))
        alloc->setAttr(kStatusAttr, a->getAttr(kStatusAttr));
      a.getResult().replaceAllUsesWith(alloc.getResult());
      a.erase();
      func.walk([&](func::ReturnOp ret) {
        OpBuilder rb(ret);
        memref::DeallocOp::create(rb, ret.getLoc(), alloc);
      });
    }
  }

  void mapBody(func::FuncOp func) {
    Block &body = func.getBody().front();
    SmallVector<Operation *> ops;
    for (Operation &op : body)
      ops.push_back(&op);
    SmallVector<Operation *> run;
    auto flush = [&]() {
      if (!run.empty())
        serialKernel(run);
      run.clear();
    };
    for (Operation *op : ops) {
      if (staysOnHost(op) && !llvm::any_of(op->getOperands(), [&](Value v) {
            return v.getDefiningOp() && llvm::is_contained(run, v.getDefiningOp());
          }))
        continue;
      if (isParallelLoop(op)) {
        flush();
        parallelKernel(cast<scf::ForOp>(op));
        continue;
      }
      if (auto copy = dyn_cast<memref::CopyOp>(op)) {
        flush();
        copyKernel(copy, nullptr);
        continue;
      }
      if (auto guarded = dyn_cast<scf::IfOp>(op); guarded && isGuardedCopies(guarded)) {
        flush();
        for (auto copy : llvm::make_early_inc_range(guarded.thenBlock()->getOps<memref::CopyOp>()))
          copyKernel(copy, guarded.getCondition().getDefiningOp());
        guarded.erase();
        continue;
      }
      // A read of device memory by the host (the status for the return, a
      // guard's condition that the copy kernels recompute): left in place
      // and marked below if anything on the host still uses it.
      if (isa<memref::LoadOp>(op))
        continue;
      // Results read by the host (data-dependent sizes): the op stays on
      // the host; host execution runs it, the outliner refuses it.
      if (op->getNumResults() > 0) {
        flush();
        op->setAttr(kHostSyncAttr, UnitAttr::get(op->getContext()));
        continue;
      }
      run.push_back(op);
    }
    flush();
    // Status reads only feeding guards that now live in the kernels go;
    // host reads still used are marked.
    for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body))) {
      bool dead = op.getNumResults() > 0 && op.use_empty() && op.getNumRegions() == 0 &&
                  (isMemoryEffectFree(&op) || isa<memref::LoadOp>(op));
      if (dead)
        op.erase();
      else if (isa<memref::LoadOp>(op))
        op.setAttr(kHostSyncAttr, UnitAttr::get(op.getContext()));
    }
  }

  /// `scf.if %c { memref.copy ... }` with %c computed by loads and pure ops.
  bool isGuardedCopies(scf::IfOp op) {
    if (op.getNumResults() != 0 || !op.getElseRegion().empty())
      return false;
    for (Operation &inner : op.thenBlock()->without_terminator())
      if (!isa<memref::CopyOp>(inner))
        return false;
    return guardChain(op.getCondition()).has_value();
  }

  /// The ops computing `v` from host values (loads and pure ops), in order.
  std::optional<SmallVector<Operation *>> guardChain(Value v) {
    SmallVector<Operation *> chain;
    std::function<bool(Value)> visit = [&](Value x) {
      Operation *def = x.getDefiningOp();
      if (!def || isa<memref::AllocOp, memref::AllocaOp, memref::DimOp>(def))
        return true;
      if (!(isa<memref::LoadOp>(def) || (def->getNumRegions() == 0 && isMemoryEffectFree(def))))
        return false;
      for (Value o : def->getOperands())
        if (!visit(o))
          return false;
      if (!llvm::is_contained(chain, def))
        chain.push_back(def);
      return true;
    };
    if (!visit(v))
      return std::nullopt;
    return chain;
  }

  void serialKernel(ArrayRef<Operation *> run) {
    Operation *last = run.back();
    OpBuilder b(last->getContext());
    b.setInsertionPointAfter(last);
    Location loc = run.front()->getLoc();
    buildKernel(b, loc, "serial", ValueRange{cIndex(b, loc, 1)}, {GridExpr{0, 1, 1, 1, 0}},
                [&](OpBuilder &kb, Location l, ValueRange) {
                  auto threads = buildThreads(kb, l, 1, [](OpBuilder &, Location, Value) {});
                  Block *tb = threads.getBody();
                  for (Operation *op : run)
                    op->moveBefore(tb->getTerminator());
                });
    ++serialKernels;
  }

  void parallelKernel(scf::ForOp loop) {
    OpBuilder b(loop);
    Location loc = loop.getLoc();
    int64_t bs = blockSize;
    Value lb = loop.getLowerBound(), ub = loop.getUpperBound();
    Value n = arith::SubIOp::create(b, loc, ub, lb);
    std::optional<GridExpr> expr;
    auto lbConst = getConstantIntValue(lb);
    if (lbConst && *lbConst == 0)
      expr = ceilDivGrid(ub, bs);
    buildKernel(b, loc, "parallel", ValueRange{ceilDiv(b, loc, n, bs)}, {expr},
                [&](OpBuilder &kb, Location l, ValueRange blk) {
                  buildThreads(kb, l, bs, [&](OpBuilder &tb, Location tl, Value tid) {
                    Value i = arith::AddIOp::create(
                        tb, tl, lb,
                        arith::AddIOp::create(
                            tb, tl, arith::MulIOp::create(tb, tl, blk[0], cIndex(tb, tl, bs)), tid));
                    Value in = arith::CmpIOp::create(tb, tl, arith::CmpIPredicate::ult, i, ub);
                    scf::IfOp::create(tb, tl, in, [&](OpBuilder &ib, Location il) {
                      IRMapping map;
                      map.map(loop.getInductionVar(), i);
                      for (Operation &op : loop.getBody()->without_terminator())
                        ib.clone(op, map);
                      scf::YieldOp::create(ib, il);
                    });
                  });
                });
    loop.erase();
    ++parallelKernels;
  }

  /// dst = src elementwise, one element per thread; `guardCond` (a host
  /// condition, recomputed in the kernel) skips the copy when false.
  void copyKernel(memref::CopyOp copy, Operation *guardCond) {
    OpBuilder b(copy);
    // Outside the guard's scf.if.
    if (guardCond)
      b.setInsertionPoint(copy->getParentOp());
    Location loc = copy.getLoc();
    Value src = copy.getSource(), dst = copy.getTarget();
    auto type = cast<MemRefType>(dst.getType());
    int64_t bs = blockSize;
    SmallVector<Value> dims;
    Value numel = cIndex(b, loc, 1);
    std::optional<AffineT> numelT = AffineT{0, 1};
    for (int64_t d = 0; d < type.getRank(); ++d) {
      Value dim = dimOf(b, loc, dst, d);
      dims.push_back(dim);
      numel = arith::MulIOp::create(b, loc, numel, dim);
      auto dT = affineInT(dim);
      if (!numelT || !dT || (numelT->a != 0 && dT->a != 0))
        numelT = std::nullopt;
      else
        numelT = AffineT{numelT->a * dT->b + dT->a * numelT->b, numelT->b * dT->b};
    }
    std::optional<GridExpr> expr;
    if (numelT)
      expr = GridExpr{numelT->a, numelT->b, bs, 1, 0};
    std::optional<SmallVector<Operation *>> chain;
    if (guardCond)
      chain = guardChain(guardCond->getResult(0));
    buildKernel(b, loc, "copy", ValueRange{ceilDiv(b, loc, numel, bs)}, {expr},
                [&](OpBuilder &kb, Location l, ValueRange blk) {
                  Value cond;
                  if (chain) {
                    IRMapping map;
                    for (Operation *op : *chain)
                      kb.clone(*op, map);
                    cond = map.lookup(guardCond->getResult(0));
                  }
                  auto body = [&](OpBuilder &ob, Location ol) {
                    buildThreads(ob, ol, bs, [&](OpBuilder &tb, Location tl, Value tid) {
                      Value i = arith::AddIOp::create(
                          tb, tl, arith::MulIOp::create(tb, tl, blk[0], cIndex(tb, tl, bs)), tid);
                      Value in = arith::CmpIOp::create(tb, tl, arith::CmpIPredicate::ult, i, numel);
                      scf::IfOp::create(tb, tl, in, [&](OpBuilder &ib, Location il) {
                        SmallVector<Value> idx(type.getRank());
                        Value rest = i;
                        for (int64_t d = type.getRank() - 1; d >= 0; --d) {
                          if (d == 0) {
                            idx[d] = rest;
                            break;
                          }
                          idx[d] = arith::RemUIOp::create(ib, il, rest, dims[d]);
                          rest = arith::DivUIOp::create(ib, il, rest, dims[d]);
                        }
                        Value v = memref::LoadOp::create(ib, il, src, idx);
                        memref::StoreOp::create(ib, il, v, dst, idx);
                        scf::YieldOp::create(ib, il);
                      });
                    });
                  };
                  if (cond) {
                    scf::IfOp::create(kb, l, cond, [&](OpBuilder &ib, Location il) {
                      body(ib, il);
                      scf::YieldOp::create(ib, il);
                    });
                  } else {
                    body(kb, l);
                  }
                });
    copy.erase();
    ++copyKernels;
  }
};
} // namespace
