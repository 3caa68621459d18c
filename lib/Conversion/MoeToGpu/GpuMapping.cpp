//===- GpuMapping.cpp - helpers of the block/thread-mapped stage ----------===//

#include "GpuMapping.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::moe::gpumap {

using namespace mlir::moe::lowering;

std::optional<AffineT> affineInT(Value v) {
  if (auto c = getConstantIntValue(v))
    return AffineT{0, *c};
  Operation *def = v.getDefiningOp();
  if (!def)
    return std::nullopt;
  if (auto dim = dyn_cast<memref::DimOp>(def)) {
    auto index = dim.getConstantIndex();
    if (!index)
      return std::nullopt;
    // A buffer allocated in the function: its size operand.
    if (auto alloc = dim.getSource().getDefiningOp<memref::AllocOp>()) {
      auto type = alloc.getType();
      if (!type.isDynamicDim(*index))
        return AffineT{0, type.getDimSize(*index)};
      return affineInT(alloc.getDynamicSizes()[type.getDynamicDimIndex(*index)]);
    }
    // Every dynamic dimension of an entry argument is the token count
    // (before bufferization, the argument is read through to_buffer).
    Value source = dim.getSource();
    if (auto toBuffer = source.getDefiningOp<bufferization::ToBufferOp>())
      source = toBuffer.getTensor();
    auto arg = dyn_cast<BlockArgument>(source);
    if (!arg || !isa<func::FuncOp>(arg.getOwner()->getParentOp()))
      return std::nullopt;
    auto type = cast<ShapedType>(arg.getType());
    if (type.isDynamicDim(*index))
      return AffineT{1, 0};
    return AffineT{0, type.getDimSize(*index)};
  }
  if (isa<arith::IndexCastOp, arith::IndexCastUIOp>(def))
    return affineInT(def->getOperand(0));
  if (isa<arith::AddIOp, arith::SubIOp, arith::MulIOp>(def)) {
    auto l = affineInT(def->getOperand(0));
    auto r = affineInT(def->getOperand(1));
    if (!l || !r)
      return std::nullopt;
    if (isa<arith::AddIOp>(def))
      return AffineT{l->a + r->a, l->b + r->b};
    if (isa<arith::SubIOp>(def))
      return AffineT{l->a - r->a, l->b - r->b};
    if (l->a != 0 && r->a != 0)
      return std::nullopt;
    return AffineT{l->a * r->b + r->a * l->b, l->b * r->b};
  }
  return std::nullopt;
}

std::optional<GridExpr> ceilDivGrid(Value v, int64_t d) {
  auto aff = affineInT(v);
  if (!aff)
    return std::nullopt;
  return GridExpr{aff->a, aff->b, d, 1, 0};
}

Value ceilDiv(OpBuilder &b, Location loc, Value a, int64_t d) {
  return arith::CeilDivUIOp::create(b, loc, a, cIndex(b, loc, d));
}

static ArrayAttr mappingAttr(MLIRContext *ctx, size_t n, bool threads) {
  SmallVector<Attribute> dims;
  for (size_t i = 0; i < n; ++i) {
    auto id = static_cast<gpu::MappingId>(i);
    if (threads)
      dims.push_back(gpu::GPUThreadMappingAttr::get(ctx, id));
    else
      dims.push_back(gpu::GPUBlockMappingAttr::get(ctx, id));
  }
  return ArrayAttr::get(ctx, dims);
}

scf::ForallOp buildKernel(OpBuilder &b, Location loc, StringRef name, ValueRange grid,
                          ArrayRef<std::optional<GridExpr>> exprs,
                          function_ref<void(OpBuilder &, Location, ValueRange)> body) {
  MLIRContext *ctx = b.getContext();
  SmallVector<OpFoldResult> ubs(grid.begin(), grid.end());
  auto forall = scf::ForallOp::create(
      b, loc, ubs, ValueRange{}, mappingAttr(ctx, grid.size(), /*threads=*/false),
      [&](OpBuilder &kb, Location l, ValueRange ivs) { body(kb, l, ivs); });
  // The body builder leaves the terminator to us.
  scf::ForallOp::ensureTerminator(forall.getRegion(), b, loc);
  forall->setAttr(kKernelAttr, StringAttr::get(ctx, name));
  if (exprs.size() == grid.size() && llvm::all_of(exprs, [](auto &e) { return e.has_value(); })) {
    SmallVector<Attribute> dims;
    for (auto &e : exprs)
      dims.push_back(DenseI64ArrayAttr::get(ctx, *e));
    forall->setAttr(kGridAttr, ArrayAttr::get(ctx, dims));
  }
  return forall;
}

scf::ForallOp buildThreads(OpBuilder &b, Location loc, int64_t threads,
                           function_ref<void(OpBuilder &, Location, Value)> body) {
  SmallVector<OpFoldResult> ubs{b.getIndexAttr(threads)};
  auto forall = scf::ForallOp::create(
      b, loc, ubs, ValueRange{}, mappingAttr(b.getContext(), 1, /*threads=*/true),
      [&](OpBuilder &tb, Location l, ValueRange ivs) { body(tb, l, ivs[0]); });
  scf::ForallOp::ensureTerminator(forall.getRegion(), b, loc);
  return forall;
}

Value allocWorkgroup(OpBuilder &b, Location loc, ArrayRef<int64_t> shape, Type elem) {
  auto space = gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  return memref::AllocOp::create(b, loc, MemRefType::get(shape, elem, MemRefLayoutAttrInterface(), space));
}

Value allocPerThread(OpBuilder &b, Location loc, int64_t threads, ArrayRef<int64_t> shape,
                     Type elem) {
  SmallVector<int64_t> full{threads};
  full.append(shape.begin(), shape.end());
  auto space = gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Private);
  return memref::AllocOp::create(b, loc, MemRefType::get(full, elem, MemRefLayoutAttrInterface(), space));
}

static bool hasMapping(Operation *op, bool threads) {
  auto forall = dyn_cast<scf::ForallOp>(op);
  if (!forall || !forall.getMapping() || forall.getMapping()->empty())
    return false;
  Attribute first = (*forall.getMapping())[0];
  return threads ? isa<gpu::GPUThreadMappingAttr>(first) : isa<gpu::GPUBlockMappingAttr>(first);
}

bool isBlockForall(Operation *op) { return hasMapping(op, false); }
bool isThreadForall(Operation *op) { return hasMapping(op, true); }

static bool inSpace(MemRefType type, gpu::AddressSpace space) {
  auto attr = dyn_cast_or_null<gpu::AddressSpaceAttr>(type.getMemorySpace());
  return attr && attr.getValue() == space;
}
bool isWorkgroup(MemRefType type) { return inSpace(type, gpu::AddressSpace::Workgroup); }
bool isPrivate(MemRefType type) { return inSpace(type, gpu::AddressSpace::Private); }

void emitStrided(OpBuilder &b, Location loc, Value start, Value n, Value stride,
                 function_ref<void(OpBuilder &, Location, Value)> body) {
  scf::ForOp::create(b, loc, start, n, stride, ValueRange{},
                     [&](OpBuilder &lb, Location l, Value iv, ValueRange) {
                       body(lb, l, iv);
                       scf::YieldOp::create(lb, l);
                     });
}

} // namespace mlir::moe::gpumap
