//===- Outline.cpp - the mapped stage's kernels as gpu.launch ops ---------===//
//
// Each block forall (a kernel of the mapped stage, GpuMapping.h) becomes a
// gpu.launch; upstream gpu-kernel-outlining then moves the bodies into one
// gpu.module of kernels. What changes on the way:
//   - block ids and the thread id replace the foralls' induction variables
//     (the block size is the thread forall's size, so no guard is needed);
//   - workgroup buffers become the launch's workgroup attributions (static
//     shared memory), per-thread buffers [threads, ...] become private
//     buffers [...] indexed without the thread id;
//   - buffers captured from the host with a dynamic (token) dimension are
//     passed as static-shape views with that dimension at its bound
//     (kUnboundedDim): the bare-pointer convention cannot pass shapes, and
//     the kernels take their sizes as index arguments, never from the view;
//   - shape queries of host buffers move to the host, for the same reason.
//
//===----------------------------------------------------------------------===//

#include "GpuMapping.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/RegionUtils.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUOUTLINE
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
using namespace mlir::moe::gpumap;

namespace {

/// The static size a dynamic (token) dimension gets in a kernel's view.
constexpr int64_t kUnboundedDim = (int64_t(1) << 31) - 1;

struct OutlinePass : public mlir::moe::impl::MoeGpuOutlineBase<OutlinePass> {
  using Base::Base;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      WalkResult sync = func.walk([&](Operation *op) {
        if (op->hasAttr(kHostSyncAttr) &&
            !(isa<memref::LoadOp>(op) && op->hasOneUse() && isa<func::ReturnOp>(*op->user_begin()))) {
          op->emitOpError()
              << "needs the host to wait for the device (a size or bound computed from device "
                 "data, as in skip regions' compaction); the GPU launch sequence has no host "
                 "synchronisation, so this layer cannot be outlined for the GPU yet";
          return WalkResult::interrupt();
        }
        return WalkResult::advance();
      });
      if (sync.wasInterrupted())
        return signalPassFailure();
      SmallVector<scf::ForallOp> kernels;
      for (Operation &op : func.getBody().front())
        if (isBlockForall(&op))
          kernels.push_back(cast<scf::ForallOp>(op));
      for (auto [i, k] : llvm::enumerate(kernels))
        if (failed(outline(func, k, i)))
          return signalPassFailure();
    }
  }

  /// `v` recomputed at `kb` from T (a shape query of an entry argument,
  /// kept as a kernel argument) and constants; null when it depends on
  /// anything else (then it stays a kernel argument).
  Value sink(OpBuilder &kb, Value v, IRMapping &map) {
    if (map.contains(v))
      return map.lookup(v);
    Operation *def = v.getDefiningOp();
    if (!def)
      return nullptr;
    if (auto dim = dyn_cast<memref::DimOp>(def)) {
      auto index = dim.getConstantIndex();
      if (!index)
        return nullptr;
      if (isa<BlockArgument>(dim.getSource()))
        return v; // T: passed as is.
      if (auto alloc = dim.getSource().getDefiningOp<memref::AllocOp>()) {
        MemRefType type = alloc.getType();
        Value r = type.isDynamicDim(*index)
                      ? sink(kb, alloc.getDynamicSizes()[type.getDynamicDimIndex(*index)], map)
                      : cIndex(kb, def->getLoc(), type.getDimSize(*index));
        if (r)
          map.map(v, r);
        return r;
      }
      return nullptr;
    }
    if (def->getNumRegions() != 0 || !isMemoryEffectFree(def) || def->getNumResults() != 1)
      return nullptr;
    for (Value o : def->getOperands())
      if (!sink(kb, o, map))
        return nullptr;
    Value r = kb.clone(*def, map)->getResult(0);
    map.map(v, r);
    return r;
  }

  LogicalResult outline(func::FuncOp func, scf::ForallOp k, size_t index) {
    MLIRContext *ctx = k.getContext();
    Location loc = k.getLoc();
    SmallVector<scf::ForallOp> threadForalls;
    k.walk([&](scf::ForallOp t) {
      if (isThreadForall(t))
        threadForalls.push_back(t);
    });
    if (threadForalls.size() != 1)
      return k.emitOpError() << "a kernel must hold exactly one thread forall, found "
                             << threadForalls.size();
    scf::ForallOp threads = threadForalls.front();
    auto blockSize = getConstantIntValue(threads.getMixedUpperBound()[0]);
    if (threads.getRank() != 1 || !blockSize)
      return threads.emitOpError() << "thread forall must be one-dimensional with a constant size";
    if (k.getRank() > 3)
      return k.emitOpError() << "at most 3 grid dimensions";

    OpBuilder b(k);
    // Shape queries of host buffers: on the host.
    SmallVector<memref::DimOp> dims;
    k.walk([&](memref::DimOp d) {
      if (!k->isAncestor(d.getSource().getParentRegion()->getParentOp()) && d.getConstantIndex())
        dims.push_back(d);
    });
    for (memref::DimOp d : dims) {
      Value hoisted = memref::DimOp::create(b, d.getLoc(), d.getSource(), *d.getConstantIndex());
      d.getResult().replaceAllUsesWith(hoisted);
      d.erase();
    }

    SmallVector<Value> grid;
    for (OpFoldResult ub : k.getMixedUpperBound())
      grid.push_back(getValueOrCreateConstantIndexOp(b, loc, ub));
    while (grid.size() < 3)
      grid.push_back(cIndex(b, loc, 1));

    SmallVector<memref::AllocOp> shared, perThread;
    k.walk([&](memref::AllocOp a) {
      if (isWorkgroup(a.getType()))
        shared.push_back(a);
      else if (isPrivate(a.getType()))
        perThread.push_back(a);
    });
    SmallVector<Type> sharedTypes, privateTypes;
    for (memref::AllocOp a : shared)
      sharedTypes.push_back(a.getType());
    for (memref::AllocOp a : perThread) {
      MemRefType t = a.getType();
      privateTypes.push_back(MemRefType::get(t.getShape().drop_front(), t.getElementType(),
                                             MemRefLayoutAttrInterface(), t.getMemorySpace()));
    }

    std::string name = (llvm::Twine(func.getSymName()) + "_k" + llvm::Twine(index) + "_" +
                        cast<StringAttr>(k->getAttr(kKernelAttr)).getValue())
                           .str();
    auto launch = gpu::LaunchOp::create(
        b, loc, grid[0], grid[1], grid[2], cIndex(b, loc, *blockSize), cIndex(b, loc, 1),
        cIndex(b, loc, 1), /*dynamicSharedMemorySize=*/nullptr, /*asyncTokenType=*/nullptr,
        /*asyncDependencies=*/{}, sharedTypes, privateTypes, nullptr, nullptr, nullptr,
        FlatSymbolRefAttr::get(ctx, "moe_kernels"), FlatSymbolRefAttr::get(ctx, name));
    Block &body = launch.getBody().front();
    if (body.empty() || !body.back().hasTrait<OpTrait::IsTerminator>()) {
      OpBuilder tb = OpBuilder::atBlockEnd(&body);
      gpu::TerminatorOp::create(tb, loc);
    }
    // The kernel body, block ids for the grid ivs.
    gpu::KernelDim3 blockIds = launch.getBlockIds();
    Value ids[3] = {blockIds.x, blockIds.y, blockIds.z};
    for (auto [i, arg] : llvm::enumerate(k.getBody()->getArguments()))
      arg.replaceAllUsesWith(ids[i]);
    body.getOperations().splice(body.getTerminator()->getIterator(), k.getBody()->getOperations(),
                                k.getBody()->begin(), k.getBody()->getTerminator()->getIterator());
    k.erase();
    // The threads: the thread id for the iv, the body in place.
    Value tid = launch.getThreadIds().x;
    threads.getBody()->getArgument(0).replaceAllUsesWith(tid);
    threads->getBlock()->getOperations().splice(threads->getIterator(),
                                                threads.getBody()->getOperations(),
                                                threads.getBody()->begin(),
                                                threads.getBody()->getTerminator()->getIterator());
    threads.erase();
    for (auto [a, arg] : llvm::zip(shared, launch.getWorkgroupAttributions())) {
      a.getResult().replaceAllUsesWith(arg);
      a.erase();
    }
    for (auto [a, arg] : llvm::zip(perThread, launch.getPrivateAttributions())) {
      for (OpOperand &use : llvm::make_early_inc_range(a->getUses())) {
        Operation *user = use.getOwner();
        auto dropThread = [&](ValueRange indices) -> std::optional<SmallVector<Value>> {
          if (indices.empty() || indices.front() != tid)
            return std::nullopt;
          return SmallVector<Value>(indices.drop_front());
        };
        OpBuilder ub(user);
        if (auto load = dyn_cast<memref::LoadOp>(user)) {
          auto rest = dropThread(load.getIndices());
          if (!rest)
            return load.emitOpError() << "indexes a per-thread buffer with something other than the thread id";
          load.replaceAllUsesWith(memref::LoadOp::create(ub, load.getLoc(), arg, *rest).getResult());
          load.erase();
        } else if (auto store = dyn_cast<memref::StoreOp>(user)) {
          auto rest = dropThread(store.getIndices());
          if (!rest)
            return store.emitOpError() << "indexes a per-thread buffer with something other than the thread id";
          memref::StoreOp::create(ub, store.getLoc(), store.getValueToStore(), arg, *rest);
          store.erase();
        } else {
          return user->emitOpError() << "per-thread buffers may only be loaded and stored";
        }
      }
      a.erase();
    }
    // Scalars computed on the host from T and constants (sizes, limits,
    // float constants) are recomputed in the kernel, so a kernel's scalar
    // arguments are T itself.
    llvm::SetVector<Value> captured;
    getUsedValuesDefinedAbove(launch.getBody(), captured);
    OpBuilder kb = OpBuilder::atBlockBegin(&body);
    for (Value v : captured) {
      if (isa<MemRefType>(v.getType()))
        continue;
      IRMapping map;
      if (Value sunk = sink(kb, v, map); sunk && sunk != v)
        replaceAllUsesInRegionWith(v, sunk, launch.getBody());
    }
    captured.clear();
    getUsedValuesDefinedAbove(launch.getBody(), captured);
    OpBuilder hb(launch);
    for (Value v : captured) {
      auto type = dyn_cast<MemRefType>(v.getType());
      if (!type || type.hasStaticShape())
        continue;
      if (!type.getLayout().isIdentity())
        return launch.emitOpError() << "captures a buffer with a non-identity layout: " << type;
      SmallVector<int64_t> shape(type.getShape());
      for (int64_t &d : shape)
        if (ShapedType::isDynamic(d))
          d = kUnboundedDim;
      SmallVector<int64_t> strides(shape.size(), 1);
      for (int64_t i = int64_t(shape.size()) - 2; i >= 0; --i)
        strides[i] = strides[i + 1] * shape[i + 1];
      // Identity layout: the strides above are the static shape's own.
      auto viewType = MemRefType::get(shape, type.getElementType(), MemRefLayoutAttrInterface(),
                                      type.getMemorySpace());
      Value view = memref::ReinterpretCastOp::create(hb, loc, viewType, v, 0, shape, strides);
      replaceAllUsesInRegionWith(v, view, launch.getBody());
    }
    return success();
  }
};
} // namespace
